package indexer_test

import (
	"cmp"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"cdp/indexer"
	"cdp/testing/harness"
)

// hostile is a message the indexer must dead-letter, with a word its
// reason must name.
type hostile struct {
	msg
	word string
}

// Every hostile class of value, each between valid messages of the same
// partition, through real Kafka: the valid messages are all indexed (the
// stream goes on past each hostile one), each hostile one is in the
// dead-letter topic exactly once with a reason naming its problem, and the
// 900 KB one is there truncated, with its size and source position, in a
// record under the broker's limit.
func TestEachHostileMessageIsDeadLetteredOnceAndTheStreamGoesOn(t *testing.T) {
	t.Parallel()
	env := harness.Services(t)
	cfg := env.Config(t)
	env.CreateTopics(t, cfg)
	const C, O = indexer.TopicCustomers, indexer.TopicOrders
	order := func(id int, amount any, lsn int64) msg {
		return change(O, "c", id, map[string]any{"customer_id": 9001, "status": "paid", "total_amount": amount, "created_at": "2026-11-01T10:00:00Z"}, lsn)
	}
	raw := func(topic, key, value string) msg { return msg{topic, key, value} }
	decimal := `{"schema":{"type":"struct","fields":[{"field":"after","type":"struct","fields":[
		{"field":"total_amount","type":"bytes","name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"100000000"}}]}]},
		"payload":{"after":{"id":8,"customer_id":9001,"status":"paid","total_amount":"AQ=="},"source":{"lsn":108,"ts_ms":1762000000108},"op":"c"}}`
	bigPrefix := `{"after":{"id":9006,"name":"`
	big := bigPrefix + strings.Repeat("<", 900<<10-len(bigPrefix)) // unterminated; JSON escapes '<' six-fold

	// One partition of each CDC topic: valid and hostile messages in turn.
	stream := []any{
		change(C, "c", 9001, map[string]any{"name": "a"}, 1),
		hostile{raw(C, "9100", `{"after":{"id":true,"name":"x"},"source":{"lsn":2,"ts_ms":1762000000002},"op":"c"}`), "column id: want a string"},
		change(C, "c", 9002, map[string]any{"name": "b"}, 3),
		hostile{change(C, "c", 9003, map[string]any{"name": "c", "email": 12345}, 4), "column email: want a string"},
		change(C, "c", 9004, map[string]any{"name": "d"}, 5),
		hostile{raw(C, "9005", " \n\t "), "blank"},
		change(C, "c", 9005, map[string]any{"name": "e"}, 7),
		hostile{raw(C, "9006", big), "invalid JSON"},
		change(C, "c", 9007, map[string]any{"name": "g"}, 9),

		order(1, 100, 101),
		hostile{order(2, "NaN", 102), "not a finite number"},
		order(3, 20, 103),
		hostile{order(4, "Infinity", 104), "not a finite number"},
		hostile{order(5, "-Infinity", 105), "not a finite number"},
		hostile{order(6, 1.7e308, 106), "out of range"},
		hostile{order(7, 1.7e308, 107), "out of range"},
		hostile{raw(O, "8", decimal), "scale 100000000"},
		hostile{change(O, "c", 9, map[string]any{"customer_id": 9001, "status": "paid", "total_amount": 1, "created_at": int64(9223372036854775807)}, 109), "outside the years"},
		order(10, 3, 110),
	}
	type where struct {
		topic     string
		partition int32
		offset    int64
	}
	want := map[where]hostile{}
	p := partitionProducer(t, env)
	for _, x := range stream {
		m, valid := x.(msg)
		if h, ok := x.(hostile); ok {
			m = h.msg
		}
		pm := &sarama.ProducerMessage{Topic: cfg.Topic(m.topic), Partition: 0, Key: sarama.StringEncoder(m.key), Value: sarama.StringEncoder(m.value)}
		if _, _, err := p.SendMessage(pm); err != nil {
			t.Fatal(err)
		}
		if !valid {
			want[where{pm.Topic, pm.Partition, pm.Offset}] = x.(hostile)
		}
	}
	env.StartIndexer(t, cfg)

	harness.Eventually(t, 60*time.Second, func() (bool, string) {
		for _, crm := range []string{"9002", "9004", "9005", "9007"} {
			if env.CustomerByIdentity(t, cfg, "crm_id", crm) == nil {
				return false, "customer " + crm + " not indexed"
			}
		}
		got := summary(env.CustomerByIdentity(t, cfg, "crm_id", "9001"))
		if got == nil {
			return false, "customer 9001 not indexed"
		}
		spend := got["metrics"].(map[string]any)["total_spend"]
		orders := []string{"10:paid:3[]", "1:paid:100[]", "3:paid:20[]"} // sorted as text
		return reflect.DeepEqual(got["orders"], orders) && spend == 123.0,
			fmt.Sprintf("customer 9001: orders %v spending %v, want %v spending 123", got["orders"], spend, orders)
	})
	env.WaitIdle(t, cfg, 60*time.Second) // every dead letter is written before its offset is committed

	seen := map[where]bool{}
	for _, d := range env.DeadLetters(t, cfg) {
		w := where{d.Topic, d.Partition, d.Offset}
		h, ok := want[w]
		switch {
		case !ok:
			t.Errorf("unexpected dead letter: %.300s", d.Raw)
			continue
		case seen[w]:
			t.Errorf("dead-lettered twice: %.300s", d.Raw)
		}
		seen[w] = true
		if d.Key != h.key || d.Size != len(h.value) || !strings.Contains(d.Reason, h.word) {
			t.Errorf("dead letter of %v: key %q, size %d, reason %q: want key %q, size %d, a reason naming %q",
				w, d.Key, d.Size, d.Reason, h.key, len(h.value), h.word)
		}
		if len(h.value) <= 64<<10 {
			if d.Truncated || d.Value != h.value {
				t.Errorf("dead letter of %v: value %.100q (truncated %v), want the whole message", w, d.Value, d.Truncated)
			}
			continue
		}
		if !d.Truncated || len(d.Value) == 0 || len(d.Value) > 64<<10 || !strings.HasPrefix(h.value, d.Value) || d.SHA256 == "" {
			t.Errorf("dead letter of the %d-byte message: %d bytes kept, truncated %v, sha256 %q: want its first 64 KiB at most, marked truncated",
				len(h.value), len(d.Value), d.Truncated, d.SHA256)
		}
		if len(d.Raw) > 512<<10 {
			t.Errorf("dead letter of %d bytes, want it well under the broker's 1 MiB", len(d.Raw))
		}
	}
	for w, h := range want {
		if !seen[w] {
			t.Errorf("not dead-lettered (%s): %v key %q", h.word, w, h.key)
		}
	}
}

