package api

import (
	"bytes"
	"cdp/access"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"cdp/query"
	"cdp/query/dsl"
	"cdp/schema"
	"cdp/store"
)

// Size limits of a search request (CONTRACT §4).
const (
	defaultSize = 20
	maxSize     = 1000
	maxBody     = 4 << 20
)

// searchRequest is the body of search, count and translate.
type searchRequest struct {
	Filter json.RawMessage   `json:"filter"`
	Size   *int              `json:"size"`
	Sort   []json.RawMessage `json:"sort"`
	Cursor *string           `json:"cursor"`
	Fields []string          `json:"fields"`
	TZ     string            `json:"tz"`
}

type sortSpec struct {
	Field string `json:"field"`
	Order string `json:"order"`
}

// badRequest is a 400 naming what is wrong and where.
type badRequest struct{ code, message, path string }

func (e *badRequest) Error() string { return e.message }

func invalid(path, format string, args ...any) *badRequest {
	return &badRequest{code: "invalid_request", message: fmt.Sprintf(format, args...), path: path}
}

// decodeBody reads a JSON body strictly: unknown keys and trailing data are
// errors that name the offending key.
func decodeBody(c *gin.Context, allowed []string, into any) error {
	body, err := io.ReadAll(io.LimitReader(c.Request.Body, maxBody+1))
	if err != nil {
		return invalid("", "cannot read the body: %v", err)
	}
	if len(body) > maxBody {
		return invalid("", "the body is larger than %d bytes", maxBody)
	}
	// An empty body is a client that forgot to send one, never "match
	// everything" (CONTRACT §4); nor is a JSON null, which decodes into a
	// map without error.
	switch trimmed := bytes.TrimSpace(body); {
	case len(trimmed) == 0:
		return &badRequest{code: "invalid_json", message: "the body is empty: a JSON object is expected"}
	case trimmed[0] != '{':
		return &badRequest{code: "invalid_json", message: "the body is not a JSON object"}
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(body, &keys); err != nil {
		return &badRequest{code: "invalid_json", message: "the body is not a JSON object: " + err.Error()}
	}
	for k := range keys {
		if !slices.Contains(allowed, k) {
			return invalid(k, "unknown key %q (allowed: %s)", k, strings.Join(allowed, ", "))
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(into); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return invalid(te.Field, "%s must be %s, not a JSON %s", te.Field, jsonKind(te.Type), te.Value)
		}
		return &badRequest{code: "invalid_json", message: "the body is not valid JSON"}
	}
	return nil
}

// jsonKind names the JSON a Go type is decoded from, in a client's words
// ("a list", not "[]api.sortSpec").
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list"
	}
	return "an object"
}

// writeBad answers a 400 for err when it is a *badRequest or a
// *query.Error (whose path is relative to the filter root, as the
// contract wants).
func (s *Server) writeBad(c *gin.Context, err error) bool {
	var br *badRequest
	var qe *query.Error
	var ff *access.ForbiddenField
	switch {
	case errors.As(err, &ff):
		writeAPIError(c, http.StatusForbidden, apiError{Code: "forbidden_field", Message: ff.Error(), Path: ff.Path})
	case errors.As(err, &br):
		writeAPIError(c, http.StatusBadRequest, apiError{Code: br.code, Message: br.message, Path: br.path})
	case errors.As(err, &qe):
		writeAPIError(c, http.StatusBadRequest, apiError{Code: qe.Code, Message: qe.Message, Path: qe.Path})
	default:
		return false
	}
	return true
}

// compiled is a request turned into what OpenSearch needs.
type compiled struct {
	query dsl.Query
	loc   *time.Location
}

// compile parses the filter (see parse), its segment nodes resolved from
// the saved segments, and translates it.
func (s *Server) compile(ctx context.Context, req *searchRequest) (*compiled, error) {
	loc := s.cfg.Location
	if req.TZ != "" {
		l, err := time.LoadLocation(req.TZ)
		if err != nil || req.TZ == "Local" {
			return nil, invalid("tz", "tz %q is not an IANA time zone name", req.TZ)
		}
		loc = l
	}
	raw := req.Filter
	switch {
	case raw == nil:
		// No filter key: every customer, as {"all": []} says explicitly.
		raw = json.RawMessage(`{"all":[]}`)
	case string(bytes.TrimSpace(raw)) == "null":
		return nil, &badRequest{code: "invalid_filter", path: "filter",
			message: `filter is null: send a filter object, or {"all": []} to match every customer`}
	}
	f, err := s.parse(ctx, raw, s.resolver(ctx, nil))
	if err != nil {
		return nil, err
	}
	// Rolling windows end at the request's second, not its millisecond:
	// the same filter asked again within that second is then the same
	// query, which OpenSearch answers from its request cache (counts of
	// event windows took twice as long as the same query sent twice).
	now := time.Now().Truncate(time.Second)
	return &compiled{query: scoped(ctx, query.Translate(f, query.Options{Now: now, Location: loc})), loc: loc}, nil
}

