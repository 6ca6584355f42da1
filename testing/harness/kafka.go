package harness

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"cdp/config"
	"cdp/indexer"
	"cdp/testing/workload"
)

// CreateTopics creates the service's topics for cfg (as the indexer does
// on start), so that a stream can be produced before any indexer runs.
func (e *Env) CreateTopics(t testing.TB, cfg *config.Config) {
	t.Helper()
	names := make([]string, len(indexer.AllTopics))
	for i, s := range indexer.AllTopics {
		names[i] = cfg.Topic(s)
	}
	if err := indexer.EnsureTopics(e.KafkaBrokers, names, indexer.Partitions); err != nil {
		t.Fatal(err)
	}
}

// Produce sends the messages to cfg's topics in order, in batches, and
// records where each one went (Partition, Offset).
func (e *Env) Produce(t testing.TB, cfg *config.Config, msgs []workload.Message) {
	t.Helper()
	if err := e.produce(cfg, msgs); err != nil {
		t.Fatal(err)
	}
}

func (e *Env) produce(cfg *config.Config, msgs []workload.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	p, err := sarama.NewSyncProducer(e.KafkaBrokers, indexer.KafkaConfig("cdp-test-producer"))
	if err != nil {
		return fmt.Errorf("producer: %w", err)
	}
	defer p.Close()
	const batch = 2000
	for start := 0; start < len(msgs); start += batch {
		part := msgs[start:min(start+batch, len(msgs))]
		pms := make([]*sarama.ProducerMessage, len(part))
		for i, m := range part {
			pm := &sarama.ProducerMessage{Topic: cfg.Topic(m.Topic)}
			if m.Key != nil {
				pm.Key = sarama.ByteEncoder(m.Key)
			}
			if m.Value != nil {
				pm.Value = sarama.ByteEncoder(m.Value)
			}
			pms[i] = pm
		}
		if err := p.SendMessages(pms); err != nil {
			return fmt.Errorf("produce: %w", err)
		}
		for i, pm := range pms {
			part[i].Partition, part[i].Offset = pm.Partition, pm.Offset
		}
	}
	return nil
}

// Progress reads the consumer group's progress once.
func (e *Env) Progress(cfg *config.Config) (workload.Progress, error) {
	r, err := workload.NewProgressReader(cfg)
	if err != nil {
		return workload.Progress{}, err
	}
	defer r.Close()
	return r.Read()
}

// WaitProgress polls the group's progress until cond holds, and returns
// the time it did.
func (e *Env) WaitProgress(t testing.TB, cfg *config.Config, timeout time.Duration, what string, cond func(workload.Progress) bool) (workload.Progress, time.Time) {
	t.Helper()
	var last workload.Progress
	Eventually(t, timeout, func() (bool, string) {
		p, err := e.Progress(cfg)
		if err != nil {
			return false, fmt.Sprintf("%s: progress unknown: %v", what, err)
		}
		last = p
		return cond(p), fmt.Sprintf("%s: %s", what, p)
	})
	return last, time.Now()
}

// WaitIdle waits until the indexer has applied and committed everything
// produced so far, and returns when that was first seen.
func (e *Env) WaitIdle(t testing.TB, cfg *config.Config, timeout time.Duration) time.Time {
	t.Helper()
	_, at := e.WaitProgress(t, cfg, timeout, "indexer idle", workload.Progress.Idle)
	return at
}

// DeadLetter is a record of the dead-letter topic.
type DeadLetter struct {
	Topic       string `json:"topic"`
	Partition   int32  `json:"partition"`
	Offset      int64  `json:"offset"`
	Key         string `json:"key"`
	Value       string `json:"value"`
	ValueBase64 []byte `json:"value_base64"`
	// Size is the message value's length; Truncated says Value (or
	// ValueBase64) is only its beginning, ValueOmitted that the record
	// holds none of it, SHA256 the whole value's hash in both cases.
	Size         int    `json:"size"`
	Truncated    bool   `json:"truncated"`
	ValueOmitted bool   `json:"value_omitted"`
	SHA256       string `json:"sha256"`
	Reason       string `json:"reason"`
	// Raw is the record as read.
	Raw string `json:"-"`
}

// DeadLetters reads every record of cfg's dead-letter topic.
func (e *Env) DeadLetters(t testing.TB, cfg *config.Config) []DeadLetter {
	t.Helper()
	var out []DeadLetter
	for _, m := range e.ReadTopic(t, cfg.Topic(indexer.TopicDLQ)) {
		d := DeadLetter{Raw: string(m.Value)}
		if err := json.Unmarshal(m.Value, &d); err != nil {
			t.Fatalf("dead letter at %d/%d is not JSON: %v: %s", m.Partition, m.Offset, err, m.Value)
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Topic != b.Topic {
			return a.Topic < b.Topic
		}
		if a.Partition != b.Partition {
			return a.Partition < b.Partition
		}
		return a.Offset < b.Offset
	})
	return out
}

