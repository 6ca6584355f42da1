package identity

import (
	"context"
	"fmt"
	"time"
)

// History actions (CONTRACT §6).
const (
	ActionMerge    = "merge"
	ActionSplit    = "split"
	ActionConflict = "conflict"
)

// Entry is one line of the identity history.
type Entry struct {
	At          time.Time  `json:"at"`
	Action      string     `json:"action"`
	Reason      string     `json:"reason,omitempty"`
	CustomerIDs []string   `json:"customer_ids"`
	Identities  []Identity `json:"identities"`
	Source      Source     `json:"source"`
}

func keyIdentities(keys []string) []Identity {
	out := make([]Identity, 0, len(keys))
	for _, k := range keys {
		if id, ok := ParseKey(k); ok {
			out = append(out, id)
		}
	}
	return out
}

// History returns the entries naming any of the customer ids, oldest
// first, at most limit. The history index is searched, so an entry
// written in the last refresh interval may be missing.
func (r *Resolver) History(ctx context.Context, cids []string, limit int) ([]Entry, error) {
	res, err := r.st.Search(ctx, r.ix.History, map[string]any{
		"size":  limit,
		"query": map[string]any{"terms": map[string]any{"customer_ids": cids}},
		"sort":  []any{map[string]any{"at": "asc"}},
	})
	if err != nil {
		return nil, fmt.Errorf("identity: history: %w", err)
	}
	out := make([]Entry, 0, len(res.Hits))
	for _, h := range res.Hits {
		var e Entry
		if err := h.Decode(&e); err != nil {
			return nil, fmt.Errorf("identity: history: %w", err)
		}
		out = append(out, e)
	}
	return out, nil
}
