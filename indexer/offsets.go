package indexer

import (
	"errors"
	"fmt"
	"sync"

	"github.com/IBM/sarama"
)

// topicPartition names a partition.
type topicPartition struct {
	topic     string
	partition int32
}

// offsetCommitter commits a session's offsets: per partition, the next
// offset to read. It returns the partitions the broker refused, each with
// its reason, or an error when the commit as a whole failed.
type offsetCommitter interface {
	commitOffsets(s sarama.ConsumerGroupSession, offsets map[topicPartition]int64) (refused map[topicPartition]error, err error)
}

// committedAt is a partition's committed offset and its high-water mark
// when last read.
type committedAt struct{ offset, hwm int64 }

// sessionOffsets is where a session stands on each of its partitions:
// what its lanes applied and is not committed yet, what is committed, and
// the high-water mark when last read.
type sessionOffsets struct {
	// report, if set, hears of a partition's committed offset and
	// high-water mark whenever either changes and the committed offset
	// is known. It is called with mu held, so that reports of a
	// partition come in the order of the changes.
	report func(topicPartition, committedAt)

	mu        sync.Mutex
	marked    map[topicPartition]int64
	committed map[topicPartition]int64
	hwm       map[topicPartition]int64
}

func (o *sessionOffsets) init() {
	if o.marked == nil {
		o.marked, o.committed, o.hwm = map[topicPartition]int64{}, map[topicPartition]int64{}, map[topicPartition]int64{}
	}
}

// mark records that m is applied: its partition can be committed past it.
// A partition's messages are marked in order (one lane has it).
func (o *sessionOffsets) mark(m *sarama.ConsumerMessage) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.init()
	o.marked[topicPartition{m.Topic, m.Partition}] = m.Offset + 1
}

// take returns what is marked and not committed, for a commit to settle.
func (o *sessionOffsets) take() map[topicPartition]int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.init()
	taken := o.marked
	o.marked = map[topicPartition]int64{}
	return taken
}

// settle records a commit of offsets: those refused (all of them, if
// failed) are marked again unless a newer mark came meanwhile; the others
// are committed.
func (o *sessionOffsets) settle(offsets map[topicPartition]int64, refused map[topicPartition]error, failed bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.init()
	for tp, off := range offsets {
		if _, ok := refused[tp]; ok || failed {
			if _, newer := o.marked[tp]; !newer {
				o.marked[tp] = off
			}
			continue
		}
		o.committed[tp] = off
		o.reportLocked(tp)
	}
}

func (o *sessionOffsets) reportLocked(tp topicPartition) {
	if c, ok := o.committed[tp]; ok && o.report != nil {
		o.report(tp, committedAt{c, o.hwm[tp]})
	}
}

// claimed records a claim's start: the offset it starts from, committed
// unless negative (nothing committed yet: the claim starts at the
// consumer's initial offset), and the partition's high-water mark.
func (o *sessionOffsets) claimed(tp topicPartition, initial, hwm int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.init()
	if initial >= 0 {
		o.committed[tp] = initial
	}
	o.hwm[tp] = hwm
	o.reportLocked(tp)
}

// read records a partition's high-water mark.
func (o *sessionOffsets) read(tp topicPartition, hwm int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.init()
	o.hwm[tp] = hwm
	o.reportLocked(tp)
}

// partitions returns the partitions the session claimed or heard of.
func (o *sessionOffsets) partitions(claims map[string][]int32) []topicPartition {
	o.mu.Lock()
	defer o.mu.Unlock()
	seen := map[topicPartition]bool{}
	var tps []topicPartition
	add := func(tp topicPartition) {
		if !seen[tp] {
			seen[tp] = true
			tps = append(tps, tp)
		}
	}
	for topic, parts := range claims {
		for _, p := range parts {
			add(topicPartition{topic, p})
		}
	}
	for tp := range o.hwm {
		add(tp)
	}
	for tp := range o.committed {
		add(tp)
	}
	return tps
}

// groupCommitter commits offsets to the group's coordinator itself, in
// the request sarama's session.Commit sends: session.Commit says nothing
// of its outcome (its failures go to the group's Errors channel, mixed
// with every fetch error), and an operator needs to know what is
// committed and whether commits fail.
type groupCommitter struct {
	client sarama.Client
	group  string
}

// commitRequestVersion is the OffsetCommit version sarama sends to a
// broker of KafkaConfig's version (V3_6_0_0): 8, the first flexible one.
const commitRequestVersion = 8

func (c groupCommitter) commitOffsets(s sarama.ConsumerGroupSession, offsets map[topicPartition]int64) (map[topicPartition]error, error) {
	broker, err := c.client.Coordinator(c.group)
	if err != nil {
		return nil, fmt.Errorf("commit: group coordinator: %w", err)
	}
	// The generation fences the commit: the broker refuses it from a
	// member that is no longer in the group's current generation.
	req := &sarama.OffsetCommitRequest{
		Version:                 commitRequestVersion,
		ConsumerGroup:           c.group,
		ConsumerID:              s.MemberID(),
		ConsumerGroupGeneration: s.GenerationID(),
	}
	for tp, off := range offsets {
		req.AddBlockWithLeaderEpoch(tp.topic, tp.partition, off, -1, 0, "")
	}
	resp, err := broker.CommitOffset(req)
	if err != nil {
		// As sarama's offset manager does: the connection may be broken,
		// or the coordinator gone; the next commit opens it again.
		_ = broker.Close()
		_ = c.client.RefreshCoordinator(c.group)
		return nil, fmt.Errorf("commit: %w", err)
	}
	refused := map[topicPartition]error{}
	moved := false
	for tp := range offsets {
		kerr, ok := resp.Errors[tp.topic][tp.partition]
		switch {
		case !ok:
			refused[tp] = sarama.ErrIncompleteResponse
		case errors.Is(kerr, sarama.ErrNoError):
		default:
			refused[tp] = kerr
			moved = moved || errors.Is(kerr, sarama.ErrNotCoordinatorForConsumer) || errors.Is(kerr, sarama.ErrConsumerCoordinatorNotAvailable)
		}
	}
	if moved {
		_ = c.client.RefreshCoordinator(c.group)
	}
	return refused, nil
}
