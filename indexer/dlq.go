package indexer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/IBM/sarama"
)

// deadLetter is the record the dead-letter topic receives: where the
// message came from, the message itself (or, when it is large, its
// beginning), and why it was not applied.
type deadLetter struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Key       string `json:"key"`
	// KeySize is the key's length in bytes, given when Key is cut.
	KeySize     int    `json:"key_size,omitempty"`
	Value       string `json:"value,omitempty"`
	ValueBase64 []byte `json:"value_base64,omitempty"`
	// Size is the length of the message's value in bytes.
	Size int `json:"size"`
	// Truncated: Value (or ValueBase64) is only the first bytes of the
	// message's value.
	Truncated bool `json:"truncated,omitempty"`
	// ValueOmitted: the broker refused the record with the value's
	// beginning, so the record holds where the message is and why only.
	ValueOmitted bool `json:"value_omitted,omitempty"`
	// SHA256 is the hash of the whole value when the record does not hold
	// all of it, to match the message read from its topic.
	SHA256   string `json:"sha256,omitempty"`
	Reason   string `json:"reason"`
	FailedAt string `json:"failed_at"`
}

// letterForm bounds what a dead letter holds of its message, so that the
// record fits the broker's message limit (1 MiB by default) whatever the
// message: JSON escapes a byte in at most 6, so the full form is at most
// about 6 × (64 + 1 + 4) KiB of JSON, well under the limit.
type letterForm struct{ value, key, reason int }

var (
	// fullForm is the first try: the value up to 64 KiB.
	fullForm = letterForm{value: 64 << 10, key: 1 << 10, reason: 4 << 10}
	// bareForm is the record written when the broker refuses the full
	// form for good (its topic's limit is lower): no value at all.
	bareForm = letterForm{value: 0, key: 256, reason: 512}
)

// rejected is a message that can never be applied, with the reason.
type rejected struct {
	msg    *sarama.ConsumerMessage
	reason string
}

// deadLetterRecord is the record of r in form f, and the parts of it that
// had to be cut ("value", "key", "reason").
func deadLetterRecord(topic string, r rejected, failedAt string, f letterForm) (*sarama.ProducerMessage, []string) {
	var cuts []string
	key, keyCut := cut(r.msg.Key, f.key)
	reason, reasonCut := cut([]byte(r.reason), f.reason)
	d := deadLetter{Topic: r.msg.Topic, Partition: r.msg.Partition, Offset: r.msg.Offset,
		Key: string(key), Size: len(r.msg.Value), Reason: string(reason), FailedAt: failedAt}
	if keyCut {
		d.KeySize = len(r.msg.Key)
		cuts = append(cuts, "key")
	}
	if reasonCut {
		d.Reason += fmt.Sprintf(" … (cut from %d bytes)", len(r.reason))
		cuts = append(cuts, "reason")
	}
	value, valueCut := cut(r.msg.Value, f.value)
	switch {
	case f.value == 0:
		d.ValueOmitted = len(r.msg.Value) > 0
	case utf8.Valid(value):
		d.Value = string(value)
	default:
		d.ValueBase64 = value
	}
	if valueCut {
		d.Truncated = f.value > 0
		sum := sha256.Sum256(r.msg.Value)
		d.SHA256 = hex.EncodeToString(sum[:])
		cuts = append(cuts, "value")
	}
	b, _ := json.Marshal(d)
	return &sarama.ProducerMessage{
		Topic:   topic,
		Key:     sarama.ByteEncoder(key),
		Value:   sarama.ByteEncoder(b),
		Headers: []sarama.RecordHeader{{Key: []byte("cdp-reason"), Value: []byte(d.Reason)}},
	}, cuts
}

// cut returns b's first n bytes at most, on a character boundary when b
// is UTF-8 text, and whether anything was cut.
func cut(b []byte, n int) ([]byte, bool) {
	if len(b) <= n {
		return b, false
	}
	i := n
	if utf8.Valid(b) {
		for i > 0 && !utf8.RuneStart(b[i]) {
			i--
		}
	}
	return b[:i], true
}