// partitionProducer is a producer that sends each message to the
// partition it names.
func partitionProducer(t *testing.T, env *harness.Env) sarama.SyncProducer {
	t.Helper()
	kc := indexer.KafkaConfig("cdp-test-hostile")
	kc.Producer.Partitioner = sarama.NewManualPartitioner
	p, err := sarama.NewSyncProducer(env.KafkaBrokers, kc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// A dead-letter topic whose records may be at most 20 KB (its
// max.message.bytes): the broker refuses the truncated record of a 100 KB
// message for good, and the indexer writes it without the value instead
// of retrying for ever; the stream goes on.
func TestADeadLetterTheBrokerRefusesAsTooLargeIsWrittenWithoutItsValue(t *testing.T) {
	t.Parallel()
	env := harness.Services(t)
	cfg := env.Config(t)
	admin, err := sarama.NewClusterAdmin(env.KafkaBrokers, indexer.KafkaConfig("cdp-test-admin"))
	if err != nil {
		t.Fatal(err)
	}
	limit := "20000"
	err = admin.CreateTopic(cfg.Topic(indexer.TopicDLQ), &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: -1,
		ConfigEntries: map[string]*string{"max.message.bytes": &limit}}, false)
	admin.Close()
	if err != nil {
		t.Fatal(err)
	}
	env.CreateTopics(t, cfg)
	big := `{"after":{"id":9501,"name":"` + strings.Repeat("x", 100<<10)
	p := partitionProducer(t, env)
	var at *sarama.ProducerMessage
	for _, m := range []msg{{indexer.TopicCustomers, "9501", big}, change(indexer.TopicCustomers, "c", 9502, map[string]any{"name": "after"}, 2)} {
		pm := &sarama.ProducerMessage{Topic: cfg.Topic(m.topic), Partition: 0, Key: sarama.StringEncoder(m.key), Value: sarama.StringEncoder(m.value)}
		if _, _, err := p.SendMessage(pm); err != nil {
			t.Fatal(err)
		}
		at = cmp.Or(at, pm)
	}
	metrics := env.StartIndexer(t, cfg)
	harness.Eventually(t, 60*time.Second, func() (bool, string) {
		return env.CustomerByIdentity(t, cfg, "crm_id", "9502") != nil, "customer 9502, after the big message, not indexed"
	})
	env.WaitIdle(t, cfg, 60*time.Second)

	ds := env.DeadLetters(t, cfg)
	if len(ds) != 1 {
		t.Fatalf("%d dead letters, want the big message's one", len(ds))
	}
	d := ds[0]
	if d.Topic != at.Topic || d.Partition != at.Partition || d.Offset != at.Offset || d.Key != "9501" || d.Size != len(big) ||
		!d.ValueOmitted || d.Value != "" || d.SHA256 == "" || !strings.Contains(d.Reason, "invalid JSON") {
		t.Fatalf("dead letter %s: want the message's position, key, size, hash and reason, without its value", d.Raw)
	}
	if n := harness.Counter(t, metrics, "cdp_indexer_dead_letters_truncated_total", "part", "value_omitted"); n != 1 {
		t.Fatalf("%v dead letters counted written without their value, want 1", n)
	}
}
