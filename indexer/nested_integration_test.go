package indexer_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"cdp/customer"
	"cdp/indexer"
	"cdp/testing/harness"
)

// A customer with more order items than a document may nest (OpenSearch
// refuses a document past its nested_objects limit, 20,000) is still
// indexed, with its newest orders and metrics from all of them, and keeps
// following its changes.
func TestACustomerPastTheNestedObjectLimitIsIndexedAndKeepsChanging(t *testing.T) {
	t.Parallel()
	env := harness.Services(t)
	cfg := env.Config(t)
	p := env.Producer(t)
	const orders, items = 3, 8000 // 24,003 nested objects in all
	msgs := []msg{change(indexer.TopicCustomers, "c", 5001, map[string]any{"name": "大客户"}, 1)}
	lsn := int64(10)
	for o := range orders {
		oid := 50_000 + o
		msgs = append(msgs, change(indexer.TopicOrders, "c", oid, map[string]any{"customer_id": 5001, "status": "paid", "total_amount": 100,
			"created_at": fmt.Sprintf("2026-0%d-01T00:00:00Z", o+1)}, lsn))
		lsn++
		for i := range items {
			msgs = append(msgs, change(indexer.TopicOrderItems, "c", oid*10_000+i, map[string]any{"order_id": oid, "sku": "s", "quantity": 1, "price": 1}, lsn))
			lsn++
		}
	}
	batch := make([]*sarama.ProducerMessage, 0, len(msgs))
	for _, m := range msgs {
		batch = append(batch, &sarama.ProducerMessage{Topic: cfg.TopicPrefix + m.topic, Key: sarama.StringEncoder(m.key), Value: sarama.StringEncoder(m.value)})
	}
	if err := p.SendMessages(batch); err != nil {
		t.Fatal(err)
	}
	env.StartIndexer(t, cfg)

	check := func(name string) {
		t.Helper()
		harness.Eventually(t, 90*time.Second, func() (bool, string) {
			doc := env.CustomerByIdentity(t, cfg, "crm_id", "5001")
			if doc == nil {
				return false, "no document yet"
			}
			m := doc["metrics"].(map[string]any)
			kept, nested := 0, 0
			for _, o := range doc["orders"].([]any) {
				kept++
				nested += 1 + len(o.(map[string]any)["items"].([]any))
			}
			if doc["name"] != name || m["order_count"] != float64(orders) || m["total_spend"] != float64(100*orders) ||
				m["orders_omitted"] != float64(orders-kept) || kept == 0 || nested > customer.NestedBudget {
				return false, fmt.Sprintf("name %v, metrics %v, %d orders kept with %d nested objects", doc["name"], m, kept, nested)
			}
			return true, ""
		})
	}
	check("大客户")
	produce(t, p, cfg.TopicPrefix, change(indexer.TopicCustomers, "u", 5001, map[string]any{"name": "还是大客户"}, lsn))
	check("还是大客户")
}
