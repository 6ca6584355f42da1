package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"cdp/config"
	"cdp/indexer"
	"cdp/store"
	"cdp/testing/workload"
)

// loadGen produces a prepared stream at a fixed rate (open-loop, in 5 ms
// steps) through its own producer, until stopped or out of messages.
type loadGen struct {
	prod  *producer
	msgs  []kmsg
	next  int
	rate  float64
	start time.Time

	mu        sync.Mutex
	exhausted bool
	stop      context.CancelFunc
	done      chan struct{}
}

func newLoadGen(cfg *config.Config, msgs []kmsg, rate float64) (*loadGen, error) {
	p, err := newProducer(cfg)
	if err != nil {
		return nil, err
	}
	return &loadGen{prod: p, msgs: msgs, rate: rate}, nil
}

// run starts producing in the background.
func (l *loadGen) run(ctx context.Context) {
	ctx, l.stop = context.WithCancel(ctx)
	l.done = make(chan struct{})
	l.start = time.Now()
	go func() {
		defer close(l.done)
		pacer := NewPacer(l.rate, l.start)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				for n := pacer.Take(now); n > 0; n-- {
					if l.next >= len(l.msgs) {
						l.mu.Lock()
						l.exhausted = true
						l.mu.Unlock()
						return
					}
					l.prod.send(l.msgs[l.next])
					l.next++
				}
			}
		}
	}()
}

// halt stops producing (the producer stays open for a later run).
func (l *loadGen) halt() {
	if l.stop != nil {
		l.stop()
		<-l.done
	}
}

// LoadStats says what the background load actually was.
type LoadStats struct {
	TargetRate   float64 `json:"target_changes_per_sec"`
	ActualRate   float64 `json:"actual_changes_per_sec"`
	Produced     int64   `json:"produced"`
	Seconds      float64 `json:"seconds"`
	Exhausted    bool    `json:"ran_out_of_messages"`
	LagAtEnd     int64   `json:"source_lag_at_end"`
	LagMaxSample int64   `json:"source_lag_max_sampled"`
}

// FreshnessResult is the event-to-searchable latency under load.
type FreshnessResult struct {
	Load         LoadStats `json:"load"`
	MarkerRate   float64   `json:"marker_rate_per_sec"`
	PollInterval float64   `json:"poll_interval_ms"`
	Latency      Summary   `json:"event_to_searchable"`
	Lost         int       `json:"markers_not_seen"`
	TimeoutSec   float64   `json:"timeout_seconds"`
	Pass         bool      `json:"goal_pass"`
}

// lagWatch samples the indexer's source lag while the load runs.
type lagWatch struct {
	mu  sync.Mutex
	max int64
	end int64
}

func (w *lagWatch) run(ctx context.Context, cfg *config.Config) {
	r, err := workload.NewProgressReader(cfg)
	if err != nil {
		return
	}
	defer r.Close()
	for ctx.Err() == nil {
		if p, err := r.Read(); err == nil {
			lag := p.SourceEnd - p.SourceCommitted
			w.mu.Lock()
			w.max = max(w.max, lag)
			w.end = lag
			w.mu.Unlock()
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// runFreshness produces marker events at a fixed rate (open-loop) while
// the load runs, and polls the events view for them; a marker's latency
// is from its due time until a search first returns it.
func runFreshness(ctx context.Context, cfg *config.Config, os endpoint, events string, prod *producer, live []string,
	rate float64, dur, poll, timeout time.Duration, runID string) (FreshnessResult, error) {
	res := FreshnessResult{MarkerRate: rate, PollInterval: float64(poll) / float64(time.Millisecond), TimeoutSec: timeout.Seconds()}
	var mu sync.Mutex
	outstanding := map[string]time.Time{}
	var lat Samples
	pollCtx, stopPoll := context.WithCancel(ctx)
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		t := time.NewTicker(poll)
		defer t.Stop()
		for {
			select {
			case <-pollCtx.Done():
				return
			case <-t.C:
			}
			mu.Lock()
			ids := make([]string, 0, len(outstanding))
			for id := range outstanding {
				ids = append(ids, id)
			}
			mu.Unlock()
			if len(ids) == 0 {
				continue
			}
			var resp store.SearchResult
			err := os.json(pollCtx, http.MethodPost, "/"+events+"/_search", map[string]any{
				"size": len(ids), "_source": false, "query": map[string]any{"ids": map[string]any{"values": ids}},
			}, &resp)
			seen := time.Now()
			if err != nil {
				continue
			}
			mu.Lock()
			for _, h := range resp.Hits {
				if due, ok := outstanding[h.ID]; ok {
					lat.Add(seen.Sub(due))
					delete(outstanding, h.ID)
				}
			}
			now := time.Now()
			for id, due := range outstanding {
				if now.Sub(due) > timeout {
					lat.Add(timeout) // a lower bound: counted, and reported as lost
					res.Lost++
					delete(outstanding, id)
				}
			}
			mu.Unlock()
		}
	}()
	r := rand.New(rand.NewPCG(7, 11))
	var users []string
	for range int(rate*dur.Seconds()) + 1 {
		users = append(users, live[r.IntN(len(live))])
	}
	OpenLoop{Rate: rate, N: int(rate * dur.Seconds())}.Run(ctx, func(i int, due time.Time) {
		id := fmt.Sprintf("bench-marker-%s-%d", runID, i)
		e := &workload.Event{Type: "track", Name: "bench_marker", MessageID: id, Timestamp: due.UTC().Truncate(time.Millisecond),
			UserID: users[i], Properties: map[string]any{"seq": float64(i)}, Channel: "web"}
		m := workload.EventMessage(e)
		mu.Lock()
		outstanding[id] = due
		mu.Unlock()
		prod.send(kmsg{indexer.TopicEvents, m.Key, m.Value})
	})
	// Wait for the last markers (or their timeout).
	deadline := time.Now().Add(timeout + 2*poll)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		mu.Lock()
		n := len(outstanding)
		mu.Unlock()
		if n == 0 {
			break
		}
		time.Sleep(poll)
	}
	stopPoll()
	<-polled
	mu.Lock()
	res.Lost += len(outstanding)
	for range outstanding {
		lat.Add(timeout)
	}
	mu.Unlock()
	res.Latency = lat.Summary()
	res.Pass = res.Lost == 0 && res.Latency.Count > 0 && res.Latency.P99Ms <= 1500
	return res, nil
}
