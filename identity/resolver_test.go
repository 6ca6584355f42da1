package identity

import (
	"fmt"
	"maps"
	"reflect"
	"testing"
)

// minter returns a newID that mints m1, m2, … in turn.
func minter() func() string {
	n := 0
	return func() string {
		n++
		return fmt.Sprintf("m%d", n)
	}
}

// claimed lists claims as "type:value→customer".
func claimed(cs []claimOp) []string {
	out := []string{}
	for _, c := range cs {
		out = append(out, c.Identity.Key()+"→"+c.CustomerID)
	}
	return out
}

func crm(v string) Identity   { return Identity{CRMID, v} }
func anon(v string) Identity  { return Identity{AnonymousID, v} }
func phone(v string) Identity { return Identity{Phone, v} }

// The in-order pass (CONTRACT §6: the profiles depend only on the
// messages, not on how they were batched): each request sees what the
// requests before it in the same call claimed and linked. Every case is
// also run one request at a time, each alone against what the ones before
// it wrote, and must come out the same.
func TestTheRequestsOfOneCallAreResolvedInOrder(t *testing.T) {
	tests := []struct {
		name         string
		known        map[string]string
		reqs         [][]Identity
		customers    []string
		claims       []string
		links        []string
		unchangedFor string // a known key the pass must not give away
	}{
		{
			name:      "a login then a track of its device in one call are one customer",
			reqs:      [][]Identity{{crm("1001"), anon("dev-1")}, {anon("dev-1")}},
			customers: []string{"m1", "m1"},
			claims:    []string{"crm_id:1001→m1"},
			links:     []string{"anonymous_id:dev-1→m1"},
		},
		{
			name:      "a track then the login of its device are still one customer",
			reqs:      [][]Identity{{anon("dev-1")}, {crm("1001"), anon("dev-1")}},
			customers: []string{"m1", "m1"},
			claims:    []string{"anonymous_id:dev-1→m1"},
			links:     []string{"crm_id:1001→m1"},
		},
		{
			name: "two devices, then an identify that links one of them",
			reqs: [][]Identity{
				{anon("d-1")}, {anon("d-2")}, {crm("7"), anon("d-2")}, {anon("d-2")}, {anon("d-1")},
			},
			customers: []string{"m1", "m2", "m2", "m2", "m1"},
			claims:    []string{"anonymous_id:d-1→m1", "anonymous_id:d-2→m2"},
			links:     []string{"crm_id:7→m2"},
		},
		{
			name: "a blocked id links nobody, within a request or as one in the middle",
			reqs: [][]Identity{
				{crm("8101"), anon("anonymous"), phone("00000000000"), anon("dev-1")},
				{anon("null")},
				{crm("8102"), anon("anonymous")},
				{anon("dev-1"), phone("00000000000")},
			},
			customers: []string{"m1", "", "m2", "m1"},
			claims:    []string{"crm_id:8101→m1", "crm_id:8102→m2"},
			links:     []string{"anonymous_id:dev-1→m1"},
		},
		{
			name:         "a new crm_id does not join a known phone's customer, it gets its own",
			known:        map[string]string{"phone:+8613900139000": "c-8201"},
			reqs:         [][]Identity{{crm("8203"), phone("13900139000")}},
			customers:    []string{"m1"},
			claims:       []string{"crm_id:8203→m1"},
			links:        []string{},
			unchangedFor: "phone:+8613900139000",
		},
		{
			name: "nor the phone an earlier request of the call linked",
			reqs: [][]Identity{
				{crm("8201"), phone("13900139000")},
				{crm("8202"), phone("139 0013 9000")},
				{phone("+86 139 0013 9000")},
			},
			customers: []string{"m1", "m2", "m1"},
			claims:    []string{"crm_id:8201→m1", "crm_id:8202→m2"},
			links:     []string{"phone:+8613900139000→m1"},
		},
		{
			name:      "a new crm_id joins through a known anonymous id",
			known:     map[string]string{"anonymous_id:dev-1": "c-old", "phone:+8613900139000": "c-other"},
			reqs:      [][]Identity{{crm("9"), phone("13900139000"), anon("dev-1")}},
			customers: []string{"c-old"},
			claims:    []string{},
			links:     []string{"crm_id:9→c-old"},
		},
		{
			name:      "a request with no identities gets none and claims nothing",
			reqs:      [][]Identity{nil, {}, {anon("dev-1")}, {anon("")}},
			customers: []string{"", "", "m1", ""},
			claims:    []string{"anonymous_id:dev-1→m1"},
			links:     []string{},
		},
		{
			name:      "a known identity decides, free ones are linked, and an empty known value is free",
			known:     map[string]string{"crm_id:1001": "c-a", "anonymous_id:dev-1": ""},
			reqs:      [][]Identity{{anon("dev-1"), crm("1001")}, {anon("dev-1")}},
			customers: []string{"c-a", "c-a"},
			claims:    []string{},
			links:     []string{"anonymous_id:dev-1→c-a"},
		},
		{
			// Until merges: CONTRACT §6 would merge c-a and c-b.
			name:         "identities of two customers: the first known in priority order decides",
			known:        map[string]string{"crm_id:1001": "c-a", "anonymous_id:dev-1": "c-b"},
			reqs:         [][]Identity{{anon("dev-1"), crm("1001")}, {anon("dev-1")}},
			customers:    []string{"c-a", "c-b"},
			claims:       []string{},
			links:        []string{},
			unchangedFor: "anonymous_id:dev-1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rules := DefaultRules()
			reqs := linking(rules, tt.reqs)
			known := maps.Clone(tt.known)
			if known == nil {
				known = map[string]string{}
			}
			p := assign(rules, reqs, known, minter())
			if !reflect.DeepEqual(p.Customers, tt.customers) {
				t.Errorf("customers %q, want %q", p.Customers, tt.customers)
			}
			if got := claimed(p.Claims); !reflect.DeepEqual(got, tt.claims) {
				t.Errorf("claims %q, want %q", got, tt.claims)
			}
			if got := claimed(p.Links); !reflect.DeepEqual(got, tt.links) {
				t.Errorf("links %q, want %q", got, tt.links)
			}
			if !maps.Equal(known, tt.known) {
				t.Errorf("assign changed known: %v, was %v", known, tt.known)
			}
			for _, c := range append(p.Claims, p.Links...) {
				if k := c.Identity.Key(); k == tt.unchangedFor {
					t.Errorf("%s given to %s, want it left with %s", k, c.CustomerID, tt.known[k])
				}
				if rules.Blocked(c.Identity) {
					t.Errorf("blocked %s claimed", c.Identity.Key())
				}
			}

			// One request at a time, each against what the ones before
			// it claimed and linked.
			alone := plan{Customers: []string{}, Claims: []claimOp{}, Links: []claimOp{}}
			newID := minter()
			for _, req := range reqs {
				q := assign(rules, [][]Identity{req}, known, newID)
				alone.Customers = append(alone.Customers, q.Customers...)
				alone.Claims = append(alone.Claims, q.Claims...)
				alone.Links = append(alone.Links, q.Links...)
				for _, c := range append(q.Claims, q.Links...) {
					known[c.Identity.Key()] = c.CustomerID
				}
			}
			if !reflect.DeepEqual(alone.Customers, p.Customers) ||
				!reflect.DeepEqual(claimed(alone.Claims), claimed(p.Claims)) ||
				!reflect.DeepEqual(claimed(alone.Links), claimed(p.Links)) {
				t.Errorf("one at a time: customers %q claims %q links %q; in one call: %q %q %q",
					alone.Customers, claimed(alone.Claims), claimed(alone.Links),
					p.Customers, claimed(p.Claims), claimed(p.Links))
			}
		})
	}
}

