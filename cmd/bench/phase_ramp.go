package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// rampTuning is the load ramp: closed-loop clients at each number of
// connections in turn, each step measured for Step after Warmup.
type rampTuning struct {
	Conns []int
	// Step is how long each step is measured; Warmup runs before it,
	// unrecorded, so that the connections are open and the caches warm.
	Step, Warmup time.Duration
	// Timeout is the clients' request timeout.
	Timeout time.Duration
	// MaxRequests bounds the requests of one step, warm-up included.
	MaxRequests int
}

// RampStep is what one step measured: every answer of a request started
// in the measuring window, the latencies of the admitted (2xx) ones, and
// the API's peak resident memory during the step.
type RampStep struct {
	Conns          int     `json:"connections"`
	Seconds        float64 `json:"seconds"`
	Requests       int     `json:"requests"`
	Throughput     float64 `json:"requests_per_sec"`
	AdmittedRate   float64 `json:"admitted_per_sec"`
	Admitted       Summary `json:"admitted"`
	Status429      int     `json:"status_429"`
	Status503      int     `json:"status_503"`
	OtherStatus    int     `json:"other_status"`
	ClientErrors   int     `json:"client_errors"`
	ClientTimeouts int     `json:"client_timeouts"`
	Share429Pct    float64 `json:"share_429_percent"`
	Share503Pct    float64 `json:"share_503_percent"`
	LastError      string  `json:"last_error,omitempty"`
	APIPeakRSSMiB  float64 `json:"api_peak_rss_mib"`
}

// RampResult is the whole ramp and the settings it ran with.
type RampResult struct {
	StepSeconds    float64    `json:"step_seconds"`
	WarmupSeconds  float64    `json:"warmup_seconds"`
	TimeoutSeconds float64    `json:"client_timeout_seconds"`
	Mix            []string   `json:"mix"`
	HTTPInFlight   int        `json:"api_http_inflight"`
	HTTPQueue      int        `json:"api_http_queue"`
	HTTPQueueWait  string     `json:"api_http_queue_wait"`
	MemoryLimitMiB int        `json:"api_memory_limit_mib"`
	Steps          []RampStep `json:"steps"`
}

// rampRequest is one request of the mixed load.
type rampRequest struct {
	method, path string
	body         []byte
}

// rampMix is the mixed load, one list per kind; a client's k-th request
// is of kind k mod the kinds, so every kind gets the same share.
type rampMix struct {
	kinds []string
	reqs  [][]rampRequest
}

var nonDigit = regexp.MustCompile(`[^0-9]`)

// newRampMix builds the load from the query phase's plans (filter
// searches and counts) and the lookup sample (lookups by phone, and
// search-box queries for phone digits and CRM ids).
func newRampMix(plans []*queryPlan, sample []lookupTarget) (*rampMix, error) {
	var search, count, lookup, box []rampRequest
	for _, p := range plans {
		r := rampRequest{http.MethodPost, p.apiPath, p.apiBody}
		if p.shape.Count {
			count = append(count, r)
		} else {
			search = append(search, r)
		}
	}
	for i, t := range sample {
		lookup = append(lookup, rampRequest{method: http.MethodGet, path: "/v1/customers/lookup?type=phone&value=" + url.QueryEscape(t.phone)})
		q := t.id
		if d := nonDigit.ReplaceAllString(t.phone, ""); i%2 == 0 && len(d) >= 6 {
			q = d[len(d)-6:]
		}
		box = append(box, rampRequest{method: http.MethodGet, path: "/v1/customers?q=" + url.QueryEscape(q)})
	}
	m := &rampMix{kinds: []string{"search", "count", "lookup by phone", "search box"}, reqs: [][]rampRequest{search, count, lookup, box}}
	for i, r := range m.reqs {
		if len(r) == 0 {
			return nil, fmt.Errorf("load ramp: no %s request to send", m.kinds[i])
		}
	}
	return m, nil
}

// pick is client's k-th request.
func (m *rampMix) pick(client, k int) rampRequest {
	rs := m.reqs[k%len(m.reqs)]
	return rs[(client*7+k/len(m.reqs))%len(rs)]
}

// loopbackOnly refuses a base URL whose host is not a loopback address:
// the ramp overloads what it is pointed at.
func loopbackOnly(base string) error {
	u, err := url.Parse(base)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("load ramp: %s is not a loopback address; the ramp only loads 127.0.0.1", base)
	}
	return nil
}

// stepRecorder collects the outcomes of one step.
type stepRecorder struct {
	mu       sync.Mutex
	admitted Samples
	step     RampStep
}

// outcome is one request's answer, or its failure.
type outcome struct {
	status  int
	latency time.Duration
	err     error
	what    string
}

