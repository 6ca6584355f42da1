package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"cdp/indexer"
	"cdp/testing/workload"
	"cdp/wire"
)

func msd(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func TestPercentileIsNearestRank(t *testing.T) {
	var v []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose: Summarize sorts
		v = append(v, msd(i))
	}
	s := Summarize(v)
	if s.Count != 100 || s.P50Ms != 50 || s.P90Ms != 90 || s.P99Ms != 99 || s.P999Ms != 100 || s.MaxMs != 100 || s.MeanMs != 50.5 {
		t.Fatalf("summary of 1..100 ms: %+v", s)
	}
	for _, c := range []struct {
		samples []int
		p       float64
		want    int
	}{
		{[]int{7}, 50, 7}, {[]int{7}, 99, 7},
		{[]int{1, 2}, 50, 1}, {[]int{1, 2}, 51, 2},
		{[]int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 99, 10}, // 10 samples: p99 is the maximum
		{[]int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0, 1},
	} {
		sorted := make([]time.Duration, len(c.samples))
		for i, x := range c.samples {
			sorted[i] = msd(x)
		}
		if got := Percentile(sorted, c.p); got != msd(c.want) {
			t.Errorf("p%v of %v = %v, want %dms", c.p, c.samples, got, c.want)
		}
	}
	if got := Percentile(nil, 99); got != 0 {
		t.Errorf("p99 of nothing = %v", got)
	}
	var s2 Samples
	s2.Add(msd(3))
	s2.Fail(nil)
	if sum := s2.Summary(); sum.Count != 1 || sum.Errors != 1 || sum.P99Ms != 3 {
		t.Errorf("samples summary: %+v", sum)
	}
}

// The timetable is computed from the start and the rate, never from when
// earlier requests were sent or answered.
func TestOpenLoopTimetable(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	var slept []time.Time
	got := map[int]time.Time{}
	OpenLoop{Rate: 400, N: 1000,
		Now:   func() time.Time { return start },
		Sleep: func(_ context.Context, t time.Time) { mu.Lock(); slept = append(slept, t); mu.Unlock() },
	}.Run(context.Background(), func(i int, due time.Time) { mu.Lock(); got[i] = due; mu.Unlock() })
	if len(got) != 1000 || len(slept) != 1000 {
		t.Fatalf("%d requests, %d sleeps; want 1000", len(got), len(slept))
	}
	for i := 0; i < 1000; i++ {
		want := start.Add(time.Duration(i) * 2500 * time.Microsecond)
		if !got[i].Equal(want) || !slept[i].Equal(want) {
			t.Fatalf("request %d due %v (slept until %v), want %v", i, got[i].Sub(start), slept[i].Sub(start), want.Sub(start))
		}
	}
}

// A request that is never answered does not hold back the ones behind it.
func TestOpenLoopDoesNotWaitForAnswers(t *testing.T) {
	const n = 50
	release := make(chan struct{})
	done := make(chan struct{})
	go func() {
		OpenLoop{Rate: 1000, N: n}.Run(context.Background(), func(i int, _ time.Time) {
			switch i {
			case 0:
				<-release // answered only once the last request was sent
			case n - 1:
				close(release)
			}
		})
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the open loop waited for an answer before sending the next request")
	}
}

// When the server keeps up with less than the offered rate, the queueing
// shows in the latencies, which are measured from the due times.
func TestOpenLoopQueueingShowsInLatency(t *testing.T) {
	const n = 20
	lat := make([]time.Duration, n)
	OpenLoop{Rate: 1000, N: n, MaxInFlight: 1}.Run(context.Background(), func(i int, due time.Time) {
		time.Sleep(5 * time.Millisecond) // a server of one that takes 5 ms; a request is due every 1 ms
		lat[i] = time.Since(due)
	})
	// Request 19 is due at 19 ms but cannot start before 19 × 5 ms.
	if lat[n-1] < 70*time.Millisecond || lat[n-1] <= lat[0] {
		t.Fatalf("latencies do not show the queue: first %v, last %v", lat[0], lat[n-1])
	}
}

func TestOpenLoopStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	calls := 0
	OpenLoop{Rate: 1000, N: 1_000_000}.Run(ctx, func(int, time.Time) {
		mu.Lock()
		calls++
		if calls == 10 {
			cancel()
		}
		mu.Unlock()
	})
	mu.Lock()
	defer mu.Unlock()
	if calls > 1000 {
		t.Fatalf("%d calls after cancel", calls)
	}
}

