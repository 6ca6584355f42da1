package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"cdp/access"
	"cdp/query"
	"cdp/store"
)

// Saved segments (CONTRACT §4.1) live in the segments index (mapping.Segments).
//
// Read-after-write: a segment node is resolved with a realtime GET by id,
// never a search, so a segment saved a moment ago resolves at once. Every
// write waits for the refresh (refresh=wait_for), so that the searches of
// this file (the list, the referrers of a delete, the segments of a 360
// view) see it as soon as the write is answered too.
//
// Concurrent writes: an update or delete and a save that refers to the
// same segment are not serialized; a segment created while another one it
// refers to is being deleted may be left referring to a missing segment,
// which every use of it then reports as a 400 naming the path.

// Bounds of saved segments.
const (
	// MaxSegments bounds the saved segments of a deployment: the 360 view
	// tests a customer against every one of them in one request (a
	// filters aggregation), so their number is what that request costs.
	MaxSegments = 1000
	maxNameLen  = 256
	maxDescLen  = 4096
)

// segmentDoc is a saved segment as stored.
type segmentDoc struct {
	ID          string          `json:"id"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Filter      json.RawMessage `json:"filter"`
	// Refs are the ids of the segments the filter names itself (not
	// those they name in turn).
	Refs      []string `json:"refs"`
	CreatedAt string   `json:"created_at"`
	UpdatedAt string   `json:"updated_at"`
}

// segmentView is a saved segment as answered.
type segmentView struct {
	ID          string          `json:"id"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Filter      json.RawMessage `json:"filter"`
	CreatedAt   string          `json:"created_at"`
	UpdatedAt   string          `json:"updated_at"`
	Size        *int64          `json:"size,omitempty"`
}

// view is the segment as answered to a caller with view v: values of
// masked fields in its filter are masked.
func (d *segmentDoc) view(v access.View) segmentView {
	return segmentView{ID: d.ID, Name: d.Name, Description: d.Description, Filter: v.MaskFilter(d.Filter), CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt}
}

// SegmentReferrer finds what refers to a saved segment besides other
// segments. Tag rules (CONTRACT §4.2) will be one: a rule whose filter
// names the segment keeps it from being deleted. Register one with
// WithSegmentReferrer.
type SegmentReferrer interface {
	// SegmentReferrers names what refers to segment id, each as the
	// message of the 409 should say it ("tag rule high_value").
	SegmentReferrers(ctx context.Context, id string) ([]string, error)
}

// WithSegmentReferrer adds a SegmentReferrer that DELETE /v1/segments/{id}
// consults.
func WithSegmentReferrer(r SegmentReferrer) Option {
	return func(s *Server) { s.segmentReferrers = append(s.segmentReferrers, r) }
}

// segmentResolver resolves the segment nodes of one request with realtime
// GETs by id, each segment read at most once per request. override holds
// filters that stand in for stored ones: the new filter of a segment being
// updated, so that a cycle through it is found before it is saved.
type segmentResolver struct {
	ctx      context.Context
	st       *store.Client
	index    string
	override map[string]json.RawMessage
	seen     map[string]json.RawMessage
}

func (s *Server) resolver(ctx context.Context, override map[string]json.RawMessage) *segmentResolver {
	return &segmentResolver{ctx: ctx, st: s.st, index: s.segmentIndex, override: override, seen: map[string]json.RawMessage{}}
}

// Segment implements query.SegmentResolver.
func (r *segmentResolver) Segment(id string) (json.RawMessage, bool, error) {
	if f, ok := r.override[id]; ok {
		return f, true, nil
	}
	if f, ok := r.seen[id]; ok {
		return f, f != nil, nil
	}
	doc, found, err := r.get(id)
	if err != nil {
		return nil, false, err
	}
	if !found {
		r.seen[id] = nil
		return nil, false, nil
	}
	r.seen[id] = doc.Filter
	return doc.Filter, true, nil
}

func (r *segmentResolver) get(id string) (*segmentDoc, bool, error) {
	return getSegment(r.ctx, r.st, r.index, id)
}