// parse parses a filter against the live catalog, resolving its segment
// nodes with res; when it does not parse, the catalog is reloaded (at most
// once a second) and the filter parsed again: it may name a field
// declared since.
func (s *Server) parse(ctx context.Context, raw json.RawMessage, res query.SegmentResolver) (query.Filter, error) {
	// A masked field is filtered with is_set / is_not_set only: any
	// other operator would let its values be recovered by bisecting.
	if err := access.ViewFrom(ctx).CheckFilter(raw); err != nil {
		return nil, err
	}
	cat, err := s.fields.Catalog(ctx)
	if err != nil {
		return nil, err
	}
	f, err := (&query.Parser{Catalog: cat, Limits: s.cfg.FilterLimits, Segments: res}).Parse(raw)
	var qe *query.Error
	if errors.As(err, &qe) {
		if cat, err = s.fields.ReloadStale(ctx); err != nil {
			return nil, err
		}
		f, err = (&query.Parser{Catalog: cat, Limits: s.cfg.FilterLimits, Segments: res}).Parse(raw)
	}
	return f, err
}

// failed answers for an error of compile or of OpenSearch.
func (s *Server) failed(c *gin.Context, err error) {
	if s.writeBad(c, err) {
		return
	}
	if store.StatusOf(err) == http.StatusBadRequest {
		s.log.Warn("opensearch rejected a query", "route", c.FullPath(), "err", err, "request_id", c.GetString(requestIDKey))
		writeError(c, http.StatusBadRequest, "query_rejected", "the search service could not run this query; the request id names it in the service's log")
		return
	}
	s.storeError(c, err)
}

// filterOnly reads a body of just a filter and a time zone and compiles
// it; it answers the error itself and returns nil then.
func (s *Server) filterOnly(c *gin.Context) *compiled {
	var req searchRequest
	if err := decodeBody(c, []string{"filter", "tz"}, &req); err != nil {
		s.failed(c, err)
		return nil
	}
	q, err := s.compile(c.Request.Context(), &req)
	if err != nil {
		s.failed(c, err)
		return nil
	}
	return q
}

func (s *Server) translate(c *gin.Context) {
	if q := s.filterOnly(c); q != nil {
		c.JSON(http.StatusOK, gin.H{"query": q.query})
	}
}

func (s *Server) count(c *gin.Context) {
	q := s.filterOnly(c)
	if q == nil {
		return
	}
	var resp struct {
		Count int64 `json:"count"`
	}
	if err := s.st.Do(c.Request.Context(), http.MethodPost, "/"+s.customers+"/_count", gin.H{"query": q.query}, &resp); err != nil {
		s.failed(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"count": resp.Count})
}

// cursor is the opaque next_cursor: the sort values of the last customer
// of a page, the sort they belong to, and, when the sort is on values that
// can change, a point in time.
//
// Paging is search_after on the request's sort with customer_id as the
// final tie-breaker. Under the default sort (customer_id alone) that is
// stable by itself: ids never change, so no customer repeats or is skipped
// while documents change. A sort on other fields (total spend, say) could
// move a customer across a page boundary while it changes, so the first
// request for a second page opens a point in time, and that page and every
// later one read the same snapshot. It is opened then, not with the first
// page: most list views never ask for a second page, and a point in time
// is a scarce resource of the cluster (300 open per node by default). The
// trade-off: a change between the first and second page can still move a
// customer across that one boundary. When OpenSearch refuses a new point
// in time, paging goes on without one.
type cursor struct {
	After []json.RawMessage `json:"a"`
	Sort  string            `json:"s"`
	PIT   string            `json:"p,omitempty"`
}

// pitLife is how long a cursor's snapshot lives after each page;
// pitKeepAlive spells it for OpenSearch and for error messages.
const (
	pitLife      = 5 * time.Minute
	pitKeepAlive = "5m"
)

