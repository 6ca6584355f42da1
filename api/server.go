// Package api serves the HTTP API (CONTRACT §4) with Gin.
package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"cdp/access"
	"cdp/audit"
	"cdp/catalog"
	"cdp/config"
	"cdp/console"
	"cdp/exportjob"
	"cdp/identity"
	"cdp/mapping"
	"cdp/store"
)

// Check reports whether one backing service is reachable.
type Check struct {
	Name string
	Func func(context.Context) error
}

// Server holds what the handlers need.
type Server struct {
	cfg    *config.Config
	st     *store.Client
	checks []Check
	fields *catalog.Registry
	log    *slog.Logger
	// cursorKeys sign search cursors.
	cursorKeys *cursorKeys

	customers, events string
	// oneid reads (and, for splits, writes) who is whom.
	oneid *identity.Resolver
	// marker asks the indexer for rebuilds (splits); nil without one.
	marker Marker

	// segmentIndex holds the saved segments; segmentReferrers are what
	// else may refer to one (tag rules).
	segmentIndex     string
	segmentReferrers []SegmentReferrer
	// tagIndex holds the tag rules; members keeps membership and manual
	// tags (nil: not served).
	tagIndex string
	members  Members
	// exports bounds the streaming exports running at once.
	exports *exportGate
	// exportPageSize is the documents of one page of an export.
	exportPageSize int
	// jobs are the export jobs.
	jobs *exportjob.Store

	// authn finds the caller of a token, policy says what its role may
	// do, limits bound its rate, trail records what it did.
	authn  *access.Authenticator
	policy *access.Policy
	limits *limiters
	trail  *audit.Trail
	// authSeconds is the time authorize takes before the handler runs.
	authSeconds prometheus.Histogram
}

