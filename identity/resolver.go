package identity

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"cdp/store"
)

// Resolver maps identities to customer ids. The mapping lives in an
// OpenSearch index whose document id is the identity's key; an identity is
// claimed with a create that fails when the key exists, so two writers
// (lanes or indexer processes) never give one identity two customers: the
// loser of the race reads the winner's customer id. The messages of one
// batch are resolved in order, as if they had come one at a time (see
// Resolve). Known mappings are cached, since they do not change (merges
// and splits, when they come, go through here too).
type Resolver struct {
	st    *store.Client
	index string
	cache *lru.Cache[string, string]
	// NewID mints customer ids; tests may replace it.
	NewID func() string
	// Rules order a request's identities and tell which ones link nobody;
	// nil is the defaults.
	Rules *Rules
}

// NewResolver returns a resolver over the identity index (an alias).
func NewResolver(st *store.Client, index string, cacheSize int) *Resolver {
	c, err := lru.New[string, string](cacheSize)
	if err != nil {
		panic(err) // only for a non-positive size, a programming error
	}
	return &Resolver{st: st, index: index, cache: c, NewID: NewCustomerID}
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

// Resolve returns the customer id of each request, a request being the
// identities one message carries, in the order the messages came. Each
// request is first put as Rules.Linking has it (normalized, in priority
// order, without blocked values, which are never claimed). The requests
// are then resolved in order, as if they had come one at a time: a
// request sees every identity the requests before it claimed or linked
// (see assign), so the customers that come out do not depend on how the
// messages were batched. A request with no identities left gets "".
//
// One read of the identities not cached and one create-if-absent bulk
// suffice when nobody else writes them meanwhile. When another writer
// (lane or process) created a key this call wanted, its record is read
// and the in-order pass is redone over what the index now holds: the
// requests that counted on the key adopt the winner's customer, and what
// this call did claim stays claimed (first applied wins), but for the
// identities it linked to a customer it minted in vain (another writer won
// the identity it was minted for): those are linked again, over their
// records, to whom their requests now resolve to. Each round
// settles every key it lost that the index holds, so it ends after a
// second round unless records vanish; after maxRounds it gives up with
// an error, which the caller retries.
//
// TODO(merge): a lost race can still leave one person on two customers:
// this call's customer keeps the identities it won, while a key it lost
// points at the winner's (say this call won crm_id:1001 → c1 and lost
// anonymous_id:dev-1 to another lane's c2, or another writer read a record
// of a customer this call then gave up before it was written over). The
// redone pass keeps both, as the index has them; joining them is the merge
// of CONTRACT §6.
func (r *Resolver) Resolve(ctx context.Context, reqs [][]Identity) ([]string, error) {
	reqs = linking(r.Rules, reqs)
	known := map[string]string{}
	var missing []string
	for _, req := range reqs {
		for _, id := range req {
			k := id.Key()
			if _, seen := known[k]; seen {
				continue
			}
			if cid, ok := r.cache.Get(k); ok {
				known[k] = cid
				continue
			}
			known[k] = ""
			missing = append(missing, k)
		}
	}
	if err := r.fetch(ctx, missing, known); err != nil {
		return nil, err
	}
	// Keys this call created for a customer it then gave up: the next
	// round writes them over.
	rewrite := map[string]bool{}
	for round := 1; ; round++ {
		p := assign(r.Rules, reqs, known, r.NewID)
		claims := slices.Concat(p.Claims, p.Links)
		lost, err := r.claim(ctx, claims, rewrite)
		if err != nil {
			return nil, err
		}
		lostSet := make(map[string]bool, len(lost))
		for _, k := range lost {
			lostSet[k] = true
		}
		for _, c := range claims {
			if k := c.Identity.Key(); !lostSet[k] {
				known[k] = c.CustomerID
				delete(rewrite, k)
			}
		}
		if len(lost) == 0 {
			r.remember(known)
			return p.Customers, nil
		}
		if round == maxRounds {
			return nil, fmt.Errorf("identity: other writers claimed %d identities this batch wanted, %d rounds running", len(lost), round)
		}
		// The winners' records decide those keys now.
		if err := r.fetch(ctx, lost, known); err != nil {
			return nil, err
		}
		// A customer minted this round whose own identity another writer
		// won is given up: nothing is written under it yet but the
		// records this bulk created (a writer that read one meanwhile is
		// the TODO above), so the identities this call linked to it are
		// free again, and the redone pass links them to whom their
		// requests now resolve to, the winner included, writing over the
		// records.
		dead := map[string]bool{}
		for _, c := range p.Claims {
			if lostSet[c.Identity.Key()] {
				dead[c.CustomerID] = true
			}
		}
		for _, c := range claims {
			if k := c.Identity.Key(); !lostSet[k] && dead[c.CustomerID] {
				delete(known, k)
				rewrite[k] = true
			}
		}
	}
}

// maxRounds bounds the claim rounds of one Resolve call.
const maxRounds = 4

// remember caches the known mappings.
func (r *Resolver) remember(known map[string]string) {
	for k, cid := range known {
		if cid != "" {
			r.cache.Add(k, cid)
		}
	}
}

// linking puts every request as rules.Linking has it.
func linking(rules *Rules, reqs [][]Identity) [][]Identity {
	out := make([][]Identity, len(reqs))
	for i, req := range reqs {
		out[i] = rules.Linking(req)
	}
	return out
}

// claimOp is one identity record to create: the identity and its
// customer.
type claimOp struct {
	Identity   Identity
	CustomerID string
}

// plan is what the in-order pass decides for the requests of one call.
type plan struct {
	// Customers holds each request's customer, "" for one with no
	// identities.
	Customers []string
	// Claims are the first identities of the customers the pass mints,
	// one each, in request order.
	Claims []claimOp
	// Links are the free identities the pass gives to a request's
	// customer (known or minted), in request order.
	Links []claimOp
}

// assign is the in-order pass: it resolves the requests (as Linking puts
// them) one after the other against known, what the index holds (key →
// customer id, "" or absent for a free key), as if each request had come
// alone after the ones before it. A request's customer is decided by
// decide over known and what the requests before it claimed or linked;
// when it decides nobody, newID mints a customer, claimed by the
// request's first identity. The request's free identities are then
// linked to its customer, so that the requests after it find them. known
// is only read.
func assign(rules *Rules, reqs [][]Identity, known map[string]string, newID func() string) plan {
	p := plan{Customers: make([]string, len(reqs))}
	taken := map[string]string{} // keys this pass gives away
	owner := func(k string) string {
		if cid := known[k]; cid != "" {
			return cid
		}
		return taken[k]
	}
	for i, req := range reqs {
		if len(req) == 0 {
			continue
		}
		cid := decide(rules, req, owner)
		if cid == "" {
			cid = newID()
			k := req[0].Key()
			taken[k] = cid
			p.Claims = append(p.Claims, claimOp{Identity: req[0], CustomerID: cid})
		}
		p.Customers[i] = cid
		for _, id := range req {
			if k := id.Key(); owner(k) == "" {
				taken[k] = cid
				p.Links = append(p.Links, claimOp{Identity: id, CustomerID: cid})
			}
		}
	}
	return p
}

// decide returns the customer of a request: that of its first known
// identity (owner gives the customer of a key, "" for a free one).
//
// One exception keeps two people apart until profiles know what they
// hold (merges come later): an identity of a single-valued type (most
// one per profile: crm_id) that nobody holds yet is not brought, through
// a phone, an email or a declared type, to a profile that may already
// hold another one. Such a request is decided only by an anonymous id,
// as before phones and emails linked; else it gets a customer of its
// own, and the known phone stays where it is.
//
// TODO(merge): when a request's identities belong to two or more
// customers, the first known in priority order decides and the others
// stay apart. CONTRACT §6 wants them merged into one ("When one
// message's identities resolve to two or more profiles, they merge into
// one, unless that would give one profile two values of a type whose
// most-per-profile is 1 ... then nothing merges, the message attaches to
// the profile of its highest-priority identity, and a conflict is
// recorded"), the survivor being the profile holding a crm_id, else the
// one seen first. That is the merge slice's to do, here.
func decide(rules *Rules, req []Identity, owner func(string) string) string {
	newSingle := false
	for _, id := range req {
		cid := owner(id.Key())
		switch {
		case cid != "" && (!newSingle || id.Type == AnonymousID):
			return cid
		case cid == "" && rules.MaxPerProfile(id.Type) == 1:
			newSingle = true
		}
	}
	return ""
}

// fetch reads the customer ids of keys (realtime GET semantics) into known.
func (r *Resolver) fetch(ctx context.Context, keys []string, known map[string]string) error {
	if len(keys) == 0 {
		return nil
	}
	docs, err := r.st.Mget(ctx, r.index, keys)
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

// claim creates the identity records, or writes over those of rewrite;
// it returns the keys another writer holds already.
func (r *Resolver) claim(ctx context.Context, claims []claimOp, rewrite map[string]bool) ([]string, error) {
	if len(claims) == 0 {
		return nil, nil
	}
	now := time.Now().UTC().Format(time.RFC3339Nano)
	var creates, overwrites []store.Op
	for _, c := range claims {
		k := c.Identity.Key()
		op := store.Op{Action: store.Create, Index: r.index, ID: k,
			Body: record{Type: c.Identity.Type, Value: c.Identity.Value, CustomerID: c.CustomerID, CreatedAt: now}}
		if rewrite[k] {
			op.Action = store.Index
			overwrites = append(overwrites, op)
			continue
		}
		creates = append(creates, op)
	}
	if len(overwrites) > 0 {
		verdicts, err := r.st.Bulk(ctx, overwrites)
		if err != nil {
			return nil, fmt.Errorf("identity: relink: %w", err)
		}
		var errs []error
		for i, v := range verdicts {
			if o := store.Judge(overwrites[i], v); o != store.Applied {
				errs = append(errs, &store.ItemError{Op: overwrites[i], Verdict: v, Outcome: o})
			}
		}
		if err := errors.Join(errs...); err != nil {
			return nil, fmt.Errorf("identity: relink: %w", err)
		}
	}
	if len(creates) == 0 {
		return nil, nil
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
