package api

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
)

// gated serves /work behind a gate; the handler holds each request until
// release is closed, and entered receives one value per request it holds.
func gated(t *testing.T, cfg Admission) (srv *httptest.Server, g *gate, entered chan struct{}, release func()) {
	t.Helper()
	gin.SetMode(gin.ReleaseMode)
	g = newGate(cfg, prometheus.NewRegistry())
	done := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(done) }) }
	entered = make(chan struct{}, 16)
	r := gin.New()
	r.Use(requestID)
	r.POST("/work", g.readBody, g.admit, func(c *gin.Context) {
		entered <- struct{}{}
		<-done
		body, _ := io.ReadAll(c.Request.Body)
		c.String(http.StatusOK, "%d", len(body))
	})
	srv = httptest.NewServer(r)
	t.Cleanup(srv.Close)
	t.Cleanup(release)
	return srv, g, entered, release
}

type answer struct {
	status     int
	retryAfter string
	code       string
	body       string
}

func post(t *testing.T, url, body string) answer {
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Error(err)
		return answer{}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(raw, &e)
	return answer{resp.StatusCode, resp.Header.Get("Retry-After"), e.Error.Code, string(raw)}
}

// waitFor waits until cond holds, or fails the test after a deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestARequestBeyondTheQueueIsAnswered429AtOnceWithRetryAfter(t *testing.T) {
	srv, g, entered, release := gated(t, Admission{InFlight: 1, Queue: 1, QueueWait: time.Hour, BodyBytes: 1 << 20, BodyTimeout: time.Minute})
	results := make(chan answer, 2)
	go func() { results <- post(t, srv.URL+"/work", "{}") }()
	<-entered // the first holds the one place
	go func() { results <- post(t, srv.URL+"/work", "{}") }()
	waitFor(t, "the second request is queued", func() bool { return len(g.queued) == 1 })
	third := post(t, srv.URL+"/work", "{}")
	if third.status != http.StatusTooManyRequests || third.retryAfter != retryAfter || third.code != "overloaded" {
		t.Fatalf("third request: %+v, want 429 overloaded with Retry-After %s", third, retryAfter)
	}
	release()
	for range 2 {
		if a := <-results; a.status != http.StatusOK {
			t.Errorf("an admitted request: %+v, want 200", a)
		}
	}
}

func TestAQueuedRequestIsAnswered429WhenNoPlaceFreesInTime(t *testing.T) {
	srv, _, entered, _ := gated(t, Admission{InFlight: 1, Queue: 4, QueueWait: 20 * time.Millisecond, BodyBytes: 1 << 20, BodyTimeout: time.Minute})
	go post(t, srv.URL+"/work", "{}")
	<-entered
	if a := post(t, srv.URL+"/work", "{}"); a.status != http.StatusTooManyRequests || a.retryAfter == "" {
		t.Fatalf("queued request: %+v, want 429 with Retry-After", a)
	}
}

func TestAQueuedRequestRunsWhenAPlaceFrees(t *testing.T) {
	srv, g, entered, release := gated(t, Admission{InFlight: 1, Queue: 4, QueueWait: time.Hour, BodyBytes: 1 << 20, BodyTimeout: time.Minute})
	first := make(chan answer, 1)
	go func() { first <- post(t, srv.URL+"/work", "{}") }()
	<-entered
	second := make(chan answer, 1)
	go func() { second <- post(t, srv.URL+"/work", `{"a":1}`) }()
	waitFor(t, "the second request is queued", func() bool { return len(g.queued) == 1 })
	release()
	if a := <-first; a.status != http.StatusOK {
		t.Errorf("first: %+v", a)
	}
	if a := <-second; a.status != http.StatusOK || a.body != "7" {
		t.Errorf("second: %+v, want 200 with its 7-byte body read", a)
	}
}

func TestABodyLargerThanTheLimitIs413BeforeItIsRead(t *testing.T) {
	srv, _, _, _ := gated(t, Admission{InFlight: 1, Queue: 1, QueueWait: time.Second, BodyBytes: 64 << 20, BodyTimeout: time.Minute})
	a := post(t, srv.URL+"/work", strings.Repeat(" ", maxBody+1))
	if a.status != http.StatusRequestEntityTooLarge || a.code != "body_too_large" {
		t.Fatalf("%+v, want 413 body_too_large", a)
	}
}

func TestASlowBodyTimesOutWithoutHoldingAPlace(t *testing.T) {
	srv, g, _, _ := gated(t, Admission{InFlight: 1, Queue: 1, QueueWait: time.Second, BodyBytes: 1 << 20, BodyTimeout: 50 * time.Millisecond})
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Half a body, and then nothing.
	if _, err := io.WriteString(conn, "POST /work HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"a\":"); err != nil {
		t.Fatal(err)
	}
	if len(g.slots) != 0 {
		t.Errorf("a request whose body is still arriving holds a place")
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	status, _ := io.ReadAll(io.LimitReader(conn, 12))
	if string(status) != "HTTP/1.1 408" {
		t.Fatalf("answer starts %q, want HTTP/1.1 408", status)
	}
}

func TestEveryAnswerCarriesARequestIDAndKeepsASaneOne(t *testing.T) {
	srv, _, _, release := gated(t, Admission{InFlight: 1, Queue: 1, QueueWait: time.Second, BodyBytes: 1 << 20, BodyTimeout: time.Minute})
	release()
	tests := []struct {
		name, sent string
		kept       bool
	}{
		{"none sent", "", false},
		{"a sane one", "abc-123_x.y", true},
		{"one with a space", "abc 123", false},
		{"one too long", strings.Repeat("a", 65), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", srv.URL+"/work", strings.NewReader("{}"))
			if tc.sent != "" {
				req.Header.Set("X-Request-Id", tc.sent)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			got := resp.Header.Get("X-Request-Id")
			if got == "" || (got == tc.sent) != tc.kept {
				t.Errorf("X-Request-Id %q for %q, want kept=%v", got, tc.sent, tc.kept)
			}
		})
	}
}
