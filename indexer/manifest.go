package indexer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"cdp/customer"
	"cdp/schema"
	"cdp/store"
)

// A manifest is what a customer document was built from, kept in the
// document (schema.RebuildField): the ids of the rows its rebuild read
// and a hash of what it built. With it, the next rebuild of the customer
// reads by id (realtime, no refresh) the rows it lists plus the rows its
// dirty markers name, instead of refreshing the row store and searching
// it for everything the customer holds, which was most of a rebuild's
// cost under a steady load.
//
// Why that is every row of the customer: a row of X is written, then its
// id is sent in X's dirty marker (stage 1), and the rebuild that takes the
// marker reads it and lists it in the manifest it writes, atomically with
// the document (one write, fenced by the document's sequence number). A
// row that leaves X (an order moved, an item moved to another order)
// is read and dropped. What a row id cannot name is handled apart:
//   - an order new to X may bring items written before it, while it had
//     no customer: those are listed in the order's parking record
//     (rowStore.parkOp), read by id too;
//   - an order that comes to X from another customer (it has MovedFrom),
//     or comes back to life after a delete (its items were not read while
//     it was deleted), a merge or a split (no rows in the marker), a
//     customer with no document yet, and a fenced round are rebuilt the
//     old way, from a search of the row store.
type manifest struct {
	// Rows are the customer's rows the rebuild read: customer, order and
	// profile rows (tombstones too) and the items of its live orders.
	Rows []string `json:"rows"`
	// Dead are the orders of Rows that were deleted.
	Dead []string `json:"dead,omitempty"`
	// Hash is a hash of the document without this manifest: a rebuild that
	// builds the same document from the same rows does not write it.
	Hash string `json:"hash"`
}

// manifestOf lists what s holds, in a stable order.
func manifestOf(rows []*hit) *manifest {
	m := &manifest{Rows: make([]string, 0, len(rows))}
	for _, h := range rows {
		m.Rows = append(m.Rows, h.RID)
		if h.Kind == customer.KindOrder && h.Deleted {
			m.Dead = append(m.Dead, h.RID)
		}
	}
	slices.Sort(m.Rows)
	m.Rows = slices.Compact(m.Rows)
	slices.Sort(m.Dead)
	return m
}

// lists and dead report whether the manifest lists a row, and lists it as
// a deleted order (both lists are sorted, manifestOf).
func (m *manifest) lists(rid string) bool { _, ok := slices.BinarySearch(m.Rows, rid); return ok }
func (m *manifest) dead(rid string) bool  { _, ok := slices.BinarySearch(m.Dead, rid); return ok }

// docHash is a hash of a document's JSON (map keys sorted by
// encoding/json), without its manifest.
func docHash(doc map[string]any) (string, error) {
	m := doc[schema.RebuildField]
	delete(doc, schema.RebuildField)
	b, err := json.Marshal(doc)
	if m != nil {
		doc[schema.RebuildField] = m
	}
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16]), nil
}

// sameBuild reports whether a new build is what the stored manifest says
// the document already is.
func sameBuild(old, cur *manifest) bool {
	return old != nil && old.Hash == cur.Hash && slices.Equal(old.Rows, cur.Rows) && slices.Equal(old.Dead, cur.Dead)
}

// storedManifests reads the manifests of documents as they stand now
// (realtime) along with where each stands, for the fenced write.
func (ix *Indexer) storedManifests(ctx context.Context, cids []string) (map[string]*manifest, map[string]store.SeqTerm, error) {
	docs, err := ix.st.MgetFields(ctx, ix.customers, cids, schema.RebuildField)
	if err != nil {
		return nil, nil, fmt.Errorf("documents: read versions: %w", err)
	}
	ms := make(map[string]*manifest, len(docs))
	at := make(map[string]store.SeqTerm, len(docs))
	for _, d := range docs {
		if d.SeqNo == nil || d.PrimaryTerm == nil {
			return nil, nil, fmt.Errorf("documents: %s found without _seq_no and _primary_term", d.ID)
		}
		at[d.ID] = store.SeqTerm{SeqNo: *d.SeqNo, PrimaryTerm: *d.PrimaryTerm}
		var src struct {
			M *manifest `json:"rebuild"`
		}
		if err := json.Unmarshal(d.Source, &src); err != nil {
			return nil, nil, fmt.Errorf("documents: %s: manifest: %w", d.ID, err)
		}
		if src.M != nil {
			ms[d.ID] = src.M
		}
	}
	return ms, at, nil
}

