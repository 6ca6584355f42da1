// Package indexer consumes CDC and SDK events from Kafka and keeps one
// customer document per person in OpenSearch.
//
// It works in two stages inside one consumer group, side by side:
//
//  1. Source messages (SDK events, CDC rows) are checked, their identities
//     resolved to a customer id, and written to the row store and the events
//     index. Then the customers they touched are marked dirty on an
//     internal topic, each on the partition its id hashes to.
//  2. Dirty markers are coalesced per batch; each dirty customer's document
//     is rebuilt from all of its rows and written once. While the indexer
//     is behind, these batches grow, so that a customer changed many
//     times meanwhile is rebuilt once.
//
// Because a customer is always marked on the same partition of the dirty
// topic, one consumer at a time owns a customer, whatever topic the
// changes came from. A process can lose a partition without knowing it,
// though (paused past its session timeout), and write when it wakes: so
// every document write is fenced, conditional on the document standing
// where it stood before the write's inputs were read, and one that lost to
// a newer write is rebuilt from fresh reads (writeRound). Offsets are
// committed only after a batch is durably written or dead-lettered, and
// every step is idempotent, so a crash or a rebalance at any point only
// replays work.
package indexer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"cdp/catalog"
	"cdp/config"
	"cdp/coord"
	"cdp/identity"
	"cdp/mapping"
	"cdp/membership"
	"cdp/store"
)

// Indexer is the Kafka-to-OpenSearch pipeline.
type Indexer struct {
	cfg      *config.Config
	log      *slog.Logger
	st       *store.Client
	resolver *identity.Resolver
	rows     *rowStore
	m        *metrics

	// Two members of the consumer group, each with its own connections:
	// one reads the source topics, the other the dirty markers. A fetch
	// answer is one buffer that every message read from it keeps alive,
	// so markers waiting for a long rebuild, read alongside source
	// messages, held hundreds of MiB of source data.
	sources, rebuilds member
	producer          sarama.SyncProducer

	customers, events string
	people            string // OneID's people index (identity.IndicesOf)
	attrs, props      *dynamicFields

	coord    *coord.Coordinator
	members  Members     // membership of segments and tag rules (membership.go)
	stepLog  *failureLog // the retries of batch steps, rate-limited
	kafkaLog *failureLog // the consumer group's errors and failed commits, rate-limited
	backlog  backlog     // how far behind the source lanes are
	// backfilling: the lanes are in a backfill (behind), until its backlog is gone
	backfilling atomic.Bool
	stopHook    *stopHook // a test hook (StopBeforeWriteEnv); nil in service
	closeOnce   sync.Once
	closeErr    error
}

// A backfill, for the rebuilds lane: the sources more than backfillLag
// batches behind, and that far behind for the rate they apply at (longer
// than backfillDrain to drain). Rebuilds then wait up to backfillHold.
// Otherwise a round of rebuilds gathers markers for rebuildGather at
// most, so that a change waits for one round in progress and one
// gather, not for a gap in a steady stream. The rate matters: a steady
// load the sources keep up with leaves a backlog of a batch or two in
// every lane, which counted alone made the rebuilds hold for a backfill
// and the customers view fall 30 s behind.
//
// The hold is long because a backfill's stream interleaves its customers:
// every round of rebuilds while it runs rewrites nearly every customer
// (with 30 s, a 45 s backfill of 10,000 customers rebuilt 30,000
// documents, most of its OpenSearch time; a 775 s backfill of 100,000,
// its rounds ended by 24 MiB of markers held as read, about every 97 s,
// rebuilt each customer about four times). A round
// also ends at RebuildBatchSize distinct customers, so a larger backfill
// is rebuilt in bounded rounds; the documents of a backfill lag up to
// backfillHold behind, not the changes of a steady load (no hold then).
const (
	backfillLag   = 4
	backfillDrain = 15 * time.Second
	backfillDone  = time.Second
	backfillHold  = 10 * time.Minute
	rebuildGather = 200 * time.Millisecond
)

// heldMarkerBytes bounds the dirty markers one round of rebuilds holds
// (their keys and values; decoded, a round's customers and rows take a
// few times that): a round past it starts, whatever the hold. The lane
// merges what it holds each compactMarkerBytes (compactMarkers), to a few
// dozen bytes a customer, so in a backfill it is RebuildBatchSize
// customers or backfillHold that end a round, not this.
const (
	heldMarkerBytes    = 24 << 20
	compactMarkerBytes = 4 << 20
)

