package indexer

import (
	"context"
	"encoding/json"
	"fmt"

	"cdp/customer"
	"cdp/identity"
	"cdp/schema"
	"cdp/store"
)

// A merge (CONTRACT §6) is decided in stage 1, by the resolver: the
// merged-away profiles' persons name their survivor and the survivor's
// lists them; stage 1 marks the survivor and every merged-away customer it
// merged or went through dirty. The identity records keep naming the
// merged-away ids until their move is done, so a message replayed after a
// crash (before the markers went out) goes through them and marks them
// again. What a merged-away
// customer owns in OpenSearch (rows, its SDK profile row and its events,
// join children routed by customer id) is moved in stage 2, by its own
// rebuild (its dirty partition), in pages of moveBatch: a row is written
// again with the survivor's id (same source position), a profile row is
// folded into the survivor's, an event is deleted under the old routing
// and written under the survivor's. Then the survivor is marked dirty; its
// rebuild, which alone writes its document, deletes the merged-away
// documents in the same _bulk. Every step is idempotent and a marker is
// committed only after its step, so a crash mid-merge finishes when the
// marker is read again. A message resolved to a merged-away customer later
// (another process's cache) is written under that id and marks it dirty,
// so it is moved the same way.
//
// A reader sees the profiles as they were before the merge until the
// survivor's rebuild, then the survivor alone: the survivor's document may
// for a moment lack what is still being moved, but the person is never
// listed twice nor missing.

// moveBatch is how many events or rows one page of a merge moves.
const moveBatch = 1000

// moveOwned moves what merged-away and split-off customers of a rebuild
// chunk must give or take, and returns the customers to rebuild (those not
// merged away), their persons, and the customers to mark dirty again.
func (ix *Indexer) moveOwned(ctx context.Context, cids []string) (keep []string, people map[string]*identity.Person, again map[string]bool, err error) {
	people, err = ix.resolver.People(ctx, cids...)
	if err != nil {
		return nil, nil, nil, err
	}
	again = map[string]bool{}
	to := map[string]string{} // merged-away id → survivor
	var from []string
	var split []*identity.Person
	for _, cid := range cids {
		p := people[cid]
		switch {
		case p == nil:
			keep = append(keep, cid)
		case p.MergedInto != "":
			root, err := ix.resolver.Root(ctx, cid)
			if err != nil {
				return nil, nil, nil, err
			}
			if root != nil {
				to[cid] = root.CustomerID
				from = append(from, cid)
				again[root.CustomerID] = true
			}
		default:
			keep = append(keep, cid)
			if p.SplitFrom != "" {
				split = append(split, p)
			}
		}
	}
	split, err = ix.unbuilt(ctx, split)
	if err != nil {
		return nil, nil, nil, err
	}
	if len(from) == 0 && len(split) == 0 {
		return keep, people, again, nil
	}
	if err := ix.st.Refresh(ctx, ix.rows.index, ix.customers); err != nil {
		return nil, nil, nil, fmt.Errorf("merge: refresh: %w", err)
	}
	if len(from) > 0 {
		if err := ix.moveRows(ctx, from, to); err != nil {
			return nil, nil, nil, err
		}
		if err := ix.moveEvents(ctx, from, to); err != nil {
			return nil, nil, nil, err
		}
		// Moved: the merged-away ids' identity records may now name the
		// survivors (until then a replayed message still goes through
		// them, and asks for this move again).
		for _, cid := range from {
			if err := ix.resolver.Repoint(ctx, people[cid], to[cid]); err != nil {
				return nil, nil, nil, err
			}
		}
	}
	for _, y := range split {
		src, err := ix.resolver.Root(ctx, y.SplitFrom)
		if err != nil {
			return nil, nil, nil, err
		}
		if src == nil || src.CustomerID == y.CustomerID {
			continue
		}
		if err := ix.moveSplitSide(ctx, src.CustomerID, y); err != nil {
			return nil, nil, nil, err
		}
		again[src.CustomerID] = true
	}
	return keep, people, again, nil
}

// moveRows gives the rows of merged-away customers to their survivors.
func (ix *Indexer) moveRows(ctx context.Context, from []string, to map[string]string) error {
	var ops []store.Op
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		err := ix.writeMoves(ctx, "merge_rows", ops)
		ops = ops[:0]
		return err
	}
	kinds := []string{customer.KindCustomer, customer.KindOrder, customer.KindProfile}
	err := ix.rows.scan(ctx, "customer_id", from, kinds, func(h *hit) {
		survivor := to[h.Row.CustomerID]
		if survivor == "" {
			return
		}
		if h.Kind == customer.KindProfile {
			ops = append(ops, ix.rows.profileOp(survivor, profileOf(h.Profile)),
				store.Op{Action: store.Delete, Index: ix.rows.index, ID: h.RID})
			ix.m.moved.WithLabelValues("profile").Inc()
			return
		}
		row := h.Row
		row.MovedFrom, row.CustomerID = row.CustomerID, survivor
		ops = append(ops, ix.rows.writeOp(&row))
		ix.m.moved.WithLabelValues("row").Inc()
	})
	if err != nil {
		return err
	}
	return flush()
}

