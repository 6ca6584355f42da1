package indexer

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"cdp/customer"
	"cdp/identity"
	"cdp/schema"
	"cdp/store"
)

// A split (CONTRACT §6, POST /v1/customers/{id}/split) is decided by the
// API: the identities move to a new person, which names the profile it
// was split from (SplitFrom), and the two are kept apart; the API marks
// both dirty and moves every resolver's cache epoch on. What came with the
// split identities alone (the events whose ids are all among them, the
// CRM row of a split crm_id and that customer's orders) is moved by the
// first rebuild of the new profile, the one that finds no document of it
// yet, which then marks the old profile dirty. A batch an indexer resolved
// before the split and writes after it leaves its events on the old
// profile: the next rebuild of the new one does not move them (its
// document exists by then). That window is one batch.

// unbuilt returns the split-off persons whose documents do not exist yet.
func (ix *Indexer) unbuilt(ctx context.Context, ps []*identity.Person) ([]*identity.Person, error) {
	if len(ps) == 0 {
		return nil, nil
	}
	ids := make([]string, len(ps))
	for i, p := range ps {
		ids[i] = p.CustomerID
	}
	docs, err := ix.st.Mget(ctx, ix.customers, ids)
	if err != nil {
		return nil, fmt.Errorf("split: read documents: %w", err)
	}
	built := map[string]bool{}
	for _, d := range docs {
		built[d.ID] = true
	}
	return slices.DeleteFunc(ps, func(p *identity.Person) bool { return built[p.CustomerID] }), nil
}

// moveSplitSide moves from the profile from to the split-off y the events
// whose ids are all y's, and the rows of y's crm ids.
func (ix *Indexer) moveSplitSide(ctx context.Context, from string, y *identity.Person) error {
	crm, anon := []string{}, []string{}
	for _, k := range y.Identities {
		id, _ := identity.ParseKey(k)
		switch id.Type {
		case identity.CRMID:
			crm = append(crm, id.Value)
		case identity.AnonymousID:
			anon = append(anon, id.Value)
		}
	}
	u := newProfileUpdate()
	for _, v := range crm {
		u.crmIDs[v] = true
	}
	for _, v := range anon {
		u.anonIDs[v] = true
	}
	if err := ix.moveSplitEvents(ctx, from, y.CustomerID, crm, anon, u); err != nil {
		return err
	}
	if err := ix.reseen(ctx, from); err != nil {
		return err
	}
	ops := []store.Op{ix.rows.profileOp(y.CustomerID, u)}
	if len(crm) > 0 {
		err := ix.rows.scan(ctx, "customer_id", []string{from}, []string{customer.KindCustomer, customer.KindOrder}, func(h *hit) {
			key := h.Key
			if h.Kind == customer.KindOrder {
				key = idValue(h.Data[schemaParent])
			}
			if !slices.Contains(crm, key) {
				return
			}
			row := h.Row
			row.MovedFrom, row.CustomerID = row.CustomerID, y.CustomerID
			ops = append(ops, ix.rows.writeOp(&row))
			ix.m.moved.WithLabelValues("row").Inc()
		})
		if err != nil {
			return err
		}
	}
	return ix.writeMoves(ctx, "split_rows", ops)
}

// schemaParent is the orders column naming the order's customer.
var schemaParent = func() string {
	for _, t := range schema.Tables {
		if t.Name == "orders" {
			return t.Parent
		}
	}
	panic("schema: no orders table")
}()

// idValue is a source id as a string (ids come as strings or whole numbers).
func idValue(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case json.Number:
		return x.String()
	}
	return ""
}

