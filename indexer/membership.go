package indexer

import (
	"context"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"cdp/identity"
	"cdp/membership"
)

// Members is what stage 2 needs of membership (package membership): the
// tags a rebuilt document carries, and the re-evaluation of the customers
// whose documents were just written.
type Members interface {
	TagsOf(ctx context.Context, cids []string, merged map[string][]string) (map[string][]string, error)
	Changed(ctx context.Context, cids []string, merges membership.Merges) (searchable bool, err error)
	Republish(ctx context.Context) (int, error)
	Tick(ctx context.Context) (int, error)
	Reconcile(ctx context.Context) error
	ResumeSweeps(ctx context.Context) (int, error)
}

// TopicMembership is the topic of membership changes (CONTRACT §4.2).
const TopicMembership = membership.TopicSuffix

// republishEvery is how often records stored but left unpublished (by a
// process stopped between the two) are looked for; tickEvery how often
// the leader re-evaluates the customers a rolling window changes for
// (within 60 s of the instant, CONTRACT §4.2, with a Tick's own time to
// spare).
//
// reconcileEvery is how often the leader compares every definition's
// stored members with its filter evaluated now; it walks all of them.
const (
	republishEvery = 30 * time.Second
	tickEvery      = 10 * time.Second
	reconcileEvery = 10 * time.Minute
)

// membershipChanged re-evaluates the customers whose documents a batch
// wrote or deleted; searchable says it refreshed the customers index
// after the batch's writes, as it does when it has anything to evaluate.
func (ix *Indexer) membershipChanged(ctx context.Context, rb *rebuild) (searchable bool, err error) {
	if ix.members == nil || len(rb.written) == 0 {
		return false, nil
	}
	cids := slices.Sorted(maps.Keys(rb.written))
	err = ix.step(ctx, "membership", func() error {
		var err error
		searchable, err = ix.members.Changed(ctx, cids, rb.merges)
		return err
	})
	return searchable, err
}

// mergedInto maps the survivors among people to the profiles merged into
// them.
func mergedInto(cids []string, people map[string]*identity.Person) map[string][]string {
	out := map[string][]string{}
	for _, cid := range cids {
		if p := people[cid]; p != nil && p.MergedInto == "" && len(p.MergedIDs) > 0 {
			out[cid] = p.MergedIDs
		}
	}
	return out
}

// tagsOf reads the tags of the customers about to be rebuilt, and notes
// in rb the merges this round materializes: the merged-away documents it
// deletes (gone) and their survivors, whose flips have cause merge.
func (ix *Indexer) tagsOf(ctx context.Context, rb *rebuild, cids []string, people map[string]*identity.Person, gone []string) (map[string][]string, error) {
	if ix.members == nil {
		return nil, nil
	}
	merged := mergedInto(cids, people)
	rb.mu.Lock()
	if rb.merges.Absorb == nil {
		rb.merges = membership.Merges{Absorb: map[string][]string{}, Cause: map[string]bool{}}
	}
	for _, id := range gone {
		rb.merges.Cause[id] = true
	}
	for cid, ids := range merged {
		rb.merges.Absorb[cid] = ids
		for _, id := range ids {
			if slices.Contains(gone, id) {
				rb.merges.Cause[cid] = true
			}
		}
	}
	rb.mu.Unlock()
	return ix.members.TagsOf(ctx, cids, merged)
}

// background publishes pending membership records on start and every
// republishEvery, and, while this process leads, re-evaluates customers
// as time passes every tickEvery and takes over the definition sweeps a
// stopped process left (from the first tick on), until ctx ends.
func (ix *Indexer) background(ctx context.Context) {
	if ix.members == nil {
		return
	}
	t := time.NewTicker(tickEvery)
	defer t.Stop()
	var republished time.Time
	reconciled := time.Now() // the first one a period after start
	var reconciling, resuming atomic.Bool
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		if time.Since(republished) >= republishEvery {
			republished = time.Now()
			n, err := ix.members.Republish(ctx)
			switch {
			case err != nil && ctx.Err() == nil:
				ix.log.Warn("membership: republishing pending records failed", "err", err)
			case n > 0:
				ix.log.Info("membership: republished pending records", "records", n)
			}
		}
		lead, err := ix.coord.Lead(ctx, "membership-clock")
		if err != nil && ctx.Err() == nil {
			ix.log.Warn("membership: leader lease", "err", err)
		}
		if lead {
			if n, err := ix.members.Tick(ctx); err != nil && ctx.Err() == nil {
				ix.log.Warn("membership: time re-evaluation failed", "err", err)
			} else if n > 0 {
				ix.log.Debug("membership: re-evaluated as time passed", "customers", n)
			}
			// On their own: a long walk must not hold up the ticks.
			if resuming.CompareAndSwap(false, true) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer resuming.Store(false)
					if n, err := ix.members.ResumeSweeps(ctx); err != nil && ctx.Err() == nil {
						ix.log.Warn("membership: resuming definition sweeps failed", "err", err)
					} else if n > 0 {
						ix.log.Info("membership: resumed definition sweeps", "sweeps", n)
					}
				}()
			}
			if time.Since(reconciled) >= reconcileEvery && !reconciling.Load() {
				reconciled = time.Now()
				reconciling.Store(true)
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer reconciling.Store(false)
					if err := ix.members.Reconcile(ctx); err != nil && ctx.Err() == nil {
						ix.log.Warn("membership: reconciliation failed", "err", err)
					}
				}()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
