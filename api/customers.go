package api

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"cdp/identity"
)

// recentEvents is how many events the 360 view shows, newest first.
const recentEvents = 50

// getCustomer serves the 360 view by customer id.
func (s *Server) getCustomer(c *gin.Context) {
	var doc map[string]any
	found, err := s.st.GetSource(c.Request.Context(), s.customers, c.Param("customer_id"), &doc)
	if err != nil {
		s.storeError(c, err)
		return
	}
	// A GET sees through the alias filter: an event id is no customer.
	if !found || doc["relation"] != "customer" {
		writeError(c, http.StatusNotFound, "customer_not_found", "no customer "+c.Param("customer_id"))
		return
	}
	s.view(c, doc)
}

// lookup serves the 360 view by any identity, normalized as at ingestion.
func (s *Server) lookup(c *gin.Context) {
	typ, value := c.Query("type"), c.Query("value")
	if !identity.ValidType(typ) {
		writeError(c, http.StatusBadRequest, "invalid_parameter", "type must be one of "+strings.Join(identity.Types, ", ")+`, got "`+typ+`"`)
		return
	}
	value = identity.Normalize(typ, value)
	if value == "" {
		writeError(c, http.StatusBadRequest, "invalid_parameter", "value is required")
		return
	}
	query := map[string]any{"size": 1, "query": map[string]any{"nested": map[string]any{
		"path": "identities",
		"query": map[string]any{"bool": map[string]any{"filter": []any{
			map[string]any{"term": map[string]any{"identities.type": typ}},
			map[string]any{"term": map[string]any{"identities.value": value}},
		}}},
	}}}
	var resp searchResponse
	if err := s.st.Do(c.Request.Context(), http.MethodPost, "/"+s.customers+"/_search", query, &resp); err != nil {
		s.storeError(c, err)
		return
	}
	if len(resp.Hits.Hits) == 0 {
		writeError(c, http.StatusNotFound, "customer_not_found", "no customer with "+typ+" "+value)
		return
	}
	var doc map[string]any
	if err := json.Unmarshal(resp.Hits.Hits[0].Source, &doc); err != nil {
		s.storeError(c, err)
		return
	}
	s.view(c, doc)
}

type searchResponse struct {
	PITID string `json:"pit_id"`
	Hits  struct {
		Total struct {
			Value int64 `json:"value"`
		} `json:"total"`
		Hits []struct {
			ID     string          `json:"_id"`
			Source json.RawMessage `json:"_source"`
			Sort   []any           `json:"sort"`
		} `json:"hits"`
	} `json:"hits"`
}

// view answers with the document plus its newest events and its segments.
func (s *Server) view(c *gin.Context, doc map[string]any) {
	cid, _ := doc["customer_id"].(string)
	query := map[string]any{
		"size":  recentEvents,
		"query": map[string]any{"term": map[string]any{"customer_id": cid}},
		"sort":  []any{map[string]any{"timestamp": "desc"}, map[string]any{"event_id": "desc"}},
	}
	var resp searchResponse
	if err := s.st.Do(c.Request.Context(), http.MethodPost, "/"+s.events+"/_search", query, &resp); err != nil {
		s.storeError(c, err)
		return
	}
	events := make([]map[string]any, 0, len(resp.Hits.Hits))
	for _, h := range resp.Hits.Hits {
		var ev map[string]any
		if err := json.Unmarshal(h.Source, &ev); err != nil {
			s.storeError(c, err)
			return
		}
		delete(ev, "relation")
		events = append(events, ev)
	}
	delete(doc, "relation")
	doc["recent_events"] = events
	doc["segments"] = []string{}
	c.JSON(http.StatusOK, doc)
}
