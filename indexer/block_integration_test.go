package indexer_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"cdp/indexer"
	"cdp/mapping"
	"cdp/testing/harness"
)

// An index blocked read-only (a full disk does that) pauses the indexer:
// nothing is dead-lettered, and everything is written once the block is
// lifted.
func TestAReadOnlyIndexPausesConsumptionInsteadOfDeadLettering(t *testing.T) {
	env := harness.Services(t)
	cfg := env.Config(t)
	env.Bootstrap(t, cfg)
	st := env.Store(t)
	ctx := context.Background()
	block := func(on bool) {
		t.Helper()
		body := map[string]any{"index.blocks.read_only_allow_delete": on}
		if !on {
			body["index.blocks.read_only_allow_delete"] = nil
		}
		if err := st.Do(ctx, http.MethodPut, "/"+mapping.Customers.Alias(cfg.IndexPrefix)+"/_settings", body, nil); err != nil {
			t.Fatal(err)
		}
	}
	block(true)
	t.Cleanup(func() { block(false) })

	p := env.Producer(t)
	produce(t, p, cfg.TopicPrefix, change(indexer.TopicCustomers, "c", 1, map[string]any{"name": "blocked"}, 1))
	metrics := env.StartIndexer(t, cfg)

	// The row is stored (the row store is not blocked) but the document
	// cannot be: wait until stage 2 has met the block and retried its write
	// several times, or dead-lettered it, then check that it paused: nothing
	// dead-lettered and its marker not committed.
	const tries = 3
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		retried := harness.Counter(t, metrics, "cdp_indexer_retries_total", "step", "materialize")
		dead := harness.Counter(t, metrics, "cdp_indexer_dead_lettered_total")
		return retried >= tries || dead > 0, fmt.Sprintf("stage 2 retried %v times and dead-lettered %v messages", retried, dead)
	})
	if n := env.Count(t, cfg, "rows", map[string]any{"term": map[string]any{"kind": "customer"}}); n != 1 {
		t.Fatalf("%d customer rows, want the one row: the row store is not blocked", n)
	}
	if n := len(env.ReadTopic(t, cfg.Topic(indexer.TopicDLQ))); n != 0 {
		t.Fatalf("%d dead letters while blocked, want 0: a block must pause, not reject", n)
	}
	if pr, err := env.Progress(cfg); err != nil {
		t.Fatal(err)
	} else if pr.DirtyEnd == 0 || pr.DirtyCommitted == pr.DirtyEnd {
		t.Fatalf("%s: want the marker of the blocked document produced and not committed", pr)
	}
	if doc := env.CustomerByIdentity(t, cfg, "crm_id", "1"); doc != nil {
		t.Fatalf("document written through a read-only block: %v", doc)
	}
	block(false)
	harness.Eventually(t, 60*time.Second, func() (bool, string) {
		doc := env.CustomerByIdentity(t, cfg, "crm_id", "1")
		return doc != nil && doc["name"] == "blocked", fmt.Sprintf("doc = %v", doc)
	})
}
