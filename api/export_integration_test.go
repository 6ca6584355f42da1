package api_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"cdp/api"
	"cdp/config"
	"cdp/export"
	"cdp/mapping"
	"cdp/store"
	"cdp/testing/harness"
)

// trickyNames are names a CSV must carry intact: Chinese text, commas,
// quotes, line breaks, and a formula.
var trickyNames = []string{"张三", "Chen, Alice", `say "hi"`, "line\nbreak", "=1+2", "普通,中文\n第二行", "O'Brien", "+861380000"}

func exportName(i int) string { return fmt.Sprintf("%s %d", trickyNames[i%len(trickyNames)], i) }

func exportID(i int) string { return fmt.Sprintf("x%05d", i) }

// exportTest is an API over n generated customers, all in the segment
// returned, the API built with the given options.
type exportTest struct {
	*apiTest
	handler http.Handler
	n       int
	segment string
}

func setupExport(t testing.TB, n int, tune func(*config.Config), opts ...api.Option) *exportTest {
	env := harness.Services(t)
	cfg := env.Config(t)
	if tune != nil {
		tune(cfg)
	}
	env.Bootstrap(t, cfg)
	st := env.Store(t)
	h := api.New(cfg, st, nil, prometheus.NewRegistry(), prometheus.NewRegistry(), harness.Logger(), opts...)
	h = harness.AsAdmin(t, cfg, h)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	idx := mapping.Customers.Alias(cfg.IndexPrefix)
	var ops []store.Op
	for i := range n {
		doc := map[string]any{"customer_id": exportID(i), "relation": "customer", "name": exportName(i),
			"phone": fmt.Sprintf("+86138%08d", i), "city": "北京", "tags": []string{"exp"}, "attrs": map[string]any{"note": "a,b"},
			"orders":  []map[string]any{{"order_id": fmt.Sprintf("o%d", i), "status": "paid", "total_amount": 10.5, "items": []any{}}},
			"metrics": map[string]any{"order_count": 1, "total_spend": 10.5}}
		ops = append(ops, store.Op{Action: store.Index, Index: idx, ID: exportID(i), Body: doc})
	}
	for len(ops) > 0 {
		k := min(len(ops), 1000)
		verdicts, err := st.Bulk(context.Background(), ops[:k])
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range verdicts {
			if !v.OK() {
				t.Fatalf("load %s: %d %s", ops[i].ID, v.Status, v.Reason)
			}
		}
		ops = ops[k:]
	}
	if err := st.Refresh(context.Background(), idx); err != nil {
		t.Fatal(err)
	}
	a := &apiTest{t: t, env: env, srv: srv, st: st, cfg: cfg}
	return &exportTest{apiTest: a, handler: h, n: n, segment: a.save("exp", `{"field":"tags","op":"eq","value":"exp"}`)}
}

// get fetches an export, asking for gzip or not, and returns the status,
// the headers and the body as sent (not inflated).
func (e *exportTest) get(client *http.Client, query string, gz bool) (int, http.Header, []byte) {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.srv.URL+"/v1/segments/"+e.segment+"/export"+query, nil)
	if gz {
		req.Header.Set("Accept-Encoding", "gzip")
	} else {
		req.Header.Set("Accept-Encoding", "identity")
	}
	resp, err := client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("read export: %v", err)
	}
	return resp.StatusCode, resp.Header, body
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	r, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// churn updates random members' spend until stop is closed, refreshing
// after each batch, so that an export runs while documents change.
func (e *exportTest) churn(stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Add(1)
	idx := mapping.Customers.Alias(e.cfg.IndexPrefix)
	go func() {
		defer wg.Done()
		for round := 0; ; round++ {
			select {
			case <-stop:
				return
			default:
			}
			var ops []store.Op
			for range 100 {
				id := exportID(rand.IntN(e.n))
				ops = append(ops, store.Op{Action: store.Update, Index: idx, ID: id,
					Body: map[string]any{"doc": map[string]any{"metrics": map[string]any{"total_spend": float64(round)}}}})
			}
			if _, err := e.st.Bulk(context.Background(), ops); err != nil {
				e.t.Errorf("churn: %v", err)
				return
			}
			_ = e.st.Refresh(context.Background(), idx)
		}
	}()
	return &wg
}

