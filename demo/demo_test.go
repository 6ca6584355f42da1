package demo_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
	"unicode"

	"cdp/demo"
	"cdp/indexer"
)

func TestTheDemoIsReproducibleAndHoldsChineseAndLatinNamesOrdersWithItemsAndRecentEvents(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	cfg := demo.Config{Customers: 500, Seed: 1, Now: now}
	topic := func(s string) string { return "demo." + s }
	a, b := demo.Messages(cfg, topic), demo.Messages(cfg, topic)
	if len(a) != len(b) {
		t.Fatalf("two runs give %d and %d messages", len(a), len(b))
	}
	for i := range a {
		va, _ := a[i].Value.Encode()
		vb, _ := b[i].Value.Encode()
		if a[i].Topic != b[i].Topic || !bytes.Equal(va, vb) {
			t.Fatalf("message %d differs between two runs", i)
		}
	}
	count := map[string]int{}
	var chinese, latin, recentOrders int
	phones := map[string]bool{}
	for _, m := range a {
		v, _ := m.Value.Encode()
		var doc map[string]any
		if err := json.Unmarshal(v, &doc); err != nil {
			t.Fatal(err)
		}
		count[m.Topic]++
		after, _ := doc["after"].(map[string]any)
		switch m.Topic {
		case topic(indexer.TopicCustomers):
			name := after["name"].(string)
			if unicode.Is(unicode.Han, []rune(name)[0]) {
				chinese++
			} else {
				latin++
			}
			phones[after["phone"].(string)] = true
		case topic(indexer.TopicOrders):
			at, err := time.Parse(time.RFC3339, after["created_at"].(string))
			if err != nil || at.After(now) || at.Before(now.AddDate(-1, 0, -1)) {
				t.Fatalf("order time %v (%v) outside the last year", after["created_at"], err)
			}
			if now.Sub(at) < 30*24*time.Hour && after["status"] == "paid" {
				recentOrders++
			}
		case topic(indexer.TopicEvents):
			at, err := time.Parse(time.RFC3339, doc["timestamp"].(string))
			if err != nil || now.Sub(at) > 31*24*time.Hour {
				t.Fatalf("event time %v (%v) outside the last 30 days", doc["timestamp"], err)
			}
		}
	}
	if count[topic(indexer.TopicCustomers)] != 500 || len(phones) != 500 {
		t.Fatalf("%d customer rows, %d distinct phones, want 500 each", count[topic(indexer.TopicCustomers)], len(phones))
	}
	if chinese < 250 || latin < 75 {
		t.Fatalf("%d Chinese and %d Latin names of 500", chinese, latin)
	}
	if count[topic(indexer.TopicOrders)] < 500 || count[topic(indexer.TopicOrderItems)] < count[topic(indexer.TopicOrders)] ||
		count[topic(indexer.TopicEvents)] < 500 || recentOrders == 0 {
		t.Fatalf("too thin: %v, %d paid orders in the last 30 days", count, recentOrders)
	}
}
