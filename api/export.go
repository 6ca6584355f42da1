package api

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"cdp/export"
	"cdp/store"
)

// exportWriteTimeout is how long the client may take to take one page of
// an export: the write deadline is extended by it after every page, in
// place of the server's WriteTimeout, which a long stream would outlast.
const exportWriteTimeout = 30 * time.Second

// WithExportPageSize sets the documents of one page of a streaming
// export (export.DefaultPageSize when 0): a smaller page holds less
// memory and makes more searches.
func WithExportPageSize(n int) Option { return func(s *Server) { s.exportPageSize = n } }

// exportGate bounds the streaming exports of one process. Each holds a
// point in time of OpenSearch for as long as it streams, and a node keeps
// at most 300 open (search.max_open_pit_context) for every client
// together, the search cursors included; so at most Concurrency run, at
// most Queue more wait up to QueueWait for a place, and the rest are
// answered 429 with Retry-After at once. Exports do not take a place of
// the API's admission gate (they would hold it for minutes).
type exportGate struct {
	slots, queued chan struct{}
	wait          time.Duration
	shed          *prometheus.CounterVec
}

func newExportGate(concurrency, queue int, wait time.Duration, reg prometheus.Registerer) *exportGate {
	if concurrency < 1 {
		concurrency = 32
	}
	if wait <= 0 {
		wait = 2 * time.Second
	}
	g := &exportGate{slots: make(chan struct{}, concurrency), queued: make(chan struct{}, queue), wait: wait,
		shed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdp_export_shed_total", Help: "Streaming exports answered 429 because too many ran, by reason.",
		}, []string{"reason"})}
	running := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "cdp_exports_running", Help: "Streaming exports running now, each holding a point in time.",
	}, func() float64 { return float64(len(g.slots)) })
	reg.MustRegister(g.shed, running)
	return g
}

// enter takes a place for the request, answering 429 itself when none
// frees in time; release gives it back.
func (g *exportGate) enter(c *gin.Context) (release func(), ok bool) {
	release = func() { <-g.slots }
	select {
	case g.slots <- struct{}{}:
		return release, true
	default:
	}
	select {
	case g.queued <- struct{}{}:
	default:
		g.busy(c, "queue_full")
		return nil, false
	}
	defer func() { <-g.queued }()
	t := time.NewTimer(g.wait)
	defer t.Stop()
	select {
	case g.slots <- struct{}{}:
		return release, true
	case <-t.C:
		g.busy(c, "queue_wait")
	case <-c.Request.Context().Done():
		c.Abort()
	}
	return nil, false
}

func (g *exportGate) busy(c *gin.Context, reason string) {
	g.shed.WithLabelValues(reason).Inc()
	c.Header("Retry-After", retryAfter)
	writeError(c, http.StatusTooManyRequests, "too_many_exports", "too many exports are running; retry shortly")
}

// exportParams are the query parameters of an export.
type exportParams struct {
	format export.Format
	fields []string
	bom    bool
}

func readExportParams(c *gin.Context) (*exportParams, error) {
	p := &exportParams{}
	var err error
	if p.format, err = export.ParseFormat(c.Query("format")); err != nil {
		return nil, &badRequest{code: "invalid_parameter", path: "format", message: err.Error()}
	}
	if b := c.Query("bom"); b != "" {
		if p.bom, err = strconv.ParseBool(b); err != nil {
			return nil, &badRequest{code: "invalid_parameter", path: "bom", message: fmt.Sprintf("bom must be true or false, got %q", b)}
		}
	}
	if f, ok := c.GetQuery("fields"); ok {
		for i, name := range strings.Split(f, ",") {
			name = strings.TrimSpace(name)
			if name == "" {
				return nil, &badRequest{code: "invalid_parameter", path: "fields", message: fmt.Sprintf("fields: entry %d is empty; name fields separated by commas", i)}
			}
			p.fields = append(p.fields, name)
		}
	}
	return p, nil
}

// acceptsGzip reports whether an Accept-Encoding header takes gzip.
func acceptsGzip(h string) bool {
	for _, part := range strings.Split(h, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
			continue
		}
		if k, v, ok := strings.Cut(strings.TrimSpace(params), "="); ok && strings.TrimSpace(k) == "q" {
			q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return err == nil && q > 0
		}
		return true
	}
	return false
}

