package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"cdp/access"
	"cdp/store"
)

// Smart-tag rules (CONTRACT §4.2) live in the tags index (mapping.Tags),
// by name; manual tags and who matches which rule live in the membership
// index, kept by package membership. Every write waits for the refresh, as
// for segments.

// maxTagLen is the longest tag name, in characters.
const maxTagLen = 64

// Members is what the API needs of membership (package membership).
type Members interface {
	// RedefineLater publishes, in the background, what the creation,
	// edit or deletion of a segment or tag rule changed (cause
	// definition).
	RedefineLater(kind, id string)
	// SetManual adds and removes a customer's manual tags.
	// merged are the profiles merged into cid, whose manual tags cid's
	// document carries.
	SetManual(ctx context.Context, cid string, merged, add, remove []string) ([]string, error)
	// HasManual says whether some customer has the manual tag.
	HasManual(ctx context.Context, tag string) (bool, error)
	// SegmentsOf lists the saved segments a customer belongs to now.
	SegmentsOf(ctx context.Context, cid string) ([]string, error)
}

// WithMembership lets the API publish definition changes and keep manual
// tags; without it, manual tags answer 503 and definition changes publish
// nothing.
func WithMembership(m Members) Option { return func(s *Server) { s.members = m } }

// redefine asks for the definition sweep of kind/id (cause definition),
// which runs in the background, in bounded batches.
func (s *Server) redefine(kind, id string) {
	if s.members != nil {
		s.members.RedefineLater(kind, id)
	}
}

// tagDoc is a tag rule as stored.
type tagDoc struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Filter      json.RawMessage `json:"filter"`
	Refs        []string        `json:"refs"`
	CreatedAt   string          `json:"created_at"`
	UpdatedAt   string          `json:"updated_at"`
}

// tagView is a tag rule as answered.
type tagView struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Filter      json.RawMessage `json:"filter"`
	CreatedAt   string          `json:"created_at"`
	UpdatedAt   string          `json:"updated_at"`
}

// view is the tag rule as answered to a caller with view v: values of
// masked fields in its filter are masked.
func (d *tagDoc) view(v access.View) tagView {
	return tagView{Name: d.Name, Description: d.Description, Filter: v.MaskFilter(d.Filter), CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt}
}

// checkTagName says what is wrong with a tag name, "" when nothing.
func checkTagName(name string) string {
	switch {
	case name == "":
		return "a tag name is 1 to 64 characters long"
	case !utf8.ValidString(name):
		return "a tag name is UTF-8 text"
	case utf8.RuneCountInString(name) > maxTagLen:
		return fmt.Sprintf("a tag name is at most %d characters long", maxTagLen)
	case strings.ContainsFunc(name, func(r rune) bool { return unicode.IsSpace(r) || r == ',' || unicode.IsControl(r) }):
		return "a tag name has no white space and no commas"
	}
	return ""
}

type tagRequest struct {
	Name        *string         `json:"name"`
	Filter      json.RawMessage `json:"filter"`
	Description *string         `json:"description"`
}

// checkRule validates a rule's body and returns the refs of its filter.
func (s *Server) checkRule(ctx context.Context, req *tagRequest) ([]string, error) {
	if req.Name == nil {
		return nil, invalid("name", "name is required")
	}
	if msg := checkTagName(*req.Name); msg != "" {
		return nil, invalid("name", "%s", msg)
	}
	if req.Description != nil && utf8.RuneCountInString(*req.Description) > maxDescLen {
		return nil, invalid("description", "description is at most %d characters long", maxDescLen)
	}
	if t := bytes.TrimSpace(req.Filter); len(t) == 0 || string(t) == "null" {
		return nil, &badRequest{code: "invalid_filter", path: "filter", message: `filter is required: send a filter object, or {"all": []} for every customer`}
	}
	f, err := s.parse(ctx, req.Filter, s.resolver(ctx, nil))
	if err != nil {
		return nil, err
	}
	return directRefs(f), nil
}

func (s *Server) getRule(ctx context.Context, name string) (*tagDoc, bool, error) {
	if checkTagName(name) != "" {
		return nil, false, nil
	}
	var d tagDoc
	found, err := s.st.GetSource(ctx, s.tagIndex, name, &d)
	if err != nil || !found {
		return nil, false, err
	}
	return &d, true, nil
}