// deltaSources reads, by id, what the customers' documents were built from
// plus the rows their markers name, and assembles them as rowStore.sources
// does from a search. It returns the rows read per customer (for the new
// manifests) and the customers it cannot rebuild this way, for a search.
func (r *rowStore) deltaSources(ctx context.Context, cids []string, built map[string]*manifest, changed map[string]map[string]bool) (map[string]*customer.Sources, map[string][]*hit, []string, error) {
	want := make(map[string]map[string]bool, len(cids)) // per customer, the rows to read
	var ids []string
	for _, cid := range cids {
		set := map[string]bool{rowID(customer.KindProfile, cid): true}
		for _, rid := range built[cid].Rows {
			set[rid] = true
		}
		for rid := range changed[cid] {
			set[rid] = true
		}
		want[cid] = set
		ids = append(ids, slices.Collect(maps.Keys(set))...)
	}
	got, err := r.hits(ctx, ids)
	if err != nil {
		return nil, nil, nil, err
	}
	// An item's marker can come before its order's: the item's lane found
	// the order stored, and marked its customer, before the order's lane
	// marked it. So the orders of the items read are read too, and an
	// order new to the customer this way is taken with them.
	var orders []string
	for _, cid := range cids {
		var of []string
		for rid := range want[cid] {
			if h := got[rid]; h != nil && h.Kind == customer.KindItem && h.OrderID != "" {
				of = append(of, rowID(customer.KindOrder, h.OrderID))
			}
		}
		for _, o := range of {
			want[cid][o] = true
			if _, ok := got[o]; !ok {
				orders = append(orders, o)
			}
		}
	}
	slices.Sort(orders)
	more, err := r.hits(ctx, slices.Compact(orders))
	if err != nil {
		return nil, nil, nil, err
	}
	maps.Copy(got, more)
	// Orders new to their customer: the items parked before them.
	var full []string
	var newOrders []string
	fallback := map[string]bool{}
	for _, cid := range cids {
		m := built[cid]
		for rid := range want[cid] {
			h := got[rid]
			if h == nil || h.Kind != customer.KindOrder || h.CustomerID != cid || h.Deleted {
				continue
			}
			switch listed := m.lists(rid); {
			case m.dead(rid), !listed && h.MovedFrom != "":
				fallback[cid] = true
			case !listed:
				newOrders = append(newOrders, h.Key)
			}
		}
	}
	parked, err := r.parked(ctx, newOrders)
	if err != nil {
		return nil, nil, nil, err
	}
	var parkedItems []string
	for _, items := range parked {
		for _, rid := range items {
			if _, ok := got[rid]; !ok {
				parkedItems = append(parkedItems, rid)
			}
		}
	}
	extra, err := r.hits(ctx, parkedItems)
	if err != nil {
		return nil, nil, nil, err
	}
	maps.Copy(got, extra)
	out := make(map[string]*customer.Sources, len(cids))
	read := make(map[string][]*hit, len(cids))
	for _, cid := range cids {
		if fallback[cid] {
			full = append(full, cid)
			continue
		}
		rids := slices.Collect(maps.Keys(want[cid]))
		var rows []*hit
		live := map[string]bool{}
		for _, rid := range rids {
			h := got[rid]
			if h == nil || h.Kind == customer.KindItem || h.CustomerID != cid {
				continue
			}
			rows = append(rows, h)
			if h.Kind == customer.KindOrder && !h.Deleted {
				live[h.Key] = true
				rids = append(rids, parked[h.Key]...)
			}
		}
		for _, rid := range rids {
			if h := got[rid]; h != nil && h.Kind == customer.KindItem && live[h.OrderID] {
				rows = append(rows, h)
			}
		}
		slices.SortFunc(rows, func(a, b *hit) int { return strings.Compare(a.RID, b.RID) })
		rows = slices.CompactFunc(rows, func(a, b *hit) bool { return a.RID == b.RID })
		s := &customer.Sources{Items: map[string][]customer.Row{}}
		for _, h := range rows {
			addRow(s, h)
		}
		out[cid], read[cid] = s, rows
	}
	return out, read, full, nil
}
