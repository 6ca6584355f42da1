package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"

	"cdp/config"
	"cdp/indexer"
	"cdp/testing/workload"
)

// kmsg is one Kafka message to produce: the topic suffix, key and value.
type kmsg struct {
	topic      string
	key, value []byte
}

// generated is the workload as generated and produced: workload.NewDataset (CDC
// customers, orders and items with updates, deletes, moves, stale and
// duplicate deliveries, and SDK events), topped up with track and page
// events of live CRM customers to the wanted events per customer.
type generated struct {
	messages int
	stats    workload.DatasetStats
	// extraEvents are the events added to the dataset's own.
	extraEvents int
	// events is the number of event messages (the dataset's and the extra).
	events int
	// live are the CRM ids of customers that are not deleted at the end.
	live []string
	// expectedCustomers is the number of customer documents the reference
	// model says must exist once everything is indexed.
	expectedCustomers int
	expectedEvents    int
}

var (
	trackNames = []string{"view_product", "add_to_cart", "search", "share", "view_product", "view_product"}
	categories = []string{"shoes", "bags", "beauty", "food", "toys", "books"}
	channels   = []string{"miniprogram", "app", "web"}
)

// compose generates a dataset and interleaves the extra events. Extra
// events are spread over the last 60 days before now (so windows such as
// "within 30d" select some of them) and put at random places of the stream.
// idPrefix keeps their message ids apart from other workloads'.
func compose(seed uint64, customers, base int, eventsPerCustomer float64, now time.Time, idPrefix string) (*workload.Dataset, []workload.Message, []string, int) {
	ds := workload.NewDatasetAt(seed, customers, base)
	deleted := map[string]bool{}
	seen := map[string]bool{}
	var crm, live []string
	for _, m := range ds.Messages {
		if c := m.Change; c != nil && c.Table == workload.TableCustomers {
			if c.Deleted() {
				deleted[c.Key] = true
			}
			if !seen[c.Key] {
				seen[c.Key] = true
				crm = append(crm, c.Key)
			}
		}
	}
	sort.Strings(crm)
	for _, k := range crm {
		if !deleted[k] {
			live = append(live, k)
		}
	}
	r := rand.New(rand.NewPCG(seed, 0xb1e55ed))
	extra := int(eventsPerCustomer*float64(customers)) - ds.Stats.EventMessages
	type placed struct {
		pos int
		m   workload.Message
	}
	var adds []placed
	for i := 0; i < extra && len(live) > 0; i++ {
		e := &workload.Event{
			MessageID: fmt.Sprintf("%s-%d", idPrefix, i),
			Timestamp: now.Add(-time.Duration(r.Int64N(int64(60 * 24 * time.Hour)))).Truncate(time.Millisecond),
			UserID:    live[r.IntN(len(live))],
			Channel:   channels[r.IntN(len(channels))],
		}
		if r.Float64() < 0.25 {
			e.Type, e.Properties = "page", map[string]any{"path": fmt.Sprintf("/p/%d", r.IntN(100))}
		} else {
			e.Type, e.Name = "track", trackNames[r.IntN(len(trackNames))]
			e.Properties = map[string]any{"sku": fmt.Sprintf("p-%d", r.IntN(500)), "category": categories[r.IntN(len(categories))],
				"price": float64(r.IntN(100000)) / 100}
		}
		ds.Model().ApplyEvent(e)
		adds = append(adds, placed{pos: r.IntN(len(ds.Messages) + 1), m: workload.EventMessage(e)})
	}
	sort.SliceStable(adds, func(i, j int) bool { return adds[i].pos < adds[j].pos })
	out := make([]workload.Message, 0, len(ds.Messages)+len(adds))
	j := 0
	for i, m := range ds.Messages {
		for ; j < len(adds) && adds[j].pos <= i; j++ {
			out = append(out, adds[j].m)
		}
		out = append(out, m)
	}
	for ; j < len(adds); j++ {
		out = append(out, adds[j].m)
	}
	return ds, out, live, len(adds)
}

// chunkCustomers is the most customers generated at once. A larger run is
// generated and produced in chunks of different people, one after
// another, so that the bench's memory stays that of one chunk: the
// 1,000,000-customer full run is ten chunks.
const chunkCustomers = 100_000