// behind says the source lanes are in a backfill (see backfillLag).
//
// Once in a backfill, the lanes stay in it until the backlog is nearly
// gone (under a batch, or backfillDone to drain): leaving it as soon as
// the drain time fell under backfillDrain, or under a batch a lane, left
// the last seconds of a backfill to a round that rewrote nearly every
// customer again.
func (ix *Indexer) behind() bool {
	total, drain := ix.backlog.state(time.Now())
	if ix.backfilling.Load() {
		if total > int64(ix.cfg.BatchSize) && drain > backfillDone {
			return true
		}
		ix.backfilling.Store(false)
	}
	in := total > int64(backfillLag*ix.cfg.BatchSize) && drain > backfillDrain
	ix.backfilling.Store(in)
	return in
}

// rebuildsLane is the name of the lane of dirty markers (stage 2).
const rebuildsLane = "rebuilds"

// failureLogEvery is the most often a failure that goes on is logged
// again (failureLog).
const failureLogEvery = 30 * time.Second

func newStepLog(log *slog.Logger) *failureLog {
	return newFailureLog(log, failureLogEvery, "step", failureMessages{
		first: "step failed, retrying", still: "step still failing", recovered: "step recovered",
	})
}

func newKafkaLog(log *slog.Logger) *failureLog {
	return newFailureLog(log, failureLogEvery, "kind", failureMessages{
		first: "kafka consumer error", still: "kafka consumer errors go on", recovered: "kafka consumer recovered",
	})
}

// Partitions is the partition count of the topics the service creates.
const Partitions = 4

// New connects to Kafka, creates missing topics, and returns an indexer
// writing through st. The OpenSearch indices must exist.
func New(cfg *config.Config, st *store.Client, reg prometheus.Registerer, log *slog.Logger) (*Indexer, error) {
	topics := make([]string, len(AllTopics))
	for i, t := range AllTopics {
		topics[i] = cfg.Topic(t)
	}
	if err := EnsureTopics(cfg.KafkaBrokers, topics, Partitions); err != nil {
		return nil, err
	}
	kc := KafkaConfig("cdp-indexer")
	kc.Producer.Partitioner = dirtyPartitioner(cfg.Topic(TopicDirty))
	sources, err := join(cfg, kc)
	if err != nil {
		return nil, err
	}
	rebuilds, err := join(cfg, kc)
	if err != nil {
		sources.close()
		return nil, err
	}
	// The producer has connections of its own: Kafka answers the requests
	// of one connection in order, so sharing the consumer's would queue
	// every dirty marker behind a fetch waiting for data.
	producer, err := sarama.NewSyncProducer(cfg.KafkaBrokers, kc)
	if err != nil {
		rebuilds.close()
		sources.close()
		return nil, fmt.Errorf("indexer: producer: %w", err)
	}
	p := cfg.IndexPrefix
	fields := catalog.New(st, mapping.Fields.Alias(p))
	m := newMetrics(reg)
	demoted := func(object string) func(string) {
		return func(reason string) { m.demoted.WithLabelValues(object, reason).Inc() }
	}
	attrs := newDynamicFields(st, mapping.Customers.Alias(p), "attrs", cfg.MaxDynamicFields, fields.Discover, demoted("attrs"))
	props := newDynamicFields(st, mapping.Events.Alias(p), "properties", cfg.MaxDynamicFields, fields.Discover, demoted("properties"))
	for _, d := range []*dynamicFields{attrs, props} {
		if err := d.load(context.Background()); err != nil {
			producer.Close()
			rebuilds.close()
			sources.close()
			return nil, err
		}
	}
	oneid := identity.IndicesOf(p)
	resolver := identity.NewResolver(st, oneid, cfg.IdentityCacheEntries()).WithRules(cfg.Identity)
	co := coord.New(coord.Config{Addr: cfg.RedisAddr, Prefix: cfg.IndexPrefix}, log.With("component", "coord"))
	resolver.Lock, resolver.Epochs, resolver.Tombstones = co, co, co
	resolver.OnError = func(err error) {
		m.oneid.WithLabelValues("redis_error").Inc()
		log.Debug("oneid: redis", "err", err)
	}
	resolver.Timed = func(part string, d time.Duration) { m.resolveSeconds.WithLabelValues(part).Observe(d.Seconds()) }
	resolver.Observe = func(merges, conflicts int) {
		m.oneid.WithLabelValues("merge").Add(float64(merges))
		m.oneid.WithLabelValues("conflict").Add(float64(conflicts))
	}
	return &Indexer{
		attrs: attrs, props: props,
		cfg: cfg, log: log, st: st, m: m,
		resolver:  resolver,
		coord:     co,
		rows:      &rowStore{st: st, index: mapping.Rows.Alias(p)},
		sources:   sources,
		rebuilds:  rebuilds,
		producer:  producer,
		customers: mapping.Customers.Alias(p),
		people:    oneid.People,
		events:    mapping.Events.Alias(p),
		stopHook:  newStopHook(log),
		stepLog:   newStepLog(log),
		kafkaLog:  newKafkaLog(log),
		members: membership.New(membership.ConfigOf(cfg), st, producer,
			prometheus.WrapRegistererWith(prometheus.Labels{"component": "indexer"}, reg), log.With("component", "membership")),
	}, nil
}

