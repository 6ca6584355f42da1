package indexer_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"cdp/indexer"
	"cdp/testing/harness"
)

// BenchmarkMergeOfAProfileWith10000Events measures what issue 11 asks the
// closing note to state: the time from an identify that merges an
// anonymous profile holding 10,000 events into a CRM customer until every
// event is under the survivor and the merged-away document is gone.
//
//	go test -run '^$' -bench MergeOfAProfileWith10000Events -benchtime 1x ./indexer/
func BenchmarkMergeOfAProfileWith10000Events(b *testing.B) {
	const events = 10000
	env := harness.Services(b)
	cfg := env.Config(b)
	p := env.Producer(b)
	env.StartIndexer(b, cfg)
	for i := range b.N {
		dev, crm := fmt.Sprintf("bench-dev-%d", i), fmt.Sprintf("B-%d", i)
		msgs := make([]*sarama.ProducerMessage, 0, events+1)
		msgs = append(msgs, &sarama.ProducerMessage{Topic: cfg.Topic(indexer.TopicEvents), Key: sarama.StringEncoder(crm),
			Value: sarama.StringEncoder(fmt.Sprintf(`{"type":"identify","messageId":"b-crm-%d","timestamp":"2026-11-20T07:00:00Z","userId":%q,"anonymousId":"%s-crm"}`, i, crm, dev))})
		for j := range events {
			v, _ := json.Marshal(map[string]any{"type": "track", "event": "view", "messageId": fmt.Sprintf("b-%d-%d", i, j),
				"timestamp": time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC).Add(time.Duration(j) * time.Second).Format(time.RFC3339), "anonymousId": dev})
			msgs = append(msgs, &sarama.ProducerMessage{Topic: cfg.Topic(indexer.TopicEvents), Key: sarama.StringEncoder(dev), Value: sarama.ByteEncoder(v)})
		}
		if err := p.SendMessages(msgs); err != nil {
			b.Fatal(err)
		}
		var anonID, crmID string
		harness.Eventually(b, 120*time.Second, func() (bool, string) {
			a, c := env.CustomerByIdentity(b, cfg, "anonymous_id", dev), env.CustomerByIdentity(b, cfg, "crm_id", crm)
			if a == nil || c == nil {
				return false, "profiles not indexed yet"
			}
			anonID, crmID = a["customer_id"].(string), c["customer_id"].(string)
			n := env.Count(b, cfg, "events", map[string]any{"term": map[string]any{"customer_id": anonID}})
			return n == events, fmt.Sprintf("%d of %d events indexed", n, events)
		})
		b.ResetTimer()
		start := time.Now()
		produce(b, p, cfg.TopicPrefix, msg{indexer.TopicEvents, crm, fmt.Sprintf(`{"type":"identify","messageId":"b-merge-%d","timestamp":"2026-11-20T12:00:00Z","userId":%q,"anonymousId":%q}`, i, crm, dev)})
		harness.Eventually(b, 120*time.Second, func() (bool, string) {
			moved := env.Count(b, cfg, "events", map[string]any{"term": map[string]any{"customer_id": crmID}})
			left := env.Count(b, cfg, "events", map[string]any{"term": map[string]any{"customer_id": anonID}})
			doc := env.CustomerByIdentity(b, cfg, "anonymous_id", dev)
			return moved == events+2 && left == 0 && doc != nil && doc["customer_id"] == crmID,
				fmt.Sprintf("%d events on the survivor, %d left", moved, left)
		})
		b.StopTimer()
		b.ReportMetric(time.Since(start).Seconds(), "s/merge")
		b.ReportMetric(float64(events)/time.Since(start).Seconds(), "events_moved/s")
	}
}