// ReadTopic reads every message of a topic, up to the high-water marks of
// when it is called.
func (e *Env) ReadTopic(t testing.TB, topic string) []*sarama.ConsumerMessage {
	t.Helper()
	client, err := sarama.NewClient(e.KafkaBrokers, indexer.KafkaConfig("cdp-test-reader"))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	var out []*sarama.ConsumerMessage
	for _, part := range parts {
		end, err := client.GetOffset(topic, part, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		if end == 0 {
			continue
		}
		pc, err := consumer.ConsumePartition(topic, part, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		timeout := time.After(30 * time.Second)
	read:
		for {
			select {
			case m := <-pc.Messages():
				out = append(out, m)
				if m.Offset+1 >= end {
					break read
				}
			case <-timeout:
				pc.Close()
				t.Fatalf("reading %s/%d: no message within 30s before offset %d", topic, part, end)
			}
		}
		pc.Close()
	}
	return out
}

// GroupMembers returns, per member of the consumer group, how many
// partitions it is assigned.
func (e *Env) GroupMembers(cfg *config.Config) (map[string]int, string, error) {
	admin, err := sarama.NewClusterAdmin(e.KafkaBrokers, indexer.KafkaConfig("cdp-test-admin"))
	if err != nil {
		return nil, "", err
	}
	defer admin.Close()
	groups, err := admin.DescribeConsumerGroups([]string{cfg.ConsumerGroup})
	if err != nil {
		return nil, "", err
	}
	if len(groups) != 1 {
		return nil, "", fmt.Errorf("%d group descriptions", len(groups))
	}
	out := map[string]int{}
	for id, m := range groups[0].Members {
		a, err := m.GetMemberAssignment()
		if err != nil {
			return nil, "", err
		}
		n := 0
		if a != nil {
			for _, ps := range a.Topics {
				n += len(ps)
			}
		}
		out[id] = n
	}
	return out, groups[0].State, nil
}

// ExpectedDeadLetters checks that the dead-letter topic holds exactly the
// poison messages among msgs (which must have been produced with Produce),
// each with its source topic, partition, offset and key and a reason that
// contains the message's Poison word (case-insensitive).
func (e *Env) ExpectedDeadLetters(t testing.TB, cfg *config.Config, msgs []workload.Message) {
	t.Helper()
	type where struct {
		topic     string
		partition int32
		offset    int64
	}
	want := map[where]workload.Message{}
	for _, m := range msgs {
		if m.Poison != "" {
			want[where{cfg.Topic(m.Topic), m.Partition, m.Offset}] = m
		}
	}
	got := e.DeadLetters(t, cfg)
	seen := map[where]bool{}
	for _, d := range got {
		w := where{d.Topic, d.Partition, d.Offset}
		m, ok := want[w]
		switch {
		case !ok:
			t.Errorf("unexpected dead letter: %s", d.Raw)
		case seen[w]:
			t.Errorf("message dead-lettered twice: %s", d.Raw)
		default:
			if d.Key != string(m.Key) {
				t.Errorf("dead letter of %s/%d/%d: key %q, want %q", w.topic, w.partition, w.offset, d.Key, m.Key)
			}
			if !strings.Contains(strings.ToLower(d.Reason), strings.ToLower(m.Poison)) {
				t.Errorf("dead letter of %s/%d/%d: reason %q does not say %q", w.topic, w.partition, w.offset, d.Reason, m.Poison)
			}
			value := d.Value
			if d.ValueBase64 != nil {
				value = string(d.ValueBase64)
			}
			whole := !d.Truncated && !d.ValueOmitted
			if whole && value != string(m.Value) || !whole && !strings.HasPrefix(string(m.Value), value) || d.Size != len(m.Value) {
				t.Errorf("dead letter of %s/%d/%d: value %.200q (truncated %v, omitted %v) of size %d, want the message %.200q of size %d",
					w.topic, w.partition, w.offset, value, d.Truncated, d.ValueOmitted, d.Size, m.Value, len(m.Value))
			}
		}
		seen[w] = true
	}
	for w, m := range want {
		if !seen[w] {
			t.Errorf("poison message not dead-lettered (%s): %s/%d/%d key %q value %.200q", m.Poison, w.topic, w.partition, w.offset, m.Key, m.Value)
		}
	}
}