// once checks that ids hold every member exactly once.
func (e *exportTest) once(ids []string) {
	e.t.Helper()
	seen := make(map[string]int, len(ids))
	for _, id := range ids {
		seen[id]++
	}
	for i := range e.n {
		if c := seen[exportID(i)]; c != 1 {
			e.t.Errorf("member %s exported %d times", exportID(i), c)
		}
	}
	if len(ids) != e.n {
		e.t.Errorf("%d rows, want %d", len(ids), e.n)
	}
}

func ndjsonIDs(t *testing.T, body []byte, check func(doc map[string]any)) []string {
	t.Helper()
	var ids []string
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var doc map[string]any
		if err := json.Unmarshal(sc.Bytes(), &doc); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if check != nil {
			check(doc)
		}
		ids = append(ids, doc["customer_id"].(string))
	}
	return ids
}

// csvRows parses a CSV export, checking its header, and returns its rows.
func csvRows(t *testing.T, body []byte, header ...string) [][]string {
	t.Helper()
	r := csv.NewReader(bytes.NewReader(body))
	records, err := r.ReadAll()
	if err != nil {
		t.Fatalf("parse csv: %v", err)
	}
	if len(records) == 0 || strings.Join(records[0][:len(header)], ",") != strings.Join(header, ",") {
		t.Fatalf("csv header %v, want it to start with %v", records[0], header)
	}
	if !bytes.Contains(body, []byte("\r\n")) || bytes.Count(body, []byte("\r\n")) < len(records) {
		t.Errorf("csv lines do not end in CRLF")
	}
	return records[1:]
}

// The size: 200,000 members, at the default page size. Under the
// race detector the export of 200,000 takes two minutes, so that size runs
// in make test's race-free pass, and 20,000 (still 20 pages while members
// change) under -race.
func TestAnExportWritesEveryMemberExactlyOnceWhileMembersChange(t *testing.T) {
	t.Parallel()
	n := 200_000
	if harness.RaceDetector {
		n = 20_000
	}
	t.Logf("%d members (race detector: %v)", n, harness.RaceDetector)
	e := setupExport(t, n, nil)
	stop := make(chan struct{})
	wg := e.churn(stop)
	defer func() { close(stop); wg.Wait() }()

	t.Run("ndjson", func(t *testing.T) {
		code, h, body := e.get(http.DefaultClient, "?format=ndjson", false)
		if code != 200 || h.Get("Content-Type") != "application/x-ndjson" {
			t.Fatalf("%d %s %.200s", code, h.Get("Content-Type"), body)
		}
		e.once(ndjsonIDs(t, body, nil))
	})
	t.Run("csv", func(t *testing.T) {
		code, h, body := e.get(http.DefaultClient, "?format=csv&fields=name,phone,metrics.total_spend,tags,attrs", false)
		if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/csv") {
			t.Fatalf("%d %s %.200s", code, h.Get("Content-Type"), body)
		}
		rows := csvRows(t, body, "customer_id", "name", "phone", "metrics.total_spend", "tags", "attrs")
		var ids []string
		for _, r := range rows {
			ids = append(ids, r[0])
			var i int
			fmt.Sscanf(r[0], "x%d", &i)
			if want := export.Defuse(exportName(i)); r[1] != want {
				t.Errorf("%s: name %q, want %q", r[0], r[1], want)
			}
			if !strings.HasPrefix(r[2], "'+86") || r[4] != `["exp"]` || r[5] != `{"note":"a,b"}` {
				t.Errorf("%s: phone %q, tags %q, attrs %q", r[0], r[2], r[4], r[5])
			}
		}
		e.once(ids)
	})
}

