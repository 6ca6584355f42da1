package indexer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"cdp/config"
	"cdp/store"
	"cdp/wire"
)

func TestEveryErrorTheIndexerMeetsIsClassifiedAsRetryingCanCureItOrNot(t *testing.T) {
	osErr := func(status int, typ string) error {
		return &store.Error{Status: status, Type: typ, Reason: "x"}
	}
	item := func(o store.Outcome, status int, typ string) error {
		return &store.ItemError{Op: store.Op{Action: store.Index, Index: "i", ID: "1"}, Verdict: store.Verdict{Status: status, Type: typ}, Outcome: o}
	}
	produce := func(errs ...error) error {
		var pes sarama.ProducerErrors
		for _, err := range errs {
			pes = append(pes, &sarama.ProducerError{Msg: &sarama.ProducerMessage{Topic: "t"}, Err: err})
		}
		return pes
	}
	_, nan := json.Marshal(math.NaN())
	_, bad := wire.ParseChange(wire.TableOrders, nil, []byte(`{"after":{"id":1,"customer_id":1,"total_amount":"NaN"},"source":{"lsn":1},"op":"c"}`))
	if !errors.Is(bad, wire.ErrBad) {
		t.Fatalf("the wire case needs a bad-message error, got %v", bad)
	}
	refused := net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	tests := []struct {
		name string
		err  error
		want errClass
	}{
		// OpenSearch, as package store answers.
		{"OpenSearch unreachable", fmt.Errorf("store: POST /_bulk: %w: %w", store.ErrUnreachable, &refused), classTransient},
		{"OpenSearch overloaded (429)", osErr(429, "es_rejected_execution_exception"), classTransient},
		{"OpenSearch failing (500)", osErr(500, "exception"), classTransient},
		{"OpenSearch without a master (503)", osErr(503, "master_not_discovered_exception"), classTransient},
		{"OpenSearch timed out (408)", osErr(408, ""), classTransient},
		{"an index blocked read-only (403 cluster_block_exception)", osErr(403, "cluster_block_exception"), classTransient},
		{"a version conflict on a whole request (409)", osErr(409, "version_conflict_engine_exception"), classTransient},
		{"the service not authorized (401)", osErr(401, "security_exception"), classTransient},
		{"a missing index (404 index_not_found_exception)", osErr(404, "index_not_found_exception"), classTransient},
		{"a mapping refusal (400 mapper_parsing_exception)", osErr(400, "mapper_parsing_exception"), classPermanent},
		{"a parse refusal (400 parsing_exception)", osErr(400, "parsing_exception"), classPermanent},
		{"an illegal argument (400)", osErr(400, "illegal_argument_exception"), classPermanent},
		{"a request too large (413)", osErr(413, ""), classPermanent},
		{"a bulk item worth retrying", item(store.Retry, 429, "es_rejected_execution_exception"), classTransient},
		{"a blocked bulk item", item(store.Retry, 403, "cluster_block_exception"), classTransient},
		{"a bulk item refused for its mapping", item(store.Refused, 400, "mapper_parsing_exception"), classPermanent},
		{"bulk items all worth retrying", errors.Join(item(store.Retry, 503, ""), item(store.Retry, 429, "")), classTransient},
		{"bulk items of which one is refused", errors.Join(item(store.Retry, 503, ""), item(store.Refused, 400, "mapper_parsing_exception")), classPermanent},
		{"a body that cannot be encoded (NaN)", fmt.Errorf("store: encode i/1: %w", nan), classPermanent},
		// The context.
		{"the context cancelled", context.Canceled, classStop},
		{"a request cut by the context's cancellation", fmt.Errorf("store: POST /_bulk: %w: %w", store.ErrUnreachable, context.Canceled), classStop},
		{"a step of a stopping indexer, joined with other failures", errors.Join(item(store.Refused, 400, ""), fmt.Errorf("x: %w", context.Canceled)), classStop},
		{"a request deadline passed", context.DeadlineExceeded, classTransient},
		// Kafka, as sarama's producer answers.
		{"a record over the broker's limit", produce(sarama.ErrMessageSizeTooLarge), classPermanent},
		{"a batch of records over the broker's limit", produce(sarama.ErrMessageSetSizeTooLarge), classPermanent},
		{"a record over the producer's limit", produce(sarama.ConfigurationError("Attempt to produce message larger than configured Producer.MaxMessageBytes: 2 > 1")), classPermanent},
		{"a record the broker finds invalid", produce(sarama.ErrInvalidRecord), classPermanent},
		{"a record whose timestamp the broker refuses", produce(sarama.ErrInvalidTimestamp), classPermanent},
		{"a partition whose leader moved", produce(sarama.ErrNotLeaderForPartition), classTransient},
		{"a partition without a leader", produce(sarama.ErrLeaderNotAvailable), classTransient},
		{"too few in-sync replicas", produce(sarama.ErrNotEnoughReplicas), classTransient},
		{"a produce timed out", produce(sarama.ErrRequestTimedOut), classTransient},
		{"a topic being created", produce(sarama.ErrUnknownTopicOrPartition), classTransient},
		{"the topic not authorized", produce(sarama.ErrTopicAuthorizationFailed), classTransient},
		{"the brokers down", produce(sarama.ErrOutOfBrokers), classTransient},
		{"a broker connection lost", produce(io.EOF, &refused), classTransient},
		{"records of which one is too large", produce(sarama.ErrNotLeaderForPartition, sarama.ErrMessageSizeTooLarge), classPermanent},
		{"the partitions of the dirty topic unknown", fmt.Errorf("dirty topic: %w", sarama.ErrOutOfBrokers), classTransient},
		// The wire decoders.
		{"a bad message", bad, classPermanent},
		{"a bad message, wrapped", fmt.Errorf("column x: %w", wire.ErrBad), classPermanent},
		// Anything else pauses rather than dead-letters.
		{"an error nobody classified", errors.New("something odd"), classTransient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := classify(tt.err); got != tt.want {
				t.Fatalf("classify(%v) = %s, want %s", tt.err, got, tt.want)
			}
			if got := classify(&permanentError{tt.err}); got != tt.want {
				t.Fatalf("classify of the error wrapped = %s, want %s as it is", got, tt.want)
			}
		})
	}
}

