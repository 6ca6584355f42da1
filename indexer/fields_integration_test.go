package indexer_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"cdp/indexer"
	"cdp/mapping"
	"cdp/testing/harness"
)

// 2,000 distinct unknown columns must not break the index: each lands under
// attrs, mapped by its first JSON value.
func TestTwoThousandDistinctUnknownColumnsAreAllIndexed(t *testing.T) {
	t.Parallel()
	env := harness.Services(t)
	cfg := env.Config(t)
	p := env.Producer(t)
	const n = 2000
	var msgs []msg
	for i := 0; i < n; i++ {
		msgs = append(msgs, change(indexer.TopicCustomers, "c", 5000+i, map[string]any{"name": "n", fmt.Sprintf("Extra Col.%d", i): i}, int64(i+1)))
	}
	produce(t, p, cfg.TopicPrefix, msgs...)
	env.StartIndexer(t, cfg)
	harness.Eventually(t, 90*time.Second, func() (bool, string) {
		docs := env.AllCustomers(t, cfg)
		return len(docs) == n, fmt.Sprintf("%d of %d customers indexed", len(docs), n)
	})
	doc := env.CustomerByIdentity(t, cfg, "crm_id", "6999")
	if attrs := doc["attrs"].(map[string]any); attrs["extra_col_1999"] != 1999.0 {
		t.Fatalf("attrs = %v, want the sanitized column extra_col_1999", attrs)
	}
	if len(env.AllCustomers(t, cfg)) != n {
		t.Fatal("lost customers")
	}
}

// Past the dynamic-field limit, and for a value its mapping refuses, a
// value is kept unindexed instead of failing the document: moved to the
// unindexed twin, where the document and the 360 view still show it, and
// counted, never silently left unsearchable where it stood.
func TestDynamicValuesOverTheLimitOrOfTheWrongTypeAreKeptUnindexed(t *testing.T) {
	t.Parallel()
	env := harness.Services(t)
	cfg := env.Config(t)
	cfg.MaxDynamicFields = 2
	p := env.Producer(t)
	produce(t, p, cfg.TopicPrefix, change(indexer.TopicCustomers, "c", 1, map[string]any{"name": "a", "vip": true, "score": 1}, 1))
	reg := env.StartIndexer(t, cfg)
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		return env.CustomerByIdentity(t, cfg, "crm_id", "1") != nil, "customer 1 not indexed"
	})
	produce(t, p, cfg.TopicPrefix,
		change(indexer.TopicCustomers, "c", 2, map[string]any{"name": "b", "vip": "maybe", "score": 2, "third": "x"}, 2),
		msg{indexer.TopicEvents, "2", `{"type":"track","messageId":"e1","userId":"2","event":"e","properties":{"flag":true}}`},
		msg{indexer.TopicEvents, "2", `{"type":"track","messageId":"e2","userId":"2","event":"e","properties":{"flag":"maybe"}}`},
	)
	var doc map[string]any
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		doc = env.CustomerByIdentity(t, cfg, "crm_id", "2")
		return doc != nil, "customer 2 not indexed"
	})
	attrs, _ := doc["attrs"].(map[string]any)
	un, _ := doc["attrs_unindexed"].(map[string]any)
	// vip is mapped boolean: OpenSearch refuses "maybe", so the value moves
	// to attrs_unindexed.
	if _, stays := attrs["vip"]; attrs["score"] != 2.0 || stays || un["vip"] != "maybe" || un["third"] != "x" {
		t.Fatalf("attrs = %v, attrs_unindexed = %v: want score indexed, vip (refused) and third (over the limit) unindexed", attrs, un)
	}
	if n := env.Count(t, cfg, "customers", map[string]any{"term": map[string]any{"attrs.vip": true}}); n != 1 {
		t.Errorf("%d customers match attrs.vip = true, want only customer 1", n)
	}
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		n := env.Count(t, cfg, "events", map[string]any{"term": map[string]any{"customer_id": doc["customer_id"]}})
		return n == 2, fmt.Sprintf("%d events stored, want both", n)
	})
	// The same holds for event properties: "maybe" after a boolean moves to
	// properties_unindexed.
	var e2 map[string]any
	if found, err := env.Store(t).GetSource(context.Background(), mapping.Events.Alias(cfg.IndexPrefix), "e2", &e2); err != nil || !found {
		t.Fatalf("event e2 not stored (found %v, err %v)", found, err)
	}
	if un, _ := e2["properties_unindexed"].(map[string]any); un["flag"] != "maybe" {
		t.Errorf("event e2: properties = %v, properties_unindexed = %v; want flag \"maybe\" unindexed", e2["properties"], e2["properties_unindexed"])
	}
	for _, c := range []struct {
		object, reason string
		want           float64
	}{{"attrs", "refused", 1}, {"attrs", "over_limit", 1}, {"properties", "refused", 1}} {
		if got := harness.Counter(t, reg, "cdp_indexer_demoted_fields_total", "object", c.object, "reason", c.reason); got < c.want {
			t.Errorf("cdp_indexer_demoted_fields_total{object=%s,reason=%s} = %v, want at least %v", c.object, c.reason, got, c.want)
		}
	}
}