func TestAnExportCanBeGzippedStartWithAByteOrderMarkAndProjectFields(t *testing.T) {
	t.Parallel()
	e := setupExport(t, 500, nil)
	t.Run("csv gzip with a byte-order mark and the default columns", func(t *testing.T) {
		code, h, raw := e.get(http.DefaultClient, "?format=csv&bom=true", true)
		if code != 200 || h.Get("Content-Encoding") != "gzip" {
			t.Fatalf("%d %v", code, h)
		}
		body := gunzip(t, raw)
		if !bytes.HasPrefix(body, []byte("\xEF\xBB\xBF")) {
			t.Fatalf("no byte-order mark: %q", body[:min(len(body), 20)])
		}
		rows := csvRows(t, body[3:], "customer_id")
		var ids []string
		for _, r := range rows {
			ids = append(ids, r[0])
		}
		e.once(ids)
		header, _, _ := strings.Cut(string(body[3:]), "\r\n")
		for _, want := range []string{"name", "phone", "metrics.total_spend", "tags"} {
			if !strings.Contains(","+header+",", ","+want+",") {
				t.Errorf("default header %q lacks %s", header, want)
			}
		}
		for _, col := range strings.Split(header, ",") {
			if col == "orders" || strings.HasPrefix(col, "orders.") {
				t.Errorf("default header %q holds the nested field %s", header, col)
			}
		}
	})
	t.Run("ndjson gzip with fields", func(t *testing.T) {
		code, h, raw := e.get(http.DefaultClient, "?fields=name,metrics.total_spend", true)
		if code != 200 || h.Get("Content-Encoding") != "gzip" {
			t.Fatalf("%d %v", code, h)
		}
		e.once(ndjsonIDs(t, gunzip(t, raw), func(doc map[string]any) {
			m, _ := doc["metrics"].(map[string]any)
			if len(doc) != 3 || doc["name"] == nil || len(m) != 1 || m["total_spend"] == nil {
				t.Errorf("projected document %v: want customer_id, name and metrics.total_spend nested", doc)
			}
		}))
	})
	t.Run("an empty segment", func(t *testing.T) {
		none := e.save("none", `{"field":"city","op":"eq","value":"nowhere"}`)
		for _, f := range []struct{ query, want string }{{"?format=csv&fields=city", "customer_id,city\r\n"}, {"?format=ndjson", ""}} {
			code, h, raw := (&exportTest{apiTest: e.apiTest, segment: none}).get(http.DefaultClient, f.query, true)
			if code != 200 || h.Get("Content-Encoding") != "gzip" || string(gunzip(t, raw)) != f.want {
				t.Errorf("%s: %d %v %q, want %q", f.query, code, h, gunzip(t, raw), f.want)
			}
		}
	})
	t.Run("plain without gzip", func(t *testing.T) {
		code, h, body := e.get(http.DefaultClient, "", false)
		if code != 200 || h.Get("Content-Encoding") != "" {
			t.Fatalf("%d %v", code, h)
		}
		e.once(ndjsonIDs(t, body, nil))
	})
}

func TestBadExportRequestsAre400Or404NamingWhatIsWrong(t *testing.T) {
	t.Parallel()
	e := setupExport(t, 10, nil)
	tests := []struct {
		name, path string
		status     int
		param, msg string
	}{
		{"an unknown format", "/v1/segments/" + e.segment + "/export?format=xlsx", 400, "format", "xlsx"},
		{"an unknown field", "/v1/segments/" + e.segment + "/export?format=csv&fields=name,shoe", 400, "fields", "shoe"},
		{"an empty field", "/v1/segments/" + e.segment + "/export?fields=name,,city", 400, "fields", "empty"},
		{"a bom that is not a boolean", "/v1/segments/" + e.segment + "/export?format=csv&bom=maybe", 400, "bom", "maybe"},
		{"an unknown segment", "/v1/segments/seg_nope/export", 404, "", "seg_nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := e.do("GET", tt.path, "")
			er, _ := body["error"].(map[string]any)
			msg, _ := er["message"].(string)
			if code != tt.status || (tt.param != "" && er["path"] != tt.param) || !strings.Contains(msg, tt.msg) {
				t.Fatalf("%d %v, want %d naming %s %q", code, body, tt.status, tt.param, tt.msg)
			}
		})
	}
}

// openPITs counts the points in time open on the test's customers index.
func openPITs(t *testing.T, st *store.Client, index string) int {
	t.Helper()
	return len(pitsOn(t, st, index))
}

// pitsOn lists the ids of the points in time open on index: a point in
// time's id holds the names of its indices, and the cluster is shared, so
// the others are left out.
func pitsOn(t *testing.T, st *store.Client, index string) []string {
	t.Helper()
	ids, err := listPITs(st, index)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func listPITs(st *store.Client, index string) ([]string, error) {
	var resp struct {
		Pits []struct {
			ID string `json:"pit_id"`
		} `json:"pits"`
	}
	if err := st.Do(context.Background(), "GET", "/_search/point_in_time/_all", nil, &resp); err != nil {
		return nil, err
	}
	var out []string
	for _, p := range resp.Pits {
		b, err := base64.URLEncoding.DecodeString(p.ID)
		if err != nil {
			b, _ = base64.RawURLEncoding.DecodeString(strings.TrimRight(p.ID, "="))
		}
		if bytes.Contains(b, []byte(index)) {
			out = append(out, p.ID)
		}
	}
	return out, nil
}

// slowClient reads through a tiny receive buffer, so that a server
// streaming to it blocks until it reads.
func slowClient() *http.Client {
	d := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableCompression: true}}
}