// getSegment reads one saved segment by id, realtime.
func getSegment(ctx context.Context, st *store.Client, index, id string) (*segmentDoc, bool, error) {
	if id == "" || len(id) > maxIDBytes || !utf8.ValidString(id) {
		return nil, false, nil
	}
	var doc segmentDoc
	found, err := st.GetSource(ctx, index, id, &doc)
	if err != nil || !found {
		return nil, false, err
	}
	return &doc, true, nil
}

// atLimit answers 409 code, and reports true, when index holds
// MaxSegments definitions already (saved segments or tag rules, what),
// or fails the request when it cannot tell.
func (s *Server) atLimit(c *gin.Context, index, code, what string) bool {
	var cnt struct {
		Count int64 `json:"count"`
	}
	if err := s.st.Do(c.Request.Context(), http.MethodGet, "/"+index+"/_count", nil, &cnt); err != nil {
		s.failed(c, err)
		return true
	}
	if cnt.Count >= MaxSegments {
		writeError(c, http.StatusConflict, code, fmt.Sprintf("a deployment holds at most %d %s; delete one first", MaxSegments, what))
		return true
	}
	return false
}

// directRefs lists the segments a parsed filter names itself. Segment
// nodes stand only where all, any and not lead (never in nested or event
// wheres), so those are the only nodes walked.
func directRefs(f query.Filter) []string {
	var out []string
	query.Walk(f, func(f query.Filter) bool {
		switch n := f.(type) {
		case *query.All, *query.Any, *query.Not:
			return true
		case *query.Segment:
			if !slices.Contains(out, n.ID) {
				out = append(out, n.ID)
			}
		}
		return false
	})
	return out
}

// segmentRequest is the body of POST and PUT.
type segmentRequest struct {
	Name        *string         `json:"name"`
	Filter      json.RawMessage `json:"filter"`
	Description *string         `json:"description"`
}

// checkSegment validates a segment's body; id is the segment being
// updated ("" for a new one). It returns the refs of the filter.
func (s *Server) checkSegment(ctx context.Context, req *segmentRequest, id string) ([]string, error) {
	if req.Name == nil || strings.TrimSpace(*req.Name) == "" {
		return nil, invalid("name", "name is required")
	}
	if utf8.RuneCountInString(*req.Name) > maxNameLen {
		return nil, invalid("name", "name is at most %d characters long", maxNameLen)
	}
	if req.Description != nil && utf8.RuneCountInString(*req.Description) > maxDescLen {
		return nil, invalid("description", "description is at most %d characters long", maxDescLen)
	}
	if t := bytes.TrimSpace(req.Filter); len(t) == 0 || string(t) == "null" {
		return nil, &badRequest{code: "invalid_filter", path: "filter", message: `filter is required: send a filter object, or {"all": []} for every customer`}
	}
	var override map[string]json.RawMessage
	if id != "" {
		override = map[string]json.RawMessage{id: req.Filter}
	}
	f, err := s.parse(ctx, req.Filter, s.resolver(ctx, override))
	if err != nil {
		return nil, err
	}
	return directRefs(f), nil
}

func newSegmentID() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return "seg_" + hex.EncodeToString(b[:])
}

func now() string { return time.Now().UTC().Format(time.RFC3339Nano) }

func (s *Server) createSegment(c *gin.Context) {
	ctx := c.Request.Context()
	var req segmentRequest
	if err := decodeBody(c, []string{"name", "filter", "description"}, &req); err != nil {
		s.failed(c, err)
		return
	}
	refs, err := s.checkSegment(ctx, &req, "")
	if err != nil {
		s.failed(c, err)
		return
	}
	if s.atLimit(c, s.segmentIndex, "too_many_segments", "saved segments") {
		return
	}
	at := now()
	doc := segmentDoc{ID: newSegmentID(), Name: *req.Name, Filter: compact(req.Filter), Refs: refs, CreatedAt: at, UpdatedAt: at}
	if req.Description != nil {
		doc.Description = *req.Description
	}
	if err := s.st.Do(ctx, http.MethodPut, "/"+s.segmentIndex+"/_create/"+doc.ID+"?refresh=wait_for", doc, nil); err != nil {
		s.failed(c, err)
		return
	}
	s.log.Info("segment created", "segment", doc.ID, "refs", refs, "request_id", c.GetString(requestIDKey))
	s.redefine("segment", doc.ID)
	c.JSON(http.StatusCreated, doc.view(callerOf(c).View))
}

