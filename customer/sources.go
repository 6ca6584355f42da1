// Package customer defines the customer document (CONTRACT §2) and builds
// it from the source rows it is made of.
//
// The indexer keeps every source row it has seen (a CRM customer row, an
// order, an order item, the profile an SDK built up) in a row store, each
// with the source position it came from. A customer document is never
// patched in place: it is rebuilt by Build from all of its rows whenever one
// of them changes. That makes the document a pure function of its rows, so
// duplicates, reordering, replays and crashes cannot leave it in a state
// that a clean replay would not produce.
package customer

import "cdp/identity"

// Row kinds in the row store.
const (
	KindCustomer = "customer"
	KindOrder    = "order"
	KindItem     = "item"
	KindProfile  = "profile"
)

// Row is one source row as the row store keeps it.
type Row struct {
	// RID is the row's id in the row store: "<kind>:<key>".
	RID  string `json:"rid"`
	Kind string `json:"kind"`
	// Key is the row's primary key in its source table.
	Key string `json:"key"`
	// CustomerID is the OneID customer the row belongs to (customers and
	// orders); OrderID the order an item belongs to.
	CustomerID string `json:"customer_id,omitempty"`
	OrderID    string `json:"order_id,omitempty"`
	// Pos is the source position (source.lsn, else source.ts_ms) of the
	// change that wrote the row: an older change never replaces it.
	Pos int64 `json:"pos"`
	// TS is the source commit time (source.ts_ms), used where CDC and an
	// SDK identify disagree: the later wins.
	TS      int64 `json:"ts"`
	Deleted bool  `json:"deleted"`
	// MovedFrom names the owner (customer or order) the row had before its
	// last change, so that a replay after a crash still rebuilds it.
	MovedFrom string         `json:"moved_from,omitempty"`
	Data      map[string]any `json:"data,omitempty"`
}

// Trait is one profile value an SDK identify set, with the event time that
// set it. MID (the message id) breaks ties so that the outcome does not
// depend on arrival order.
type Trait struct {
	V   any    `json:"v"`
	TS  int64  `json:"ts"`
	MID string `json:"mid"`
}

// Profile is what SDK events have said about a customer.
type Profile struct {
	CustomerID   string           `json:"customer_id"`
	Traits       map[string]Trait `json:"traits,omitempty"`
	FirstSeen    int64            `json:"first_seen,omitempty"`
	LastSeen     int64            `json:"last_seen,omitempty"`
	CRMIDs       []string         `json:"crm_ids,omitempty"`
	AnonymousIDs []string         `json:"anonymous_ids,omitempty"`
}

// Sources are all the rows one customer document is built from.
type Sources struct {
	// Rules tell which identities the document lists: the ones that link
	// (identity.Rules.Linking); nil is the defaults.
	Rules *identity.Rules
	// Identities, when OneID keeps a person for the customer, are the
	// identities it holds: the document lists those, not what its rows
	// say (a row may name an identity a conflict kept elsewhere).
	Identities []identity.Identity

	Customer *Row
	Profile  *Profile
	Orders   []Row
	// Items are keyed by order id.
	Items map[string][]Row
}
