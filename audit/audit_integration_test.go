package audit_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"cdp/audit"
	"cdp/mapping"
	"cdp/testing/harness"
)

// A clean shutdown loses no batched record: Close writes what Log queued,
// and Find reads them back newest first, filtered by actor and action.
func TestCloseWritesEveryBatchedRecordAndFindReadsThemBack(t *testing.T) {
	env := harness.Services(t)
	cfg := env.Config(t)
	st := env.Store(t)
	if err := st.EnsureIndices(context.Background(), cfg.IndexPrefix, mapping.Audit); err != nil {
		t.Fatal(err)
	}
	index := mapping.Audit.Alias(cfg.IndexPrefix)
	// A flush period far beyond the test: only Close writes the batch.
	tr := audit.New(audit.Config{Index: index, FlushEvery: time.Hour, MaxBatch: 1000}, st, harness.Logger())
	at := time.Now().UTC().Add(-time.Minute)
	for i := range 25 {
		tr.Log(audit.Record{At: at.Add(time.Duration(i) * time.Second), Actor: fmt.Sprintf("key:u%d", i%2), Role: "marketer",
			Action: "customer.view", Target: fmt.Sprintf("c%d", i), Status: 200, IP: "127.0.0.1"})
	}
	if err := tr.Write(context.Background(), audit.Record{At: time.Now().UTC(), Actor: "key:u0", Role: "admin", Action: "key.create", Target: "k1", Status: 201}); err != nil {
		t.Fatal(err)
	}
	tr.Close()
	if err := st.Refresh(context.Background(), index); err != nil {
		t.Fatal(err)
	}
	reader := audit.New(audit.Config{Index: index}, st, harness.Logger())
	defer reader.Close()
	all, _, err := reader.Find(context.Background(), audit.Query{Size: 100})
	if err != nil || len(all) != 26 {
		t.Fatalf("records after Close: %d (%v), want 26", len(all), err)
	}
	if all[0].Action != "key.create" {
		t.Errorf("newest first: the first is %+v", all[0])
	}
	views, last, err := reader.Find(context.Background(), audit.Query{Actor: "key:u1", Action: "customer.view", Size: 10})
	if err != nil || len(views) != 10 || last == nil {
		t.Fatalf("u1's views, first page: %d (%v)", len(views), err)
	}
	rest, _, err := reader.Find(context.Background(), audit.Query{Actor: "key:u1", Action: "customer.view", Size: 10, After: last})
	if err != nil || len(rest) != 2 {
		t.Errorf("u1's views, second page: %d (%v), want the other 2 of 12", len(rest), err)
	}
}
