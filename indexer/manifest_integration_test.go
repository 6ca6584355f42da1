package indexer_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"cdp/customer"
	"cdp/indexer"
	"cdp/mapping"
	"cdp/schema"
	"cdp/store"
	"cdp/testing/harness"
)

// A document records the rows it was built from, and the next rebuild
// reads those and the rows its markers name by id. These are the cases a
// row id alone cannot name: each step must end in exactly the document a
// rebuild from a search of every row gives.
func TestRebuildsByIDSeeEveryRowTheCustomerHolds(t *testing.T) {
	t.Parallel()
	env := harness.Services(t)
	cfg := env.Config(t)
	p := env.Producer(t)
	const (
		C = indexer.TopicCustomers
		O = indexer.TopicOrders
		I = indexer.TopicOrderItems
	)
	order := func(op string, id, cust int, total float64, lsn int64) msg {
		return change(O, op, id, map[string]any{"customer_id": cust, "status": "paid", "total_amount": total, "created_at": "2026-11-01T10:00:00Z"}, lsn)
	}
	item := func(id, ord int, sku string, lsn int64) msg {
		return change(I, "c", id, map[string]any{"order_id": ord, "sku": sku, "quantity": 1, "price": 1}, lsn)
	}
	reg := env.StartIndexer(t, cfg)
	wait := func(step string, want map[string][]string) {
		t.Helper()
		harness.Eventually(t, 30*time.Second, func() (bool, string) {
			for crm, w := range want {
				doc := env.CustomerByIdentity(t, cfg, "crm_id", crm)
				if doc == nil {
					return false, step + ": no document of " + crm + " yet"
				}
				if _, ok := doc["orders"].([]any); !ok {
					doc["orders"] = []any{}
				}
				if got := summary(doc)["orders"].([]string); !reflect.DeepEqual(got, w) {
					return false, fmt.Sprintf("%s: customer %s has orders %v, want %v", step, crm, got, w)
				}
			}
			return true, ""
		})
	}
	byID := func() float64 { return harness.Counter(t, reg, "cdp_indexer_rebuilds_total", "how", "by_id") }

	produce(t, p, cfg.TopicPrefix,
		change(C, "c", 3001, map[string]any{"name": "赵一"}, 1),
		change(C, "c", 3002, map[string]any{"name": "钱二"}, 2),
		order("c", 31, 3001, 10, 3), item(311, 31, "a", 4),
		order("c", 33, 3002, 30, 5),
	)
	wait("first build", map[string][]string{"3001": {"31:paid:10[a×1@1]"}, "3002": {"33:paid:30[]"}})
	// An item of an order already there: named in its customer's marker.
	produce(t, p, cfg.TopicPrefix, item(331, 33, "c", 6))
	wait("an item after its order", map[string][]string{"3002": {"33:paid:30[c×1@1]"}})

	// Items before their order, for a customer whose document exists:
	// the order's parking record names them.
	before := byID()
	parked := harness.Counter(t, reg, "cdp_indexer_parked_total")
	produce(t, p, cfg.TopicPrefix, item(321, 32, "b1", 7), item(322, 32, "b2", 8))
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		n := harness.Counter(t, reg, "cdp_indexer_parked_total")
		return n >= parked+2, fmt.Sprintf("%v items parked", n-parked)
	})
	produce(t, p, cfg.TopicPrefix, order("c", 32, 3001, 20, 9))
	wait("an order after its items", map[string][]string{"3001": {"31:paid:10[a×1@1]", "32:paid:20[b1×1@1 b2×1@1]"}})
	if byID() <= before {
		t.Fatalf("the rebuild after a new order did not read by id (rebuilds by id %v → %v)", before, byID())
	}

	// An order moved in from another customer brings its items.
	produce(t, p, cfg.TopicPrefix, order("u", 33, 3001, 30, 10))
	wait("an order moved in", map[string][]string{
		"3001": {"31:paid:10[a×1@1]", "32:paid:20[b1×1@1 b2×1@1]", "33:paid:30[c×1@1]"}, "3002": nil})

	// An order deleted and created again gets its items back.
	produce(t, p, cfg.TopicPrefix, change(O, "d", 31, map[string]any{"customer_id": 3001}, 11))
	wait("an order deleted", map[string][]string{"3001": {"32:paid:20[b1×1@1 b2×1@1]", "33:paid:30[c×1@1]"}})
	produce(t, p, cfg.TopicPrefix, order("c", 31, 3001, 11, 12))
	wait("an order created again", map[string][]string{
		"3001": {"31:paid:11[a×1@1]", "32:paid:20[b1×1@1 b2×1@1]", "33:paid:30[c×1@1]"}})

	// A change that changes nothing is not written again.
	doc := env.CustomerByIdentity(t, cfg, "crm_id", "3001")
	cid, _ := doc["customer_id"].(string)
	if _, ok := doc[schema.RebuildField]; !ok {
		t.Fatalf("document %s has no %s", cid, schema.RebuildField)
	}
	st := env.Store(t)
	index := mapping.Customers.Alias(cfg.IndexPrefix)
	at, err := st.Versions(context.Background(), index, []string{cid})
	if err != nil {
		t.Fatal(err)
	}
	unchanged := harness.Counter(t, reg, "cdp_indexer_rebuilds_total", "how", "unchanged")
	produce(t, p, cfg.TopicPrefix, item(311, 31, "a", 4)) // a replay
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		n := harness.Counter(t, reg, "cdp_indexer_rebuilds_total", "how", "unchanged")
		return n > unchanged, "the replay's rebuild has not happened"
	})
	now, err := st.Versions(context.Background(), index, []string{cid})
	if err != nil {
		t.Fatal(err)
	}
	if now[cid] != at[cid] {
		t.Fatalf("a replay rewrote the document: %v → %v", at[cid], now[cid])
	}
}

