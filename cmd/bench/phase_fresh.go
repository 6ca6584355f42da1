package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
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

// FreshnessResult is how soon a change is visible under load: a marker
// event in the events view and, what users see, a trait change and a paid
// order in a search of the customers alias.
type FreshnessResult struct {
	Load LoadStats `json:"load"`
	// Breakdown is where the indexer's time went while the markers ran.
	Breakdown    []TimeShare `json:"breakdown,omitempty"`
	MarkerRate   float64     `json:"marker_rate_per_sec"` // of each kind
	PollInterval float64     `json:"poll_interval_ms"`
	TimeoutSec   float64     `json:"timeout_seconds"`
	// Markers has one row per kind: event, trait, order.
	Markers []MarkerResult `json:"markers"`
	// Latency, Lost and Pass are the event markers' row again, under the
	// names results before the customer-view markers used.
	Latency Summary `json:"event_to_searchable"`
	Lost    int     `json:"markers_not_seen"`
	Pass    bool    `json:"goal_pass"`
}

// MarkerResult is the latency of one kind of marker, from its scheduled
// send time until a search of its view first shows it.
type MarkerResult struct {
	Kind    string  `json:"kind"`
	Change  string  `json:"change"` // what the marker changes
	View    string  `json:"view"`   // the alias polled
	Latency Summary `json:"latency"`
	Lost    int     `json:"lost"`
	Pass    bool    `json:"goal_pass"`
}

// The freshness goal of issue 12, for every kind of marker.
const (
	freshP99GoalMs = 1500
	freshP50GoalMs = 1000
)

// freshGoal: p99 within freshP99GoalMs (p95, when there are fewer than
// minP99Samples markers) and p50 within freshP50GoalMs, nothing lost.
func freshGoal(s Summary, lost int) bool {
	return lost == 0 && s.Count > 0 && judgedAt(s).of(s) <= freshP99GoalMs && s.P50Ms <= freshP50GoalMs
}