// member is one member of the consumer group, on connections of its own.
type member struct {
	client sarama.Client
	group  sarama.ConsumerGroup
}

func join(cfg *config.Config, kc *sarama.Config) (member, error) {
	client, err := sarama.NewClient(cfg.KafkaBrokers, kc)
	if err != nil {
		return member{}, fmt.Errorf("indexer: kafka: %w", err)
	}
	group, err := sarama.NewConsumerGroupFromClient(cfg.ConsumerGroup, client)
	if err != nil {
		client.Close()
		return member{}, fmt.Errorf("indexer: consumer group: %w", err)
	}
	return member{client: client, group: group}, nil
}

func (m member) close() error { return errors.Join(m.group.Close(), m.client.Close()) }

// Run consumes until ctx ends, then finishes the batch in hand within the
// configured grace period, commits, and returns.
func (ix *Indexer) Run(ctx context.Context) error {
	hard, cancelHard := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHard()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(ix.cfg.ShutdownGrace, cancelHard) })
	defer stop()
	sourceTopics := make([]string, 0, len(SourceTopics))
	for _, t := range SourceTopics {
		sourceTopics = append(sourceTopics, ix.cfg.Topic(t))
	}
	dirtyTopics := []string{ix.cfg.Topic(TopicDirty)}
	onBatch := func(lane string, messages int, took time.Duration) {
		if lane != rebuildsLane {
			ix.backlog.done(time.Now(), messages)
		}
		ix.m.batchSize.WithLabelValues(lane).Observe(float64(messages))
		ix.m.batchSeconds.WithLabelValues(lane).Observe(took.Seconds())
	}
	onCommit := func(err error) {
		if err == nil {
			ix.kafkaLog.succeeded("commit")
			return
		}
		ix.m.commitFailures.Inc()
		ix.kafkaLog.failed("commit", err)
	}
	handler := func(m member, lanes []*lane) *groupHandler {
		return &groupHandler{
			proc: ix, log: ix.log, grace: ix.cfg.ShutdownGrace, hard: hard, lanes: lanes,
			onLag:       ix.m.setLag,
			onConsume:   func(topic string) { ix.m.consumed.WithLabelValues(topic).Inc() },
			onBatch:     onBatch,
			committer:   groupCommitter{client: m.client, group: ix.cfg.ConsumerGroup},
			onCommitted: ix.m.setCommitted,
			onCommit:    onCommit,
			onRevoke:    ix.m.revoke,
		}
	}
	// Stage 1 and stage 2 run side by side: applying source messages
	// never waits for document rebuilds, and the rebuilds coalesce
	// whatever markers piled up meanwhile. Source partitions are spread
	// over several lanes: stage 1 is indifferent to the order of
	// messages of different partitions (row versions are source
	// positions, events are written once, and a profile keeps per trait
	// the newest event's value whatever order events come in), and the
	// changes of one row share a partition, so they stay in order.
	var sourceLanes []*lane
	for i := range ix.cfg.SourceLanes {
		sourceLanes = append(sourceLanes, &lane{name: fmt.Sprintf("sources-%d", i), size: ix.cfg.BatchSize, wait: ix.cfg.BatchWait})
	}
	sh := handler(ix.sources, sourceLanes)
	sh.route = func(_ string, partition int32) int { return int(partition) % len(sourceLanes) }
	sh.onLag = func(topic string, partition int32, lag int64) {
		ix.m.setLag(topic, partition, lag)
		ix.backlog.took(topic, partition, lag)
	}
	sh.onAssign = ix.backlog.reset
	// While the sources are more than backfillLag batches behind (a
	// backfill, a catch-up after an outage), rebuilds wait for up to
	// backfillHold: each rebuild of a customer's document rewrites its
	// orders and items, and rebuilding every round a customer changed in
	// was most of a backfill's document writes.
	rh := handler(ix.rebuilds, []*lane{{name: rebuildsLane, size: ix.cfg.RebuildBatchSize, keys: markerKeys, wait: ix.cfg.BatchWait, greedy: true,
		hold: ix.behind, maxHold: backfillHold, maxGather: rebuildGather, maxBytes: heldMarkerBytes,
		compact: compactMarkers, compactBytes: compactMarkerBytes}})
	rh.route = func(string, int32) int { return 0 }

	ix.log.Info("indexer consuming", "topics", append(sourceTopics, dirtyTopics...), "group", ix.cfg.ConsumerGroup)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Add(3)
	go func() {
		defer wg.Done()
		ix.background(ctx)
	}()
	go func() {
		defer wg.Done()
		errs[0] = consume(ctx, ix.sources.group, sourceTopics, sh, ix)
	}()
	go func() {
		defer wg.Done()
		errs[1] = consume(ctx, ix.rebuilds.group, dirtyTopics, rh, ix)
	}()
	wg.Wait()
	return errors.Join(errs...)
}

