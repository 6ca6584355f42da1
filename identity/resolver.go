package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"

	"cdp/mapping"
	"cdp/store"
)

// Indices are the indices (aliases) OneID keeps its state in.
type Indices struct {
	// Identities holds one record per identity: who holds it.
	Identities string
	// People holds one Person per customer id: what it holds.
	People string
	// History holds the merges, splits and conflicts.
	History string
}

// IndicesOf are the OneID indices of a deployment, by its index prefix.
func IndicesOf(prefix string) Indices {
	return Indices{Identities: mapping.Identities.Alias(prefix), People: mapping.People.Alias(prefix), History: mapping.IdentityHistory.Alias(prefix)}
}

// Resolver maps identities to customer ids (CONTRACT §6). Who holds an
// identity lives in the identity index, whose document id is the
// identity's key; an identity is claimed with a create that fails when the
// key exists, so two writers (lanes or indexer processes) never give one
// identity two customers. What a profile holds lives in the people index,
// written with optimistic concurrency (if_seq_no), so two writers never
// both change one profile from the same reading: the loser reads again and
// redoes its pass. The messages of one call are resolved in order, as if
// they had come one at a time (see Resolve). Identity keys and the
// customers known not to be merged away are cached; a cache another
// process made stale (it merged the customer) only sends a message to a
// merged-away customer, whose rows and events the survivor's rebuild
// moves over (package indexer).
type Resolver struct {
	st    *store.Client
	ix    Indices
	cache *expirable.LRU[string, string]
	// roots caches customer ids whose person was last read unmerged.
	roots *expirable.LRU[string, bool]
	// NewID mints customer ids; tests may replace it.
	NewID func() string
	// Rules order a request's identities and tell which ones link nobody;
	// nil is the defaults.
	Rules *Rules
	// Lock, if set, is held around every pass that writes, for the
	// identities of its messages: one writer at a time per identity across
	// lanes and processes. Correctness does not rest on it
	// (creates and if_seq_no decide), it keeps writers from redoing each
	// other's passes.
	Lock Locker
	// Epochs, if set, tell the resolvers of every process that a split
	// moved identities they may have cached: a resolver that sees the
	// epoch move, or cannot read it, drops its caches.
	Epochs Epochs
	// Tombstones, if set, keep a process from sending a message to a
	// customer another process merged away while this one had it cached.
	Tombstones Tombstones
	// Observe, if set, is told what each call merged and recorded.
	Observe func(merges, conflicts int)
	// OnError, if set, is told of what the resolver gets over without
	// failing the call (tombstones it could not read or write).
	OnError func(error)
	// Timed, if set, is told how long each part of a call took: cached
	// (a call answered from the caches), lock, read (identities and
	// persons), write (persons, claims, history).
	Timed func(part string, d time.Duration)

	mu    sync.Mutex
	epoch int64
}

// Tombstones remember, for every process of a deployment, the customer ids
// merged away lately (longer than CacheTTL).
type Tombstones interface {
	MarkGone(ctx context.Context, cids ...string) error
	Gone(ctx context.Context, cids []string) (map[string]bool, error)
}

// Epochs is a counter shared by every process of one deployment.
type Epochs interface {
	Epoch(ctx context.Context) (int64, error)
	Bump(ctx context.Context) error
}

// checkEpoch drops the caches when another process split a profile since
// the last call, or when nobody can say.
func (r *Resolver) checkEpoch(ctx context.Context) {
	if r.Epochs == nil {
		return
	}
	n, err := r.Epochs.Epoch(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil || n != r.epoch {
		r.cache.Purge()
		r.roots.Purge()
		if err == nil {
			r.epoch = n
		}
	}
}

// Locker locks identities (by key) for every writer of one deployment.
type Locker interface {
	Lock(ctx context.Context, keys []string) (unlock func(), err error)
}

// CacheTTL is how long a resolver trusts what it cached: a split made
// through the API of another process moves identities away from a cached
// customer, and until the entry expires, messages with those identities
// still go to it (its rebuild moves them on, see package indexer).
const CacheTTL = time.Minute

// CacheEntryBytes is the heap one entry of a resolver's cache size takes
// when the cache is full: an identity key and its customer id in the
// identity cache, and a customer id in the roots cache (both are sized
// alike, so both can fill), with the LRU's list, map and expiry bucket
// entries. Measured: about 410 bytes on amd64 with go1.26
// (TestCacheEntryBytesIsWhatAFullCacheTakes keeps it within 20%); the
// 1<<20 entries the indexer used to cache took over 200 MiB, more than
// its whole soft memory limit, so callers size the cache from a budget.
const CacheEntryBytes = 448

// NewResolver returns a resolver over the OneID indices.
func NewResolver(st *store.Client, ix Indices, cacheSize int) *Resolver {
	return &Resolver{st: st, ix: ix, NewID: NewCustomerID,
		cache: expirable.NewLRU[string, string](cacheSize, nil, CacheTTL),
		roots: expirable.NewLRU[string, bool](cacheSize, nil, CacheTTL)}
}

// WithRules sets the rules the resolver follows and returns it.
func (r *Resolver) WithRules(rules *Rules) *Resolver {
	r.Rules = rules
	return r
}

// NewCustomerID returns a random customer id.
func NewCustomerID() string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return "c_" + hex.EncodeToString(b[:])
}

