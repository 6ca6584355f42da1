package identity

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"cdp/store"
)

// Resolver maps identities to customer ids. The mapping lives in an
// OpenSearch index whose document id is the identity's key; an identity is
// claimed with a create that fails when the key exists, so two indexer
// processes never mint two customers for one person: the loser of the race
// reads the winner's customer id. Known mappings are cached, since they do
// not change (merges and splits, when they come, go through here too).
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
// identities one message carries. Each request is first put as
// Rules.Linking has it (normalized, in priority order, without blocked
// values, which are never claimed). The first identity of a request that
// is already known decides its customer; when none is, a customer is
// minted for the first one. The request's other identities that are
// still free are then linked to that customer. A request with no
// identities left gets "".
//
// One exception keeps two people apart until profiles know what they hold
// (merges come later): an identity of a single-valued type (most one per
// profile: crm_id) that nobody holds yet is not brought, through a phone,
// an email or a declared type, to a profile that may already hold another
// one. Such a request is decided only by an anonymous id, as before
// phones and emails linked; else it gets a customer of its own, and the
// known phone stays where it is.
func (r *Resolver) Resolve(ctx context.Context, reqs [][]Identity) ([]string, error) {
	linking := make([][]Identity, len(reqs))
	for i, req := range reqs {
		linking[i] = r.Rules.Linking(req)
	}
	reqs = linking
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

	// Claim the first identity of every request that knows nobody yet.
	claims := map[string]Identity{}
	minted := map[string]string{}
	for _, req := range reqs {
		if len(req) == 0 || r.decide(req, known) != "" {
			continue
		}
		k := req[0].Key()
		if _, ok := minted[k]; !ok {
			minted[k] = r.NewID()
			claims[k] = req[0]
		}
	}
	lost, err := r.claim(ctx, claims, minted)
	if err != nil {
		return nil, err
	}
	for k, cid := range minted {
		known[k] = cid
	}
	if err := r.fetch(ctx, lost, known); err != nil {
		return nil, err
	}

	// Every request now has a known identity; link its free ones.
	out := make([]string, len(reqs))
	links := map[string]Identity{}
	linkTo := map[string]string{}
	for i, req := range reqs {
		out[i] = r.decide(req, known)
		for _, id := range req {
			k := id.Key()
			if known[k] == "" && linkTo[k] == "" {
				links[k], linkTo[k] = id, out[i]
			}
		}
	}
	lostLinks, err := r.claim(ctx, links, linkTo)
	if err != nil {
		return nil, err
	}
	for k, cid := range linkTo {
		known[k] = cid
	}
	for _, k := range lostLinks {
		delete(known, k) // someone else's now; read it when next needed
	}
	for k, cid := range known {
		if cid != "" {
			r.cache.Add(k, cid)
		}
	}
	return out, nil
}

// decide returns the customer of a request: that of its first known
// identity, but see Resolve for a single-valued identity nobody holds.
func (r *Resolver) decide(req []Identity, known map[string]string) string {
	newSingle := false
	for _, id := range req {
		cid := known[id.Key()]
		switch {
		case cid != "" && (!newSingle || id.Type == AnonymousID):
			return cid
		case cid == "" && r.Rules.MaxPerProfile(id.Type) == 1:
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

// claim creates the identity records; it returns the keys another writer
// holds already.
func (r *Resolver) claim(ctx context.Context, ids map[string]Identity, cids map[string]string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	now := time.Now().UTC().Format(time.RFC3339Nano)
	ops := make([]store.Op, 0, len(ids))
	for k, id := range ids {
		ops = append(ops, store.Op{Action: store.Create, Index: r.index, ID: k,
			Body: record{Type: id.Type, Value: id.Value, CustomerID: cids[k], CreatedAt: now}})
	}
	existing, err := r.st.CreateIfAbsent(ctx, ops)
	if err != nil {
		return nil, fmt.Errorf("identity: claim: %w", err)
	}
	lost := make([]string, len(existing))
	for j, i := range existing {
		lost[j] = ops[i].ID
		delete(cids, ops[i].ID)
	}
	return lost, nil
}
