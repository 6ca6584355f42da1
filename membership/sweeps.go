package membership

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"cdp/store"
)

// Definition sweeps are recorded in the sweeps index (mapping
// MembershipSweeps), one document per changed definition: the definitions
// the sweep walks, in order, how many it finished (done), the last
// customer id it finished of the next one (after), and until when the
// process running it holds it (lease_until). Every batch checkpoints the
// record, conditional on the record standing as this process last wrote
// it, and renews the lease. A process that stops mid-sweep releases the
// lease (Close), one that dies lets it run out; either way the leader's
// ResumeSweeps takes the record over and goes on from its checkpoint, so
// the rest of the flips come within a lease and a tick, not at the next
// reconciliation. A sweep that fails hands its lease back and is resumed
// the same way. A batch done again after a crash before its checkpoint
// finds nothing new to flip and publishes again only what is pending,
// with the same message ids.

// sweepLease is how long a process holds a definition sweep without a
// checkpoint; past it, ResumeSweeps takes the sweep over.
const sweepLease = 30 * time.Second

// sweepRecord is a definition sweep under way.
type sweepRecord struct {
	ID         string   `json:"id"`   // the changed definition's key
	Keys       []string `json:"keys"` // the definitions to sweep, in order
	Done       int      `json:"done"` // how many of Keys are swept
	After      string   `json:"after"`
	Cause      string   `json:"cause"`
	LeaseUntil string   `json:"lease_until"`
	StartedAt  string   `json:"started_at"`
	UpdatedAt  string   `json:"updated_at"`
}

// sweepRun is a sweep record as this process last wrote it.
type sweepRun struct {
	rec sweepRecord
	at  store.SeqTerm
}

// errSuperseded: the sweep's record was written by another since this
// process last did (a newer change of the definition, or a take-over).
var errSuperseded = errors.New("membership: the sweep was taken over")

