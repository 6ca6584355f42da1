package indexer

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

// A dirty marker names customers whose documents must be rebuilt. Stage 1
// sends one marker per partition of the dirty topic and batch, holding
// every customer of the batch that hashes to that partition: a customer
// is always marked on the same partition (so one consumer at a time owns
// its document), and a batch costs a handful of messages rather than one
// per customer, which made marking the slowest step of stage 1.
//
// Rows lists, for a customer, the rows the batch changed for it, when
// they are all known: its rebuild may then read just those rows and the
// ones its document was built from (the document's manifest,
// schema.RebuildField), by id, instead of searching the row store for
// everything it holds. A customer named without rows (a merge, a split,
// a marker of an older version) is rebuilt from everything.
type marker struct {
	Customers []string            `json:"customers"`
	Rows      map[string][]string `json:"rows,omitempty"`
}

// dirtySet names the customers to rebuild and, for each, the rows that
// changed for it when they are all known; nil means "read everything".
type dirtySet map[string]map[string]bool

// all marks cid for a rebuild from everything it holds.
func (d dirtySet) all(cid string) { d[cid] = nil }

// row marks cid for a rebuild that must read rid, unless it is already
// marked for everything.
func (d dirtySet) row(cid, rid string) {
	s, ok := d[cid]
	if ok && s == nil {
		return
	}
	if !ok {
		s = map[string]bool{}
		d[cid] = s
	}
	s[rid] = true
}

// add marks what o marks.
func (d dirtySet) add(o dirtySet) {
	for cid, rows := range o {
		if rows == nil {
			d.all(cid)
			continue
		}
		for rid := range rows {
			d.row(cid, rid)
		}
	}
}

// fullSet marks every customer of cids for a rebuild from everything.
func fullSet(cids map[string]bool) dirtySet {
	d := make(dirtySet, len(cids))
	for cid := range cids {
		d.all(cid)
	}
	return d
}

// markerChunk bounds one marker: at most this many customers plus rows
// named. A batch of the largest size marks up to 100,000 customers, some
// 29 bytes each (a row id about as much), and a record over the
// producer's MaxMessageBytes is refused (KafkaConfig).
const markerChunk = 10_000

// markerMessages groups the customers by partition, one message each, or
// more for more than markerChunk customers and rows.
func markerMessages(topic string, cids dirtySet, partitions int32) ([]*sarama.ProducerMessage, error) {
	// A customer goes where Kafka's hash partitioner puts its id as a key.
	hash := sarama.NewHashPartitioner(topic)
	byPartition := map[int32][]string{}
	for cid := range cids {
		p, err := hash.Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(cid)}, partitions)
		if err != nil {
			return nil, err
		}
		byPartition[p] = append(byPartition[p], cid)
	}
	msgs := make([]*sarama.ProducerMessage, 0, len(byPartition))
	send := func(p int32, mk marker) error {
		v, err := json.Marshal(mk)
		if err != nil {
			return err
		}
		msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Partition: p, Key: sarama.StringEncoder(mk.Customers[0]), Value: sarama.ByteEncoder(v)})
		return nil
	}
	for p, all := range byPartition {
		slices.Sort(all) // markers as reproducible as the batch
		var mk marker
		size := 0
		for _, cid := range all {
			rows := cids[cid]
			if len(mk.Customers) > 0 && size+1+len(rows) > markerChunk {
				if err := send(p, mk); err != nil {
					return nil, err
				}
				mk, size = marker{}, 0
			}
			mk.Customers = append(mk.Customers, cid)
			size += 1 + len(rows)
			if rows != nil {
				if mk.Rows == nil {
					mk.Rows = map[string][]string{}
				}
				list := make([]string, 0, len(rows))
				for rid := range rows {
					list = append(list, rid)
				}
				slices.Sort(list)
				mk.Rows[cid] = list
			}
		}
		if err := send(p, mk); err != nil {
			return nil, err
		}
	}
	return msgs, nil
}

