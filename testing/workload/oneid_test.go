package workload_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"cdp/testing/workload"
)

// The OneID model's cases, worked by hand from CONTRACT §6.

var t0 = time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)

// step is one thing fed to the model: a message, or a split.
type step struct {
	msg   *workload.Message
	split *workload.SplitAction
}

func at(minute int) time.Time { return t0.Add(time.Duration(minute) * time.Minute) }

func event(id string, minute int, typ, user, device string, traits map[string]any) step {
	e := &workload.Event{Type: typ, MessageID: id, Timestamp: at(minute), UserID: user, AnonymousID: device, Traits: traits}
	if typ == "track" {
		e.Name = "view_product"
	}
	m := workload.EventMessage(e)
	return step{msg: &m}
}

func track(id string, minute int, user, device string) step {
	return event(id, minute, "track", user, device, nil)
}

func identify(id string, minute int, user, device string, traits map[string]any) step {
	return event(id, minute, "identify", user, device, traits)
}

func alias(id string, minute int, previous, user string) step {
	e := &workload.Event{Type: "alias", MessageID: id, Timestamp: at(minute), UserID: user, PreviousID: previous}
	m := workload.EventMessage(e)
	return step{msg: &m}
}

func change(c *workload.Change) step {
	return step{msg: &workload.Message{Key: []byte(c.Key), Value: workload.ChangeValue(c), Change: c}}
}

func crmRow(key string, lsn int64, minute int, phone, email string) step {
	return change(&workload.Change{Table: workload.TableCustomers, Key: key, Op: "c", LSN: lsn, TsMs: at(minute).UnixMilli(),
		Customer: &workload.CustomerRow{Name: "张三", Phone: phone, Email: email, CreatedAt: at(0), UpdatedAt: at(minute)}})
}

func orderRow(key, customer string, lsn int64, minute int) step {
	return change(&workload.Change{Table: workload.TableOrders, Key: key, Op: "c", LSN: lsn, TsMs: at(minute).UnixMilli(),
		Order: &workload.OrderRow{CustomerID: customer, OrderNo: "NO-" + key, StoreID: "s-01", Status: "paid", TotalCents: 19900, CreatedAt: at(minute)}})
}

func itemRow(key, order string, lsn int64, minute int) step {
	return change(&workload.Change{Table: workload.TableOrderItems, Key: key, Op: "c", LSN: lsn, TsMs: at(minute).UnixMilli(),
		Item: &workload.ItemRow{OrderID: order, SKU: "p-7", ProductName: "跑步鞋", Category: "shoes", Quantity: 1, PriceCents: 19900}})
}

func id(s string) workload.Identity {
	typ, v, _ := strings.Cut(s, ":")
	return workload.Identity{Type: typ, Value: v}
}

func split(profile string, ids ...string) step {
	s := &workload.SplitAction{Time: at(1000), Profile: id(profile)}
	for _, x := range ids {
		s.Identities = append(s.Identities, id(x))
	}
	return step{split: s}
}

func feed(t *testing.T, steps []step) *workload.OneID {
	t.Helper()
	m := workload.NewOneID()
	for i, s := range steps {
		if s.split != nil {
			if err := m.Split(*s.split); err != nil {
				t.Fatalf("step %d: split: %v", i, err)
			}
			continue
		}
		m.Apply(*s.msg)
	}
	return m
}

// want is what a case fixes about one person; nil lists are empty.
type want struct {
	ids, events       []string
	merged, conflicts int
	orders, items     []string
	blocked           []string // checked only when not nil
}

func checkPeople(t *testing.T, m *workload.OneID, wantPeople map[string]want) map[string]workload.OneIDPerson {
	t.Helper()
	people, err := m.People()
	if err != nil {
		t.Fatal(err)
	}
	for k := range people {
		if _, ok := wantPeople[k]; !ok {
			t.Errorf("unexpected person %s: %+v", k, people[k])
		}
	}
	norm := func(s []string) []string {
		if s == nil {
			return []string{}
		}
		return s
	}
	for k, w := range wantPeople {
		p, ok := people[k]
		if !ok {
			t.Errorf("missing person %s", k)
			continue
		}
		for _, f := range []struct {
			name      string
			got, want any
		}{
			{"identities", norm(p.Identities), norm(sorted(w.ids))},
			{"events", norm(p.Events), norm(sorted(w.events))},
			{"orders", norm(p.Orders), norm(sorted(w.orders))},
			{"items", norm(p.Items), norm(sorted(w.items))},
			{"merged away", p.MergedAway, w.merged},
			{"conflicts", p.Conflicts, w.conflicts},
		} {
			if !reflect.DeepEqual(f.got, f.want) {
				t.Errorf("%s: %s = %v, want %v", k, f.name, f.got, f.want)
			}
		}
		if w.blocked != nil && !reflect.DeepEqual(norm(p.Blocked), sorted(w.blocked)) {
			t.Errorf("%s: blocked = %v, want %v", k, p.Blocked, sorted(w.blocked))
		}
	}
	return people
}

