package exportjob

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/IBM/sarama"

	"cdp/export"
	"cdp/indexer"
)

// FileSink writes an export to a file that a resume may truncate and go
// on with.
type FileSink struct {
	f   *os.File
	n   int64
	w   export.Writer
	err error
}

// OpenFile opens (or creates) the file at path for the plan, cut to at
// bytes: 0 starts it over, more resumes after a checkpoint of that
// length (the CSV header is then not written again).
func OpenFile(path string, p *Plan, at int64) (*FileSink, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("export file: %w", err)
	}
	st, err := f.Stat()
	if err == nil && st.Size() < at {
		err = fmt.Errorf("export file %s holds %d bytes, less than its checkpoint's %d: it was changed since", path, st.Size(), at)
	}
	if err == nil {
		err = f.Truncate(at)
	}
	if err == nil {
		_, err = f.Seek(at, 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("export file: %w", err)
	}
	s := &FileSink{f: f, n: at}
	if s.w, err = p.NewWriter(s, at > 0); err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

func (s *FileSink) Write(b []byte) (int, error) {
	n, err := s.f.Write(b)
	s.n += int64(n)
	return n, err
}

// Writer is the export's writer into the file.
func (s *FileSink) Writer() export.Writer { return s.w }

// Sync flushes what is buffered and fsyncs the file, and returns its
// length then: a checkpoint may record it.
func (s *FileSink) Sync() (int64, error) {
	if err := s.w.Flush(); err != nil {
		return 0, err
	}
	if err := s.f.Sync(); err != nil {
		return 0, fmt.Errorf("export file: fsync: %w", err)
	}
	return s.n, nil
}

// Close closes the file.
func (s *FileSink) Close() error { return s.f.Close() }

// takePart creates the part file a runner with fencing token fence
// writes job j to: a copy of the first j.Bytes bytes of the part of the
// runner before (or of the finished file, should it have got that far),
// fsynced. dropped is what that part held past the checkpoint.
func takePart(dir string, j *Job, fence int64) (path string, dropped int64, err error) {
	path = filepath.Join(dir, fmt.Sprintf("%s.%d.part", j.ID, fence))
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return "", 0, fmt.Errorf("export file: %w", err)
	}
	defer func() {
		if cerr := out.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("export file: %w", cerr)
		}
		if err != nil {
			os.Remove(path)
		}
	}()
	if j.Part == "" {
		return path, 0, nil
	}
	in, err := os.Open(filepath.Join(dir, j.Part))
	if errors.Is(err, os.ErrNotExist) {
		in, err = os.Open(FilePath(dir, j))
	}
	if err != nil {
		if j.Bytes == 0 && errors.Is(err, os.ErrNotExist) {
			return path, 0, nil
		}
		return "", 0, fmt.Errorf("export file: the part of the runner before: %w", err)
	}
	defer in.Close()
	if st, err := in.Stat(); err == nil {
		dropped = st.Size() - j.Bytes
	}
	if n, err := io.CopyN(out, in, j.Bytes); err != nil {
		return "", 0, fmt.Errorf("export file: copying %d bytes of %s, got %d: %w", j.Bytes, j.Part, n, err)
	}
	if err := out.Sync(); err != nil {
		return "", 0, fmt.Errorf("export file: fsync: %w", err)
	}
	return path, max(dropped, 0), nil
}

