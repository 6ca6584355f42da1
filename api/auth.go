package api

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"

	"cdp/access"
	"cdp/audit"
)

// WithOIDC makes the API accept the JWTs o verifies, besides API keys.
func WithOIDC(o *access.OIDC) Option { return func(s *Server) { s.authn.OIDC = o } }

// WithAudit makes the API write its audit records to t (which the caller
// closes after the server stops, flushing what is batched). Without it
// the API starts a trail of its own.
func WithAudit(t *audit.Trail) Option { return func(s *Server) { s.trail = t } }

// callerKey is the gin context key of the access.Caller.
const callerKey = "caller"

// auditTargetKey is the gin context key a handler sets to name the target
// of the audit record when the route's parameter does not (a new id).
const auditTargetKey = "audit_target"

// audited maps a route to its audit action; sync ones are written before
// the answer goes out, and the answer fails when they cannot be.
var audited = map[string]struct {
	action string
	sync   bool
}{
	"GET /v1/customers/:customer_id":                  {"customer.view", false},
	"GET /v1/customers/lookup":                        {"customer.view", false},
	"GET /v1/customers/:customer_id/identity-history": {"customer.view", false},
	"POST /v1/customers/search":                       {"customer.search", false},
	"GET /v1/customers":                               {"searchbox.query", false},
	"POST /v1/exports":                                {"export.create", true},
	"GET /v1/segments/:id/export":                     {"export.create", true},
	"GET /v1/exports/:id/download":                    {"export.download", true},
	"POST /v1/segments":                               {"segment.create", false},
	"PUT /v1/segments/:id":                            {"segment.update", false},
	"DELETE /v1/segments/:id":                         {"segment.delete", false},
	"POST /v1/tags":                                   {"tag.create", false},
	"PUT /v1/tags/:name":                              {"tag.update", false},
	"DELETE /v1/tags/:name":                           {"tag.delete", false},
	"POST /v1/customers/:customer_id/tags":            {"tag.update", false},
	"POST /v1/fields":                                 {"field.declare", false},
	"POST /v1/keys":                                   {"key.create", true},
	"DELETE /v1/keys/:id":                             {"key.revoke", true},
}