func sorted(s []string) []string {
	out := append([]string{}, s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestOneIDModel(t *testing.T) {
	cases := []struct {
		name      string
		steps     []step
		people    map[string]want
		conflicts []string // "reason on person,person", in order
	}{{
		name: "anonymous browsing then login makes one person with every event, orders and items",
		steps: []step{
			track("e1", 1, "", "dev-1"), track("e2", 2, "", "dev-1"),
			orderRow("o1", "1001", 10, 3), itemRow("i1", "o1", 11, 3), // before their customer
			crmRow("1001", 12, 4, "13800000001", "Zhang@Example.com"),
			identify("e3", 5, "1001", "dev-1", map[string]any{"city": "北京"}),
			track("e4", 6, "1001", ""),
		},
		people: map[string]want{"crm_id:1001": {
			ids:    []string{"crm_id:1001", "phone:+8613800000001", "email:zhang@example.com", "anonymous_id:dev-1"},
			events: []string{"e1", "e2", "e3", "e4"}, merged: 1, orders: []string{"o1"}, items: []string{"i1"},
		}},
	}, {
		name: "login on a device before it browses attaches the browsing to the user with no merge",
		steps: []step{
			identify("e1", 1, "1001", "dev-1", nil), track("e2", 2, "", "dev-1"),
		},
		people: map[string]want{"crm_id:1001": {ids: []string{"crm_id:1001", "anonymous_id:dev-1"}, events: []string{"e1", "e2"}}},
	}, {
		name: "a phone trait from a new device joins the CRM customer holding that phone",
		steps: []step{
			crmRow("1001", 10, 1, " 13800000001 ", "zhang@example.com"),
			identify("e1", 2, "", "dev-2", map[string]any{"phone": "+86 138 0000 0001"}),
			track("e2", 3, "", "dev-2"),
		},
		people: map[string]want{"crm_id:1001": {
			ids:    []string{"crm_id:1001", "phone:+8613800000001", "email:zhang@example.com", "anonymous_id:dev-2"},
			events: []string{"e1", "e2"},
		}},
	}, {
		name: "an email trait joins two anonymous devices into one person",
		steps: []step{
			identify("e1", 1, "", "dev-1", map[string]any{"email": "A@X.com"}),
			track("e2", 2, "", "dev-2"),
			identify("e3", 3, "", "dev-2", map[string]any{"email": "  a@x.COM "}),
		},
		people: map[string]want{"email:a@x.com": {
			ids: []string{"email:a@x.com", "anonymous_id:dev-1", "anonymous_id:dev-2"}, events: []string{"e1", "e2", "e3"}, merged: 1,
		}},
	}, {
		name: "alias merges the previous anonymous id into the user",
		steps: []step{
			track("e1", 1, "", "dev-1"), track("e2", 2, "2002", ""), alias("e3", 3, "dev-1", "2002"),
		},
		people: map[string]want{"crm_id:2002": {ids: []string{"crm_id:2002", "anonymous_id:dev-1"}, events: []string{"e1", "e2", "e3"}, merged: 1}},
	}, {
		name: "alias of a crm id a profile holds to another user id is two crm ids: a conflict, not a merge",
		steps: []step{
			crmRow("1001", 10, 1, "", ""), alias("e1", 2, "1001", "2002"), track("e2", 3, "2002", ""),
		},
		people: map[string]want{
			"crm_id:1001": {ids: []string{"crm_id:1001"}, conflicts: 1},
			"crm_id:2002": {ids: []string{"crm_id:2002"}, events: []string{"e1", "e2"}, conflicts: 1},
		},
		conflicts: []string{"most_per_profile:crm_id on crm_id:1001,crm_id:2002"},
	}, {
		name: "alias of an id no profile holds as a crm id takes it as an anonymous id",
		steps: []step{
			alias("e1", 1, "1001", "2002"), track("e2", 2, "", "1001"),
		},
		people: map[string]want{"crm_id:2002": {ids: []string{"crm_id:2002", "anonymous_id:1001"}, events: []string{"e1", "e2"}}},
	}, {
		name: "two crm ids claiming one device merge nothing and record a conflict on both",
		steps: []step{
			track("e1", 1, "1001", "dev-1"), track("e2", 2, "2002", ""), track("e3", 3, "2002", "dev-1"), track("e4", 4, "3003", "dev-1"),
		},
		people: map[string]want{
			"crm_id:1001": {ids: []string{"crm_id:1001", "anonymous_id:dev-1"}, events: []string{"e1"}, conflicts: 2},
			"crm_id:2002": {ids: []string{"crm_id:2002"}, events: []string{"e2", "e3"}, conflicts: 1},
			"crm_id:3003": {ids: []string{"crm_id:3003"}, events: []string{"e4"}, conflicts: 1},
		},
		conflicts: []string{
			"most_per_profile:crm_id on crm_id:1001,crm_id:2002",
			"most_per_profile:crm_id on crm_id:1001,crm_id:3003",
		},
	}, {
		name: "a CRM row whose phone another CRM customer holds is a conflict and keeps its own email",
		steps: []step{
			crmRow("1001", 10, 1, "13800000001", "a@x.com"), crmRow("1002", 11, 2, "138-0000-0001", "b@x.com"),
		},
		people: map[string]want{
			"crm_id:1001": {ids: []string{"crm_id:1001", "phone:+8613800000001", "email:a@x.com"}, conflicts: 1},
			"crm_id:1002": {ids: []string{"crm_id:1002", "email:b@x.com"}, conflicts: 1},
		},
		conflicts: []string{"most_per_profile:crm_id on crm_id:1001,crm_id:1002"},
	}, {
		name: "blocked values never join two people and are kept as data",
		steps: []step{
			crmRow("1001", 10, 1, "00000000000", "null"),
			crmRow("1002", 11, 2, "+86 111 1111 1111", "NONE"),
			identify("e1", 3, "1003", "unknown", map[string]any{"phone": "11111111111", "email": " Undefined "}),
			identify("e2", 4, "1004", "0-0", map[string]any{"phone": "", "email": "anonymous"}),
			track("e3", 5, "1005", "unknown"), track("e4", 6, "1006", "000"),
			crmRow("1007", 12, 7, "-", "-"),
		},
		people: map[string]want{
			"crm_id:1001": {ids: []string{"crm_id:1001"}, blocked: []string{"phone:00000000000", "email:null"}},
			"crm_id:1002": {ids: []string{"crm_id:1002"}, blocked: []string{"phone:+86 111 1111 1111", "email:NONE"}},
			"crm_id:1003": {ids: []string{"crm_id:1003"}, events: []string{"e1"}, blocked: []string{"anonymous_id:unknown", "phone:11111111111", "email: Undefined "}},
			"crm_id:1004": {ids: []string{"crm_id:1004"}, events: []string{"e2"}, blocked: []string{"anonymous_id:0-0", "phone:", "email:anonymous"}},
			"crm_id:1005": {ids: []string{"crm_id:1005"}, events: []string{"e3"}, blocked: []string{"anonymous_id:unknown"}},
			"crm_id:1006": {ids: []string{"crm_id:1006"}, events: []string{"e4"}, blocked: []string{"anonymous_id:000"}},
			"crm_id:1007": {ids: []string{"crm_id:1007"}, blocked: []string{"phone:-", "email:-"}},
		},
	}, {
		name: "a fourth phone does not attach and records a conflict; the message still counts",
		steps: []step{
			identify("e1", 1, "3001", "", map[string]any{"phone": "15000000001"}),
			identify("e2", 2, "3001", "", map[string]any{"phone": "15000000002"}),
			identify("e3", 3, "3001", "", map[string]any{"phone": "15000000003", "email": "c@x.com"}),
			identify("e4", 4, "3001", "", map[string]any{"phone": "15000000004", "email": "d@x.com"}),
		},
		people: map[string]want{"crm_id:3001": {
			ids:    []string{"crm_id:3001", "phone:+8615000000001", "phone:+8615000000002", "phone:+8615000000003", "email:c@x.com", "email:d@x.com"},
			events: []string{"e1", "e2", "e3", "e4"}, conflicts: 1,
		}},
		conflicts: []string{"most_per_profile:phone on crm_id:3001"},
	}, {
		name: "a phone over the limit with no higher identity known starts a profile of its own",
		steps: []step{
			identify("e1", 1, "", "dev-1", map[string]any{"phone": "15000000001"}),
			identify("e2", 2, "", "dev-1", map[string]any{"phone": "15000000002"}),
			identify("e3", 3, "", "dev-1", map[string]any{"phone": "15000000003"}),
			identify("e4", 4, "", "dev-1", map[string]any{"phone": "15000000004"}),
		},
		people: map[string]want{
			"phone:+8615000000001": {ids: []string{"anonymous_id:dev-1", "phone:+8615000000001", "phone:+8615000000002", "phone:+8615000000003"},
				events: []string{"e1", "e2", "e3"}, conflicts: 1},
			"phone:+8615000000004": {ids: []string{"phone:+8615000000004"}, events: []string{"e4"}, conflicts: 1},
		},
		conflicts: []string{"most_per_profile:phone on phone:+8615000000001,phone:+8615000000004"},
	}, {
		name: "a split restores two people and a later link records a conflict instead of merging",
		steps: []step{
			track("e1", 1, "", "dev-1"), track("e2", 2, "", "dev-1"),
			crmRow("1001", 10, 3, "13800000001", ""),
			identify("e3", 4, "1001", "dev-1", nil),
			split("crm_id:1001", "anonymous_id:dev-1"),
			track("e4", 5, "1001", "dev-1"), // links the two sides: a conflict
			track("e5", 6, "", "dev-1"),     // the device alone: its own person
			track("e6", 7, "1001", ""),
		},
		people: map[string]want{
			"crm_id:1001":        {ids: []string{"crm_id:1001", "phone:+8613800000001"}, events: []string{"e3", "e4", "e6"}, merged: 1, conflicts: 1},
			"anonymous_id:dev-1": {ids: []string{"anonymous_id:dev-1"}, events: []string{"e1", "e2", "e5"}, conflicts: 1},
		},
		conflicts: []string{"split on anonymous_id:dev-1,crm_id:1001"},
	}, {
		name: "a split stays remembered after either side merges with someone else",
		steps: []step{
			identify("e0", 0, "", "dev-9", map[string]any{"email": "a@x.com"}),
			identify("e1", 1, "1001", "dev-1", nil),
			split("crm_id:1001", "anonymous_id:dev-1"),
			identify("e2", 2, "", "dev-1", map[string]any{"email": "a@x.com"}), // the device's side merges with dev-9's
			identify("e3", 3, "1001", "", map[string]any{"email": "a@x.com"}),  // the crm side with the other side's email
		},
		people: map[string]want{
			"crm_id:1001": {ids: []string{"crm_id:1001"}, events: []string{"e1", "e3"}, conflicts: 1},
			"email:a@x.com": {ids: []string{"anonymous_id:dev-1", "anonymous_id:dev-9", "email:a@x.com"}, events: []string{"e0", "e2"},
				merged: 1, conflicts: 1},
		},
		conflicts: []string{"split on crm_id:1001,email:a@x.com"},
	}, {
		name: "a split moves only the events that came with the split identities alone",
		steps: []step{
			crmRow("1001", 10, 1, "13800000001", "a@x.com"),
			identify("e1", 2, "", "dev-2", map[string]any{"phone": "13800000001"}),
			track("e2", 3, "", "dev-2"),
			track("e3", 4, "1001", "dev-2"),
			split("crm_id:1001", "phone:+8613800000001", "anonymous_id:dev-2"),
			crmRow("1001", 20, 5, "13800000001", "a@x.com"), // an update linking crm_id and phone again
		},
		people: map[string]want{
			"crm_id:1001":          {ids: []string{"crm_id:1001", "email:a@x.com"}, events: []string{"e3"}, conflicts: 1},
			"phone:+8613800000001": {ids: []string{"phone:+8613800000001", "anonymous_id:dev-2"}, events: []string{"e1", "e2"}, conflicts: 1},
		},
		conflicts: []string{"split on crm_id:1001,phone:+8613800000001"},
	}, {
		name: "a redelivered message and a stale change change nothing",
		steps: []step{
			crmRow("1001", 20, 1, "13800000001", ""),
			crmRow("1002", 21, 2, "13800000002", ""),
			crmRow("1002", 5, 3, "13800000001", ""), // older than the applied change of its row: ignored
			track("e1", 4, "1001", "dev-1"),
			track("e1", 4, "1001", "dev-1"),
		},
		people: map[string]want{
			"crm_id:1001": {ids: []string{"crm_id:1001", "phone:+8613800000001", "anonymous_id:dev-1"}, events: []string{"e1"}},
			"crm_id:1002": {ids: []string{"crm_id:1002", "phone:+8613800000002"}},
		},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := feed(t, tc.steps)
			checkPeople(t, m, tc.people)
			var got []string
			for _, c := range m.Conflicts() {
				got = append(got, c.Reason+" on "+strings.Join(c.People, ","))
			}
			if !reflect.DeepEqual(got, tc.conflicts) {
				t.Errorf("conflicts = %q, want %q", got, tc.conflicts)
			}
		})
	}
}

// The survivor of a merge keeps its customer id: the profile holding a
// crm_id, else the one seen first by message timestamp, whatever the
// order the profiles were created in.
func TestOneIDSurvivorIsTheCRMHolderElseTheFirstSeen(t *testing.T) {
	for _, tc := range []struct {
		name         string
		steps        []step
		of           string
		survivor     string
		merged       []string
		mergedAwayOf int
	}{{
		name:     "the profile seen first survives although it was created second",
		steps:    []step{track("late", 9, "", "dev-1"), track("early", 1, "", "dev-2"), identify("link", 10, "", "dev-1", map[string]any{"email": "a@x.com"}), identify("link2", 11, "", "dev-2", map[string]any{"email": "a@x.com"})},
		of:       "email:a@x.com",
		survivor: "event:early", merged: []string{"event:late"}, mergedAwayOf: 1,
	}, {
		name:     "the profile holding a crm id survives although another was seen first",
		steps:    []step{track("anon", 1, "", "dev-1"), track("user", 5, "1001", ""), alias("link", 6, "dev-1", "1001")},
		of:       "crm_id:1001",
		survivor: "event:user", merged: []string{"event:anon"}, mergedAwayOf: 1,
	}, {
		name: "merged-away profiles of merged-away profiles count too",
		steps: []step{track("a", 1, "", "dev-1"), track("b", 2, "", "dev-2"), track("c", 3, "", "dev-3"),
			identify("ab", 4, "", "dev-2", map[string]any{"email": "a@x.com"}), identify("ab2", 5, "", "dev-1", map[string]any{"email": "a@x.com"}),
			track("user", 6, "1001", ""), identify("all", 7, "1001", "dev-3", map[string]any{"email": "a@x.com"})},
		of:       "crm_id:1001",
		survivor: "event:user", merged: []string{"event:a", "event:b", "event:c"}, mergedAwayOf: 3,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			m := feed(t, tc.steps)
			s, merged, ok := m.Survivor(id(tc.of))
			if !ok || s != tc.survivor || !reflect.DeepEqual(merged, tc.merged) {
				t.Errorf("survivor %q merged %q (%v), want %q merged %q", s, merged, ok, tc.survivor, tc.merged)
			}
			people, err := m.People()
			if err != nil {
				t.Fatal(err)
			}
			if p := people[tc.of]; p.MergedAway != tc.mergedAwayOf || len(people) != 1 {
				t.Errorf("people %+v, want one with %d merged away", people, tc.mergedAwayOf)
			}
		})
	}
}

