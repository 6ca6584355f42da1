package indexer

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"cdp/config"
)

// laneRun is a run of lane.collect driven step by step, with no clock: the
// input is unbuffered, so a send returns once the lane has taken the
// message, and the lane's wait passes only when the test expires it.
type laneRun struct {
	in     chan *sarama.ConsumerMessage
	expiry chan time.Time
	done   chan struct{}
	batch  []*sarama.ConsumerMessage
	open   bool
}

func startCollect(l lane) *laneRun {
	r := &laneRun{in: make(chan *sarama.ConsumerMessage), expiry: make(chan time.Time), done: make(chan struct{})}
	l.in = r.in
	l.newTimer = func(time.Duration) waitTimer { return fakeTimer{r.expiry} }
	go func() {
		defer close(r.done)
		r.batch, r.open = l.collect(context.Background())
	}()
	return r
}

// send hands the lane a message with the key; false when collect has
// returned instead.
func (r *laneRun) send(key string) bool {
	select {
	case r.in <- &sarama.ConsumerMessage{Key: []byte(key)}:
		return true
	case <-r.done:
		return false
	}
}

// sendN sends n messages and returns how many the lane took.
func (r *laneRun) sendN(n int) int {
	for i := range n {
		if !r.send("") {
			return i
		}
	}
	return n
}

// expire lets the lane's wait pass with nothing arriving; false when
// collect has returned instead.
func (r *laneRun) expire() bool {
	select {
	case r.expiry <- time.Time{}:
		return true
	case <-r.done:
		return false
	}
}

func (r *laneRun) result() ([]*sarama.ConsumerMessage, bool) {
	<-r.done
	return r.batch, r.open
}

// fakeTimer fires when the test sends on its channel; Reset and Stop
// change nothing, since only the test decides when a wait has passed.
type fakeTimer struct{ c chan time.Time }

func (f fakeTimer) C() <-chan time.Time    { return f.c }
func (fakeTimer) Reset(time.Duration) bool { return true }
func (fakeTimer) Stop() bool               { return true }

func TestLaneCollect(t *testing.T) {
	byKey := func(m *sarama.ConsumerMessage) []string { return []string{string(m.Key)} }
	tests := []struct {
		name string
		lane lane
		// steps drives the run: sending messages, expiring the wait,
		// closing the input.
		steps    func(r *laneRun)
		want     int
		wantOpen bool
	}{
		{name: "a batch ends when it is full", lane: lane{size: 3},
			steps: func(r *laneRun) { r.sendN(5) }, want: 3, wantOpen: true},
		{name: "a batch ends when the wait has passed", lane: lane{size: 100},
			steps: func(r *laneRun) { r.sendN(2); r.expire() }, want: 2, wantOpen: true},
		{name: "a greedy lane takes what arrives while it waits, like any lane", lane: lane{size: 100, greedy: true},
			steps: func(r *laneRun) { r.sendN(2); r.sendN(5); r.expire(); r.expire() }, want: 7, wantOpen: true},
		{name: "a greedy lane with a backlog takes all of it and returns", lane: lane{size: 100, greedy: true},
			steps: func(r *laneRun) { r.sendN(60); r.expire(); r.expire() }, want: 60, wantOpen: true},
		{name: "a greedy lane still stops at its size", lane: lane{size: 4, greedy: true},
			steps: func(r *laneRun) { r.sendN(2); r.sendN(5) }, want: 4, wantOpen: true},
		{name: "a lane with keys counts distinct keys, not messages", lane: lane{size: 3, keys: byKey},
			steps: func(r *laneRun) {
				for _, k := range []string{"a", "b", "a", "a", "b", "c", "d"} {
					r.send(k)
				}
			}, want: 6, wantOpen: true},
		{name: "a closed input ends the batch and says so", lane: lane{size: 100},
			steps: func(r *laneRun) { r.sendN(2); close(r.in) }, want: 2, wantOpen: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := startCollect(tt.lane)
			tt.steps(r)
			batch, open := r.result()
			if len(batch) != tt.want || open != tt.wantOpen {
				t.Fatalf("collect = %d messages, open %v; want %d, open %v", len(batch), open, tt.want, tt.wantOpen)
			}
		})
	}
}

