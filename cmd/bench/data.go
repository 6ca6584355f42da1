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

// composed is a generated dataset and the extra events to interleave
// with its messages.
type composed struct {
	ds *workload.Dataset
	// adds are the extra events by the index of the dataset message they
	// go before (len(ds.Messages): after the last).
	adds []placed
	live []string
}

type placed struct {
	pos int
	m   workload.Message
}

// compose generates a dataset and the extra events. Extra events are
// spread over the last 60 days before now (so windows such as "within
// 30d" select some of them) and put at random places of the stream; the
// model has applied them. idPrefix keeps their message ids apart from
// other workloads'.
func compose(seed uint64, customers, base int, eventsPerCustomer float64, now time.Time, idPrefix string) *composed {
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
	return &composed{ds: ds, adds: adds, live: live}
}

// messages is how many messages the stream has.
func (c *composed) messages() int { return len(c.ds.Messages) + len(c.adds) }

// drain hands the stream's messages to fn in stream order, and forgets
// each once fn returns, along with the dataset's model: a chunk's memory
// is given back as it is produced, instead of being held (values, copies
// and model) until the last message.
func (c *composed) drain(fn func(m *workload.Message)) {
	msgs, adds := c.ds.Messages, c.adds
	c.ds, c.adds = nil, nil
	j := 0
	for i := range msgs {
		for ; j < len(adds) && adds[j].pos <= i; j++ {
			fn(&adds[j].m)
			adds[j] = placed{}
		}
		fn(&msgs[i])
		msgs[i] = workload.Message{}
	}
	for ; j < len(adds); j++ {
		fn(&adds[j].m)
		adds[j] = placed{}
	}
}

// chunkCustomers is the most customers generated at once. A larger run is
// generated and produced in chunks of different people, one after
// another, so that the bench's memory stays that of one chunk (its
// generator, model and messages): generating 100,000 customers peaked at
// 3.8 GiB in one chunk of 100,000 and at 1.2 GiB in chunks of 25,000, and
// 250,000 at 1.0 GiB. The 1,000,000-customer full run is forty chunks.
const chunkCustomers = 25_000

// generateAndProduce generates the main workload chunk by chunk, evaluates
// the reference model for the documents that must exist at the end, and
// produces each chunk to Kafka as fast as it takes it. It returns the time
// spent producing (sending and the last acknowledgements, not generating).
func generateAndProduce(ctx context.Context, cfg *config.Config, seed uint64, customers int, eventsPerCustomer float64, now time.Time,
	logf func(string)) (*generated, time.Duration, error) {
	w := &generated{}
	p, err := newProducer(cfg)
	if err != nil {
		return nil, 0, err
	}
	var took time.Duration
	for k, done := 0, 0; done < customers && ctx.Err() == nil; k++ {
		n := min(chunkCustomers, customers-done)
		c := compose(seed+uint64(k)*7919, n, k*workload.DatasetKeySpan, eventsPerCustomer, now, fmt.Sprintf("bx%d", k))
		docs, err := c.ds.Expected()
		if err != nil {
			p.close()
			return nil, 0, err
		}
		st := c.ds.Stats
		w.stats.Add(st)
		w.messages += c.messages()
		w.extraEvents += len(c.adds)
		w.events += st.EventMessages + len(c.adds)
		w.live = append(w.live, c.live...)
		w.expectedCustomers += len(docs)
		w.expectedEvents += c.ds.Model().EventCount()
		docs = nil
		t := time.Now()
		c.drain(func(m *workload.Message) {
			if ctx.Err() == nil {
				p.send(kmsg{m.Topic, m.Key, m.Value})
			}
		})
		took += time.Since(t)
		done += n
		logf(fmt.Sprintf("generated and produced %d of %d customers (%d messages so far)", done, customers, w.messages))
	}
	t := time.Now()
	err = p.close() // waits for the last acknowledgements
	took += time.Since(t)
	if err == nil {
		err = ctx.Err()
	}
	return w, took, err
}

// loadChunk is a further workload for background load: a dataset of its own
// seed whose rows have the same keys as the main one's (so its changes are
// updates of existing customers, orders and items), re-encoded with source
// positions after everything before it, so that none of it is ignored as
// stale, and with event ids of its own.
func loadChunk(k int, seed uint64, customers int, eventsPerCustomer float64, now time.Time) []kmsg {
	s := seed + uint64(1000+k)
	ds := compose(s, customers, 0, eventsPerCustomer, now, fmt.Sprintf("bl%d", k))
	lsnBase := int64(k+1) * 10_000_000_000
	shift := (time.Duration(k+1) * 24 * time.Hour).Milliseconds()
	out := make([]kmsg, 0, ds.messages())
	ds.drain(func(m *workload.Message) {
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
	})
	return out
}

// producerConfig is the service's Kafka configuration with batching tuned
// for bulk loading.
func producerConfig() *sarama.Config {
	c := indexer.KafkaConfig("cdp-bench-producer")
	c.Producer.Flush.Bytes = 256 << 10
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
