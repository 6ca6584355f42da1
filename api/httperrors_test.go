package api

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"cdp/config"
	"cdp/store"
)

// refusal is net/http's own answer to a request it cannot parse, byte
// for byte (net/http server.go, conn.serve).
const refusal = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request"

// testLimits bound the test servers' headers to 1 KiB; the header
// timeout is a failsafe that closes, without an answer, a connection
// net/http keeps waiting on.
var testLimits = HTTPLimits{ReadHeaderTimeout: failsafe / 2, MaxHeaderBytes: 1 << 10}

// testHandler is the real API (with no service behind it: no test here
// reaches a route that needs OpenSearch, and /readyz's check fails
// without dialling) and, under /test/, handlers that write what the API
// does not: a streamed answer, a body read after 100 Continue, and
// net/http's own refusal bytes from a hijacked connection.
func testHandler(t *testing.T) http.Handler {
	t.Helper()
	var cfg config.Config
	cfg.Register(pflag.NewFlagSet("test", pflag.ContinueOnError), func(string) string { return "" })
	st, err := store.New("http://127.0.0.1:9")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	down := []Check{{Name: "opensearch", Func: func(context.Context) error { return errors.New("down") }}}
	api := New(&cfg, st, down, reg, reg, slog.New(slog.DiscardHandler))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/test/stream":
			// A streamed answer whose chunks look like refusals.
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			for range 3 {
				_, _ = io.WriteString(w, refusal+"\r\n\r\n")
				_ = http.NewResponseController(w).Flush()
			}
		case "/test/echo":
			// Reading the body sends 100 Continue to a client that asks.
			body, _ := io.ReadAll(r.Body)
			http.Error(w, "read "+string(body), http.StatusBadRequest)
		case "/test/hijack":
			c, bw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				panic(err)
			}
			_, _ = bw.WriteString(refusal)
			_ = bw.Flush()
			_ = c.Close()
		default:
			api.ServeHTTP(w, r)
		}
	})
}

// serveBare serves h like serve, on a listener without the wrapper of
// LimitListener: what net/http answers by itself.
func serveBare(t *testing.T, h http.Handler, l HTTPLimits) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewHTTPServer(h, l)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// step is one turn of a client: it sends, then reads until the answers
// so far hold await; closeWrite half-closes after sending.
type step struct {
	send, await string
	closeWrite  bool
}

// exchange plays steps on one connection and returns all the server
// wrote until it closed the connection.
func exchange(t *testing.T, addr string, steps ...step) string {
	t.Helper()
	c := dial(t, addr)
	var got bytes.Buffer
	buf := make([]byte, 4<<10)
	for _, s := range steps {
		if _, err := io.WriteString(c, s.send); err != nil {
			t.Fatal(err)
		}
		if s.closeWrite {
			if err := c.(*net.TCPConn).CloseWrite(); err != nil {
				t.Fatal(err)
			}
		}
		for !strings.Contains(got.String(), s.await) {
			n, err := c.Read(buf)
			got.Write(buf[:n])
			if err != nil {
				t.Fatalf("waiting for %q: %v after %q", s.await, err, got.String())
			}
		}
	}
	return got.String() + cutOff(t, c)
}

// send sends one request and returns all the server wrote.
func send(t *testing.T, addr, req string) string {
	t.Helper()
	return exchange(t, addr, step{send: req})
}

// clientHello is what a TLS client sends first.
func clientHello(t *testing.T) string {
	t.Helper()
	client, server := net.Pipe()
	go func() {
		_ = tls.Client(client, &tls.Config{ServerName: "cdp.test"}).Handshake()
	}()
	defer client.Close()
	defer server.Close()
	b := make([]byte, 64<<10)
	n, err := server.Read(b)
	if err != nil || n < 5 || b[0] != 0x16 {
		t.Fatalf("no ClientHello: %v %q", err, b[:n])
	}
	return string(b[:n])
}