// A backlog arrives fetch after fetch, with gaps shorter than the wait,
// and lasts past it: a greedy lane goes on past its wait while messages
// keep coming, a plain lane stops at its wait.
func TestAGreedyLaneTakesAStreamWithShortGapsPastItsWait(t *testing.T) {
	for _, tt := range []struct {
		greedy bool
		want   int
	}{{greedy: true, want: 20}, {greedy: false, want: 10}} {
		r := startCollect(lane{size: 1000, greedy: tt.greedy})
		r.sendN(10)
		r.expire() // the wait passes in the middle of the stream
		r.sendN(10)
		r.expire() // then a gap of a whole wait
		if batch, _ := r.result(); len(batch) != tt.want {
			t.Errorf("greedy %v: the lane took %d of 20 messages, want %d", tt.greedy, len(batch), tt.want)
		}
	}
}

func TestAGreedyLaneHeldBackGoesOnPastAGapUntilTheHoldEndsOrRunsOut(t *testing.T) {
	for _, tt := range []struct {
		name    string
		maxHold time.Duration
		want    int
	}{
		{"held while the hold says so", time.Hour, 20},
		{"a hold that has run out holds nothing", 0, 10},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var holding atomic.Bool
			holding.Store(true)
			r := startCollect(lane{size: 1000, greedy: true, hold: holding.Load, maxHold: tt.maxHold})
			r.sendN(10)
			r.expire() // the wait passes
			r.expire() // a gap of a whole wait: held, the lane goes on
			r.sendN(10)
			holding.Store(false)
			r.expire() // the next gap ends the batch
			if batch, _ := r.result(); len(batch) != tt.want {
				t.Errorf("the lane took %d of 20 messages, want %d", len(batch), tt.want)
			}
		})
	}
}

func TestTheBacklogCountsEachPartitionsLatestLagAndEveryMessageTaken(t *testing.T) {
	var b backlog
	b.took("events", 0, 100)
	b.took("events", 0, 40) // a later message of the same partition
	b.took("events", 1, 5)
	b.took("orders", 0, 7)
	if got, _ := b.state(time.Now()); got != 52+4 {
		t.Errorf("total %d, want 56: the latest lags, and the 4 messages being applied", got)
	}
	b.reset()
	if got, _ := b.state(time.Now()); got != 0 {
		t.Errorf("after a new session: total %d, want 0", got)
	}
}

func TestTheBacklogsDrainTimeIsItsSizeOverTheRateOfTheLastTenSeconds(t *testing.T) {
	t0 := time.Unix(1000, 0)
	for _, tt := range []struct {
		name    string
		lag     int64
		batches []appliedBatch
		now     time.Time
		want    time.Duration
	}{
		{"no backlog drains at once", 0, nil, t0, 0},
		{"nothing applied lately never drains", 100, nil, t0, time.Duration(math.MaxInt64)},
		{"1,000 a second drain 5,000 in 5 s", 5000, []appliedBatch{{t0.Add(-8 * time.Second), 5000}, {t0.Add(-2 * time.Second), 5000}}, t0, 5 * time.Second},
		{"batches older than the window do not count", 5000, []appliedBatch{{t0.Add(-11 * time.Second), 90000}, {t0.Add(-1 * time.Second), 10000}}, t0, 5 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := backlog{lag: map[string]int64{"events/0": tt.lag}}
			for _, a := range tt.batches {
				b.done(a.at, a.n)
			}
			if total, got := b.state(tt.now); got != tt.want || total != tt.lag {
				t.Errorf("backlog %d draining in %v, want %d in %v", total, got, tt.lag, tt.want)
			}
		})
	}
}

func TestAGreedyLaneUnderASteadyStreamEndsItsBatchAfterItsLongestGather(t *testing.T) {
	for _, tt := range []struct {
		name string
		hold bool
		want int
	}{
		{"not held: the first message past the gather ends the batch", false, 11},
		{"held: the lane goes on past the gather", true, 20},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var holding atomic.Bool
			holding.Store(tt.hold)
			r := startCollect(lane{size: 1000, greedy: true, maxGather: time.Nanosecond, hold: holding.Load, maxHold: time.Hour})
			r.sendN(10)
			r.expire() // the wait passes: the lane is past its gather
			r.sendN(10)
			holding.Store(false)
			r.expire() // a gap ends the batch, if it has not ended
			if batch, _ := r.result(); len(batch) != tt.want {
				t.Errorf("the lane took %d of 20 messages, want %d", len(batch), tt.want)
			}
		})
	}
}

