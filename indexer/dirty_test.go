package indexer

import (
	"encoding/json"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"cdp/identity"
)

func TestMarkersPutEachCustomerOnItsOwnPartitionOnceInRecordsTheProducerTakes(t *testing.T) {
	limit := KafkaConfig("test").Producer.MaxMessageBytes
	for _, tt := range []struct {
		name      string
		customers int
		minMsgs   int
	}{
		{"a batch's few customers: one marker per partition", 500, 4},
		{"the largest batch's customers: markers of markerChunk at most", 100_000, 100_000 / markerChunk},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cids := dirtySet{}
			for i := range tt.customers {
				cid := identity.NewCustomerID()
				if i%2 == 0 {
					cids.all(cid)
					continue
				}
				cids.row(cid, "order:"+cid)
				cids.row(cid, "item:"+cid)
			}
			msgs, err := markerMessages("dirty", cids, 4)
			if err != nil {
				t.Fatal(err)
			}
			if len(msgs) < tt.minMsgs || (tt.customers <= markerChunk && len(msgs) != 4) {
				t.Fatalf("%d messages for %d customers on 4 partitions", len(msgs), tt.customers)
			}
			seen := map[string]bool{}
			for _, pm := range msgs {
				v, _ := pm.Value.Encode()
				k, _ := pm.Key.Encode()
				if len(v)+len(k) > limit {
					t.Fatalf("a marker of %d bytes, over the producer's MaxMessageBytes %d", len(v)+len(k), limit)
				}
				got, rows, err := markedCustomers(&sarama.ConsumerMessage{Key: k, Value: v})
				if err != nil {
					t.Fatal(err)
				}
				if len(got) > markerChunk {
					t.Fatalf("a marker names %d customers, more than %d", len(got), markerChunk)
				}
				for _, cid := range got {
					marked := cids[cid]
					list, listed := rows[cid]
					if listed != (marked != nil) || len(list) != len(marked) {
						t.Fatalf("customer %s: rows %v (listed %v), want %v", cid, list, listed, marked)
					}
					for _, rid := range list {
						if !marked[rid] {
							t.Fatalf("customer %s: row %s was not marked", cid, rid)
						}
					}
					// The partition a key-hashing producer would pick for the
					// customer alone: markers of one customer never move.
					want, _ := sarama.NewHashPartitioner("dirty").Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(cid)}, 4)
					if pm.Partition != want {
						t.Fatalf("customer %s on partition %d, its key hashes to %d", cid, pm.Partition, want)
					}
					if seen[cid] {
						t.Fatalf("customer %s marked twice", cid)
					}
					seen[cid] = true
				}
			}
			if len(seen) != len(cids) {
				t.Fatalf("%d customers marked, want %d", len(seen), len(cids))
			}
		})
	}
}

func TestADirtySetMarksEverythingOnceAnyMarkingAsksForEverything(t *testing.T) {
	tests := []struct {
		name string
		mark func(d dirtySet)
		want map[string][]string // nil: everything
	}{
		{"rows add up", func(d dirtySet) { d.row("a", "order:1"); d.row("a", "item:2") }, map[string][]string{"a": {"item:2", "order:1"}}},
		{"everything after rows is everything", func(d dirtySet) { d.row("a", "order:1"); d.all("a") }, map[string][]string{"a": nil}},
		{"rows after everything are still everything", func(d dirtySet) { d.all("a"); d.row("a", "order:1") }, map[string][]string{"a": nil}},
		{"adding a set merges it", func(d dirtySet) {
			o := dirtySet{}
			o.row("a", "order:1")
			o.all("b")
			d.row("a", "item:2")
			d.row("b", "item:3")
			d.add(o)
		}, map[string][]string{"a": {"item:2", "order:1"}, "b": nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := dirtySet{}
			tt.mark(d)
			if len(d) != len(tt.want) {
				t.Fatalf("marked %v, want %v", d, tt.want)
			}
			for cid, want := range tt.want {
				rows, ok := d[cid]
				if !ok || (rows == nil) != (want == nil) || len(rows) != len(want) {
					t.Fatalf("%s: %v, want %v", cid, rows, want)
				}
				for _, rid := range want {
					if !rows[rid] {
						t.Fatalf("%s: %v lacks %s", cid, rows, rid)
					}
				}
			}
		})
	}
}

