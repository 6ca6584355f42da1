package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func testMix() *rampMix {
	return &rampMix{kinds: []string{"ok", "shed", "down", "broken"}, reqs: [][]rampRequest{
		{{method: http.MethodPost, path: "/ok", body: []byte(`{}`)}},
		{{method: http.MethodGet, path: "/shed"}},
		{{method: http.MethodGet, path: "/down"}},
		{{method: http.MethodGet, path: "/broken"}},
	}}
}

// One step sorts every answer: 2xx latencies, 429 and 503 shares, other
// statuses; a shed client waits as Retry-After says, and no client opens
// more than its one connection.
func TestRampStepSortsTheAnswers(t *testing.T) {
	var mu sync.Mutex
	conns := map[string]bool{}
	var shed atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		conns[r.RemoteAddr] = true
		mu.Unlock()
		switch r.URL.Path {
		case "/ok":
			w.WriteHeader(http.StatusOK)
		case "/shed":
			shed.Add(1)
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		case "/down":
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	const clients = 3
	// The step is far shorter than Retry-After: after its first 429 a
	// client waits out the step, so each sends /shed exactly once.
	s := rampStep(context.Background(), srv.URL, testMix(), clients, rampTuning{Step: 300 * time.Millisecond, Timeout: 5 * time.Second, MaxRequests: 1000})
	if s.Conns != clients || s.Status429 != clients || shed.Load() != clients {
		t.Fatalf("step %+v, %d requests shed; want each of %d clients shed once and then wait", s, shed.Load(), clients)
	}
	if s.Admitted.Count != clients || s.Status503 != 0 || s.OtherStatus != 0 || s.ClientErrors != 0 || s.Requests != 2*clients {
		t.Fatalf("step %+v: want one admitted and one shed request per client", s)
	}
	if s.Share429Pct != 50 {
		t.Fatalf("429 share %v%%, want 50%%", s.Share429Pct)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(conns) > clients {
		t.Fatalf("%d connections for %d clients", len(conns), clients)
	}
}

// The step's request budget bounds what is sent, warm-up included.
func TestRampStepIsBoundedInRequests(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { n.Add(1) }))
	defer srv.Close()
	mix := &rampMix{kinds: []string{"ok"}, reqs: [][]rampRequest{{{method: http.MethodGet, path: "/"}}}}
	s := rampStep(context.Background(), srv.URL, mix, 4, rampTuning{Step: time.Minute, Timeout: 5 * time.Second, MaxRequests: 50})
	if n.Load() != 50 || s.Requests != 50 || s.Admitted.Count != 50 {
		t.Fatalf("%d requests sent, %d recorded; want exactly the budget of 50", n.Load(), s.Requests)
	}
}

// A request that outlives the client timeout is a client timeout, not an
// admitted request.
func TestRampStepCountsTimeouts(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	mix := &rampMix{kinds: []string{"stuck"}, reqs: [][]rampRequest{{{method: http.MethodGet, path: "/"}}}}
	s := rampStep(context.Background(), srv.URL, mix, 2, rampTuning{Step: 50 * time.Millisecond, Timeout: 20 * time.Millisecond, MaxRequests: 2})
	if s.ClientTimeouts != 2 || s.ClientErrors != 2 || s.Admitted.Count != 0 {
		t.Fatalf("step %+v: want 2 client timeouts", s)
	}
}

func TestRampOnlyLoadsTheLoopback(t *testing.T) {
	for base, ok := range map[string]bool{"http://127.0.0.1:8080": true, "http://[::1]:80": true,
		"http://10.0.0.1:8080": false, "http://example.com": false, "http://localhost:8080": false} {
		if err := loopbackOnly(base); (err == nil) != ok {
			t.Errorf("loopbackOnly(%s) = %v", base, err)
		}
	}
}

func TestRampMixSharesTheKinds(t *testing.T) {
	plans := []*queryPlan{{shape: shape{Name: "s"}, apiPath: "/v1/customers/search", apiBody: []byte(`{}`)},
		{shape: shape{Name: "c", Count: true}, apiPath: "/v1/customers/count", apiBody: []byte(`{}`)}}
	m, err := newRampMix(plans, []lookupTarget{{"c1", "+8613800001234"}, {"c2", "+8613900005678"}})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for k := range 400 {
		p := m.pick(3, k).path
		p, _, _ = strings.Cut(p, "?")
		seen[p]++
	}
	for _, p := range []string{"/v1/customers/search", "/v1/customers/count", "/v1/customers/lookup", "/v1/customers"} {
		if seen[p] != 100 {
			t.Errorf("%s sent %d times of 400, want 100", p, seen[p])
		}
	}
	if box := m.reqs[3]; box[0].path != "/v1/customers?q=001234" || box[1].path != "/v1/customers?q=c2" {
		t.Errorf("search box queries %q, %q", box[0].path, box[1].path)
	}
	if _, err := newRampMix(nil, nil); err == nil {
		t.Error("a mix with nothing to send was accepted")
	}
}

func TestRampGoals(t *testing.T) {
	steps := []RampStep{{Conns: 10, Admitted: Summary{Count: 10, P99Ms: 100}, APIPeakRSSMiB: 50},
		{Conns: 500, Admitted: Summary{Count: 10, P99Ms: 200}, APIPeakRSSMiB: 256}}
	g := rampGoals(RampResult{Steps: steps})
	if !g[0].Pass || !g[1].Pass {
		t.Fatalf("p99 at exactly 2× and RSS at exactly the limit must pass: %+v", g)
	}
	steps[1].ClientTimeouts, steps[1].ClientErrors = 1, 1
	steps[1].APIPeakRSSMiB = 300
	g = rampGoals(RampResult{Steps: steps})
	if g[0].Pass || !strings.Contains(g[0].Actual, "1 failed at 500") || g[1].Pass {
		t.Fatalf("a timed-out request and 300 MiB must fail: %+v", g)
	}
	if g := rampGoals(RampResult{}); g[0].Pass || g[1].Pass || g[0].Actual != "not measured" {
		t.Fatalf("no ramp: %+v", g)
	}
	if _, err := parseConns("10, 50,200,500"); err != nil {
		t.Fatal(err)
	}
	if _, err := parseConns("10,x"); err == nil {
		t.Fatal("parseConns accepted x")
	}
}

func TestMembershipLevelsAreIncreasingCountsOfDefinitionsUpToAThousand(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []int
	}{
		{"10,100,1000", []int{10, 100, 1000}},
		{"1000", []int{1000}},
		{" 5 , 50 ", []int{5, 50}},
		{"100,10", nil},
		{"10,10", nil},
		{"0", nil},
		{"1001", nil},
		{"", nil},
		{"ten", nil},
	} {
		got, err := parseLevels(c.in)
		if (err != nil) != (c.want == nil) || fmt.Sprint(got) != fmt.Sprint(c.want) && c.want != nil {
			t.Errorf("parseLevels(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	if got := levelsText([]MembershipLevel{{Definitions: 10}, {Definitions: 100}, {Definitions: 1000}}); got != "10, then 100, then 1000" {
		t.Errorf("levelsText: %q", got)
	}
}
