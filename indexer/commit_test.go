package indexer

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// blockingSession is a consumer group session whose Commit blocks until
// the test releases it, recording what was marked at each commit.
type blockingSession struct {
	sarama.ConsumerGroupSession
	ctx     context.Context
	release chan struct{}

	mu      sync.Mutex
	marked  []int64
	commits [][]int64 // what was marked when each commit began
}

func (s *blockingSession) Context() context.Context   { return s.ctx }
func (s *blockingSession) Claims() map[string][]int32 { return nil }
func (s *blockingSession) GenerationID() int32        { return 1 }
func (s *blockingSession) MarkMessage(m *sarama.ConsumerMessage, _ string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.marked = append(s.marked, m.Offset)
}

func (s *blockingSession) Commit() {
	s.mu.Lock()
	s.commits = append(s.commits, append([]int64(nil), s.marked...))
	s.mu.Unlock()
	<-s.release
}

func (s *blockingSession) isMarked(offset int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.marked {
		if o == offset {
			return true
		}
	}
	return false
}

// recordingProc applies a batch by recording it, and fails the test if
// any of its messages was marked before it was applied.
type recordingProc struct {
	t       *testing.T
	s       *blockingSession
	applied chan int64
}

func (p recordingProc) process(_ context.Context, msgs []*sarama.ConsumerMessage) error {
	for _, m := range msgs {
		if p.s.isMarked(m.Offset) {
			p.t.Errorf("offset %d was marked before its batch was applied", m.Offset)
		}
		p.applied <- m.Offset
	}
	return nil
}

func TestALaneGoesOnWithItsNextBatchWhileACommitIsInFlightAndTheLastCommitTakesEveryBatch(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := &blockingSession{ctx: ctx, release: make(chan struct{})}
	applied := make(chan int64, 10)
	l := &lane{name: "sources-0", size: 1, wait: time.Hour}
	h := &groupHandler{
		proc: recordingProc{t, s, applied}, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
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
	close(s.release)
	if err := h.Cleanup(s); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.commits) == 0 {
		t.Fatal("nothing was committed")
	}
	if last := s.commits[len(s.commits)-1]; len(last) != 3 {
		t.Errorf("the last commit took the marks %v, want all three batches", last)
	}
}
