package identity_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"cdp/coord"
	"cdp/identity"
	"cdp/mapping"
	"cdp/store"
	"cdp/testing/harness"
)

func resolverFor(st *store.Client, prefix string) *identity.Resolver {
	return identity.NewResolver(st, identity.IndicesOf(prefix), 1<<12)
}

// Correctness does not rest on the lock (issue 11): four resolvers with no
// lock and no shared cache resolve overlapping traffic at once (devices
// seen alone, then with users, devices shared among users), and what the
// indices hold afterwards is consistent: every identity record leads,
// through merges, to a live person that holds it, no identity is held by
// two live persons, and no person holds two crm ids.
func TestConcurrentResolversWithoutALockLeaveOneConsistentState(t *testing.T) {
	env := harness.Services(t)
	cfg := env.Config(t)
	env.Bootstrap(t, cfg)
	st := env.Store(t)
	ctx := context.Background()

	const writers, rounds, batch = 4, 30, 20
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := resolverFor(st, cfg.IndexPrefix)
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range rounds {
				reqs := make([]identity.Request, batch)
				for j := range reqs {
					dev := identity.Identity{Type: identity.AnonymousID, Value: fmt.Sprintf("d%d", rng.IntN(60))}
					ids := []identity.Identity{dev}
					if rng.IntN(2) == 0 {
						ids = append(ids, identity.Identity{Type: identity.CRMID, Value: fmt.Sprintf("u%d", rng.IntN(25))})
					}
					if rng.IntN(3) == 0 {
						ids = append(ids, identity.Identity{Type: identity.AnonymousID, Value: fmt.Sprintf("d%d", rng.IntN(60))})
					}
					reqs[j] = identity.Request{IDs: ids, At: int64(1000*i + j)}
				}
				// As the indexer does: a call that kept losing to other
				// writers is tried again (its writes so far stand).
				var err error
				for try := 0; try < 20; try++ {
					if _, err = r.Resolve(ctx, reqs); err == nil {
						break
					}
					time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	if err := st.Refresh(ctx, mapping.Identities.Alias(cfg.IndexPrefix), mapping.People.Alias(cfg.IndexPrefix)); err != nil {
		t.Fatal(err)
	}
	r := resolverFor(st, cfg.IndexPrefix)
	heldBy := map[string]string{}
	persons := map[string]identity.Person{}
	for h, err := range st.Hits(ctx, mapping.People.Alias(cfg.IndexPrefix), store.Scan{PageSize: 1000, Body: map[string]any{"sort": []any{map[string]any{"customer_id": "asc"}}}}) {
		if err != nil {
			t.Fatal(err)
		}
		var p identity.Person
		if err := h.Decode(&p); err != nil {
			t.Fatal(err)
		}
		persons[h.ID] = p
		if p.MergedInto != "" {
			continue
		}
		crm := 0
		for _, k := range p.Identities {
			if other, ok := heldBy[k]; ok {
				t.Errorf("%s is held by %s and %s", k, other, h.ID)
			}
			heldBy[k] = h.ID
			if id, _ := identity.ParseKey(k); id.Type == identity.CRMID {
				crm++
			}
		}
		if crm > 1 {
			t.Errorf("%s holds %d crm ids: %v", h.ID, crm, p.Identities)
		}
	}
	n := 0
	for h, err := range st.Hits(ctx, mapping.Identities.Alias(cfg.IndexPrefix), store.Scan{PageSize: 1000, Body: map[string]any{"sort": []any{map[string]any{"created_at": "asc"}}}}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		id, _ := identity.ParseKey(h.ID)
		cid, err := r.Holder(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		root, err := r.Root(ctx, cid)
		if err != nil {
			t.Fatal(err)
		}
		if root == nil {
			t.Errorf("%s leads to no person", h.ID)
		} else if heldBy[h.ID] != root.CustomerID {
			t.Errorf("%s leads to %s (holding %v), but the live person holding it is %q: %+v", h.ID, root.CustomerID, root.Identities, heldBy[h.ID], persons[heldBy[h.ID]])
		}
	}
	if n < 60 {
		t.Errorf("only %d identity records: the traffic did not run", n)
	}
}

// Issue 11: identity caches are invalidated so that no later message lands
// on a merged-away id, in any process. Resolver b has a device cached on
// its profile; resolver a (another process) merges that profile into a
// CRM customer; b's next message from the device goes to the survivor.
func TestAMergeInOneProcessKeepsAnotherFromSendingMessagesToTheMergedAwayID(t *testing.T) {
	env := harness.Services(t)
	cfg := env.Config(t)
	env.Bootstrap(t, cfg)
	st := env.Store(t)
	ctx := context.Background()
	co := func() *coord.Coordinator {
		c := coord.New(coord.Config{Addr: cfg.RedisAddr, Prefix: cfg.IndexPrefix}, harness.Logger())
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b := resolverFor(st, cfg.IndexPrefix), resolverFor(st, cfg.IndexPrefix)
	for _, r := range []*identity.Resolver{a, b} {
		c := co()
		r.Lock, r.Epochs, r.Tombstones = c, c, c
	}
	dev := identity.Identity{Type: identity.AnonymousID, Value: "dev-cache"}
	crm := identity.Identity{Type: identity.CRMID, Value: "u-cache"}
	first, err := b.Resolve(ctx, []identity.Request{{IDs: []identity.Identity{dev}, At: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Resolve(ctx, []identity.Request{{IDs: []identity.Identity{dev}, At: 2}}); err != nil { // now cached
		t.Fatal(err)
	}
	if _, err := a.Resolve(ctx, []identity.Request{{IDs: []identity.Identity{crm}, At: 3}}); err != nil {
		t.Fatal(err)
	}
	merged, err := a.Resolve(ctx, []identity.Request{{IDs: []identity.Identity{crm, dev}, At: 4}})
	if err != nil {
		t.Fatal(err)
	}
	if len(merged.MergedAway) != 1 || merged.MergedAway[0] != first.Customers[0] {
		t.Fatalf("merge: %+v, want %s merged away", merged, first.Customers[0])
	}
	got, err := b.Resolve(ctx, []identity.Request{{IDs: []identity.Identity{dev}, At: 5}})
	if err != nil {
		t.Fatal(err)
	}
	if got.Customers[0] != merged.Customers[0] {
		t.Errorf("b sent the device's message to %s, want the survivor %s (not the merged-away %s)", got.Customers[0], merged.Customers[0], first.Customers[0])
	}
}
