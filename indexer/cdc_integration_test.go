package indexer_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"cdp/indexer"
	"cdp/testing/harness"
)

// msg is one Kafka message of a scenario.
type msg struct{ topic, key, value string }

// change builds a Debezium envelope (no schema wrapper) for a table row.
func change(topic, op string, id any, row map[string]any, lsn int64) msg {
	env := map[string]any{"op": op, "source": map[string]any{"lsn": lsn, "ts_ms": 1762000000000 + lsn}}
	r := map[string]any{"id": id}
	for k, v := range row {
		r[k] = v
	}
	if op == "d" {
		env["before"], env["after"] = r, nil
	} else {
		env["after"] = r
	}
	b, _ := json.Marshal(env)
	return msg{topic, fmt.Sprint(id), string(b)}
}

func produce(t testing.TB, p sarama.SyncProducer, prefix string, msgs ...msg) {
	t.Helper()
	for _, m := range msgs {
		var v sarama.Encoder
		if m.value != "" {
			v = sarama.StringEncoder(m.value)
		}
		if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: prefix + m.topic, Key: sarama.StringEncoder(m.key), Value: v}); err != nil {
			t.Fatal(err)
		}
	}
}

// summary is the part of a customer document the scenarios check.
func summary(doc map[string]any) map[string]any {
	if doc == nil {
		return nil
	}
	out := map[string]any{"name": doc["name"], "metrics": doc["metrics"]}
	var orders []string
	for _, o := range doc["orders"].([]any) {
		o := o.(map[string]any)
		var items []string
		for _, it := range o["items"].([]any) {
			it := it.(map[string]any)
			items = append(items, fmt.Sprintf("%v×%v@%v", it["sku"], it["quantity"], it["price"]))
		}
		sort.Strings(items)
		orders = append(orders, fmt.Sprintf("%v:%v:%v%v", o["order_id"], o["status"], o["total_amount"], items))
	}
	sort.Strings(orders)
	out["orders"] = orders
	return out
}

func TestCDCChangesBecomeExactlyTheExpectedDocuments(t *testing.T) {
	t.Parallel()
	env := harness.Services(t)
	cfg := env.Config(t)
	p := env.Producer(t)
	const (
		C = indexer.TopicCustomers
		O = indexer.TopicOrders
		I = indexer.TopicOrderItems
	)
	decimalSchema := func(id, customerID int, amountBase64 string, lsn int) msg {
		v := fmt.Sprintf(`{"schema":{"type":"struct","fields":[{"field":"after","type":"struct","fields":[
			{"field":"total_amount","type":"bytes","name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2"}},
			{"field":"created_at","type":"int64","name":"io.debezium.time.Timestamp"}]}]},
			"payload":{"after":{"id":%d,"customer_id":%d,"status":"paid","total_amount":%q,"created_at":1762000000000},
			"source":{"lsn":%d,"ts_ms":1762000000000},"op":"c"}}`, id, customerID, amountBase64, lsn)
		return msg{O, fmt.Sprint(id), v}
	}
	// Items before their order, orders before their customer; a duplicate;
	// an older update after a newer one; a delete then an older create; an
	// order moved between customers; decimals as numbers and as base64.
	produce(t, p, cfg.TopicPrefix,
		change(I, "c", 11, map[string]any{"order_id": 1, "sku": "p-1", "quantity": 2, "price": 10.5}, 10),
		change(I, "c", 12, map[string]any{"order_id": 1, "sku": "p-2", "quantity": 1, "price": 99}, 11),
		change(O, "c", 1, map[string]any{"customer_id": 2001, "status": "paid", "total_amount": 120, "created_at": "2026-11-01T10:00:00Z"}, 20),
		change(O, "c", 1, map[string]any{"customer_id": 2001, "status": "paid", "total_amount": 120, "created_at": "2026-11-01T10:00:00Z"}, 20),
		decimalSchema(2, 2001, "TkM=", 21), // 200.35
		change(O, "c", 3, map[string]any{"customer_id": 2001, "status": "created", "total_amount": 5, "created_at": "2026-11-03T10:00:00Z"}, 22),
		change(C, "c", 2001, map[string]any{"name": "张三", "phone": "13800000000"}, 30),
		change(C, "u", 2001, map[string]any{"name": "张三丰", "phone": "13800000000"}, 50),
		change(C, "u", 2001, map[string]any{"name": "stale name", "phone": "13800000000"}, 40),
		change(O, "d", 4, map[string]any{"customer_id": 2001}, 300),
		change(O, "c", 4, map[string]any{"customer_id": 2001, "status": "paid", "total_amount": 1000, "created_at": "2026-11-01T10:00:00Z"}, 250),
		change(C, "c", 2002, map[string]any{"name": "李四"}, 31),
		change(O, "c", 5, map[string]any{"customer_id": 2001, "status": "paid", "total_amount": 7, "created_at": "2026-10-01T00:00:00Z"}, 60),
		change(O, "u", 5, map[string]any{"customer_id": 2002, "status": "paid", "total_amount": 7, "created_at": "2026-10-01T00:00:00Z"}, 61),
		change(C, "c", 2003, map[string]any{"name": "王五"}, 32),
		change(C, "d", 2003, nil, 70),
		msg{C, "2003", ""}, // the tombstone after a delete
	)
	env.StartIndexer(t, cfg)

	want := map[string]map[string]any{
		"2001": {"name": "张三丰", "orders": []string{"1:paid:120[p-1×2@10.5 p-2×1@99]", "2:paid:200.35[]", "3:created:5[]"},
			"metrics": map[string]any{"order_count": 2.0, "total_spend": 320.35, "first_order_at": "2025-11-01T12:26:40.000Z", "last_order_at": "2026-11-01T10:00:00.000Z"}},
		"2002": {"name": "李四", "orders": []string{"5:paid:7[]"},
			"metrics": map[string]any{"order_count": 1.0, "total_spend": 7.0, "first_order_at": "2026-10-01T00:00:00.000Z", "last_order_at": "2026-10-01T00:00:00.000Z"}},
		"2003": nil,
	}
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		for crm, w := range want {
			got := summary(env.CustomerByIdentity(t, cfg, "crm_id", crm))
			if !reflect.DeepEqual(got, w) {
				return false, fmt.Sprintf("customer %s:\n got  %v\n want %v", crm, got, w)
			}
		}
		return true, ""
	})
}