// markedCustomers reads a marker: the customers it names and, for those
// whose changed rows it lists, the rows. A marker that lists no customer
// is an error (stage 1 never sends one), so that it is dead-lettered
// rather than dropped unseen.
func markedCustomers(m *sarama.ConsumerMessage) ([]string, map[string][]string, error) {
	var mk marker
	if err := json.Unmarshal(m.Value, &mk); err != nil {
		return nil, nil, fmt.Errorf("dirty marker: %w", err)
	}
	if len(mk.Customers) == 0 {
		return nil, nil, errors.New("dirty marker: lists no customers")
	}
	return mk.Customers, mk.Rows, nil
}

// markerKeys are the customers a marker names, for sizing rebuild
// batches by distinct customers; a marker that cannot be read names
// nothing (materialize dead-letters it).
func markerKeys(m *sarama.ConsumerMessage) []string {
	cids, _, _ := markedCustomers(m)
	return cids
}

// dirtyPartitioner places markers on the partition they name and every
// other message by the hash of its key.
func dirtyPartitioner(dirtyTopic string) sarama.PartitionerConstructor {
	return func(topic string) sarama.Partitioner {
		if topic == dirtyTopic {
			return sarama.NewManualPartitioner(topic)
		}
		return sarama.NewHashPartitioner(topic)
	}
}

// Marker asks the indexer to rebuild customers from outside it: the API
// marks the two profiles of a split, whose rebuilds move what the split
// identities brought. It connects on its first Mark, so an API started
// while Kafka is down still starts.
type Marker struct {
	brokers []string
	topic   string

	mu       sync.Mutex
	client   sarama.Client
	producer sarama.SyncProducer
	closed   bool
}

// NewMarker returns a marker of customers on the dirty topic.
func NewMarker(brokers []string, dirtyTopic string) *Marker {
	return &Marker{brokers: brokers, topic: dirtyTopic}
}

func (m *Marker) connect() error {
	if m.closed {
		return errors.New("marker: closed")
	}
	if m.producer != nil {
		return nil
	}
	kc := KafkaConfig("cdp-marker")
	kc.Producer.Partitioner = dirtyPartitioner(m.topic)
	client, err := sarama.NewClient(m.brokers, kc)
	if err != nil {
		return fmt.Errorf("marker: kafka: %w", err)
	}
	producer, err := sarama.NewSyncProducerFromClient(client)
	if err != nil {
		client.Close()
		return fmt.Errorf("marker: producer: %w", err)
	}
	m.client, m.producer = client, producer
	return nil
}

// Mark asks for the customers' documents to be rebuilt.
func (m *Marker) Mark(cids ...string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.connect(); err != nil {
		return err
	}
	set := dirtySet{}
	for _, c := range cids {
		set.all(c)
	}
	parts, err := m.client.Partitions(m.topic)
	if err != nil {
		return fmt.Errorf("marker: %w", err)
	}
	msgs, err := markerMessages(m.topic, set, int32(len(parts)))
	if err != nil {
		return err
	}
	return m.producer.SendMessages(msgs)
}

// Close closes the connections, if any.
func (m *Marker) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	if m.producer == nil {
		return nil
	}
	p, c := m.producer, m.client
	m.producer, m.client = nil, nil
	return errors.Join(p.Close(), c.Close())
}

// SendMessages sends messages of other topics on the marker's connection
// (the API publishes membership records with it: membership.Publisher).
func (m *Marker) SendMessages(msgs []*sarama.ProducerMessage) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.connect(); err != nil {
		return err
	}
	return m.producer.SendMessages(msgs)
}

// compactedHeader marks a marker the rebuilds lane made by merging the
// markers it held (compactMarkers); its value is how many it merged.
const compactedHeader = "cdp-compacted"