func (s *Server) createTag(c *gin.Context) {
	ctx := c.Request.Context()
	var req tagRequest
	if err := decodeBody(c, []string{"name", "filter", "description"}, &req); err != nil {
		s.failed(c, err)
		return
	}
	refs, err := s.checkRule(ctx, &req)
	if err != nil {
		s.failed(c, err)
		return
	}
	if s.members != nil {
		manual, err := s.members.HasManual(ctx, *req.Name)
		if err != nil {
			s.failed(c, err)
			return
		}
		if manual {
			writeError(c, http.StatusConflict, "tag_in_use", fmt.Sprintf("%q is a manual tag of some customers; a rule cannot have its name", *req.Name))
			return
		}
	}
	if s.atLimit(c, s.tagIndex, "too_many_tags", "tag rules") {
		return
	}
	at := now()
	doc := tagDoc{Name: *req.Name, Filter: compact(req.Filter), Refs: refs, CreatedAt: at, UpdatedAt: at}
	if req.Description != nil {
		doc.Description = *req.Description
	}
	err = s.st.Do(ctx, http.MethodPut, "/"+s.tagIndex+"/_create/"+escapePath(doc.Name)+"?refresh=wait_for", doc, nil)
	if store.StatusOf(err) == http.StatusConflict {
		writeError(c, http.StatusConflict, "tag_exists", fmt.Sprintf("a tag rule %q exists already", doc.Name))
		return
	}
	if err != nil {
		s.failed(c, err)
		return
	}
	s.log.Info("tag rule created", "tag", doc.Name, "refs", refs, "request_id", c.GetString(requestIDKey))
	s.redefine("tag", doc.Name)
	c.JSON(http.StatusCreated, doc.view(callerOf(c).View))
}

// escapePath escapes a document id for a URL path.
func escapePath(id string) string { return strings.ReplaceAll(url.PathEscape(id), ".", "%2E") }

func (s *Server) tagParam(c *gin.Context) (*tagDoc, bool) {
	name := c.Param("name")
	d, found, err := s.getRule(c.Request.Context(), name)
	if err != nil {
		s.failed(c, err)
		return nil, false
	}
	if !found {
		writeError(c, http.StatusNotFound, "tag_not_found", fmt.Sprintf("no tag rule %q", name))
		return nil, false
	}
	return d, true
}

func (s *Server) getTag(c *gin.Context) {
	if d, ok := s.tagParam(c); ok {
		c.JSON(http.StatusOK, d.view(callerOf(c).View))
	}
}

func (s *Server) listTags(c *gin.Context) {
	out := []tagView{}
	scan := store.Scan{Body: map[string]any{"query": map[string]any{"match_all": map[string]any{}},
		"sort": []any{map[string]any{"name": "asc"}}}}
	for h, err := range s.st.Hits(c.Request.Context(), s.tagIndex, scan) {
		if err != nil {
			s.failed(c, err)
			return
		}
		var d tagDoc
		if err := h.Decode(&d); err != nil {
			s.failed(c, err)
			return
		}
		out = append(out, d.view(callerOf(c).View))
	}
	c.JSON(http.StatusOK, gin.H{"tags": out})
}

func (s *Server) updateTag(c *gin.Context) {
	ctx := c.Request.Context()
	var req tagRequest
	if err := decodeBody(c, []string{"name", "filter", "description"}, &req); err != nil {
		s.failed(c, err)
		return
	}
	old, ok := s.tagParam(c)
	if !ok {
		return
	}
	if req.Name == nil {
		req.Name = &old.Name
	}
	if *req.Name != old.Name {
		s.failed(c, invalid("name", "a tag rule is renamed by creating the new one and deleting the old one"))
		return
	}
	refs, err := s.checkRule(ctx, &req)
	if err != nil {
		s.failed(c, err)
		return
	}
	doc := tagDoc{Name: old.Name, Filter: compact(req.Filter), Refs: refs, CreatedAt: old.CreatedAt, UpdatedAt: now(), Description: old.Description}
	if req.Description != nil {
		doc.Description = *req.Description
	}
	if err := s.st.Do(ctx, http.MethodPut, "/"+s.tagIndex+"/_doc/"+escapePath(doc.Name)+"?refresh=wait_for", doc, nil); err != nil {
		s.failed(c, err)
		return
	}
	s.log.Info("tag rule updated", "tag", doc.Name, "refs", refs, "request_id", c.GetString(requestIDKey))
	s.redefine("tag", doc.Name)
	c.JSON(http.StatusOK, doc.view(callerOf(c).View))
}

