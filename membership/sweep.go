package membership

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"slices"
	"time"

	"cdp/schema"
	"cdp/store"
)

// sweepBatch is how many customers one step of a definition sweep
// evaluates and writes.
const sweepBatch = 500

// sweepKeepAlive is how long the point in time of a sweep lives between
// two pages.
const sweepKeepAlive = 2 * time.Minute

// Redefine publishes, with cause definition, what the creation, edit or
// deletion of a definition changed: the members of a new one enter, an
// edited one's leavers and newcomers flip, every member of a deleted one
// exits. Definitions that name the segment, at any depth, are swept too.
// It walks the customers that match now and those stored as members, both
// sorted by customer id, in bounded batches, so that it takes constant
// memory however many members there are while the service goes on
// serving.
//
// The sweep is recorded (sweeps.go) before it starts and checkpointed
// after every batch, so that one cut short by a restart is resumed where
// it stopped by the leader's ResumeSweeps. A newer change of the same
// definition replaces the record, and the older sweep stops at its next
// checkpoint.
func (e *Engine) Redefine(ctx context.Context, kind, id string) error {
	defer e.m.since("redefine", time.Now())
	now := time.Now()
	defs, err := e.definitions(ctx, now)
	if err != nil {
		return err
	}
	keys := dependents(defs, Key{kind, id})
	var order []string
	for _, d := range defs {
		if keys[d.key] {
			order = append(order, d.key.String())
			delete(keys, d.key)
		}
	}
	var gone []string // deleted: in no definition any more
	for k := range keys {
		gone = append(gone, k.String())
	}
	slices.Sort(gone)
	run, err := e.startSweep(ctx, Key{kind, id}, append(order, gone...), CauseDefinition, now)
	if err != nil {
		return err
	}
	return e.runSweep(ctx, run)
}

