package harness

import (
	"testing"
	"time"

	"github.com/IBM/sarama"

	"cdp/indexer"
)

// Messages returns every message the topic holds now, partition by
// partition, oldest first.
func (e *Env) Messages(t testing.TB, topic string) []*sarama.ConsumerMessage {
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
	for _, p := range parts {
		hwm, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		oldest, err := client.GetOffset(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		if hwm <= oldest {
			continue
		}
		pc, err := consumer.ConsumePartition(topic, p, oldest)
		if err != nil {
			t.Fatal(err)
		}
		for done := false; !done; {
			select {
			case m := <-pc.Messages():
				out = append(out, m)
				done = m.Offset >= hwm-1
			case <-time.After(20 * time.Second):
				t.Fatalf("%s/%d: timed out reading up to offset %d", topic, p, hwm)
			}
		}
		pc.Close()
	}
	return out
}