// generateAndProduce generates the main workload chunk by chunk, produces
// each chunk to Kafka as fast as it takes them, and evaluates the
// reference model for the documents that must exist at the end. It
// returns the time spent producing.
func generateAndProduce(ctx context.Context, cfg *config.Config, seed uint64, customers int, eventsPerCustomer float64, now time.Time,
	logf func(string)) (*generated, time.Duration, error) {
	w := &generated{}
	var took time.Duration
	for k, done := 0, 0; done < customers && ctx.Err() == nil; k++ {
		n := min(chunkCustomers, customers-done)
		ds, msgs, live, extra := compose(seed+uint64(k)*7919, n, k*workload.DatasetKeySpan, eventsPerCustomer, now, fmt.Sprintf("bx%d", k))
		docs, err := ds.Expected()
		if err != nil {
			return nil, 0, err
		}
		st := ds.Stats
		w.stats.Add(st)
		w.messages += len(msgs)
		w.extraEvents += extra
		w.events += st.EventMessages + extra
		w.live = append(w.live, live...)
		w.expectedCustomers += len(docs)
		w.expectedEvents += ds.Model().EventCount()
		ds, docs = nil, nil
		kms := make([]kmsg, len(msgs))
		for i, m := range msgs {
			kms[i] = kmsg{m.Topic, m.Key, m.Value}
		}
		msgs = nil
		d, err := produceAll(ctx, cfg, kms)
		if err != nil {
			return nil, 0, err
		}
		took += d
		done += n
		logf(fmt.Sprintf("generated and produced %d of %d customers (%d messages so far)", done, customers, w.messages))
	}
	return w, took, ctx.Err()
}

// loadChunk is a further workload for background load: a dataset of its own
// seed whose rows have the same keys as the main one's (so its changes are
// updates of existing customers, orders and items), re-encoded with source
// positions after everything before it, so that none of it is ignored as
// stale, and with event ids of its own.
func loadChunk(k int, seed uint64, customers int, eventsPerCustomer float64, now time.Time) []kmsg {
	s := seed + uint64(1000+k)
	_, msgs, _, _ := compose(s, customers, 0, eventsPerCustomer, now, fmt.Sprintf("bl%d", k))
	lsnBase := int64(k+1) * 10_000_000_000
	shift := (time.Duration(k+1) * 24 * time.Hour).Milliseconds()
	out := make([]kmsg, 0, len(msgs))
	for _, m := range msgs {
		switch {
		case m.Change != nil:
			c := *m.Change
			c.LSN += lsnBase
			c.TsMs += shift
			out = append(out, kmsg{m.Topic, m.Key, workload.ChangeValue(&c)})
		case m.Event != nil:
			e := *m.Event
			e.MessageID = fmt.Sprintf("%s-L%d", e.MessageID, k)
			em := workload.EventMessage(&e)
			out = append(out, kmsg{em.Topic, em.Key, em.Value})
		default:
			out = append(out, kmsg{m.Topic, m.Key, m.Value}) // a tombstone
		}
	}
	return out
}

// producerConfig is the service's Kafka configuration with batching tuned
// for bulk loading.
func producerConfig() *sarama.Config {
	c := indexer.KafkaConfig("cdp-bench-producer")
	c.Producer.Flush.Bytes = 256 << 10
	// A record batch must stay under the broker's default message.max.bytes
	// (1 MiB); the service's 4 MiB allows single large records.
	c.Producer.MaxMessageBytes = 1_000_000
	c.Producer.Flush.Frequency = 5 * time.Millisecond
	c.Producer.Return.Errors = true
	c.ChannelBufferSize = 4096
	return c
}

// producer wraps an async producer that counts acknowledgements.
type producer struct {
	p       sarama.AsyncProducer
	cfg     *config.Config
	acked   atomic.Int64
	failed  atomic.Int64
	sent    atomic.Int64
	lastErr atomic.Value
	drained chan struct{}
}

func newProducer(cfg *config.Config) (*producer, error) {
	ap, err := sarama.NewAsyncProducer(cfg.KafkaBrokers, producerConfig())
	if err != nil {
		return nil, fmt.Errorf("kafka producer: %w", err)
	}
	p := &producer{p: ap, cfg: cfg, drained: make(chan struct{})}
	done := make(chan struct{}, 2)
	go func() {
		for range ap.Successes() {
			p.acked.Add(1)
		}
		done <- struct{}{}
	}()
	go func() {
		for e := range ap.Errors() {
			p.failed.Add(1)
			p.lastErr.Store(e.Err.Error())
		}
		done <- struct{}{}
	}()
	go func() { <-done; <-done; close(p.drained) }()
	return p, nil
}

func (p *producer) send(m kmsg) {
	pm := &sarama.ProducerMessage{Topic: p.cfg.Topic(m.topic)}
	if m.key != nil {
		pm.Key = sarama.ByteEncoder(m.key)
	}
	if m.value != nil {
		pm.Value = sarama.ByteEncoder(m.value)
	}
	p.sent.Add(1)
	p.p.Input() <- pm
}

// close flushes and waits for every acknowledgement.
func (p *producer) close() error {
	p.p.AsyncClose()
	<-p.drained
	if n := p.failed.Load(); n > 0 {
		return fmt.Errorf("kafka: %d messages failed: %v", n, p.lastErr.Load())
	}
	return nil
}

// produceAll sends every message as fast as Kafka takes them and waits for
// all acknowledgements.
func produceAll(ctx context.Context, cfg *config.Config, msgs []kmsg) (time.Duration, error) {
	p, err := newProducer(cfg)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	for _, m := range msgs {
		if ctx.Err() != nil {
			break
		}
		p.send(m)
	}
	err = p.close()
	return time.Since(start), err
}
