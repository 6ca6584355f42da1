package chaos_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"cdp/config"
	"cdp/indexer"
	"cdp/mapping"
	"cdp/testing/harness"
	"cdp/testing/workload"
)

// Poison messages of every kind in the middle of a stream: each one ends
// up in the dead-letter topic with its source topic, partition, offset,
// key, value and a reason, and the rest of the stream is applied exactly.
// Poison changes are newer than anything else of their row, so applying
// one by mistake would show in the documents.
func TestPoisonMessagesAreDeadLetteredAndTheRestIsApplied(t *testing.T) {
	env := chaos(t)
	cfg := testConfig(t, env)
	d := dataset(t, 14, 300)
	m := d.Model()

	// Rows that exist at the end, with a customer that does.
	live := func(table, key string) bool { c := m.Row(table, key); return c != nil && !c.Deleted() }
	var custKey, orderKey, itemKey string
	for _, o := range m.LiveRows(workload.TableOrders) {
		if oc := m.Row(workload.TableOrders, o); live(workload.TableCustomers, oc.Order.CustomerID) {
			custKey, orderKey = oc.Order.CustomerID, o
			break
		}
	}
	for _, it := range m.LiveRows(workload.TableOrderItems) {
		if ic := m.Row(workload.TableOrderItems, it); live(workload.TableOrders, ic.Item.OrderID) &&
			live(workload.TableCustomers, m.Row(workload.TableOrders, ic.Item.OrderID).Order.CustomerID) {
			itemKey = it
			break
		}
	}
	if custKey == "" || itemKey == "" {
		t.Fatal("the dataset has no live customer with a live order and item")
	}

	lsn, ts := d.MaxLSN, d.LastTime
	next := func() (int64, int64) { lsn += 10; ts = ts.Add(time.Second); return lsn, ts.UnixMilli() }
	stamp := func() string { ts = ts.Add(time.Second); return ts.Format(time.RFC3339Nano) }
	// image is the Debezium envelope of a row's newest change, made newer
	// and changed by edit.
	image := func(table, key string, edit func(env, row map[string]any)) map[string]any {
		var env map[string]any
		if err := json.Unmarshal(workload.ChangeValue(m.Row(table, key)), &env); err != nil {
			t.Fatal(err)
		}
		l, ms := next()
		env["op"], env["before"], env["source"] = "u", nil, map[string]any{"lsn": l, "ts_ms": ms}
		row, _ := env["after"].(map[string]any)
		edit(env, row)
		return env
	}
	poison := func(topic string, key []byte, value any, word string) workload.Message {
		var b []byte
		switch v := value.(type) {
		case nil:
		case string:
			b = []byte(v)
		case []byte:
			b = v
		default:
			var err error
			if b, err = json.Marshal(v); err != nil {
				t.Fatal(err)
			}
		}
		return workload.Message{Topic: topic, Key: key, Value: b, Poison: word}
	}
	E, C, O, I := indexer.TopicEvents, indexer.TopicCustomers, indexer.TopicOrders, indexer.TopicOrderItems
	user := []byte(custKey)
	poisons := []workload.Message{
		// SDK events.
		poison(E, user, `{"type":"track","messageId":"poison-1",`, "JSON"),
		poison(E, user, `[1,2,3]`, "JSON"),
		poison(E, user, []byte{0xff, 0xfe, 0x00, '{'}, "JSON"),
		poison(E, user, nil, "empty"),
		poison(E, user, map[string]any{"type": "purchase", "messageId": "poison-2", "userId": custKey, "timestamp": stamp()}, "unknown type"),
		poison(E, user, map[string]any{"messageId": "poison-3", "userId": custKey, "event": "x", "timestamp": stamp()}, "type"),
		poison(E, nil, map[string]any{"type": "track", "messageId": "poison-4", "event": "view_product", "timestamp": stamp()}, "userId"),
		poison(E, user, map[string]any{"type": "track", "messageId": "poison-5", "userId": custKey, "event": "x", "timestamp": "yesterday"}, "timestamp"),
		poison(E, user, map[string]any{"type": "track", "messageId": "poison-6", "userId": custKey, "event": "x", "timestamp": ts.UnixMilli()}, "timestamp"),
		poison(E, user, map[string]any{"type": "track", "messageId": "poison-7", "userId": custKey, "timestamp": stamp()}, "event name"),
		poison(E, user, map[string]any{"type": "alias", "messageId": "poison-8", "userId": custKey, "timestamp": stamp()}, "previousId"),
		// CDC: unparsable, unknown or unapplicable operations.
		poison(C, user, `{"before":null,"after":{"id":`, "JSON"),
		poison(C, user, image(workload.TableCustomers, custKey, func(env, row map[string]any) { env["op"], row["name"] = "x", "POISON" }), "op"),
		poison(C, user, image(workload.TableCustomers, custKey, func(env, row map[string]any) { delete(env, "op"); row["name"] = "POISON" }), "op"),
		poison(C, nil, image(workload.TableCustomers, custKey, func(env, row map[string]any) { env["op"], env["after"] = "t", nil }), "truncate"),
		poison(C, user, image(workload.TableCustomers, custKey, func(env, row map[string]any) { env["after"] = nil }), "after"),
		poison(C, user, image(workload.TableCustomers, custKey, func(env, row map[string]any) {
			env["source"].(map[string]any)["lsn"], row["name"] = -5, "POISON"
		}), "lsn"),
		// CDC: wrong column types, on rows that exist.
		poison(C, user, image(workload.TableCustomers, custKey, func(env, row map[string]any) { row["birthday"] = 12.5 }), "birthday"),
		poison(C, user, image(workload.TableCustomers, custKey, func(env, row map[string]any) { row["name"] = map[string]any{"first": "x"} }), "name"),
		poison(O, []byte(orderKey), image(workload.TableOrders, orderKey, func(env, row map[string]any) { row["total_amount"] = "abc" }), "total_amount"),
		poison(O, []byte(orderKey), image(workload.TableOrders, orderKey, func(env, row map[string]any) { row["created_at"] = "not a time" }), "created_at"),
		poison(I, []byte(itemKey), image(workload.TableOrderItems, itemKey, func(env, row map[string]any) { row["quantity"] = true }), "quantity"),
		// CDC: missing keys and parents.
		poison(C, nil, image(workload.TableCustomers, custKey, func(env, row map[string]any) { delete(row, "id") }), "key"),
		poison(I, []byte(`{"sku":"p-1"}`), image(workload.TableOrderItems, itemKey, func(env, row map[string]any) { delete(row, "id") }), "key"),
		poison(O, []byte("7777777"), image(workload.TableOrders, orderKey, func(env, row map[string]any) { row["id"] = 7777777; delete(row, "customer_id") }), "customer_id"),
	}

	// An event whose property was first seen as a boolean, then sent as
	// "maybe". The contract dead-letters an event only for its type, its
	// ids, its JSON or its timestamp, so this one is applied: OpenSearch
	// refuses the value for the boolean mapping, and it moves to the
	// stored event's properties_unindexed. Both events are newer than anything else of the
	// customer, so an event dropped instead would show in last_seen_at.
	boolean := &workload.Event{Type: "track", MessageID: "gift-1", Timestamp: ts.Add(time.Hour), UserID: custKey, Name: "gift_selected", Properties: map[string]any{"gift_wrap": true}}
	maybe := &workload.Event{Type: "track", MessageID: "gift-2", Timestamp: ts.Add(2 * time.Hour), UserID: custKey, Name: "gift_selected", Properties: map[string]any{"gift_wrap": "maybe"}}
	m.ApplyEvent(boolean)
	m.ApplyEvent(maybe)

	// Spread the poison through the stream; the boolean event comes before
	// the "maybe" (same key, same partition, so in that order).
	r := rand.New(rand.NewPCG(14, 14))
	msgs := append([]workload.Message{}, d.Messages...)
	insert := func(pos int, x workload.Message) {
		msgs = append(msgs[:pos], append([]workload.Message{x}, msgs[pos:]...)...)
	}
	insert(len(msgs)/4, workload.EventMessage(boolean))
	insert(len(msgs)*3/4, workload.EventMessage(maybe))
	for _, p := range poisons {
		insert(r.IntN(len(msgs)+1), p)
	}
	d.Messages = msgs

	env.Bootstrap(t, cfg)
	env.CreateTopics(t, cfg)
	env.StartIndexer(t, cfg) // in this process, so that -race watches the indexer too
	env.Produce(t, cfg, d.Messages)
	env.WaitIdle(t, cfg, 3*time.Minute)

	if v := storedProperty(t, env, cfg, maybe.MessageID, "properties_unindexed", "gift_wrap"); v != "maybe" {
		t.Errorf("stored event %s: properties_unindexed.gift_wrap = %v, want \"maybe\", refused by the boolean mapping and kept unindexed", maybe.MessageID, v)
	}
	verify(t, env, cfg, d)
}

