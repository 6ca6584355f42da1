package main

import (
	"cmp"
	"fmt"
	"io"
	"strings"
)

// Report is everything one run measured; it is written as JSON and as
// the Markdown of docs/benchmarks.md.
type Report struct {
	Command   string          `json:"command"`
	Started   string          `json:"started"`
	Seconds   float64         `json:"seconds"`
	Machine   Machine         `json:"machine"`
	Settings  Settings        `json:"settings"`
	Dataset   DatasetInfo     `json:"dataset"`
	Indexing  IndexingResult  `json:"indexing"`
	Freshness FreshnessResult `json:"freshness"`
	// Membership is issue 14's phase (phase_members.go).
	Membership MembershipResult `json:"membership"`
	Queries    []QueryResult    `json:"queries"`
	// AccessMiddleware is the latency the access middleware added to the
	// API's requests of the query phases, from its histogram.
	AccessMiddleware *MiddlewareLatency `json:"access_middleware,omitempty"`
	Lookups          LookupResult       `json:"lookups"`
	Export           ExportResult       `json:"export"`
	Ramp             RampResult         `json:"load_ramp"`
	Memory           []PhaseMemory      `json:"memory"`
	Goals            []Goal             `json:"goals"`
	// BenchPeakRSSMiB is the bench's own peak memory (one chunk of the
	// generated stream, and the background load, are held in memory).
	BenchPeakRSSMiB float64  `json:"bench_peak_rss_mib"`
	Notes           []string `json:"notes,omitempty"`
}

// Settings are the knobs of the run.
type Settings struct {
	Customers         int     `json:"customers"`
	Seed              uint64  `json:"seed"`
	EventsPerCustomer float64 `json:"events_per_customer"`
	Prefix            string  `json:"prefix"`
	BatchSize         string  `json:"indexer_batch_size"`
	BatchWait         string  `json:"indexer_batch_wait"`
	QueryUtil         float64 `json:"query_offered_utilization"`
	QueryMaxRate      float64 `json:"query_max_rate_per_target"`
	QuerySeconds      float64 `json:"query_seconds_per_shape"`
	FreshSeconds      float64 `json:"freshness_seconds"`
	LoadFraction      float64 `json:"load_fraction_of_max"`
	ChunkCustomers    int     `json:"chunk_customers,omitempty"` // customers generated at once
}

// DatasetInfo is what was generated.
type DatasetInfo struct {
	Customers, SDKOnlyUsers, AnonymousDevices, Orders, Items int
	CDCMessages, EventMessages, ExtraEvents, Messages        int
	Summary                                                  string
}

// Goal is one target of the issue with its verdict.
type Goal struct {
	Name   string `json:"name"`
	Target string `json:"target"`
	Actual string `json:"actual"`
	Pass   bool   `json:"pass"`
}

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

// rssGoalMiB is the resident memory goal of each process.
const rssGoalMiB = 256

