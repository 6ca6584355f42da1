package indexer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

// batchProcessor applies a batch of messages. It returns nil only when
// every message is durably applied or dead-lettered; it retries what can be
// retried until ctx ends, and then returns ctx's error.
type batchProcessor interface {
	process(ctx context.Context, msgs []*sarama.ConsumerMessage) error
}

// lane is one batching loop of the group handler: the messages of its
// topics are applied in batches of at most size, in arrival order.
//
// A greedy lane, once it has waited its wait, keeps taking messages until
// none comes for another wait, up to size: while it is behind it works in
// large batches (document rebuilds coalesce there), and when it keeps up
// its batches stay small and fresh.
type lane struct {
	name string
	size int // most messages in a batch, or most distinct keys when keys is set
	// keys, when set, names what a message is about (the customers of a
	// dirty marker): a batch is full when it is about size distinct keys,
	// however many messages repeat them.
	keys   func(*sarama.ConsumerMessage) []string
	wait   time.Duration
	greedy bool
	// hold, if set, keeps a greedy lane collecting past a gap, up to
	// maxHold from its first message, while it says so: document
	// rebuilds wait while the source lanes are far behind, so that a
	// customer changed all through a backfill is rebuilt once per hold
	// rather than once per round.
	hold    func() bool
	maxHold time.Duration
	// maxGather, if set, ends a greedy lane's batch that long after its
	// first message, gap or not (unless held): under steady load messages
	// never leave a gap, and the batch grew until it was full.
	maxGather time.Duration
	// maxBytes, if set, ends a batch once its messages hold that many
	// bytes of keys and values: a long hold keeps every marker it reads,
	// and a backfill's markers name many rows.
	maxBytes int
	// compact, if set, rewrites the batch held so far into fewer messages
	// asking for the same work at the same offsets (compactMarkers), each
	// time compactBytes more of keys and values are held: a round held
	// through a backfill keeps what it must do, not every marker it read.
	compact      func([]*sarama.ConsumerMessage) []*sarama.ConsumerMessage
	compactBytes int
	in           chan *sarama.ConsumerMessage
	// newTimer times the wait; nil is a time.Timer (tests fire their own).
	newTimer func(time.Duration) waitTimer
}

// waitTimer is what a lane times its wait with.
type waitTimer interface {
	C() <-chan time.Time
	Reset(time.Duration) bool
	Stop() bool
}

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time        { return r.t.C }
func (r realTimer) Reset(d time.Duration) bool { return r.t.Reset(d) }
func (r realTimer) Stop() bool                 { return r.t.Stop() }

func (l *lane) startTimer() waitTimer {
	if l.newTimer != nil {
		return l.newTimer(l.wait)
	}
	return realTimer{time.NewTimer(l.wait)}
}

// backlog is how far behind its source partitions this process is: per
// partition, the messages after the last one it took, as its fetch saw
// them. A new session starts it afresh, so a partition another process
// took over does not count.
type backlog struct {
	mu  sync.Mutex
	lag map[string]int64
	// pending are the messages handed to the lanes and not yet applied:
	// the lag of a partition counts from the last message handed over,
	// so without them the last batches of a backfill, being applied,
	// looked like no backlog at all.
	pending int64
	// applied are the source batches of the last rateWindow: when each
	// ended and its messages, for the rate the lanes apply at.
	applied []appliedBatch
}

type appliedBatch struct {
	at time.Time
	n  int
}

// rateWindow is how far back the applied rate is measured.
const rateWindow = 10 * time.Second

// done records a source batch applied at now.
func (b *backlog) done(now time.Time, messages int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.applied = append(b.applied, appliedBatch{now, messages})
	b.pending = max(0, b.pending-int64(messages))
	i := 0
	for i < len(b.applied) && now.Sub(b.applied[i].at) > rateWindow {
		i++
	}
	b.applied = b.applied[i:]
}

// state is the backlog at now: its messages (the partitions' lag and
// those being applied), and how long the lanes would take to apply them
// at the rate they applied messages over the last rateWindow; with
// nothing applied lately, as long as it can be.
func (b *backlog) state(now time.Time) (total int64, drain time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	total = b.pending
	for _, l := range b.lag {
		total += l
	}
	if total <= 0 {
		return 0, 0
	}
	n := 0
	for _, a := range b.applied {
		if now.Sub(a.at) <= rateWindow {
			n += a.n
		}
	}
	if n == 0 {
		return total, time.Duration(math.MaxInt64)
	}
	return total, time.Duration(float64(total) / float64(n) * float64(rateWindow))
}

// took records a message of a partition handed to a lane, with the lag
// its fetch saw after it; the message counts until done counts it.
func (b *backlog) took(topic string, partition int32, lag int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.lag == nil {
		b.lag = map[string]int64{}
	}
	b.lag[topic+"/"+strconv.Itoa(int(partition))] = lag
	b.pending++
}

func (b *backlog) reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	clear(b.lag)
	b.pending = 0 // a new session reads them again
}