// storedProperty returns a key of an object of a stored event (nil when
// it has none).
func storedProperty(t *testing.T, env *harness.Env, cfg *config.Config, id, object, name string) any {
	t.Helper()
	var doc map[string]any
	found, err := env.Store(t).GetSource(context.Background(), mapping.Events.Alias(cfg.IndexPrefix), id, &doc)
	if err != nil || !found {
		t.Fatalf("event %s not stored (found %v, err %v)", id, found, err)
	}
	props, _ := doc[object].(map[string]any)
	return props[name]
}

// A change whose source block gives no position (neither source.lsn nor
// source.ts_ms) cannot be ordered against the other changes of its row
// (CONTRACT §1.2: by source.lsn, else source.ts_ms), so it must be
// dead-lettered. Applied with some other number as its position, it can
// beat every real change of the row and freeze it: here a later update
// (a higher LSN) must still win.
func TestChangeWithoutSourcePositionIsDeadLetteredNotAppliedAsNewest(t *testing.T) {
	env := chaos(t)
	cfg := testConfig(t, env)
	change := func(op, name string, source map[string]any) string {
		b, _ := json.Marshal(map[string]any{"op": op, "before": nil, "after": map[string]any{"id": 4242, "name": name},
			"source": source, "ts_ms": 1762000000123})
		return string(b)
	}
	C := indexer.TopicCustomers
	msgs := []workload.Message{
		{Topic: C, Key: []byte("4242"), Value: []byte(change("c", "first", map[string]any{"table": "customers", "lsn": 10, "ts_ms": 1762000000000}))},
		{Topic: C, Key: []byte("4242"), Value: []byte(change("u", "no position", map[string]any{"table": "customers"})), Poison: "source"},
		{Topic: C, Key: []byte("4242"), Value: []byte(change("u", "latest", map[string]any{"table": "customers", "lsn": 20, "ts_ms": 1762000001000}))},
	}
	env.Bootstrap(t, cfg)
	env.CreateTopics(t, cfg)
	env.StartIndexer(t, cfg)
	env.Produce(t, cfg, msgs)
	env.WaitIdle(t, cfg, time.Minute)
	if doc := env.CustomerByIdentity(t, cfg, "crm_id", "4242"); doc == nil || doc["name"] != "latest" {
		var name any
		if doc != nil {
			name = doc["name"]
		}
		t.Errorf("name = %v, want \"latest\" (lsn 20): the change without a source position took the envelope's ts_ms (%d) as its position, "+
			"which beats every LSN of the row, so the row no longer takes newer changes", name, 1762000000123)
	}
	env.ExpectedDeadLetters(t, cfg, msgs)
}

