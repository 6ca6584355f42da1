package indexer

import (
	"context"
	"encoding/json"
	"fmt"

	"cdp/customer"
	"cdp/store"
)

// rowStore keeps the source rows customer documents are rebuilt from (see
// package customer). Rows are written by the first stage of the indexer
// and read back, after a refresh, by the second.
type rowStore struct {
	st    *store.Client
	index string
}

func rowID(kind, key string) string { return kind + ":" + key }

// kindPark is the kind of a parking record: per order, the items written
// while the order had no customer (not arrived yet, or its customer's CRM
// id blocked). The row store is searched by kind, so parking records
// never pass for rows.
const kindPark = "park"

// parkAdd adds an item to its order's parking record, once.
const parkAdd = `if (!ctx._source.items.contains(params.rid)) { ctx._source.items.add(params.rid) } else { ctx.op = 'none' }`

// parkOp returns, for an item that belongs to no customer yet (owner ""),
// the write that adds it to its order's parking record. A rebuild that
// finds an order new to its customer reads the record by id (no refresh
// needed) to find the items that came first; every later item has an
// owner and is named in the owner's dirty marker.
func (r *rowStore) parkOp(row *customer.Row, owner string) (store.Op, bool) {
	if row.Kind != customer.KindItem || row.OrderID == "" || owner != "" {
		return store.Op{}, false
	}
	id := rowID(kindPark, row.OrderID)
	return store.Op{Action: store.Update, Index: r.index, ID: id, RetryOnConflict: 5, Body: map[string]any{
		"script": map[string]any{"lang": "painless", "source": parkAdd, "params": map[string]any{"rid": row.RID}},
		"upsert": map[string]any{"rid": id, "kind": kindPark, "order_id": row.OrderID, "items": []string{row.RID}},
	}}, true
}

// parked reads the parking records of orders (by order key): the ids of
// the items each one lists.
func (r *rowStore) parked(ctx context.Context, orders []string) (map[string][]string, error) {
	ids := make([]string, len(orders))
	for i, o := range orders {
		ids[i] = rowID(kindPark, o)
	}
	docs, err := r.st.Mget(ctx, r.index, ids)
	if err != nil {
		return nil, fmt.Errorf("rows: parked items: %w", err)
	}
	out := make(map[string][]string, len(docs))
	for _, d := range docs {
		var p struct {
			OrderID string   `json:"order_id"`
			Items   []string `json:"items"`
		}
		if err := d.Decode(&p); err != nil {
			return nil, err
		}
		out[p.OrderID] = p.Items
	}
	return out, nil
}

// profileMerge folds SDK facts into a profile row: per trait the value of
// the newest event wins (by event time, then message id), first and last
// seen are the earliest and latest, and ids are added once. So a replay
// changes nothing, and concurrent writers and any arrival order give the
// same traits, times and sets of ids; only the order of the id lists
// follows arrival.
const profileMerge = `
def s = ctx._source;
s.rid = params.rid; s.kind = 'profile'; s.customer_id = params.cid;
if (s.traits == null) { s.traits = new HashMap(); }
for (def e : params.traits.entrySet()) {
  def cur = s.traits.get(e.getKey()); def nv = e.getValue();
  if (cur == null || cur.ts < nv.ts || (cur.ts == nv.ts && cur.mid.compareTo(nv.mid) < 0)) { s.traits.put(e.getKey(), nv); }
}
if (params.first_seen > 0 && (s.first_seen == null || s.first_seen > params.first_seen)) { s.first_seen = params.first_seen; }
if (s.last_seen == null || s.last_seen < params.last_seen) { s.last_seen = params.last_seen; }
for (def f : ['crm_ids', 'anonymous_ids']) {
  if (s[f] == null) { s[f] = new ArrayList(); }
  for (def id : params[f]) { if (!s[f].contains(id)) { s[f].add(id); } }
}
`

// profileUpdate is what one batch says about one customer.
type profileUpdate struct {
	traits              map[string]customer.Trait
	firstSeen, lastSeen int64
	crmIDs, anonIDs     map[string]bool
}

func newProfileUpdate() *profileUpdate {
	return &profileUpdate{traits: map[string]customer.Trait{}, crmIDs: map[string]bool{}, anonIDs: map[string]bool{}}
}

// setTrait keeps the newer of two values for one trait, as profileMerge does.
func (p *profileUpdate) setTrait(name string, t customer.Trait) {
	cur, ok := p.traits[name]
	if !ok || cur.TS < t.TS || (cur.TS == t.TS && cur.MID < t.MID) {
		p.traits[name] = t
	}
}

func (p *profileUpdate) seen(ms int64) {
	if p.firstSeen == 0 || ms < p.firstSeen {
		p.firstSeen = ms
	}
	p.lastSeen = max(p.lastSeen, ms)
}

func (r *rowStore) profileOp(cid string, p *profileUpdate) store.Op {
	keys := func(m map[string]bool) []string {
		out := make([]string, 0, len(m))
		for k := range m {
			out = append(out, k)
		}
		return out
	}
	id := rowID(customer.KindProfile, cid)
	return store.Op{Action: store.Update, Index: r.index, ID: id, RetryOnConflict: 5, Body: map[string]any{
		"scripted_upsert": true,
		"upsert":          map[string]any{},
		"script": map[string]any{"lang": "painless", "source": profileMerge, "params": map[string]any{
			"rid": id, "cid": cid, "traits": p.traits, "first_seen": p.firstSeen, "last_seen": p.lastSeen,
			"crm_ids": keys(p.crmIDs), "anonymous_ids": keys(p.anonIDs),
		}},
	}}
}