// The contract: the profiles that come out do not depend on how messages
// were partitioned. Two interleavings that keep each key's order lead to
// the same people when no messages compete for an identity.
func TestOneIDPeopleDoNotDependOnTheInterleavingOfKeys(t *testing.T) {
	byKey := [][]step{
		{track("a1", 1, "", "dev-1"), track("a2", 2, "", "dev-1")},
		{crmRow("1001", 10, 3, "13800000001", "a@x.com"), crmRow("1002", 11, 4, "13800000002", "")},
		{identify("u1", 5, "1001", "dev-1", map[string]any{"email": "A@x.com"}), track("u2", 6, "1001", "")},
		{identify("d1", 7, "", "dev-2", map[string]any{"phone": "+8613800000002"}), track("d2", 8, "", "dev-2")},
		{track("s1", 9, "2002", ""), alias("s2", 10, "dev-3", "2002")},
		{track("c1", 11, "", "dev-3"), track("c2", 12, "", "dev-3")},
		{orderRow("o1", "1001", 12, 1), orderRow("o2", "2002", 13, 1)},
		{identify("x1", 13, "", "dev-4", map[string]any{"email": "b@x.com"}), track("x2", 14, "", "dev-4")},
		{identify("y1", 15, "", "dev-5", map[string]any{"email": "b@x.com"})},
	}
	// keys one after another, then round robin from the last key back
	var first, second []step
	for _, q := range byKey {
		first = append(first, q...)
	}
	for i := 0; ; i++ {
		took := false
		for k := len(byKey) - 1; k >= 0; k-- {
			if i < len(byKey[k]) {
				second = append(second, byKey[k][i])
				took = true
			}
		}
		if !took {
			break
		}
	}
	a, b := feed(t, first), feed(t, second)
	pa, err := a.People()
	if err != nil {
		t.Fatal(err)
	}
	pb, err := b.People()
	if err != nil {
		t.Fatal(err)
	}
	// Whether a profile was made and merged away, or never made, depends
	// on which key came first: merged_ids is history, not who is whom.
	for _, p := range []map[string]workload.OneIDPerson{pa, pb} {
		for k, person := range p {
			person.MergedAway = 0
			p[k] = person
		}
	}
	if diff := workload.DiffPeople(pa, pb, 10); len(diff) > 0 {
		t.Errorf("the people depend on the interleaving:\n%s", strings.Join(diff, "\n"))
	}
	if len(pa) != 4 {
		t.Errorf("%d people, want 4 (crm 1001, crm 1002, crm 2002, email b@x.com): %v", len(pa), pa)
	}
}

