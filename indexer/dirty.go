package indexer

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/IBM/sarama"
)

// A dirty marker names customers whose documents must be rebuilt. Stage 1
// sends one marker per partition of the dirty topic and batch, holding
// every customer of the batch that hashes to that partition: a customer
// is always marked on the same partition (so one consumer at a time owns
// its document), and a batch costs a handful of messages rather than one
// per customer, which made marking the slowest step of stage 1.
type marker struct {
	Customers []string `json:"customers"`
}

// markerChunk is the most customers one marker names: a batch of the
// largest size marks up to 100,000 customers, some 29 bytes each, and a
// record over the producer's MaxMessageBytes is refused (KafkaConfig).
const markerChunk = 10_000

// markerMessages groups the customers by partition, one message each, or
// more for more than markerChunk customers.
func markerMessages(topic string, cids map[string]bool, partitions int32) ([]*sarama.ProducerMessage, error) {
	// A customer goes where Kafka's hash partitioner puts its id as a key.
	hash := sarama.NewHashPartitioner(topic)
	byPartition := map[int32][]string{}
	for cid := range cids {
		p, err := hash.Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(cid)}, partitions)
		if err != nil {
			return nil, err
		}
		byPartition[p] = append(byPartition[p], cid)
	}
	msgs := make([]*sarama.ProducerMessage, 0, len(byPartition))
	for p, all := range byPartition {
		for list := range slices.Chunk(all, markerChunk) {
			v, err := json.Marshal(marker{Customers: list})
			if err != nil {
				return nil, err
			}
			msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Partition: p, Key: sarama.StringEncoder(list[0]), Value: sarama.ByteEncoder(v)})
		}
	}
	return msgs, nil
}

// markedCustomers reads a marker. A marker that lists no customer is an
// error (stage 1 never sends one), so that it is dead-lettered rather than
// dropped unseen.
func markedCustomers(m *sarama.ConsumerMessage) ([]string, error) {
	var mk marker
	if err := json.Unmarshal(m.Value, &mk); err != nil {
		return nil, fmt.Errorf("dirty marker: %w", err)
	}
	if len(mk.Customers) == 0 {
		return nil, errors.New("dirty marker: lists no customers")
	}
	return mk.Customers, nil
}

// markerKeys are the customers a marker names, for sizing rebuild
// batches by distinct customers; a marker that cannot be read names
// nothing (materialize dead-letters it).
func markerKeys(m *sarama.ConsumerMessage) []string {
	cids, _ := markedCustomers(m)
	return cids
}

// dirtyPartitioner places markers on the partition they name and every
// other message by the hash of its key.
func dirtyPartitioner(dirtyTopic string) sarama.PartitionerConstructor {
	return func(topic string) sarama.Partitioner {
		if topic == dirtyTopic {
			return sarama.NewManualPartitioner(topic)
		}
		return sarama.NewHashPartitioner(topic)
	}
}

// Marker asks the indexer to rebuild customers from outside it: the API
// marks the two profiles of a split, whose rebuilds move what the split
// identities brought. It connects on its first Mark, so an API started
// while Kafka is down still starts.
type Marker struct {
	brokers []string
	topic   string

	mu       sync.Mutex
	client   sarama.Client
	producer sarama.SyncProducer
}

// NewMarker returns a marker of customers on the dirty topic.
func NewMarker(brokers []string, dirtyTopic string) *Marker {
	return &Marker{brokers: brokers, topic: dirtyTopic}
}

func (m *Marker) connect() error {
	if m.producer != nil {
		return nil
	}
	kc := KafkaConfig("cdp-marker")
	kc.Producer.Partitioner = dirtyPartitioner(m.topic)
	client, err := sarama.NewClient(m.brokers, kc)
	if err != nil {
		return fmt.Errorf("marker: kafka: %w", err)
	}
	producer, err := sarama.NewSyncProducerFromClient(client)
	if err != nil {
		client.Close()
		return fmt.Errorf("marker: producer: %w", err)
	}
	m.client, m.producer = client, producer
	return nil
}

// Mark asks for the customers' documents to be rebuilt.
func (m *Marker) Mark(cids ...string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.connect(); err != nil {
		return err
	}
	set := map[string]bool{}
	for _, c := range cids {
		set[c] = true
	}
	parts, err := m.client.Partitions(m.topic)
	if err != nil {
		return fmt.Errorf("marker: %w", err)
	}
	msgs, err := markerMessages(m.topic, set, int32(len(parts)))
	if err != nil {
		return err
	}
	return m.producer.SendMessages(msgs)
}

// Close closes the connections, if any.
func (m *Marker) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.producer == nil {
		return nil
	}
	return errors.Join(m.producer.Close(), m.client.Close())
}