func TestMarkedCustomers(t *testing.T) {
	tests := []struct {
		name       string
		key, value string
		want       []string
		wantErr    bool
	}{
		{name: "a marker lists its customers", key: "a", value: `{"customers":["a","b","c"]}`, want: []string{"a", "b", "c"}},
		{name: "a marker that lists no customer is an error", key: "k1", value: `{}`, wantErr: true},
		{name: "an unreadable marker is an error and names no one", key: "k1", value: `{"customers":`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &sarama.ConsumerMessage{Key: []byte(tt.key), Value: []byte(tt.value)}
			got, _, err := markedCustomers(m)
			if (err != nil) != tt.wantErr || !slices.Equal(got, tt.want) {
				t.Fatalf("markedCustomers = %v, %v; want %v (error %v)", got, err, tt.want, tt.wantErr)
			}
			if keys := markerKeys(m); !slices.Equal(keys, tt.want) {
				t.Fatalf("markerKeys = %v, want %v", keys, tt.want)
			}
		})
	}
}

// markerMsg is a marker as the rebuilds lane reads it.
func markerMsg(t *testing.T, partition int32, offset int64, at time.Time, mk marker) *sarama.ConsumerMessage {
	t.Helper()
	v, err := json.Marshal(mk)
	if err != nil {
		t.Fatal(err)
	}
	return &sarama.ConsumerMessage{Topic: "dirty", Partition: partition, Offset: offset, Key: []byte(mk.Customers[0]), Value: v, Timestamp: at}
}

// markedOffsets are the offsets a lane marks for a batch, in its order.
func markedOffsets(batch []*sarama.ConsumerMessage) map[topicPartition]int64 {
	o := &sessionOffsets{}
	for _, m := range batch {
		o.mark(m)
	}
	return o.take()
}

func TestMergedMarkersNameEveryCustomerOnceAtTheOffsetsOfWhatTheyReplace(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	bad := &sarama.ConsumerMessage{Topic: "dirty", Partition: 1, Offset: 11, Key: []byte("x"), Value: []byte("{not json"), Timestamp: t0}
	badLast := &sarama.ConsumerMessage{Topic: "dirty", Partition: 0, Offset: 13, Key: []byte("y"), Value: []byte("{not json"), Timestamp: t0}
	held := []*sarama.ConsumerMessage{
		markerMsg(t, 0, 7, t0.Add(2*time.Second), marker{Customers: []string{"c1", "c2"}, Rows: map[string][]string{"c1": {"order:1"}}}),
		markerMsg(t, 1, 10, t0.Add(time.Second), marker{Customers: []string{"c3"}}),
		bad,
		markerMsg(t, 0, 8, t0, marker{Customers: []string{"c2", "c4"}, Rows: map[string][]string{"c2": {"item:9"}, "c4": {"crm:4"}}}),
		markerMsg(t, 1, 12, t0.Add(3*time.Second), marker{Customers: []string{"c3", "c5"}}),
		// Unreadable and the partition's last: the merged marker after
		// it must not take its offset back.
		badLast,
	}
	out := compactMarkers(held)
	if len(out) != 4 || out[0] != bad || out[1] != badLast {
		t.Fatalf("got %d messages, the first %v: want the unreadable markers first, as they were, then one per partition", len(out), out[0])
	}
	want := map[int32]struct {
		customers []string
		offset    int64
		at        time.Time
		n         int
	}{
		0: {[]string{"c1", "c2", "c4"}, 13, t0, 2},
		1: {[]string{"c3", "c5"}, 12, t0.Add(time.Second), 2},
	}
	for _, m := range out[2:] {
		w := want[m.Partition]
		cids, rows, err := markedCustomers(m)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(cids, w.customers) || rows != nil {
			t.Errorf("partition %d names %v with rows %v, want %v and no rows (each rebuilt from everything)", m.Partition, cids, rows, w.customers)
		}
		if m.Offset != w.offset || !m.Timestamp.Equal(w.at) || mergedN(m) != w.n || !compacted(m) {
			t.Errorf("partition %d: offset %d, timestamp %v, merged %d; want %d, %v (the oldest), %d", m.Partition, m.Offset, m.Timestamp, mergedN(m), w.offset, w.at, w.n)
		}
	}
	if got, wantOffsets := markedOffsets(out), markedOffsets(held); !maps.Equal(got, wantOffsets) {
		t.Errorf("marking the merged batch commits %v, the held one %v", got, wantOffsets)
	}
	// Merging again, with a marker read since, keeps the count of the
	// markers merged and moves the offset on.
	again := compactMarkers(append(out, markerMsg(t, 0, 14, t0, marker{Customers: []string{"c6"}})))
	for _, m := range again {
		if m.Partition == 0 && compacted(m) {
			if cids, _, _ := markedCustomers(m); !slices.Equal(cids, []string{"c1", "c2", "c4", "c6"}) || m.Offset != 14 || mergedN(m) != 3 {
				t.Errorf("merged again: %v at %d, %d merged; want c1 c2 c4 c6 at 14, 3 merged", cids, m.Offset, mergedN(m))
			}
		}
	}
}