func TestAHeldLaneEndsItsBatchOnceItsMessagesHoldMaxBytes(t *testing.T) {
	var holding atomic.Bool
	holding.Store(true)
	r := startCollect(lane{size: 1000, greedy: true, hold: holding.Load, maxHold: time.Hour, maxBytes: 50})
	for range 4 {
		r.send("0123456789") // 10 bytes each: under the bound
	}
	r.send("0123456789") // the fifth reaches 50 bytes: the batch ends, held or not
	if r.send("late") {
		t.Fatal("the lane took a message past its byte bound")
	}
	if batch, _ := r.result(); len(batch) != 5 {
		t.Errorf("the lane took %d messages, want the 5 that reach 50 bytes", len(batch))
	}
}

func TestABackfillLastsUntilItsBacklogIsNearlyGoneNotJustUnderItsStartingDrainTime(t *testing.T) {
	ix := &Indexer{cfg: &config.Config{BatchSize: 100, SourceLanes: 2}}
	now := time.Now()
	// 1,000 messages a second over the last ten seconds.
	ix.backlog.done(now.Add(-time.Second), 10_000)
	steps := []struct {
		name string
		lag  int64
		want bool
	}{
		{"a backlog of a few batches is a steady load", 300, false},
		{"20,000 to drain (20 s at the rate) starts a backfill", 20_000, true},
		{"10 s to drain: still in it, though under the 15 s that start one", 10_000, true},
		{"2 s to drain, over a batch: still in it", 2_000, true},
		{"a batch a lane, 0.2 s to drain: over", 200, false},
		{"10 s to drain again does not start another", 10_000, false},
	}
	for _, s := range steps {
		ix.backlog.lag = map[string]int64{"events/0": s.lag}
		if got := ix.behind(); got != s.want {
			t.Errorf("%s: behind() = %v, want %v", s.name, got, s.want)
		}
	}
}

func TestMessagesHandedToALaneCountInTheBacklogUntilTheirBatchIsApplied(t *testing.T) {
	var b backlog
	for range 300 {
		b.took("events", 0, 0) // each the partition's newest
	}
	total := func() int64 { n, _ := b.state(time.Now()); return n }
	if got := total(); got != 300 {
		t.Errorf("total %d with 300 messages being applied, want 300", got)
	}
	b.done(time.Now(), 200)
	if got := total(); got != 100 {
		t.Errorf("total %d after a batch of 200 was applied, want 100", got)
	}
	b.done(time.Now(), 500) // a batch of messages handed before a reset
	if got := total(); got != 0 {
		t.Errorf("total %d, want 0: never below nothing", got)
	}
	b.took("events", 0, 0)
	b.reset()
	if got := total(); got != 0 {
		t.Errorf("total %d after a new session, want 0: it reads them again", got)
	}
}

func TestAHeldLaneMergesItsMarkersAsItGoesAndEndsOnlyAtItsBound(t *testing.T) {
	var holding atomic.Bool
	holding.Store(true)
	r := startCollect(lane{size: 1000, keys: markerKeys, greedy: true, hold: holding.Load, maxHold: time.Hour,
		maxBytes: 2000, compact: compactMarkers, compactBytes: 300})
	send := func(offset int64, cids ...string) bool {
		v, _ := json.Marshal(marker{Customers: cids, Rows: map[string][]string{cids[0]: {"order:" + cids[0] + "-0123456789"}}})
		select {
		case r.in <- &sarama.ConsumerMessage{Topic: "dirty", Partition: 0, Offset: offset, Key: []byte(cids[0]), Value: v}:
			return true
		case <-r.done:
			return false
		}
	}
	// 200 markers of the same 20 customers: some 20,000 bytes as read,
	// ten times the bound, but a few hundred merged.
	for i := range 200 {
		if !send(int64(i), fmt.Sprintf("customer-%02d", i%20), fmt.Sprintf("customer-%02d", (i+1)%20)) {
			t.Fatalf("the lane ended its batch after %d markers: merged, they stay under its bound", i)
		}
	}
	holding.Store(false)
	r.expire()
	r.expire()
	batch, _ := r.result()
	seen := map[string]bool{}
	for _, m := range batch {
		for _, cid := range markerKeys(m) {
			seen[cid] = true
		}
	}
	// A marker is some 90 bytes: at most 300 bytes of them since the
	// last merge.
	if len(batch) > 5 || !compacted(batch[0]) || len(seen) != 20 {
		t.Errorf("the batch holds %d messages naming %d customers, want a merged one and the few read since, naming all 20", len(batch), len(seen))
	}
	if got := markedOffsets(batch)[topicPartition{"dirty", 0}]; got != 200 {
		t.Errorf("the batch commits offset %d, want 200 (after the last marker)", got)
	}
}
