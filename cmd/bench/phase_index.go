package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"

	"cdp/config"
	"cdp/indexer"
	"cdp/mapping"
	"cdp/testing/workload"
)

// IndexingResult compares the indexer with _bulk of the same final
// documents.
type IndexingResult struct {
	Changes        int     `json:"changes"` // source messages produced (CDC changes, tombstones and events)
	ProduceSeconds float64 `json:"produce_seconds"`

	// What the indexer built, and what the reference model says it must.
	CustomerDocs         int64 `json:"customer_docs"`
	EventDocs            int64 `json:"event_docs"`
	ExpectedCustomerDocs int   `json:"expected_customer_docs"`
	ExpectedEventDocs    int   `json:"expected_event_docs"`

	// The indexer: from the consumer group's first assignment until every
	// source message and dirty marker is applied and committed.
	IndexerStartupSeconds  float64 `json:"indexer_startup_seconds"` // process start → group stable
	IndexerSeconds         float64 `json:"indexer_seconds"`
	IndexerCustomerDocsSec float64 `json:"indexer_customer_docs_per_sec"`
	IndexerChangesSec      float64 `json:"indexer_changes_per_sec"`

	// Raw: the final documents (customers and their event children, with
	// routing) sent with _bulk into an index created with the same settings
	// and mapping; only the _bulk requests are timed.
	RawIndex               string  `json:"raw_index"`
	RawDocs                int     `json:"raw_docs"`
	RawBytes               int64   `json:"raw_bytes"`
	RawWorkers             int     `json:"raw_bulk_workers"`
	RawBatchDocs           int     `json:"raw_bulk_batch_docs"`
	RawSeconds             float64 `json:"raw_seconds"`
	RawCustomerDocsSec     float64 `json:"raw_customer_docs_per_sec"`
	RawChangesSec          float64 `json:"raw_changes_per_sec"` // the same changes over the raw time: the rate at which the end state could be written
	RawDocsSec             float64 `json:"raw_docs_per_sec"`
	RefreshInterval        string  `json:"refresh_interval"`
	Ratio                  float64 `json:"ratio"` // indexer rate / raw rate
	IndexerLogPath         string  `json:"indexer_log"`
	DeadLettered           int64   `json:"dead_lettered"`
	IndexerDocsMatchExpect bool    `json:"customer_docs_match_expected"`
}