// checkJSONError checks that raw is one whole JSON error answer of
// status and code whose message holds msg, with a request id in its
// header and body, after which the server closed the connection.
func checkJSONError(t *testing.T, raw string, status int, code, msg string) {
	t.Helper()
	br := bufio.NewReader(strings.NewReader(raw))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("answer %q: %v", raw, err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("answer %q: %v", raw, err)
	}
	if rest, _ := io.ReadAll(br); len(rest) > 0 {
		t.Errorf("the answer is followed by %q", rest)
	}
	if resp.StatusCode != status {
		t.Errorf("status %d, want %d (answer %q)", resp.StatusCode, status, raw)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type %q, want JSON (answer %q)", ct, raw)
	}
	if !resp.Close {
		t.Errorf("the answer does not say Connection: close (%q)", raw)
	}
	if resp.ContentLength != int64(len(body)) {
		t.Errorf("Content-Length %d, body of %d bytes", resp.ContentLength, len(body))
	}
	var e struct {
		Error struct {
			Code      string `json:"code"`
			Message   string `json:"message"`
			RequestID string `json:"request_id"`
		} `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("body %q is not the contract's error shape: %v", body, err)
	}
	if e.Error.Code != code || !strings.Contains(e.Error.Message, msg) {
		t.Errorf("error %q %q, want code %q and a message naming %q", e.Error.Code, e.Error.Message, code, msg)
	}
	if id := resp.Header.Get("X-Request-Id"); !saneRequestID(id) || id != e.Error.RequestID {
		t.Errorf("X-Request-Id %q, request_id %q: want one sane id in both", id, e.Error.RequestID)
	}
}

func TestRequestsNetHTTPRefusesBeforeAnyHandlerAreAnsweredInJSON(t *testing.T) {
	addr, _ := serve(t, testHandler(t), testLimits)
	tests := []struct {
		name, req  string
		closeWrite bool
		status     int
		code, msg  string
	}{
		{"a request without a Host header", "GET /healthz HTTP/1.1\r\n\r\n",
			false, 400, "invalid_request", "no Host header"},
		{"headers beyond MaxHeaderBytes", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 16<<10) + "\r\n\r\n",
			false, 431, "headers_too_large", "1 KiB"},
		{"a garbage request line", "hello world\r\n\r\n",
			false, 400, "invalid_request", "request line"},
		{"a request line without a version", "GET /healthz\r\n\r\n",
			false, 400, "invalid_request", "request line"},
		{"a TLS handshake on plain HTTP", clientHello(t),
			true, 400, "invalid_request", "request line"},
		{"Transfer-Encoding chunked, gzip", "POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
			false, 501, "unsupported_transfer_encoding", "Transfer-Encoding"},
		{"Transfer-Encoding gzip", "POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
			false, 501, "unsupported_transfer_encoding", "Transfer-Encoding"},
		{"two Content-Length headers", "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
			false, 400, "invalid_request", "Content-Length"},
		{"a Content-Length that is no number", "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n",
			false, 400, "invalid_request", "Content-Length"},
		{"two Host headers", "GET /healthz HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
			false, 400, "invalid_request", "header"},
		{"a malformed Host header", "GET /healthz HTTP/1.1\r\nHost: a b\r\n\r\n",
			false, 400, "invalid_request", "Host header is malformed"},
		{"a header name with a space", "GET /healthz HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n",
			false, 400, "invalid_request", "invalid name"},
		{"a header line without a colon", "GET /healthz HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n",
			false, 400, "invalid_request", "header"},
		{"HTTP/3.0 on HTTP/1 framing", "GET /healthz HTTP/3.0\r\nHost: x\r\n\r\n",
			false, 505, "http_version_not_supported", "HTTP/1.1"},
		{"an Expect other than 100-continue", "POST /healthz HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\nContent-Length: 1\r\n\r\na",
			false, 417, "expectation_failed", "100-continue"},
		// Not a refusal of net/http: it lets "PRI * HTTP/2.0" through to
		// the handler, and the API answers it 404 in JSON already.
		{"an HTTP/2 preface on plain HTTP", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
			false, 404, "not_found", "PRI"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := exchange(t, addr, step{send: tc.req, closeWrite: tc.closeWrite})
			checkJSONError(t, raw, tc.status, tc.code, tc.msg)
		})
	}
}

// dates are the Date headers, the one part of an answer that changes
// from one run to the next.
var dates = regexp.MustCompile(`(?m)^Date: [^\r\n]*\r\n`)

// Whatever a handler writes, and net/http's own answers that are no
// error, pass the wrapper byte for byte: each exchange gets the same
// bytes from a server with it as from one without.
func TestAnswersOtherThanNetHTTPsRefusalsAreUntouched(t *testing.T) {
	h := testHandler(t)
	wrapped, _ := serve(t, h, testLimits)
	bare := serveBare(t, h, testLimits)
	get := func(path, extra string) string {
		return "GET " + path + " HTTP/1.1\r\nHost: x\r\nX-Request-Id: test-1\r\n" + extra + "\r\n"
	}
	tests := []struct {
		name  string
		steps []step
		want  []string // in the answers, in order
	}{
		{"a keep-alive sequence of answers and the API's own 4xx and 5xx", []step{
			{send: get("/healthz", ""), await: `{"status":"ok"}`},
			{send: get("/nope", ""), await: "no route GET /nope"},
			{send: "POST /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: test-2\r\nContent-Length: 0\r\n\r\n", await: "method_not_allowed"},
			{send: get("/readyz", "Connection: close\r\n")},
		}, []string{"HTTP/1.1 200 OK", "HTTP/1.1 404 Not Found", "HTTP/1.1 405 Method Not Allowed", "HTTP/1.1 503 Service Unavailable", `"not_ready"`}},
		{"pipelined requests", []step{
			{send: get("/healthz", "") + get("/nope", "") + get("/healthz", "Connection: close\r\n")},
		}, []string{"HTTP/1.1 200 OK", "HTTP/1.1 404 Not Found", "HTTP/1.1 200 OK"}},
		{"a streamed answer whose chunks look like refusals", []step{
			{send: get("/test/stream", ""), await: "\r\n0\r\n\r\n"},
			{send: get("/healthz", "Connection: close\r\n")},
		}, []string{"Transfer-Encoding: chunked", refusal, refusal, refusal, "HTTP/1.1 200 OK"}},
		{"a handler's 400 after 100 Continue", []step{
			{send: "POST /test/echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n", await: "HTTP/1.1 100 Continue\r\n\r\n"},
			{send: "hello", await: "read hello\n"},
			{send: get("/healthz", "Connection: close\r\n")},
		}, []string{"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 400 Bad Request", "Content-Type: text/plain; charset=utf-8", "read hello", "HTTP/1.1 200 OK"}},
		{"net/http's refusal bytes written by a handler on its hijacked connection", []step{
			{send: get("/healthz", ""), await: `{"status":"ok"}`},
			{send: get("/test/hijack", "")},
		}, []string{"HTTP/1.1 200 OK", refusal}},
		{"net/http's own 200 to OPTIONS *", []step{
			{send: "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", await: "Content-Length: 0"},
			{send: get("/healthz", "Connection: close\r\n")},
		}, []string{"HTTP/1.1 200 OK\r\nContent-Length: 0", "HTTP/1.1 200 OK"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := dates.ReplaceAllString(exchange(t, bare, tc.steps...), "")
			got := dates.ReplaceAllString(exchange(t, wrapped, tc.steps...), "")
			if got != want {
				t.Fatalf("through the wrapper:\n%q\nwithout it:\n%q", got, want)
			}
			rest := got
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("the answers %q do not hold %q where expected", got, w)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}

// A connection that served requests answers a refusal after them in
// JSON, and the answers before it untouched.
func TestARefusalAfterAnsweredRequestsOnOneConnectionIsAnsweredInJSON(t *testing.T) {
	h := testHandler(t)
	wrapped, _ := serve(t, h, testLimits)
	bare := serveBare(t, h, testLimits)
	steps := []step{
		{send: "GET /nope HTTP/1.1\r\nHost: x\r\nX-Request-Id: test-1\r\n\r\n", await: "no route GET /nope"},
		{send: "GET /test/stream HTTP/1.1\r\nHost: x\r\n\r\n", await: "\r\n0\r\n\r\n"},
		{send: "GET /healthz HTTP/1.1\r\n\r\n"},
	}
	want := dates.ReplaceAllString(exchange(t, bare, steps...), "")
	got := dates.ReplaceAllString(exchange(t, wrapped, steps...), "")
	const noHost = "HTTP/1.1 400 Bad Request: missing required Host header\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request: missing required Host header"
	served, ok := strings.CutSuffix(want, noHost)
	if !ok {
		t.Fatalf("without the wrapper the connection got %q, want its answers and a text refusal", want)
	}
	after, ok := strings.CutPrefix(got, served)
	if !ok {
		t.Fatalf("the answers before the refusal changed: got\n%q\nwant them to start\n%q", got, served)
	}
	checkJSONError(t, after, 400, "invalid_request", "no Host header")
}

// The wrapper changes nothing on a server without NewHTTPServer's
// hooks: it cannot tell a handler's writes from net/http's there.
func TestAWrappedListenerUnderAServerWithoutTheHooksChangesNothing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: testHandler(t), ReadHeaderTimeout: failsafe / 2}
	go func() { _ = srv.Serve(LimitListener(ln, testLimits)) }()
	t.Cleanup(func() { _ = srv.Close() })
	addr := ln.Addr().String()
	if got := send(t, addr, "GET /test/hijack HTTP/1.1\r\nHost: x\r\n\r\n"); got != refusal {
		t.Errorf("a handler's refusal bytes became %q", got)
	}
	if got := send(t, addr, "hello world\r\n\r\n"); got != refusal {
		t.Errorf("net/http's refusal became %q on a server that does not track its connections", got)
	}
}

// recordingConn records what is written to it.
type recordingConn struct {
	net.Conn
	buf bytes.Buffer
}

func (c *recordingConn) Write(p []byte) (int, error) { return c.buf.Write(p) }
func (c *recordingConn) String() string              { return c.buf.String() }

// A write while no request is served is replaced only when it is a whole
// 4xx or 5xx head; the rest of a replaced answer is dropped; anything
// else passes as it is.
func TestOnlyAWholeErrorHeadWrittenBetweenRequestsIsReplaced(t *testing.T) {
	head := "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
	tests := []struct {
		name     string
		writes   []string
		replaced bool
	}{
		{"a refusal in one write", []string{refusal}, true},
		{"a refusal whose body comes in a second write", []string{head, "400 Bad Request"}, true},
		{"a refusal whose head is split", []string{head[:30], head[30:] + "400 Bad Request"}, false},
		{"a 200", []string{"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"}, false},
		{"a 100 Continue", []string{"HTTP/1.1 100 Continue\r\n\r\n"}, false},
		{"a 600", []string{"HTTP/1.1 600 Odd\r\n\r\n"}, false},
		{"a status that is no number", []string{"HTTP/1.1 4x0 Odd\r\n\r\n"}, false},
		{"an HTTP/2 frame", []string{"\x00\x00\x00\x04\x00\x00\x00\x00\x00\r\n\r\n"}, false},
		{"bytes that are no answer", []string{"400 Bad Request\r\n\r\n"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recordingConn{}
			c := &jsonErrorsConn{Conn: rec, maxHeaderBytes: 1 << 10}
			c.armed.Store(true)
			for _, w := range tc.writes {
				if n, err := c.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write of %d bytes: %d, %v", len(w), n, err)
				}
			}
			if !tc.replaced {
				if got, want := rec.String(), strings.Join(tc.writes, ""); got != want {
					t.Fatalf("wrote %q, want %q as it was", got, want)
				}
				return
			}
			checkJSONError(t, rec.String(), 400, "invalid_request", "request line")
			// The next request's handler writes as it likes.
			c.idle()
			c.begin()
			if _, err := c.Write([]byte(refusal)); err != nil || !strings.HasSuffix(rec.String(), refusal) {
				t.Fatalf("a handler's write after a replaced answer became %q", rec.String())
			}
		})
	}
}

func TestTheHeaderBoundIsNamedInKiB(t *testing.T) {
	for _, tc := range []struct {
		limit int
		want  string
	}{
		{32 << 10, "32 KiB"},
		{DefaultHTTPLimits.MaxHeaderBytes, strconv.Itoa(DefaultHTTPLimits.MaxHeaderBytes>>10) + " KiB"},
		{0, "1024 KiB"}, // net/http's default
		{1536, "1.5 KiB"},
	} {
		t.Run(fmt.Sprint(tc.limit), func(t *testing.T) {
			if code, msg := describeRefusal(431, "", "431 Request Header Fields Too Large", tc.limit); code != "headers_too_large" || !strings.HasSuffix(msg, " "+tc.want) {
				t.Fatalf("%q %q, want headers_too_large naming %s", code, msg, tc.want)
			}
		})
	}
}

// A refusal net/http may add later still gets the JSON shape.
func TestAnUnknownRefusalIsNamedInNetHTTPsWords(t *testing.T) {
	raw, ok := jsonAnswer([]byte("HTTP/1.1 414 URI Too Long: too long\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n414"), 0)
	if !ok {
		t.Fatal("a 414 was not replaced")
	}
	checkJSONError(t, string(raw), 414, "request_uri_too_long", "request uri too long: too long")
}