// publish renames a done job's part to its file, durably.
func publish(part, path string) error {
	if err := os.Rename(part, path); err != nil {
		return fmt.Errorf("export file: %w", err)
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("export file: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("export file: fsync %s: %w", filepath.Dir(path), err)
	}
	return nil
}

// JobHeader is the record header naming the export job a Kafka record
// was written by.
const JobHeader = "cdp-export-job"

// KafkaSink writes one record per member to a topic: key the customer
// id, value the member's NDJSON line (without the line end), header
// JobHeader the job's id.
//
// Resume without duplicates: the producer is idempotent (no record is
// duplicated by its own retries), and every checkpoint records the next
// offset of each partition once the page's records are acknowledged. A
// runner that dies after producing records but before checkpointing them
// leaves them in the topic past the checkpoint's offsets; the next runner
// reads the topic from there to its end (OpenKafka), collects the keys
// of the records carrying this job's header, and skips those members as
// it walks again after Last: every member is then in the topic exactly
// once. That is chosen over transactions tied to the checkpoint because
// it needs nothing of consumers (no read_committed) and the extra read is
// at most about one page. Its limit: a runner whose lease expired while
// it was paused, and that wakes to produce one more page before its
// fenced checkpoint fails, can still duplicate that page; the lease is
// extended every third of its ttl, and the runner stops producing as
// soon as an extension fails, so that takes a pause longer than the ttl
// in the middle of one page.
type KafkaSink struct {
	client   sarama.Client
	producer sarama.SyncProducer
	topic    string
	header   []sarama.RecordHeader
	skip     map[string]bool
	pending  []*sarama.ProducerMessage
	offsets  map[string]int64
	// from are the offsets the resume read from: checkpoints keep them
	// while some records found there have not been walked past, so that
	// a runner dying meanwhile leaves them to the next one to find.
	from map[string]int64
	buf  bytes.Buffer
}

// OpenKafka opens the topic (created with indexer.Partitions partitions
// when missing) for job. from are the offsets of the job's last
// checkpoint: nil for a job that has written nothing, whose start is
// then the topic's end now.
func OpenKafka(ctx context.Context, brokers []string, topic, job string, from map[string]int64) (*KafkaSink, error) {
	if err := indexer.EnsureTopics(brokers, []string{topic}, indexer.Partitions); err != nil {
		return nil, fmt.Errorf("export topic %s: %w", topic, err)
	}
	client, err := sarama.NewClient(brokers, indexer.KafkaConfig("cdp-export"))
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	k := &KafkaSink{client: client, topic: topic, header: []sarama.RecordHeader{{Key: []byte(JobHeader), Value: []byte(job)}},
		skip: map[string]bool{}, offsets: map[string]int64{}}
	fail := func(err error) (*KafkaSink, error) {
		k.Close()
		return nil, err
	}
	ends := map[int32]int64{}
	// A topic just created may not have its leaders yet: ask again, with
	// fresh metadata, for a while.
	err = retry(ctx, 30*time.Second, func() error {
		if err := client.RefreshMetadata(topic); err != nil {
			return fmt.Errorf("kafka: metadata of %s: %w", topic, err)
		}
		parts, err := client.Partitions(topic)
		if err != nil {
			return fmt.Errorf("kafka: partitions of %s: %w", topic, err)
		}
		for _, p := range parts {
			end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
			if err != nil {
				return fmt.Errorf("kafka: end of %s/%d: %w", topic, p, err)
			}
			ends[p] = end
			k.offsets[strconv.Itoa(int(p))] = end
		}
		return nil
	})
	if err != nil {
		return fail(err)
	}
	if from != nil {
		k.from = from
		if err := k.scanTail(ctx, job, from, ends); err != nil {
			return fail(err)
		}
	}
	if k.producer, err = sarama.NewSyncProducerFromClient(client); err != nil {
		return fail(fmt.Errorf("kafka producer: %w", err))
	}
	return k, nil
}

// scanTail collects the keys of the job's records between the
// checkpoint's offsets and the ends of the partitions.
func (k *KafkaSink) scanTail(ctx context.Context, job string, from map[string]int64, ends map[int32]int64) error {
	consumer, err := sarama.NewConsumerFromClient(k.client)
	if err != nil {
		return fmt.Errorf("kafka consumer: %w", err)
	}
	defer consumer.Close()
	for p, end := range ends {
		start, ok := from[strconv.Itoa(int(p))]
		if !ok {
			start = sarama.OffsetOldest
		}
		if start >= end {
			continue
		}
		pc, err := consumer.ConsumePartition(k.topic, p, start)
		if err != nil {
			return fmt.Errorf("kafka: read %s/%d from %d: %w", k.topic, p, start, err)
		}
		err = func() error {
			defer pc.Close()
			idle := time.NewTimer(30 * time.Second)
			defer idle.Stop()
			for {
				select {
				case m := <-pc.Messages():
					for _, h := range m.Headers {
						if string(h.Key) == JobHeader && string(h.Value) == job {
							k.skip[string(m.Key)] = true
						}
					}
					if m.Offset+1 >= end {
						return nil
					}
				case err := <-pc.Errors():
					return fmt.Errorf("kafka: read %s/%d: %w", k.topic, p, err)
				case <-idle.C:
					return fmt.Errorf("kafka: read %s/%d: nothing within 30s before offset %d", k.topic, p, end)
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}()
		if err != nil {
			return err
		}
	}
	return nil
}

// Skipped is how many members the resume found already in the topic.
func (k *KafkaSink) Skipped() int { return len(k.skip) }

// Writer is the sink itself: it takes the documents of a Stream.
func (k *KafkaSink) Writer() export.Writer { return k }

// Write queues the member's record, unless the dead runner it resumes
// from produced it already.
func (k *KafkaSink) Write(doc json.RawMessage) error {
	var id struct {
		CustomerID string `json:"customer_id"`
	}
	if err := json.Unmarshal(doc, &id); err != nil || id.CustomerID == "" {
		return fmt.Errorf("export: a document without a customer_id: %v", err)
	}
	if k.skip[id.CustomerID] {
		delete(k.skip, id.CustomerID)
		return nil
	}
	k.buf.Reset()
	if err := json.Compact(&k.buf, doc); err != nil {
		return fmt.Errorf("export: a document is not JSON: %w", err)
	}
	k.pending = append(k.pending, &sarama.ProducerMessage{Topic: k.topic, Key: sarama.StringEncoder(id.CustomerID),
		Value: sarama.ByteEncoder(bytes.Clone(k.buf.Bytes())), Headers: k.header})
	return nil
}

// Flush produces the queued records and waits for every in-sync replica
// to acknowledge them.
func (k *KafkaSink) Flush() error {
	if len(k.pending) == 0 {
		return nil
	}
	err := k.producer.SendMessages(k.pending)
	if err != nil {
		var errs sarama.ProducerErrors
		if errors.As(err, &errs) && len(errs) > 0 {
			err = fmt.Errorf("kafka: %d of %d records failed, first: %w", len(errs), len(k.pending), errs[0].Err)
		}
		return err
	}
	for _, m := range k.pending {
		key := strconv.Itoa(int(m.Partition))
		if next := m.Offset + 1; next > k.offsets[key] {
			k.offsets[key] = next
		}
	}
	k.pending = k.pending[:0]
	return nil
}

// Sync produces what is queued and returns the next offset of each
// partition: a checkpoint may record them.
func (k *KafkaSink) Sync() (map[string]int64, error) {
	if err := k.Flush(); err != nil {
		return nil, err
	}
	src := k.offsets
	if len(k.skip) > 0 {
		src = k.from
	}
	out := make(map[string]int64, len(src))
	for p, o := range src {
		out[p] = o
	}
	return out, nil
}

// Close closes the producer and the client.
func (k *KafkaSink) Close() error {
	if k.producer != nil {
		k.producer.Close()
	}
	return k.client.Close()
}

// retry calls f until it succeeds, ctx ends or limit passes, backing off
// from 100ms, doubling up to 2s; it returns f's last error.
func retry(ctx context.Context, limit time.Duration, f func() error) error {
	deadline := time.Now().Add(limit)
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		err := f()
		if err == nil || time.Now().Add(wait).After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(wait):
		}
	}
}