// exportSegment streams every member of a saved segment (CONTRACT §4.3)
// through package export. Until the first page is written an error is
// answered as usual; after it, a failure cuts the connection (cut), so
// that a client never takes a stream cut short for a whole one. A client
// that goes away ends the request's context, which ends the walk and
// closes its point in time at once.
func (s *Server) exportSegment(c *gin.Context) {
	params, err := readExportParams(c)
	if err != nil {
		s.failed(c, err)
		return
	}
	release, ok := s.exports.enter(c)
	if !ok {
		return
	}
	defer release()
	ctx := c.Request.Context()
	seg, ok := s.segmentParam(c)
	if !ok {
		return
	}
	q, err := s.compile(ctx, &searchRequest{Filter: segmentNode(seg.ID)})
	if err != nil {
		s.failed(c, err)
		return
	}
	source, columns, err := s.exportSource(ctx, params.format, params.fields)
	if err != nil {
		var br *badRequest
		if errors.As(err, &br) && strings.HasPrefix(br.path, "fields") {
			br.path = "fields"
		}
		s.failed(c, err)
		return
	}

	h := c.Writer.Header()
	h.Set("Content-Type", params.format.ContentType())
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.%s"`, seg.ID, params.format))
	h.Set("Vary", "Accept-Encoding")
	var out io.Writer = c.Writer
	var gz *gzip.Writer
	if acceptsGzip(c.GetHeader("Accept-Encoding")) {
		gz, _ = gzip.NewWriterLevel(c.Writer, gzip.BestSpeed) // a valid level
		h.Set("Content-Encoding", "gzip")
		out = gz
	}
	var w export.Writer
	if params.format == export.CSV {
		w, _ = export.NewCSV(out, columns, params.bom) // buffered: nothing is written yet
	} else {
		w = export.NewNDJSON(out)
	}
	w = callerOf(c).View.Writer(w)
	rc := http.NewResponseController(c.Writer)
	_ = rc.SetWriteDeadline(time.Now().Add(exportWriteTimeout)) // httptest's recorder has no deadlines
	start := time.Now()
	n, err := export.Stream(ctx, s.st, export.Query{Index: s.customers, Query: q.query, Source: source, PageSize: s.exportPageSize}, w, func(export.Progress) error {
		if gz != nil {
			if err := gz.Flush(); err != nil {
				return err
			}
		}
		_ = rc.SetWriteDeadline(time.Now().Add(exportWriteTimeout))
		return rc.Flush()
	})
	if err == nil && gz != nil {
		err = gz.Close()
	}
	log := s.log.With("segment", seg.ID, "format", string(params.format), "exported", n, "seconds", time.Since(start).Seconds(), "request_id", c.GetString(requestIDKey))
	switch {
	case err == nil:
		log.Info("export done")
	case ctx.Err() != nil:
		log.Info("export ended: the client went away")
		c.Abort()
	case errors.Is(err, errAuditFailed):
		// Its audit record could not be written: the 503 is the answer,
		// and nothing of the export went out.
		c.Abort()
	case !c.Writer.Written():
		for _, k := range []string{"Content-Type", "Content-Encoding", "Content-Disposition", "Vary"} {
			h.Del(k)
		}
		if tooManyPITs(err) {
			log.Warn("export refused: OpenSearch holds too many points in time", "err", err)
			c.Header("Retry-After", retryAfter)
			writeError(c, http.StatusTooManyRequests, "too_many_exports", "the search service holds too many open exports; retry shortly")
			return
		}
		s.failed(c, err)
	default:
		log.Error("export failed mid-stream; cutting the connection", "err", err)
		cut(c)
	}
}

// cut closes the connection of a stream that failed half-way, without
// the end of its chunked body, so that the client sees it cut short and
// cannot take it for a whole export. (Gin's recovery swallows
// http.ErrAbortHandler, and its writer refuses to hijack once a body is
// written, so the connection is taken from net/http's writer beneath.)
func cut(c *gin.Context) {
	c.Abort()
	var w http.ResponseWriter = c.Writer
	// Down through every wrapper (the audit's, Gin's) to net/http's.
	for {
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			break
		}
		w = u.Unwrap()
	}
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	_ = conn.Close()
}

// tooManyPITs reports whether OpenSearch refused a point in time because
// the node holds as many as it may (search.max_open_pit_context: it
// rejects the request, a 429), or shed the search for load: either way
// the export may be tried again shortly.
func tooManyPITs(err error) bool {
	var e *store.Error
	if !errors.As(err, &e) {
		return false
	}
	return e.Status == http.StatusTooManyRequests || strings.Contains(strings.ToLower(e.Reason), "too many point in time")
}

// compile-time check: the store is what export walks.
var _ export.Pager = (*store.Client)(nil)
