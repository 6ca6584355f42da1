package export_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"cdp/export"
	"cdp/mapping"
	"cdp/store"
	"cdp/testing/harness"
)

func TestAStreamResumedAfterACheckpointWritesTheRestOnceEach(t *testing.T) {
	env := harness.Services(t)
	cfg := env.Config(t)
	env.Bootstrap(t, cfg)
	st := env.Store(t)
	idx := mapping.Customers.Alias(cfg.IndexPrefix)
	const n = 250
	var ops []store.Op
	for i := range n {
		id := fmt.Sprintf("c%04d", i)
		ops = append(ops, store.Op{Action: store.Index, Index: idx, ID: id, Body: map[string]any{"customer_id": id, "relation": "customer"}})
	}
	if _, err := st.Bulk(context.Background(), ops); err != nil {
		t.Fatal(err)
	}
	if err := st.Refresh(context.Background(), idx); err != nil {
		t.Fatal(err)
	}
	q := export.Query{Index: idx, Query: map[string]any{"match_all": map[string]any{}}, PageSize: 40}

	// The first run stops after its third page, as a killed job would.
	var first bytes.Buffer
	var checkpoint export.Progress
	stop := errors.New("stopped")
	_, err := export.Stream(context.Background(), st, q, export.NewNDJSON(&first), func(p export.Progress) error {
		checkpoint = p
		if p.Written == 120 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || checkpoint.Last != "c0119" {
		t.Fatalf("first run: %v, checkpoint %+v", err, checkpoint)
	}
	q.After = checkpoint.Last
	var rest bytes.Buffer
	if _, err := export.Stream(context.Background(), st, q, export.NewNDJSON(&rest), nil); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, b := range []*bytes.Buffer{&first, &rest} {
		sc := bufio.NewScanner(b)
		for sc.Scan() {
			var d struct {
				ID string `json:"customer_id"`
			}
			if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
				t.Fatal(err)
			}
			seen[d.ID]++
		}
	}
	for i := range n {
		if id := fmt.Sprintf("c%04d", i); seen[id] != 1 {
			t.Errorf("%s written %d times", id, seen[id])
		}
	}
}
