package membership

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"cdp/query"
	"cdp/schema"
)

// Membership as time passes (CONTRACT §4.2). The only conditions whose
// truth changes with nothing written are rolling windows: in_last and
// not_in_last on a date field, and an event's within (before, after and
// on name fixed days). For each customer the engine computes, whenever it
// evaluates it, the next instant one of those windows of any definition
// can change for its values (nextAt), and stores it with its membership
// (State.NextAt). The leader's clock loop (Tick) re-evaluates the
// customers whose instant has come, with cause time. An instant may pass
// with no flip (the value leaves a window another condition did not
// need): the cost is one evaluation, never a missed flip.

// CauseTime is the cause of a flip that only the passing of time made.
const CauseTime = "time"

// clock is one rolling window of a definition.
type clock struct {
	field string // a date field's path; "" for an event
	event string // the event's name
	d     query.Duration
}

// clocks lists the rolling windows of a parsed filter, segment nodes
// included.
func clocks(f query.Filter) []clock {
	var out []clock
	query.Walk(f, func(f query.Filter) bool {
		switch n := f.(type) {
		case *query.Event:
			if n.Within != nil {
				out = append(out, clock{event: n.Name, d: *n.Within})
			}
			return false // its where is about the event's properties
		case *query.Cond:
			if (n.Op == "in_last" || n.Op == "not_in_last") && len(n.Values) == 1 {
				if d, ok := n.Values[0].(query.Duration); ok {
					out = append(out, clock{field: n.Field.Name, d: d})
				}
			}
		}
		return true
	})
	return out
}

// after is the instant a window of d that holds t stops holding it.
func (e *Engine) after(t time.Time, d query.Duration) time.Time {
	if d.Unit == 'd' {
		return t.In(e.location()).AddDate(0, 0, d.N)
	}
	return t.Add(time.Duration(d.N) * time.Hour)
}

func (e *Engine) location() *time.Location {
	if e.cfg.Location == nil {
		return time.UTC
	}
	return e.cfg.Location
}

