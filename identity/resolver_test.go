package identity

import (
	"fmt"
	"maps"
	"reflect"
	"sort"
	"strings"
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

func crm(v string) Identity   { return Identity{CRMID, v} }
func anon(v string) Identity  { return Identity{AnonymousID, v} }
func phone(v string) Identity { return Identity{Phone, v} }
func email(v string) Identity { return Identity{Email, v} }

// state is a OneID state for a test: persons by customer id, each with
// its identity keys; the identity index is derived from them.
type state map[string]*Person

func (s state) known() map[string]string {
	out := map[string]string{}
	for cid, p := range s {
		for _, k := range p.Identities {
			out[k] = cid
		}
	}
	return out
}

func person(first int64, keys ...string) *Person {
	return &Person{FirstSeen: first, Identities: keys, stored: true}
}

func req(at int64, ids ...Identity) Request { return Request{IDs: ids, At: at} }

// msgReq is a request of the named message.
func msgReq(msg string, at int64, ids ...Identity) Request {
	return Request{IDs: ids, At: at, Message: msg}
}

// outcome is what a test compares: customers, merges as "loser→survivor",
// conflicts as "reason on a,b" and the identities each live profile holds.
type outcome struct {
	customers []string
	merges    []string
	conflicts []string
	holds     map[string]string
}

// apply runs the pass and folds what it decided into s (as the writes
// would), returning what it decided.
func apply(t *testing.T, rules *Rules, s state, reqs []Request, newID func() string, unclaimed ...string) outcome {
	t.Helper()
	for i := range reqs {
		reqs[i].IDs = rules.Linking(reqs[i].IDs)
	}
	known := s.known()
	for _, k := range unclaimed {
		delete(known, k) // listed by a person, but no record names it
	}
	before := maps.Clone(known)
	p := assign(rules, reqs, known, s, newID)
	if !maps.Equal(known, before) {
		t.Fatalf("assign changed known")
	}
	o := outcome{customers: p.Customers}
	for _, m := range p.Merges {
		for _, l := range m.Losers {
			o.merges = append(o.merges, l+"→"+m.Survivor)
		}
	}
	for _, c := range p.Conflicts {
		o.conflicts = append(o.conflicts, c.Reason+" on "+strings.Join(c.CustomerIDs, ","))
	}
	for cid, per := range p.People {
		per.CustomerID = cid
		s[cid] = per
	}
	return o
}

func holds(s state) map[string]string {
	out := map[string]string{}
	for cid, p := range s {
		if p.MergedInto == "" && len(p.Identities) > 0 {
			keys := append([]string(nil), p.Identities...)
			sort.Strings(keys)
			out[cid] = strings.Join(keys, " ")
		}
	}
	return out
}

// The in-order pass (CONTRACT §6). Every case is also run one request at
// a time, each against what the ones before it wrote, and must come out
// the same: the profiles do not depend on how messages were batched.
func TestTheRequestsOfOneCallAreResolvedInOrderWithMergesAndConflicts(t *testing.T) {
	tests := []struct {
		name  string
		given state
		// unclaimed are keys a given person lists whose identity record
		// was never written (its writer was killed in between).
		unclaimed []string
		reqs      []Request
		want      outcome
	}{
		{
			name: "a login then a track of its device in one call are one customer",
			reqs: []Request{req(1, crm("1001"), anon("dev-1")), req(2, anon("dev-1"))},
			want: outcome{customers: []string{"m1", "m1"}, holds: map[string]string{"m1": "anonymous_id:dev-1 crm_id:1001"}},
		},
		{
			name: "anonymous browsing then login merges into the profile already holding the device",
			reqs: []Request{req(1, anon("dev-1")), req(2, crm("1001"), anon("dev-1")), req(3, anon("dev-1"))},
			want: outcome{customers: []string{"m1", "m1", "m1"}, holds: map[string]string{"m1": "anonymous_id:dev-1 crm_id:1001"}},
		},
		{
			name:  "a login linking a known crm profile and a known device merges them into the crm holder",
			given: state{"c-dev": person(5, "anonymous_id:dev-1"), "c-crm": person(9, "crm_id:1001")},
			reqs:  []Request{req(10, crm("1001"), anon("dev-1"))},
			want: outcome{customers: []string{"c-crm"}, merges: []string{"c-dev→c-crm"},
				holds: map[string]string{"c-crm": "anonymous_id:dev-1 crm_id:1001"}},
		},
		{
			name:  "without a crm id the first seen survives",
			given: state{"c-b": person(7, "anonymous_id:d-b"), "c-a": person(3, "anonymous_id:d-a")},
			reqs:  []Request{req(10, phone("13800138000"), anon("d-b"), anon("d-a"))},
			want: outcome{customers: []string{"c-a"}, merges: []string{"c-b→c-a"},
				holds: map[string]string{"c-a": "anonymous_id:d-a anonymous_id:d-b phone:+8613800138000"}},
		},
		{
			name:  "a phone trait from a new device joins the crm customer holding that phone",
			given: state{"c-crm": person(1, "crm_id:42", "phone:+8613800138000")},
			reqs:  []Request{req(5, phone("13800138000"), anon("dev-new")), req(6, anon("dev-new"))},
			want: outcome{customers: []string{"c-crm", "c-crm"},
				holds: map[string]string{"c-crm": "anonymous_id:dev-new crm_id:42 phone:+8613800138000"}},
		},
		{
			name:  "two crm ids claiming one device: no merge, the message goes to its crm id and a conflict is on both",
			given: state{"c-a": person(1, "crm_id:A", "anonymous_id:dev-1")},
			reqs:  []Request{req(5, crm("B"), anon("dev-1"))},
			want: outcome{customers: []string{"m1"}, conflicts: []string{"most_per_profile:crm_id on c-a,m1"},
				holds: map[string]string{"c-a": "anonymous_id:dev-1 crm_id:A", "m1": "crm_id:B"}},
		},
		{
			name: "two crm ids on one message: one profile for the first, the other not attached, a conflict",
			reqs: []Request{req(1, crm("A"), crm("B"))},
			want: outcome{customers: []string{"m1"}, conflicts: []string{"most_per_profile:crm_id on m1"},
				holds: map[string]string{"m1": "crm_id:A"}},
		},
		{
			name:  "a conflict is recorded once however often its message comes",
			given: state{"c-a": person(1, "crm_id:A", "anonymous_id:dev-1")},
			reqs:  []Request{msgReq("event:k-2", 5, crm("B"), anon("dev-1")), msgReq("event:k-2", 5, crm("B"), anon("dev-1"))},
			want: outcome{customers: []string{"m1", "m1"}, conflicts: []string{"most_per_profile:crm_id on c-a,m1"},
				holds: map[string]string{"c-a": "anonymous_id:dev-1 crm_id:A", "m1": "crm_id:B"}},
		},
		{
			// CONTRACT §6 records a conflict per message: a second user
			// browsing on a customer's device conflicts at every event.
			name:  "two messages linking the same two crm ids each record their conflict",
			given: state{"c-a": person(1, "crm_id:A", "anonymous_id:dev-1")},
			reqs:  []Request{msgReq("event:k-2", 5, crm("B"), anon("dev-1")), msgReq("event:k-3", 6, crm("B"), anon("dev-1"))},
			want: outcome{customers: []string{"m1", "m1"}, conflicts: []string{"most_per_profile:crm_id on c-a,m1", "most_per_profile:crm_id on c-a,m1"},
				holds: map[string]string{"c-a": "anonymous_id:dev-1 crm_id:A", "m1": "crm_id:B"}},
		},
		{
			name:  "a fourth phone does not attach and records a conflict",
			given: state{"c-a": person(1, "crm_id:A", "phone:+8613800000001", "phone:+8613800000002", "phone:+8613800000003")},
			reqs:  []Request{req(5, crm("A"), phone("13800000004"))},
			want: outcome{customers: []string{"c-a"}, conflicts: []string{"most_per_profile:phone on c-a"},
				holds: map[string]string{"c-a": "crm_id:A phone:+8613800000001 phone:+8613800000002 phone:+8613800000003"}},
		},
		{
			name: "blocked values never join two people",
			reqs: []Request{
				req(1, crm("1"), phone("00000000000"), anon("anonymous")),
				req(2, crm("2"), phone("00000000000"), anon("null"), anon("0"), anon("-1")),
				req(3, anon("0"), anon("-1")),
			},
			want: outcome{customers: []string{"m1", "m2", ""}, holds: map[string]string{"m1": "crm_id:1", "m2": "crm_id:2"}},
		},
		{
			name: "profiles a split keeps apart do not merge again: a conflict instead",
			given: state{
				"c-a": &Person{FirstSeen: 1, Identities: []string{"anonymous_id:d-a"}, Apart: []string{"c-b"}, stored: true},
				"c-b": &Person{FirstSeen: 2, Identities: []string{"anonymous_id:d-b"}, Apart: []string{"c-a"}, stored: true},
			},
			reqs: []Request{req(5, email("x@y.z"), anon("d-b"), anon("d-a"))},
			want: outcome{customers: []string{"m1"}, conflicts: []string{"split on c-a,c-b,m1"},
				holds: map[string]string{"c-a": "anonymous_id:d-a", "c-b": "anonymous_id:d-b", "m1": "email:x@y.z"}},
		},
		{
			name: "a merge follows earlier merges to their survivors",
			given: state{
				"c-old": &Person{FirstSeen: 1, MergedInto: "c-a", stored: true},
				"c-a":   &Person{FirstSeen: 1, Identities: []string{"anonymous_id:d-a"}, MergedIDs: []string{"c-old"}, stored: true},
				"c-crm": person(4, "crm_id:9"),
			},
			reqs: []Request{req(5, crm("9"), anon("d-a"))},
			want: outcome{customers: []string{"c-crm"}, merges: []string{"c-a→c-crm"},
				holds: map[string]string{"c-crm": "anonymous_id:d-a crm_id:9"}},
		},
		{
			name:      "an identity a stopped writer reserved on a profile but never claimed is taken up, not counted twice",
			given:     state{"c-p": &Person{FirstSeen: 1, Identities: []string{"anonymous_id:d-p", "crm_id:C"}, stored: true}},
			unclaimed: []string{"crm_id:C"},
			reqs:      []Request{req(5, crm("C"), anon("d-p"))},
			want: outcome{customers: []string{"c-p"},
				holds: map[string]string{"c-p": "anonymous_id:d-p crm_id:C"}},
		},
		{
			name: "a chain of devices and a login become one profile in any batching",
			reqs: []Request{
				req(1, anon("d1")), req(2, anon("d2")), req(3, anon("d3")),
				req(4, anon("d1"), anon("d2")), req(5, crm("u"), anon("d3")), req(6, crm("u"), anon("d1")),
			},
			want: outcome{customers: []string{"m1", "m2", "m3", "m1", "m3", "m3"}, merges: []string{"m2→m1", "m1→m3"},
				holds: map[string]string{"m3": "anonymous_id:d1 anonymous_id:d2 anonymous_id:d3 crm_id:u"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rules := DefaultRules()
			clone := func() state {
				s := state{}
				for cid, p := range tt.given {
					c := p.clone()
					c.CustomerID = cid
					s[cid] = c
				}
				return s
			}
			s := clone()
			got := apply(t, rules, s, append([]Request(nil), tt.reqs...), minter(), tt.unclaimed...)
			got.holds = holds(s)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}

			// One request at a time, each against what the ones before wrote.
			one := clone()
			newID := minter()
			var alone outcome
			for _, r := range tt.reqs {
				o := apply(t, rules, one, []Request{r}, newID, tt.unclaimed...)
				alone.customers = append(alone.customers, o.customers...)
				alone.merges = append(alone.merges, o.merges...)
				alone.conflicts = append(alone.conflicts, o.conflicts...)
			}
			alone.holds = holds(one)
			if !reflect.DeepEqual(alone, got) {
				t.Errorf("one at a time %+v\nin one call   %+v", alone, got)
			}
		})
	}
}
