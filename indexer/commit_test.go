package indexer

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// blockingSession is a consumer group session of no partitions.
type blockingSession struct {
	sarama.ConsumerGroupSession
	ctx context.Context
}

func (s *blockingSession) Context() context.Context   { return s.ctx }
func (s *blockingSession) Claims() map[string][]int32 { return nil }
func (s *blockingSession) GenerationID() int32        { return 1 }

// blockingCommitter commits until the test releases it, recording the
// offsets of each commit as it begins.
type blockingCommitter struct {
	release chan struct{}

	mu      sync.Mutex
	commits []int64 // the offset each commit began with (one partition)
}

func (c *blockingCommitter) commitOffsets(_ sarama.ConsumerGroupSession, offsets map[topicPartition]int64) (map[topicPartition]error, error) {
	c.mu.Lock()
	for _, off := range offsets {
		c.commits = append(c.commits, off)
	}
	c.mu.Unlock()
	<-c.release
	return nil, nil
}

// committedPast says whether a commit began past offset.
func (c *blockingCommitter) committedPast(offset int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, o := range c.commits {
		if o > offset {
			return true
		}
	}
	return false
}

// recordingProc applies a batch by recording it, and fails the test if
// any of its messages was committed before it was applied.
type recordingProc struct {
	t       *testing.T
	c       *blockingCommitter
	applied chan int64
}

func (p recordingProc) process(_ context.Context, msgs []*sarama.ConsumerMessage) error {
	for _, m := range msgs {
		if p.c.committedPast(m.Offset) {
			p.t.Errorf("offset %d was committed before its batch was applied", m.Offset)
		}
		p.applied <- m.Offset
	}
	return nil
}