// slowServer serves h with the limits through a tiny send buffer (the
// accepted connections inherit the listener's), so that with a slow
// reader the server goes on writing for as long as the client reads, and
// returns its base URL.
func slowServer(t *testing.T, h http.Handler, limits api.HTTPLimits) string {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, 4096) })
	}}
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := api.NewHTTPServer(h, limits)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })
	return "http://" + l.Addr().String()
}

func TestAClientThatDisconnectsMidStreamReleasesItsPointInTimeAtOnce(t *testing.T) {
	t.Parallel()
	e := setupExport(t, 3000, nil, api.WithExportPageSize(20))
	physical := mapping.Customers.Physical(e.cfg.IndexPrefix)
	client := slowClient()
	base := slowServer(t, e.handler, api.DefaultHTTPLimits)
	req, _ := http.NewRequest("GET", base+"/v1/segments/"+e.segment+"/export?format=csv", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "customer_id,") {
		t.Fatalf("first line %q: %v", line, err)
	}
	harness.Eventually(t, 10*time.Second, func() (bool, string) {
		n := openPITs(t, e.st, physical)
		return n == 1, fmt.Sprintf("%d points in time open on %s while the export streams, want 1", n, physical)
	})
	resp.Body.Close()
	client.CloseIdleConnections()
	left := time.Now()
	// The keep-alive is minutes long: only the release frees it this soon.
	harness.Eventually(t, 2*time.Second, func() (bool, string) {
		n := openPITs(t, e.st, physical)
		return n == 0, fmt.Sprintf("%d points in time still open after the client left", n)
	})
	t.Logf("the point in time was closed within %s of the client leaving", time.Since(left))
}

// 400 clients at once, more than the node's 300 open points in time: with
// the default bound, every answer is a whole export or a 429, and a search
// meanwhile still answers.
func TestManyConcurrentExportsGet200Or429AndNeverOpenMorePointsInTimeThanTheBound(t *testing.T) {
	t.Parallel()
	var bound int
	e := setupExport(t, 1000, func(c *config.Config) {
		bound = c.ExportConcurrency
		c.ExportQueueWait = 100 * time.Millisecond
	}, api.WithExportPageSize(50))
	physical := mapping.Customers.Physical(e.cfg.IndexPrefix)
	var peak atomic.Int64
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			ids, err := listPITs(e.st, physical)
			if err != nil {
				t.Errorf("list points in time: %v", err)
				return
			}
			if n := int64(len(ids)); n > peak.Load() {
				peak.Store(n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	const clients = 400
	var wg sync.WaitGroup
	var ok, shed atomic.Int64
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, h, body := e.get(http.DefaultClient, "", false)
			switch {
			case code == 200:
				if n := bytes.Count(body, []byte("\n")); n != e.n {
					t.Errorf("a 200 export holds %d lines, want %d", n, e.n)
				}
				ok.Add(1)
			case code == 429 && h.Get("Retry-After") != "":
				shed.Add(1)
			default:
				t.Errorf("export answered %d %v %.200s, want 200 or 429 with Retry-After", code, h, body)
			}
		}()
	}
	if code, body := e.do("POST", "/v1/customers/count", `{"filter":{"field":"tags","op":"eq","value":"exp"}}`); code != 200 {
		t.Errorf("a count during the exports answered %d %v", code, body)
	}
	wg.Wait()
	close(done)
	if ok.Load() == 0 || shed.Load() == 0 {
		t.Errorf("%d exports ran and %d were shed: want some of each with %d clients and a bound of %d", ok.Load(), shed.Load(), clients, bound)
	}
	if p := peak.Load(); p > int64(bound) {
		t.Errorf("%d points in time were open at once, the bound is %d", p, bound)
	}
	if n := openPITs(t, e.st, physical); n != 0 {
		t.Errorf("%d points in time left open", n)
	}
}

func TestAnExportOutlastsTheServersWriteTimeoutWhileItsClientKeepsReading(t *testing.T) {
	t.Parallel()
	e := setupExport(t, 3000, nil, api.WithExportPageSize(20))
	limits := api.DefaultHTTPLimits
	limits.WriteTimeout = 300 * time.Millisecond
	base := slowServer(t, e.handler, limits)
	resp, err := slowClient().Get(base + "/v1/segments/" + e.segment + "/export")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	start := time.Now()
	var body bytes.Buffer
	buf := make([]byte, 4<<10)
	for {
		n, err := resp.Body.Read(buf)
		body.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %s and %d bytes: %v", time.Since(start), body.Len(), err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if took := time.Since(start); took < 3*limits.WriteTimeout {
		t.Errorf("the export took %s: too short to outlast the write timeout of %s", took, limits.WriteTimeout)
	}
	e.once(ndjsonIDs(t, body.Bytes(), nil))
}