// markerRows is r.Markers, or for results written before there were kinds
// the one row of event markers.
func (r FreshnessResult) markerRows() []MarkerResult {
	if len(r.Markers) > 0 || r.Latency.Count == 0 {
		return r.Markers
	}
	return []MarkerResult{{Kind: "event", Change: "a track event", View: "events", Latency: r.Latency, Lost: r.Lost, Pass: r.Pass}}
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

// markerWatch is the markers of one kind produced and not yet seen, and
// the latencies of those seen (or given up on). find says which of the
// given marker ids a search of the kind's view shows now.
type markerWatch struct {
	find func(ctx context.Context, ids []string) ([]string, error)

	mu          sync.Mutex
	outstanding map[string]time.Time // marker id → due time
	lat         Samples
	lost        int
}

func newMarkerWatch(find func(ctx context.Context, ids []string) ([]string, error)) *markerWatch {
	return &markerWatch{find: find, outstanding: map[string]time.Time{}}
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

// poll searches for the outstanding markers every poll until ctx ends.
func (m *markerWatch) poll(ctx context.Context, poll, timeout time.Duration) {
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m.pollOnce(ctx, timeout)
	}
}

// pollOnce searches once: a marker found counts its latency until the
// answer came, one older than timeout is lost.
func (m *markerWatch) pollOnce(ctx context.Context, timeout time.Duration) {
	m.mu.Lock()
	ids := make([]string, 0, len(m.outstanding))
	for id := range m.outstanding {
		ids = append(ids, id)
	}
	m.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	found, err := m.find(ctx, ids)
	seen := time.Now()
	if err != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range found {
		if due, ok := m.outstanding[id]; ok {
			m.lat.Add(seen.Sub(due))
			delete(m.outstanding, id)
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

// markerKind is one kind of marker: what it changes, the view it must
// show up in, and how marker i (due at due) is made.
type markerKind struct {
	name, change, view string
	watch              *markerWatch
	// make returns marker i's id and its Kafka message.
	make func(i int, due time.Time) (string, kmsg)
}

// eventMarkers are track events of customers of live, found by id in the
// events view.
func eventMarkers(os endpoint, events string, live []string, n int, runID string) *markerKind {
	r := rand.New(rand.NewPCG(7, 11))
	users := make([]string, n)
	for i := range users {
		users[i] = live[r.IntN(len(live))]
	}
	return &markerKind{name: "event", change: "a track event", view: "events",
		watch: newMarkerWatch(func(ctx context.Context, ids []string) ([]string, error) {
			var resp store.SearchResult
			err := os.json(ctx, http.MethodPost, "/"+events+"/_search", map[string]any{
				"size": len(ids), "_source": false, "query": map[string]any{"ids": map[string]any{"values": ids}},
			}, &resp)
			found := make([]string, len(resp.Hits))
			for i, h := range resp.Hits {
				found[i] = h.ID
			}
			return found, err
		}),
		make: func(i int, due time.Time) (string, kmsg) {
			id := fmt.Sprintf("bench-marker-%s-%d", runID, i)
			e := &workload.Event{Type: "track", Name: "bench_marker", MessageID: id, Timestamp: due.UTC().Truncate(time.Millisecond),
				UserID: users[i], Properties: map[string]any{"seq": float64(i)}, Channel: "web"}
			msg := workload.EventMessage(e)
			return id, kmsg{indexer.TopicEvents, msg.Key, msg.Value}
		}}
}

// markerTrait is the trait the trait markers set: one the dataset's
// identify events set too, so its field is mapped before the markers come.
const markerTrait = "vip_card"

// traitMarkers are identify events, each giving a customer of cs a unique
// value of markerTrait, found when the customer's document in the
// customers alias holds it.
func traitMarkers(os endpoint, customersAlias string, cs []markerCustomer, runID string) *markerKind {
	value := func(i int) string { return fmt.Sprintf("FRESH-%s-%d", runID, i) }
	want := map[string]string{} // crm id → the value its marker sets
	for i, c := range cs {
		want[c.crmID] = value(i)
	}
	return &markerKind{name: "trait", change: "an identify trait (attrs." + markerTrait + ")", view: "customers",
		watch: newMarkerWatch(customerProbe(os, customersAlias, cs, "attrs."+markerTrait, func(crm string, got any) bool {
			return got == want[crm]
		})),
		make: func(i int, due time.Time) (string, kmsg) {
			c := cs[i]
			e := &workload.Event{Type: "identify", MessageID: fmt.Sprintf("bench-trait-%s-%d", runID, i), Timestamp: due.UTC().Truncate(time.Millisecond),
				UserID: c.crmID, Traits: map[string]any{markerTrait: value(i)}, Channel: "app"}
			msg := workload.EventMessage(e)
			return c.crmID, kmsg{indexer.TopicEvents, msg.Key, msg.Value}
		}}
}

// orderMarkers are CDC creates of paid orders, each for a customer of cs
// whose spend is known, found when the customer's metrics.total_spend in
// the customers alias has grown by the order's amount.
func orderMarkers(os endpoint, customersAlias string, cs []markerCustomer, runID string) *markerKind {
	amount := func(i int) int64 { return 1000 + int64(i) } // cents: every marker its own total
	want := map[string]float64{}
	for i, c := range cs {
		want[c.crmID] = float64(c.spendCents+amount(i)) / 100
	}
	return &markerKind{name: "order", change: "a paid order (metrics.total_spend)", view: "customers",
		watch: newMarkerWatch(customerProbe(os, customersAlias, cs, "metrics.total_spend", func(crm string, got any) bool {
			f, ok := got.(float64)
			return ok && math.Abs(f-want[crm]) < 0.005
		})),
		make: func(i int, due time.Time) (string, kmsg) {
			c := cs[i]
			at := due.UTC().Truncate(time.Millisecond)
			ch := &workload.Change{Table: workload.TableOrders, Key: strconv.Itoa(markerOrderBase + 1 + i), Op: "c",
				LSN: markerLSN + markerLSNSpan + int64(i), TsMs: at.UnixMilli(),
				Order: &workload.OrderRow{CustomerID: c.crmID, OrderNo: fmt.Sprintf("FRESH-%s-%d", runID, i), StoreID: "s-01", Status: "paid",
					TotalCents: amount(i), CreatedAt: at, PaidAt: at}}
			return c.crmID, kmsg{indexer.TopicOrders, []byte(ch.Key), workload.ChangeValue(ch)}
		}}
}

// Marker customers live in key spaces of their own, far above the
// dataset's (workload.DatasetKeySpan apart per chunk), so that neither the
// dataset nor the background load (updates of the dataset's rows) touches
// them: their documents change only by the markers, so what a marker must
// make visible is known.
const (
	markerCustomerBase = 1_900_000_000
	markerOrderBase    = 1_900_000_000       // orders are a table of their own
	markerLSN          = 100_000_000_000_000 // past every position of the dataset and the load
	markerLSNSpan      = 10_000_000          // the prepared rows' positions, then the markers'
	markerSpendCents   = 10_000              // each marker customer's one paid order before the markers
)

// markerCustomer is a CRM customer the bench made for the markers: its
// crm id, its document id once indexed, and its spend before the markers.
type markerCustomer struct {
	crmID, docID string
	spendCents   int64
}

// customerProbe finds, among the customers of cs named by ids (crm ids),
// those whose document in the customers alias has a field whose value
// matches says.
func customerProbe(os endpoint, customersAlias string, cs []markerCustomer, field string, matches func(crm string, v any) bool) func(context.Context, []string) ([]string, error) {
	docOf, crmOf := map[string]string{}, map[string]string{}
	for _, c := range cs {
		docOf[c.crmID], crmOf[c.docID] = c.docID, c.crmID
	}
	return func(ctx context.Context, ids []string) ([]string, error) {
		docs := make([]string, len(ids))
		for i, id := range ids {
			docs[i] = docOf[id]
		}
		var resp store.SearchResult
		if err := os.json(ctx, http.MethodPost, "/"+customersAlias+"/_search", map[string]any{
			"size": len(docs), "_source": []string{field}, "query": map[string]any{"ids": map[string]any{"values": docs}},
		}, &resp); err != nil {
			return nil, err
		}
		var found []string
		for _, h := range resp.Hits {
			var src map[string]any
			if json.Unmarshal(h.Source, &src) != nil {
				continue
			}
			if crm := crmOf[h.ID]; crm != "" && matches(crm, pathValue(src, field)) {
				found = append(found, crm)
			}
		}
		return found, nil
	}
}

// pathValue is the value at a dotted path of a decoded document, nil when
// missing.
func pathValue(doc map[string]any, path string) any {
	var v any = doc
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// preOrderAge is how old a marker customer's first order is: older than
// the hour windows of the membership phase's definitions, so that the
// only order in a window is the one a marker places (dated now, the first
// order kept a customer of the time-driven sweep in the window for an
// hour past the edge its own order set, and no exit could come).
const preOrderAge = 2 * time.Hour

// prepareMarkerCustomers produces n CRM customers of the bench's own, each
// with one paid order of markerSpendCents (placed preOrderAge ago), and waits until every one is in
// the customers alias with that spend, so that the markers change
// existing customers whose spend is known. It runs before the background
// load starts. first numbers them: the customers of two calls are apart
// when their ranges [first, first+n) are.
func prepareMarkerCustomers(ctx context.Context, os endpoint, customersAlias string, prod *producer, first, n int, runID string, now time.Time) ([]markerCustomer, error) {
	cs := make([]markerCustomer, n)
	at := now.UTC().Truncate(time.Second)
	for i := range cs {
		key := strconv.Itoa(markerCustomerBase + first + i)
		cs[i] = markerCustomer{crmID: key, spendCents: markerSpendCents}
		cust := &workload.Change{Table: workload.TableCustomers, Key: key, Op: "c", LSN: markerLSN + int64(first+i), TsMs: at.UnixMilli(),
			Customer: &workload.CustomerRow{Name: fmt.Sprintf("Fresh %d", i), City: "上海", MemberLevel: "silver", StoreID: "s-01",
				CreatedAt: at, UpdatedAt: at}}
		prod.send(kmsg{indexer.TopicCustomers, []byte(key), workload.ChangeValue(cust)})
		okey := strconv.Itoa(markerOrderBase - first - n + i) // below the markers' own order keys
		placed := at.Add(-preOrderAge)
		ord := &workload.Change{Table: workload.TableOrders, Key: okey, Op: "c", LSN: markerLSN + int64(first+i), TsMs: at.UnixMilli(),
			Order: &workload.OrderRow{CustomerID: key, OrderNo: fmt.Sprintf("FRESH-%s-pre-%d", runID, first+i), StoreID: "s-01", Status: "paid",
				TotalCents: markerSpendCents, CreatedAt: placed, PaidAt: placed}}
		prod.send(kmsg{indexer.TopicOrders, []byte(okey), workload.ChangeValue(ord)})
	}
	crms := make([]string, n)
	byCRM := map[string]int{}
	for i, c := range cs {
		crms[i], byCRM[c.crmID] = c.crmID, i
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var resp store.SearchResult
		err := os.json(ctx, http.MethodPost, "/"+customersAlias+"/_search", map[string]any{
			"size": n, "_source": []string{"identities", "metrics.total_spend"},
			"query": map[string]any{"nested": map[string]any{"path": "identities", "query": map[string]any{"bool": map[string]any{"filter": []any{
				map[string]any{"term": map[string]any{"identities.type": "crm_id"}},
				map[string]any{"terms": map[string]any{"identities.value": crms}},
			}}}}},
		}, &resp)
		ready := 0
		for _, h := range resp.Hits {
			var src struct {
				Identities []struct{ Type, Value string }
				Metrics    struct {
					TotalSpend float64 `json:"total_spend"`
				}
			}
			if json.Unmarshal(h.Source, &src) != nil {
				continue
			}
			for _, id := range src.Identities {
				if i, ok := byCRM[id.Value]; ok && id.Type == "crm_id" && math.Abs(src.Metrics.TotalSpend*100-markerSpendCents) < 0.5 {
					cs[i].docID = h.ID
					ready++
				}
			}
		}
		if err == nil && ready == n {
			return cs, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("marker customers: %d of %d searchable with their spend after 2 minutes (%v)", ready, n, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// produceMarkers sends n markers of each kind open-loop, the kinds taking
// turns at rate×len(kinds) in all, and records each in its kind's watch
// before it is sent.
func produceMarkers(ctx context.Context, kinds []*markerKind, prod *producer, rate float64, n int) {
	k := len(kinds)
	OpenLoop{Rate: rate * float64(k), N: n * k}.Run(ctx, func(i int, due time.Time) {
		kind := kinds[i%k]
		id, msg := kind.make(i/k, due)
		kind.watch.sent(id, due)
		prod.send(msg)
	})
}

// runFreshness produces markers of every kind at a fixed rate each
// (open-loop) while the load runs, and polls each kind's view for them; a
// marker's latency is from its due time until a search first shows it.
// cs are the marker customers (prepareMarkerCustomers), at least 2n for n
// markers of each kind.
func runFreshness(ctx context.Context, os endpoint, customersAlias, events string, prod *producer, live []string, cs []markerCustomer,
	rate float64, dur, poll, timeout time.Duration, runID string) (FreshnessResult, error) {
	res := FreshnessResult{MarkerRate: rate, PollInterval: float64(poll) / float64(time.Millisecond), TimeoutSec: timeout.Seconds()}
	n := markersPerKind(rate, dur)
	if len(cs) < 2*n {
		return res, fmt.Errorf("%d marker customers for %d markers of each kind", len(cs), n)
	}
	kinds := []*markerKind{
		eventMarkers(os, events, live, n, runID),
		traitMarkers(os, customersAlias, cs[:n], runID),
		orderMarkers(os, customersAlias, cs[n:2*n], runID),
	}
	pollCtx, stopPoll := context.WithCancel(ctx)
	var polled sync.WaitGroup
	for _, k := range kinds {
		polled.Add(1)
		go func() {
			defer polled.Done()
			k.watch.poll(pollCtx, poll, timeout)
		}()
	}
	produceMarkers(ctx, kinds, prod, rate, n)
	// Wait for the last markers (or their timeout).
	pending := func() (p int) {
		for _, k := range kinds {
			p += k.watch.pending()
		}
		return p
	}
	deadline := time.Now().Add(timeout + 2*poll)
	for time.Now().Before(deadline) && ctx.Err() == nil && pending() > 0 {
		time.Sleep(poll)
	}
	stopPoll()
	polled.Wait()
	for _, k := range kinds {
		k.watch.giveUp(timeout)
		mr := MarkerResult{Kind: k.name, Change: k.change, View: k.view, Latency: k.watch.lat.Summary(), Lost: k.watch.lost}
		mr.Pass = freshGoal(mr.Latency, mr.Lost)
		res.Markers = append(res.Markers, mr)
	}
	ev := res.Markers[0]
	res.Latency, res.Lost, res.Pass = ev.Latency, ev.Lost, ev.Pass
	return res, nil
}

// markersPerKind is how many markers of each kind a run of dur at rate
// sends.
func markersPerKind(rate float64, dur time.Duration) int { return int(rate * dur.Seconds()) }
