package indexer_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"cdp/indexer"
	"cdp/testing/harness"
)

// sourceBatches returns how many source batches the indexer applied and
// how many of them held more than one message (cdp_indexer_batch_messages
// of the sources lanes, whose first bucket is 1).
func sourceBatches(t *testing.T, g prometheus.Gatherer) (batches, several uint64) {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "cdp_indexer_batch_messages" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "lane" && strings.HasPrefix(l.GetValue(), "sources-") {
					h := m.GetHistogram()
					batches += h.GetSampleCount()
					several += h.GetSampleCount()
					if b := h.GetBucket(); len(b) > 0 && b[0].GetUpperBound() == 1 {
						several -= b[0].GetCumulativeCount()
					}
				}
			}
		}
	}
	return batches, several
}

// CONTRACT §6: the profiles that come out depend only on the messages, not
// on how they were batched. A login (identify with userId and anonymousId)
// then a track of the same device make one customer, whether the two land
// in one batch or in two.
func TestALoginThenATrackOfItsDeviceAreOneCustomerWhateverTheBatchSize(t *testing.T) {
	for _, tc := range []struct {
		name      string
		batchSize int
		together  bool // whether the two messages must share a batch
	}{
		{"in one batch", 100, true},
		{"one message a batch", 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := harness.Services(t)
			cfg := env.Config(t)
			cfg.BatchSize = tc.batchSize
			// Both messages are in the partition before the indexer starts,
			// and it waits long enough to take them together when it may.
			cfg.BatchWait = time.Second
			env.CreateTopics(t, cfg)
			p := env.Producer(t)
			// One Kafka key, so one partition, in this order.
			produce(t, p, cfg.TopicPrefix,
				msg{indexer.TopicEvents, "u-1001", `{"type":"identify","messageId":"i-1","timestamp":"2026-11-20T08:00:00Z",
					"userId":"u-1001","anonymousId":"dev-1","traits":{"name":"张三"}}`},
				msg{indexer.TopicEvents, "u-1001", `{"type":"track","messageId":"t-1","timestamp":"2026-11-20T08:00:01Z",
					"anonymousId":"dev-1","event":"view_product"}`},
			)
			reg := env.StartIndexer(t, cfg)

			want := []string{"anonymous_id:dev-1", "crm_id:u-1001"}
			var cid any
			harness.Eventually(t, 30*time.Second, func() (bool, string) {
				doc := env.CustomerByIdentity(t, cfg, "crm_id", "u-1001")
				if doc == nil {
					return false, "no customer holds u-1001"
				}
				cid = doc["customer_id"]
				if got := docIdentities(doc); !slices.Equal(got, want) {
					return false, fmt.Sprintf("u-1001's customer %v has identities %v, want %v", cid, got, want)
				}
				n := env.Count(t, cfg, "events", map[string]any{"bool": map[string]any{"filter": []any{
					map[string]any{"term": map[string]any{"customer_id": cid}},
					map[string]any{"terms": map[string]any{"event_id": []string{"i-1", "t-1"}}},
				}}})
				return n == 2, fmt.Sprintf("%d of the two events on %v", n, cid)
			})
			// Only two messages exist, so a batch of more than one held
			// both (a rebalance may replay them, which changes nothing).
			harness.Eventually(t, 30*time.Second, func() (bool, string) {
				b, several := sourceBatches(t, reg)
				return b > 0 && (several > 0) == tc.together, fmt.Sprintf("%d source batches, %d of several messages; want the two together: %v", b, several, tc.together)
			})
			if doc := env.CustomerByIdentity(t, cfg, "anonymous_id", "dev-1"); doc == nil || doc["customer_id"] != cid {
				t.Errorf("dev-1 is on %v, want u-1001's %v", doc["customer_id"], cid)
			}
			if all := env.AllCustomers(t, cfg); len(all) != 1 {
				t.Errorf("%d customers, want the one", len(all))
			}
			recs := identityRecords(t, env, cfg)
			if len(recs) != 2 || recs["crm_id:u-1001"] != cid || recs["anonymous_id:dev-1"] != cid {
				t.Errorf("identity index %v, want u-1001 and dev-1 on %v", recs, cid)
			}
			if n := env.Count(t, cfg, "events", map[string]any{"match_all": map[string]any{}}); n != 2 {
				t.Errorf("%d events stored, want the two", n)
			}
		})
	}
}