func TestOneIDSplitIsRefusedWhenAnIdentityIsNotOnTheProfileOrNoneWouldRemain(t *testing.T) {
	m := feed(t, []step{identify("e1", 1, "1001", "dev-1", nil), track("e2", 2, "2002", "")})
	for _, s := range []workload.SplitAction{
		{Profile: id("crm_id:1001"), Identities: []workload.Identity{id("crm_id:2002")}},
		{Profile: id("crm_id:1001"), Identities: []workload.Identity{id("crm_id:1001"), id("anonymous_id:dev-1")}},
		{Profile: id("crm_id:1001")},
		{Profile: id("crm_id:9999"), Identities: []workload.Identity{id("crm_id:9999")}},
	} {
		if err := m.Split(s); err == nil {
			t.Errorf("split %+v was accepted", s)
		}
	}
}

// A message with no identity that identifies anyone is a case the contract
// leaves open (which profile would it attach to?): the model refuses to
// answer rather than guess.
func TestOneIDRefusesAMessageWithOnlyBlockedIdentities(t *testing.T) {
	m := feed(t, []step{track("e1", 1, "", "unknown")})
	if _, err := m.People(); err == nil || !strings.Contains(err.Error(), "e1") {
		t.Errorf("err = %v, want the open case named", err)
	}
}