// groupHandler feeds the messages of every claimed partition into its
// lanes, one batching loop per lane and session, and marks and commits
// offsets only after a batch is applied. A partition belongs to one lane,
// so its offsets are committed in order, and the committed offset never
// passes a message that is not durably written.
type groupHandler struct {
	proc      batchProcessor
	log       *slog.Logger
	lanes     []*lane
	route     func(topic string, partition int32) int // the lane of a partition
	grace     time.Duration
	hard      context.Context // ends grace after shutdown: in-flight work is abandoned then
	onLag     func(topic string, partition int32, lag int64)
	onAssign  func() // at every new session, before any message
	onConsume func(topic string)
	onBatch   func(lane string, messages int, took time.Duration)

	committer offsetCommitter
	// onCommitted hears of a partition's committed offset (at a commit,
	// or at the claim's start: the offset it starts from) and of its
	// high-water mark when last read, whenever either changes.
	onCommitted func(topic string, partition int32, committed, hwm int64)
	// onCommit hears of every commit's outcome: nil, or why some or all
	// of its offsets were not committed.
	onCommit func(err error)
	// onRevoke hears of every partition of a session that ended, after
	// its last commit.
	onRevoke func(topic string, partition int32)

	offsets *sessionOffsets
	done    chan struct{}
	cancel  context.CancelFunc
	// commit asks the session's committer to commit what is marked; it
	// holds one request, so requests made while a commit is in flight
	// coalesce into the next.
	commit chan struct{}
}

func (h *groupHandler) Setup(s sarama.ConsumerGroupSession) error {
	ctx, cancel := context.WithCancel(h.hard)
	h.cancel = cancel
	if h.onAssign != nil {
		h.onAssign()
	}
	h.done = make(chan struct{})
	lanesDone := make(chan struct{})
	h.commit = make(chan struct{}, 1)
	var wg sync.WaitGroup
	for _, l := range h.lanes {
		l.in = make(chan *sarama.ConsumerMessage, min(l.size, 1000))
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.loop(ctx, s, l)
		}()
	}
	// Offsets are committed off the lanes' path: a commit shares its
	// connection with the fetches, which Kafka answers in order, so a
	// commit in the lane waited up to a fetch's MaxWaitTime after every
	// batch (most of a one-message batch's time). A lane marks its batch
	// only once it is applied, so the committer only ever commits what is
	// durably written; the last commit is made after every lane is done.
	//
	// A commit that fails is tried again commitRetry later (or at the
	// next batch), with whatever was marked since.
	h.offsets = &sessionOffsets{}
	if h.onCommitted != nil {
		h.offsets.report = func(tp topicPartition, c committedAt) { h.onCommitted(tp.topic, tp.partition, c.offset, c.hwm) }
	}
	committed := make(chan struct{})
	go func() {
		defer close(committed)
		var again <-chan time.Time
		for {
			select {
			case <-h.commit:
			case <-again:
			case <-lanesDone:
				h.commitMarked(s)
				return
			}
			again = nil
			if !h.commitMarked(s) {
				again = time.After(commitRetry)
			}
		}
	}()
	go func() {
		wg.Wait()
		close(lanesDone)
		<-committed
		close(h.done)
	}()
	h.log.Info("partitions assigned", "claims", s.Claims(), "generation", s.GenerationID())
	return nil
}

// Cleanup runs after every ConsumeClaim has returned: the lanes finish
// the batches in hand (within the grace period) and exit.
func (h *groupHandler) Cleanup(s sarama.ConsumerGroupSession) error {
	for _, l := range h.lanes {
		close(l.in)
	}
	select {
	case <-h.done:
	case <-time.After(h.grace):
		h.log.Warn("abandoning the batches in hand: they will be redelivered", "grace", h.grace)
		h.cancel()
		<-h.done
	}
	h.cancel()
	// The session's partitions may go to another process: their series
	// go, after the last commit, so that this one never reports a
	// partition it does not own. A partition kept gets them back from
	// the next session's claim.
	if h.onRevoke != nil {
		for _, tp := range h.offsets.partitions(s.Claims()) {
			h.onRevoke(tp.topic, tp.partition)
		}
	}
	return nil
}

// commitRetry is how soon a failed commit is tried again, when no batch
// asks for a commit before.
const commitRetry = time.Second

// commitMarked commits what the lanes marked since the last commit, and
// says whether all of it was committed. What was not stays marked, unless
// a newer mark replaced it, for the next commit.
func (h *groupHandler) commitMarked(s sarama.ConsumerGroupSession) bool {
	offsets := h.offsets.take()
	if len(offsets) == 0 {
		return true
	}
	refused, err := h.committer.commitOffsets(s, offsets)
	var failed []error
	if err != nil {
		failed = append(failed, err)
	}
	for tp, e := range refused {
		failed = append(failed, fmt.Errorf("%s/%d: %w", tp.topic, tp.partition, e))
	}
	h.offsets.settle(offsets, refused, err != nil)
	err = errors.Join(failed...)
	if h.onCommit != nil {
		h.onCommit(err)
	}
	return err == nil
}