func (s *Server) search(c *gin.Context) {
	var req searchRequest
	if err := decodeBody(c, []string{"filter", "size", "sort", "cursor", "fields", "tz"}, &req); err != nil {
		s.failed(c, err)
		return
	}
	p, err := s.plan(c.Request.Context(), &req)
	if err != nil {
		s.failed(c, err)
		return
	}
	resp, err := s.st.Search(c.Request.Context(), p.index, p.body)
	if err != nil {
		if st := store.StatusOf(err); p.cur.PIT != "" && st != 0 && st != http.StatusTooManyRequests && st != http.StatusServiceUnavailable {
			// OpenSearch answers 404 for an expired snapshot and 400 or 500
			// for an id it cannot read.
			s.failed(c, invalid("cursor", "cursor expired or invalid: its snapshot lives %s after each page; search again", pitKeepAlive))
			return
		}
		s.failed(c, err)
		return
	}
	next := []byte("null")
	if n := len(resp.Hits); n == p.size {
		next, _ = json.Marshal(sealCursor(p.key, cursor{After: resp.Hits[n-1].Sort, Sort: p.sortKey, PIT: resp.PITID}, p.bound))
	} else if p.cur.PIT != "" {
		s.closePIT(p.cur.PIT)
	}
	c.Data(http.StatusOK, "application/json; charset=utf-8", page(resp, next, callerOf(c).View))
}

// searchPlan is a checked search request turned into an OpenSearch search.
type searchPlan struct {
	index   string // "" under a point in time
	body    gin.H
	size    int
	sortKey string
	cur     cursor // the cursor the request resumes from, if any
	key     []byte // signs the next cursor
	bound   []byte // the search the cursors are bound to
}