func TestNormalizeIdentity(t *testing.T) {
	for _, tc := range []struct {
		typ, raw, want string
		ok             bool
	}{
		{"phone", "13800000000", "+8613800000000", true},
		{"phone", " +86 138-0000-0000 ", "+8613800000000", true},
		{"phone", "8613800000000", "+8613800000000", true},
		{"phone", "0086 13800000000", "+8613800000000", true},
		{"phone", "+1 (415) 555-0100", "+14155550100", true},
		{"phone", "11111111111", "+8611111111111", false},
		{"phone", "+86 13333333333", "+8613333333333", true},
		{"phone", "+8699999999999", "+8699999999999", false},
		{"phone", "00000000000", "+000000000", false},
		{"email", "  Zhang@Example.COM ", "zhang@example.com", true},
		{"email", "NULL", "null", false},
		{"anonymous_id", " dev-9f2 ", "dev-9f2", true},
		{"anonymous_id", "Anonymous", "Anonymous", false},
		{"anonymous_id", "0-00-0", "0-00-0", false},
		{"anonymous_id", "", "", false},
		{"crm_id", "none", "none", false},
		{"crm_id", "1001", "1001", true},
	} {
		t.Run(fmt.Sprintf("%s %q", tc.typ, tc.raw), func(t *testing.T) {
			v, ok := workload.NormalizeIdentity(tc.typ, tc.raw)
			if v != tc.want || ok != tc.ok {
				t.Errorf("= %q, %v; want %q, %v", v, ok, tc.want, tc.ok)
			}
		})
	}
}