// bearer returns the token of the Authorization header ("" when none).
func bearer(c *gin.Context) string {
	h := c.GetHeader("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// authorize is the one place of authentication and authorization of
// every /v1 route: who calls (401 when no one), whether the role may use
// the route (403), the caller's rate (429); it puts the caller and the
// role's view (masks, scope) on the request's context for the query
// builder and the answers, and writes the audit record of the route.
func (s *Server) authorize(c *gin.Context) {
	start := time.Now()
	route := c.Request.Method + " " + c.FullPath()
	p, err := s.authn.Authenticate(c.Request.Context(), bearer(c))
	if err != nil {
		if !errors.Is(err, access.ErrUnauthenticated) {
			s.storeError(c, err)
			return
		}
		c.Header("WWW-Authenticate", `Bearer realm="cdp"`)
		writeError(c, http.StatusUnauthorized, "unauthenticated", "a valid API key or token is required: Authorization: Bearer <token>")
		s.trail.Log(s.record(c, access.Principal{}, "auth.denied", route, http.StatusUnauthorized))
		return
	}
	if !s.policy.Allows(p.Role, c.Request.Method, c.FullPath()) {
		writeError(c, http.StatusForbidden, "forbidden", "the role "+p.Role+" may not "+route)
		s.trail.Log(s.record(c, p, "auth.denied", route, http.StatusForbidden))
		return
	}
	if wait, ok := s.limits.allow(p, s.policy); !ok {
		c.Header("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		writeError(c, http.StatusTooManyRequests, "rate_limited", "too many requests for this key; retry after the Retry-After seconds")
		return
	}
	caller := access.Caller{Principal: p, View: s.policy.ViewOf(p)}
	c.Set(callerKey, caller)
	c.Request = c.Request.WithContext(access.WithCaller(c.Request.Context(), caller))
	s.authSeconds.Observe(time.Since(start).Seconds())
	a, ok := audited[route]
	if !ok {
		c.Next()
		// Every 403 is recorded (§7), a refusal by a handler too: a filter
		// on a masked field (forbidden_field) is someone trying to read it.
		if c.Writer.Status() == http.StatusForbidden {
			s.trail.Log(s.record(c, p, "auth.denied", route, http.StatusForbidden))
		}
		return
	}
	if a.sync {
		c.Writer = &auditWriter{ResponseWriter: c.Writer, c: c, s: s, p: p, action: a.action}
		c.Next()
		return
	}
	c.Next()
	s.trail.Log(s.record(c, p, a.action, s.target(c), c.Writer.Status()))
}

func (s *Server) record(c *gin.Context, p access.Principal, action, target string, status int) audit.Record {
	return audit.Record{At: time.Now().UTC(), Actor: p.Actor, Role: p.Role, Action: action, Target: target, Status: status, IP: c.ClientIP()}
}

// target is what an audited request acted on: what the handler named, or
// the route's id parameter, or the search box's query.
func (s *Server) target(c *gin.Context) string {
	if t := c.GetString(auditTargetKey); t != "" {
		return t
	}
	for _, p := range []string{"customer_id", "id", "name"} {
		if v := c.Param(p); v != "" {
			return v
		}
	}
	return c.Query("q")
}

// auditWriter writes the audit record of its request, with the answer's
// status, before the answer's header goes out; when the record cannot be
// written the answer is a 503 instead, and nothing of it is sent.
type auditWriter struct {
	gin.ResponseWriter
	c      *gin.Context
	s      *Server
	p      access.Principal
	action string
	done   bool
	failed bool
}

func (w *auditWriter) WriteHeader(status int) {
	if !w.done && !w.record(status) || w.failed {
		return
	}
	w.ResponseWriter.WriteHeader(status)
}

// record writes the request's audit record with status, once; when it
// cannot, it answers the 503 itself and returns false.
func (w *auditWriter) record(status int) bool {
	w.done = true
	ctx, cancel := context.WithTimeout(context.WithoutCancel(w.c.Request.Context()), 5*time.Second)
	defer cancel()
	err := w.s.trail.Write(ctx, w.s.record(w.c, w.p, w.action, w.s.target(w.c), status))
	if err == nil {
		return true
	}
	w.s.log.Error("audit record not written: the answer is refused", "action", w.action, "err", err, "request_id", w.c.GetString(requestIDKey))
	w.failed = true
	h := w.ResponseWriter.Header()
	for k := range h {
		if k != "X-Request-Id" {
			h.Del(k)
		}
	}
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Retry-After", retryAfter)
	w.ResponseWriter.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.ResponseWriter.Write([]byte(`{"error":{"code":"audit_unavailable","message":"the audit trail cannot be written; retry shortly","request_id":"` + w.c.GetString(requestIDKey) + `"}}`))
	return false
}

func (w *auditWriter) WriteHeaderNow() {
	if !w.done {
		w.WriteHeader(w.ResponseWriter.Status())
	}
	w.ResponseWriter.WriteHeaderNow()
}

func (w *auditWriter) Write(b []byte) (int, error) {
	if !w.done {
		w.WriteHeader(w.ResponseWriter.Status())
	}
	if w.failed {
		return 0, errAuditFailed
	}
	return w.ResponseWriter.Write(b)
}

func (w *auditWriter) WriteString(s string) (int, error) { return w.Write([]byte(s)) }

// Flush sends the header (after its audit record) before flushing.
func (w *auditWriter) Flush() {
	if !w.done {
		w.WriteHeader(w.ResponseWriter.Status())
	}
	if !w.failed {
		w.ResponseWriter.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *auditWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Failed reports whether the answer was refused for want of its audit
// record (the handler stops writing).
func (w *auditWriter) Failed() bool { return w.failed }

var errAuditFailed = errors.New("audit record not written")

// auditNow writes the audit record of a synchronously audited request
// now, with the status it is about to answer, before the handler does
// what cannot be taken back (queue an export job); when it cannot be
// written it answers the 503 and returns false.
func (s *Server) auditNow(c *gin.Context, status int) bool {
	w, ok := c.Writer.(*auditWriter)
	if !ok {
		return true
	}
	if w.done {
		return !w.failed
	}
	if !w.record(status) {
		c.Abort()
		return false
	}
	return true
}

// callerOf returns the caller the middleware put on c.
func callerOf(c *gin.Context) access.Caller {
	v, _ := c.Get(callerKey)
	caller, _ := v.(access.Caller)
	return caller
}

// limiters are the per-caller rate limits of the roles: those of the
// callers seen last, at most maxCallers of them, so that a stream of
// new callers (OIDC users come and go) cannot grow the process without
// bound. A caller forgotten has been idle the longest: its budget would
// be full again, or nearly, which is what a new limiter gives it.
type limiters struct {
	mu sync.Mutex
	m  *lru.Cache[string, *rate.Limiter]
}

// maxCallers is how many callers' rate limits are kept.
const maxCallers = 1 << 14

func newLimiters(n int) *limiters {
	m, _ := lru.New[string, *rate.Limiter](n)
	return &limiters{m: m}
}

// allow takes one request of p's budget; when there is none left it
// returns how long until there is.
func (l *limiters) allow(p access.Principal, pol *access.Policy) (time.Duration, bool) {
	role, _ := pol.Role(p.Role)
	if role.RatePerSecond <= 0 {
		return 0, true
	}
	id := p.KeyID
	if id == "" {
		id = "sub:" + p.Actor
	}
	l.mu.Lock()
	lim, _ := l.m.Get(id)
	if lim == nil || lim.Limit() != rate.Limit(role.RatePerSecond) {
		burst := role.Burst
		if burst < 1 {
			burst = int(math.Ceil(role.RatePerSecond))
		}
		lim = rate.NewLimiter(rate.Limit(role.RatePerSecond), burst)
		l.m.Add(id, lim)
	}
	l.mu.Unlock()
	r := lim.Reserve()
	if d := r.Delay(); d > 0 {
		r.Cancel()
		return d, false
	}
	return 0, true
}
