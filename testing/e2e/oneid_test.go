package e2e_test

import (
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"cdp/testing/harness"
	"cdp/testing/workload"
)

// splitEndpoint says whether POST /v1/customers/{id}/split is to be
// called at the barriers; false feeds the stream without its splits and
// judges it against a model that runs none.
const splitEndpoint = true

// oneIDSeed is the seed of the identity traffic of the acceptance test.
const oneIDSeed = 11

// oneIDRun is one way of feeding streams to the indexer.
type oneIDRun struct {
	name        string
	batchSize   int
	sourceLanes int
	streams     []*workload.IdentityTraffic
}

// People of the acceptance test's streams. One message a batch applies
// some 18 messages a second (measured on 2 cores with shared services; a
// shorter batch wait changes nothing), so 10,000 people (60,000 messages)
// would take almost an hour: that run gets a stream of oneIDSmall people
// (615 messages, some 33 s), and the run in batches of 5,000 gets both
// streams, which share no identity, so that it meets the 10,000
// against the model and the small one against the other run. The whole
// test takes some 80 s, the 735 splits some 12 s of it (145 s with
// -race, as make test runs it).
const (
	oneIDPeople = 10_000
	oneIDSmall  = 100
)

// Issue 11's acceptance (CONTRACT §6): the profiles that come out depend
// only on the messages, not on how they were batched or partitioned. A
// stream of 10,000 people with shared identities (logins, phone and email
// joins, aliases, shared devices, conflicting crm ids, blocked values, too
// many phones or devices, splits between phases and messages linking their
// two sides again) is fed phase by phase in batches of 5,000 on four
// lanes, and a smaller stream both that way and one message a batch on one
// lane; every run ends in exactly the model's people (identities, CRM row,
// orders, items, events, last seen, merges and conflicts), and the two
// runs of the small stream in the same people.
func TestAStreamOfTenThousandPeopleFedInBatchesOfOneAndOfFiveThousandEndsInTheSamePeople(t *testing.T) {
	env := harness.Services(t)
	big := workload.NewIdentityTraffic(oneIDSeed, oneIDPeople)
	small := workload.NewIdentityTrafficAt(oneIDSeed+1, oneIDSmall, workload.IdentityKeySpan)
	wantBig, wantSmall := oneIDModel(t, big), oneIDModel(t, small)
	for name, s := range map[string]*workload.IdentityTraffic{"big": big, "small": small} {
		t.Logf("%s stream: %d messages in %d phases: %s", name, len(s.Messages), len(s.Barriers)+1, s.Stats)
	}

	runs := []oneIDRun{
		{"one message a batch on one lane", 1, 1, []*workload.IdentityTraffic{small}},
		{"batches of 5000 on four lanes", 5000, 4, []*workload.IdentityTraffic{big, small}},
	}
	got := make([]*harness.OneIDState, len(runs))
	for i, run := range runs {
		want := maps.Clone(wantSmall)
		if len(run.streams) > 1 {
			maps.Copy(want, wantBig)
		}
		t.Run(run.name, func(t *testing.T) {
			got[i] = feedOneID(t, env, run)
			diff := append(append([]string{}, got[i].Problems...), workload.DiffPeople(want, got[i].People, 0)...)
			if len(diff) > 0 {
				t.Errorf("%d people, want %d; %d differences from the model:\n%s", len(got[i].People), len(want), len(diff), strings.Join(diff[:min(len(diff), 20)], "\n"))
			}
		})
	}
	if got[0] == nil || got[1] == nil {
		return
	}
	ofSmall := map[string]workload.OneIDPerson{}
	for k, p := range got[1].People {
		if _, ok := wantSmall[k]; ok {
			ofSmall[k] = p
		}
	}
	if diff := workload.DiffPeople(got[0].People, ofSmall, 20); len(diff) > 0 {
		t.Errorf("the two runs of the small stream differ (got: batches of 5000, want: batches of one):\n%s", strings.Join(diff, "\n"))
	}
}

// oneIDModel is the people the model makes of the traffic, as the
// service can show them; without the split endpoint, of the traffic
// without its splits.
func oneIDModel(t *testing.T, traffic *workload.IdentityTraffic) map[string]workload.OneIDPerson {
	t.Helper()
	model := traffic.Model()
	if !splitEndpoint {
		model = workload.NewOneID()
		if err := model.ApplyStream(traffic.Messages, nil); err != nil {
			t.Fatal(err)
		}
	}
	people, err := model.People()
	if err != nil {
		t.Fatal(err)
	}
	return harness.OneIDComparable(people)
}

// feedOneID runs an indexer (and the API, for the splits) configured as
// run says under a prefix of its own, feeds it the streams a phase at a
// time (phase i of every stream together, each phase applied before the
// next is produced, the splits in between, as the generator requires) and
// reads what it made of them.
func feedOneID(t *testing.T, env *harness.Env, run oneIDRun) *harness.OneIDState {
	t.Helper()
	cfg := env.Config(t)
	cfg.BatchSize, cfg.SourceLanes = run.batchSize, run.sourceLanes
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	srv := env.StartAPI(t, cfg)
	reg := env.StartIndexer(t, cfg)
	start := time.Now()
	for i := range len(run.streams[0].Barriers) + 1 {
		var phase []workload.Message
		splitStart, splits := time.Now(), 0
		for _, s := range run.streams {
			if i > 0 && splitEndpoint {
				splits += harness.SplitAt(t, srv.URL, s.Splits, s.Barriers[i-1])
			}
			phase = append(phase, s.Phases()[i]...)
		}
		if splits > 0 {
			env.WaitIdle(t, cfg, 5*time.Minute)
			t.Logf("before phase %d: %d splits in %s", i+1, splits, time.Since(splitStart).Round(time.Millisecond))
		}
		from, merges := time.Now(), merged(t, reg)
		env.Produce(t, cfg, phase)
		env.WaitIdle(t, cfg, 20*time.Minute)
		took, n := time.Since(from), merged(t, reg)-merges
		t.Logf("phase %d: %d messages in %s, %.0f merges (%.1f merges/s, %.0f messages/s)",
			i+1, len(phase), took.Round(time.Millisecond), n, n/took.Seconds(), float64(len(phase))/took.Seconds())
	}
	took := time.Since(start)
	// Idle means every rebuild is done; ReadOneID refreshes what it reads.
	state, err := env.ReadOneID(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d people in %s", run.name, len(state.People), took.Round(time.Millisecond))
	return state
}

func merged(t *testing.T, reg prometheus.Gatherer) float64 {
	return harness.Counter(t, reg, "cdp_indexer_oneid_total", "what", "merge")
}