// groupStable waits until the consumer group has a member and is stable
// (it has its partitions and starts fetching).
func groupStable(ctx context.Context, cfg *config.Config, p *proc) error {
	admin, err := sarama.NewClusterAdmin(cfg.KafkaBrokers, indexer.KafkaConfig("cdp-bench-admin"))
	if err != nil {
		return err
	}
	defer admin.Close()
	for {
		if err := p.exitError(); err != nil {
			return err
		}
		gs, err := admin.DescribeConsumerGroups([]string{cfg.ConsumerGroup})
		if err == nil && len(gs) == 1 && gs[0].State == "Stable" && len(gs[0].Members) > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("consumer group %s not stable: %w", cfg.ConsumerGroup, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitIdle polls the group's progress until everything produced is applied
// and committed, logging now and then.
func waitIdle(ctx context.Context, cfg *config.Config, p *proc, total int, log *slog.Logger, what string) (time.Time, error) {
	pr0, err := workload.NewProgressReader(cfg)
	if err != nil {
		return time.Time{}, err
	}
	defer pr0.Close()
	start, lastLog := time.Now(), time.Now()
	for {
		if err := p.exitError(); err != nil {
			return time.Time{}, err
		}
		pr, err := pr0.Read()
		now := time.Now()
		if err == nil && pr.Idle() {
			return now, nil
		}
		if now.Sub(lastLog) >= 10*time.Second {
			lastLog = now
			if err != nil {
				log.Info(what+": progress unknown", "err", err)
			} else {
				pct := 100 * float64(pr.SourceCommitted) / float64(max(1, total))
				log.Info(fmt.Sprintf("%s: %.0f%% of %d changes applied (%s), %.0f changes/s", what, pct, total, pr,
					float64(pr.SourceCommitted)/now.Sub(start).Seconds()))
			}
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// countDocs counts the documents of an index or alias after a refresh.
func countDocs(ctx context.Context, os endpoint, index string) (int64, error) {
	if _, err := os.do(ctx, http.MethodPost, "/"+index+"/_refresh", nil); err != nil {
		return 0, err
	}
	var resp struct {
		Count int64 `json:"count"`
	}
	err := os.json(ctx, http.MethodPost, "/"+index+"/_count", map[string]any{"query": map[string]any{"match_all": map[string]any{}}}, &resp)
	return resp.Count, err
}

// bulkBody is one prepared _bulk request: a stretch of the spool file.
type bulkBody struct {
	off, len int64
	docs     int
}

// spool holds prepared _bulk requests in a temporary file, so that a
// run's read-back documents (5.5 GiB for 1,000,000 customers) need not fit
// in memory; the raw baseline reads them back from the page cache.
type spool struct {
	f      *os.File
	bodies []bulkBody
	size   int64
}

func (s *spool) close() {
	if s != nil && s.f != nil {
		s.f.Close()
		os.Remove(s.f.Name())
		s.f = nil
	}
}

// createTemp is os.CreateTemp, for functions whose endpoint parameter is
// named os.
func createTemp(dir, pattern string) (*os.File, error) { return os.CreateTemp(dir, pattern) }

// readBack reads every document of the physical customers index (the
// customers and their event children) as _bulk index actions with their
// routing, in batches of batchDocs, into a spool file in dir.
func readBack(ctx context.Context, os endpoint, index string, batchDocs int, dir string) (*spool, int, error) {
	f, err := createTemp(dir, "bench-bulk-*.ndjson")
	if err != nil {
		return nil, 0, err
	}
	sp := &spool{f: f}
	w := bufio.NewWriterSize(f, 1<<20)
	var buf bytes.Buffer
	var n, inBatch int
	flush := func() error {
		if inBatch == 0 {
			return nil
		}
		sp.bodies = append(sp.bodies, bulkBody{off: sp.size, len: int64(buf.Len()), docs: inBatch})
		sp.size += int64(buf.Len())
		_, err := w.Write(buf.Bytes())
		buf.Reset()
		inBatch = 0
		return err
	}
	type hit struct {
		ID      string          `json:"_id"`
		Routing string          `json:"_routing"`
		Source  json.RawMessage `json:"_source"`
	}
	var page struct {
		ScrollID string `json:"_scroll_id"`
		Hits     struct {
			Hits []hit `json:"hits"`
		} `json:"hits"`
	}
	err = os.json(ctx, http.MethodPost, "/"+index+"/_search?scroll=2m", map[string]any{
		"size": 5000, "sort": []string{"_doc"}, "query": map[string]any{"match_all": map[string]any{}},
	}, &page)
	for err == nil && len(page.Hits.Hits) > 0 {
		for _, h := range page.Hits.Hits {
			meta := map[string]any{"_id": h.ID}
			if h.Routing != "" {
				meta["routing"] = h.Routing
			}
			action, _ := json.Marshal(map[string]any{"index": meta})
			buf.Write(action)
			buf.WriteByte('\n')
			buf.Write(h.Source)
			buf.WriteByte('\n')
			n++
			if inBatch++; inBatch >= batchDocs {
				if err = flush(); err != nil {
					break
				}
			}
		}
		if err != nil {
			break
		}
		id := page.ScrollID
		page.Hits.Hits = nil
		err = os.json(ctx, http.MethodPost, "/_search/scroll", map[string]any{"scroll": "2m", "scroll_id": id}, &page)
	}
	if page.ScrollID != "" {
		_, _ = os.do(context.WithoutCancel(ctx), http.MethodDelete, "/_search/scroll", map[string]any{"scroll_id": page.ScrollID})
	}
	if err == nil {
		err = flush()
	}
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		sp.close()
		return nil, 0, err
	}
	return sp, n, nil
}

// createRawIndex creates index with the customers index's settings (from
// mapping.Customers) and its live mapping (the embedded mapping plus the
// dynamic attrs and properties fields the indexer added), so that the raw
// baseline writes into the very same structure without mapping updates.
func createRawIndex(ctx context.Context, os endpoint, source, index string) (string, error) {
	var body map[string]any
	if err := json.Unmarshal(mapping.Customers.Body(), &body); err != nil {
		return "", err
	}
	var live map[string]struct {
		Mappings json.RawMessage `json:"mappings"`
	}
	if err := os.json(ctx, http.MethodGet, "/"+source+"/_mapping", nil, &live); err != nil {
		return "", err
	}
	for _, m := range live {
		body["mappings"] = m.Mappings
	}
	refresh := ""
	if s, ok := body["settings"].(map[string]any); ok {
		if ix, ok := s["index"].(map[string]any); ok {
			refresh, _ = ix["refresh_interval"].(string)
		}
	}
	_, err := os.do(ctx, http.MethodPut, "/"+index, body)
	return refresh, err
}

// rawBulk sends the spooled bodies with workers concurrent requests and
// returns the time from the first request to the last answer (reading a
// body from the spool, in the page cache, included).
func rawBulk(ctx context.Context, os endpoint, index string, sp *spool, workers int) (time.Duration, error) {
	bodies := sp.bodies
	var next atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(bodies) || ctx.Err() != nil {
					return
				}
				var resp struct {
					Errors bool `json:"errors"`
					Items  []map[string]struct {
						Status int `json:"status"`
						Error  any `json:"error"`
					} `json:"items"`
				}
				body := make([]byte, bodies[i].len)
				_, err := sp.f.ReadAt(body, bodies[i].off)
				if err == nil {
					err = os.json(ctx, http.MethodPost, "/"+index+"/_bulk", body, &resp)
				}
				if err == nil && resp.Errors {
					for _, it := range resp.Items {
						for _, r := range it {
							if r.Error != nil {
								err = fmt.Errorf("bulk item failed (%d): %v", r.Status, r.Error)
							}
						}
					}
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start), firstErr
}

// settle waits (at most limit) until the index has no merge running, so
// that the idle phases after the bulk writes do not measure their
// aftermath; it reports how long it waited.
func settle(ctx context.Context, os endpoint, index string, limit time.Duration) time.Duration {
	start := time.Now()
	for time.Since(start) < limit && ctx.Err() == nil {
		var st struct {
			All struct {
				Total struct {
					Merges struct {
						Current int `json:"current"`
					} `json:"merges"`
				} `json:"total"`
			} `json:"_all"`
		}
		if err := os.json(ctx, http.MethodGet, "/"+index+"/_stats/merge", nil, &st); err != nil || st.All.Total.Merges.Current == 0 {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	return time.Since(start)
}