// deadLetter sends the rejected messages to the dead-letter topic. It
// returns only when each has a record there, or ctx ended; it never
// retries what the broker refuses for good:
//
//  1. each record in the full form (its value cut to 64 KiB);
//  2. one the broker refuses as too large even alone (its topic's
//     max.message.bytes is lower) is written in the bare form, without
//     the value;
//  3. if even that is refused for good, no record can be written: the
//     message is logged with its position and reason as an error, counted
//     in cdp_indexer_dead_letters_lost_total, and the stream goes on (it is
//     still at its offset in its topic until retention removes it). A
//     partition stalled for ever would hold every later message hostage
//     to one that can never be applied.
func (ix *Indexer) deadLetter(ctx context.Context, rs []rejected) error {
	if len(rs) == 0 {
		return nil
	}
	topic := ix.cfg.Topic(TopicDLQ)
	now := time.Now().UTC().Format(time.RFC3339Nano)
	msgs := make([]*sarama.ProducerMessage, len(rs))
	for i, r := range rs {
		m, cuts := deadLetterRecord(topic, r, now, fullForm)
		m.Metadata = i
		msgs[i] = m
		for _, c := range cuts {
			ix.m.deadLetterCuts.WithLabelValues(c).Inc()
		}
	}
	refused, err := ix.sendDeadLetters(ctx, msgs)
	if err != nil {
		return err
	}
	lost := map[int]bool{}
	for _, m := range refused {
		i := m.Metadata.(int)
		// A batch of records can be over the broker's limit where one
		// alone is not: try it alone before giving up its value.
		if len(msgs) > 1 {
			again, err := ix.sendDeadLetters(ctx, []*sarama.ProducerMessage{m})
			if err != nil {
				return err
			}
			if len(again) == 0 {
				continue
			}
		}
		bare, _ := deadLetterRecord(topic, rs[i], now, bareForm)
		again, err := ix.sendDeadLetters(ctx, []*sarama.ProducerMessage{bare})
		if err != nil {
			return err
		}
		r := rs[i].msg
		if len(again) > 0 {
			lost[i] = true
			ix.m.deadLettersLost.WithLabelValues(r.Topic).Inc()
			ix.log.Error("dead letter refused for good even without its value: the message is skipped",
				"topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "size", len(r.Value), "reason", rs[i].reason)
			continue
		}
		ix.m.deadLetterCuts.WithLabelValues("value_omitted").Inc()
		ix.log.Warn("dead letter refused with its value, written without it",
			"topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "size", len(r.Value))
	}
	for i, r := range rs {
		if lost[i] {
			continue
		}
		ix.m.deadLettered.WithLabelValues(r.msg.Topic).Inc()
		ix.log.Warn("dead-lettered", "topic", r.msg.Topic, "partition", r.msg.Partition, "offset", r.msg.Offset, "reason", r.reason)
	}
	return nil
}

// sendDeadLetters sends msgs until each is written or refused for good,
// and returns the refused ones. Only the records that failed for a
// transient reason are sent again: sending one already written would
// dead-letter its message twice. An error means ctx ended.
func (ix *Indexer) sendDeadLetters(ctx context.Context, msgs []*sarama.ProducerMessage) ([]*sarama.ProducerMessage, error) {
	pending := msgs
	var refused []*sarama.ProducerMessage
	err := ix.step(ctx, "dead_letter", func() error {
		err := ix.producer.SendMessages(pending)
		var pes sarama.ProducerErrors
		if !errors.As(err, &pes) {
			return err // nil, or nothing known of what was written: all again
		}
		pending = nil
		var errs []error
		for _, pe := range pes {
			if classify(pe.Err) == classPermanent {
				refused = append(refused, pe.Msg)
			} else {
				pending = append(pending, pe.Msg)
				errs = append(errs, pe)
			}
		}
		return errors.Join(errs...)
	})
	var perm *permanentError
	if errors.As(err, &perm) {
		return append(refused, pending...), nil
	}
	return refused, err
}
