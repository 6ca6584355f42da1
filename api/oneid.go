package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"cdp/identity"
)

// historyLimit bounds the identity history one answer lists.
const historyLimit = 1000

// identityHistory lists the merges, splits and conflicts of a customer
// (CONTRACT §6): of the profile holding it now and of every profile merged
// into that one, oldest first.
func (s *Server) identityHistory(c *gin.Context) {
	id, ok := customerIDParam(c)
	if !ok {
		return
	}
	ctx := c.Request.Context()
	root, err := s.oneid.Root(ctx, id)
	if err != nil {
		s.storeError(c, err)
		return
	}
	cids := []string{id}
	if root != nil {
		cids = append(cids, root.CustomerID)
		cids = append(cids, root.MergedIDs...)
	}
	slices.Sort(cids)
	cids = slices.Compact(cids)
	entries, err := s.oneid.History(ctx, cids, historyLimit)
	if err != nil {
		s.storeError(c, err)
		return
	}
	if root == nil && len(entries) == 0 {
		writeError(c, http.StatusNotFound, "customer_not_found", "no customer "+id)
		return
	}
	if entries == nil {
		entries = []identity.Entry{}
	}
	customerID := id
	if root != nil {
		customerID = root.CustomerID
	}
	v := callerOf(c).View
	if v.Owner != "" && !s.inScope(c, customerID) {
		return
	}
	c.Set(auditTargetKey, customerID)
	if !v.Masks() {
		c.JSON(http.StatusOK, gin.H{"customer_id": customerID, "history": entries})
		return
	}
	// Masked through JSON: identities are "type:value" strings and
	// {"type", "value"} objects in the entries.
	b, err := json.Marshal(entries)
	var tree any
	if err == nil {
		err = json.Unmarshal(b, &tree)
	}
	if err != nil {
		s.storeError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"customer_id": customerID, "history": v.MaskTree(tree, false)})
}

// inScope reports whether the customer is in the scope of the caller's
// view; when it is not, or is absent, it answers the 404 itself.
func (s *Server) inScope(c *gin.Context, cid string) bool {
	var head struct {
		CustomerID string `json:"customer_id"`
		OwnerID    any    `json:"owner_id"`
	}
	found, err := s.st.GetSource(c.Request.Context(), s.customers, cid, &head, "orders", "attrs", "identities")
	if err != nil {
		s.storeError(c, err)
		return false
	}
	if !found || head.CustomerID != cid || !callerOf(c).View.InScope(head.OwnerID) {
		writeError(c, http.StatusNotFound, "customer_not_found", "no customer "+cid)
		return false
	}
	return true
}

// Marker asks the indexer to rebuild customers.
type Marker interface {
	Mark(cids ...string) error
}

// Option configures the API.
type Option func(*Server)

// WithMarker lets the API mark customers for the indexer to rebuild:
// splits need it (without one, a split answers 503).
func WithMarker(m Marker) Option { return func(s *Server) { s.marker = m } }

// Coordinator is the deployment's OneID lock and cache epoch (package
// coord): a split takes the lock and moves the epoch on.
type Coordinator interface {
	identity.Locker
	identity.Epochs
	identity.Tombstones
}

// WithCoordinator shares the OneID lock and epoch with the indexers.
func WithCoordinator(c Coordinator) Option {
	return func(s *Server) {
		s.oneid.Lock, s.oneid.Epochs, s.oneid.Tombstones = c, c, c
	}
}

// maxSplitIdentities bounds one split request.
const maxSplitIdentities = 100

type splitRequest struct {
	Identities []identity.Identity `json:"identities"`
}

// split moves identities of a profile to a new one (CONTRACT §6): 201
// {"customer_id": new}; 409 when an identity is not on the profile or
// none would remain. The indexer then moves the events and rows that came
// with them alone, and rebuilds both documents.
func (s *Server) split(c *gin.Context) {
	id, ok := customerIDParam(c)
	if !ok {
		return
	}
	var req splitRequest
	if err := decodeBody(c, []string{"identities"}, &req); err != nil {
		s.failed(c, err)
		return
	}
	ids, bad := s.splitIdentities(req)
	if bad != nil {
		s.failed(c, bad)
		return
	}
	if s.marker == nil {
		writeError(c, http.StatusServiceUnavailable, "indexer_unavailable", "splits need the indexer's queue, which this API process was started without")
		return
	}
	res, err := s.oneid.Split(c.Request.Context(), id, ids, actorOf(c))
	if errors.Is(err, identity.ErrEpoch) {
		s.log.Warn("split done; other processes learn it when their caches expire", "err", err, "request_id", c.GetString(requestIDKey))
		err = nil
	}
	switch {
	case errors.Is(err, identity.ErrNoProfile):
		writeError(c, http.StatusNotFound, "customer_not_found", "no customer "+id)
		return
	case errors.Is(err, identity.ErrNotOnProfile):
		writeError(c, http.StatusConflict, "identity_not_on_profile", err.Error()+" of customer "+id)
		return
	case errors.Is(err, identity.ErrNoneRemaining):
		writeError(c, http.StatusConflict, "nothing_would_remain", "the split would take every identity of customer "+id+"; at least one must stay")
		return
	case err != nil:
		s.storeError(c, err)
		return
	}
	if err := s.marker.Mark(res.From, res.New); err != nil {
		// The split is recorded; the documents follow at the next change
		// of either profile. Say so rather than fail a done split.
		s.log.Error("split recorded, marking its profiles for rebuild failed", "from", res.From, "new", res.New, "err", err, "request_id", c.GetString(requestIDKey))
	}
	c.JSON(http.StatusCreated, gin.H{"customer_id": res.New, "split_from": res.From})
}

// splitIdentities checks and normalizes a split's identities.
func (s *Server) splitIdentities(req splitRequest) ([]identity.Identity, error) {
	if len(req.Identities) == 0 {
		return nil, invalid("identities", "identities must list at least one {\"type\", \"value\"}")
	}
	if len(req.Identities) > maxSplitIdentities {
		return nil, invalid("identities", "a split moves at most %d identities", maxSplitIdentities)
	}
	out := make([]identity.Identity, 0, len(req.Identities))
	for i, id := range req.Identities {
		path := fmt.Sprintf("identities[%d]", i)
		if !identity.ValidType(id.Type) && !s.cfg.Identity.Known(id.Type) {
			return nil, invalid(path+".type", "type must be one of %s, got %q", strings.Join(s.cfg.Identity.Types(), ", "), id.Type)
		}
		v := identity.Normalize(id.Type, id.Value)
		if v == "" {
			return nil, invalid(path+".value", "value is required")
		}
		if len(v) > maxIDBytes {
			return nil, invalid(path+".value", "value is at most %d bytes long", maxIDBytes)
		}
		out = append(out, identity.Identity{Type: id.Type, Value: v})
	}
	return out, nil
}

// actorOf names who asked: the authenticated caller (a header could
// name anyone).
func actorOf(c *gin.Context) string {
	if a := callerOf(c).Actor; a != "" {
		return a
	}
	return "anonymous"
}
