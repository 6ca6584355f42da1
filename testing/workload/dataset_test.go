package workload_test

import (
	"reflect"
	"strings"
	"testing"

	"cdp/testing/workload"
)

// Streams of several datasets (the bench's large runs) rely on datasets at
// different bases being different people: no row, identity or event id in
// common.
func TestDatasetsAtDifferentBasesShareNoRowIdentityOrEventID(t *testing.T) {
	names := func(d *workload.Dataset) map[string]bool {
		out := map[string]bool{}
		for _, m := range d.Messages {
			if c := m.Change; c != nil {
				out[c.Table+":"+c.Key] = true
				if cr := c.Customer; cr != nil {
					out["phone:"+cr.Phone], out["email:"+cr.Email] = true, true
				}
			}
			if e := m.Event; e != nil {
				out["event:"+e.MessageID] = true
				if e.UserID != "" {
					out["user:"+e.UserID] = true
				}
				if e.AnonymousID != "" {
					out["device:"+e.AnonymousID] = true
				}
			}
		}
		return out
	}
	a := names(workload.NewDatasetAt(1, 300, 0))
	b := names(workload.NewDatasetAt(1, 300, workload.DatasetKeySpan))
	for k := range b {
		if a[k] {
			t.Fatalf("%s is in both datasets", k)
		}
	}
	if len(a) < 1000 || len(b) < 1000 {
		t.Fatalf("%d and %d names: the datasets are too small to tell", len(a), len(b))
	}
	same := workload.NewDatasetAt(1, 300, 0)
	if d := workload.NewDataset(1, 300); len(d.Messages) != len(same.Messages) || string(d.Messages[7].Value) != string(same.Messages[7].Value) {
		t.Fatal("NewDatasetAt with base 0 is not NewDataset")
	}
}

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
