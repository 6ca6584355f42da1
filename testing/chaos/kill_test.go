package chaos_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"cdp/mapping"
	"cdp/testing/harness"
	"cdp/testing/workload"
)

// kill -9 of the indexer process in the middle of a stream of more than
// 50,000 changes, twice: once while stage 1 (source messages) is half
// done, with the stream going on while no indexer runs, and once while
// stage 2 (document rebuilds) is under way. After the last restart the
// final documents are exactly the model's, and no order or event counts
// twice. The test also measures the indexer's throughput.
func TestKill9OfTheIndexerMidStreamOf50000Changes(t *testing.T) {
	env := chaos(t)
	cfg := testConfig(t, env)
	// Small rebuild batches: stage 2 then commits in many steps, so the
	// second kill lands while it is under way. (With the default, a fast
	// indexer rebuilds the whole backlog in one batch.)
	cfg.RebuildBatchSize = 200
	d := dataset(t, scaleSeed, scaleCustomers)
	total := len(d.Messages)
	if total < 50000 {
		t.Fatalf("%d messages, want at least 50,000", total)
	}
	want, _ := d.Expected()
	harness.CDPBinary(t) // built before anything is timed
	env.Bootstrap(t, cfg)
	env.CreateTopics(t, cfg)

	// 70% of the stream is waiting when the indexer starts; the rest
	// arrives while it is dead.
	split := total * 7 / 10
	firstProduce := time.Now()
	env.Produce(t, cfg, d.Messages[:split])
	t.Logf("produced %d messages in %.1fs", split, time.Since(firstProduce).Seconds())

	var dead time.Duration // from each kill until the restarted indexer has its partitions
	start := func(name string, killedAt time.Time) *harness.Process {
		p := env.StartIndexerProcess(t, cfg, name)
		p.WaitLog(t, "partitions assigned", 2*time.Minute)
		if !killedAt.IsZero() {
			dead += time.Since(killedAt)
			t.Logf("%s has its partitions %.1fs after the kill", name, time.Since(killedAt).Seconds())
		}
		return p
	}
	kill := func(p *harness.Process, what string, cond func(workload.Progress) bool) (workload.Progress, time.Time) {
		at, killedAt := env.WaitProgress(t, cfg, 5*time.Minute, what, cond)
		p.Kill(t)
		t.Logf("kill -9 %s (pid %d), %s: %s; %d documents written", p.Name, p.Pid(), what, at, countDocs(t, env, cfg.IndexPrefix))
		if at.Idle() {
			t.Fatalf("the indexer had applied everything before it was killed: %s", at)
		}
		return at, killedAt
	}

	first := start("indexer-1", time.Time{})
	atKill1, killed1 := kill(first, "stage 1 at 40% of the stream", func(p workload.Progress) bool {
		return p.SourceCommitted >= int64(total)*4/10
	})
	stage1 := killed1.Sub(first.Started)

	env.Produce(t, cfg, d.Messages[split:])
	second := start("indexer-2", killed1)
	_, killed2 := kill(second, "stage 2 under way", func(p workload.Progress) bool {
		return p.SourceCommitted > atKill1.SourceCommitted && p.DirtyCommitted > atKill1.DirtyCommitted && p.DirtyCommitted < p.DirtyEnd
	})
	third := start("indexer-3", killed2)
	end := env.WaitIdle(t, cfg, 6*time.Minute)
	verify(t, env, cfg, d, third)

	t.Logf("first indexer: stage 1 applied %d changes in %.1fs (%s changes/s) before its kill",
		atKill1.SourceCommitted, stage1.Seconds(), rate(int(atKill1.SourceCommitted), stage1))
	for _, w := range []struct {
		name string
		d    time.Duration
	}{
		{"from first produce to final state, including 2 kills and restarts", end.Sub(firstProduce)},
		{"from the indexer's own start to final state, including 2 kills and restarts", end.Sub(first.Started)},
		{"sustained: from the indexer's own start to final state, without the time no indexer held the partitions", end.Sub(first.Started) - dead},
	} {
		line := fmt.Sprintf("indexer throughput: %s changes/s, %s customer docs/s (%s: %d changes, %d customer docs in %.1fs)",
			rate(total, w.d), rate(len(want), w.d), w.name, total, len(want), w.d.Seconds())
		t.Log(line)
		fmt.Println(line)
	}
}

// countDocs counts the customer documents now searchable.
func countDocs(t *testing.T, env *harness.Env, prefix string) int {
	t.Helper()
	st := env.Store(t)
	idx := mapping.Customers.Alias(prefix)
	ctx := context.Background()
	if err := st.Refresh(ctx, idx); err != nil {
		t.Fatal(err)
	}
	var resp struct {
		Count int `json:"count"`
	}
	if err := st.Do(ctx, http.MethodGet, "/"+idx+"/_count", nil, &resp); err != nil {
		t.Fatal(err)
	}
	return resp.Count
}
