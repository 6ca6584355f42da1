package indexer_test

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"cdp/indexer"
	"cdp/testing/harness"
)

// gauges returns the value of the named gauge per partition of topic, for
// the partitions it has a series of.
func gauges(t *testing.T, g prometheus.Gatherer, name, topic string) map[int32]float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]float64{}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["topic"] != topic {
				continue
			}
			p, err := strconv.Atoi(labels["partition"])
			if err != nil {
				t.Fatalf("%s: partition %q", name, labels["partition"])
			}
			out[int32(p)] = m.GetGauge().GetValue()
		}
	}
	return out
}

// endOffsets returns each partition's high-water mark: the offset the
// next message produced to it gets.
func endOffsets(t *testing.T, brokers []string, topic string) map[int32]int64 {
	t.Helper()
	client, err := sarama.NewClient(brokers, indexer.KafkaConfig("cdp-test-offsets"))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	for _, p := range parts {
		if out[p], err = client.GetOffset(topic, p, sarama.OffsetNewest); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func produceCustomers(t *testing.T, env *harness.Env, prefix string, from, n int) {
	t.Helper()
	var msgs []msg
	for i := range n {
		msgs = append(msgs, change(indexer.TopicCustomers, "c", from+i, map[string]any{"name": fmt.Sprint("n", i)}, int64(from+i)))
	}
	produce(t, env.Producer(t), prefix, msgs...)
}

// committedEverything says whether g reports, for every partition of
// topic, the partition's end offset as committed and no committed lag.
func committedEverything(t *testing.T, g prometheus.Gatherer, topic string, end map[int32]int64) (bool, string) {
	offsets := gauges(t, g, "cdp_indexer_committed_offset", topic)
	lags := gauges(t, g, "cdp_indexer_committed_lag", topic)
	for p, want := range end {
		if want == 0 {
			continue // nothing to commit yet on this partition
		}
		got, ok := offsets[p]
		if !ok || int64(got) != want {
			return false, fmt.Sprintf("%s/%d: committed offset %v (reported: %t), want %d", topic, p, got, ok, want)
		}
		if lag, ok := lags[p]; !ok || lag != 0 {
			return false, fmt.Sprintf("%s/%d: committed lag %v (reported: %t), want 0", topic, p, lag, ok)
		}
	}
	return true, ""
}

func TestTheCommittedOffsetOfEveryPartitionReachesItsEndOffsetAndItsCommittedLagZero(t *testing.T) {
	env := harness.Services(t)
	cfg := env.Config(t)
	env.Bootstrap(t, cfg)
	produceCustomers(t, env, cfg.TopicPrefix, 1000, 40)
	reg := env.StartIndexer(t, cfg)

	customers := cfg.Topic(indexer.TopicCustomers)
	end := endOffsets(t, env.KafkaBrokers, customers)
	harness.Eventually(t, 60*time.Second, func() (bool, string) {
		return committedEverything(t, reg, customers, end)
	})
	// The dirty markers the customers made are committed too, once the
	// documents are rebuilt.
	dirty := cfg.Topic(indexer.TopicDirty)
	harness.Eventually(t, 60*time.Second, func() (bool, string) {
		return committedEverything(t, reg, dirty, endOffsets(t, env.KafkaBrokers, dirty))
	})
	if n := harness.Counter(t, reg, "cdp_indexer_commit_failures_total"); n != 0 {
		t.Errorf("%v commit failures, want none", n)
	}
}

func TestAProcessStopsReportingThePartitionsItLosesToAnotherAndTheOtherReportsThem(t *testing.T) {
	env := harness.Services(t)
	cfg := env.Config(t)
	env.Bootstrap(t, cfg)
	produceCustomers(t, env, cfg.TopicPrefix, 2000, 40)
	first := env.StartIndexer(t, cfg)
	customers := cfg.Topic(indexer.TopicCustomers)
	end := endOffsets(t, env.KafkaBrokers, customers)
	harness.Eventually(t, 60*time.Second, func() (bool, string) {
		return committedEverything(t, first, customers, end)
	})

	// A second process joins the group: the range strategy gives it half
	// of the partitions of each topic, which the first must stop
	// reporting, and the second reports from where the first committed.
	second := env.StartIndexer(t, cfg)
	harness.Eventually(t, 90*time.Second, func() (bool, string) {
		a := gauges(t, first, "cdp_indexer_committed_offset", customers)
		b := gauges(t, second, "cdp_indexer_committed_offset", customers)
		var both, all []int32
		for p := range a {
			all = append(all, p)
			if _, ok := b[p]; ok {
				both = append(both, p)
			}
		}
		for p := range b {
			if _, ok := a[p]; !ok {
				all = append(all, p)
			}
		}
		if len(a) == 0 || len(b) == 0 || len(both) > 0 || len(all) != len(end) {
			return false, fmt.Sprintf("the first reports partitions %v, the second %v; want %d partitions between them, none twice", keys(a), keys(b), len(end))
		}
		for _, g := range []prometheus.Gatherer{first, second} {
			owned := gauges(t, g, "cdp_indexer_committed_offset", customers)
			for _, name := range []string{"cdp_indexer_lag", "cdp_indexer_committed_lag"} {
				for p := range gauges(t, g, name, customers) {
					if _, ok := owned[p]; !ok {
						return false, fmt.Sprintf("%s reported for partition %d, which its process does not own", name, p)
					}
				}
			}
		}
		if ok, why := committedEverything(t, second, customers, only(end, keys(b))); !ok {
			return false, "the second: " + why
		}
		return true, ""
	})
}

func keys(m map[int32]float64) []int32 {
	var ks []int32
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func only(end map[int32]int64, parts []int32) map[int32]int64 {
	out := map[int32]int64{}
	for _, p := range parts {
		out[p] = end[p]
	}
	return out
}
