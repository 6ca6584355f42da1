package workload_test

import (
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