// Identifiers OpenSearch cannot take as a document id (over 512 bytes): a
// message id, a user id, a CDC primary key. Such a message must be
// dead-lettered like any message that cannot be applied, and the messages
// after it applied. The three cases run side by side, each with an
// indexer process of its own.
func TestOverlongIdentifiersAreDeadLetteredAndTheStreamGoesOn(t *testing.T) {
	env := chaos(t)
	long := strings.Repeat("x", 600)
	event := func(id, user string) string {
		b, _ := json.Marshal(map[string]any{"type": "track", "messageId": id, "userId": user, "event": "view_product", "timestamp": "2026-11-20T08:00:00Z"})
		return string(b)
	}
	customer := func(id string) string {
		b, _ := json.Marshal(map[string]any{"op": "c", "after": map[string]any{"id": id, "name": "x"}, "source": map[string]any{"lsn": 10, "ts_ms": 1762000000000}})
		return string(b)
	}
	type run struct {
		name string
		cfg  *config.Config
		msgs []workload.Message
	}
	var runs []run
	for _, tc := range []struct {
		name, topic, key, value string
	}{
		{"a 600-byte message id", indexer.TopicEvents, "2", event(long, "2")},
		{"a 600-byte user id", indexer.TopicEvents, long, event("m-long-user", long)},
		{"a 600-byte CDC key", indexer.TopicCustomers, long, customer(long)},
	} {
		r := run{name: tc.name, cfg: env.Config(t), msgs: []workload.Message{
			{Topic: indexer.TopicEvents, Key: []byte("1"), Value: []byte(event("m-before", "1"))},
			{Topic: tc.topic, Key: []byte(tc.key), Value: []byte(tc.value), Poison: "longer than"},
			{Topic: indexer.TopicEvents, Key: []byte("3"), Value: []byte(event("m-after", "3"))},
		}}
		r.cfg.ShutdownGrace = time.Second // a stuck process must not hold up the end of the test
		env.Bootstrap(t, r.cfg)
		env.CreateTopics(t, r.cfg)
		env.StartIndexerProcess(t, r.cfg, fmt.Sprintf("indexer-%d", len(runs)+1))
		env.Produce(t, r.cfg, r.msgs)
		runs = append(runs, r)
	}
	const patience = 20 * time.Second
	deadline := time.Now().Add(patience)
	stuck := map[string]string{}
	for _, r := range runs {
		for {
			p, err := env.Progress(r.cfg)
			if err == nil && p.Idle() {
				break
			}
			if time.Now().After(deadline) {
				stuck[r.name] = p.String()
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	for _, r := range runs {
		if p, ok := stuck[r.name]; ok {
			t.Errorf("%s: the indexer is stuck (%s after %s): OpenSearch refuses the whole bulk request (id longer than 512 bytes) "+
				"and the step retries it forever, so nothing after it is applied; want it dead-lettered and the stream to go on", r.name, p, patience)
			continue
		}
		env.ExpectedDeadLetters(t, r.cfg, r.msgs)
		for _, crm := range []string{"1", "3"} {
			if env.CustomerByIdentity(t, r.cfg, "crm_id", crm) == nil {
				t.Errorf("%s: customer %s missing", r.name, crm)
			}
		}
	}
}
