package workload_test

import (
	"reflect"
	"sort"
	"strings"
	"testing"

	"cdp/testing/workload"
)

// The identity traffic is reproducible, holds every kind of identity
// traffic the OneID acceptance test names, and leads to the same people
// however the keys of each phase interleave.
func TestIdentityTrafficIsReproducible(t *testing.T) {
	a, b := workload.NewIdentityTraffic(11, 600), workload.NewIdentityTraffic(11, 600)
	if len(a.Messages) != len(b.Messages) || !reflect.DeepEqual(a.Barriers, b.Barriers) || !reflect.DeepEqual(a.Splits, b.Splits) {
		t.Fatalf("same seed: %d and %d messages, barriers %v and %v, %d and %d splits",
			len(a.Messages), len(b.Messages), a.Barriers, b.Barriers, len(a.Splits), len(b.Splits))
	}
	for i := range a.Messages {
		x, y := a.Messages[i], b.Messages[i]
		if x.Topic != y.Topic || string(x.Key) != string(y.Key) || string(x.Value) != string(y.Value) {
			t.Fatalf("same seed, message %d differs:\n%s\n%s", i, x.Value, y.Value)
		}
	}
	if c := workload.NewIdentityTraffic(12, 600); len(c.Messages) == len(a.Messages) && string(c.Messages[5].Value) == string(a.Messages[5].Value) {
		t.Error("another seed gives the same stream")
	}
	s := a.Stats
	t.Logf("%d messages in phases of %v: %s", len(a.Messages), phaseSizes(a), s)
	for name, n := range map[string]int{"CRM customers": s.CRMCustomers, "SDK users": s.SDKUsers, "lone devices": s.LoneDevices,
		"logins": s.Logins, "phone joins": s.PhoneJoins, "email joins": s.EmailJoins, "aliases": s.Aliases,
		"alias conflicts": s.AliasConflicts, "shared devices": s.SharedDevices, "CRM conflicts": s.CRMConflicts,
		"blocked values": s.Blocked, "fourth phones": s.TooManyPhones, "51st devices": s.TooManyDevices, "splits": s.Splits,
		"duplicates": s.Duplicates} {
		if n == 0 {
			t.Errorf("no %s in the stream", name)
		}
	}
	if len(a.Splits) != s.Splits || len(a.Barriers) != 2 {
		t.Errorf("%d split actions for %d planned, barriers %v", len(a.Splits), s.Splits, a.Barriers)
	}
	for i, m := range a.Messages {
		if (m.Change == nil) == (m.Event == nil) || m.Value == nil {
			t.Fatalf("message %d is neither one change nor one event", i)
		}
	}
}

// What the model makes of the traffic: every kind of conflict, merges,
// blocked values kept as data, split-off people.
func TestIdentityTrafficLeadsToMergesConflictsAndSplits(t *testing.T) {
	d := workload.NewIdentityTraffic(3, 800)
	people, err := d.Model().People()
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]int{}
	for _, c := range d.Model().Conflicts() {
		reasons[c.Reason]++
	}
	var merged, blocked, anonymous, withOrders, events int
	for k, p := range people {
		if p.MergedAway > 0 {
			merged++
		}
		if len(p.Blocked) > 0 {
			blocked++
		}
		if !strings.HasPrefix(k, "crm_id:") {
			anonymous++
		}
		if len(p.Orders) > 0 {
			withOrders++
		}
		events += len(p.Events)
		crm := 0
		for _, id := range p.Identities {
			if strings.HasPrefix(id, "crm_id:") {
				crm++
			}
		}
		if crm > 1 || k != workload.OneIDKey(p.Identities) {
			t.Errorf("%s: identities %v", k, p.Identities)
		}
	}
	t.Logf("%d people (%d without a crm_id, %d with merged-away profiles, %d with blocked values, %d with orders), %d events; conflicts %v",
		len(people), anonymous, merged, blocked, withOrders, events, reasons)
	for _, r := range []string{workload.ConflictMostPerProfile + workload.IdentityCRM, workload.ConflictMostPerProfile + workload.IdentityPhone,
		workload.ConflictMostPerProfile + workload.IdentityAnonymous, workload.ConflictSplit} {
		if reasons[r] == 0 {
			t.Errorf("no conflict %s", r)
		}
	}
	if merged == 0 || blocked == 0 || anonymous == 0 || withOrders == 0 {
		t.Error("the people lack a kind")
	}
	if want := d.Stats.Events - d.Stats.Duplicates; events != want {
		t.Errorf("%d events on people, want %d (every distinct event on someone)", events, want)
	}
}