// New returns the HTTP handler of the API. reg receives the API's own
// metrics and gather serves /metrics.
func New(cfg *config.Config, st *store.Client, checks []Check, reg prometheus.Registerer, gather prometheus.Gatherer, log *slog.Logger, opts ...Option) http.Handler {
	gin.SetMode(gin.ReleaseMode)
	s := &Server{cfg: cfg, st: st, checks: checks, log: log, fields: catalog.New(st, mapping.Fields.Alias(cfg.IndexPrefix)),
		customers: mapping.Customers.Alias(cfg.IndexPrefix), events: mapping.Events.Alias(cfg.IndexPrefix),
		cursorKeys:   &cursorKeys{st: st, index: mapping.Settings.Alias(cfg.IndexPrefix)},
		segmentIndex: mapping.Segments.Alias(cfg.IndexPrefix),
		jobs:         exportjob.NewStore(st, mapping.ExportJobs.Alias(cfg.IndexPrefix)),
		tagIndex:     mapping.Tags.Alias(cfg.IndexPrefix),
		oneid:        identity.NewResolver(st, identity.IndicesOf(cfg.IndexPrefix), 1024).WithRules(cfg.Identity)}
	s.segmentReferrers = append(s.segmentReferrers, tagReferrers{s})
	roles := cfg.Roles
	if roles == nil {
		roles = access.DefaultRoles()
	}
	s.authn = &access.Authenticator{Keys: access.NewKeys(st, mapping.APIKeys.Alias(cfg.IndexPrefix))}
	s.policy, s.limits = access.NewPolicy(roles), newLimiters(maxCallers)
	s.authSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "cdp_http_auth_seconds",
		Help:    "Time the access middleware takes before a /v1 handler runs: the caller's key or token, the policy, the rate.",
		Buckets: prometheus.ExponentialBuckets(0.00001, 2, 18)})
	reg.MustRegister(s.authSeconds)
	for _, o := range opts {
		o(s)
	}
	if s.trail == nil {
		s.trail = audit.New(audit.Config{Index: mapping.Audit.Alias(cfg.IndexPrefix)}, st, log.With("component", "audit"))
	}
	s.exports = newExportGate(cfg.ExportConcurrency, cfg.ExportQueue, cfg.ExportQueueWait, reg)
	r := gin.New()
	r.Use(requestID)
	r.Use(gin.CustomRecovery(func(c *gin.Context, err any) {
		log.Error("panic in handler", "path", c.FullPath(), "err", err, "request_id", c.GetString(requestIDKey))
		writeError(c, http.StatusInternalServerError, "internal", "internal error")
	}))
	r.Use(observe(reg, log))
	r.HandleMethodNotAllowed = true
	// A path with a trailing slash, or in another case, is a 404 in the
	// contract's shape, not a redirect with an HTML body.
	r.RedirectTrailingSlash, r.RedirectFixedPath = false, false
	gate := newGate(Admission{InFlight: cfg.HTTPInFlight, Queue: cfg.HTTPQueue, QueueWait: cfg.HTTPQueueWait,
		BodyBytes: DefaultAdmission.BodyBytes, BodyTimeout: DefaultAdmission.BodyTimeout}, reg)
	r.NoRoute(func(c *gin.Context) {
		writeError(c, http.StatusNotFound, "not_found", "no route "+c.Request.Method+" "+c.Request.URL.Path)
	})
	r.NoMethod(func(c *gin.Context) {
		writeError(c, http.StatusMethodNotAllowed, "method_not_allowed", c.Request.Method+" is not allowed on "+c.Request.URL.Path)
	})

	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", s.ready)
	r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(gather, promhttp.HandlerOpts{})))
	// The console (package console) is static files: it needs no key to
	// load, and every API call it makes carries one.
	toConsole := func(c *gin.Context) { c.Redirect(http.StatusFound, console.Prefix) }
	r.GET("/", toConsole)
	r.GET("/console", toConsole)
	consoleFiles := gin.WrapH(console.Handler(console.ConfigOf(cfg)))
	r.GET(console.Prefix+"*file", consoleFiles)
	r.HEAD(console.Prefix+"*file", consoleFiles)

	// Authentication and authorization come first, before a body is
	// read or a place taken: one middleware on both groups of /v1.
	v1 := r.Group("/v1", s.authorize, gate.readBody, gate.admit)
	v1.GET("/customers", s.searchBox)
	v1.GET("/customers/lookup", s.lookup)
	v1.POST("/customers/search", s.search)
	v1.POST("/customers/count", s.count)
	v1.POST("/filters/translate", s.translate)
	v1.POST("/filters/preview", s.preview)
	v1.POST("/segments", s.createSegment)
	v1.GET("/segments", s.listSegments)
	v1.GET("/segments/:id", s.getSegment)
	v1.PUT("/segments/:id", s.updateSegment)
	v1.DELETE("/segments/:id", s.deleteSegment)
	v1.POST("/tags", s.createTag)
	v1.GET("/tags", s.listTags)
	v1.GET("/tags/:name", s.getTag)
	v1.PUT("/tags/:name", s.updateTag)
	v1.DELETE("/tags/:name", s.deleteTag)
	v1.POST("/customers/:customer_id/tags", s.manualTags)
	// Streams run for as long as they take: they are bounded by their own
	// gate (exportGate), not by a place of the admission gate, which they
	// would hold for minutes. Whatever every /v1 route needs besides
	// admission (authentication, say) goes on both groups.
	stream := r.Group("/v1", s.authorize)
	stream.GET("/segments/:id/export", s.exportSegment)
	stream.GET("/exports/:id/download", s.downloadExport)
	v1.POST("/exports", s.createExport)
	v1.GET("/exports", s.listExports)
	v1.GET("/exports/:id", s.getExport)
	v1.DELETE("/exports/:id", s.cancelExport)
	v1.GET("/fields", s.listFields)
	v1.POST("/fields", s.declareField)
	v1.GET("/fields/:name/values", s.fieldValues)
	v1.GET("/customers/:customer_id", s.getCustomer)
	v1.GET("/customers/:customer_id/identity-history", s.identityHistory)
	v1.POST("/customers/:customer_id/split", s.split)
	v1.POST("/keys", s.createKey)
	v1.GET("/keys", s.listKeys)
	v1.DELETE("/keys/:id", s.revokeKey)
	v1.GET("/audit", s.listAudit)
	return r
}