func parseKey(s string) (Key, error) {
	kind, id, ok := strings.Cut(s, ":")
	if !ok || (kind != KindSegment && kind != KindTag) {
		return Key{}, fmt.Errorf("membership: bad definition key %q in a sweep record", s)
	}
	return Key{kind, id}, nil
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// putSweep writes a sweep record, conditional on at unless nil, and
// returns where it stands then.
func (e *Engine) putSweep(ctx context.Context, rec sweepRecord, at *store.SeqTerm) (store.SeqTerm, error) {
	path := "/" + e.cfg.Sweeps + "/_doc/" + url.PathEscape(rec.ID)
	if at != nil {
		path += fmt.Sprintf("?if_seq_no=%d&if_primary_term=%d", at.SeqNo, at.PrimaryTerm)
	}
	var resp struct {
		SeqNo       int64 `json:"_seq_no"`
		PrimaryTerm int64 `json:"_primary_term"`
	}
	if err := e.st.Do(ctx, http.MethodPut, path, rec, &resp); err != nil {
		if store.StatusOf(err) == http.StatusConflict {
			return store.SeqTerm{}, errSuperseded
		}
		return store.SeqTerm{}, fmt.Errorf("membership: write sweep %s: %w", rec.ID, err)
	}
	return store.SeqTerm{SeqNo: resp.SeqNo, PrimaryTerm: resp.PrimaryTerm}, nil
}

// startSweep records a new sweep of keys, replacing any record of the
// same definition (whose process then stops at its next checkpoint).
func (e *Engine) startSweep(ctx context.Context, k Key, keys []string, cause string, now time.Time) (*sweepRun, error) {
	rec := sweepRecord{ID: k.String(), Keys: keys, Cause: cause, LeaseUntil: stamp(now.Add(sweepLease)), StartedAt: stamp(now), UpdatedAt: stamp(now)}
	at, err := e.putSweep(ctx, rec, nil)
	if err != nil {
		return nil, err
	}
	return &sweepRun{rec: rec, at: at}, nil
}

// checkpoint records how far the run got and renews its lease.
func (e *Engine) checkpoint(ctx context.Context, run *sweepRun) error {
	now := time.Now()
	run.rec.LeaseUntil, run.rec.UpdatedAt = stamp(now.Add(sweepLease)), stamp(now)
	at, err := e.putSweep(ctx, run.rec, &run.at)
	if err != nil {
		return err
	}
	run.at = at
	return nil
}

// runSweep sweeps the run's definitions from its checkpoint on, then
// removes its record. A definition gone since is swept as deleted.
func (e *Engine) runSweep(ctx context.Context, run *sweepRun) error {
	now := time.Now()
	defs, err := e.definitions(ctx, now)
	if err != nil {
		return e.stopSweep(ctx, run, err)
	}
	for run.rec.Done < len(run.rec.Keys) {
		k, err := parseKey(run.rec.Keys[run.rec.Done])
		if err != nil {
			return e.stopSweep(ctx, run, err)
		}
		var d *definition
		for i := range defs {
			if defs[i].key == k {
				d = &defs[i]
			}
		}
		err = e.sweep(ctx, k, d, defs, run.rec.Cause, now, run.rec.After, func(last string) error {
			run.rec.After = last
			return e.checkpoint(ctx, run)
		})
		if err != nil {
			return e.stopSweep(ctx, run, err)
		}
		run.rec.Done++
		run.rec.After = ""
		if err := e.checkpoint(ctx, run); err != nil {
			return e.stopSweep(ctx, run, err)
		}
	}
	path := fmt.Sprintf("/%s/_doc/%s?if_seq_no=%d&if_primary_term=%d", e.cfg.Sweeps, url.PathEscape(run.rec.ID), run.at.SeqNo, run.at.PrimaryTerm)
	if err := e.st.Do(ctx, http.MethodDelete, path, nil, nil); err != nil && store.StatusOf(err) != http.StatusConflict && store.StatusOf(err) != http.StatusNotFound {
		return fmt.Errorf("membership: remove finished sweep %s: %w", run.rec.ID, err)
	}
	return nil
}

// stopSweep ends a run that failed with err. A run taken over is no
// failure. Any other hands its lease back, so that the leader resumes it
// at its next tick rather than when the lease runs out: one stopped by
// Close, one that lost OpenSearch or Kafka for a moment.
func (e *Engine) stopSweep(ctx context.Context, run *sweepRun, err error) error {
	if errors.Is(err, errSuperseded) {
		e.log.Info("membership: definition sweep taken over", "sweep", run.rec.ID)
		return nil
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	run.rec.LeaseUntil = stamp(time.Now())
	if _, perr := e.putSweep(rctx, run.rec, &run.at); perr != nil && !errors.Is(perr, errSuperseded) {
		e.log.Warn("membership: could not hand back the lease of a stopped sweep", "sweep", run.rec.ID, "err", perr)
	}
	return err
}

// ResumeSweeps takes over every recorded sweep whose lease ran out (its
// process stopped or died mid-way) and runs it to its end from its
// checkpoint, one after the other. It returns how many it took over. The
// leader calls it (see indexer); two callers at once take each sweep once,
// the record's write being conditional.
func (e *Engine) ResumeSweeps(ctx context.Context) (int, error) {
	if err := e.st.Refresh(ctx, e.cfg.Sweeps); err != nil {
		return 0, err
	}
	r, err := e.st.Search(ctx, e.cfg.Sweeps, map[string]any{"size": 100, "seq_no_primary_term": true,
		"query": map[string]any{"range": map[string]any{"lease_until": map[string]any{"lte": stamp(time.Now())}}},
		"sort":  []any{map[string]any{"started_at": "asc"}}})
	if err != nil {
		return 0, fmt.Errorf("membership: sweeps to resume: %w", err)
	}
	n := 0
	for _, h := range r.Hits {
		var rec sweepRecord
		if err := h.Decode(&rec); err != nil {
			return n, err
		}
		if h.SeqNo == nil || h.PrimaryTerm == nil {
			return n, fmt.Errorf("membership: sweep %s read without its sequence number", rec.ID)
		}
		run := &sweepRun{rec: rec, at: store.SeqTerm{SeqNo: *h.SeqNo, PrimaryTerm: *h.PrimaryTerm}}
		if err := e.checkpoint(ctx, run); errors.Is(err, errSuperseded) {
			continue // taken by another, or replaced by a newer change
		} else if err != nil {
			return n, err
		}
		n++
		e.log.Info("membership: resuming a definition sweep", "sweep", rec.ID, "done", rec.Done, "of", len(rec.Keys), "after", rec.After)
		if err := e.runSweep(ctx, run); err != nil {
			return n, fmt.Errorf("membership: resumed sweep %s: %w", rec.ID, err)
		}
	}
	return n, nil
}