func TestPacer(t *testing.T) {
	t0 := time.Unix(0, 0)
	p := NewPacer(1000, t0)
	for _, c := range []struct {
		at   time.Duration
		want int
	}{{0, 0}, {msd(10), 10}, {msd(10), 0}, {msd(25), 15}, {msd(24), 0}, {time.Second, 975}} {
		if got := p.Take(t0.Add(c.at)); got != c.want {
			t.Errorf("Take at %v = %d, want %d", c.at, got, c.want)
		}
	}
}

func TestRateFor(t *testing.T) {
	tune := queryTuning{Util: 0.5, MaxRate: 100, Duration: 4 * time.Second, MinN: 50, MaxN: 300}
	for _, c := range []struct {
		means []time.Duration
		rate  float64
		n     int
	}{
		{[]time.Duration{msd(10), msd(10)}, 25, 100},       // 0.5 / 20 ms
		{[]time.Duration{msd(1), msd(1)}, 100, 300},        // capped by MaxRate, then MaxN
		{[]time.Duration{msd(100), msd(150)}, 2, 50},       // slow: at least MinN
		{[]time.Duration{0, 0}, 100, 300},                  // too fast to measure
		{[]time.Duration{msd(2), msd(3), msd(5)}, 50, 200}, // five-target style
	} {
		rate, n := tune.rateFor(c.means...)
		if rate != c.rate || n != c.n {
			t.Errorf("rateFor(%v) = %v/s × %d, want %v/s × %d", c.means, rate, n, c.rate, c.n)
		}
	}
}

func TestLatencyGoal(t *testing.T) {
	direct := Summary{Count: 1000, P95Ms: 10, P99Ms: 20}
	for _, c := range []struct {
		api  Summary
		want bool
	}{
		{Summary{Count: 1000, P99Ms: 22}, true}, // 1.05 × 20 + 1 = 22
		{Summary{Count: 1000, P99Ms: 22.01}, false},
		{Summary{Count: 1000, P99Ms: 5}, true},
		{Summary{Count: 1000, P99Ms: 5, Errors: 1}, false}, // a failed request fails the goal
		{Summary{}, false},
	} {
		if got := latencyGoal(c.api, direct); got != c.want {
			t.Errorf("latencyGoal(%+v) = %v", c.api, got)
		}
	}
}

func TestAP99IsJudgedOnlyFromAThousandSamplesOfEverySeriesCompared(t *testing.T) {
	for _, c := range []struct {
		name   string
		series []Summary
		want   judged
		label  string
	}{
		{"a thousand samples", []Summary{{Count: 1000}}, judged{99, 1000}, "p99"},
		{"one short of a thousand", []Summary{{Count: 999}}, judged{95, 999}, "p95 (n=999, fewer than 1,000 samples)"},
		{"the fewer of two series counts", []Summary{{Count: 5000}, {Count: 200}}, judged{95, 200}, "p95 (n=200, fewer than 1,000 samples)"},
		{"both series large enough", []Summary{{Count: 1200}, {Count: 1000}}, judged{99, 1000}, "p99"},
		{"no samples", []Summary{{}}, judged{95, 0}, "p95 (n=0, fewer than 1,000 samples)"},
	} {
		j := judgedAt(c.series...)
		if j != c.want || j.String() != c.label {
			t.Errorf("%s: judgedAt = %+v %q, want %+v %q", c.name, j, j, c.want, c.label)
		}
	}
}

// Each latency goal is judged at p95 below 1,000 samples: there a p99 over
// the limit does not fail it and a p95 over the limit does; from 1,000
// samples on the p99 decides.
func TestLatencyGoalsAreJudgedAtP95BelowAThousandSamples(t *testing.T) {
	// p95 within every limit below, p99 over every one.
	lat := func(n int) Summary { return Summary{Count: n, P50Ms: 100, P95Ms: 150, P99Ms: 5000} }
	slow95 := func(n int) Summary { return Summary{Count: n, P50Ms: 100, P95Ms: 4000, P99Ms: 5000} }
	direct := func(n int) Summary { return Summary{Count: n, P50Ms: 100, P95Ms: 150, P99Ms: 150} }
	base := func(n int) RampStep { return RampStep{Conns: 10, Admitted: Summary{Count: n, P95Ms: 100, P99Ms: 100}} }
	step := func(s Summary) RampStep { return RampStep{Conns: 500, Admitted: s} }
	rampOK := func(b RampStep, s RampStep) bool { ok, _, _ := rampStepLatency(b, s); return ok }
	for _, c := range []struct {
		name string
		pass bool
		want bool
	}{
		{"API latency, 999 samples, p99 over, p95 within", latencyGoal(lat(999), direct(999)), true},
		{"API latency, 999 samples, p95 over", latencyGoal(slow95(999), direct(999)), false},
		{"API latency, 1,000 samples, p99 over", latencyGoal(lat(1000), direct(1000)), false},
		{"API latency, 1,000 API samples but 999 direct", latencyGoal(lat(1000), direct(999)), true},
		{"freshness, 999 markers, p99 over, p95 within", freshGoal(lat(999), 0), true},
		{"freshness, 999 markers, p95 over", freshGoal(slow95(999), 0), false},
		{"freshness, 1,000 markers, p99 over", freshGoal(lat(1000), 0), false},
		{"ramp step, 999 admitted, p99 over, p95 within", rampOK(base(1000), step(lat(999))), true},
		{"ramp step, 999 admitted, p95 over", rampOK(base(1000), step(slow95(999))), false},
		{"ramp step, 1,000 admitted, p99 over", rampOK(base(1000), step(lat(1000))), false},
	} {
		if c.pass != c.want {
			t.Errorf("%s: pass = %v, want %v", c.name, c.pass, c.want)
		}
	}
}

