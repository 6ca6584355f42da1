package indexer

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/IBM/sarama"
)

// batchProcessor applies a batch of messages. It returns nil only when
// every message is durably applied or dead-lettered; it retries what can be
// retried until ctx ends, and then returns ctx's error.
type batchProcessor interface {
	process(ctx context.Context, msgs []*sarama.ConsumerMessage) error
}

// groupHandler feeds the messages of every claimed partition into one
// batching loop per session, and marks and commits offsets only after a
// batch is applied. Offsets of a partition are committed in order, so the
// committed offset never passes a message that is not durably written.
type groupHandler struct {
	proc      batchProcessor
	log       *slog.Logger
	size      int
	wait      time.Duration
	grace     time.Duration
	hard      context.Context // ends grace after shutdown: in-flight work is abandoned then
	onLag     func(topic string, partition int32, lag int64)
	onConsume func(topic string)

	in     chan *sarama.ConsumerMessage
	done   chan struct{}
	cancel context.CancelFunc
}

func (h *groupHandler) Setup(s sarama.ConsumerGroupSession) error {
	h.in = make(chan *sarama.ConsumerMessage, h.size)
	h.done = make(chan struct{})
	ctx, cancel := context.WithCancel(h.hard)
	h.cancel = cancel
	go h.loop(ctx, s)
	h.log.Info("partitions assigned", "claims", s.Claims(), "generation", s.GenerationID())
	return nil
}

// Cleanup runs after every ConsumeClaim has returned: the loop finishes
// the batch in hand (within the grace period) and exits.
func (h *groupHandler) Cleanup(s sarama.ConsumerGroupSession) error {
	close(h.in)
	select {
	case <-h.done:
	case <-time.After(h.grace):
		h.log.Warn("abandoning the batch in hand: it will be redelivered", "grace", h.grace)
		h.cancel()
		<-h.done
	}
	h.cancel()
	return nil
}

func (h *groupHandler) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for {
		select {
		case msg, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			h.onConsume(msg.Topic)
			h.onLag(msg.Topic, msg.Partition, claim.HighWaterMarkOffset()-msg.Offset-1)
			select {
			case h.in <- msg:
			case <-s.Context().Done():
				return nil
			}
		case <-s.Context().Done():
			return nil
		}
	}
}

func (h *groupHandler) loop(ctx context.Context, s sarama.ConsumerGroupSession) {
	defer close(h.done)
	for s.Context().Err() == nil {
		batch, open := h.collect(s.Context())
		if len(batch) > 0 {
			if err := h.proc.process(ctx, batch); err != nil {
				h.log.Warn("batch not applied: it will be redelivered", "messages", len(batch), "err", err)
				return
			}
			for _, m := range batch {
				s.MarkMessage(m, "")
			}
			s.Commit()
		}
		if !open {
			return
		}
	}
}

// collect waits for one message, then takes more until the batch is full
// or the batch wait has passed. open is false once the input is closed.
func (h *groupHandler) collect(session context.Context) (batch []*sarama.ConsumerMessage, open bool) {
	select {
	case m, ok := <-h.in:
		if !ok {
			return nil, false
		}
		batch = append(batch, m)
	case <-session.Done():
		return nil, true
	}
	timer := time.NewTimer(h.wait)
	defer timer.Stop()
	for len(batch) < h.size {
		select {
		case m, ok := <-h.in:
			if !ok {
				return batch, false
			}
			batch = append(batch, m)
		case <-timer.C:
			return batch, true
		case <-session.Done():
			return batch, true
		}
	}
	return batch, true
}

// consume runs the group until ctx ends, rejoining after every rebalance
// and riding out broker outages with a backoff.
func consume(ctx context.Context, group sarama.ConsumerGroup, topics []string, h *groupHandler, log *slog.Logger) error {
	go func() {
		for err := range group.Errors() {
			log.Warn("kafka consumer", "err", err)
		}
	}()
	backoff := newBackoff(200*time.Millisecond, 10*time.Second)
	for ctx.Err() == nil {
		err := group.Consume(ctx, topics, h)
		switch {
		case errors.Is(err, sarama.ErrClosedConsumerGroup):
			return nil
		case err != nil:
			d := backoff.next()
			log.Warn("kafka consume failed, retrying", "err", err, "in", d)
			if sleep(ctx, d) != nil {
				return nil
			}
		default:
			backoff.reset()
		}
	}
	return nil
}
