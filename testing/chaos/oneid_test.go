package chaos_test

import (
	"strings"
	"testing"
	"time"

	"cdp/config"
	"cdp/testing/harness"
	"cdp/testing/workload"
)

// The OneID acceptance of issue 11 under failures: identity traffic
// (devices seen alone then with a user, shared devices, alias, phone and
// email traits, conflicting crm ids, blocked values, splits) is fed phase
// by phase to `cdp index` processes, and while the phase that merges
// profiles is being applied, an indexer is killed -9, a second one sharing
// the group is killed, or OpenSearch goes down. The people that come out
// (identities, CRM rows, orders, items, events, merges, conflicts) are
// exactly those of the reference model's own union-find
// (workload.OneID), written from the contract.

const (
	oneIDSeed   = 2026_12_02
	oneIDPeople = 3000
)

func TestKill9OfTheIndexerWhileProfilesMerge(t *testing.T) {
	oneIDUnderChaos(t, 1, func(t *testing.T, env *harness.Env, cfg *config.Config, procs []*harness.Process) []*harness.Process {
		procs[0].Kill(t)
		p := env.StartIndexerProcess(t, cfg, "indexer-2")
		p.WaitLog(t, "partitions assigned", 2*time.Minute)
		return []*harness.Process{p}
	})
}

func TestTwoIndexersWhileProfilesMergeAndOneIsKilled(t *testing.T) {
	oneIDUnderChaos(t, 2, func(t *testing.T, env *harness.Env, cfg *config.Config, procs []*harness.Process) []*harness.Process {
		procs[1].Kill(t)
		return procs[:1]
	})
}

func TestOpenSearchDownWhileProfilesMerge(t *testing.T) {
	oneIDUnderChaos(t, 1, func(t *testing.T, env *harness.Env, cfg *config.Config, procs []*harness.Process) []*harness.Process {
		svc := env.DepsService(t, "opensearch")
		svc.Down(t)
		time.Sleep(outage / 2) // the outage itself: nothing to wait for
		if !procs[0].Running() {
			t.Fatalf("the indexer exited while OpenSearch was down: %v", procs[0].ExitError())
		}
		svc.Up(t)
		return procs
	})
}

// oneIDUnderChaos feeds the identity traffic to n indexer processes and
// runs disrupt once part of the merging phase is applied; disrupt returns
// the processes that must still be running at the end.
func oneIDUnderChaos(t *testing.T, n int, disrupt func(*testing.T, *harness.Env, *config.Config, []*harness.Process) []*harness.Process) {
	env := chaos(t)
	cfg := testConfig(t, env)
	// Small batches, so that the merging phase spans many of them and the
	// disruption lands while it is being applied (and merged-away
	// customers are moved).
	cfg.BatchSize, cfg.RebuildBatchSize = 100, 100
	traffic := workload.NewIdentityTraffic(oneIDSeed, oneIDPeople)
	people, err := traffic.Model().People()
	if err != nil {
		t.Fatal(err)
	}
	want := harness.OneIDComparable(people)
	t.Logf("identity stream: %d messages in %d phases: %s", len(traffic.Messages), len(traffic.Barriers)+1, traffic.Stats)
	env.Bootstrap(t, cfg)
	env.CreateTopics(t, cfg)
	srv := harness.ServeAPI(t, cfg)
	var procs []*harness.Process
	for i := range n {
		p := env.StartIndexerProcess(t, cfg, "indexer-"+string(rune('a'+i)))
		p.WaitLog(t, "partitions assigned", 2*time.Minute)
		procs = append(procs, p)
	}
	phases := traffic.Phases()
	disrupted := false
	for i, phase := range phases {
		if i > 0 {
			if n := harness.SplitAt(t, srv.URL, traffic.Splits, traffic.Barriers[i-1]); n > 0 {
				env.WaitIdle(t, cfg, 3*time.Minute)
				t.Logf("before phase %d: %d splits", i+1, n)
			}
		}
		before, err := env.Progress(cfg)
		if err != nil {
			t.Fatal(err)
		}
		env.Produce(t, cfg, phase)
		if !disrupted && i == mergingPhase {
			at, _ := env.WaitProgress(t, cfg, 2*time.Minute, "part of the merging phase applied", func(p workload.Progress) bool {
				return p.SourceCommitted > before.SourceCommitted+int64(len(phase))/5
			})
			if at.Idle() {
				t.Fatalf("the merging phase was applied before the disruption: %s", at)
			}
			t.Logf("disrupting at %s", at)
			procs = disrupt(t, env, cfg, procs)
			disrupted = true
		}
		env.WaitIdle(t, cfg, 5*time.Minute)
	}
	if !disrupted {
		t.Fatal("the stream has no merging phase")
	}
	state, err := env.ReadOneID(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	diff := append(append([]string{}, state.Problems...), workload.DiffPeople(want, state.People, 0)...)
	if len(diff) > 0 {
		t.Errorf("%d people, want %d; %d differences from the model:\n%s", len(state.People), len(want), len(diff), strings.Join(diff[:min(len(diff), 20)], "\n"))
	}
	for _, p := range procs {
		if !p.Running() {
			t.Errorf("%s exited: %v", p.Name, p.ExitError())
		}
	}
	t.Logf("final people exact: %d", len(state.People))
}

// mergingPhase is the phase whose messages link the profiles of the one
// before: logins, traits, aliases (identity_traffic.go: the second).
const mergingPhase = 1
