package indexer

import (
	"slices"
	"testing"

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
