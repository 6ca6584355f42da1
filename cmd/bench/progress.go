package main

import (
	"fmt"

	"github.com/IBM/sarama"

	"cdp/config"
	"cdp/indexer"
)

// progressReader reads the indexer group's committed offsets against the
// high-water marks (as the test harness does) over one long-lived
// connection, so that polling it often costs the busy machine little.
type progressReader struct {
	cfg    *config.Config
	client sarama.Client
	admin  sarama.ClusterAdmin
}

func newProgressReader(cfg *config.Config) (*progressReader, error) {
	client, err := sarama.NewClient(cfg.KafkaBrokers, indexer.KafkaConfig("cdp-bench-progress"))
	if err != nil {
		return nil, err
	}
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		client.Close()
		return nil, err
	}
	return &progressReader{cfg: cfg, client: client, admin: admin}, nil
}

func (r *progressReader) close() { r.admin.Close() }

// progress is how far the indexer's consumer group has come: committed
// offsets against the high-water marks, summed over partitions.
type progress struct {
	SourceCommitted, SourceEnd int64 // the four source topics
	DirtyCommitted, DirtyEnd   int64 // the internal dirty-marker topic
}

// Idle reports whether everything produced so far is applied and committed.
func (p progress) Idle() bool {
	return p.SourceCommitted == p.SourceEnd && p.DirtyCommitted == p.DirtyEnd
}

func (p progress) String() string {
	return fmt.Sprintf("sources %d/%d committed, dirty markers %d/%d", p.SourceCommitted, p.SourceEnd, p.DirtyCommitted, p.DirtyEnd)
}

// read returns the progress; the source topics are read before the dirty
// topic, so that zero lag on both means all the work is done (markers are
// produced before their sources are committed).
func (r *progressReader) read() (progress, error) {
	var p progress
	sum := func(topics []string) (committed, end int64, err error) {
		parts := map[string][]int32{}
		for _, t := range topics {
			ps, err := r.client.Partitions(t)
			if err != nil {
				return 0, 0, fmt.Errorf("partitions of %s: %w", t, err)
			}
			parts[t] = ps
			for _, part := range ps {
				hwm, err := r.client.GetOffset(t, part, sarama.OffsetNewest)
				if err != nil {
					return 0, 0, err
				}
				end += hwm
			}
		}
		resp, err := r.admin.ListConsumerGroupOffsets(r.cfg.ConsumerGroup, parts)
		if err != nil {
			return 0, 0, err
		}
		for t, ps := range parts {
			for _, part := range ps {
				if b := resp.GetBlock(t, part); b != nil && b.Err == sarama.ErrNoError && b.Offset > 0 {
					committed += b.Offset
				}
			}
		}
		return committed, end, nil
	}
	sources := make([]string, len(indexer.SourceTopics))
	for i, s := range indexer.SourceTopics {
		sources[i] = r.cfg.Topic(s)
	}
	var err error
	if p.SourceCommitted, p.SourceEnd, err = sum(sources); err != nil {
		return p, err
	}
	p.DirtyCommitted, p.DirtyEnd, err = sum([]string{r.cfg.Topic(indexer.TopicDirty)})
	return p, err
}