// consumerError counts an error of a consumer group and logs it,
// rate-limited per kind.
func (ix *Indexer) consumerError(kind string, err error, attrs ...any) {
	ix.m.consumerErrors.WithLabelValues(kind).Inc()
	ix.kafkaLog.failed(kind, err, attrs...)
}

func (ix *Indexer) consumed() { ix.kafkaLog.succeeded("consume") }

// Close leaves the group and closes the Kafka connections. Calling it
// again does nothing.
func (ix *Indexer) Close() error {
	ix.closeOnce.Do(func() {
		ix.closeErr = errors.Join(ix.sources.close(), ix.rebuilds.close(), ix.producer.Close(), ix.coord.Close())
	})
	return ix.closeErr
}

// process applies one batch: source messages first (stage 1), then the
// dirty markers (stage 2). It returns only when all of it is applied or
// dead-lettered, or when ctx ends.
//
// A step that fails for good (classify says permanent: a request
// OpenSearch refuses as a whole, a marker Kafka refuses) would fail on
// every retry and stop the stream. The batch is then split in halves,
// applied in order, down to the single message that makes the step fail,
// which is dead-lettered with the error. Every step is idempotent, so
// re-applying a half that partly went through is safe.
func (ix *Indexer) process(ctx context.Context, msgs []*sarama.ConsumerMessage) error {
	err := ix.processOnce(ctx, msgs)
	var perm *permanentError
	if !errors.As(err, &perm) {
		return err
	}
	if len(msgs) == 1 {
		if a, b, ok := splitMarker(msgs[0]); ok {
			ix.log.Warn("merged marker refused for good, splitting it to find the customer", "customers", len(markerKeys(msgs[0])), "err", perm)
			if err := ix.process(ctx, []*sarama.ConsumerMessage{a}); err != nil {
				return err
			}
			return ix.process(ctx, []*sarama.ConsumerMessage{b})
		}
		return ix.deadLetter(ctx, []rejected{{msgs[0], refusedReason(perm.err)}})
	}
	ix.log.Warn("batch refused for good, splitting it to find the message", "messages", len(msgs), "err", perm)
	mid := len(msgs) / 2
	if err := ix.process(ctx, msgs[:mid]); err != nil {
		return err
	}
	return ix.process(ctx, msgs[mid:])
}

// refusedReason is the dead letter's reason for a message whose step
// failed for good.
func refusedReason(err error) string {
	var se *store.Error
	if errors.As(err, &se) {
		return "OpenSearch refused a request made from this message: " + err.Error()
	}
	return "a write made from this message was refused for good: " + err.Error()
}

// permanentError is a step that fails however often it is retried
// (classify says classPermanent).
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func (ix *Indexer) processOnce(ctx context.Context, msgs []*sarama.ConsumerMessage) error {
	var sources, dirty []*sarama.ConsumerMessage
	dirtyTopic := ix.cfg.Topic(TopicDirty)
	for _, m := range msgs {
		if m.Topic == dirtyTopic {
			dirty = append(dirty, m)
		} else {
			sources = append(sources, m)
		}
	}
	if len(sources) > 0 {
		cids, err := ix.applySources(ctx, sources)
		if err != nil {
			return err
		}
		if err := ix.step(ctx, "mark_dirty", func() error { return ix.markDirty(cids) }); err != nil {
			return err
		}
	}
	if len(dirty) > 0 {
		return ix.materialize(ctx, dirty)
	}
	return nil
}

