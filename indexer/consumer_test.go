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
		{name: "a greedy lane takes what arrives while it waits", lane: lane{size: 100, wait: 20 * time.Millisecond, greedy: true}, queued: 2, late: 5, want: 7, wantOpen: true},
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
