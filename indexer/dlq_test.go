package indexer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
)

// brokerLimit is the Kafka default message.max.bytes.
const brokerLimit = 1048588

func message(topic string, offset int64, key, value []byte) *sarama.ConsumerMessage {
	return &sarama.ConsumerMessage{Topic: topic, Partition: 2, Offset: offset, Key: key, Value: value}
}

func decodeLetter(t *testing.T, m *sarama.ProducerMessage) deadLetter {
	t.Helper()
	b, _ := m.Value.Encode()
	var d deadLetter
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dead letter is not JSON: %v", err)
	}
	return d
}

func TestADeadLetterFitsTheBrokersLimitWhateverTheMessage(t *testing.T) {
	// JSON escapes '<' and control characters in 6 bytes, and a value that
	// is not UTF-8 goes as base64: the worst cases of each.
	escaped := bytes.Repeat([]byte("<\x01"), 450<<10)
	binary := bytes.Repeat([]byte{0xff, 0xfe}, 450<<10)
	multibyte := bytes.Repeat([]byte("张"), 300<<10)
	tests := []struct {
		name       string
		key, value []byte
		reason     string
	}{
		{"900 KB that JSON escapes six-fold", []byte("k"), escaped, "invalid JSON"},
		{"900 KB that is not UTF-8", []byte("k"), binary, "invalid JSON"},
		{"900 KB of three-byte characters", []byte("k"), multibyte, "invalid JSON"},
		{"a 900 KB key and reason", escaped, []byte("{}"), "column name: want a string, got " + string(escaped)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rejected{message("t.cdc.customers", 41, tt.key, tt.value), tt.reason}
			m, cuts := deadLetterRecord("t.dlq", r, "now", fullForm)
			if size := m.ByteSize(2); size > brokerLimit/2 {
				t.Fatalf("record of %d bytes, want well under the broker's %d", size, brokerLimit)
			}
			if len(cuts) == 0 {
				t.Fatal("nothing reported cut")
			}
			d := decodeLetter(t, m)
			if d.Topic != r.msg.Topic || d.Partition != 2 || d.Offset != 41 || d.Size != len(tt.value) {
				t.Fatalf("record at %s/%d/%d of size %d, want the source position and size %d", d.Topic, d.Partition, d.Offset, d.Size, len(tt.value))
			}
			value := []byte(d.Value)
			if d.ValueBase64 != nil {
				value = d.ValueBase64
			}
			if !bytes.HasPrefix(tt.value, value) {
				t.Fatalf("value %.40q is not the message's beginning", value)
			}
			if cut := len(value) < len(tt.value); cut != d.Truncated || cut && len(value) > fullForm.value {
				t.Fatalf("%d of %d bytes kept, marked truncated %v", len(value), len(tt.value), d.Truncated)
			}
			if d.Truncated {
				sum := sha256.Sum256(tt.value)
				if d.SHA256 != hex.EncodeToString(sum[:]) {
					t.Fatalf("sha256 %q, want the whole value's", d.SHA256)
				}
			}
			if !strings.HasPrefix(tt.reason, strings.SplitN(d.Reason, " … (cut", 2)[0]) || len(d.Reason) > fullForm.reason+64 {
				t.Fatalf("reason of %d bytes %.60q, want the reason's beginning", len(d.Reason), d.Reason)
			}
			if len(tt.key) > fullForm.key && (d.KeySize != len(tt.key) || len(d.Key) > fullForm.key) {
				t.Fatalf("key of %d bytes, key_size %d: want it cut and its size given", len(d.Key), d.KeySize)
			}
		})
	}
}

func TestASmallDeadLetterHoldsTheWholeMessage(t *testing.T) {
	r := rejected{message("t.events", 7, []byte("u1"), []byte(`{"type":`)), "invalid JSON"}
	m, cuts := deadLetterRecord("t.dlq", r, "now", fullForm)
	d := decodeLetter(t, m)
	if len(cuts) != 0 || d.Truncated || d.ValueOmitted || d.SHA256 != "" || d.Value != `{"type":` || d.Size != 8 || d.Key != "u1" || d.Reason != "invalid JSON" {
		t.Fatalf("cuts %v, record %+v: want the message whole", cuts, d)
	}
}

// broker is a Kafka stand-in: it refuses a record over limit bytes, or a
// send of several records adding up to more than batchLimit (0: none), as too
// large, and the first transient sends with a leader moving.
type broker struct {
	sarama.SyncProducer
	limit, batchLimit, transient int

	mu      sync.Mutex
	written []*sarama.ProducerMessage
	sends   int
}

