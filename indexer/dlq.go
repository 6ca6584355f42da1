package indexer

import (
	"encoding/json"
	"time"
	"unicode/utf8"

	"github.com/IBM/sarama"
)

// deadLetter is the record the dead-letter topic receives: where the
// message came from, the message itself, and why it was not applied.
type deadLetter struct {
	Topic       string `json:"topic"`
	Partition   int32  `json:"partition"`
	Offset      int64  `json:"offset"`
	Key         string `json:"key"`
	Value       string `json:"value,omitempty"`
	ValueBase64 []byte `json:"value_base64,omitempty"`
	Reason      string `json:"reason"`
	FailedAt    string `json:"failed_at"`
}

// rejected is a message that can never be applied, with the reason.
type rejected struct {
	msg    *sarama.ConsumerMessage
	reason string
}

func (ix *Indexer) deadLetterMessages(rs []rejected) []*sarama.ProducerMessage {
	out := make([]*sarama.ProducerMessage, 0, len(rs))
	now := time.Now().UTC().Format(time.RFC3339Nano)
	for _, r := range rs {
		d := deadLetter{Topic: r.msg.Topic, Partition: r.msg.Partition, Offset: r.msg.Offset,
			Key: string(r.msg.Key), Reason: r.reason, FailedAt: now}
		if utf8.Valid(r.msg.Value) {
			d.Value = string(r.msg.Value)
		} else {
			d.ValueBase64 = r.msg.Value
		}
		b, _ := json.Marshal(d)
		out = append(out, &sarama.ProducerMessage{
			Topic:   ix.cfg.Topic(TopicDLQ),
			Key:     sarama.ByteEncoder(r.msg.Key),
			Value:   sarama.ByteEncoder(b),
			Headers: []sarama.RecordHeader{{Key: []byte("cdp-reason"), Value: []byte(r.reason)}},
		})
	}
	return out
}
