package api

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"cdp/audit"
)

// createKey makes an API key: its token is in this answer only.
func (s *Server) createKey(c *gin.Context) {
	var req struct {
		Name string `json:"name"`
		Role string `json:"role"`
	}
	if err := decodeBody(c, []string{"name", "role"}, &req); err != nil {
		s.failed(c, err)
		return
	}
	if req.Name == "" || len(req.Name) > 128 {
		writeAPIError(c, http.StatusBadRequest, apiError{Code: "invalid_parameter", Message: "name: 1 to 128 characters", Path: "name"})
		return
	}
	if _, ok := s.policy.Role(req.Role); !ok {
		writeAPIError(c, http.StatusBadRequest, apiError{Code: "invalid_parameter", Message: "role " + strconv.Quote(req.Role) + " is not a role of the roles file", Path: "role"})
		return
	}
	k, token, err := s.authn.Keys.New(req.Name, req.Role)
	if err != nil {
		s.storeError(c, err)
		return
	}
	// The key exists only once its audit record is written.
	c.Set(auditTargetKey, k.ID)
	if !s.auditNow(c, http.StatusCreated) {
		return
	}
	if err := s.authn.Keys.Put(c.Request.Context(), k); err != nil {
		s.storeError(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"id": k.ID, "name": k.Name, "role": k.Role, "created_at": k.CreatedAt, "key": token})
}

func (s *Server) listKeys(c *gin.Context) {
	keys, err := s.authn.Keys.List(c.Request.Context())
	if err != nil {
		s.storeError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"keys": keys})
}

func (s *Server) revokeKey(c *gin.Context) {
	ctx := c.Request.Context()
	key, found, err := s.authn.Keys.Find(ctx, c.Param("id"))
	if err != nil || !found {
		if err != nil {
			s.storeError(c, err)
		} else {
			writeError(c, http.StatusNotFound, "not_found", "no key "+strconv.Quote(c.Param("id")))
		}
		return
	}
	// The key is revoked only once its audit record is written.
	if !s.auditNow(c, http.StatusOK) {
		return
	}
	k, err := s.authn.Keys.RevokeKey(ctx, key)
	if err != nil {
		s.storeError(c, err)
		return
	}
	c.JSON(http.StatusOK, k)
}

// listAudit reads the audit trail: GET /v1/audit?actor=&action=&since=&size=&cursor=.
func (s *Server) listAudit(c *gin.Context) {
	q := audit.Query{Actor: c.Query("actor"), Action: c.Query("action"), Size: 100}
	if v := c.Query("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			writeAPIError(c, http.StatusBadRequest, apiError{Code: "invalid_parameter", Message: "since: want an RFC 3339 time", Path: "since"})
			return
		}
		q.Since = t
	}
	if v := c.Query("size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeAPIError(c, http.StatusBadRequest, apiError{Code: "invalid_parameter", Message: "size: want 1..1000", Path: "size"})
			return
		}
		q.Size = n
	}
	if v := c.Query("cursor"); v != "" {
		b, err := base64.RawURLEncoding.DecodeString(v)
		if err != nil || json.Unmarshal(b, &q.After) != nil {
			writeAPIError(c, http.StatusBadRequest, apiError{Code: "invalid_cursor", Message: "cursor: not a cursor of this list", Path: "cursor"})
			return
		}
	}
	recs, last, err := s.trail.Find(c.Request.Context(), q)
	if err != nil {
		s.storeError(c, err)
		return
	}
	var next any
	if len(recs) == q.Size && last != nil {
		b, _ := json.Marshal(last)
		next = base64.RawURLEncoding.EncodeToString(b)
	}
	c.JSON(http.StatusOK, gin.H{"records": recs, "next_cursor": next})
}