func TestALaneGoesOnWithItsNextBatchWhileACommitIsInFlightAndTheLastCommitTakesEveryBatch(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := &blockingSession{ctx: ctx}
	c := &blockingCommitter{release: make(chan struct{})}
	applied := make(chan int64, 10)
	l := &lane{name: "sources-0", size: 1, wait: time.Hour}
	h := &groupHandler{
		proc: recordingProc{t, c, applied}, log: slog.New(slog.NewTextHandler(io.Discard, nil)), committer: c,
		lanes: []*lane{l}, grace: time.Minute, hard: context.Background(),
		onBatch: func(string, int, time.Duration) {},
	}
	if err := h.Setup(s); err != nil {
		t.Fatal(err)
	}
	go func() {
		for off := range int64(3) {
			l.in <- &sarama.ConsumerMessage{Offset: off}
		}
	}()
	// The first batch's commit blocks; the lane applies the other two
	// meanwhile instead of waiting for it.
	for want := range int64(3) {
		select {
		case got := <-applied:
			if got != want {
				t.Fatalf("applied offset %d, want %d", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("offset %d not applied while a commit was in flight", want)
		}
	}
	close(c.release)
	if err := h.Cleanup(s); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.commits) == 0 {
		t.Fatal("nothing was committed")
	}
	if last := c.commits[len(c.commits)-1]; last != 3 {
		t.Errorf("the last commit took offset %d, want 3: past all three batches", last)
	}
}

// scriptedCommitter answers a commit as told, and records what each
// commit carried.
type scriptedCommitter struct {
	refuse  map[topicPartition]error
	fail    error
	during  func() // runs while the commit is in flight
	carried []map[topicPartition]int64
}

func (c *scriptedCommitter) commitOffsets(_ sarama.ConsumerGroupSession, offsets map[topicPartition]int64) (map[topicPartition]error, error) {
	c.carried = append(c.carried, offsets)
	if c.during != nil {
		c.during()
	}
	if c.fail != nil {
		return nil, c.fail
	}
	return c.refuse, nil
}

func TestOnlyWhatTheBrokerCommittedIsReportedAndWhatItRefusedGoesInTheNextCommit(t *testing.T) {
	p0, p1 := topicPartition{"t.cdc.customers", 0}, topicPartition{"t.cdc.customers", 1}
	msg := func(tp topicPartition, offset int64) *sarama.ConsumerMessage {
		return &sarama.ConsumerMessage{Topic: tp.topic, Partition: tp.partition, Offset: offset}
	}
	for _, tc := range []struct {
		name          string
		committer     func(h *groupHandler) *scriptedCommitter
		wantOK        bool
		wantCommitted map[topicPartition]int64 // reported, with a high-water mark of 10
		wantNext      map[topicPartition]int64 // what the next commit carries
	}{
		{
			name:          "all committed",
			committer:     func(*groupHandler) *scriptedCommitter { return &scriptedCommitter{} },
			wantOK:        true,
			wantCommitted: map[topicPartition]int64{p0: 5, p1: 3},
			wantNext:      map[topicPartition]int64{},
		},
		{
			name:          "the commit failed as a whole",
			committer:     func(*groupHandler) *scriptedCommitter { return &scriptedCommitter{fail: sarama.ErrOutOfBrokers} },
			wantCommitted: map[topicPartition]int64{},
			wantNext:      map[topicPartition]int64{p0: 5, p1: 3},
		},
		{
			name: "the broker refused a partition",
			committer: func(*groupHandler) *scriptedCommitter {
				return &scriptedCommitter{refuse: map[topicPartition]error{p1: sarama.ErrIllegalGeneration}}
			},
			wantCommitted: map[topicPartition]int64{p0: 5},
			wantNext:      map[topicPartition]int64{p1: 3},
		},
		{
			name: "a mark made while a refused commit was in flight wins",
			committer: func(h *groupHandler) *scriptedCommitter {
				return &scriptedCommitter{fail: sarama.ErrOutOfBrokers, during: func() { h.offsets.mark(msg(p1, 7)) }}
			},
			wantCommitted: map[topicPartition]int64{},
			wantNext:      map[topicPartition]int64{p0: 5, p1: 8},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			committed := map[topicPartition]int64{}
			var outcomes []error
			h := &groupHandler{
				onCommitted: func(topic string, partition int32, offset, hwm int64) {
					if hwm != 10 {
						t.Errorf("%s/%d reported with a high-water mark of %d, want 10", topic, partition, hwm)
					}
					committed[topicPartition{topic, partition}] = offset
				},
				onCommit: func(err error) { outcomes = append(outcomes, err) },
			}
			c := tc.committer(h)
			h.committer = c
			h.offsets = &sessionOffsets{report: func(tp topicPartition, at committedAt) { h.onCommitted(tp.topic, tp.partition, at.offset, at.hwm) }}
			h.offsets.read(p0, 10)
			h.offsets.read(p1, 10)
			h.offsets.mark(msg(p0, 4))
			h.offsets.mark(msg(p1, 2))

			if ok := h.commitMarked(&blockingSession{ctx: context.Background()}); ok != tc.wantOK {
				t.Errorf("commitMarked = %t, want %t", ok, tc.wantOK)
			}
			if len(outcomes) != 1 || (outcomes[0] == nil) != tc.wantOK {
				t.Errorf("commit outcomes %v, want one, failed: %t", outcomes, !tc.wantOK)
			}
			if !maps.Equal(committed, tc.wantCommitted) {
				t.Errorf("reported committed %v, want %v", committed, tc.wantCommitted)
			}
			c.refuse, c.fail, c.during = nil, nil, nil
			h.commitMarked(&blockingSession{ctx: context.Background()})
			var next map[topicPartition]int64
			if len(c.carried) > 1 {
				next = c.carried[1]
			}
			if len(tc.wantNext) > 0 && !maps.Equal(next, tc.wantNext) {
				t.Errorf("the next commit carried %v, want %v", next, tc.wantNext)
			}
			if len(tc.wantNext) == 0 && len(c.carried) > 1 {
				t.Errorf("a second commit carried %v, want none: nothing was left to commit", next)
			}
		})
	}
}