// A deleted customer's events leave the index with it, a late event
// stamped before the delete too; an event after the delete brings the
// customer back with only the events from then on.
func TestADeletedCustomersEventsLeaveTheIndexWithIt(t *testing.T) {
	t.Parallel()
	env := harness.Services(t)
	cfg := env.Config(t)
	p := env.Producer(t)
	reg := env.StartIndexer(t, cfg)
	// change() stamps a change at 1762000000000 + lsn ms (2025-11-01T12:26:40Z).
	produce(t, p, cfg.TopicPrefix,
		change(indexer.TopicCustomers, "c", 4001, map[string]any{"name": "孙三"}, 1),
		trackMsg("del-e1", "dev-4001", "4001", "2025-10-01T00:00:00Z"),
		trackMsg("del-e2", "dev-4001", "4001", "2025-10-02T00:00:00Z"),
	)
	doc := waitCustomer(t, env, cfg, "crm_id", "4001", nil)
	cid := doc["customer_id"].(string)
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		n := eventsOf(t, env, cfg, cid)
		return n == 2, fmt.Sprintf("%d events of %s", n, cid)
	})

	produce(t, p, cfg.TopicPrefix, change(indexer.TopicCustomers, "d", 4001, nil, 100))
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		if d := env.CustomerByIdentity(t, cfg, "crm_id", "4001"); d != nil {
			return false, "the deleted customer is still found"
		}
		n := eventsOf(t, env, cfg, cid)
		return n == 0, fmt.Sprintf("%d events of the deleted customer %s", n, cid)
	})

	stored := harness.Counter(t, reg, "cdp_indexer_applied_total", "kind", "event")
	produce(t, p, cfg.TopicPrefix, trackMsg("del-e3", "dev-4001", "4001", "2025-10-03T00:00:00Z"))
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		if n := harness.Counter(t, reg, "cdp_indexer_applied_total", "kind", "event"); n <= stored {
			return false, "the late event is not stored yet"
		}
		n := eventsOf(t, env, cfg, cid)
		return n == 0, fmt.Sprintf("%d events of the deleted customer after a late one", n)
	})
	if d := env.CustomerByIdentity(t, cfg, "crm_id", "4001"); d != nil {
		t.Fatalf("an event from before the delete brought the customer back: %v", d)
	}

	produce(t, p, cfg.TopicPrefix, trackMsg("del-e4", "dev-4001", "4001", "2026-01-01T00:00:00Z"))
	waitCustomer(t, env, cfg, "crm_id", "4001", nil)
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		n := eventsOf(t, env, cfg, cid)
		return n == 1, fmt.Sprintf("%d events of the customer back, want the one after the delete", n)
	})
}