// apiError is the body of every error answer (CONTRACT §4).
type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Path    string `json:"path,omitempty"`
}

// errorBody is the JSON of an error answer. RequestID is the id the
// answer's X-Request-Id header carries, under which the log holds the
// details a response never shows (index names, addresses, OpenSearch's
// own words).
type errorBody struct {
	apiError
	RequestID string `json:"request_id,omitempty"`
}

func writeError(c *gin.Context, status int, code, msg string) {
	writeAPIError(c, status, apiError{Code: code, Message: msg})
}

// writeAPIError answers an error with the request's id: every error
// answer goes through here.
func writeAPIError(c *gin.Context, status int, e apiError) {
	c.AbortWithStatusJSON(status, gin.H{"error": errorBody{apiError: e, RequestID: c.GetString(requestIDKey)}})
}

// storeError answers for a failed OpenSearch call: 503 when it is down or
// sheds load, else 500 (a bug: the request was ours). The details go to
// the log, under the request id the answer carries.
func (s *Server) storeError(c *gin.Context, err error) {
	if errors.Is(c.Request.Context().Err(), context.Canceled) {
		c.Abort()
		return
	}
	if store.Unavailable(err) {
		s.log.Warn("opensearch unavailable", "route", c.FullPath(), "err", err, "request_id", c.GetString(requestIDKey))
		c.Header("Retry-After", retryAfter)
		writeError(c, http.StatusServiceUnavailable, "search_unavailable", "the search service is unavailable or overloaded; retry shortly")
		return
	}
	s.log.Error("opensearch request failed", "route", c.FullPath(), "err", err, "request_id", c.GetString(requestIDKey))
	writeError(c, http.StatusInternalServerError, "internal", "internal error")
}

// requestIDKey is the gin context key of the request id.
const requestIDKey = "request_id"

// requestID gives every request an id: the caller's X-Request-Id when it
// is a sane token, else a new random one; the answer carries it back.
func requestID(c *gin.Context) {
	id := c.GetHeader("X-Request-Id")
	if !saneRequestID(id) {
		id = newRequestID()
	}
	c.Set(requestIDKey, id)
	c.Header("X-Request-Id", id)
	c.Next()
}

// newRequestID mints the id of a request that brought no sane one: 16
// random hex digits. The answers net/http writes itself before any
// handler runs (httperrors.go) take theirs from here too.
func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func saneRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

func (s *Server) ready(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 3*time.Second)
	defer cancel()
	status, code := gin.H{}, http.StatusOK
	for _, ch := range s.checks {
		if err := ch.Func(ctx); err != nil {
			s.log.Warn("readiness check failed", "service", ch.Name, "err", err, "request_id", c.GetString(requestIDKey))
			status[ch.Name] = "unreachable"
			code = http.StatusServiceUnavailable
		} else {
			status[ch.Name] = "ok"
		}
	}
	if code != http.StatusOK {
		c.JSON(code, gin.H{"error": errorBody{apiError: apiError{Code: "not_ready", Message: "a backing service is unreachable"}, RequestID: c.GetString(requestIDKey)}, "checks": status})
		return
	}
	c.JSON(code, gin.H{"status": "ready", "checks": status})
}

func observe(reg prometheus.Registerer, log *slog.Logger) gin.HandlerFunc {
	dur := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "cdp_http_request_seconds", Help: "HTTP request latency by route, method and status.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
	}, []string{"route", "method", "status"})
	reg.MustRegister(dur)
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		status := c.Writer.Status()
		dur.WithLabelValues(route, c.Request.Method, strconv.Itoa(status)).Observe(time.Since(start).Seconds())
		if status >= 500 {
			log.Error("request failed", "route", route, "status", status, "request_id", c.GetString(requestIDKey))
		}
	}
}