// compactMarkers merges held markers into one per partition, naming the
// union of their customers, at the partition's last offset. It is how a
// round of rebuilds held through a backfill stays small: the stream
// interleaves its customers, so a round's markers name each customer
// many times (some 20 markers a customer in a 100,000-customer backfill),
// with its rows each time, and holding them as read bounded a round to
// 24 MiB of markers, about a quarter of that backfill, so each customer
// was rebuilt some four times. Merged, a round holds each customer once,
// a few dozen bytes.
//
// A merged marker names its customers without rows: their rebuilds read
// everything they hold (a search of the row store, as for a customer
// with no document yet), which is what a backfill's first round does for
// every customer anyway, and keeps a round's memory to its customer ids.
//
// The offsets stay right: per partition, the merged marker comes after
// the markers that could not be read (kept as they are, for materialize
// to dead-letter) and carries the partition's highest offset, theirs
// included, so a lane that marks its batch in order marks the same
// offsets. Its timestamp is the oldest of the markers it merges.
func compactMarkers(msgs []*sarama.ConsumerMessage) []*sarama.ConsumerMessage {
	type merged struct {
		offset    int64 // the partition's highest, unreadable markers included
		oldest    time.Time
		customers map[string]struct{}
		n         int
	}
	byPartition := map[topicPartition]*merged{}
	var order []topicPartition
	var out []*sarama.ConsumerMessage
	for _, m := range msgs {
		tp := topicPartition{m.Topic, m.Partition}
		g := byPartition[tp]
		if g == nil {
			g = &merged{offset: m.Offset, oldest: m.Timestamp, customers: map[string]struct{}{}}
			byPartition[tp] = g
			order = append(order, tp)
		}
		g.offset = max(g.offset, m.Offset)
		cids, _, err := markedCustomers(m)
		if err != nil {
			out = append(out, m) // materialize dead-letters it
			continue
		}
		for _, cid := range cids {
			g.customers[cid] = struct{}{}
		}
		if m.Timestamp.Before(g.oldest) {
			g.oldest = m.Timestamp
		}
		n, _ := mergedCount(m)
		g.n += n
	}
	for _, tp := range order {
		g := byPartition[tp]
		if len(g.customers) == 0 {
			continue // only unreadable markers: they carry their offsets
		}
		mk := marker{Customers: make([]string, 0, len(g.customers))}
		for cid := range g.customers {
			mk.Customers = append(mk.Customers, cid)
		}
		slices.Sort(mk.Customers)
		v, _ := json.Marshal(mk) // strings only: it cannot fail
		out = append(out, &sarama.ConsumerMessage{
			Topic: tp.topic, Partition: tp.partition, Offset: g.offset,
			Key: []byte(mk.Customers[0]), Value: v, Timestamp: g.oldest,
			Headers: []*sarama.RecordHeader{{Key: []byte(compactedHeader), Value: []byte(strconv.Itoa(g.n))}},
		})
	}
	return out
}

// mergedCount is how many markers m stands for (itself, or those it
// merged) and whether compactMarkers made it.
func mergedCount(m *sarama.ConsumerMessage) (n int, merged bool) {
	for _, h := range m.Headers {
		if h != nil && string(h.Key) == compactedHeader {
			if n, err := strconv.Atoi(string(h.Value)); err == nil && n > 0 {
				return n, true
			}
			return 1, true
		}
	}
	return 1, false
}

// compacted says m was made by compactMarkers.
func compacted(m *sarama.ConsumerMessage) bool {
	_, merged := mergedCount(m)
	return merged
}

// markerOf is the marker a dead letter about cid's rebuild holds: m
// itself, or, for a merged marker naming many customers, one naming cid
// alone at m's position, which rebuilds just cid when replayed.
func markerOf(m *sarama.ConsumerMessage, cid string) *sarama.ConsumerMessage {
	if !compacted(m) {
		return m
	}
	v, _ := json.Marshal(marker{Customers: []string{cid}})
	one := *m
	one.Key, one.Value = []byte(cid), v
	return &one
}

// splitMarker halves a merged marker that names more than one customer,
// both halves at its position: a round that fails for good is split down
// to the customer that makes it fail (Indexer.process), not to a merged
// marker of thousands.
func splitMarker(m *sarama.ConsumerMessage) (a, b *sarama.ConsumerMessage, ok bool) {
	if !compacted(m) {
		return nil, nil, false
	}
	cids, _, err := markedCustomers(m)
	if err != nil || len(cids) < 2 {
		return nil, nil, false
	}
	half := func(part []string) *sarama.ConsumerMessage {
		v, _ := json.Marshal(marker{Customers: part})
		h := *m
		h.Key, h.Value = []byte(part[0]), v
		return &h
	}
	mid := len(cids) / 2
	return half(cids[:mid]), half(cids[mid:]), true
}