// plan checks every part of a search request and builds the search.
func (s *Server) plan(ctx context.Context, req *searchRequest) (*searchPlan, error) {
	p := &searchPlan{index: s.customers, size: defaultSize}
	if req.Size != nil {
		p.size = *req.Size
	}
	if p.size < 1 || p.size > maxSize {
		return nil, invalid("size", "size must be between 1 and %d, got %d", maxSize, p.size)
	}
	q, err := s.compile(ctx, req)
	if err != nil {
		return nil, err
	}
	cat, err := s.fields.Catalog(ctx)
	if err != nil {
		return nil, err
	}
	// Sorting by a masked field would give its values' order away.
	if v := access.ViewFrom(ctx); v.Masks() {
		for i, raw := range req.Sort {
			var e struct {
				Field string `json:"field"`
			}
			if json.Unmarshal(raw, &e) == nil && v.Masked(e.Field) {
				return nil, &access.ForbiddenField{Path: fmt.Sprintf("sort[%d].field", i), Field: e.Field}
			}
		}
	}
	sortBody, sortKey, err := sortClause(cat, req.Sort)
	if err != nil {
		return nil, err
	}
	p.sortKey = sortKey
	p.body = gin.H{"query": q.query, "size": p.size, "sort": sortBody, "track_total_hits": true,
		"_source": gin.H{"excludes": schema.Internal}}
	if len(req.Fields) > 0 {
		include, err := projection(cat, req.Fields)
		if err != nil {
			return nil, err
		}
		p.body["_source"] = gin.H{"includes": include}
	}
	if p.key, err = s.cursorKeys.get(ctx); err != nil {
		return nil, err
	}
	p.bound = cursorSearch(req, sortKey)
	if req.Cursor != nil && *req.Cursor != "" {
		if err := s.resume(ctx, p, *req.Cursor, len(req.Sort) > 0); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// resume continues the planned search after the cursor's last customer,
// under the cursor's point in time, or a new one when the sort is on
// values that can change (see cursor).
func (s *Server) resume(ctx context.Context, p *searchPlan, text string, changing bool) error {
	cur, err := openCursor(p.key, text, p.bound)
	if err != nil || cur.Sort != p.sortKey {
		return invalid("cursor", "cursor is not one this search returned: it was changed, or it belongs to another filter, sort or projection")
	}
	p.body["search_after"] = cur.After
	if cur.PIT == "" && changing {
		if cur.PIT, err = s.openPIT(ctx); err != nil {
			s.log.Warn("paging without a point in time", "err", err)
			cur.PIT = ""
		}
	}
	if cur.PIT != "" {
		p.body["pit"] = gin.H{"id": cur.PIT, "keep_alive": pitKeepAlive}
		p.index = "" // a search under a point in time names no index
	}
	p.cur = cur
	return nil
}

// page is the answer of a search. The documents are passed through as
// OpenSearch wrote them, not decoded and encoded again (encoding/json
// would also re-validate and compact each one).
func page(resp *store.SearchResult, next []byte, v access.View) []byte {
	var b bytes.Buffer
	b.WriteString(`{"total":`)
	b.WriteString(strconv.FormatInt(resp.Total, 10))
	b.WriteString(`,"customers":[`)
	writeSources(&b, resp.Hits, v)
	b.WriteString(`],"next_cursor":`)
	b.Write(next)
	b.WriteByte('}')
	return b.Bytes()
}

// writeSources writes the hits' sources, comma separated, as OpenSearch
// wrote them ({} for a hit without one), masked as the view says.
func writeSources(b *bytes.Buffer, hits []store.Hit, v access.View) {
	for i, h := range hits {
		if i > 0 {
			b.WriteByte(',')
		}
		if len(h.Source) == 0 {
			b.WriteString("{}")
			continue
		}
		src, err := v.MaskJSON(h.Source)
		if err != nil {
			// Not a JSON object: nothing of it goes out in clear.
			b.WriteString("{}")
			continue
		}
		b.Write(src)
	}
}

// scopedQuery is a query limited to the caller's customers.
type scopedQuery struct{ q any }

func (s scopedQuery) MarshalJSON() ([]byte, error) { return json.Marshal(s.q) }

// scoped limits q to the customers of ctx's caller (sales: owner_id is
// theirs or none); every query on customers a request builds goes
// through here or through compile, which calls it.
func scoped(ctx context.Context, q dsl.Query) dsl.Query {
	v := access.ViewFrom(ctx)
	if v.Owner == "" {
		return q
	}
	return scopedQuery{v.ScopeQuery(q)}
}

func (s *Server) openPIT(ctx context.Context) (string, error) {
	return s.st.OpenPIT(ctx, s.customers, pitLife)
}

// closePIT frees a snapshot no page needs any more; if it fails, the
// keep-alive frees it anyway.
func (s *Server) closePIT(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.st.ClosePIT(ctx, id); err != nil {
		s.log.Warn("close point in time", "err", err)
	}
}

// maxSortEntries bounds the fields a search sorts on.
const maxSortEntries = 8

// sortEntry reads one entry of a sort strictly: an object of field and
// order, nothing else.
func sortEntry(raw json.RawMessage, path string) (sortSpec, error) {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil || keys == nil {
		return sortSpec{}, invalid(path, "a sort entry must be an object with field and order")
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		if k != "field" && k != "order" {
			return sortSpec{}, invalid(path+"."+k, "unknown key %q in a sort entry (allowed: field, order)", k)
		}
	}
	var sp sortSpec
	if json.Unmarshal(keys["field"], &sp.Field) != nil || sp.Field == "" {
		return sortSpec{}, invalid(path+".field", "field must be a field name")
	}
	if o, ok := keys["order"]; ok && json.Unmarshal(o, &sp.Order) != nil {
		return sortSpec{}, invalid(path+".order", "order must be asc or desc")
	}
	return sp, nil
}

// sortClause validates the requested sort and appends the customer_id
// tie-breaker. key identifies the sort inside cursors.
func sortClause(cat *schema.Catalog, entries []json.RawMessage) ([]any, string, error) {
	if len(entries) > maxSortEntries {
		return nil, "", invalid("sort", "a search sorts on at most %d fields, got %d", maxSortEntries, len(entries))
	}
	out := make([]any, 0, len(entries)+1)
	var key strings.Builder
	for i, raw := range entries {
		path := fmt.Sprintf("sort[%d]", i)
		sp, err := sortEntry(raw, path)
		if err != nil {
			return nil, "", err
		}
		f, ok := cat.Lookup(sp.Field)
		if !ok {
			return nil, "", invalid(path+".field", "unknown field %q", sp.Field)
		}
		if !f.Sortable {
			return nil, "", invalid(path+".field", "field %q cannot be sorted on (lists, nested and text fields cannot)", sp.Field)
		}
		order := strings.ToLower(sp.Order)
		if order == "" {
			order = "asc"
		}
		if order != "asc" && order != "desc" {
			return nil, "", invalid(path+".order", "order must be asc or desc, got %q", sp.Order)
		}
		out = append(out, gin.H{sp.Field: gin.H{"order": order, "missing": "_last", "unmapped_type": "keyword"}})
		fmt.Fprintf(&key, "%s:%s,", sp.Field, order)
	}
	out = append(out, gin.H{"customer_id": "asc"})
	return out, key.String(), nil
}

// projection checks the requested fields: catalog fields and the
// document's top-level objects (schema.Objects); customer_id always comes
// back.
func projection(cat *schema.Catalog, fields []string) ([]string, error) {
	top := schema.Objects()
	out := []string{"customer_id"}
	for i, f := range fields {
		if _, ok := cat.Lookup(f); !ok && !slices.Contains(top, f) {
			return nil, invalid(fmt.Sprintf("fields[%d]", i), "unknown field %q", f)
		}
		out = append(out, f)
	}
	return out, nil
}