// hit is one row as stored; profile rows also decode into Profile.
type hit struct {
	customer.Row
	Profile *customer.Profile
}

func decodeHit(src []byte) (*hit, error) {
	var h hit
	if err := json.Unmarshal(src, &h.Row); err != nil {
		return nil, err
	}
	if h.Kind == customer.KindProfile {
		h.Profile = &customer.Profile{}
		if err := json.Unmarshal(src, h.Profile); err != nil {
			return nil, err
		}
	}
	return &h, nil
}

// sources reads every row of the given customers, as the row store stood
// at its last refresh: the caller refreshes it after the customers were
// marked dirty, so that every row written before is seen. It also returns
// the rows read per customer, for their manifests.
func (r *rowStore) sources(ctx context.Context, cids []string) (map[string]*customer.Sources, map[string][]*hit, error) {
	out := make(map[string]*customer.Sources, len(cids))
	read := make(map[string][]*hit, len(cids))
	if len(cids) == 0 {
		return out, read, nil
	}
	for _, cid := range cids {
		out[cid] = &customer.Sources{Items: map[string][]customer.Row{}}
	}
	var orderIDs []string
	ownerOf := map[string]string{}
	err := r.scan(ctx, "customer_id", cids, []string{customer.KindCustomer, customer.KindOrder, customer.KindProfile}, func(h *hit) {
		s := out[h.Row.CustomerID]
		if s == nil {
			return
		}
		addRow(s, h)
		read[h.CustomerID] = append(read[h.CustomerID], h)
		if h.Kind == customer.KindOrder && !h.Deleted {
			orderIDs = append(orderIDs, h.Key)
			ownerOf[h.Key] = h.Row.CustomerID
		}
	})
	if err != nil {
		return nil, nil, err
	}
	err = r.scan(ctx, "order_id", orderIDs, []string{customer.KindItem}, func(h *hit) {
		if cid := ownerOf[h.OrderID]; out[cid] != nil {
			addRow(out[cid], h)
			read[cid] = append(read[cid], h)
		}
	})
	return out, read, err
}

// addRow adds one row read to a customer's sources: the profile, the
// preferred CRM row, an order, or an item of one of its live orders.
func addRow(s *customer.Sources, h *hit) {
	switch h.Kind {
	case customer.KindProfile:
		s.Profile = h.Profile
	case customer.KindCustomer:
		row := h.Row
		if s.Customer == nil || newerCustomerRow(&row, s.Customer) {
			s.Customer = &row
		}
	case customer.KindOrder:
		s.Orders = append(s.Orders, h.Row)
	case customer.KindItem:
		s.Items[h.OrderID] = append(s.Items[h.OrderID], h.Row)
	}
}

// hits reads rows by id (realtime: no refresh needed), decoded as the
// search decodes them.
func (r *rowStore) hits(ctx context.Context, rids []string) (map[string]*hit, error) {
	out := make(map[string]*hit, len(rids))
	for start := 0; start < len(rids); start += 10_000 {
		docs, err := r.st.Mget(ctx, r.index, rids[start:min(start+10_000, len(rids))])
		if err != nil {
			return nil, fmt.Errorf("rows: get: %w", err)
		}
		for _, d := range docs {
			h, err := decodeHit(d.Source)
			if err != nil {
				return nil, fmt.Errorf("rows: decode %s: %w", d.ID, err)
			}
			out[d.ID] = h
		}
	}
	return out, nil
}

// newerCustomerRow prefers a live row, then the most recent one, when two
// CRM rows resolve to one customer.
func newerCustomerRow(a, b *customer.Row) bool {
	if a.Deleted != b.Deleted {
		return !a.Deleted
	}
	return a.TS > b.TS
}

// scan pages through every row whose field is one of values and whose kind
// is one of kinds, in chunks small enough for a terms query.
func (r *rowStore) scan(ctx context.Context, field string, values, kinds []string, each func(*hit)) error {
	const chunk, page = 5000, 5000
	for start := 0; start < len(values); start += chunk {
		vals := values[start:min(start+chunk, len(values))]
		scan := store.Scan{PageSize: page, Body: map[string]any{
			"sort": []any{map[string]any{"rid": "asc"}},
			"query": map[string]any{"bool": map[string]any{"filter": []any{
				map[string]any{"terms": map[string]any{field: vals}},
				map[string]any{"terms": map[string]any{"kind": kinds}},
			}}},
		}}
		for h, err := range r.st.Hits(ctx, r.index, scan) {
			if err != nil {
				return fmt.Errorf("rows: search: %w", err)
			}
			row, err := decodeHit(h.Source)
			if err != nil {
				return fmt.Errorf("rows: decode: %w", err)
			}
			each(row)
		}
	}
	return nil
}

// get reads rows by id with realtime GET semantics (no refresh needed)
// into into, skipping those already there; an id not found is nil.
func (r *rowStore) get(ctx context.Context, rids []string, into map[string]*customer.Row) error {
	var need []string
	for _, id := range rids {
		if _, ok := into[id]; !ok {
			need = append(need, id)
			into[id] = nil
		}
	}
	got, err := r.hits(ctx, need)
	for id, h := range got {
		into[id] = &h.Row
	}
	return err
}

// writeOp stores a row unless the store holds a newer one: the row's
// source position is its external version, so an older change (or a
// concurrent writer's) loses with a 409 instead of overwriting.
func (r *rowStore) writeOp(row *customer.Row) store.Op {
	return store.Op{Action: store.Index, Index: r.index, ID: row.RID, Version: row.Pos, VersionType: "external_gte", Body: row}
}
