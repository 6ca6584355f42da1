package chaos_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"cdp/testing/harness"
	"cdp/testing/workload"
)

// outage is how long a stopped service stays down.
const outage = 30 * time.Second

// OpenSearch stops for 30s in the middle of the stream (the stream goes on
// into Kafka meanwhile) and comes back: the same indexer process, never
// restarted, catches up with no loss.
func TestOpenSearchDownFor30sMidStream(t *testing.T) {
	midStreamOutage(t, "opensearch", 11, true)
}

// Kafka stops for 30s in the middle of the stream and comes back: the same
// indexer process rejoins and catches up with no loss.
func TestKafkaDownFor30sMidStream(t *testing.T) {
	midStreamOutage(t, "kafka", 12, false)
}

// midStreamOutage stops one service for the outage once the indexer has
// applied part of the stream, produces more of it during the outage when
// the outage leaves Kafka up, and checks that the same indexer process
// ends in the exact final state.
func midStreamOutage(t *testing.T, service string, seed uint64, produceDuring bool) {
	env := chaos(t)
	svc := env.DepsService(t, service)
	cfg := testConfig(t, env)
	d := dataset(t, seed, 300)
	env.Bootstrap(t, cfg)
	env.CreateTopics(t, cfg)
	n := len(d.Messages)
	a, b := n*4/10, n*4/10
	if produceDuring {
		b = n * 7 / 10
	}

	env.Produce(t, cfg, d.Messages[:a])
	ix := env.StartIndexerProcess(t, cfg, "indexer")
	at, _ := env.WaitProgress(t, cfg, 2*time.Minute, "a third of the first part applied", func(p workload.Progress) bool {
		return p.SourceCommitted >= int64(a/3)
	})
	t.Logf("stopping %s mid-stream: %s", service, at)
	svc.Down(t)
	downAt := time.Now()
	env.Produce(t, cfg, d.Messages[a:b])
	time.Sleep(time.Until(downAt.Add(outage))) // the outage itself: nothing to wait for
	if !ix.Running() {
		t.Fatalf("the indexer exited during the %s outage: %v", service, ix.ExitError())
	}
	t.Logf("after %s without %s: %d retries logged", outage, service, ix.LogCount("retrying"))
	svc.Up(t)
	env.Produce(t, cfg, d.Messages[b:])
	env.WaitIdle(t, cfg, 3*time.Minute)
	verify(t, env, cfg, d, ix)
}

// Two indexer processes share the partitions of one consumer group; one is
// killed (-9) in the middle of the stream: the other takes its partitions
// over and the final state is exact.
func TestTwoIndexersShareTheGroupAndOneIsKilled(t *testing.T) {
	env := chaos(t)
	cfg := testConfig(t, env)
	d := dataset(t, 13, 500)
	env.Bootstrap(t, cfg)
	env.CreateTopics(t, cfg)

	// Each indexer process is two members of the group: one reads the
	// source topics, the other the dirty markers.
	const membersPerIndexer = 2
	a := env.StartIndexerProcess(t, cfg, "indexer-a")
	b := env.StartIndexerProcess(t, cfg, "indexer-b")
	harness.Eventually(t, time.Minute, func() (bool, string) {
		members, state, err := env.GroupMembers(cfg)
		if err != nil {
			return false, err.Error()
		}
		if state != "Stable" || len(members) != 2*membersPerIndexer {
			return false, "group " + state + ", members " + fmtMembers(members)
		}
		for _, n := range members {
			if n == 0 {
				return false, "a member without partitions: " + fmtMembers(members)
			}
		}
		return true, ""
	})
	// Half the stream, the kill once both have applied some of it, then the
	// rest: the kill lands mid-stream however fast the indexers are, and
	// the survivor must take the dead one's partitions over.
	half := len(d.Messages) / 2
	env.Produce(t, cfg, d.Messages[:half])
	at, _ := env.WaitProgress(t, cfg, 2*time.Minute, "30% applied", func(p workload.Progress) bool {
		return p.SourceCommitted >= int64(len(d.Messages))*3/10
	})
	b.Kill(t)
	t.Logf("kill -9 %s mid-stream: %s", b.Name, at)
	env.Produce(t, cfg, d.Messages[half:])
	env.WaitIdle(t, cfg, 3*time.Minute)
	verify(t, env, cfg, d, a)
	members, _, err := env.GroupMembers(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != membersPerIndexer {
		t.Errorf("group members after the kill: %s, want the survivor's alone", fmtMembers(members))
	}
}

func fmtMembers(m map[string]int) string {
	var parts []string
	for id, n := range m {
		parts = append(parts, fmt.Sprintf("%s: %d partitions", id, n))
	}
	sort.Strings(parts)
	return "[" + strings.Join(parts, ", ") + "]"
}