// nextAt computes, for each customer, the next instant after now at which
// a window of the definitions changes for it; customers with none are
// left out.
func (e *Engine) nextAt(ctx context.Context, cids []string, defs []definition, now time.Time) (map[string]time.Time, error) {
	var fields []string
	var events []clock
	for _, d := range defs {
		for _, c := range d.clocks {
			switch {
			case c.field != "" && !slices.Contains(fields, c.field):
				fields = append(fields, c.field)
			case c.field == "" && !slices.Contains(events, c):
				events = append(events, c)
			}
		}
	}
	out := map[string]time.Time{}
	soonest := func(cid string, t time.Time) {
		if t.After(now) && (out[cid].IsZero() || t.Before(out[cid])) {
			out[cid] = t
		}
	}
	if len(fields) > 0 {
		if err := e.fieldInstants(ctx, cids, defs, fields, soonest); err != nil {
			return nil, err
		}
	}
	if len(events) > 0 {
		if err := e.eventInstants(ctx, cids, events, now, soonest); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// fieldInstants reads the windowed date fields of the customers'
// documents: a value v enters a window at v (a value in the future) and
// leaves it at v + d.
func (e *Engine) fieldInstants(ctx context.Context, cids []string, defs []definition, fields []string, soonest func(string, time.Time)) error {
	for chunk := range slices.Chunk(cids, 500) {
		body := map[string]any{"size": len(chunk), "query": map[string]any{"ids": map[string]any{"values": chunk}},
			"_source": append([]string{"customer_id"}, fields...)}
		r, err := e.st.Search(ctx, e.cfg.Customers, body)
		if err != nil {
			return fmt.Errorf("membership: read windowed fields: %w", err)
		}
		for _, h := range r.Hits {
			var doc map[string]any
			if err := json.Unmarshal(h.Source, &doc); err != nil {
				return err
			}
			for _, d := range defs {
				for _, c := range d.clocks {
					if c.field == "" {
						continue
					}
					for _, v := range values(doc, strings.Split(c.field, ".")) {
						s, _ := v.(string)
						t, ok := parseInstant(s)
						if !ok {
							continue
						}
						soonest(h.ID, t)
						soonest(h.ID, e.after(t, c.d).Add(time.Millisecond))
					}
				}
			}
		}
	}
	return nil
}

// eventInstants finds, per event window, each customer's oldest event in
// it: the window's count drops when that one leaves it.
func (e *Engine) eventInstants(ctx context.Context, cids []string, events []clock, now time.Time, soonest func(string, time.Time)) error {
	filters := map[string]any{}
	for i, c := range events {
		start := now.Add(-time.Duration(c.d.N) * time.Hour)
		if c.d.Unit == 'd' {
			start = now.In(e.location()).AddDate(0, 0, -c.d.N)
		}
		filters[fmt.Sprint(i)] = map[string]any{"bool": map[string]any{"filter": []any{
			map[string]any{"term": map[string]any{schema.EventNameField: c.event}},
			map[string]any{"range": map[string]any{schema.EventTimeField: map[string]any{"gte": start.UTC().Format(time.RFC3339Nano)}}},
		}}}
	}
	for chunk := range slices.Chunk(cids, max(1, evalBuckets/len(events))) {
		body := map[string]any{"size": 0, "query": map[string]any{"terms": map[string]any{"customer_id": chunk}},
			"aggs": map[string]any{"w": map[string]any{"filters": map[string]any{"filters": filters},
				"aggs": map[string]any{"who": map[string]any{"terms": map[string]any{"field": "customer_id", "size": len(chunk)},
					"aggs": map[string]any{"oldest": map[string]any{"min": map[string]any{"field": schema.EventTimeField}}}}}}}}
		r, err := e.st.Search(ctx, e.cfg.Events, body)
		if err != nil {
			return fmt.Errorf("membership: read event windows: %w", err)
		}
		var aggs struct {
			W struct {
				Buckets map[string]struct {
					Who struct {
						Buckets []struct {
							Key    string `json:"key"`
							Oldest struct {
								Value *float64 `json:"value"`
							} `json:"oldest"`
						} `json:"buckets"`
					} `json:"who"`
				} `json:"buckets"`
			} `json:"w"`
		}
		if err := json.Unmarshal(r.Aggregations, &aggs); err != nil {
			return fmt.Errorf("membership: read event windows: %w", err)
		}
		for name, b := range aggs.W.Buckets {
			var i int
			if _, err := fmt.Sscan(name, &i); err != nil || i < 0 || i >= len(events) {
				continue
			}
			for _, w := range b.Who.Buckets {
				if w.Oldest.Value == nil {
					continue
				}
				t := time.UnixMilli(int64(*w.Oldest.Value))
				soonest(w.Key, e.after(t, events[i].d).Add(time.Millisecond))
			}
		}
	}
	return nil
}

// values collects the values at a path of a decoded document, through
// lists.
func values(v any, path []string) []any {
	if len(path) == 0 {
		if l, ok := v.([]any); ok {
			return l
		}
		return []any{v}
	}
	switch x := v.(type) {
	case map[string]any:
		return values(x[path[0]], path[1:])
	case []any:
		var out []any
		for _, el := range x {
			out = append(out, values(el, path)...)
		}
		return out
	}
	return nil
}

func parseInstant(s string) (time.Time, bool) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, true
	}
	return time.Time{}, false
}

// Leader says whether this process leads the deployment's periodic
// membership work (coord.Coordinator: a redsync lock it keeps extending).
type Leader interface {
	Lead(ctx context.Context, name string) (bool, error)
}

// Tick re-evaluates, with cause time, every customer whose next instant
// has come; it returns how many it evaluated.
func (e *Engine) Tick(ctx context.Context) (int, error) {
	defer e.m.since("tick", time.Now())
	now := time.Now()
	if err := e.st.Refresh(ctx, e.cfg.States); err != nil {
		return 0, err
	}
	n := 0
	// Bounded: a customer re-evaluated gets a next instant after now, but
	// a write lost to a crash of OpenSearch would find it again at once.
	for range 100 {
		r, err := e.st.Search(ctx, e.cfg.States, map[string]any{"size": 500, "_source": false,
			"query": map[string]any{"range": map[string]any{"next_at": map[string]any{"lte": now.UTC().Format(time.RFC3339Nano)}}},
			"sort":  []any{map[string]any{"next_at": "asc"}}})
		if err != nil {
			return n, err
		}
		if len(r.Hits) == 0 {
			return n, nil
		}
		cids := make([]string, len(r.Hits))
		for i, h := range r.Hits {
			cids[i] = h.ID
		}
		if _, err := e.changed(ctx, cids, CauseTime, now, Merges{}); err != nil {
			return n, err
		}
		n += len(cids)
		if err := e.st.Refresh(ctx, e.cfg.States); err != nil {
			return n, err
		}
		if len(r.Hits) < 500 {
			return n, nil
		}
	}
	return n, nil
}
