package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"cdp/identity"
	"cdp/schema"
)

// recentEvents is how many events the 360 view shows, newest first.
const recentEvents = 50

// maxIDBytes is the longest document id OpenSearch takes; no customer id
// or identity value is longer.
const maxIDBytes = 512

// getCustomer serves the 360 view by customer id. A customer merged into
// another answers with the survivor's view (CONTRACT §6), whose
// customer_id is the survivor's and whose merged_ids list the others.
func (s *Server) getCustomer(c *gin.Context) {
	id, ok := customerIDParam(c)
	if !ok {
		return
	}
	s.viewOf(c, id, "no customer "+id)
}

// viewOf answers the 360 view of the profile holding cid now.
func (s *Server) viewOf(c *gin.Context, cid, notFound string) {
	ctx := c.Request.Context()
	root, err := s.oneid.Root(ctx, cid)
	if err != nil {
		s.storeError(c, err)
		return
	}
	if root != nil {
		cid = root.CustomerID
	}
	var doc json.RawMessage
	found, err := s.st.GetSource(ctx, s.customers, cid, &doc, schema.Internal...)
	if err != nil {
		s.storeError(c, err)
		return
	}
	// A GET sees through the alias filter: an event is found by its id
	// too, but only a customer's document has its own id as customer_id.
	var head struct {
		CustomerID string `json:"customer_id"`
		OwnerID    any    `json:"owner_id"`
	}
	if found {
		_ = json.Unmarshal(doc, &head)
	}
	if !found || head.CustomerID != cid || !callerOf(c).View.InScope(head.OwnerID) {
		writeError(c, http.StatusNotFound, "customer_not_found", notFound)
		return
	}
	c.Set(auditTargetKey, cid)
	s.view(c, cid, doc, root)
}

// lookup serves the 360 view by any identity, normalized as at ingestion.
func (s *Server) lookup(c *gin.Context) {
	typ, value := c.Query("type"), c.Query("value")
	if !identity.ValidType(typ) {
		writeError(c, http.StatusBadRequest, "invalid_parameter", "type must be one of "+strings.Join(identity.Types, ", ")+`, got "`+typ+`"`)
		return
	}
	if callerOf(c).View.Masked(typ) {
		// Finding a customer by a phone (or email) one may not see is
		// filtering on it: the answer would confirm whose it is.
		writeAPIError(c, http.StatusForbidden, apiError{Code: "forbidden_field", Message: "the identity type " + typ + " is masked for this role: customers cannot be looked up by it", Path: "type"})
		return
	}
	value = identity.Normalize(typ, value)
	if value == "" {
		writeError(c, http.StatusBadRequest, "invalid_parameter", "value is required")
		return
	}
	if len(value) > maxIDBytes {
		writeError(c, http.StatusBadRequest, "invalid_parameter", fmt.Sprintf("value is at most %d bytes long", maxIDBytes))
		return
	}
	// The identity index says who holds the identity, and the holder's
	// merges lead to the profile that holds it now: never a merged-away
	// document, even while a merge is being written.
	cid, err := s.oneid.Holder(c.Request.Context(), identity.Identity{Type: typ, Value: value})
	if err != nil {
		s.storeError(c, err)
		return
	}
	notFound := "no customer with " + typ + " " + value
	if cid == "" {
		writeError(c, http.StatusNotFound, "customer_not_found", notFound)
		return
	}
	s.viewOf(c, cid, notFound)
}

// view answers with the document plus its newest events and "segments",
// the saved segments it belongs to now (see memberships). The JSON of
// OpenSearch is passed through as it is, not decoded and encoded again.
func (s *Server) view(c *gin.Context, cid string, doc json.RawMessage, p *identity.Person) {
	query := map[string]any{
		"size":    recentEvents,
		"_source": map[string]any{"excludes": schema.Internal},
		"query":   map[string]any{"term": map[string]any{"customer_id": cid}},
		"sort":    []any{map[string]any{"timestamp": "desc"}, map[string]any{"event_id": "desc"}},
	}
	res, err := s.st.Search(c.Request.Context(), s.events, query)
	if err != nil {
		s.storeError(c, err)
		return
	}
	var segments []string
	if s.members != nil {
		segments, err = s.members.SegmentsOf(c.Request.Context(), cid)
	} else {
		segments, err = s.memberships(c.Request.Context(), cid)
	}
	if err != nil {
		s.storeError(c, err)
		return
	}
	obj := bytes.TrimSpace(doc)
	if len(obj) < 2 || obj[0] != '{' || obj[len(obj)-1] != '}' {
		s.storeError(c, fmt.Errorf("customer %s: the stored document is not a JSON object", cid))
		return
	}
	var b bytes.Buffer
	b.Grow(len(obj) + 512*len(res.Hits) + 64)
	b.Write(obj[:len(obj)-1])
	if len(bytes.TrimSpace(obj[1:len(obj)-1])) > 0 {
		b.WriteByte(',')
	}
	b.WriteString(`"recent_events":[`)
	for i, h := range res.Hits {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(h.Source)
	}
	b.WriteString(`]`)
	writeField(&b, "segments", segments)
	merged, conflicts := []string{}, []identity.Conflict{}
	if p != nil {
		merged = append(merged, p.MergedIDs...)
		conflicts = append(conflicts, p.Conflicts...)
	}
	writeField(&b, "merged_ids", merged)
	writeField(&b, "identity_conflicts", conflicts)
	b.WriteByte('}')
	out := b.Bytes()
	if v := callerOf(c).View; v.Masks() {
		if out, err = v.MaskJSON(out); err != nil {
			s.storeError(c, fmt.Errorf("customer %s: mask the view: %w", cid, err))
			return
		}
	}
	c.Data(http.StatusOK, "application/json; charset=utf-8", out)
}

// writeField appends `,"name":<v as JSON>`.
func writeField(b *bytes.Buffer, name string, v any) {
	data, _ := json.Marshal(v) // slices of strings and plain structs
	b.WriteString(`,"` + name + `":`)
	b.Write(data)
}

// customerIDParam is the path's customer id, or a 400 answered for one
// longer than any customer id.
func customerIDParam(c *gin.Context) (string, bool) {
	id := c.Param("customer_id")
	if len(id) > maxIDBytes {
		writeError(c, http.StatusBadRequest, "invalid_parameter", fmt.Sprintf("a customer id is at most %d bytes long", maxIDBytes))
		return "", false
	}
	return id, true
}