// The direct query sorts as api/search.go's sortClause does.
func TestRawSortMatchesTheAPI(t *testing.T) {
	b, _ := json.Marshal(rawSort([]sortSpec{{"metrics.total_spend", "desc"}}))
	want := `[{"metrics.total_spend":{"missing":"_last","order":"desc","unmapped_type":"keyword"}},{"customer_id":"asc"}]`
	if string(b) != want {
		t.Fatalf("rawSort = %s\nwant     %s", b, want)
	}
	b, _ = json.Marshal(rawSort(nil))
	if string(b) != `[{"customer_id":"asc"}]` {
		t.Fatalf("default sort = %s", b)
	}
}

func TestShapesAreValidAndNamedOnce(t *testing.T) {
	if len(shapes) < 10 {
		t.Fatalf("%d shapes, the issue asks for at least 10", len(shapes))
	}
	seen := map[string]bool{}
	for _, s := range shapes {
		if seen[s.Name] {
			t.Errorf("shape %q twice", s.Name)
		}
		seen[s.Name] = true
		var v map[string]any
		if err := json.Unmarshal(s.Filter, &v); err != nil || len(v) == 0 {
			t.Errorf("shape %q: filter %s is not a JSON object", s.Name, s.Filter)
		}
	}
}

func sampleReport() *Report {
	r := &Report{Command: "make bench-quick", Seconds: 120,
		Machine:  Machine{NProc: 2, MemoryGiB: 23.5, CPUModel: "Test CPU", OpenSearchVersion: "opensearch 3.6.0", KafkaVersion: "4.3.1", Date: "2026-11-23T00:00:00Z"},
		Settings: Settings{Customers: 10000, Seed: 1, QueryUtil: 0.5},
		Indexing: IndexingResult{Changes: 1000, CustomerDocs: 100, EventDocs: 900, IndexerSeconds: 10, IndexerCustomerDocsSec: 10, RawSeconds: 9,
			RawCustomerDocsSec: 11.1, Ratio: 0.9, RawDocs: 1000,
			State:     []StateIndex{{Index: "p-rows-v1", Copy: "p-rawstate-rows", Docs: 3000}, {Index: "p-identities-v1", Copy: "p-rawstate-identities", Docs: 200}},
			StateDocs: 4200, StateSeconds: 20, StateCustomerDocsSec: 5, StateChangesSec: 50, StateDocsSec: 210, StateRatio: 2},
		Freshness: FreshnessResult{Markers: []MarkerResult{
			{Kind: "event", Change: "a track event", View: "events", Latency: Summary{Count: 1000, P50Ms: 600, P95Ms: 1000, P99Ms: 1400}, Pass: true},
			{Kind: "trait", Change: "an identify trait", View: "customers", Latency: Summary{Count: 100, P50Ms: 900, P95Ms: 1200, P99Ms: 1450}, Pass: true},
			{Kind: "order", Change: "a paid order", View: "customers", Latency: Summary{Count: 100, P50Ms: 1100, P95Ms: 1300, P99Ms: 1450}, Lost: 0, Pass: false},
		}},
		Queries: []QueryResult{
			{Shape: "term", Condition: "idle", API: Summary{Count: 1000, P50Ms: 3, P95Ms: 6, P99Ms: 9}, Direct: Summary{Count: 1000, P50Ms: 2, P95Ms: 5, P99Ms: 8}, Pass: true},
			{Shape: "deep mix", Condition: "indexing", API: Summary{Count: 200, P95Ms: 25, P99Ms: 30}, Direct: Summary{Count: 200, P95Ms: 9, P99Ms: 10}, Pass: false},
		},
		Lookups: LookupResult{PassByID: true, PassByPhone: true, ByID: Summary{Count: 150}, RawGetEvents: Summary{Count: 150},
			ByPhone: Summary{Count: 150}, RawPhoneEvents: Summary{Count: 150}},
		Export: ExportResult{APIDocs: 800, RawDocs: 1000, Ratio: 0.8, Pass: false},
		Memory: []PhaseMemory{
			{Phase: "indexing", IndexerRSSMiB: 100, APIRSSMiB: 30, IndexerHWMMiB: 120, APIHWMMiB: 31, HWMIsPhasePeak: true},
			{Phase: "queries", IndexerRSSMiB: 50, APIRSSMiB: 60, IndexerHWMMiB: 300, HWMIsPhasePeak: false},
		},
		Ramp: RampResult{Mix: []string{"search", "count"}, Steps: []RampStep{
			{Conns: 10, Requests: 1000, Admitted: Summary{Count: 1000, P50Ms: 20, P95Ms: 45, P99Ms: 50}, APIPeakRSSMiB: 40},
			{Conns: 500, Requests: 3000, Admitted: Summary{Count: 900, P50Ms: 40, P95Ms: 91, P99Ms: 101}, Status429: 2100, Share429Pct: 70, APIPeakRSSMiB: 90},
		}},
	}
	r.computeGoals()
	return r
}

