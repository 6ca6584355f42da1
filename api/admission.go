package api

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"
)

// Admission bounds the work one API process takes on, so that overload
// is answered at once with 429 and Retry-After instead of queueing every
// request until all of them time out (CONTRACT §4; at 500 connections the
// API once answered nothing but 30 s timeouts and grew to 654 MiB).
type Admission struct {
	// InFlight is how many requests may work on OpenSearch at once.
	InFlight int
	// Queue is how many more may wait for one of those places.
	Queue int
	// QueueWait is the longest one of them waits before it is told 429.
	QueueWait time.Duration
	// BodyBytes bounds the request bodies held in memory at once, read
	// before a request takes its place, so that a slow client never
	// holds one.
	BodyBytes int64
	// BodyTimeout is the longest a request body may take to arrive.
	BodyTimeout time.Duration
}

// DefaultAdmission is the body budget of every process; its places, queue
// and wait come from the configuration (--http-inflight, --http-queue,
// --http-queue-wait), whose defaults suit OpenSearch on a small node: its
// search pool works on a few requests at a time (4 threads on 2 CPUs),
// and more in flight only lengthen every answer. The bench's load ramp
// measured it: with 16 in flight and 64 queued for 250 ms, throughput was
// flat from 10 to 500 connections while the admitted p50 went from 25 ms
// to 148 ms, all of it queueing; twice the search pool in flight, as many
// queued and a short wait keep the pool busy and the admitted answers
// fast.
var DefaultAdmission = Admission{BodyBytes: 64 << 20, BodyTimeout: 10 * time.Second}

// retryAfter is what a shed request is told to wait, in seconds.
const retryAfter = "1"

// gate is the admission control of one process.
type gate struct {
	cfg    Admission
	slots  chan struct{}
	queued chan struct{}
	bodies *semaphore.Weighted
	shed   *prometheus.CounterVec
}

func newGate(cfg Admission, reg prometheus.Registerer) *gate {
	g := &gate{cfg: cfg, slots: make(chan struct{}, cfg.InFlight), queued: make(chan struct{}, cfg.Queue),
		bodies: semaphore.NewWeighted(cfg.BodyBytes),
		shed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdp_http_shed_total", Help: "Requests answered 429 by admission control, by reason.",
		}, []string{"reason"})}
	inflight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "cdp_http_inflight", Help: "Requests working on OpenSearch now.",
	}, func() float64 { return float64(len(g.slots)) })
	reg.MustRegister(g.shed, inflight)
	return g
}

// tooBusy answers 429 with Retry-After.
func (g *gate) tooBusy(c *gin.Context, reason, msg string) {
	g.shed.WithLabelValues(reason).Inc()
	c.Header("Retry-After", retryAfter)
	writeError(c, http.StatusTooManyRequests, "overloaded", msg)
}

// readBody reads a request's body into memory, within the body budget and
// the body deadline, before the request takes a place: a client that sends
// its body slowly holds only its own connection.
func (g *gate) readBody(c *gin.Context) {
	r := c.Request
	if r.Body == nil || r.Body == http.NoBody || r.Method == http.MethodGet || r.Method == http.MethodHead {
		c.Next()
		return
	}
	if r.ContentLength > maxBody {
		writeError(c, http.StatusRequestEntityTooLarge, "body_too_large", "the body is larger than "+strconv.Itoa(maxBody)+" bytes")
		return
	}
	want := int64(maxBody + 1)
	if r.ContentLength >= 0 {
		want = r.ContentLength
	}
	ctx, cancel := context.WithTimeout(r.Context(), g.cfg.QueueWait)
	err := g.bodies.Acquire(ctx, want)
	cancel()
	if err != nil {
		g.tooBusy(c, "body_memory", "too many request bodies are being read; retry shortly")
		return
	}
	defer g.bodies.Release(want)
	rc := http.NewResponseController(c.Writer)
	_ = rc.SetReadDeadline(time.Now().Add(g.cfg.BodyTimeout)) // not every writer supports deadlines (tests)
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		// The connection is not reused: what is left of the body is
		// never read, so the answer goes out at once.
		c.Header("Connection", "close")
		status, code, msg := http.StatusBadRequest, "invalid_body", "the body could not be read"
		var ne interface{ Timeout() bool }
		if errors.As(err, &ne) && ne.Timeout() {
			status, code, msg = http.StatusRequestTimeout, "body_timeout", "the body did not arrive within "+g.cfg.BodyTimeout.String()
		}
		writeError(c, status, code, msg)
		return
	}
	_ = rc.SetReadDeadline(time.Time{})
	if len(body) > maxBody {
		c.Header("Connection", "close")
		writeError(c, http.StatusRequestEntityTooLarge, "body_too_large", "the body is larger than "+strconv.Itoa(maxBody)+" bytes")
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	c.Next()
}

// admit lets a request work once a place is free, waiting in a short
// queue at most QueueWait; beyond that the request is answered 429.
func (g *gate) admit(c *gin.Context) {
	select {
	case g.slots <- struct{}{}:
	default:
		select {
		case g.queued <- struct{}{}:
		default:
			g.tooBusy(c, "queue_full", "the service is at capacity; retry shortly")
			return
		}
		t := time.NewTimer(g.cfg.QueueWait)
		select {
		case g.slots <- struct{}{}:
			<-g.queued
			t.Stop()
		case <-t.C:
			<-g.queued
			g.tooBusy(c, "queue_wait", "the service is at capacity; retry shortly")
			return
		case <-c.Request.Context().Done():
			<-g.queued
			t.Stop()
			c.Abort()
			return
		}
	}
	defer func() { <-g.slots }()
	c.Next()
}
