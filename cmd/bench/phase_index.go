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

	// State: the raw baseline again, together with every document of the
	// state the design keeps beside the customers index (stateIndices),
	// read back and written with the same _bulk workers and batch size
	// into copies of those indices. Next to Ratio it shows what the design
	// costs (State against Raw) and what the code costs (the indexer
	// against State). Informational: the goal is judged against Raw.
	State                []StateIndex `json:"state_indices,omitempty"`
	StateDocs            int          `json:"state_raw_docs,omitempty"` // every document written, the customers index's included
	StateBytes           int64        `json:"state_raw_bytes,omitempty"`
	StateSeconds         float64      `json:"state_raw_seconds,omitempty"`
	StateCustomerDocsSec float64      `json:"state_raw_customer_docs_per_sec,omitempty"`
	StateChangesSec      float64      `json:"state_raw_changes_per_sec,omitempty"`
	StateDocsSec         float64      `json:"state_raw_docs_per_sec,omitempty"`
	StateRatio           float64      `json:"state_ratio,omitempty"` // indexer rate / the rate with the state

	// Breakdown is where the indexer's time went, from its /metrics.
	Breakdown []TimeShare `json:"breakdown,omitempty"`
}

// StateIndex is one index of the design's state in the second raw
// baseline: the index read back, its throwaway copy, and its documents.
type StateIndex struct {
	Index string `json:"index"`
	Copy  string `json:"copy"`
	Docs  int    `json:"docs"`
}

// stateIndices are the indices the indexer keeps besides the customers
// index, whose documents the second raw baseline also writes: the row
// store (one document per source row, and the parking records of items
// whose order is not there yet), and OneID's identities, people and
// identity history.
var stateIndices = []mapping.Index{mapping.Rows, mapping.Identities, mapping.People, mapping.IdentityHistory}

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

// bulkBody is one prepared _bulk request: a stretch of the spool file,
// and the index it is sent to.
type bulkBody struct {
	off, len int64
	docs     int
	index    string
}

// spool holds prepared _bulk requests in a temporary file, so that a
// run's read-back documents (5.5 GiB for 1,000,000 customers) need not fit
// in memory; the raw baseline reads them back from the page cache.
type spool struct {
	f      *os.File
	w      *bufio.Writer
	bodies []bulkBody
	size   int64
}

// newSpool creates an empty spool file in dir.
func newSpool(dir string) (*spool, error) {
	f, err := os.CreateTemp(dir, "bench-bulk-*.ndjson")
	if err != nil {
		return nil, err
	}
	return &spool{f: f, w: bufio.NewWriterSize(f, 1<<20)}, nil
}

// add appends one _bulk body for index.
func (s *spool) add(index string, body []byte, docs int) error {
	s.bodies = append(s.bodies, bulkBody{off: s.size, len: int64(len(body)), docs: docs, index: index})
	s.size += int64(len(body))
	_, err := s.w.Write(body)
	return err
}

func (s *spool) close() {
	if s != nil && s.f != nil {
		s.f.Close()
		os.Remove(s.f.Name())
		s.f = nil
	}
}

// readBack appends every document of the physical index source (for the
// customers index: the customers and their event children) to the spool,
// as _bulk index actions with their ids and routing, in bodies of
// batchDocs to be sent to target. It scrolls in index order, so the
// bench holds one page of documents at a time whatever the index's size.
func readBack(ctx context.Context, os endpoint, sp *spool, source, target string, batchDocs int) (int, error) {
	var buf bytes.Buffer
	var n, inBatch int
	flush := func() error {
		if inBatch == 0 {
			return nil
		}
		err := sp.add(target, buf.Bytes(), inBatch)
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
	// The state indices refresh every 30 s: what the last seconds wrote
	// is read too.
	if _, err := os.do(ctx, http.MethodPost, "/"+source+"/_refresh", nil); err != nil {
		return 0, err
	}
	err := os.json(ctx, http.MethodPost, "/"+source+"/_search?scroll=2m", map[string]any{
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
		err = sp.w.Flush()
	}
	return n, err
}

// createRawIndex creates index with the settings of def (the service's
// own, from package mapping) and the live mapping of source, its physical
// index (the embedded mapping plus the dynamic fields the indexer added,
// such as the customers' attrs and properties), so that the raw baseline
// writes into the very same structure without mapping updates. It returns
// the refresh interval.
func createRawIndex(ctx context.Context, os endpoint, def mapping.Index, source, index string) (string, error) {
	var body map[string]any
	if err := json.Unmarshal(def.Body(), &body); err != nil {
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

// rawBulk sends the spooled bodies, each to its index, with workers
// concurrent requests and returns the time from the first request to the
// last answer (reading a body from the spool, in the page cache,
// included).
func rawBulk(ctx context.Context, os endpoint, sp *spool, workers int) (time.Duration, error) {
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
					err = os.json(ctx, http.MethodPost, "/"+bodies[i].index+"/_bulk", body, &resp)
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