// step runs f until it succeeds, fails for good, or ctx ends, backing off
// between tries: classify decides which errors are worth another try.
// Every step is idempotent, so a retry after a partial failure is safe. A
// failure for good is returned as a *permanentError.
func (ix *Indexer) step(ctx context.Context, name string, f func() error) error {
	start := time.Now()
	defer func() { ix.m.stepSeconds.WithLabelValues(name).Observe(time.Since(start).Seconds()) }()
	b := newBackoff(100*time.Millisecond, 10*time.Second)
	err := retry(ctx, b, func(err error) bool { return ctx.Err() == nil && classify(err) == classTransient }, func(err error, d time.Duration) {
		ix.m.retries.WithLabelValues(name).Inc()
		ix.stepLog.failed(name, err, "in", d)
	}, f)
	if err == nil {
		ix.stepLog.succeeded(name)
	}
	if err != nil && ctx.Err() == nil && classify(err) == classPermanent {
		return &permanentError{err}
	}
	return err
}

// markDirty asks stage 2 to rebuild the customers.
func (ix *Indexer) markDirty(cids dirtySet) error {
	if len(cids) == 0 {
		return nil
	}
	topic := ix.cfg.Topic(TopicDirty)
	parts, err := ix.rebuilds.client.Partitions(topic)
	if err != nil {
		return fmt.Errorf("dirty topic: %w", err)
	}
	msgs, err := markerMessages(topic, cids, int32(len(parts)))
	if err != nil {
		return err
	}
	return ix.producer.SendMessages(msgs)
}

// bulk sends ops and records the latency under the step's name.
func (ix *Indexer) bulk(ctx context.Context, step string, ops []store.Op) ([]store.Verdict, error) {
	start := time.Now()
	v, err := ix.st.Bulk(ctx, ops)
	ix.m.bulkSeconds.WithLabelValues(step).Observe(time.Since(start).Seconds())
	return v, err
}

// bulkDemoting is bulk for documents with a dynamic object: an item
// OpenSearch refuses because of one dynamic field's value is sent again
// with that field moved to the unindexed twin, so one odd value never
// keeps a whole document (and every later change to it) out of the index.
func (ix *Indexer) bulkDemoting(ctx context.Context, step string, ops []store.Op, d *dynamicFields) ([]store.Verdict, error) {
	verdicts, err := ix.bulk(ctx, step, ops)
	for round := 0; err == nil && round < 5; round++ {
		var again []int
		for i, v := range verdicts {
			if v.OK() || v.Retryable() || v.Conflict() {
				continue
			}
			if doc, ok := ops[i].Body.(map[string]any); ok && d.demoteRejected(doc, v.Reason) {
				again = append(again, i)
			}
		}
		if len(again) == 0 {
			break
		}
		sub := make([]store.Op, len(again))
		for j, i := range again {
			sub[j] = ops[i]
		}
		var vs []store.Verdict
		if vs, err = ix.bulk(ctx, step, sub); err == nil {
			for j, i := range again {
				verdicts[i] = vs[j]
			}
		}
	}
	return verdicts, err
}

// judge sorts a bulk's verdicts: applied items are counted under kind (or
// "delete"); a version conflict on a create or a versioned write (a
// duplicate, or a newer change already stored) and a delete of nothing are
// fine as they are; a fenced write (IfMatch, IfAbsent) that lost to a write
// made since it was read is returned among stale, for the caller to rebuild
// from fresh reads; items that may succeed later make the returned error,
// so that the step retries; the rest are refused for good and reported to
// reject with OpenSearch's reason.
func (ix *Indexer) judge(kind string, ops []store.Op, verdicts []store.Verdict, reject func(i int, reason string)) (stale []int, err error) {
	var retry []error
	for i, v := range verdicts {
		op := ops[i]
		switch o := store.Judge(op, v); {
		case o == store.Applied && op.Action == store.Delete:
			ix.m.applied.WithLabelValues("delete").Inc()
		case o == store.Applied:
			ix.m.applied.WithLabelValues(kind).Inc()
		case o == store.Unchanged:
		case o == store.Stale:
			stale = append(stale, i)
		case o == store.Retry:
			retry = append(retry, &store.ItemError{Op: op, Verdict: v, Outcome: o})
		default:
			reject(i, v.Type+": "+v.Reason)
		}
	}
	return stale, errors.Join(retry...)
}
