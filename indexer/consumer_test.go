package indexer

import (
	"context"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

func TestLaneCollect(t *testing.T) {
	tests := []struct {
		name string
		lane lane
		// queued messages are in the lane before collect starts; late
		// ones arrive after the lane's wait has passed.
		queued, late int
		keyed        []string // queued messages with these keys
		closeInput   bool
		want         int
		wantOpen     bool
	}{
		{name: "a batch ends when it is full", lane: lane{size: 3, wait: time.Hour}, queued: 5, want: 3, wantOpen: true},
		{name: "a batch ends when the wait has passed", lane: lane{size: 100, wait: 20 * time.Millisecond}, queued: 2, want: 2, wantOpen: true},
		{name: "a greedy lane takes what arrives while it waits, like any lane", lane: lane{size: 100, wait: 20 * time.Millisecond, greedy: true}, queued: 2, late: 5, want: 7, wantOpen: true},
		{name: "a greedy lane with a backlog takes all of it and returns", lane: lane{size: 100, wait: 20 * time.Millisecond, greedy: true}, queued: 60, want: 60, wantOpen: true},
		{name: "a greedy lane still stops at its size", lane: lane{size: 4, wait: 20 * time.Millisecond, greedy: true}, queued: 2, late: 5, want: 4, wantOpen: true},
		{name: "a lane with keys counts distinct keys, not messages", lane: lane{size: 3, wait: time.Hour, keys: func(m *sarama.ConsumerMessage) []string { return []string{string(m.Key)} }}, keyed: []string{"a", "b", "a", "a", "b", "c", "d"}, want: 6, wantOpen: true},
		{name: "a closed input ends the batch and says so", lane: lane{size: 100, wait: time.Hour}, queued: 2, closeInput: true, want: 2, wantOpen: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := tt.lane
			l.in = make(chan *sarama.ConsumerMessage, 100)
			for range tt.queued {
				l.in <- &sarama.ConsumerMessage{}
			}
			for _, k := range tt.keyed {
				l.in <- &sarama.ConsumerMessage{Key: []byte(k)}
			}
			if tt.closeInput {
				close(l.in)
			}
			if tt.late > 0 {
				go func() {
					time.Sleep(l.wait / 2)
					for range tt.late {
						l.in <- &sarama.ConsumerMessage{}
					}
				}()
			}
			batch, open := l.collect(context.Background())
			if len(batch) != tt.want || open != tt.wantOpen {
				t.Fatalf("collect = %d messages, open %v; want %d, open %v", len(batch), open, tt.want, tt.wantOpen)
			}
		})
	}
}

// A backlog arrives fetch after fetch, with short gaps: a greedy lane goes
// on past its wait while they keep coming, a plain lane stops at its wait.
func TestAGreedyLaneTakesAStreamWithShortGapsPastItsWait(t *testing.T) {
	const n, gap, wait = 20, 5 * time.Millisecond, 50 * time.Millisecond // the stream lasts twice the wait
	for _, greedy := range []bool{true, false} {
		l := lane{size: 1000, wait: wait, greedy: greedy, in: make(chan *sarama.ConsumerMessage, n)}
		sent := make(chan struct{})
		go func() {
			defer close(sent)
			for range n {
				l.in <- &sarama.ConsumerMessage{}
				time.Sleep(gap)
			}
		}()
		batch, _ := l.collect(context.Background())
		<-sent
		if greedy && len(batch) != n {
			t.Errorf("greedy lane took %d of %d messages arriving %s apart", len(batch), n, gap)
		}
		if !greedy && len(batch) >= n {
			t.Errorf("plain lane took all %d messages, past its wait of %s", len(batch), wait)
		}
	}
}