// computeGoals turns the results into the issues' goals.
func (r *Report) computeGoals() {
	ix := r.Indexing
	r.Goals = []Goal{{
		Name: "indexing throughput", Target: "indexer ≥ 0.85 × raw _bulk (customer docs/s)",
		Actual: fmt.Sprintf("%.3f (%.0f vs %.0f customer docs/s)", ix.Ratio, ix.IndexerCustomerDocsSec, ix.RawCustomerDocsSec),
		Pass:   ix.Ratio >= 0.85,
	}}
	for _, m := range r.Freshness.markerRows() {
		r.Goals = append(r.Goals, Goal{Name: freshGoalName(m), Target: freshTarget(m), Actual: freshActual(m), Pass: m.Pass})
	}
	r.Goals = append(r.Goals, r.Membership.goals()...)
	var bad []string
	var at []judged
	for _, q := range r.Queries {
		at = append(at, q.judged())
		if !q.Pass {
			bad = append(bad, q.Shape+" ("+q.Condition+")")
		}
	}
	for _, l := range []struct {
		name string
		ok   bool
		j    judged
	}{{"360 by id", r.Lookups.PassByID, r.Lookups.judgedByID()}, {"360 by phone", r.Lookups.PassByPhone, r.Lookups.judgedByPhone()}} {
		at = append(at, l.j)
		if !l.ok {
			bad = append(bad, l.name)
		}
	}
	n := len(at)
	actual := fmt.Sprintf("%d of %d pass", n-len(bad), n)
	if len(bad) > 0 {
		actual += "; failing: " + strings.Join(bad, ", ")
	}
	actual += judgedNote(at)
	r.Goals = append(r.Goals, Goal{Name: "API latency", Target: fmt.Sprintf("API p99 ≤ 1.05 × direct p99 + 1 ms (every query shape and 360 lookup; p95 where there are fewer than %s samples)", groupDigits(minP99Samples)),
		Actual: actual, Pass: len(bad) == 0 && n > 0})
	r.Goals = append(r.Goals, previewGoal(r.Queries))
	r.Goals = append(r.Goals, Goal{Name: "export throughput", Target: "API export ≥ 0.9 × a raw loop doing the same work (" + r.Export.names() + ")",
		Actual: fmt.Sprintf("%.3f (%.0f vs %.0f docs/s)", r.Export.Ratio, r.Export.APIDocs, r.Export.RawDocs), Pass: r.Export.Pass})
	ixPeak, apiPeak := peakOf(r.Memory, "index"), peakOf(r.Memory, "serve")
	r.Goals = append(r.Goals, Goal{Name: "memory", Target: fmt.Sprintf("peak RSS ≤ %d MiB (indexer and API, every phase)", rssGoalMiB),
		Actual: fmt.Sprintf("indexer %.0f MiB, API %.0f MiB", ixPeak, apiPeak), Pass: ixPeak > 0 && ixPeak <= rssGoalMiB && apiPeak > 0 && apiPeak <= rssGoalMiB})
	r.Goals = append(r.Goals, rampGoals(r.Ramp)...)
}

// previewRatio is the most a preview may take over a count of the same
// filter (issue 13: fast enough to run on every edit in the audience
// builder).
const previewRatio = 1.1

// previewGoal judges each "preview: X" shape against the "count: X" shape
// of the same filter under the same condition, both through the API.
func previewGoal(queries []QueryResult) Goal {
	g := Goal{Name: "preview latency", Target: fmt.Sprintf("API preview p99 ≤ %.1f × API count p99 of the same filter (p95 where there are fewer than %s samples)", previewRatio, groupDigits(minP99Samples))}
	counts := map[[2]string]QueryResult{}
	for _, q := range queries {
		if name, ok := strings.CutPrefix(q.Shape, "count: "); ok {
			counts[[2]string{name, q.Condition}] = q
		}
	}
	var parts []string
	pairs := 0
	g.Pass = true
	for _, q := range queries {
		name, ok := strings.CutPrefix(q.Shape, "preview: ")
		c, found := counts[[2]string{name, q.Condition}]
		if !ok || !found {
			continue
		}
		pairs++
		j := judgedAt(q.API, c.API)
		p, n := j.of(q.API), j.of(c.API)
		pass := p <= previewRatio*n
		g.Pass = g.Pass && pass
		parts = append(parts, fmt.Sprintf("%s (%s): %s %.2f vs %.2f ms, %.2f× (%s)", name, q.Condition, j, p, n, ratio(p, n), verdict(pass)))
	}
	if pairs == 0 {
		return Goal{Name: g.Name, Target: g.Target, Actual: "no preview shape with a count of the same filter was measured"}
	}
	g.Actual = strings.Join(parts, "; ")
	return g
}

// freshGoalName names the freshness goal of a kind of marker; the event
// markers' keeps the name it had before there were kinds.
func freshGoalName(m MarkerResult) string {
	if m.Kind == "event" {
		return "event-to-searchable"
	}
	return m.Kind + " change visible in customers"
}

func freshTarget(m MarkerResult) string {
	return fmt.Sprintf("%s in the %s alias: p99 ≤ %.1f s (p95 below %s markers), p50 ≤ %.1f s, at half the indexer's maximum",
		m.Change, m.View, freshP99GoalMs/1000.0, groupDigits(minP99Samples), freshP50GoalMs/1000.0)
}

