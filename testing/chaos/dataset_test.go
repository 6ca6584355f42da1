package chaos_test

import (
	"reflect"
	"strings"
	"testing"

	"cdp/testing/workload"
)

// The generator is reproducible, its stream holds every kind of change the
// chaos tests rely on, and the reference model does not depend on the
// delivery order (the contract's rules are per row, by source position).
func TestDatasetIsReproducibleAndOrderIndependent(t *testing.T) {
	a, b := workload.NewDataset(7, 400), workload.NewDataset(7, 400)
	if len(a.Messages) != len(b.Messages) {
		t.Fatalf("same seed, %d and %d messages", len(a.Messages), len(b.Messages))
	}
	for i := range a.Messages {
		if string(a.Messages[i].Value) != string(b.Messages[i].Value) || string(a.Messages[i].Key) != string(b.Messages[i].Key) {
			t.Fatalf("same seed, message %d differs", i)
		}
	}
	s := a.Stats
	t.Logf("%d messages: %s", len(a.Messages), s)
	for name, n := range map[string]int{"updates": s.Updates, "deletes": s.Deletes, "order moves": s.OrderMoves, "item moves": s.ItemMoves,
		"duplicates": s.Duplicates, "stale": s.Stale, "tombstones": s.Tombstones, "events": s.EventMessages,
		"schema-wrapped changes": s.SchemaWrapped, "struct keys": s.StructKeys} {
		if n == 0 {
			t.Errorf("no %s in the stream", name)
		}
	}
	want, err := a.Expected()
	if err != nil {
		t.Fatal(err)
	}
	reversed := workload.NewModel()
	for i := len(a.Messages) - 1; i >= 0; i-- {
		m := a.Messages[i]
		if m.Change != nil && m.Value != nil {
			reversed.ApplyChange(m.Change)
		}
		if m.Event != nil {
			reversed.ApplyEvent(m.Event)
		}
	}
	got, err := reversed.Docs()
	if err != nil {
		t.Fatal(err)
	}
	if diff := workload.DiffDocs(want, got, 10); len(diff) > 0 {
		t.Errorf("the model depends on delivery order:\n%s", strings.Join(diff, "\n"))
	}
	if !reflect.DeepEqual(a.Model().EventsPerPerson(), reversed.EventsPerPerson()) {
		t.Error("event counts depend on delivery order")
	}
	var paid, anon, sdkOnly int
	for k, d := range want {
		if d.Metrics["order_count"] != "0" {
			paid++
		}
		if strings.HasPrefix(k, "anonymous_id:") {
			anon++
		}
		if _, ok := d.Fields["registered_at"]; !ok && strings.HasPrefix(k, "crm_id:") {
			sdkOnly++
		}
	}
	t.Logf("%d expected documents: %d with paid orders, %d anonymous, %d SDK-only", len(want), paid, anon, sdkOnly)
	if paid == 0 || anon == 0 || sdkOnly == 0 {
		t.Error("the expected documents lack a kind of customer")
	}
}

func TestTheScaleDatasetHasAtLeast50000Changes(t *testing.T) {
	d := workload.NewDataset(scaleSeed, scaleCustomers)
	if len(d.Messages) < 50000 {
		t.Fatalf("%d messages, want at least 50,000: raise scaleCustomers", len(d.Messages))
	}
	t.Logf("%d messages: %s", len(d.Messages), d.Stats)
}
