package indexer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"
)

// Topic suffixes (CONTRACT §1 and §5).
const (
	TopicEvents     = "events"
	TopicCustomers  = "cdc.customers"
	TopicOrders     = "cdc.orders"
	TopicOrderItems = "cdc.order_items"
	TopicDLQ        = "dlq"
	// TopicDirty is internal: the customers whose documents must be
	// rebuilt, keyed by customer id so that one consumer owns a customer.
	TopicDirty = "indexer.dirty"
)

// SourceTopics are the topics the indexer reads from outside.
var SourceTopics = []string{TopicEvents, TopicCustomers, TopicOrders, TopicOrderItems}

// AllTopics are the topics the service creates on start when missing.
var AllTopics = append(append([]string{}, SourceTopics...), TopicDLQ, TopicDirty, TopicMembership)

// KafkaConfig returns the sarama configuration the service uses.
func KafkaConfig(clientID string) *sarama.Config {
	c := sarama.NewConfig()
	c.ClientID = clientID
	c.Version = sarama.V3_6_0_0
	c.Metadata.Retry.Max = 10
	c.Metadata.Retry.Backoff = 500 * time.Millisecond
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Offsets.AutoCommit.Enable = false
	c.Consumer.Return.Errors = true
	c.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyRange()}
	c.Consumer.Group.Session.Timeout = 10 * time.Second
	c.Consumer.Group.Heartbeat.Interval = 3 * time.Second
	// Every message keeps its whole fetch answer alive until it is
	// dropped, so answers are kept small: 1 MiB per partition, 8 MiB in
	// all.
	c.Consumer.Fetch.Default = 1 << 20
	c.Consumer.Fetch.MaxBytes = 8 << 20
	// A fetch with nothing to return waits this long on the broker, and
	// Kafka answers one connection's requests in order: offset commits,
	// which share the connection, wait behind it.
	c.Consumer.MaxWaitTime = 50 * time.Millisecond
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Idempotent = true
	c.Net.MaxOpenRequests = 1
	c.Producer.Return.Successes = true
	c.Producer.Retry.Max = 10
	c.Producer.Retry.Backoff = 200 * time.Millisecond
	c.Producer.Partitioner = sarama.NewHashPartitioner
	// A record batch is at most this big, and the broker refuses a batch
	// over its message.max.bytes (1,048,588 by default): sarama's default,
	// under it, so that many records sent together are split into batches
	// the broker takes. Records stay far smaller (dead letters cut to some
	// 420 KiB, markers of markerChunk customers).
	c.Producer.MaxMessageBytes = 1_000_000
	return c
}

// EnsureTopics creates the missing topics with the broker's default
// replication and the given partition count.
func EnsureTopics(brokers []string, names []string, partitions int32) error {
	admin, err := sarama.NewClusterAdmin(brokers, KafkaConfig("cdp-admin"))
	if err != nil {
		return fmt.Errorf("kafka: connect %v: %w", brokers, err)
	}
	defer admin.Close()
	existing, err := admin.ListTopics()
	if err != nil {
		return fmt.Errorf("kafka: list topics: %w", err)
	}
	for _, name := range names {
		if _, ok := existing[name]; ok {
			continue
		}
		err := admin.CreateTopic(name, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: -1}, false)
		if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
			return fmt.Errorf("kafka: create topic %s: %w", name, err)
		}
	}
	return nil
}

// Ping succeeds when one of the brokers answers an ApiVersions request.
func Ping(ctx context.Context, brokers []string) error {
	var errs []error
	for _, addr := range brokers {
		b := sarama.NewBroker(addr)
		conf := sarama.NewConfig()
		if dl, ok := ctx.Deadline(); ok {
			conf.Net.DialTimeout = time.Until(dl)
			conf.Net.ReadTimeout = time.Until(dl)
		}
		if err := b.Open(conf); err != nil {
			errs = append(errs, err)
			continue
		}
		_, err := b.ApiVersions(&sarama.ApiVersionsRequest{})
		b.Close()
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", addr, err))
	}
	return errors.Join(errs...)
}