func (r *stepRecorder) record(o outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := &r.step
	s.Requests++
	switch {
	case o.err != nil:
		s.ClientErrors++
		var ne net.Error
		if errors.Is(o.err, context.DeadlineExceeded) || errors.As(o.err, &ne) && ne.Timeout() {
			s.ClientTimeouts++
		}
		s.LastError = o.what + ": " + o.err.Error()
	case o.status/100 == 2:
		r.admitted.Add(o.latency)
	case o.status == http.StatusTooManyRequests:
		s.Status429++
	case o.status == http.StatusServiceUnavailable:
		s.Status503++
	default:
		s.OtherStatus++
		s.LastError = fmt.Sprintf("%s: status %d", o.what, o.status)
	}
}

// send sends one request and reads its answer; it returns the answer's
// Retry-After for a 429 or 503 (1 s when it names none).
func (q rampRequest) send(ctx context.Context, c *http.Client, base string) (outcome, time.Duration) {
	o := outcome{what: q.method + " " + q.path}
	var body io.Reader
	if q.body != nil {
		body = bytes.NewReader(q.body)
	}
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, q.method, base+q.path, body)
	if err != nil {
		o.err = err
		return o, 0
	}
	if q.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		o.err = err
		return o, 0
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	o.status, o.latency, o.err = resp.StatusCode, time.Since(start), err
	var wait time.Duration
	if o.status == http.StatusTooManyRequests || o.status == http.StatusServiceUnavailable {
		wait = time.Second
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
			wait = time.Duration(s) * time.Second
		}
	}
	return o, wait
}

// pause waits d, or until ctx ends.
func pause(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// rampStep runs conns closed-loop clients, each on a connection of its
// own, against base for tune.Warmup+tune.Step. A client sends its next
// request when the last is answered; told 429 or 503, it waits as
// Retry-After says (within the step), as a well-behaved client does.
// Only requests started after the warm-up are recorded; those still
// running at the end are waited for (at most tune.Timeout).
func rampStep(ctx context.Context, base string, mix *rampMix, conns int, tune rampTuning) RampStep {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxConnsPerHost:     conns,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: keyed{tr}, Timeout: tune.Timeout}
	rec := &stepRecorder{}
	var budget atomic.Int64
	budget.Store(int64(tune.MaxRequests))
	from := time.Now().Add(tune.Warmup)
	until := from.Add(tune.Step)
	stepCtx, cancel := context.WithDeadline(ctx, until)
	defer cancel()
	var wg sync.WaitGroup
	for id := range conns {
		wg.Go(func() {
			for k := 0; time.Now().Before(until) && ctx.Err() == nil && budget.Add(-1) >= 0; k++ {
				started := time.Now()
				// The request itself runs on ctx: the end of the step
				// stops new requests, not the ones on their way.
				o, wait := mix.pick(id, k).send(ctx, client, base)
				if !started.Before(from) {
					rec.record(o)
				}
				pause(stepCtx, wait)
			}
		})
	}
	wg.Wait()
	s := rec.step
	s.Conns, s.Seconds = conns, round2(tune.Step.Seconds())
	s.Admitted = rec.admitted.Summary()
	s.Throughput = round2(float64(s.Requests) / tune.Step.Seconds())
	s.AdmittedRate = round2(float64(s.Admitted.Count) / tune.Step.Seconds())
	if s.Requests > 0 {
		s.Share429Pct = round2(100 * float64(s.Status429) / float64(s.Requests))
		s.Share503Pct = round2(100 * float64(s.Status503) / float64(s.Requests))
	}
	return s
}