// After a lost race the pass is redone over what the index holds: the
// requests that counted on the lost key adopt the winner's customer, and
// nothing already settled is claimed again.
func TestARedonePassAdoptsTheWinnersCustomerAndClaimsNothingSettled(t *testing.T) {
	rules := DefaultRules()
	reqs := linking(rules, [][]Identity{{crm("1001"), anon("dev-1")}, {anon("dev-1")}, {anon("dev-2")}})
	known := map[string]string{}
	first := assign(rules, reqs, known, minter())
	if want := []string{"m1", "m1", "m2"}; !reflect.DeepEqual(first.Customers, want) {
		t.Fatalf("first pass: customers %q, want %q", first.Customers, want)
	}
	// Another lane created anonymous_id:dev-1 for c-w first; the rest won.
	for _, c := range append(first.Claims, first.Links...) {
		known[c.Identity.Key()] = c.CustomerID
	}
	known["anonymous_id:dev-1"] = "c-w"
	again := assign(rules, reqs, known, minter())
	if want := []string{"m1", "c-w", "m2"}; !reflect.DeepEqual(again.Customers, want) {
		t.Errorf("redone pass: customers %q, want %q", again.Customers, want)
	}
	if len(again.Claims)+len(again.Links) != 0 {
		t.Errorf("redone pass claims %q and links %q, want nothing: every key is settled", claimed(again.Claims), claimed(again.Links))
	}
}