// freshActual is what a freshness goal measured, led by the percentile it
// is judged at.
func freshActual(m MarkerResult) string {
	j := judgedAt(m.Latency)
	if j.P == 99 {
		return fmt.Sprintf("p99 %.0f ms (p50 %.0f ms, %d lost)", m.Latency.P99Ms, m.Latency.P50Ms, m.Lost)
	}
	return fmt.Sprintf("%s %.0f ms (p99 %.0f ms, p50 %.0f ms, %d lost)", j, j.of(m.Latency), m.Latency.P99Ms, m.Latency.P50Ms, m.Lost)
}

// judgedNote says how many of the comparisons at were judged at p95 and
// on how few samples; it is empty when all were judged at p99.
func judgedNote(at []judged) string {
	k, lo, hi := 0, 0, 0
	for _, j := range at {
		if j.P == 99 {
			continue
		}
		if k == 0 || j.N < lo {
			lo = j.N
		}
		hi = max(hi, j.N)
		k++
	}
	if k == 0 {
		return ""
	}
	n := fmt.Sprint(lo)
	if hi != lo {
		n = fmt.Sprintf("%d–%d", lo, hi)
	}
	return fmt.Sprintf("; judged at p95 (n=%s, fewer than %s samples) for %d of %d", n, groupDigits(minP99Samples), k, len(at))
}

// summaryLines is one line per metric, for the terminal.
func (r *Report) summaryLines() []string {
	ix := r.Indexing
	out := []string{
		fmt.Sprintf("indexing:   indexer %.0f customer docs/s (%.0f changes/s) vs raw _bulk %.0f customer docs/s (%.0f changes/s): ratio %.3f [goal ≥ 0.85: %s]",
			ix.IndexerCustomerDocsSec, ix.IndexerChangesSec, ix.RawCustomerDocsSec, ix.RawChangesSec, ix.Ratio, verdict(ix.Ratio >= 0.85)),
	}
	if ix.StateSeconds > 0 {
		out = append(out, r.stateLine())
	}
	for _, m := range r.Freshness.markerRows() {
		out = append(out, fmt.Sprintf("freshness:  %-6s in %-9s p50 %.0f ms, p95 %.0f ms, p99 %.0f ms at %.0f changes/s (%d markers, %d lost) [goal p99 ≤ %d ms, p50 ≤ %d ms, judged at %s: %s]",
			m.Kind, m.View, m.Latency.P50Ms, m.Latency.P95Ms, m.Latency.P99Ms, r.Freshness.Load.ActualRate, m.Latency.Count, m.Lost, freshP99GoalMs, freshP50GoalMs, judgedAt(m.Latency), verdict(m.Pass)))
	}
	out = append(out, r.Membership.summaryLines()...)
	for _, q := range r.Queries {
		errs := ""
		if q.API.Errors+q.Direct.Errors > 0 {
			errs = fmt.Sprintf(", %d API and %d direct requests FAILED", q.API.Errors, q.Direct.Errors)
		}
		out = append(out, fmt.Sprintf("query:      %-28s %-8s API p50/p95/p99 %.1f/%.1f/%.1f ms vs direct %.1f/%.1f/%.1f ms (×%.2f p99%s) [goal at %s: %s]",
			q.Shape, q.Condition, q.API.P50Ms, q.API.P95Ms, q.API.P99Ms, q.Direct.P50Ms, q.Direct.P95Ms, q.Direct.P99Ms, q.RatioP99, errs, q.judged(), verdict(q.Pass)))
	}
	l := r.Lookups
	out = append(out,
		fmt.Sprintf("360 by id:    API p50/p99 %.1f/%.1f ms vs raw GET %.1f/%.1f ms, GET+events %.1f/%.1f ms [goal vs GET+events: %s]",
			l.ByID.P50Ms, l.ByID.P99Ms, l.RawGet.P50Ms, l.RawGet.P99Ms, l.RawGetEvents.P50Ms, l.RawGetEvents.P99Ms, verdict(l.PassByID)),
		fmt.Sprintf("360 by phone: API p50/p99 %.1f/%.1f ms vs raw identity search+events %.1f/%.1f ms [goal: %s]",
			l.ByPhone.P50Ms, l.ByPhone.P99Ms, l.RawPhoneEvents.P50Ms, l.RawPhoneEvents.P99Ms, verdict(l.PassByPhone)),
		fmt.Sprintf("export:     %s %.0f docs/s vs %s %.0f docs/s (%d customers): ratio %.3f [goal ≥ 0.9: %s]",
			r.Export.apiName(), r.Export.APIDocs, r.Export.rawName(), r.Export.RawDocs, r.Export.Audience, r.Export.Ratio, verdict(r.Export.Pass)),
	)
	ixPeak, apiPeak := peakOf(r.Memory, "index"), peakOf(r.Memory, "serve")
	out = append(out, fmt.Sprintf("memory:     peak RSS indexer %.0f MiB, API %.0f MiB [goal ≤ %d MiB: %s]",
		ixPeak, apiPeak, rssGoalMiB, verdict(ixPeak > 0 && ixPeak <= rssGoalMiB && apiPeak > 0 && apiPeak <= rssGoalMiB)))
	for _, s := range r.Ramp.Steps {
		out = append(out, fmt.Sprintf("ramp:       %3d connections %6.0f req/s (%6.0f admitted/s), admitted p50/p99 %.1f/%.1f ms, 429 %.1f%%, 503 %.1f%%, %d failed (%d timeouts), API RSS %.0f MiB",
			s.Conns, s.Throughput, s.AdmittedRate, s.Admitted.P50Ms, s.Admitted.P99Ms, s.Share429Pct, s.Share503Pct, s.ClientErrors+s.OtherStatus, s.ClientTimeouts, s.APIPeakRSSMiB))
	}
	return out
}