func (s *Server) deleteTag(c *gin.Context) {
	ctx := c.Request.Context()
	d, ok := s.tagParam(c)
	if !ok {
		return
	}
	err := s.st.Do(ctx, http.MethodDelete, "/"+s.tagIndex+"/_doc/"+escapePath(d.Name)+"?refresh=wait_for", nil, nil)
	if err != nil && store.StatusOf(err) != http.StatusNotFound {
		s.failed(c, err)
		return
	}
	s.log.Info("tag rule deleted", "tag", d.Name, "request_id", c.GetString(requestIDKey))
	s.redefine("tag", d.Name)
	c.Status(http.StatusNoContent)
}

// tagReferrers is the SegmentReferrer of tag rules: a rule whose filter
// names a segment keeps it from being deleted.
type tagReferrers struct{ s *Server }

func (r tagReferrers) SegmentReferrers(ctx context.Context, id string) ([]string, error) {
	var out []string
	scan := store.Scan{Body: map[string]any{"query": map[string]any{"term": map[string]any{"refs": id}},
		"_source": []string{"name"}, "sort": []any{map[string]any{"name": "asc"}}}}
	for h, err := range r.s.st.Hits(ctx, r.s.tagIndex, scan) {
		if err != nil {
			return nil, err
		}
		var d tagDoc
		if err := h.Decode(&d); err != nil {
			return nil, err
		}
		out = append(out, "tag rule "+d.Name)
	}
	return out, nil
}

type manualTagsRequest struct {
	Add    []string `json:"add"`
	Remove []string `json:"remove"`
}

// manualTags serves POST /v1/customers/{id}/tags: it adds and removes
// manual tags, and asks the indexer to rebuild the document, whose tags
// then are the manual tags plus the rules it matches.
func (s *Server) manualTags(c *gin.Context) {
	ctx := c.Request.Context()
	cid, ok := customerIDParam(c)
	if !ok {
		return
	}
	var req manualTagsRequest
	if err := decodeBody(c, []string{"add", "remove"}, &req); err != nil {
		s.failed(c, err)
		return
	}
	if len(req.Add)+len(req.Remove) > 1000 {
		s.failed(c, invalid("add", "at most 1000 tags a request"))
		return
	}
	for _, l := range []struct {
		key  string
		tags []string
	}{{"add", req.Add}, {"remove", req.Remove}} {
		for i, t := range l.tags {
			if msg := checkTagName(t); msg != "" {
				s.failed(c, invalid(fmt.Sprintf("%s[%d]", l.key, i), "%s", msg))
				return
			}
		}
	}
	for _, t := range req.Add {
		_, isRule, err := s.getRule(ctx, t)
		if err != nil {
			s.failed(c, err)
			return
		}
		if isRule {
			writeError(c, http.StatusConflict, "tag_is_rule", fmt.Sprintf("%q is the name of a tag rule: the rule decides who has it", t))
			return
		}
	}
	if s.members == nil || s.marker == nil {
		writeError(c, http.StatusServiceUnavailable, "unavailable", "manual tags are not served by this process")
		return
	}
	root, err := s.oneid.Root(ctx, cid)
	if err != nil {
		s.storeError(c, err)
		return
	}
	var merged []string
	if root != nil {
		cid, merged = root.CustomerID, root.MergedIDs
	}
	var head struct {
		CustomerID string `json:"customer_id"`
		OwnerID    any    `json:"owner_id"`
	}
	found, err := s.st.GetSource(ctx, s.customers, cid, &head, "orders", "attrs")
	if err != nil {
		s.storeError(c, err)
		return
	}
	if !found || head.CustomerID != cid || !callerOf(c).View.InScope(head.OwnerID) {
		writeError(c, http.StatusNotFound, "customer_not_found", "no customer "+cid)
		return
	}
	manual, err := s.members.SetManual(ctx, cid, merged, req.Add, req.Remove)
	if err != nil {
		s.failed(c, err)
		return
	}
	if err := s.marker.Mark(cid); err != nil {
		s.log.Warn("manual tags stored but the rebuild could not be asked for", "customer_id", cid, "err", err, "request_id", c.GetString(requestIDKey))
		c.Header("Retry-After", retryAfter)
		writeError(c, http.StatusServiceUnavailable, "kafka_unavailable", "the tags are stored; the document follows when the request is sent again")
		return
	}
	c.JSON(http.StatusOK, gin.H{"customer_id": cid, "manual_tags": manual})
}