// compact removes the insignificant white space of valid JSON.
func compact(raw json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return raw
	}
	return b.Bytes()
}

// segmentParam reads the saved segment the path names, answering 404
// itself when there is none.
func (s *Server) segmentParam(c *gin.Context) (*segmentDoc, bool) {
	id := c.Param("id")
	doc, found, err := getSegment(c.Request.Context(), s.st, s.segmentIndex, id)
	if err != nil {
		s.failed(c, err)
		return nil, false
	}
	if !found {
		writeError(c, http.StatusNotFound, "segment_not_found", fmt.Sprintf("no segment %q", id))
		return nil, false
	}
	return doc, true
}

func (s *Server) getSegment(c *gin.Context) {
	doc, ok := s.segmentParam(c)
	if !ok {
		return
	}
	q, err := s.compile(c.Request.Context(), &searchRequest{Filter: segmentNode(doc.ID)})
	if err != nil {
		s.failed(c, err)
		return
	}
	var resp struct {
		Count int64 `json:"count"`
	}
	if err := s.st.Do(c.Request.Context(), http.MethodPost, "/"+s.customers+"/_count", gin.H{"query": q.query}, &resp); err != nil {
		s.failed(c, err)
		return
	}
	v := doc.view(callerOf(c).View)
	v.Size = &resp.Count
	c.JSON(http.StatusOK, v)
}

// segmentNode is the filter {"segment": id}.
func segmentNode(id string) json.RawMessage {
	b, _ := json.Marshal(map[string]string{"segment": id})
	return b
}