func (h *groupHandler) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	in := h.lanes[h.route(claim.Topic(), claim.Partition())].in
	tp := topicPartition{claim.Topic(), claim.Partition()}
	hwm := claim.HighWaterMarkOffset()
	h.offsets.claimed(tp, claim.InitialOffset(), hwm)
	for {
		select {
		case msg, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			h.onConsume(msg.Topic)
			if w := claim.HighWaterMarkOffset(); w != hwm {
				hwm = w
				h.offsets.read(tp, hwm)
			}
			h.onLag(msg.Topic, msg.Partition, hwm-msg.Offset-1)
			select {
			case in <- msg:
			case <-s.Context().Done():
				return nil
			}
		case <-s.Context().Done():
			return nil
		}
	}
}

func (h *groupHandler) loop(ctx context.Context, s sarama.ConsumerGroupSession, l *lane) {
	for s.Context().Err() == nil {
		batch, open := l.collect(s.Context())
		if len(batch) > 0 {
			start := time.Now()
			if err := h.proc.process(ctx, batch); err != nil {
				h.log.Warn("batch not applied: it will be redelivered", "lane", l.name, "messages", len(batch), "err", err)
				return
			}
			for _, m := range batch {
				h.offsets.mark(m)
			}
			select {
			case h.commit <- struct{}{}:
			default: // a commit is already asked for: it takes these too
			}
			h.onBatch(l.name, len(batch), time.Since(start))
		}
		if !open {
			return
		}
	}
}

// collect waits for one message, then takes more until the batch is full
// or the lane's wait has passed; a greedy lane then goes on until no
// message comes for a wait. open is false once the input is closed.
func (l *lane) collect(session context.Context) (batch []*sarama.ConsumerMessage, open bool) {
	weight, size := 0, 0
	nextCompact := l.compactBytes
	var seen map[string]struct{}
	take := func(m *sarama.ConsumerMessage) {
		batch = append(batch, m)
		size += messageBytes(m)
		if l.keys == nil {
			weight++
		} else {
			if seen == nil {
				seen = map[string]struct{}{}
			}
			for _, k := range l.keys(m) {
				seen[k] = struct{}{}
			}
			weight = len(seen)
		}
		if l.compact != nil && size >= nextCompact {
			// The keys stay the same, so the weight does.
			batch = l.compact(batch)
			size = 0
			for _, m := range batch {
				size += messageBytes(m)
			}
			nextCompact = size + l.compactBytes
		}
	}
	select {
	case m, ok := <-l.in:
		if !ok {
			return nil, false
		}
		take(m)
	case <-session.Done():
		return nil, true
	}
	started := time.Now()
	held := func() bool { return l.hold != nil && time.Since(started) < l.maxHold && l.hold() }
	timer := l.startTimer()
	defer timer.Stop()
	greedy := false // past the wait, in a greedy lane
	for weight < l.size && (l.maxBytes == 0 || size < l.maxBytes) {
		select {
		case m, ok := <-l.in:
			if !ok {
				return batch, false
			}
			take(m)
			if greedy {
				if l.maxGather > 0 && time.Since(started) >= l.maxGather && !held() {
					return batch, true
				}
				timer.Reset(l.wait)
			}
		case <-timer.C():
			if greedy && held() {
				timer.Reset(l.wait)
				continue
			}
			if !l.greedy || greedy {
				return batch, true
			}
			// Go on while messages keep coming, until a gap of wait: a
			// backlog arrives fetch after fetch, with short gaps between.
			greedy = true
			timer.Reset(l.wait)
		case <-session.Done():
			return batch, true
		}
	}
	return batch, true
}

// messageBytes is what a lane counts of a message it holds.
func messageBytes(m *sarama.ConsumerMessage) int { return len(m.Key) + len(m.Value) }

// consume runs the group until ctx ends, rejoining after every rebalance
// and riding out broker outages with a backoff.
//
// Every error of the group goes to errs, by kind (consumerErrors): those
// of its Errors channel, and every Consume that failed.
func consume(ctx context.Context, group sarama.ConsumerGroup, topics []string, h *groupHandler, errs consumerErrors) error {
	go func() {
		for err := range group.Errors() {
			errs.consumerError(errorKind(err), err)
		}
	}()
	b := newBackoff(200*time.Millisecond, 10*time.Second)
	// Each successful Consume (it returns at every rebalance) starts the
	// backoff afresh.
	open := func(err error) bool { return !errors.Is(err, sarama.ErrClosedConsumerGroup) }
	for ctx.Err() == nil {
		err := retry(ctx, b, open, func(err error, d time.Duration) {
			errs.consumerError("consume", err, "in", d)
		}, func() error { return group.Consume(ctx, topics, h) })
		if err == nil {
			errs.consumed()
		}
		if !open(err) {
			return nil
		}
	}
	return nil
}

// consumerErrors hears of the consumer group's errors, by kind:
// partition (a partition's fetch or offsets), group (its other errors),
// consume (a session that could not start or run).
type consumerErrors interface {
	consumerError(kind string, err error, attrs ...any)
	// consumed says a session ran and ended without error.
	consumed()
}

// errorKind is the kind of an error of the group's Errors channel.
func errorKind(err error) string {
	var ce *sarama.ConsumerError
	if errors.As(err, &ce) {
		return "partition"
	}
	return "group"
}
