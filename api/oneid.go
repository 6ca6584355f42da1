package api

import (
	"fmt"
	"net/http"
	"slices"

	"github.com/gin-gonic/gin"

	"cdp/identity"
)

// historyLimit bounds the identity history one answer lists.
const historyLimit = 1000

// identityHistory lists the merges, splits and conflicts of a customer
// (CONTRACT §6): of the profile holding it now and of every profile merged
// into that one, oldest first.
func (s *Server) identityHistory(c *gin.Context) {
	id := c.Param("customer_id")
	if len(id) > maxIDBytes {
		writeError(c, http.StatusBadRequest, "invalid_parameter", fmt.Sprintf("a customer id is at most %d bytes long", maxIDBytes))
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
	c.JSON(http.StatusOK, gin.H{"customer_id": customerID, "history": entries})
}