// moveSplitEvents moves the events of from whose user_id and anonymous_id
// are each absent or among y's, folding their times into u.
func (ix *Indexer) moveSplitEvents(ctx context.Context, from, to string, crm, anon []string, u *profileUpdate) error {
	onlyAmong := func(field string, vs []string) map[string]any {
		if len(vs) == 0 {
			return map[string]any{"exists": map[string]any{"field": field}}
		}
		return map[string]any{"bool": map[string]any{
			"filter":   []any{map[string]any{"exists": map[string]any{"field": field}}},
			"must_not": []any{map[string]any{"terms": map[string]any{field: vs}}},
		}}
	}
	var should []any
	if len(crm) > 0 {
		should = append(should, map[string]any{"terms": map[string]any{"user_id": crm}})
	}
	if len(anon) > 0 {
		should = append(should, map[string]any{"terms": map[string]any{"anonymous_id": anon}})
	}
	if len(should) == 0 {
		return nil // phones and emails alone: no event carries them as its ids
	}
	scan := store.Scan{PageSize: moveBatch, Body: map[string]any{
		"sort": []any{map[string]any{"event_id": "asc"}},
		"query": map[string]any{"bool": map[string]any{
			"filter":               []any{map[string]any{"term": map[string]any{"customer_id": from}}},
			"should":               should,
			"minimum_should_match": 1,
			"must_not":             []any{onlyAmong("user_id", crm), onlyAmong("anonymous_id", anon)},
		}},
	}}
	for page, err := range ix.st.Pages(ctx, ix.events, scan) {
		if err != nil {
			return fmt.Errorf("split: events: %w", err)
		}
		ops := make([]store.Op, 0, 2*len(page.Hits))
		for _, h := range page.Hits {
			var doc map[string]any
			if err := json.Unmarshal(h.Source, &doc); err != nil {
				return fmt.Errorf("split: event %s: %w", h.ID, err)
			}
			if ts, ok := doc["timestamp"].(string); ok {
				if ms, err := eventMillis(ts); err == nil {
					u.seen(ms)
				}
			}
			ops = append(ops, ix.moveEvent(h.ID, doc, from, to)...)
		}
		if err := ix.writeMoves(ctx, "split_events", ops); err != nil {
			return err
		}
		ix.m.moved.WithLabelValues("event").Add(float64(len(ops) / 2))
	}
	return nil
}

// eventMillis reads an event document's timestamp.
func eventMillis(ts string) (int64, error) {
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return 0, err
	}
	return t.UnixMilli(), nil
}

// reseen sets a profile's first and last seen to those of the events
// still under it, after a split moved some away (a merge only ever widens
// them; a split narrows).
func (ix *Indexer) reseen(ctx context.Context, cid string) error {
	if err := ix.st.Refresh(ctx, ix.customers); err != nil {
		return fmt.Errorf("split: refresh: %w", err)
	}
	res, err := ix.st.Search(ctx, ix.events, map[string]any{
		"size":  0,
		"query": map[string]any{"term": map[string]any{"customer_id": cid}},
		"aggs": map[string]any{
			"first": map[string]any{"min": map[string]any{"field": "timestamp"}},
			"last":  map[string]any{"max": map[string]any{"field": "timestamp"}},
		},
	})
	if err != nil {
		return fmt.Errorf("split: event times: %w", err)
	}
	var aggs struct {
		First struct{ Value *float64 } `json:"first"`
		Last  struct{ Value *float64 } `json:"last"`
	}
	if err := json.Unmarshal(res.Aggregations, &aggs); err != nil {
		return fmt.Errorf("split: event times: %w", err)
	}
	var first, last int64
	if aggs.First.Value != nil && aggs.Last.Value != nil {
		first, last = int64(*aggs.First.Value), int64(*aggs.Last.Value)
	}
	op := store.Op{Action: store.Update, Index: ix.rows.index, ID: rowID(customer.KindProfile, cid), RetryOnConflict: 5, Body: map[string]any{
		"script": map[string]any{"lang": "painless", "params": map[string]any{"first": first, "last": last},
			"source": "if (params.last == 0) { ctx._source.remove('first_seen'); ctx._source.remove('last_seen'); } else { ctx._source.first_seen = params.first; ctx._source.last_seen = params.last; }"},
	}}
	verdicts, err := ix.bulk(ctx, "split_seen", []store.Op{op})
	if err != nil {
		return err
	}
	if v := verdicts[0]; !v.OK() && v.Status != http.StatusNotFound { // no profile row: nothing to narrow
		return &store.ItemError{Op: op, Verdict: v, Outcome: store.Judge(op, v)}
	}
	return nil
}