// loadRamp is phase 8: the mixed load at each number of connections in
// turn, against the API started by the bench, with the API's peak memory
// per step. It starts once the indexer has applied the background load
// of phases 6 and 7, so that every step sees the same data and the same
// machine, and samples the customers to look up afresh (the load changed
// some of their phones).
func (b *bench) loadRamp(ctx context.Context, idx *proc, plans []*queryPlan) error {
	tune := b.o.ramp
	if err := loopbackOnly(string(b.apiURL)); err != nil {
		return err
	}
	if _, err := waitIdle(ctx, b.cfg, idx, b.rep.Indexing.Changes, b.log, "before the load ramp"); err != nil {
		return err
	}
	if _, err := b.osURL.do(ctx, http.MethodPost, "/"+b.customers+"/_refresh", nil); err != nil {
		return err
	}
	sample, err := sampleCustomers(ctx, b.osURL, b.customers, b.o.lookupSample)
	if err != nil {
		return err
	}
	mix, err := newRampMix(plans, sample)
	if err != nil {
		return err
	}
	res := RampResult{StepSeconds: tune.Step.Seconds(), WarmupSeconds: tune.Warmup.Seconds(), TimeoutSeconds: tune.Timeout.Seconds(), Mix: mix.kinds,
		HTTPInFlight: b.cfg.HTTPInFlight, HTTPQueue: b.cfg.HTTPQueue, HTTPQueueWait: b.cfg.HTTPQueueWait.String(), MemoryLimitMiB: b.cfg.MemoryLimitMiB}
	b.log.Info("phase 8/8: load ramp", "connections", tune.Conns, "step_seconds", tune.Step.Seconds(), "mix", strings.Join(mix.kinds, ", "))
	for _, n := range tune.Conns {
		b.mem.begin(fmt.Sprintf("ramp-%d", n))
		s := rampStep(ctx, string(b.apiURL), mix, n, tune)
		pm := b.mem.end()
		s.APIPeakRSSMiB = pm.APIRSSMiB
		if pm.HWMIsPhasePeak {
			s.APIPeakRSSMiB = max(s.APIPeakRSSMiB, pm.APIHWMMiB)
		}
		res.Steps = append(res.Steps, s)
		b.log.Info("ramp step", "connections", n, "req_per_sec", s.Throughput, "admitted_per_sec", s.AdmittedRate,
			"p50_ms", s.Admitted.P50Ms, "p99_ms", s.Admitted.P99Ms, "share_429_pct", s.Share429Pct, "share_503_pct", s.Share503Pct,
			"client_errors", s.ClientErrors, "timeouts", s.ClientTimeouts, "other_status", s.OtherStatus, "api_rss_mib", s.APIPeakRSSMiB, "last_error", s.LastError)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	b.rep.Ramp = res
	return nil
}

// rampGoals are the ramp's two goals: the p99 of admitted requests at
// every step within twice the first (10-connection) step's, with no
// request left unanswered or failed by the API; and the API's memory at
// the last (500-connection) step.
func rampGoals(r RampResult) []Goal {
	lat := Goal{Name: "overload latency", Target: fmt.Sprintf("p99 of admitted requests at each step ≤ 2 × the first step's p99 (p95 where a step has fewer than %s)", groupDigits(minP99Samples)), Actual: "not measured"}
	mem := Goal{Name: "overload memory", Target: fmt.Sprintf("API RSS ≤ %d MiB at 500 connections", rssGoalMiB), Actual: "not measured"}
	if len(r.Steps) == 0 {
		return []Goal{lat, mem}
	}
	base := r.Steps[0]
	var p99s, bad []string
	lat.Pass = base.Admitted.Count > 0
	for _, s := range r.Steps {
		ok, j, limit := rampStepLatency(base, s)
		if j.P == 99 {
			p99s = append(p99s, fmt.Sprintf("%d: %.0f", s.Conns, s.Admitted.P99Ms))
		} else {
			p99s = append(p99s, fmt.Sprintf("%d: %s %.0f, limit %.0f", s.Conns, j, j.of(s.Admitted), limit))
		}
		if !ok {
			lat.Pass = false
		}
		if n := s.ClientErrors + s.OtherStatus; n > 0 {
			lat.Pass = false
			bad = append(bad, fmt.Sprintf("%d failed at %d", n, s.Conns))
		}
	}
	lat.Actual = fmt.Sprintf("p99 ms by connections %s (limit %.0f ms: 2 × the p99 at %d connections)", strings.Join(p99s, ", "), 2*base.Admitted.P99Ms, base.Conns)
	if len(bad) > 0 {
		lat.Actual += "; requests failed or timed out: " + strings.Join(bad, ", ")
	}
	last := r.Steps[len(r.Steps)-1]
	mem.Actual = fmt.Sprintf("%.0f MiB at %d connections", last.APIPeakRSSMiB, last.Conns)
	mem.Pass = last.Conns >= 500 && last.APIPeakRSSMiB > 0 && last.APIPeakRSSMiB <= rssGoalMiB
	return []Goal{lat, mem}
}

// rampStepLatency judges one step's admitted latency against twice the
// first step's, at p99 when both steps have minP99Samples admitted
// requests and at p95 otherwise; it returns the verdict, the percentile
// and the limit.
func rampStepLatency(base, s RampStep) (bool, judged, float64) {
	j := judgedAt(base.Admitted, s.Admitted)
	limit := 2 * j.of(base.Admitted)
	return s.Admitted.Count > 0 && j.of(s.Admitted) <= limit, j, limit
}

// parseConns reads a comma-separated list of connection counts.
func parseConns(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 5000 {
			return nil, fmt.Errorf("ramp connections %q: want numbers from 1 to 5000", s)
		}
		out = append(out, n)
	}
	return out, nil
}