func TestAnExportThatFailsMidStreamCutsTheConnectionRatherThanEndingCleanly(t *testing.T) {
	t.Parallel()
	e := setupExport(t, 3000, nil, api.WithExportPageSize(20))
	physical := mapping.Customers.Physical(e.cfg.IndexPrefix)
	base := slowServer(t, e.handler, api.DefaultHTTPLimits)
	resp, err := slowClient().Get(base + "/v1/segments/" + e.segment + "/export")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	var pits []string
	harness.Eventually(t, 10*time.Second, func() (bool, string) {
		pits = pitsOn(t, e.st, physical)
		return len(pits) == 1, fmt.Sprintf("%d points in time open, want the export's", len(pits))
	})
	// Its point in time vanishes under it: the next page fails.
	if err := e.st.ClosePIT(context.Background(), pits[0]); err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(io.Discard, r)
	if err == nil {
		t.Fatal("the stream ended cleanly after its point in time was gone; want it cut")
	}
	t.Logf("the stream was cut: %v", err)
}

// BenchmarkPreviewAgainstCount compares a preview (count, a sample of 10
// and the query) with the count alone on the same filter: the audience
// builder runs a preview on every edit, so it should cost about a count.
//
//	go test ./api/ -run '^$' -bench PreviewAgainstCount -benchtime 300x
func BenchmarkPreviewAgainstCount(b *testing.B) {
	e := setupExport(b, 3000, nil)
	// Each request is a new filter, as each edit in the builder is, so
	// that OpenSearch's request cache (which keeps size 0 answers, counts
	// among them) answers neither.
	filter := func(i int) string {
		return `{"filter":{"all":[{"segment":"` + e.segment + `"},{"field":"phone","op":"contains","value":"` + fmt.Sprintf("%04d", i%10000) + `"}]}`
	}
	for _, bb := range []struct {
		name, path string
		body       func(i int) string
	}{
		{"count", "/v1/customers/count", func(i int) string { return filter(i) + `}` }},
		{"preview", "/v1/filters/preview", func(i int) string { return filter(i) + `,"sample":10}` }},
	} {
		b.Run(bb.name, func(b *testing.B) {
			for i := range b.N {
				resp, err := http.Post(e.srv.URL+bb.path, "application/json", strings.NewReader(bb.body(i)))
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("%s: %d", bb.path, resp.StatusCode)
				}
			}
		})
	}
}

// BenchmarkExport streams a segment of 20,000 customers through the
// endpoint, reporting members a second.
//
//	go test ./api/ -run '^$' -bench Export -benchtime 3x
func BenchmarkExport(b *testing.B) {
	e := setupExport(b, 20000, nil)
	for _, q := range []string{"?format=ndjson", "?format=csv", "?format=csv&bom=true"} {
		b.Run(q[1:], func(b *testing.B) {
			start := time.Now()
			for range b.N {
				code, _, body := e.get(http.DefaultClient, q, false)
				if code != 200 || bytes.Count(body, []byte("\n")) < e.n {
					b.Fatalf("%d, %d lines", code, bytes.Count(body, []byte("\n")))
				}
			}
			b.ReportMetric(float64(e.n*b.N)/time.Since(start).Seconds(), "members/s")
		})
	}
	// The same walk without the endpoint: what the export costs beyond
	// OpenSearch's own work.
	b.Run("raw point-in-time loop", func(b *testing.B) {
		idx := mapping.Customers.Alias(e.cfg.IndexPrefix)
		scan := store.Scan{Body: map[string]any{"query": map[string]any{"term": map[string]any{"tags": "exp"}},
			"sort": []any{map[string]any{"customer_id": "asc"}}, "_source": map[string]any{"excludes": []string{"relation"}}},
			KeepAlive: time.Minute}
		start := time.Now()
		for range b.N {
			n := 0
			for page, err := range e.st.Pages(context.Background(), idx, scan) {
				if err != nil {
					b.Fatal(err)
				}
				n += len(page.Hits)
			}
			if n != e.n {
				b.Fatalf("%d hits", n)
			}
		}
		b.ReportMetric(float64(e.n*b.N)/time.Since(start).Seconds(), "members/s")
	})
}