func TestGoals(t *testing.T) {
	r := sampleReport()
	want := map[string]bool{"indexing throughput": true, "event-to-searchable": true,
		"trait change visible in customers": true, "order change visible in customers": false, "API latency": false, "preview latency": false, "export throughput": false, "memory": true,
		"overload latency": false, "overload memory": true} // 900 admitted at 500: p95 91 ms > 2 × 45 ms; the sample has no preview shape
	if len(r.Goals) != len(want) {
		t.Fatalf("%d goals: %+v", len(r.Goals), r.Goals)
	}
	for _, g := range r.Goals {
		if w, ok := want[g.Name]; !ok || g.Pass != w {
			t.Errorf("goal %q pass = %v, want %v (%s)", g.Name, g.Pass, w, g.Actual)
		}
	}
	if !strings.Contains(r.Goals[4].Actual, "deep mix (indexing)") {
		t.Errorf("API latency goal does not name the failing shape: %s", r.Goals[4].Actual)
	}
	// A per-phase VmHWM counts only where it was reset at the phase start.
	if got := peakOf(r.Memory, "index"); got != 120 {
		t.Errorf("indexer peak %v, want 120", got)
	}
	if got := peakOf(r.Memory, "serve"); got != 60 {
		t.Errorf("API peak %v, want 60", got)
	}
}

func TestMarkdown(t *testing.T) {
	r := sampleReport()
	var b bytes.Buffer
	r.Markdown(&b, "out/bench-x.json")
	md := b.String()
	for _, want := range []string{
		"# Benchmarks",
		"`make bench-quick`",
		"2 CPUs (Test CPU), 23.5 GiB memory",
		"opensearch 3.6.0, Kafka 4.3.1",
		"| goal | target | measured | result |",
		"| indexing throughput | indexer ≥ 0.85 × raw _bulk (customer docs/s) | 0.900 (10 vs 11 customer docs/s) | **PASS** |\n" +
			"| indexing vs raw with the design's state | informational: indexer ÷ raw _bulk of the final documents and the design's state (customer docs/s) | 2.000 (10 vs 5 customer docs/s; raw with state ÷ raw alone 0.450) | info |",
		"| raw `_bulk` of the final documents | 9.0 | 1000 | 11 | 0 | 0 |",
		"| raw `_bulk` of the final documents and the design's state | 20.0 | 4200 | 5 | 50 | 210 |\n" +
			"| ratio (indexer / raw with the state; informational) |  |  | 2.00 | 2.00 |  |",
		"`p-rows-v1` 3000, `p-identities-v1` 200 documents",
		"| export throughput |",
		"**FAIL**",
		"| term | idle | 0 | 0.0 | 1000 | 3.00 | 6.00 | 9.00 | 2.00 | 5.00 | 8.00 | 0.00 | 0.00 | 0 / 0 | p99 | PASS |",
		"| deep mix | indexing | 0 | 0.0 | 200 | 0.00 | 25.00 | 30.00 | 0.00 | 9.00 | 10.00 | 0.00 | 0.00 | 0 / 0 | p95 (n=200, fewer than 1,000 samples) | FAIL |",
		"| API latency | API p99 ≤ 1.05 × direct p99 + 1 ms (every query shape and 360 lookup; p95 where there are fewer than 1,000 samples) | 3 of 4 pass; failing: deep mix (indexing); judged at p95 (n=150–200, fewer than 1,000 samples) for 3 of 4 | **FAIL** |",
		"| event-to-searchable | a track event in the events alias: p99 ≤ 1.5 s (p95 below 1,000 markers), p50 ≤ 1.0 s, at half the indexer's maximum | p99 1400 ms (p50 600 ms, 0 lost) | **PASS** |",
		"| trait change visible in customers | an identify trait in the customers alias: p99 ≤ 1.5 s (p95 below 1,000 markers), p50 ≤ 1.0 s, at half the indexer's maximum | p95 (n=100, fewer than 1,000 samples) 1200 ms (p99 1450 ms, p50 900 ms, 0 lost) | **PASS** |",
		"| queries | 0 | 50 | n/a |",
		"| order | a paid order | customers | 100 | 1100 | 0 | 1300 | 1450 | 0 | 0 | p95 (n=100, fewer than 1,000 samples) | FAIL |",
		"| event | a track event | events | 1000 | 600 | 0 | 1000 | 1400 | 0 | 0 | p99 | PASS |",
		"| PASS vs GET + events, at p95 (n=150, fewer than 1,000 samples) |",
		"## 6. Load ramp",
		"| 10 | 0 | 0 | 1000 | 20.0 | 45.0 | 50.0 | 0.0 | 0.0 | 0 | 0 (0) | 40 | p99 ≤ 100 ms: PASS |",
		"| 500 | 0 | 0 | 900 | 40.0 | 91.0 | 101.0 | 70.0 | 0.0 | 0 | 0 (0) | 90 | p95 (n=900, fewer than 1,000 samples) ≤ 90 ms: FAIL |",
		"out/bench-x.json",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q\n%s", want, md)
		}
	}
	// Every table row has as many cells as its header.
	var cols int
	for _, line := range strings.Split(md, "\n") {
		if !strings.HasPrefix(line, "|") {
			cols = 0
			continue
		}
		n := strings.Count(strings.ReplaceAll(line, `\|`, ""), "|")
		if cols == 0 {
			cols = n
		} else if n != cols {
			t.Errorf("row with %d separators under a header of %d: %s", n, cols, line)
		}
	}
	lines := r.summaryLines()
	if len(lines) != 2+len(r.Freshness.Markers)+len(r.Queries)+4+len(r.Ramp.Steps) {
		t.Errorf("%d summary lines: %q", len(lines), lines)
	}
}

