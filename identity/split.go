package identity

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"cdp/store"
)

// Errors of Split, each a 4xx of the API.
var (
	ErrNoProfile     = errors.New("no such customer")
	ErrNotOnProfile  = errors.New("identity not on the profile")
	ErrNoneRemaining = errors.New("no identity would remain")
	// ErrEpoch is a split done whose news did not reach the other
	// processes' caches: they learn it when their entries expire.
	ErrEpoch = errors.New("split done, other caches not told")
)

// SplitResult is a split done: the profile split (the one holding the
// customer id asked for, after its merges) and the new one.
type SplitResult struct {
	From, New string
}

// Split moves identities from the profile holding cid now to a new
// profile (CONTRACT §6) and remembers the two as apart, so that no later
// message merges them again. The events and rows that came with those
// identities alone are moved by the indexer, when it rebuilds the profile
// split (SplitFrom). An identity not on the profile is ErrNotOnProfile,
// splitting every identity ErrNoneRemaining.
func (r *Resolver) Split(ctx context.Context, cid string, ids []Identity, actor string) (SplitResult, error) {
	keys := make([]string, 0, len(ids))
	for _, id := range ids {
		if k := id.Key(); !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	if r.Lock != nil {
		unlock, err := r.Lock.Lock(ctx, keys)
		if err != nil {
			return SplitResult{}, fmt.Errorf("identity: lock: %w", err)
		}
		defer unlock()
	}
	for round := 1; ; round++ {
		from, err := r.Root(ctx, cid)
		if err != nil {
			return SplitResult{}, err
		}
		if from == nil {
			return SplitResult{}, ErrNoProfile
		}
		for _, k := range keys {
			if !from.holds(k) {
				return SplitResult{}, fmt.Errorf("%w: %s", ErrNotOnProfile, k)
			}
		}
		rest := slices.DeleteFunc(slices.Clone(from.Identities), func(k string) bool { return slices.Contains(keys, k) })
		if len(rest) == 0 {
			return SplitResult{}, ErrNoneRemaining
		}
		now := time.Now().UTC()
		to := &Person{CustomerID: r.NewID(), Identities: keys, FirstSeen: now.UnixMilli(), Apart: []string{from.CustomerID}, SplitFrom: from.CustomerID}
		next := from.clone()
		next.Identities = rest
		next.Apart = addOnce(next.Apart, to.CustomerID)
		// The new person first: until the old one is written over, nobody
		// reads it, and a lost race leaves it unread.
		changed, err := r.writePeople(ctx, map[string]*Person{to.CustomerID: to})
		if err == nil && len(changed) == 0 {
			changed, err = r.writePeople(ctx, map[string]*Person{from.CustomerID: next})
		}
		if err != nil {
			return SplitResult{}, err
		}
		if len(changed) > 0 {
			if round == maxRounds {
				return SplitResult{}, fmt.Errorf("identity: split of %s: the profile kept changing, %d rounds running", from.CustomerID, round)
			}
			continue
		}
		if err := r.splitRecords(ctx, to, keys, actor, now); err != nil {
			return SplitResult{}, err
		}
		r.Forget(from.CustomerID, to.CustomerID)
		for _, k := range keys {
			r.cache.Remove(k)
		}
		if r.Epochs != nil {
			if err := r.Epochs.Bump(ctx); err != nil {
				// Other processes' caches expire within CacheTTL anyway.
				return SplitResult{From: from.CustomerID, New: to.CustomerID}, fmt.Errorf("%w: %v", ErrEpoch, err)
			}
		}
		return SplitResult{From: from.CustomerID, New: to.CustomerID}, nil
	}
}

// splitRecords points the split identities at the new profile and writes
// the history entry.
func (r *Resolver) splitRecords(ctx context.Context, to *Person, keys []string, actor string, now time.Time) error {
	ops := make([]store.Op, 0, len(keys)+1)
	for _, k := range keys {
		id, _ := ParseKey(k)
		ops = append(ops, store.Op{Action: store.Index, Index: r.ix.Identities, ID: k,
			Body: record{Type: id.Type, Value: id.Value, CustomerID: to.CustomerID, CreatedAt: now.Format(time.RFC3339Nano)}})
	}
	ops = append(ops, r.entryOp(Entry{At: now, Action: ActionSplit, CustomerIDs: []string{to.SplitFrom, to.CustomerID},
		Identities: keyIdentities(keys), Source: Source{API: ActionSplit, Actor: actor}}))
	verdicts, err := r.st.Bulk(ctx, ops)
	if err != nil {
		return fmt.Errorf("identity: split: %w", err)
	}
	var errs []error
	for i, v := range verdicts {
		if o := store.Judge(ops[i], v); o != store.Applied && o != store.Unchanged {
			errs = append(errs, &store.ItemError{Op: ops[i], Verdict: v, Outcome: o})
		}
	}
	return errors.Join(errs...)
}
