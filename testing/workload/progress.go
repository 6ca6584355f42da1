package workload

import (
	"fmt"

	"github.com/IBM/sarama"

	"cdp/config"
	"cdp/indexer"
)

// Progress is how far the indexer's consumer group has come: committed
// offsets against the high-water marks, summed over partitions.
type Progress struct {
	SourceCommitted, SourceEnd int64 // the four source topics
	DirtyCommitted, DirtyEnd   int64 // the internal dirty-marker topic
}

// Idle reports whether everything produced so far is applied and committed.
func (p Progress) Idle() bool {
	return p.SourceCommitted == p.SourceEnd && p.DirtyCommitted == p.DirtyEnd
}

func (p Progress) String() string {
	return fmt.Sprintf("sources %d/%d committed, dirty markers %d/%d", p.SourceCommitted, p.SourceEnd, p.DirtyCommitted, p.DirtyEnd)
}

// ProgressReader reads an indexer group's progress over one long-lived
// connection, so that polling it often costs little.
type ProgressReader struct {
	cfg    *config.Config
	client sarama.Client
	admin  sarama.ClusterAdmin
}

// NewProgressReader connects to cfg's Kafka for cfg's consumer group.
func NewProgressReader(cfg *config.Config) (*ProgressReader, error) {
	client, err := sarama.NewClient(cfg.KafkaBrokers, indexer.KafkaConfig("cdp-progress"))
	if err != nil {
		return nil, err
	}
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		client.Close()
		return nil, err
	}
	return &ProgressReader{cfg: cfg, client: client, admin: admin}, nil
}

// Close closes the connection.
func (r *ProgressReader) Close() { r.admin.Close() }

// Read returns the progress now. The source topics are read before the
// dirty topic: markers are produced before the sources that caused them are
// committed, so a zero lag on both means all work is done.
func (r *ProgressReader) Read() (Progress, error) {
	var p Progress
	sources := make([]string, len(indexer.SourceTopics))
	for i, s := range indexer.SourceTopics {
		sources[i] = r.cfg.Topic(s)
	}
	var err error
	if p.SourceCommitted, p.SourceEnd, err = r.sum(sources); err != nil {
		return p, err
	}
	p.DirtyCommitted, p.DirtyEnd, err = r.sum([]string{r.cfg.Topic(indexer.TopicDirty)})
	return p, err
}

// sum adds up the committed offsets and high-water marks of the topics.
func (r *ProgressReader) sum(topics []string) (committed, end int64, err error) {
	parts := map[string][]int32{}
	for _, topic := range topics {
		ps, err := r.client.Partitions(topic)
		if err != nil {
			return 0, 0, fmt.Errorf("partitions of %s: %w", topic, err)
		}
		parts[topic] = ps
		for _, part := range ps {
			hwm, err := r.client.GetOffset(topic, part, sarama.OffsetNewest)
			if err != nil {
				return 0, 0, fmt.Errorf("offset of %s/%d: %w", topic, part, err)
			}
			end += hwm
		}
	}
	resp, err := r.admin.ListConsumerGroupOffsets(r.cfg.ConsumerGroup, parts)
	if err != nil {
		return 0, 0, fmt.Errorf("committed offsets: %w", err)
	}
	for topic, ps := range parts {
		for _, part := range ps {
			if b := resp.GetBlock(topic, part); b != nil && b.Err == sarama.ErrNoError && b.Offset > 0 {
				committed += b.Offset
			}
		}
	}
	return committed, end, nil
}