func TestADeadLetterOfAMergedMarkerNamesTheOneCustomerItIsAbout(t *testing.T) {
	plain := markerMsg(t, 0, 3, time.Time{}, marker{Customers: []string{"c1", "c2"}})
	if markerOf(plain, "c1") != plain {
		t.Error("a marker as read is dead-lettered as it is")
	}
	merged := compactMarkers([]*sarama.ConsumerMessage{plain, markerMsg(t, 0, 4, time.Time{}, marker{Customers: []string{"c3"}})})[0]
	one := markerOf(merged, "c2")
	cids, _, err := markedCustomers(one)
	if err != nil || !slices.Equal(cids, []string{"c2"}) || string(one.Key) != "c2" {
		t.Errorf("dead letter of c2 from a merged marker: %v (%v), key %q; want c2 alone", cids, err, one.Key)
	}
	if one.Topic != merged.Topic || one.Partition != merged.Partition || one.Offset != merged.Offset {
		t.Errorf("it moved: %s/%d@%d, the merged marker is at %s/%d@%d", one.Topic, one.Partition, one.Offset, merged.Topic, merged.Partition, merged.Offset)
	}
}

func TestAMergedMarkerSplitsInHalvesDownToOneCustomer(t *testing.T) {
	if _, _, ok := splitMarker(markerMsg(t, 0, 1, time.Time{}, marker{Customers: []string{"a", "b"}})); ok {
		t.Error("a marker as read was split: the batch split finds the message, not a part of it")
	}
	m := compactMarkers([]*sarama.ConsumerMessage{markerMsg(t, 0, 5, time.Time{}, marker{Customers: []string{"a", "b", "c"}})})[0]
	var leaves []string
	var split func(*sarama.ConsumerMessage)
	split = func(m *sarama.ConsumerMessage) {
		a, b, ok := splitMarker(m)
		if !ok {
			cids, _, _ := markedCustomers(m)
			if len(cids) != 1 || m.Offset != 5 {
				t.Fatalf("a leaf names %v at %d, want one customer at 5", cids, m.Offset)
			}
			leaves = append(leaves, cids[0])
			return
		}
		split(a)
		split(b)
	}
	split(m)
	if !slices.Equal(leaves, []string{"a", "b", "c"}) {
		t.Errorf("split down to %v, want a b c", leaves)
	}
}

func mergedN(m *sarama.ConsumerMessage) int {
	n, _ := mergedCount(m)
	return n
}