// Results without the second raw baseline (from before it, or -render of
// old JSON) render neither its rows nor its goal line.
func TestResultsWithoutTheStateBaselineRenderNoStateRows(t *testing.T) {
	r := sampleReport()
	r.Indexing.State, r.Indexing.StateSeconds = nil, 0
	var b bytes.Buffer
	r.Markdown(&b, "x.json")
	for _, s := range []string{"design's state", "rawstate"} {
		if strings.Contains(b.String(), s) {
			t.Errorf("Markdown of results without the state baseline mentions %q", s)
		}
	}
	if n := len(r.summaryLines()); n != 1+len(r.Freshness.Markers)+len(r.Queries)+4+len(r.Ramp.Steps) {
		t.Errorf("%d summary lines", n)
	}
}

func TestTableEscapesPipes(t *testing.T) {
	var b bytes.Buffer
	table(&b, []string{"a", "b"}, [][]string{{"x|y", "z"}})
	if want := "| a | b |\n| --- | --- |\n| x\\|y | z |\n\n"; b.String() != want {
		t.Fatalf("table:\n%s\nwant\n%s", b.String(), want)
	}
}

func TestTheFreshnessGoalNeedsBothPercentilesAndNothingLost(t *testing.T) {
	for _, c := range []struct {
		name string
		s    Summary
		lost int
		want bool
	}{
		{"within both", Summary{Count: 1000, P50Ms: 1000, P99Ms: 1500}, 0, true},
		{"p99 over", Summary{Count: 1000, P50Ms: 500, P99Ms: 1501}, 0, false},
		{"p95 over, fewer than 1,000 markers", Summary{Count: 10, P50Ms: 500, P95Ms: 1501, P99Ms: 1501}, 0, false},
		{"p50 over", Summary{Count: 1000, P50Ms: 1001, P99Ms: 1400}, 0, false},
		{"one lost", Summary{Count: 1000, P50Ms: 500, P99Ms: 900}, 1, false},
		{"no markers", Summary{}, 0, false},
	} {
		if got := freshGoal(c.s, c.lost); got != c.want {
			t.Errorf("%s: freshGoal = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestResultsFromBeforeTheMarkerKindsRenderTheirEventRow(t *testing.T) {
	old := FreshnessResult{Latency: Summary{Count: 150, P50Ms: 1485, P99Ms: 3189}, Lost: 2, Pass: false}
	rows := old.markerRows()
	if len(rows) != 1 || rows[0].Kind != "event" || rows[0].Latency.Count != 150 || rows[0].Lost != 2 {
		t.Fatalf("rows of an old result: %+v", rows)
	}
	if rows := (FreshnessResult{}).markerRows(); len(rows) != 0 {
		t.Fatalf("rows of an empty result: %+v", rows)
	}
}

func TestAMarkerWatchCountsWhatItsViewShowsAndLosesTheOverdue(t *testing.T) {
	shown := map[string]bool{"a": true}
	m := newMarkerWatch(func(_ context.Context, ids []string) ([]string, error) {
		var out []string
		for _, id := range ids {
			if shown[id] {
				out = append(out, id)
			}
		}
		return out, nil
	})
	now := time.Now()
	m.sent("a", now)
	m.sent("b", now)                   // not shown yet, not overdue
	m.sent("c", now.Add(-2*time.Hour)) // never shown, overdue
	m.pollOnce(context.Background(), time.Hour)
	if m.lat.Summary().Count != 2 || m.lost != 1 || m.pending() != 1 {
		t.Fatalf("after one poll: %d latencies, %d lost, %d pending", m.lat.Summary().Count, m.lost, m.pending())
	}
	shown["b"] = true
	m.pollOnce(context.Background(), time.Hour)
	if m.lat.Summary().Count != 3 || m.lost != 1 || m.pending() != 0 {
		t.Fatalf("after the second poll: %d latencies, %d lost, %d pending", m.lat.Summary().Count, m.lost, m.pending())
	}
}

func TestPathValueReadsDottedPaths(t *testing.T) {
	doc := map[string]any{"metrics": map[string]any{"total_spend": 110.0}, "attrs": map[string]any{"vip_card": "X"}}
	for _, c := range []struct {
		path string
		want any
	}{
		{"metrics.total_spend", 110.0}, {"attrs.vip_card", "X"}, {"attrs.missing", nil}, {"metrics.total_spend.deeper", nil}, {"nothing", nil},
	} {
		if got := pathValue(doc, c.path); got != c.want {
			t.Errorf("pathValue(%q) = %v, want %v", c.path, got, c.want)
		}
	}
}

func TestMarkersAreMessagesTheServiceAccepts(t *testing.T) {
	cs := []markerCustomer{{crmID: "1900000000", docID: "c-1", spendCents: markerSpendCents}}
	due := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	id, msg := orderMarkers("", "x", cs, "run").make(0, due)
	ch, err := wire.ParseChange(wire.TableOrders, msg.key, msg.value)
	if err != nil || id != "1900000000" || msg.topic != indexer.TopicOrders {
		t.Fatalf("order marker %s on %s: %v", id, msg.topic, err)
	}
	if ch.Parent != "1900000000" || ch.Data["status"] != "paid" || ch.Pos <= markerLSN {
		t.Errorf("order marker decodes as %+v", ch)
	}
	id, msg = traitMarkers("", "x", cs, "run").make(0, due)
	ev, err := wire.ParseEvent(msg.value, due)
	if err != nil || id != "1900000000" || msg.topic != indexer.TopicEvents {
		t.Fatalf("trait marker %s on %s: %v", id, msg.topic, err)
	}
	if ev.Type != "identify" || ev.UserID != "1900000000" || ev.Traits[markerTrait] != "FRESH-run-0" {
		t.Errorf("trait marker decodes as %+v", ev)
	}
}

func TestADrainedChunkHandsOverEveryMessageOnceWithTheExtraEventsInterleaved(t *testing.T) {
	c := compose(3, 200, 0, 10, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), "t")
	n, extra := c.messages(), len(c.adds)
	if extra == 0 {
		t.Fatal("no extra events to interleave")
	}
	var got, firstExtra, lastExtra int
	firstExtra = -1
	ids := map[string]bool{}
	c.drain(func(m *workload.Message) {
		if m.Event != nil && strings.HasPrefix(m.Event.MessageID, "t-") {
			if firstExtra < 0 {
				firstExtra = got
			}
			lastExtra = got
			if ids[m.Event.MessageID] {
				t.Errorf("extra event %s twice", m.Event.MessageID)
			}
			ids[m.Event.MessageID] = true
		}
		got++
	})
	if got != n || len(ids) != extra {
		t.Fatalf("drained %d messages (%d extra events) of %d (%d)", got, len(ids), n, extra)
	}
	if firstExtra > n/10 || lastExtra < n-n/10 {
		t.Errorf("extra events only from %d to %d of %d messages: not spread over the stream", firstExtra, lastExtra, n)
	}
	if c.ds != nil || c.adds != nil {
		t.Error("a drained chunk still holds its dataset")
	}
}

// fakeSearch answers _search over total customers sorted by id the way
// OpenSearch does under search_after, and records each request's body.
func fakeSearch(t *testing.T, total int, bodies *[]map[string]any) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			t.Errorf("search body: %v", err)
		}
		*bodies = append(*bodies, body)
		from := 0
		if after, ok := body["search_after"].([]any); ok {
			fmt.Sscanf(after[0].(string), "c%06d", &from)
			from++
		}
		size := int(body["size"].(float64))
		var hits []string
		for i := from; i < min(total, from+size); i++ {
			hits = append(hits, fmt.Sprintf(`{"_source":{"customer_id":"c%06d"},"sort":["c%06d"]}`, i, i))
		}
		fmt.Fprintf(w, `{"hits":{"total":{"value":%d},"hits":[%s]}}`, total, strings.Join(hits, ","))
	}))
}

