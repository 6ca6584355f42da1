package indexer

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	consumed     *prometheus.CounterVec
	applied      *prometheus.CounterVec
	deadLettered *prometheus.CounterVec
	// deadLetterCuts and deadLettersLost: dead letters made smaller to fit
	// the broker's limit, and those that could not be written at all.
	deadLetterCuts  *prometheus.CounterVec
	deadLettersLost *prometheus.CounterVec
	retries         *prometheus.CounterVec
	parked          prometheus.Counter
	demoted         *prometheus.CounterVec
	lag             *prometheus.GaugeVec
	// committedOffset and committedLag are per partition this process
	// owns: their series go when the partition is revoked (revoke).
	committedOffset *prometheus.GaugeVec
	committedLag    *prometheus.GaugeVec
	commitFailures  prometheus.Counter
	consumerErrors  *prometheus.CounterVec
	bulkSeconds     *prometheus.HistogramVec
	stepSeconds     *prometheus.HistogramVec
	// rebuildSeconds splits a rebuild round into its parts, to see where
	// stage 2's time goes.
	rebuildSeconds *prometheus.HistogramVec
	resolveSeconds *prometheus.HistogramVec
	batchSeconds   *prometheus.HistogramVec
	batchSize      *prometheus.HistogramVec
	// oneid counts merges and conflicts decided, and what merges moved:
	// events and rows.
	oneid *prometheus.CounterVec
	moved *prometheus.CounterVec
	// fenced counts document writes that lost to a write made since their
	// document was read.
	fenced prometheus.Counter
	// rebuilds counts customer rebuilds by how their rows were read.
	rebuilds *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		consumed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdp_indexer_consumed_total", Help: "Kafka messages read, by topic.",
		}, []string{"topic"}),
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdp_indexer_applied_total", Help: "Writes OpenSearch accepted, by kind (event, profile, document, delete; event_purge: events of deleted customers removed).",
		}, []string{"kind"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdp_indexer_dead_lettered_total", Help: "Messages sent to the dead-letter topic, by source topic.",
		}, []string{"topic"}),
		deadLetterCuts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdp_indexer_dead_letters_truncated_total", Help: "Dead letters made smaller to fit the broker's message limit, by part: value (only its first 64 KiB kept), key, reason, or value_omitted (the broker refused even that; written without the value).",
		}, []string{"part"}),
		deadLettersLost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdp_indexer_dead_letters_lost_total", Help: "Messages that could not be applied and whose dead letter the broker refused for good even without its value, by source topic: skipped, logged with their position.",
		}, []string{"topic"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdp_indexer_retries_total", Help: "Batch steps retried after a transient failure, by step.",
		}, []string{"step"}),
		parked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cdp_indexer_parked_total", Help: "Order items written before their order arrived (kept in the row store and attached when it does).",
		}),
		demoted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdp_indexer_demoted_fields_total", Help: "Dynamic field values kept unindexed (under attrs_unindexed or properties_unindexed), by object and reason: over_limit (past --max-dynamic-fields) or refused (OpenSearch refused the value for the key's mapped type).",
		}, []string{"object", "reason"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cdp_indexer_lag", Help: "Messages behind the partition's high-water mark when last read, per partition this process owns.",
		}, []string{"topic", "partition"}),
		committedOffset: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cdp_indexer_committed_offset", Help: "The offset last committed (the next one to read), per partition this process owns.",
		}, []string{"topic", "partition"}),
		committedLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cdp_indexer_committed_lag", Help: "Messages between the committed offset and the partition's high-water mark when last read, per partition this process owns: what a restart would read again or still has to read.",
		}, []string{"topic", "partition"}),
		commitFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cdp_indexer_commit_failures_total", Help: "Offset commits that failed (no coordinator, no answer) or that the broker refused for a partition: the offsets are committed again later, or their messages redelivered after a rebalance.",
		}),
		consumerErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdp_indexer_consumer_errors_total", Help: "Errors of the Kafka consumer group, by kind: partition (a partition's fetch or offsets, from the group's error channel), group (the group's other errors), consume (joining or running a session failed; retried with a backoff).",
		}, []string{"kind"}),
		bulkSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cdp_indexer_bulk_seconds", Help: "Latency of bulk writes to OpenSearch, by step.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}, []string{"step"}),
		stepSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cdp_indexer_step_seconds", Help: "Time a batch step took, its retries included, by step.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}, []string{"step"}),
		rebuilds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdp_indexer_rebuilds_total", Help: "Customer rebuilds, by how: by_id (the rows its document's manifest and its markers name, read by id), search (the row store refreshed and searched: no document or manifest yet, a merge or split, an order moved in or back, a fenced round), unchanged (built the same document from the same rows: not written).",
		}, []string{"how"}),
		rebuildSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cdp_indexer_rebuild_part_seconds", Help: "Time the parts of one round of document rebuilds took, by part: refresh (rows and people), versions (and manifests), people (and moves of merged or split profiles), sources_by_id (the rows read by id), sources (the rows searched for), merged, build (the documents, in memory), prepare (dynamic fields), write (the fenced _bulk).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"part"}),
		resolveSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cdp_indexer_resolve_part_seconds", Help: "Time the parts of one OneID resolution of a batch took, by part: cached (answered from the caches), lock (the identities' locks in Redis), read (identities and persons), write (persons, claims, history; the rounds lost to other writers included).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"part"}),
		batchSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cdp_indexer_batch_seconds", Help: "Time to apply and commit a batch, by lane.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 12),
		}, []string{"lane"}),
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cdp_indexer_batch_messages", Help: "Messages in a batch, by lane.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 10),
		}, []string{"lane"}),
		oneid: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdp_indexer_oneid_total", Help: "OneID decisions, by what: merge (profiles merged into a survivor) or conflict (identities that could not join one profile); redis_error counts batches that could not read or write the merged-away ids in Redis (they then trust no cache).",
		}, []string{"what"}),
		moved: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdp_indexer_merge_moved_total", Help: "What merges moved from merged-away customers to their survivors, by kind (event, row, profile).",
		}, []string{"kind"}),
		fenced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cdp_indexer_fenced_writes_total", Help: "Customer document writes and deletes refused because another process wrote the document after it was read (this one may have lost the customer's partition without knowing, paused past its session timeout): each such customer is rebuilt from fresh reads.",
		}),
	}
	reg.MustRegister(m.fenced, m.oneid, m.moved, m.consumed, m.applied, m.deadLettered, m.deadLetterCuts, m.deadLettersLost, m.retries, m.parked, m.demoted, m.lag, m.bulkSeconds, m.resolveSeconds,
		m.committedOffset, m.committedLag, m.commitFailures, m.consumerErrors,
		m.stepSeconds, m.rebuildSeconds, m.rebuilds, m.batchSeconds, m.batchSize)
	return m
}

func (m *metrics) setLag(topic string, partition int32, lag int64) {
	m.lag.WithLabelValues(topic, strconv.Itoa(int(partition))).Set(float64(lag))
}

// setCommitted records a partition's committed offset, and its distance
// to the partition's high-water mark when last read.
func (m *metrics) setCommitted(topic string, partition int32, committed, hwm int64) {
	p := strconv.Itoa(int(partition))
	m.committedOffset.WithLabelValues(topic, p).Set(float64(committed))
	m.committedLag.WithLabelValues(topic, p).Set(float64(max(hwm-committed, 0)))
}

// revoke removes the series of a partition this process no longer owns,
// so that it does not report another process's partition, frozen.
func (m *metrics) revoke(topic string, partition int32) {
	p := strconv.Itoa(int(partition))
	m.lag.DeleteLabelValues(topic, p)
	m.committedOffset.DeleteLabelValues(topic, p)
	m.committedLag.DeleteLabelValues(topic, p)
}

// since observes the time since start as the rebuild part's and returns now.
func (m *metrics) since(part string, start time.Time) time.Time {
	now := time.Now()
	m.rebuildSeconds.WithLabelValues(part).Observe(now.Sub(start).Seconds())
	return now
}