// profileOf is a stored profile row as an update of another profile.
func profileOf(p *customer.Profile) *profileUpdate {
	u := newProfileUpdate()
	for k, t := range p.Traits {
		u.traits[k] = t
	}
	u.firstSeen, u.lastSeen = p.FirstSeen, p.LastSeen
	for _, id := range p.CRMIDs {
		u.crmIDs[id] = true
	}
	for _, id := range p.AnonymousIDs {
		u.anonIDs[id] = true
	}
	return u
}

// moveEvents writes the events of merged-away customers under their
// survivors and deletes them under the old ids, a page at a time.
func (ix *Indexer) moveEvents(ctx context.Context, from []string, to map[string]string) error {
	for start := 0; start < len(from); start += 1000 {
		ids := from[start:min(start+1000, len(from))]
		scan := store.Scan{PageSize: moveBatch, Body: map[string]any{
			"sort":  []any{map[string]any{"event_id": "asc"}},
			"query": map[string]any{"terms": map[string]any{"customer_id": ids}},
		}}
		for page, err := range ix.st.Pages(ctx, ix.events, scan) {
			if err != nil {
				return fmt.Errorf("merge: events: %w", err)
			}
			ops := make([]store.Op, 0, 2*len(page.Hits))
			for _, h := range page.Hits {
				var doc map[string]any
				if err := json.Unmarshal(h.Source, &doc); err != nil {
					return fmt.Errorf("merge: event %s: %w", h.ID, err)
				}
				old, _ := doc["customer_id"].(string)
				survivor := to[old]
				if survivor == "" {
					continue
				}
				ops = append(ops, ix.moveEvent(h.ID, doc, old, survivor)...)
			}
			if err := ix.writeMoves(ctx, "merge_events", ops); err != nil {
				return err
			}
			ix.m.moved.WithLabelValues("event").Add(float64(len(ops) / 2))
		}
	}
	return nil
}

// moveEvent gives an event (its stored document) to another customer: a
// join child moves by being deleted under its old routing and written
// under the new one. The delete comes first: where both routings lead to
// one shard, the two ops name one document, and the write must be the
// last word on it.
func (ix *Indexer) moveEvent(id string, doc map[string]any, from, to string) []store.Op {
	doc["customer_id"] = to
	doc[schema.JoinField] = schema.EventJoin(to)
	return []store.Op{
		{Action: store.Delete, Index: ix.events, ID: id, Routing: from},
		{Action: store.Index, Index: ix.events, ID: id, Routing: to, Body: doc},
	}
}

// writeMoves writes one page of a merge; any item not applied fails the
// step, which is retried from the start (every move is idempotent).
func (ix *Indexer) writeMoves(ctx context.Context, step string, ops []store.Op) error {
	if len(ops) == 0 {
		return nil
	}
	verdicts, err := ix.bulk(ctx, step, ops)
	if err != nil {
		return err
	}
	for i, v := range verdicts {
		switch store.Judge(ops[i], v) {
		case store.Applied, store.Unchanged:
		default:
			return &store.ItemError{Op: ops[i], Verdict: v, Outcome: store.Judge(ops[i], v)}
		}
	}
	return nil
}

// mergedDocs returns the ids of the documents still standing of the
// customers merged into the ones being rebuilt, and where each stands (a
// delete is fenced as any write is, see writeRound): those their persons
// list, and those whose persons name them as survivors (the people index
// is the truth; a list may lag behind a writer that lost a race halfway).
func (ix *Indexer) mergedDocs(ctx context.Context, keep []string, people map[string]*identity.Person) ([]string, map[string]store.SeqTerm, error) {
	seen := map[string]bool{}
	var ids []string
	add := func(id string) {
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	for _, p := range people {
		if p != nil && p.MergedInto == "" {
			for _, id := range p.MergedIDs {
				add(id)
			}
		}
	}
	if len(keep) > 0 {
		into, err := ix.resolver.MergedInto(ctx, keep)
		if err != nil {
			return nil, nil, err
		}
		for _, id := range into {
			add(id)
		}
	}
	if len(ids) == 0 {
		return nil, nil, nil
	}
	at, err := ix.st.Versions(ctx, ix.customers, ids)
	if err != nil {
		return nil, nil, fmt.Errorf("merge: read documents: %w", err)
	}
	out := make([]string, 0, len(at))
	for _, id := range ids {
		if _, ok := at[id]; ok {
			out = append(out, id)
		}
	}
	return out, at, nil
}