// Reconcile compares stored membership with every definition evaluated
// now and publishes what is missing: flips a crash kept from being stored
// (cause change), and the leavers of definitions deleted while their
// sweep was cut short (cause definition). It walks every definition's
// members, so the leader runs it seldom (see indexer).
func (e *Engine) Reconcile(ctx context.Context) error {
	defer e.m.since("reconcile", time.Now())
	now := time.Now()
	defs, err := e.definitions(ctx, now)
	if err != nil {
		return err
	}
	defined := map[Key]bool{}
	for _, d := range defs {
		defined[d.key] = true
		if err := e.sweep(ctx, d.key, &d, defs, CauseChange, now, "", nil); err != nil {
			return err
		}
	}
	stale, err := e.storedKeys(ctx)
	if err != nil {
		return err
	}
	for _, k := range stale {
		if !defined[k] {
			if err := e.sweep(ctx, k, nil, defs, CauseDefinition, now, "", nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// storedKeys lists the definitions some stored membership names.
func (e *Engine) storedKeys(ctx context.Context) ([]Key, error) {
	if err := e.st.Refresh(ctx, e.cfg.States); err != nil {
		return nil, err
	}
	r, err := e.st.Search(ctx, e.cfg.States, map[string]any{"size": 0, "aggs": map[string]any{
		"segments": map[string]any{"terms": map[string]any{"field": "segments", "size": 10000}},
		"rules":    map[string]any{"terms": map[string]any{"field": "rules", "size": 10000}}}})
	if err != nil {
		return nil, fmt.Errorf("membership: stored definitions: %w", err)
	}
	type buckets struct {
		Buckets []struct {
			Key string `json:"key"`
		} `json:"buckets"`
	}
	var aggs struct{ Segments, Rules buckets }
	if err := json.Unmarshal(r.Aggregations, &aggs); err != nil {
		return nil, err
	}
	var out []Key
	for _, b := range aggs.Segments.Buckets {
		out = append(out, Key{KindSegment, b.Key})
	}
	for _, b := range aggs.Rules.Buckets {
		out = append(out, Key{KindTag, b.Key})
	}
	return out, nil
}

// RedefineLater runs Redefine in the background, so that the request that
// changed the definition is answered at once. A failed sweep is logged;
// one cut short by Close (or a crash) is resumed by the leader's
// ResumeSweeps, from its last checkpoint.
func (e *Engine) RedefineLater(kind, id string) {
	e.sweeps.Add(1)
	go func() {
		defer e.sweeps.Done()
		if err := e.Redefine(e.base, kind, id); err != nil && e.base.Err() == nil {
			e.log.Error("membership: definition sweep failed", "kind", kind, "id", id, "err", err)
		}
	}()
}

// Close stops the sweeps running in the background and waits for them.
func (e *Engine) Close() error {
	e.stop()
	e.sweeps.Wait()
	return nil
}

// sweep brings stored membership in one definition (nil: deleted) up to
// date for every customer; all are every definition, for the customers'
// next instants. It walks the customers after the id after only (""):
// every one, the rest of a sweep resumed. checkpoint, unless nil, is told
// the last customer id done after every batch, and at least every third
// of sweepLease while the walk finds nothing to do, so that the sweep's
// lease is renewed; its error stops the sweep.
func (e *Engine) sweep(ctx context.Context, k Key, d *definition, all []definition, cause string, now time.Time, after string, checkpoint func(last string) error) error {
	if err := e.st.Refresh(ctx, e.cfg.States); err != nil {
		return err
	}
	field := "segments"
	if k.Kind == KindTag {
		field = "rules"
	}
	from := func(q any) any {
		if after == "" {
			return q
		}
		return map[string]any{"bool": map[string]any{"filter": []any{q,
			map[string]any{"range": map[string]any{"customer_id": map[string]any{"gt": after}}}}}}
	}
	stored := e.ids(ctx, e.cfg.States, from(map[string]any{"term": map[string]any{field: k.ID}}))
	matching := func(yield func(string, error) bool) {}
	var defs []definition
	if d != nil && d.query != nil {
		// A search under a point in time names no index, so the
		// customers alias's filter is spelled out: events share the index.
		q := map[string]any{"bool": map[string]any{"filter": []any{d.query,
			map[string]any{"term": map[string]any{schema.JoinField: schema.CustomerRelation}}}}}
		matching = e.ids(ctx, e.cfg.Customers, from(q))
		defs = []definition{*d}
	}
	scope := func(x Key) bool { return x == k }
	// The last customer id done, and when the checkpoint last heard.
	done, told := after, time.Now()
	var batch []string
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		// Evaluated again, not taken from the walk: the indexer may have
		// changed some of them since.
		want, err := e.evaluate(ctx, batch, defs)
		if err != nil {
			return err
		}
		next, err := e.nextAt(ctx, batch, all, now)
		if err != nil {
			return err
		}
		retagged, err := e.apply(ctx, batch, want, next, scope, cause, now, Merges{})
		if err != nil {
			return err
		}
		if len(retagged) > 0 {
			e.log.Debug("definition sweep retagged customers", "definition", k.String(), "customers", len(retagged))
		}
		done = batch[len(batch)-1]
		batch = batch[:0]
		return nil
	}
	tell := func(force bool) error {
		if checkpoint == nil || !force && time.Since(told) < sweepLease/3 {
			return nil
		}
		told = time.Now()
		return checkpoint(done)
	}
	err := differ(renewing(stored, tell), renewing(matching, tell), func(cid string) error {
		batch = append(batch, cid)
		if len(batch) == sweepBatch {
			if err := flush(); err != nil {
				return err
			}
			return tell(true)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("membership: sweep %s: %w", k, err)
	}
	if err := flush(); err != nil {
		return fmt.Errorf("membership: sweep %s: %w", k, err)
	}
	return nil
}

// renewing is ids with tell asked, at every id, whether the sweep's lease
// is due for renewal; its error ends the walk.
func renewing(ids iter.Seq2[string, error], tell func(force bool) error) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		for id, err := range ids {
			if err == nil {
				err = tell(false)
			}
			if !yield(id, err) || err != nil {
				return
			}
		}
	}
}

// ids walks the ids of the documents of index matching q, sorted by
// customer id, under a point in time.
func (e *Engine) ids(ctx context.Context, index string, q any) iter.Seq2[string, error] {
	scan := store.Scan{Body: map[string]any{"query": q, "_source": []string{"customer_id"},
		"sort": []any{map[string]any{"customer_id": "asc"}}}, PageSize: 1000, KeepAlive: sweepKeepAlive}
	return func(yield func(string, error) bool) {
		for h, err := range e.st.Hits(ctx, index, scan) {
			if err != nil {
				yield("", err)
				return
			}
			var doc struct {
				CustomerID string `json:"customer_id"`
			}
			if err := h.Decode(&doc); err != nil {
				yield("", err)
				return
			}
			if !yield(doc.CustomerID, nil) {
				return
			}
		}
	}
}

// differ walks two ascending sequences of ids and calls f with every id
// in one and not the other.
func differ(a, b iter.Seq2[string, error], f func(string) error) error {
	na, stopA := iter.Pull2(a)
	defer stopA()
	nb, stopB := iter.Pull2(b)
	defer stopB()
	next := func(n func() (string, error, bool)) (string, bool, error) {
		id, err, ok := n()
		return id, ok, err
	}
	x, okA, err := next(na)
	if err != nil {
		return err
	}
	y, okB, err := next(nb)
	if err != nil {
		return err
	}
	for okA || okB {
		switch {
		case okA && okB && x == y:
			if x, okA, err = next(na); err != nil {
				return err
			}
			if y, okB, err = next(nb); err != nil {
				return err
			}
		case okA && (!okB || x < y):
			if err := f(x); err != nil {
				return err
			}
			if x, okA, err = next(na); err != nil {
				return err
			}
		default:
			if err := f(y); err != nil {
				return err
			}
			if y, okB, err = next(nb); err != nil {
				return err
			}
		}
	}
	return nil
}

// SetManual adds and removes manual tags of a customer and returns the
// manual tags its document carries then. The document's tags follow at
// its next rebuild, which the caller asks the indexer for.
//
// merged are the profiles merged into cid. Until the rebuild that
// materializes a merge moves their manual tags to cid (clearAbsorbed),
// cid's document already shows them: a tag removed from cid is removed
// from them first, or that rebuild would bring it back.
func (e *Engine) SetManual(ctx context.Context, cid string, merged, add, remove []string) ([]string, error) {
	// A removal with merged profiles writes cid's state even when its
	// own tags stay: a rebuild that read a merged profile before
	// dropManual and absorbs into cid then finds cid changed, and reads
	// both again.
	fence := len(remove) > 0 && len(merged) > 0
	if fence {
		if err := e.dropManual(ctx, merged, func(t string) bool { return slices.Contains(remove, t) }); err != nil {
			return nil, err
		}
	}
	for round := 0; round < maxConflictRounds; round++ {
		sts, err := e.states(ctx, append([]string{cid}, merged...))
		if err != nil {
			return nil, err
		}
		r := sts[cid]
		next := r.state
		next.CustomerID = cid
		manual := slices.DeleteFunc(append([]string{}, r.state.Manual...), func(t string) bool { return slices.Contains(remove, t) })
		for _, t := range add {
			if !slices.Contains(manual, t) && !slices.Contains(remove, t) {
				manual = append(manual, t)
			}
		}
		slices.Sort(manual)
		if slices.Equal(manual, r.state.Manual) && !fence {
			return absorbed(manual, merged, sts), nil
		}
		next.Manual = manual
		next.Version = r.state.Version + 1
		next.UpdatedAt = time.Now().UTC().Format(time.RFC3339Nano)
		op := store.Op{Action: store.Index, Index: e.cfg.States, ID: cid, Body: next, IfAbsent: r.at == nil, IfMatch: r.at}
		v, err := e.st.Bulk(ctx, []store.Op{op})
		if err != nil {
			return nil, err
		}
		switch store.Judge(op, v[0]) {
		case store.Applied:
			return absorbed(manual, merged, sts), nil
		case store.Stale:
			continue
		default:
			return nil, v[0].Err()
		}
	}
	return nil, fmt.Errorf("membership: manual tags of %s kept changing under writes", cid)
}

// HasManual says whether any customer carries tag as a manual tag.
func (e *Engine) HasManual(ctx context.Context, tag string) (bool, error) {
	if err := e.st.Refresh(ctx, e.cfg.States); err != nil {
		return false, err
	}
	r, err := e.st.Search(ctx, e.cfg.States, map[string]any{"size": 0, "track_total_hits": true,
		"query": map[string]any{"term": map[string]any{"manual": tag}}})
	if err != nil {
		return false, err
	}
	return r.Total > 0, nil
}