func f0(v float64) string { return fmt.Sprintf("%.0f", v) }
func f1(v float64) string { return fmt.Sprintf("%.1f", v) }
func f2(v float64) string { return fmt.Sprintf("%.2f", v) }

// table writes a Markdown table.
func table(w io.Writer, head []string, rows [][]string) {
	fmt.Fprintf(w, "| %s |\n", strings.Join(head, " | "))
	seps := make([]string, len(head))
	for i := range seps {
		seps[i] = "---"
	}
	fmt.Fprintf(w, "| %s |\n", strings.Join(seps, " | "))
	for _, r := range rows {
		cells := make([]string, len(r))
		for i, c := range r {
			cells[i] = strings.ReplaceAll(c, "|", `\|`)
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
	fmt.Fprintln(w)
}

// Markdown renders docs/benchmarks.md: the run, the goals, then one
// section per measurement.
func (r *Report) Markdown(w io.Writer, jsonPath string) {
	r.mdHeader(w, jsonPath)
	r.mdGoals(w)
	r.mdIndexing(w)
	r.mdFreshness(w)
	r.mdMembership(w)
	r.mdQueries(w)
	r.mdLookups(w)
	r.mdExport(w)
	r.mdRamp(w)
	r.mdMemory(w)
	r.mdNotes(w)
	r.mdRunning(w)
}

// mdHeader is the title and what the run was measured on.
func (r *Report) mdHeader(w io.Writer, jsonPath string) {
	m := r.Machine
	fmt.Fprintf(w, "# Benchmarks\n\n")
	fmt.Fprintf(w, "The latest run of `cmd/bench` (`make bench`; `make bench-quick` for pull requests). Every number of the\n"+
		"service is measured side by side with the same work done directly against OpenSearch, on the same node, in the\n"+
		"same run. This file is overwritten by each run; the full results are in `%s`.\n\n", jsonPath)
	fmt.Fprintf(w, "- Command: `%s`\n", r.Command)
	fmt.Fprintf(w, "- Date: %s (run took %.0f s); commit %s\n", m.Date, r.Seconds, m.GitCommit)
	fmt.Fprintf(w, "- Machine: %d CPUs (%s), %.1f GiB memory, Linux %s, load average at start %s\n", m.NProc, m.CPUModel, m.MemoryGiB, m.Kernel, m.LoadAvgAtStart)
	fmt.Fprintf(w, "- Services: %s, Kafka %s, all on this machine; %s\n", m.OpenSearchVersion, m.KafkaVersion, m.GoVersion)
	d := r.Dataset
	fmt.Fprintf(w, "- Data: %d CRM customers, %d orders, %d items, %d events (%d added to the dataset's own), %d Kafka messages in all (seed %d)\n\n",
		d.Customers, d.Orders, d.Items, d.EventMessages+d.ExtraEvents, d.ExtraEvents, d.Messages, r.Settings.Seed)
}

// mdGoals is the table of goals and verdicts.
func (r *Report) mdGoals(w io.Writer) {
	fmt.Fprintf(w, "## Goals\n\n")
	var rows [][]string
	for _, g := range r.Goals {
		rows = append(rows, []string{g.Name, g.Target, g.Actual, "**" + verdict(g.Pass) + "**"})
		if g.Name == "indexing throughput" && r.Indexing.StateSeconds > 0 {
			rows = append(rows, r.stateRow())
		}
	}
	table(w, []string{"goal", "target", "measured", "result"}, rows)
}

// stateRow is the informational row under the throughput goal: the
// indexer against raw _bulk of the final documents and the design's state.
func (r *Report) stateRow() []string {
	ix := r.Indexing
	return []string{"indexing vs raw with the design's state", "informational: indexer ÷ raw _bulk of the final documents and the design's state (customer docs/s)",
		fmt.Sprintf("%.3f (%.0f vs %.0f customer docs/s; raw with state ÷ raw alone %.3f)", ix.StateRatio, ix.IndexerCustomerDocsSec, ix.StateCustomerDocsSec, ratio(ix.StateCustomerDocsSec, ix.RawCustomerDocsSec)),
		"info"}
}

// stateLine is the terminal's line of the second raw baseline.
func (r *Report) stateLine() string {
	ix := r.Indexing
	return fmt.Sprintf("indexing:   raw _bulk of the final documents and the design's state: %d docs in %.1f s, %.0f customer docs/s: indexer ratio %.3f [informational]",
		ix.StateDocs, ix.StateSeconds, ix.StateCustomerDocsSec, ix.StateRatio)
}

// mdIndexing is the indexer against raw _bulk.
func (r *Report) mdIndexing(w io.Writer) {
	ix := r.Indexing
	fmt.Fprintf(w, "## 1. Indexing\n\n%d changes (CDC rows, tombstones and events) through Kafka and `cdp index`, against `_bulk` of the %d final documents (%d customers and their %d events, with routing) into an index with the same settings and mapping (refresh interval %s, %d concurrent requests of %d documents; only the `_bulk` requests are timed). The indexer is timed from its consumer group's first assignment until every change and dirty marker is committed (startup before that: %.1f s).\n\n",
		ix.Changes, ix.RawDocs, ix.CustomerDocs, ix.EventDocs, ix.RefreshInterval, ix.RawWorkers, ix.RawBatchDocs, ix.IndexerStartupSeconds)
	rows := [][]string{
		{"indexer (Kafka → `cdp index`)", f1(ix.IndexerSeconds), fmt.Sprint(ix.CustomerDocs + ix.EventDocs), f0(ix.IndexerCustomerDocsSec), f0(ix.IndexerChangesSec), f0(float64(ix.CustomerDocs+ix.EventDocs) / max(ix.IndexerSeconds, 1e-9))},
		{"raw `_bulk` of the final documents", f1(ix.RawSeconds), fmt.Sprint(ix.RawDocs), f0(ix.RawCustomerDocsSec), f0(ix.RawChangesSec), f0(ix.RawDocsSec)},
		{"ratio (indexer / raw)", "", "", f2(ix.Ratio), f2(ix.Ratio), ""},
	}
	if ix.StateSeconds > 0 {
		rows = append(rows,
			[]string{"raw `_bulk` of the final documents and the design's state", f1(ix.StateSeconds), fmt.Sprint(ix.StateDocs), f0(ix.StateCustomerDocsSec), f0(ix.StateChangesSec), f0(ix.StateDocsSec)},
			[]string{"ratio (indexer / raw with the state; informational)", "", "", f2(ix.StateRatio), f2(ix.StateRatio), ""})
	}
	table(w, []string{"", "seconds", "docs", "customer docs/s", "changes/s", "all docs/s"}, rows)
	if ix.StateSeconds > 0 {
		var parts []string
		for _, st := range ix.State {
			parts = append(parts, fmt.Sprintf("`%s` %d", st.Index, st.Docs))
		}
		fmt.Fprintf(w, "The second raw baseline also writes the state the design keeps beside the customers index, read back after the indexer finished and sent with the same workers and batch size, in one timed run, into copies with the same settings and mappings: %s documents (the row store holds one document per source row and the parking records). Raw with the state over raw alone is what the design costs; the indexer over raw with the state is what the code costs. The goal is judged against raw alone.\n\n",
			strings.Join(parts, ", "))
	}
	fmt.Fprintf(w, "Customer documents: %d (the reference model expects %d); events: %d (expected %d); dead-lettered: %d.\n\n",
		ix.CustomerDocs, ix.ExpectedCustomerDocs, ix.EventDocs, ix.ExpectedEventDocs, ix.DeadLettered)
	mdBreakdown(w, "Where the indexer's time went in the backfill", ix.Breakdown)
}

// mdFreshness is change-to-visible latency under load, one row per kind
// of marker.
func (r *Report) mdFreshness(w io.Writer) {
	fr := r.Freshness
	fmt.Fprintf(w, "## 2. Freshness\n\nWhile the indexer is fed %.0f changes/s (target %.0f: half its measured maximum), markers of each kind are produced open-loop at %.1f/s (the kinds take turns) and each kind's view is polled every %.0f ms; latency runs from the marker's scheduled send time until a search first shows the change. *event*: a track event of a dataset customer, found by id in the events alias. *trait*: an identify giving a customer a unique value of a trait, *order*: a paid order of a known amount (CDC), each for a customer the bench made before the load (one order of %.2f paid), found when that customer's document in the customers alias holds the new value. A marker not shown within %.0f s is lost and counts that long (a lower bound).\n\n",
		fr.Load.ActualRate, fr.Load.TargetRate, fr.MarkerRate, fr.PollInterval, float64(markerSpendCents)/100, fr.TimeoutSec)
	var rows [][]string
	for _, m := range fr.markerRows() {
		rows = append(rows, []string{m.Kind, m.Change, m.View, fmt.Sprint(m.Latency.Count), f0(m.Latency.P50Ms), f0(m.Latency.P90Ms), f0(m.Latency.P95Ms), f0(m.Latency.P99Ms),
			f0(m.Latency.MaxMs), fmt.Sprint(m.Lost), judgedAt(m.Latency).String(), verdict(m.Pass)})
	}
	table(w, []string{"marker", "change", "view", "markers", "p50 ms", "p90 ms", "p95 ms", "p99 ms", "max ms", "lost", "judged at",
		fmt.Sprintf("goal p99 ≤ %d ms, p50 ≤ %d ms", freshP99GoalMs, freshP50GoalMs)}, rows)
	fmt.Fprintf(w, "Source lag at the end: %d messages.\n\n", fr.Load.LagAtEnd)
	mdBreakdown(w, "Where the indexer's time went while the markers ran", fr.Breakdown)
}

// mdQueries is every query shape through the API and directly.
func (r *Report) mdQueries(w io.Writer) {
	fmt.Fprintf(w, "## 3. Queries\n\nEach filter goes through `POST /v1/customers/search` (size %d) and, directly, the DSL of `POST /v1/filters/translate` to `_search` on the customers alias with the same size, sort, `_source` and `track_total_hits`. API and direct requests alternate on one open-loop timetable (latency from the scheduled send time); the rate offers about %.0f%% of one server, from a closed-loop calibration. *indexing*: the same while the indexer is fed half its maximum.\n\n",
		searchSize, 100*r.Settings.QueryUtil)
	var rows [][]string
	for _, q := range r.Queries {
		rows = append(rows, []string{q.Shape, q.Condition, fmt.Sprint(q.Matches), f1(q.RateEach), fmt.Sprint(q.API.Count),
			f2(q.API.P50Ms), f2(q.API.P95Ms), f2(q.API.P99Ms), f2(q.Direct.P50Ms), f2(q.Direct.P95Ms), f2(q.Direct.P99Ms), f2(q.RatioP50), f2(q.RatioP99),
			fmt.Sprintf("%d / %d", q.API.Errors, q.Direct.Errors), q.judged().String(), verdict(q.Pass)})
	}
	table(w, []string{"shape", "while", "matches", "req/s each", "n", "API p50", "API p95", "API p99", "direct p50", "direct p95", "direct p99", "ratio p50", "ratio p99", "errors API / direct", "judged at", "goal"}, rows)
	if m := r.AccessMiddleware; m != nil {
		fmt.Fprintf(w, "The access middleware (key or token, role policy, rate limit; `cdp_http_auth_seconds`) took p50 %.3f ms, p99 %.3f ms, mean %.3f ms per request over the %d requests of the query phases.\n\n",
			m.P50ms, m.P99ms, m.MeanMs, m.Requests)
	}
}

// mdLookups is the customer 360 against its raw requests.
func (r *Report) mdLookups(w io.Writer) {
	l := r.Lookups
	fmt.Fprintf(w, "## 4. Customer 360\n\n%d customers with a phone, looked up in turn; five request kinds alternate on one open-loop timetable at %.1f/s each. The API also fetches the 50 newest events, so the fair baselines are GET + the events search (by id) and the identity search + the events search (by phone).\n\n", l.Sample, l.RateEach)
	row := func(name string, s Summary, goal string) []string {
		return []string{name, fmt.Sprint(s.Count), f2(s.P50Ms), f2(s.P90Ms), f2(s.P95Ms), f2(s.P99Ms), f2(s.MaxMs), fmt.Sprint(s.Errors), goal}
	}
	table(w, []string{"request", "n", "p50 ms", "p90 ms", "p95 ms", "p99 ms", "max ms", "errors", "goal"}, [][]string{
		row("API `GET /v1/customers/{id}`", l.ByID, verdict(l.PassByID)+" vs GET + events, at "+l.judgedByID().String()),
		row("API `GET /v1/customers/lookup?type=phone`", l.ByPhone, verdict(l.PassByPhone)+" vs identity search + events, at "+l.judgedByPhone().String()),
		row("raw GET `_doc/{id}`", l.RawGet, ""),
		row("raw GET + events search", l.RawGetEvents, ""),
		row("raw identity search + events search", l.RawPhoneEvents, ""),
	})
}

// apiName and rawName name the two sides, as results from before they
// were recorded named them.
func (e ExportResult) apiName() string { return cmp.Or(e.APIName, "API cursor paging") }
func (e ExportResult) rawName() string { return cmp.Or(e.RawName, "raw PIT + search_after") }
func (e ExportResult) names() string   { return e.apiName() + " vs " + e.rawName() }

// mdExport is the API's export against a raw loop doing the same work.
func (r *Report) mdExport(w io.Writer) {
	e := r.Export
	fmt.Fprintf(w, "## 5. Export\n\nAn audience of %d customers (`city neq 北京`), %d fields, pages of %d: the API's export against a raw loop that does the same work directly, best of %d rounds each (the API goes first in odd rounds, the raw loop in even ones: the second reads what the first brought into the caches).\n\n",
		e.Audience, len(e.Fields), e.PageSize, len(e.Rounds))
	if e.APIWork != "" {
		fmt.Fprintf(w, "- %s: %s.\n- %s: %s.\n\n", e.apiName(), e.APIWork, e.rawName(), e.RawWork)
	}
	table(w, []string{"", "docs/s"}, [][]string{{e.apiName(), f0(e.APIDocs)}, {e.rawName(), f0(e.RawDocs)}, {"ratio", fmt.Sprintf("%.3f (%s)", e.Ratio, verdict(e.Pass))}})
}

// mdRamp is the load ramp, step by step.
func (r *Report) mdRamp(w io.Writer) {
	rr := r.Ramp
	fmt.Fprintf(w, "## 6. Load ramp\n\n")
	if len(rr.Steps) == 0 {
		fmt.Fprintf(w, "Not measured in this run.\n\n")
		return
	}
	fmt.Fprintf(w, "Closed-loop clients, each on a connection of its own, send a mix of %s to the API (admission: %d in flight, %d queued for at most %s; memory limit %d MiB); each step runs %.1f s after %.1f s of unrecorded warm-up. A client told 429 or 503 waits as Retry-After says, as a well-behaved client does; its request timeout is %.0f s. Latencies are of the admitted (2xx) requests, from send to the end of the answer; the API's RSS is the peak during the step.\n\n",
		strings.Join(rr.Mix, ", "), rr.HTTPInFlight, rr.HTTPQueue, rr.HTTPQueueWait, rr.MemoryLimitMiB, rr.StepSeconds, rr.WarmupSeconds, rr.TimeoutSeconds)
	base := rr.Steps[0]
	var rows [][]string
	for _, s := range rr.Steps {
		ok, j, limit := rampStepLatency(base, s)
		rows = append(rows, []string{fmt.Sprint(s.Conns), f0(s.Throughput), f0(s.AdmittedRate), fmt.Sprint(s.Admitted.Count), f1(s.Admitted.P50Ms), f1(s.Admitted.P95Ms), f1(s.Admitted.P99Ms),
			f1(s.Share429Pct), f1(s.Share503Pct), fmt.Sprint(s.OtherStatus), fmt.Sprintf("%d (%d)", s.ClientErrors, s.ClientTimeouts), f0(s.APIPeakRSSMiB),
			fmt.Sprintf("%s ≤ %.0f ms: %s", j, limit, verdict(ok && s.ClientErrors+s.OtherStatus == 0))})
	}
	table(w, []string{"connections", "req/s", "admitted/s", "admitted", "p50 ms", "p95 ms", "p99 ms", "429 %", "503 %", "other status", "client errors (timeouts)", "API RSS peak MiB", "goal: ≤ 2 × the first step"}, rows)
}

// mdMemory is the peak memory and CPU of each phase.
func (r *Report) mdMemory(w io.Writer) {
	fmt.Fprintf(w, "## 7. Memory and CPU\n\nPeak resident memory of the two `cdp` processes per phase: VmRSS sampled from `/proc/<pid>/status`, and VmHWM read at the end of the phase (reset at its start through `clear_refs` where the kernel allows it); the CPU time each used in the phase, OpenSearch's (when `scripts/deps.sh` runs it), and how busy all %d CPUs were, whatever else ran on the machine.\n\n", r.Machine.NProc)
	var rows [][]string
	for _, p := range r.Memory {
		hwm := func(v float64) string {
			if !p.HWMIsPhasePeak {
				return "n/a"
			}
			return f0(v)
		}
		osCPU := "n/a"
		if p.OpenSearchCPU > 0 {
			osCPU = f1(p.OpenSearchCPU)
		}
		rows = append(rows, []string{p.Phase, f0(p.Seconds), f0(p.IndexerRSSMiB), hwm(p.IndexerHWMMiB), f1(p.IndexerCPU), f0(p.APIRSSMiB), hwm(p.APIHWMMiB), f1(p.APICPU),
			osCPU, f0(p.MachineBusyPct)})
	}
	table(w, []string{"phase", "seconds", "indexer RSS peak MiB", "indexer VmHWM MiB", "indexer CPU s", "API RSS peak MiB", "API VmHWM MiB", "API CPU s", "OpenSearch CPU s", "machine busy %"}, rows)
}

// mdNotes lists the run's notes, if any.
func (r *Report) mdNotes(w io.Writer) {
	if len(r.Notes) > 0 {
		fmt.Fprintf(w, "## Notes\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(w, "- %s\n", n)
		}
		fmt.Fprintln(w)
	}
}

// mdRunning says how to run the bench, and what this run cost.
func (r *Report) mdRunning(w io.Writer) {
	fmt.Fprintf(w, "## Running it\n\n`make bench` runs 100,000 customers by default (`BENCH_CUSTOMERS=1000000 make bench` is the full run); `make bench-quick` runs 10,000 with shorter measuring windows, for pull requests. Both start the services if needed (`scripts/deps.sh up`) and build `bin/cdp` first. `go run ./cmd/bench -h` lists the knobs; `go run ./cmd/bench -render out/bench-….json` rewrites this file from saved results. Each run uses an index prefix, topic prefix and consumer group of its own and deletes them at the end (`-keep` keeps them). This run took %.0f s. %s\n",
		r.Seconds, r.benchMemory())
}

// benchMemory says how much memory the bench itself took and why it does
// not grow with the run.
func (r *Report) benchMemory() string {
	if r.Settings.ChunkCustomers == 0 { // results from before it was recorded
		return fmt.Sprintf("The bench itself peaked at %.0f MiB.", r.BenchPeakRSSMiB)
	}
	return fmt.Sprintf("The bench itself peaked at %.0f MiB: it generates the stream %d customers at a time and produces each chunk, giving back its memory as it goes, before the next, and spools the read-back documents to disk, so its memory is that of one chunk and of the background load, whatever the customers.",
		r.BenchPeakRSSMiB, r.Settings.ChunkCustomers)
}