type record struct {
	Type       string `json:"type"`
	Value      string `json:"value"`
	CustomerID string `json:"customer_id"`
	CreatedAt  string `json:"created_at"`
}

// Resolve returns the customer id of each request, in the order the
// messages came. Each request's identities are first put as Rules.Linking
// has them. A request whose identities are all cached on one customer
// known unmerged costs nothing; otherwise the call reads the identities
// and the persons involved and resolves every request in order (assign),
// as if each had come alone: merges, conflicts and claims come out the same
// however the messages were batched. It then writes, in this order: the
// persons (if_seq_no), the identity claims (create-if-absent), the
// identity records of merged-away profiles (now naming the survivor) and
// the history. A claim or person another writer got to first makes the
// call read again and redo its pass over what the index now holds (first
// applied wins), at most maxRounds times; then it gives up with an error,
// which the caller retries. A request with no identities left gets "".
func (r *Resolver) Resolve(ctx context.Context, reqs []Request) (Resolution, error) {
	for i := range reqs {
		reqs[i].IDs = r.Rules.Linking(reqs[i].IDs)
	}
	t := time.Now()
	lap := func(part string) {
		if r.Timed != nil {
			now := time.Now()
			r.Timed(part, now.Sub(t))
			t = now
		}
	}
	r.checkEpoch(ctx)
	if out, ok := r.cached(reqs); ok && r.alive(ctx, out) {
		lap("cached")
		return Resolution{Customers: out}, nil
	}
	var keys []string
	seen := map[string]bool{}
	for _, req := range reqs {
		for _, id := range req.IDs {
			if k := id.Key(); !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	if r.Lock != nil {
		unlock, err := r.Lock.Lock(ctx, keys)
		if err != nil {
			return Resolution{}, fmt.Errorf("identity: lock: %w", err)
		}
		defer unlock()
	}
	lap("lock")
	known := map[string]string{}
	if err := r.fetch(ctx, keys, known); err != nil {
		return Resolution{}, err
	}
	people := map[string]*Person{}
	if err := r.fetchPeople(ctx, known, people); err != nil {
		return Resolution{}, err
	}
	if err := r.fetchOrphans(ctx, known, people); err != nil {
		return Resolution{}, err
	}
	lap("read")
	defer lap("write")
	for round := 1; ; round++ {
		p := assign(r.Rules, reqs, known, people, r.NewID)
		// Persons first: a person changes only from what this pass read
		// (if_seq_no), so of two writers that both give a crm-less profile
		// a crm id, one learns of the other before it claims anything.
		changed, err := r.writePeople(ctx, p.People)
		if err != nil {
			return Resolution{}, err
		}
		var lost []string
		if len(changed) > 0 {
			// Nothing is claimed: the persons this round minted (written
			// if the merged-away ones went through) are taken back.
			if err := r.dropUnclaimed(ctx, plan{People: p.People}, nil); err != nil {
				return Resolution{}, err
			}
		} else {
			if lost, err = r.claim(ctx, p.Claims); err != nil {
				return Resolution{}, err
			}
			for _, c := range p.Claims {
				if k := c.Identity.Key(); !slices.Contains(lost, k) {
					known[k] = c.CustomerID
				}
			}
			if len(lost) == 0 {
				if err := r.finish(ctx, p); err != nil {
					return Resolution{}, err
				}
				r.remember(p, known)
				res := Resolution{Customers: p.Customers}
				gone := map[string]bool{}
				for _, m := range p.Merges {
					for _, l := range m.Losers {
						gone[l] = true
					}
				}
				for cid := range p.Forwarded {
					gone[cid] = true
				}
				for cid := range gone {
					res.MergedAway = append(res.MergedAway, cid)
				}
				sort.Strings(res.MergedAway)
				if r.Tombstones != nil && len(res.MergedAway) > 0 {
					if err := r.Tombstones.MarkGone(ctx, res.MergedAway...); err != nil {
						// Other processes' caches expire within CacheTTL, and a
						// message they send meanwhile is moved on (indexer).
						r.tombstoneErr(err)
					}
				}
				return res, nil
			}
			// Persons written for identities another writer won: the
			// next pass repairs them over what the records say, and a
			// new one that won none of its identities is taken back.
			if err := r.dropUnclaimed(ctx, p, lost); err != nil {
				return Resolution{}, err
			}
		}
		if round == maxRounds {
			return Resolution{}, fmt.Errorf("identity: other writers changed %d identities or profiles this call wanted, %d rounds running", max(len(lost), len(changed)), round)
		}
		// Whatever this round wrote or found changed is read again.
		for _, cid := range changed {
			delete(people, cid)
		}
		for cid := range p.People {
			delete(people, cid)
		}
		if err := r.fetch(ctx, lost, known); err != nil {
			return Resolution{}, err
		}
		if err := r.fetchPeople(ctx, known, people); err != nil {
			return Resolution{}, err
		}
		if err := r.fetchOrphans(ctx, known, people); err != nil {
			return Resolution{}, err
		}
	}
}

// Resolution is what Resolve decided: each request's customer, and the
// customers merged away that it merged or went through (their rows and
// events must move to their survivors; moving nothing costs a search).
type Resolution struct {
	Customers  []string
	MergedAway []string
}

// maxRounds bounds the claim rounds of one Resolve call.
const maxRounds = 6

// alive reports whether no customer a cached answer names was merged away
// by another process lately; the ones that were leave the cache. When the
// tombstones cannot be read, nothing cached is trusted.
func (r *Resolver) alive(ctx context.Context, cids []string) bool {
	if r.Tombstones == nil {
		return true
	}
	distinct := make([]string, 0, len(cids))
	seen := map[string]bool{}
	for _, c := range cids {
		if c != "" && !seen[c] {
			seen[c] = true
			distinct = append(distinct, c)
		}
	}
	gone, err := r.Tombstones.Gone(ctx, distinct)
	if err != nil {
		r.tombstoneErr(err)
		return false
	}
	for cid := range gone {
		r.roots.Remove(cid)
	}
	return len(gone) == 0
}

// tombstoneErr is told of a tombstone that could not be read or written.
func (r *Resolver) tombstoneErr(err error) {
	if r.OnError != nil {
		r.OnError(err)
	}
}

// cached answers the call from the caches when every request's identities
// are cached on one customer known unmerged.
func (r *Resolver) cached(reqs []Request) ([]string, bool) {
	out := make([]string, len(reqs))
	for i, req := range reqs {
		for _, id := range req.IDs {
			cid, ok := r.cache.Get(id.Key())
			if !ok || (out[i] != "" && out[i] != cid) {
				return nil, false
			}
			out[i] = cid
		}
		if out[i] != "" {
			if _, ok := r.roots.Get(out[i]); !ok {
				return nil, false
			}
		}
	}
	return out, true
}

// remember caches what a finished pass leaves: every key known, on its
// survivor, and the customers not merged away.
func (r *Resolver) remember(p plan, known map[string]string) {
	for cid, person := range p.People {
		if person.MergedInto != "" {
			r.roots.Remove(cid)
		}
	}
	for _, cid := range p.Customers {
		if cid != "" {
			r.roots.Add(cid, true)
		}
	}
	for k, cid := range known {
		if cid == "" {
			continue
		}
		if to, ok := p.Rewrites[k]; ok {
			cid = to
		}
		if _, ok := r.roots.Get(cid); ok {
			r.cache.Add(k, cid)
		}
	}
}

// Forget drops what the caches know of the customers: a split or merge
// made elsewhere (the API) changed them.
func (r *Resolver) Forget(cids ...string) {
	for _, cid := range cids {
		r.roots.Remove(cid)
	}
}

// fetch reads the customer ids of keys (realtime GET semantics) into known.
func (r *Resolver) fetch(ctx context.Context, keys []string, known map[string]string) error {
	if len(keys) == 0 {
		return nil
	}
	docs, err := r.st.Mget(ctx, r.ix.Identities, keys)
	if err != nil {
		return fmt.Errorf("identity: read: %w", err)
	}
	for _, d := range docs {
		var rec record
		if err := d.Decode(&rec); err != nil {
			return fmt.Errorf("identity: read: %w", err)
		}
		known[d.ID] = rec.CustomerID
	}
	return nil
}

// fetchPeople reads into people the persons of every customer known names
// that people lacks, and of the survivors they were merged into.
func (r *Resolver) fetchPeople(ctx context.Context, known map[string]string, people map[string]*Person) error {
	var want []string
	seen := map[string]bool{}
	add := func(cid string) {
		if cid != "" && people[cid] == nil && !seen[cid] {
			seen[cid] = true
			want = append(want, cid)
		}
	}
	for _, cid := range known {
		add(cid)
	}
	for _, p := range people {
		add(p.MergedInto)
	}
	for depth := 0; len(want) > 0 && depth < 64; depth++ {
		got, err := r.readPeople(ctx, want)
		if err != nil {
			return err
		}
		for _, p := range got {
			people[p.CustomerID] = p
		}
		want = want[:0]
		for _, p := range got {
			add(p.MergedInto)
		}
	}
	return nil
}

// readPeople reads persons by customer id (realtime), with where each
// stood.
func (r *Resolver) readPeople(ctx context.Context, cids []string) ([]*Person, error) {
	docs, err := r.st.Mget(ctx, r.ix.People, cids)
	if err != nil {
		return nil, fmt.Errorf("identity: read people: %w", err)
	}
	out := make([]*Person, 0, len(docs))
	for _, d := range docs {
		var p Person
		if err := d.Decode(&p); err != nil {
			return nil, fmt.Errorf("identity: read people: %w", err)
		}
		p.CustomerID = d.ID
		if d.SeqNo != nil && d.PrimaryTerm != nil {
			p.seqNo, p.primaryTerm, p.stored = *d.SeqNo, *d.PrimaryTerm, true
		}
		out = append(out, &p)
	}
	return out, nil
}

// People reads the persons of the customer ids (realtime); a customer id
// with no person is left out.
func (r *Resolver) People(ctx context.Context, cids ...string) (map[string]*Person, error) {
	got, err := r.readPeople(ctx, cids)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*Person, len(got))
	for _, p := range got {
		out[p.CustomerID] = p
	}
	return out, nil
}

// Root follows cid's merges to the profile that holds its identities now,
// and returns that profile's person (nil when cid has none).
func (r *Resolver) Root(ctx context.Context, cid string) (*Person, error) {
	for range 64 {
		got, err := r.People(ctx, cid)
		if err != nil {
			return nil, err
		}
		p := got[cid]
		if p == nil || p.MergedInto == "" {
			return p, nil
		}
		cid = p.MergedInto
	}
	return nil, fmt.Errorf("identity: %s: merges run deeper than 64", cid)
}

// Holders returns, of the identities, those somebody holds, by key.
func (r *Resolver) Holders(ctx context.Context, ids []Identity) (map[string]string, error) {
	known := map[string]string{}
	var keys []string
	for _, id := range ids {
		k := id.Key()
		if cid, ok := r.cache.Get(k); ok {
			known[k] = cid
		} else if _, asked := known[k]; !asked {
			known[k] = ""
			keys = append(keys, k)
		}
	}
	if err := r.fetch(ctx, keys, known); err != nil {
		return nil, err
	}
	return known, nil
}

// Holder returns the customer id holding an identity, "" when nobody does.
// It reads the index, not the cache: the API answers lookups with it, and
// another process's split may have moved the identity since.
func (r *Resolver) Holder(ctx context.Context, id Identity) (string, error) {
	known := map[string]string{}
	if err := r.fetch(ctx, []string{id.Key()}, known); err != nil {
		return "", err
	}
	return known[id.Key()], nil
}

// claim creates the identity records and returns the keys another writer
// holds already.
func (r *Resolver) claim(ctx context.Context, claims []claimOp) ([]string, error) {
	if len(claims) == 0 {
		return nil, nil
	}
	now := time.Now().UTC().Format(time.RFC3339Nano)
	creates := make([]store.Op, len(claims))
	for i, c := range claims {
		creates[i] = store.Op{Action: store.Create, Index: r.ix.Identities, ID: c.Identity.Key(),
			Body: record{Type: c.Identity.Type, Value: c.Identity.Value, CustomerID: c.CustomerID, CreatedAt: now}}
	}
	existing, err := r.st.CreateIfAbsent(ctx, creates)
	if err != nil {
		return nil, fmt.Errorf("identity: claim: %w", err)
	}
	lost := make([]string, len(existing))
	for j, i := range existing {
		lost[j] = creates[i].ID
	}
	return lost, nil
}

// writePeople writes the persons a pass changed, each only if nobody
// changed it since it was read, and returns those somebody did. The
// merged-away and new persons go first, the survivors and the rest after
// them and only if all of the first went through: a writer that loses
// halfway leaves merged-away persons naming a survivor that lacks their
// identities, which the next pass over them repairs (assign), never a
// survivor holding identities that another writer gave elsewhere.
func (r *Resolver) writePeople(ctx context.Context, people map[string]*Person) ([]string, error) {
	var first, then []string
	for cid, p := range people {
		if p.MergedInto != "" || !p.stored {
			first = append(first, cid)
		} else {
			then = append(then, cid)
		}
	}
	for _, group := range [][]string{first, then} {
		changed, err := r.writeGroup(ctx, people, group)
		if err != nil || len(changed) > 0 {
			return changed, err
		}
	}
	return nil, nil
}

// writeGroup writes some of the persons in one _bulk.
func (r *Resolver) writeGroup(ctx context.Context, people map[string]*Person, cids []string) ([]string, error) {
	if len(cids) == 0 {
		return nil, nil
	}
	sort.Strings(cids)
	now := time.Now().UTC().Format(time.RFC3339Nano)
	ops := make([]store.Op, len(cids))
	for i, cid := range cids {
		p := people[cid]
		p.UpdatedAt = now
		ops[i] = r.personOp(p)
	}
	verdicts, err := r.st.Bulk(ctx, ops)
	if err != nil {
		return nil, fmt.Errorf("identity: write people: %w", err)
	}
	var changed []string
	var errs []error
	for i, v := range verdicts {
		switch {
		case v.OK():
		case v.Conflict():
			changed = append(changed, cids[i])
		default:
			errs = append(errs, &store.ItemError{Op: ops[i], Verdict: v, Outcome: store.Judge(ops[i], v)})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("identity: write people: %w", err)
	}
	return changed, nil
}

// personOp writes p over the record it was read from, or creates it.
// Its identities are a set: one listed twice is written once.
func (r *Resolver) personOp(p *Person) store.Op {
	p.Identities = addOnce(nil, p.Identities...)
	op := store.Op{Action: store.Create, Index: r.ix.People, ID: p.CustomerID, Body: p}
	if p.stored {
		op.Action = store.Index
		op.IfMatch = &store.SeqTerm{SeqNo: p.seqNo, PrimaryTerm: p.primaryTerm}
	}
	return op
}

// finish writes the history of a pass whose persons and claims are
// written. The identity records of merged-away profiles keep naming them
// until the indexer has moved what they own (Repoint): a message replayed
// meanwhile still goes through the merged-away person, so the move is
// asked for again, whatever crashed before it was.
func (r *Resolver) finish(ctx context.Context, p plan) error {
	now := time.Now().UTC()
	var ops []store.Op
	for _, m := range p.Merges {
		e := Entry{At: now, Action: ActionMerge, CustomerIDs: append([]string{m.Survivor}, m.Losers...), Identities: keyIdentities(m.Identities), Source: m.Source}
		ops = append(ops, r.entryOp(e))
	}
	for _, c := range p.Conflicts {
		e := Entry{At: now, Action: ActionConflict, Reason: c.Reason, CustomerIDs: c.CustomerIDs, Identities: keyIdentities(c.Identities), Source: c.Source}
		ops = append(ops, r.entryOp(e))
	}
	if len(ops) == 0 {
		return nil
	}
	verdicts, err := r.st.Bulk(ctx, ops)
	if err != nil {
		return fmt.Errorf("identity: history: %w", err)
	}
	var errs []error
	for i, v := range verdicts {
		if o := store.Judge(ops[i], v); o != store.Applied && o != store.Unchanged {
			errs = append(errs, &store.ItemError{Op: ops[i], Verdict: v, Outcome: o})
		}
	}
	if n := r.Observe; n != nil {
		n(len(p.Merges), len(p.Conflicts))
	}
	return errors.Join(errs...)
}

// entryOp creates a history entry under an id made of what it says, so a
// replayed message does not list its merge twice.
func (r *Resolver) entryOp(e Entry) store.Op {
	h := sha256.New()
	fmt.Fprintf(h, "%s|%s|%v|%v|", e.Action, e.Reason, e.CustomerIDs, e.Identities)
	b, _ := e.Source.MarshalJSON()
	h.Write(b)
	return store.Op{Action: store.Create, Index: r.ix.History, ID: hex.EncodeToString(h.Sum(nil)[:16]), Body: e}
}

// dropUnclaimed deletes the persons a pass minted whose every identity
// another writer won: nothing names them.
func (r *Resolver) dropUnclaimed(ctx context.Context, p plan, lost []string) error {
	won := map[string]bool{}
	for _, c := range p.Claims {
		if !slices.Contains(lost, c.Identity.Key()) {
			won[c.CustomerID] = true
		}
	}
	var ops []store.Op
	for cid, person := range p.People {
		if !person.stored && person.MergedInto == "" && !won[cid] {
			ops = append(ops, store.Op{Action: store.Delete, Index: r.ix.People, ID: cid})
		}
	}
	if len(ops) == 0 {
		return nil
	}
	if _, err := r.st.Bulk(ctx, ops); err != nil {
		return fmt.Errorf("identity: drop unclaimed: %w", err)
	}
	return nil
}

// fetchOrphans reads the records of the identities merged-away persons
// name that their survivors lack (a writer lost its race halfway, see
// writePeople), so that the pass can repair them, and the persons those
// records name.
func (r *Resolver) fetchOrphans(ctx context.Context, known map[string]string, people map[string]*Person) error {
	root := func(cid string) string {
		for range 64 {
			p := people[cid]
			if p == nil || p.MergedInto == "" {
				return cid
			}
			cid = p.MergedInto
		}
		return cid
	}
	var keys []string
	for cid, p := range people {
		if p.MergedInto == "" {
			continue
		}
		rp := people[root(cid)]
		for _, k := range p.Identities {
			if _, ok := known[k]; !ok && (rp == nil || !rp.holds(k)) {
				known[k] = "" // asked once; fetch fills in what the index holds
				keys = append(keys, k)
			}
		}
	}
	if len(keys) == 0 {
		return nil
	}
	if err := r.fetch(ctx, keys, known); err != nil {
		return err
	}
	return r.fetchPeople(ctx, known, people)
}

// MergedInto returns the customer ids whose persons were merged into one
// of cids, as the people index stood at its last refresh: the caller
// refreshes it after the merges it must see were written.
func (r *Resolver) MergedInto(ctx context.Context, cids []string) ([]string, error) {
	var out []string
	for start := 0; start < len(cids); start += 5000 {
		chunk := cids[start:min(start+5000, len(cids))]
		scan := store.Scan{PageSize: 5000, Body: map[string]any{
			"_source": false,
			"sort":    []any{map[string]any{"customer_id": "asc"}},
			"query":   map[string]any{"terms": map[string]any{"merged_into": chunk}},
		}}
		for h, err := range r.st.Hits(ctx, r.ix.People, scan) {
			if err != nil {
				return nil, fmt.Errorf("identity: merged into: %w", err)
			}
			out = append(out, h.ID)
		}
	}
	return out, nil
}

// Repoint makes the identity records that still name a merged-away
// customer name its survivor, once what it owned has moved. A record a
// split has given to another profile since is left alone.
func (r *Resolver) Repoint(ctx context.Context, from *Person, to string) error {
	known := map[string]string{}
	if err := r.fetch(ctx, from.Identities, known); err != nil {
		return err
	}
	now := time.Now().UTC().Format(time.RFC3339Nano)
	var ops []store.Op
	for _, k := range from.Identities {
		if known[k] != from.CustomerID {
			continue
		}
		id, _ := ParseKey(k)
		ops = append(ops, store.Op{Action: store.Index, Index: r.ix.Identities, ID: k,
			Body: record{Type: id.Type, Value: id.Value, CustomerID: to, CreatedAt: now}})
	}
	if len(ops) == 0 {
		return nil
	}
	verdicts, err := r.st.Bulk(ctx, ops)
	if err != nil {
		return fmt.Errorf("identity: repoint: %w", err)
	}
	var errs []error
	for i, v := range verdicts {
		if o := store.Judge(ops[i], v); o != store.Applied {
			errs = append(errs, &store.ItemError{Op: ops[i], Verdict: v, Outcome: o})
		}
	}
	return errors.Join(errs...)
}