// A trait an identify sets, and a paid order, reach a document built
// before them through rebuilds by id.
func TestATraitAndAPaidOrderReachADocumentBuiltBefore(t *testing.T) {
	t.Parallel()
	env := harness.Services(t)
	cfg := env.Config(t)
	p := env.Producer(t)
	reg := env.StartIndexer(t, cfg)
	produce(t, p, cfg.TopicPrefix, change(indexer.TopicCustomers, "c", 6001, map[string]any{"name": "周六"}, 1))
	waitCustomer(t, env, cfg, "crm_id", "6001", nil)
	before := harness.Counter(t, reg, "cdp_indexer_rebuilds_total", "how", "by_id")
	produce(t, p, cfg.TopicPrefix,
		msg{indexer.TopicEvents, "6001", `{"type":"identify","messageId":"t-6001","timestamp":"2026-11-20T08:00:00Z","userId":"6001","traits":{"vip_card":"gold-1"}}`},
		change(indexer.TopicOrders, "c", 60_001, map[string]any{"customer_id": 6001, "status": "paid", "total_amount": 42.5, "created_at": "2026-11-20T08:00:00Z"}, 2))
	waitCustomer(t, env, cfg, "crm_id", "6001", func(doc map[string]any) (bool, string) {
		attrs, _ := doc["attrs"].(map[string]any)
		m := doc["metrics"].(map[string]any)
		return attrs["vip_card"] == "gold-1" && m["total_spend"] == 42.5, fmt.Sprintf("attrs %v, metrics %v", attrs, m)
	})
	if n := harness.Counter(t, reg, "cdp_indexer_rebuilds_total", "how", "by_id"); n <= before {
		t.Fatalf("no rebuild by id (%v → %v)", before, n)
	}
}

// An item's marker can arrive before its order's (the item's lane found
// the order stored and marked the customer first): the rebuild takes the
// order with the item, and the order's own marker, later, finds it there.
func TestAnItemMarkedBeforeItsOrderBringsTheOrder(t *testing.T) {
	t.Parallel()
	env := harness.Services(t)
	cfg := env.Config(t)
	p := env.Producer(t)
	env.StartIndexer(t, cfg)
	produce(t, p, cfg.TopicPrefix, change(indexer.TopicCustomers, "c", 7001, map[string]any{"name": "吴七"}, 1))
	cid := waitCustomer(t, env, cfg, "crm_id", "7001", nil)["customer_id"].(string)

	// The rows as stage 1 writes them; only the item's marker is sent.
	rows := mapping.Rows.Alias(cfg.IndexPrefix)
	order := customer.Row{RID: "order:70001", Kind: customer.KindOrder, Key: "70001", CustomerID: cid, Pos: 5, TS: 5,
		Data: map[string]any{"status": "paid", "total_amount": 9.0, "created_at": "2026-11-01T10:00:00Z"}}
	item := customer.Row{RID: "item:700011", Kind: customer.KindItem, Key: "700011", OrderID: "70001", Pos: 6, TS: 6,
		Data: map[string]any{"sku": "z", "quantity": 1.0, "price": 1.0}}
	var ops []store.Op
	for _, r := range []customer.Row{order, item} {
		ops = append(ops, store.Op{Action: store.Index, Index: rows, ID: r.RID, Version: r.Pos, VersionType: "external_gte", Body: r})
	}
	verdicts, err := env.Store(t).Bulk(context.Background(), ops)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range verdicts {
		if !v.OK() {
			t.Fatalf("write %s: %+v", ops[i].ID, v)
		}
	}
	produce(t, p, cfg.TopicPrefix, msg{indexer.TopicDirty, cid, fmt.Sprintf(`{"customers":[%q],"rows":{%q:["item:700011"]}}`, cid, cid)})
	waitCustomer(t, env, cfg, "crm_id", "7001", func(doc map[string]any) (bool, string) {
		got := summary(doc)["orders"]
		return reflect.DeepEqual(got, []string{"70001:paid:9[z×1@1]"}), fmt.Sprintf("orders %v", got)
	})
}