// The contract: the profiles that come out depend only on the messages.
// The generator keeps competing messages in different phases or on one
// key, so any interleaving of each phase's keys gives the same people,
// merges and conflicts.
func TestIdentityTrafficPeopleDoNotDependOnHowKeysInterleave(t *testing.T) {
	d := workload.NewIdentityTraffic(5, 1000)
	want, err := d.Model().People()
	if err != nil {
		t.Fatal(err)
	}
	for _, seed := range []uint64{1, 2, 3} {
		var msgs []workload.Message
		for _, phase := range d.Phases() {
			msgs = append(msgs, workload.InterleaveByKey(phase, seed)...)
		}
		if reflect.DeepEqual(msgs[:50], d.Messages[:50]) {
			t.Fatal("the interleaving did not reorder anything")
		}
		m := workload.NewOneID()
		if err := m.ApplyStream(msgs, d.Splits); err != nil {
			t.Fatal(err)
		}
		got, err := m.People()
		if err != nil {
			t.Fatal(err)
		}
		if diff := workload.DiffPeople(want, got, 10); len(diff) > 0 {
			t.Errorf("interleaving %d: the people differ:\n%s", seed, strings.Join(diff, "\n"))
		}
		if w, g := conflictSet(d.Model()), conflictSet(m); !reflect.DeepEqual(w, g) {
			t.Errorf("interleaving %d: %d conflicts, want %d", seed, len(g), len(w))
		}
	}
}

func conflictSet(m *workload.OneID) []string {
	var out []string
	for _, c := range m.Conflicts() {
		out = append(out, c.Source+" "+c.Reason+" "+strings.Join(c.People, ","))
	}
	sort.Strings(out)
	return out
}

func phaseSizes(d *workload.IdentityTraffic) []int {
	var out []int
	for _, p := range d.Phases() {
		out = append(out, len(p))
	}
	return out
}

// The acceptance test's size: 10,000 people.
// The model answers for a stream of thousands of people (the OneID
// acceptance test will feed 10,000; 2,000 keep every scenario, including
// the one 51-device user per 2,000, at a fifth of the time).
func TestIdentityTrafficAtScale(t *testing.T) {
	if testing.Short() {
		t.Skip("2,000 people")
	}
	d := workload.NewIdentityTraffic(1, 2_000)
	people, err := d.Model().People()
	if err != nil {
		t.Fatal(err)
	}
	if len(people) < 2_000 || len(d.Model().Conflicts()) == 0 {
		t.Fatalf("%d people and %d conflicts from 2,000 people's traffic: want at least 2,000 people and some conflicts", len(people), len(d.Model().Conflicts()))
	}
	t.Logf("%d messages, %d people, %d conflicts: %s", len(d.Messages), len(people), len(d.Model().Conflicts()), d.Stats)
}

// Streams at bases IdentityKeySpan apart are different people.
func TestIdentityTrafficAtDifferentBasesSharesNoIdentity(t *testing.T) {
	ids := func(d *workload.IdentityTraffic) map[string]bool {
		out := map[string]bool{}
		people, err := d.Model().People()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range people {
			for _, id := range append(append(append([]string{}, p.Identities...), p.Events...), p.Orders...) {
				out[id] = true
			}
		}
		return out
	}
	a, b := ids(workload.NewIdentityTrafficAt(1, 300, 0)), ids(workload.NewIdentityTrafficAt(1, 300, 8*workload.IdentityKeySpan))
	for k := range b {
		if a[k] {
			t.Fatalf("%s is in both streams", k)
		}
	}
}
