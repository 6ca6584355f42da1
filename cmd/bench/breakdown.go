package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TimeShare is where the indexer's time went in one phase: the sum and
// count of one histogram series of its /metrics, read at the end of the
// phase (the process started with it, so nothing else is in it).
type TimeShare struct {
	Metric  string  `json:"metric"`
	Label   string  `json:"label"`
	Seconds float64 `json:"seconds"`
	Count   uint64  `json:"count"`
}

// breakdownMetrics are the indexer's histograms of time, with the label
// that splits each.
var breakdownMetrics = []struct{ name, label string }{
	{"cdp_indexer_batch_seconds", "lane"},
	{"cdp_indexer_step_seconds", "step"},
	{"cdp_indexer_rebuild_part_seconds", "part"},
	{"cdp_indexer_resolve_part_seconds", "part"},
	{"cdp_indexer_bulk_seconds", "step"},
}

// breakdown reads the indexer's time histograms from its /metrics.
func breakdown(ctx context.Context, addr string) ([]TimeShare, error) {
	body, err := scrape(ctx, endpoint("http://"+addr))
	if err != nil {
		return nil, err
	}
	return parseBreakdown(bytes.NewReader(body))
}

// scrape reads a process's /metrics (the text format).
func scrape(ctx context.Context, e endpoint) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return e.do(ctx, http.MethodGet, "/metrics", nil)
}

// parseBreakdown picks breakdownMetrics out of Prometheus's text format,
// largest first within each metric.
func parseBreakdown(r io.Reader) ([]TimeShare, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	var out []TimeShare
	for _, bm := range breakdownMetrics {
		f := families[bm.name]
		if f == nil {
			continue
		}
		var shares []TimeShare
		for _, m := range f.GetMetric() {
			h := m.GetHistogram()
			if h == nil || h.GetSampleCount() == 0 {
				continue
			}
			shares = append(shares, TimeShare{Metric: bm.name, Label: labelValue(m, bm.label), Seconds: round3(h.GetSampleSum()), Count: h.GetSampleCount()})
		}
		slices.SortFunc(shares, func(a, b TimeShare) int {
			if a.Seconds != b.Seconds {
				if a.Seconds > b.Seconds {
					return -1
				}
				return 1
			}
			return strings.Compare(a.Label, b.Label)
		})
		out = append(out, shares...)
	}
	return out, nil
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// mdBreakdown is the table of where the indexer's time went.
func mdBreakdown(w io.Writer, title string, shares []TimeShare) {
	if len(shares) == 0 {
		return
	}
	fmt.Fprintf(w, "%s (the sums of the indexer's time histograms; lanes run concurrently, so the parts of different lanes overlap):\n\n", title)
	var rows [][]string
	for _, s := range shares {
		rows = append(rows, []string{"`" + strings.TrimPrefix(s.Metric, "cdp_indexer_") + "`", s.Label, fmt.Sprintf("%.2f", s.Seconds), fmt.Sprint(s.Count),
			fmt.Sprintf("%.1f", 1000*s.Seconds/float64(max(s.Count, 1)))})
	}
	table(w, []string{"histogram", "label", "seconds", "count", "ms each"}, rows)
}

// since is what after adds to before: the time of the phase between them.
func since(after, before []TimeShare) []TimeShare {
	key := func(s TimeShare) string { return s.Metric + "\x00" + s.Label }
	was := make(map[string]TimeShare, len(before))
	for _, s := range before {
		was[key(s)] = s
	}
	var out []TimeShare
	for _, s := range after {
		b := was[key(s)]
		if s.Count > b.Count {
			out = append(out, TimeShare{Metric: s.Metric, Label: s.Label, Seconds: round3(s.Seconds - b.Seconds), Count: s.Count - b.Count})
		}
	}
	return out
}