// testIndexer is an indexer with what its steps and dead letters need
// and no connection: p stands for the Kafka producer.
func testIndexer(t *testing.T, p sarama.SyncProducer) (*Indexer, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	return &Indexer{
		cfg:      &config.Config{TopicPrefix: "t."},
		log:      log,
		m:        newMetrics(reg),
		producer: p,
		stepLog:  newStepLog(log),
		kafkaLog: newKafkaLog(log),
	}, reg
}

func TestAStepRetriesWhatRetryingCanCureAndNothingElse(t *testing.T) {
	tests := []struct {
		name      string
		errs      []error // f's answers, in turn; then nil
		wantCalls int
		permanent bool
	}{
		{"OpenSearch overloaded twice, then fine", []error{&store.Error{Status: 429}, &store.Error{Status: 503}}, 3, false},
		{"a broker leader moving, then fine", []error{sarama.ProducerErrors{{Msg: &sarama.ProducerMessage{}, Err: sarama.ErrNotLeaderForPartition}}}, 2, false},
		{"a mapping refusal: never again", []error{&store.Error{Status: 400, Type: "mapper_parsing_exception"}, nil}, 1, true},
		{"a record too large: never again", []error{sarama.ProducerErrors{{Msg: &sarama.ProducerMessage{}, Err: sarama.ErrMessageSizeTooLarge}}, nil}, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ix, _ := testIndexer(t, nil)
			calls := 0
			err := ix.step(context.Background(), "test", func() error {
				calls++
				if calls <= len(tt.errs) {
					return tt.errs[calls-1]
				}
				return nil
			})
			var perm *permanentError
			if calls != tt.wantCalls || errors.As(err, &perm) != tt.permanent {
				t.Fatalf("%d calls, err %v: want %d calls and permanent %v", calls, err, tt.wantCalls, tt.permanent)
			}
		})
	}
}

func TestAStepOfAStoppingIndexerReturnsTheContextsErrorNotAPermanentOne(t *testing.T) {
	ix, _ := testIndexer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	calls := 0
	err := ix.step(ctx, "test", func() error {
		calls++
		cancel()
		return fmt.Errorf("store: %w: %w", store.ErrUnreachable, context.Canceled)
	})
	var perm *permanentError
	if !errors.Is(err, context.Canceled) || errors.As(err, &perm) || calls != 1 {
		t.Fatalf("err %v after %d calls: want the context's error after 1, not a permanent error (that would dead-letter)", err, calls)
	}
}