// fakeCursorAPI answers POST /v1/customers/search as the API does: a
// next_cursor for every full page, null after a short one.
func fakeCursorAPI(total int, requests *int) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Size   int     `json:"size"`
			Cursor *string `json:"cursor"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		*requests++
		from := 0
		if req.Cursor != nil {
			from, _ = strconv.Atoi(*req.Cursor)
		}
		n := max(0, min(total-from, req.Size))
		next := "null"
		if n == req.Size {
			next = strconv.Quote(strconv.Itoa(from + n))
		}
		fmt.Fprintf(w, `{"customers":[%s],"next_cursor":%s}`, strings.TrimSuffix(strings.Repeat("{},", n), ","), next)
	}))
}

// The raw export sends, page by page, the search the API sends under its
// default sort: the same query, size, sort, fields and total, search_after
// the last hit, no point in time; and as many requests as the API's
// cursor paging, a full last page included.
func TestTheRawExportDoesTheAPIsWork(t *testing.T) {
	dsl := json.RawMessage(`{"bool":{"must_not":[{"term":{"city":"北京"}}]}}`)
	for _, c := range []struct {
		name     string
		audience int
		requests int
	}{
		{"a short last page", 2500, 3},
		{"a full last page", 2000, 3},
		{"fewer than a page", 10, 1},
		{"nobody", 0, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			var bodies []map[string]any
			os := fakeSearch(t, c.audience, &bodies)
			defer os.Close()
			n, _, err := exportRaw(context.Background(), endpoint(os.URL), "p-customers", dsl)
			if err != nil || n != c.audience || len(bodies) != c.requests {
				t.Fatalf("raw export read %d of %d in %d requests (want %d): %v", n, c.audience, len(bodies), c.requests, err)
			}
			var apiRequests int
			api := fakeCursorAPI(c.audience, &apiRequests)
			defer api.Close()
			if n, _, err := exportAPI(context.Background(), endpoint(api.URL)); err != nil || n != c.audience || apiRequests != len(bodies) {
				t.Fatalf("API export read %d in %d requests, the raw one sent %d: %v", n, apiRequests, len(bodies), err)
			}
			for i, b := range bodies {
				after, hasAfter := b["search_after"]
				delete(b, "search_after")
				got, _ := json.Marshal(b)
				want := `{"_source":{"includes":["customer_id","name","phone","email","city","member_level","registered_at","metrics.total_spend","metrics.order_count"]},` +
					`"query":{"bool":{"must_not":[{"term":{"city":"北京"}}]}},"size":1000,"sort":[{"customer_id":"asc"}],"track_total_hits":true}`
				if string(got) != want {
					t.Errorf("page %d searches %s\nwant %s", i, got, want)
				}
				if wantAfter := fmt.Sprintf("[c%06d]", i*exportPage-1); hasAfter != (i > 0) || (i > 0 && fmt.Sprint(after) != wantAfter) {
					t.Errorf("page %d search_after %v, want %s", i, after, wantAfter)
				}
			}
		})
	}
}

// The streaming export's raw side reads as export.Stream does: one point
// in time, opened on the customers alias and closed after, every page
// under it sorted on customer_id without a total, search_after the last
// hit; the API side saves one segment and counts the NDJSON lines.
func TestTheRawStreamingExportReadsUnderOnePointInTime(t *testing.T) {
	dsl := json.RawMessage(`{"match_all":{}}`)
	for _, c := range []struct {
		name               string
		audience, requests int
	}{
		{"a short last page", 2500, 3},
		{"a full last page", 2000, 3},
		{"nobody", 0, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			var opened, closed int
			var bodies []map[string]any
			search := fakeSearch(t, c.audience, &bodies)
			defer search.Close()
			os := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch {
				case r.Method == http.MethodPost && r.URL.Path == "/p-customers/_search/point_in_time":
					opened++
					fmt.Fprint(w, `{"pit_id":"pit-1"}`)
				case r.Method == http.MethodDelete && r.URL.Path == "/_search/point_in_time":
					closed++
					fmt.Fprint(w, `{}`)
				case r.URL.Path == "/_search":
					search.Config.Handler.ServeHTTP(w, r)
				default:
					t.Errorf("unexpected %s %s", r.Method, r.URL.Path)
					w.WriteHeader(http.StatusNotFound)
				}
			}))
			defer os.Close()
			n, _, err := exportPITRaw(context.Background(), endpoint(os.URL), "p-customers", dsl)
			if err != nil || n != c.audience || len(bodies) != c.requests || opened != 1 || closed != 1 {
				t.Fatalf("read %d of %d in %d searches (want %d), %d opened, %d closed: %v", n, c.audience, len(bodies), c.requests, opened, closed, err)
			}
			for i, b := range bodies {
				pit, _ := b["pit"].(map[string]any)
				if pit["id"] != "pit-1" || b["track_total_hits"] != false || fmt.Sprint(b["sort"]) != "[map[customer_id:asc]]" || (b["search_after"] != nil) != (i > 0) {
					t.Errorf("page %d: %v", i, b)
				}
			}
		})
	}
	var saved int
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/v1/segments":
			saved++
			fmt.Fprint(w, `{"id":"seg-1"}`)
		case r.URL.Path == "/v1/segments/seg-1/export" && r.URL.Query().Get("format") == "ndjson":
			fmt.Fprint(w, strings.Repeat(`{"customer_id":"c"}`+"\n", 1234))
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer api.Close()
	exportSegment = ""
	for range 2 {
		if n, _, err := exportStreamAPI(context.Background(), endpoint(api.URL)); err != nil || n != 1234 {
			t.Fatalf("API export read %d lines, want 1234: %v", n, err)
		}
	}
	if saved != 1 {
		t.Errorf("%d segments saved for two rounds, want one", saved)
	}
}

func TestTheExportReportSaysWhatEachSideDoes(t *testing.T) {
	r := sampleReport()
	x := measuredExport
	r.Export.APIName, r.Export.RawName, r.Export.APIWork, r.Export.RawWork = x.APIName, x.RawName, x.APIWork, x.RawWork
	r.computeGoals()
	var b bytes.Buffer
	r.Markdown(&b, "x.json")
	for _, want := range []string{"- " + x.APIName + ": " + x.APIWork, "- " + x.RawName + ": " + x.RawWork,
		"| " + x.RawName + " | 1000 |", "API export ≥ 0.9 × a raw loop doing the same work (" + x.APIName + " vs " + x.RawName + ")"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("Markdown lacks %q", want)
		}
	}
	// Results from before the sides were recorded keep their names.
	old := sampleReport()
	b.Reset()
	old.Markdown(&b, "x.json")
	if !strings.Contains(b.String(), "| raw PIT + search_after | 1000 |") {
		t.Errorf("old results render the raw side as %q", b.String()[strings.Index(b.String(), "## 5."):strings.Index(b.String(), "## 6.")])
	}
}

func TestAPreviewIsJudgedAgainstTheCountOfTheSameFilterUnderTheSameCondition(t *testing.T) {
	q := func(shape, cond string, n int, p95, p99 float64) QueryResult {
		return QueryResult{Shape: shape, Condition: cond, API: Summary{Count: n, P95Ms: p95, P99Ms: p99}}
	}
	tests := []struct {
		name    string
		queries []QueryResult
		pass    bool
		says    string
	}{
		{"within 1.1 × at p99 with a thousand samples each",
			[]QueryResult{q("count: negation", "idle", 1000, 1, 10), q("preview: negation", "idle", 1000, 50, 11)}, true, "p99 11.00 vs 10.00 ms"},
		{"over 1.1 × at p99",
			[]QueryResult{q("count: negation", "idle", 1000, 1, 10), q("preview: negation", "idle", 1000, 1, 11.5)}, false, "1.15×"},
		{"judged at p95 below a thousand samples",
			[]QueryResult{q("count: negation", "idle", 500, 4, 4), q("preview: negation", "idle", 200, 4.2, 99)}, true, "p95 (n=200"},
		{"against the count under its own condition, not the other",
			[]QueryResult{q("count: negation", "idle", 1000, 1, 100), q("count: negation", "indexing", 1000, 1, 10), q("preview: negation", "indexing", 1000, 1, 20)}, false, "negation (indexing)"},
		{"a preview without a count of its filter is not judged",
			[]QueryResult{q("count: nested any", "idle", 1000, 1, 10), q("preview: negation", "idle", 1000, 1, 1)}, false, "no preview shape"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := previewGoal(tt.queries)
			if g.Pass != tt.pass || !strings.Contains(g.Actual, tt.says) {
				t.Errorf("pass %v, %q; want pass %v, saying %q", g.Pass, g.Actual, tt.pass, tt.says)
			}
		})
	}
}
