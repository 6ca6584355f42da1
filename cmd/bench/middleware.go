package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"sort"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// MiddlewareLatency is what the API's access middleware (key or token,
// policy, rate) took per request, from cdp_http_auth_seconds: quantiles
// interpolated within the histogram's buckets.
type MiddlewareLatency struct {
	Requests uint64  `json:"requests"`
	P50ms    float64 `json:"p50_ms"`
	P99ms    float64 `json:"p99_ms"`
	MeanMs   float64 `json:"mean_ms"`
}

// middlewareLatency reads the API's histogram of its access middleware.
func middlewareLatency(ctx context.Context, api endpoint) (*MiddlewareLatency, error) {
	body, err := scrape(ctx, api)
	if err != nil {
		return nil, err
	}
	return parseMiddlewareLatency(bytes.NewReader(body))
}

func parseMiddlewareLatency(r io.Reader) (*MiddlewareLatency, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	f := families["cdp_http_auth_seconds"]
	if f == nil || len(f.GetMetric()) == 0 || f.GetMetric()[0].GetHistogram().GetSampleCount() == 0 {
		return nil, fmt.Errorf("no cdp_http_auth_seconds samples")
	}
	h := f.GetMetric()[0].GetHistogram()
	type bucket struct {
		le    float64
		count uint64
	}
	var bs []bucket
	for _, b := range h.GetBucket() {
		bs = append(bs, bucket{b.GetUpperBound(), b.GetCumulativeCount()})
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	n := h.GetSampleCount()
	quantile := func(q float64) float64 {
		rank := q * float64(n)
		lo, below := 0.0, uint64(0)
		for _, b := range bs {
			if float64(b.count) >= rank {
				if math.IsInf(b.le, 1) || b.count == below {
					return lo
				}
				return lo + (b.le-lo)*(rank-float64(below))/float64(b.count-below)
			}
			lo, below = b.le, b.count
		}
		return lo
	}
	ms := func(s float64) float64 { return math.Round(s*1e6) / 1e3 }
	return &MiddlewareLatency{Requests: n, P50ms: ms(quantile(0.5)), P99ms: ms(quantile(0.99)), MeanMs: ms(h.GetSampleSum() / float64(n))}, nil
}
