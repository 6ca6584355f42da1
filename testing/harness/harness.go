// Package harness is the integration-test harness: it gives tests the real
// OpenSearch, Kafka and Redis, each test with its own index, topic and
// group names, removed when the test ends; it runs the indexer and the API
// in the test's process or `cdp index` as a process of its own; it stops and
// starts services through scripts/deps.sh for the chaos suite; and it reads
// back what the service holds (Kafka progress, dead letters, documents) to
// compare with a workload's reference model (package workload). (The
// folder testing/ is not a package, so that nothing shadows the standard
// library's testing.)
//
// Endpoints come from CDP_OPENSEARCH_URL, CDP_KAFKA_BROKERS and
// CDP_REDIS_ADDR (`make test` sets them after `make deps-up`). When they are
// unset the harness starts containers with dockertest if a Docker engine
// answers, and otherwise fails with a message naming `make deps-up`. An
// unreachable service fails the test; it never skips silently.
package harness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/spf13/pflag"

	"cdp/config"
	"cdp/indexer"
	"cdp/mapping"
	"cdp/store"
)

// Env holds the endpoints of the real services.
type Env struct {
	OpenSearchURL string
	KafkaBrokers  []string
	RedisAddr     string
}

var (
	once    sync.Once
	shared  *Env
	initErr error
)

// Services returns the shared endpoints, checking once per test binary
// that every service answers; a service that does not fails the test. It
// is the one gate of every test that talks to a service: under
// `go test -short` it skips the test before anything is contacted.
func Services(t testing.TB) *Env {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs OpenSearch, Kafka and Redis; skipped with -short")
	}
	once.Do(func() { shared, initErr = resolve() })
	if initErr != nil {
		t.Fatalf("integration services unavailable: %v", initErr)
	}
	return shared
}

func resolve() (*Env, error) {
	e := &Env{
		OpenSearchURL: os.Getenv("CDP_OPENSEARCH_URL"),
		RedisAddr:     os.Getenv("CDP_REDIS_ADDR"),
	}
	if b := os.Getenv("CDP_KAFKA_BROKERS"); b != "" {
		e.KafkaBrokers = strings.Split(b, ",")
	}
	if e.OpenSearchURL == "" || len(e.KafkaBrokers) == 0 || e.RedisAddr == "" {
		var err error
		if e, err = startContainers(e); err != nil {
			return nil, fmt.Errorf("%w\nset CDP_OPENSEARCH_URL, CDP_KAFKA_BROKERS and CDP_REDIS_ADDR after `make deps-up` (or just run `make test`, which does both)", err)
		}
	}
	return e, e.check()
}

// check fails unless all three services answer.
func (e *Env) check() error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := store.New(e.OpenSearchURL)
	if err != nil {
		return err
	}
	if err := st.WaitReady(ctx); err != nil {
		return fmt.Errorf("opensearch at %s: %w", e.OpenSearchURL, err)
	}
	for _, addr := range append([]string{e.RedisAddr}, e.KafkaBrokers...) {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return fmt.Errorf("%s does not answer: %w", addr, err)
		}
		c.Close()
	}
	return nil
}

// Unique returns a short random name part; names built from it never
// collide between tests or runs.
func Unique() string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Config returns a service configuration pointing at the real services,
// with index and topic prefixes and a consumer group of the test's own.
// The indices and topics are deleted when the test ends.
func (e *Env) Config(t testing.TB) *config.Config {
	t.Helper()
	cfg := &config.Config{}
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	cfg.Register(fs, func(string) string { return "" })
	u := Unique()
	cfg.OpenSearchURL, cfg.KafkaBrokers, cfg.RedisAddr = e.OpenSearchURL, e.KafkaBrokers, e.RedisAddr
	cfg.IndexPrefix, cfg.TopicPrefix, cfg.ConsumerGroup = "t"+u, "t"+u+".", "t"+u+"-indexer"
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.BatchWait = 50 * time.Millisecond
	cfg.ShutdownGrace = 5 * time.Second
	cfg.ExportDir = t.TempDir()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.cleanup(t, cfg) })
	return cfg
}

func (e *Env) cleanup(t testing.TB, cfg *config.Config) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if st, err := store.New(e.OpenSearchURL); err == nil {
		if err := st.DeleteIndices(ctx, cfg.IndexPrefix, mapping.All...); err != nil {
			t.Logf("cleanup: delete indices %s-*: %v", cfg.IndexPrefix, err)
		}
	}
	admin, err := sarama.NewClusterAdmin(e.KafkaBrokers, indexer.KafkaConfig("cdp-test-cleanup"))
	if err != nil {
		t.Logf("cleanup: kafka: %v", err)
		return
	}
	defer admin.Close()
	topics, _ := admin.ListTopics()
	for name := range topics {
		if strings.HasPrefix(name, cfg.TopicPrefix) {
			_ = admin.DeleteTopic(name)
		}
	}
	_ = admin.DeleteConsumerGroup(cfg.ConsumerGroup)
}

// Store returns an OpenSearch client.
func (e *Env) Store(t testing.TB) *store.Client {
	t.Helper()
	st, err := store.New(e.OpenSearchURL)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// Producer returns a synchronous Kafka producer closed at the end of the
// test.
func (e *Env) Producer(t testing.TB) sarama.SyncProducer {
	t.Helper()
	p, err := sarama.NewSyncProducer(e.KafkaBrokers, indexer.KafkaConfig("cdp-test"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// Eventually polls cond until it reports true or the timeout passes; the
// test then fails with cond's last explanation.
func Eventually(t testing.TB, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var why string
	for {
		var ok bool
		if ok, why = cond(); ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %s", timeout, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