// allSegments reads every saved segment, oldest first.
func (s *Server) allSegments(ctx context.Context) ([]segmentDoc, error) {
	var out []segmentDoc
	scan := store.Scan{Body: map[string]any{"query": map[string]any{"match_all": map[string]any{}},
		"sort": []any{map[string]any{"created_at": "asc"}, map[string]any{"id": "asc"}}}}
	for h, err := range s.st.Hits(ctx, s.segmentIndex, scan) {
		if err != nil {
			return nil, err
		}
		var d segmentDoc
		if err := h.Decode(&d); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

func (s *Server) listSegments(c *gin.Context) {
	docs, err := s.allSegments(c.Request.Context())
	if err != nil {
		s.failed(c, err)
		return
	}
	out := make([]segmentView, 0, len(docs))
	for i := range docs {
		out = append(out, docs[i].view(callerOf(c).View))
	}
	c.JSON(http.StatusOK, gin.H{"segments": out})
}

func (s *Server) updateSegment(c *gin.Context) {
	ctx := c.Request.Context()
	var req segmentRequest
	if err := decodeBody(c, []string{"name", "filter", "description"}, &req); err != nil {
		s.failed(c, err)
		return
	}
	old, ok := s.segmentParam(c)
	if !ok {
		return
	}
	refs, err := s.checkSegment(ctx, &req, old.ID)
	if err != nil {
		s.failed(c, err)
		return
	}
	doc := segmentDoc{ID: old.ID, Name: *req.Name, Filter: compact(req.Filter), Refs: refs, CreatedAt: old.CreatedAt, UpdatedAt: now()}
	if req.Description != nil {
		doc.Description = *req.Description
	}
	if err := s.st.Do(ctx, http.MethodPut, "/"+s.segmentIndex+"/_doc/"+doc.ID+"?refresh=wait_for", doc, nil); err != nil {
		s.failed(c, err)
		return
	}
	s.log.Info("segment updated", "segment", doc.ID, "refs", refs, "request_id", c.GetString(requestIDKey))
	s.redefine("segment", doc.ID)
	c.JSON(http.StatusOK, doc.view(callerOf(c).View))
}

// referrers names the saved segments and the registered referrers (tag
// rules) that refer to segment id.
func (s *Server) referrers(ctx context.Context, id string) ([]string, error) {
	var out []string
	scan := store.Scan{Body: map[string]any{"query": map[string]any{"term": map[string]any{"refs": id}},
		"_source": []string{"id", "name"}, "sort": []any{map[string]any{"id": "asc"}}}}
	for h, err := range s.st.Hits(ctx, s.segmentIndex, scan) {
		if err != nil {
			return nil, err
		}
		var d segmentDoc
		if err := h.Decode(&d); err != nil {
			return nil, err
		}
		out = append(out, fmt.Sprintf("segment %s (%q)", d.ID, d.Name))
	}
	for _, r := range s.segmentReferrers {
		more, err := r.SegmentReferrers(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, more...)
	}
	return out, nil
}

func (s *Server) deleteSegment(c *gin.Context) {
	ctx := c.Request.Context()
	doc, ok := s.segmentParam(c)
	if !ok {
		return
	}
	refs, err := s.referrers(ctx, doc.ID)
	if err != nil {
		s.failed(c, err)
		return
	}
	if len(refs) > 0 {
		writeError(c, http.StatusConflict, "segment_in_use", fmt.Sprintf("segment %s is referenced by %s; change or delete them first", doc.ID, strings.Join(refs, ", ")))
		return
	}
	err = s.st.Do(ctx, http.MethodDelete, "/"+s.segmentIndex+"/_doc/"+doc.ID+"?refresh=wait_for", nil, nil)
	if err != nil && store.StatusOf(err) != http.StatusNotFound {
		s.failed(c, err)
		return
	}
	s.log.Info("segment deleted", "segment", doc.ID, "request_id", c.GetString(requestIDKey))
	s.redefine("segment", doc.ID)
	c.Status(http.StatusNoContent)
}

// memberships lists the saved segments customer cid belongs to now, in
// one search: a filters aggregation with one filter per segment over the
// customer's own document. There are at most MaxSegments of them. A
// segment whose filter no longer parses (it refers to a segment deleted
// while it was saved) is left out, with a warning.
func (s *Server) memberships(ctx context.Context, cid string) ([]string, error) {
	docs, err := s.allSegments(ctx)
	if err != nil || len(docs) == 0 {
		return []string{}, err
	}
	res := s.resolver(ctx, nil)
	for _, d := range docs {
		res.seen[d.ID] = d.Filter
	}
	cat, err := s.fields.Catalog(ctx)
	if err != nil {
		return nil, err
	}
	opts := query.Options{Now: time.Now().Truncate(time.Second), Location: s.cfg.Location}
	filters := make(map[string]any, len(docs))
	for _, d := range docs {
		f, err := (&query.Parser{Catalog: cat, Limits: s.cfg.FilterLimits, Segments: res}).Parse(segmentNode(d.ID))
		var qe *query.Error
		if errors.As(err, &qe) {
			s.log.Warn("a saved segment does not parse; left out of the 360 view", "segment", d.ID, "path", qe.Path, "err", qe.Message)
			continue
		}
		if err != nil {
			return nil, err
		}
		filters[d.ID] = query.Translate(f, opts)
	}
	if len(filters) == 0 {
		return []string{}, nil
	}
	body := map[string]any{"size": 0, "query": map[string]any{"ids": map[string]any{"values": []string{cid}}},
		"aggs": map[string]any{"segments": map[string]any{"filters": map[string]any{"filters": filters}}}}
	r, err := s.st.Search(ctx, s.customers, body)
	if err != nil {
		return nil, err
	}
	var aggs struct {
		Segments struct {
			Buckets map[string]struct {
				DocCount int64 `json:"doc_count"`
			} `json:"buckets"`
		} `json:"segments"`
	}
	if len(r.Aggregations) > 0 {
		if err := json.Unmarshal(r.Aggregations, &aggs); err != nil {
			return nil, fmt.Errorf("segments of %s: %w", cid, err)
		}
	}
	out := []string{}
	for _, d := range docs {
		if aggs.Segments.Buckets[d.ID].DocCount > 0 {
			out = append(out, d.ID)
		}
	}
	return out, nil
}