func (b *broker) SendMessages(msgs []*sarama.ProducerMessage) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sends++
	total := 0
	for _, m := range msgs {
		total += m.ByteSize(2)
	}
	var errs sarama.ProducerErrors
	for _, m := range msgs {
		switch {
		case b.transient > 0:
			b.transient--
			errs = append(errs, &sarama.ProducerError{Msg: m, Err: sarama.ErrNotLeaderForPartition})
		case m.ByteSize(2) > b.limit || b.batchLimit > 0 && len(msgs) > 1 && total > b.batchLimit:
			errs = append(errs, &sarama.ProducerError{Msg: m, Err: sarama.ErrMessageSizeTooLarge})
		default:
			b.written = append(b.written, m)
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

func TestADeadLetterTheBrokerRefusesIsWrittenSmallerOnceAndNeverRetriedForEver(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 900<<10)
	small := []byte(`{"op":`)
	rs := []rejected{
		{message("t.cdc.customers", 1, []byte("a"), small), "invalid JSON: a"},
		{message("t.cdc.customers", 2, []byte("b"), big), "invalid JSON: b"},
		{message("t.cdc.customers", 3, []byte("c"), small), "invalid JSON: c"},
	}
	tests := []struct {
		name   string
		broker *broker
		// want is, per offset, how its one record reads: "whole",
		// "truncated" or "omitted"; a missing offset has no record.
		want map[int64]string
		lost float64
	}{
		{"the default limit: the big one truncated", &broker{limit: brokerLimit}, map[int64]string{1: "whole", 2: "truncated", 3: "whole"}, 0},
		{"a leader moving meanwhile: resent, still once each", &broker{limit: brokerLimit, transient: 2}, map[int64]string{1: "whole", 2: "truncated", 3: "whole"}, 0},
		{"a batch over the limit, each record under it: sent alone", &broker{limit: brokerLimit, batchLimit: 1000}, map[int64]string{1: "whole", 2: "truncated", 3: "whole"}, 0},
		{"a topic limit of 10 KB: the big one without its value", &broker{limit: 10 << 10}, map[int64]string{1: "whole", 2: "omitted", 3: "whole"}, 0},
		{"a topic limit of 100 bytes: nothing fits, nothing loops", &broker{limit: 100}, map[int64]string{}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ix, reg := testIndexer(t, tt.broker)
			if err := ix.deadLetter(context.Background(), rs); err != nil {
				t.Fatal(err)
			}
			got := map[int64]string{}
			for _, m := range tt.broker.written {
				d := decodeLetter(t, m)
				if _, twice := got[d.Offset]; twice {
					t.Fatalf("offset %d dead-lettered twice", d.Offset)
				}
				form := "whole"
				if d.Truncated {
					form = "truncated"
				} else if d.ValueOmitted {
					form = "omitted"
				}
				got[d.Offset] = form
				if d.Size != len(rs[d.Offset-1].msg.Value) || d.Reason != rs[d.Offset-1].reason || d.Key != string(rs[d.Offset-1].msg.Key) {
					t.Errorf("record of offset %d: %+v: want its size, key and reason", d.Offset, d)
				}
			}
			if len(got) != len(tt.want) {
				t.Fatalf("records %v, want %v", got, tt.want)
			}
			for o, w := range tt.want {
				if got[o] != w {
					t.Fatalf("records %v, want %v", got, tt.want)
				}
			}
			if n := counter(t, reg, "cdp_indexer_dead_letters_lost_total"); n != tt.lost {
				t.Fatalf("%v dead letters counted lost, want %v", n, tt.lost)
			}
			wantCuts := map[string]int{"truncated": 1, "omitted": 1}[tt.want[2]]
			if n := counter(t, reg, "cdp_indexer_dead_letters_truncated_total", "value"); tt.want[2] != "" && int(n) != wantCuts {
				t.Fatalf("%v values counted truncated, want %d", n, wantCuts)
			}
			if tt.broker.sends > 12 {
				t.Fatalf("%d sends for 3 dead letters", tt.broker.sends)
			}
		})
	}
}

// counter sums the samples of the named counter, of those with the given
// label value when one is given.
func counter(t *testing.T, g prometheus.Gatherer, name string, value ...string) float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		for _, m := range f.GetMetric() {
			if f.GetName() == name && (len(value) == 0 || m.GetLabel()[0].GetValue() == value[0]) {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}
