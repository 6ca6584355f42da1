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

// markerWatch is the markers produced and not yet seen, and the
// latencies of those seen (or given up on).
type markerWatch struct {
	mu          sync.Mutex
	outstanding map[string]time.Time // marker id → due time
	lat         Samples
	lost        int
}

// sent records a marker due at due.
func (m *markerWatch) sent(id string, due time.Time) {
	m.mu.Lock()
	m.outstanding[id] = due
	m.mu.Unlock()
}

// pending is how many markers were not seen yet.
func (m *markerWatch) pending() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.outstanding)
}

// poll searches the events view for the outstanding markers every poll
// until ctx ends.
func (m *markerWatch) poll(ctx context.Context, os endpoint, events string, poll, timeout time.Duration) {
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m.pollOnce(ctx, os, events, timeout)
	}
}

// pollOnce searches once: a marker found counts its latency until now,
// one older than timeout is lost.
func (m *markerWatch) pollOnce(ctx context.Context, os endpoint, events string, timeout time.Duration) {
	m.mu.Lock()
	ids := make([]string, 0, len(m.outstanding))
	for id := range m.outstanding {
		ids = append(ids, id)
	}
	m.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	var resp store.SearchResult
	err := os.json(ctx, http.MethodPost, "/"+events+"/_search", map[string]any{
		"size": len(ids), "_source": false, "query": map[string]any{"ids": map[string]any{"values": ids}},
	}, &resp)
	seen := time.Now()
	if err != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, h := range resp.Hits {
		if due, ok := m.outstanding[h.ID]; ok {
			m.lat.Add(seen.Sub(due))
			delete(m.outstanding, h.ID)
		}
	}
	now := time.Now()
	for id, due := range m.outstanding {
		if now.Sub(due) > timeout {
			m.lat.Add(timeout) // a lower bound: counted, and reported as lost
			m.lost++
			delete(m.outstanding, id)
		}
	}
}

// giveUp counts every marker still outstanding as lost.
func (m *markerWatch) giveUp(timeout time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lost += len(m.outstanding)
	for range m.outstanding {
		m.lat.Add(timeout)
	}
}

// produceMarkers sends rate×dur marker events open-loop, each for a
// customer of live, and records each in m before it is sent.
func produceMarkers(ctx context.Context, m *markerWatch, prod *producer, live []string, rate float64, dur time.Duration, runID string) {
	r := rand.New(rand.NewPCG(7, 11))
	var users []string
	for range int(rate*dur.Seconds()) + 1 {
		users = append(users, live[r.IntN(len(live))])
	}
	OpenLoop{Rate: rate, N: int(rate * dur.Seconds())}.Run(ctx, func(i int, due time.Time) {
		id := fmt.Sprintf("bench-marker-%s-%d", runID, i)
		e := &workload.Event{Type: "track", Name: "bench_marker", MessageID: id, Timestamp: due.UTC().Truncate(time.Millisecond),
			UserID: users[i], Properties: map[string]any{"seq": float64(i)}, Channel: "web"}
		msg := workload.EventMessage(e)
		m.sent(id, due)
		prod.send(kmsg{indexer.TopicEvents, msg.Key, msg.Value})
	})
}

// runFreshness produces marker events at a fixed rate (open-loop) while
// the load runs, and polls the events view for them; a marker's latency
// is from its due time until a search first returns it.
func runFreshness(ctx context.Context, cfg *config.Config, os endpoint, events string, prod *producer, live []string,
	rate float64, dur, poll, timeout time.Duration, runID string) (FreshnessResult, error) {
	res := FreshnessResult{MarkerRate: rate, PollInterval: float64(poll) / float64(time.Millisecond), TimeoutSec: timeout.Seconds()}
	m := &markerWatch{outstanding: map[string]time.Time{}}
	pollCtx, stopPoll := context.WithCancel(ctx)
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		m.poll(pollCtx, os, events, poll, timeout)
	}()
	produceMarkers(ctx, m, prod, live, rate, dur, runID)
	// Wait for the last markers (or their timeout).
	deadline := time.Now().Add(timeout + 2*poll)
	for time.Now().Before(deadline) && ctx.Err() == nil && m.pending() > 0 {
		time.Sleep(poll)
	}
	stopPoll()
	<-polled
	m.giveUp(timeout)
	res.Lost = m.lost
	res.Latency = m.lat.Summary()
	res.Pass = res.Lost == 0 && res.Latency.Count > 0 && res.Latency.P99Ms <= 1500
	return res, nil
}
