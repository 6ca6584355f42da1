package indexer_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"cdp/indexer"
	"cdp/testing/harness"
)

// On shutdown the indexer stops fetching, writes what it holds, commits,
// and returns within the grace period; a restart then has nothing to redo.
func TestShutdownFlushesCommitsAndReturnsWithinTheGracePeriod(t *testing.T) {
	env := harness.Services(t)
	cfg := env.Config(t)
	env.Bootstrap(t, cfg)
	p := env.Producer(t)
	const n = 500
	var msgs []msg
	for i := 0; i < n; i++ {
		msgs = append(msgs, change(indexer.TopicCustomers, "c", 9000+i, map[string]any{"name": fmt.Sprint("n", i)}, int64(i+1)))
	}
	produce(t, p, cfg.TopicPrefix, msgs...)

	ix, err := indexer.New(cfg, env.Store(t), prometheus.NewRegistry(), harness.Logger())
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ix.Run(ctx) }()
	harness.Eventually(t, 60*time.Second, func() (bool, string) {
		got := env.Count(t, cfg, "customers", map[string]any{"match_all": map[string]any{}})
		return got == n, fmt.Sprintf("%d of %d customers", got, n)
	})
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(cfg.ShutdownGrace + 5*time.Second):
		t.Fatalf("Run did not return within the grace period (%s)", cfg.ShutdownGrace)
	}
	t.Logf("shutdown took %s", time.Since(start))
	if err := ix.Close(); err != nil {
		t.Logf("close: %v", err)
	}

	// Every source and dirty message is committed.
	admin, err := sarama.NewClusterAdmin(env.KafkaBrokers, indexer.KafkaConfig("cdp-test-admin"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	client, err := sarama.NewClient(env.KafkaBrokers, indexer.KafkaConfig("cdp-test-offsets"))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	for _, topic := range []string{cfg.Topic(indexer.TopicCustomers), cfg.Topic(indexer.TopicDirty)} {
		parts, err := client.Partitions(topic)
		if err != nil {
			t.Fatal(err)
		}
		offsets, err := admin.ListConsumerGroupOffsets(cfg.ConsumerGroup, map[string][]int32{topic: parts})
		if err != nil {
			t.Fatal(err)
		}
		for _, part := range parts {
			hwm, err := client.GetOffset(topic, part, sarama.OffsetNewest)
			if err != nil {
				t.Fatal(err)
			}
			if got := offsets.GetBlock(topic, part); hwm > 0 && (got == nil || got.Offset != hwm) {
				t.Errorf("%s/%d: committed %v, high-water mark %d", topic, part, got, hwm)
			}
		}
	}
}
