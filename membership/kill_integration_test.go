package membership_test

import (
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"cdp/indexer"
	"cdp/membership"
	"cdp/testing/harness"
)

// A real `cdp index` is killed (SIGKILL, through the test hook
// membership.KillBeforePublishEnv) after it stored a customer's entry
// into a segment and before it published it. The next process publishes
// it, with the message id stored, and after de-duplication once.
func TestAFlipStoredByAnIndexerKilledBeforePublishingItIsPublishedOnceAfterARestart(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the services")
	}
	t.Parallel()
	env := harness.Services(t)
	cfg := env.Config(t)
	env.Bootstrap(t, cfg)
	env.CreateTopics(t, cfg)
	c := client{t, env.StartAPI(t, cfg).URL}
	seg := c.must(201, "POST", "/v1/segments", `{"name":"women","filter":{"field":"gender","op":"eq","value":"female"}}`)["id"].(string)

	killed := env.StartIndexerProcess(t, cfg, "indexer-killed", membership.KillBeforePublishEnv+"="+seg)
	produce(t, env.Producer(t), cfg, row(indexer.TopicCustomers, 31, map[string]any{"name": "赵六", "gender": "female"}, 1))
	harness.Eventually(t, 60*time.Second, func() (bool, string) {
		return !killed.Running(), "the indexer has not killed itself yet"
	})
	var exit *exec.ExitError
	if err := killed.ExitError(); !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the indexer ended with %v, want SIGKILL by its test hook:\n%s", err, killed.LogTail(20))
	}
	if killed.LogCount("test hook: killing the process before publishing") != 1 {
		t.Fatalf("the indexer did not die by its hook:\n%s", killed.LogTail(20))
	}
	cid := customerID(t, env, cfg, 31)
	st := membership.New(membership.ConfigOf(cfg), env.Store(t), nil, prometheusRegistry(), harness.Logger())
	s, err := st.State(t.Context(), cid)
	if err != nil || len(s.Pending) != 1 || s.Pending[0].Type != "entered" || s.Pending[0].ID != seg {
		t.Fatalf("stored state %+v (%v), want the entry pending", s, err)
	}
	pending := s.Pending[0]
	if recs := env.ReadTopic(t, cfg.Topic(membership.TopicSuffix)); len(recs) != 0 {
		t.Fatalf("%d records published before the kill, want none", len(recs))
	}

	env.StartIndexerProcess(t, cfg, "indexer-restarted")
	harness.Eventually(t, 60*time.Second, func() (bool, string) {
		recs := published(t, env, cfg)
		return len(recs) > 0, "nothing published since the restart"
	})
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		s, err := st.State(t.Context(), cid)
		return err == nil && s.PendingCount == 0, fmt.Sprintf("still pending: %+v %v", s.Pending, err)
	})
	env.WaitIdle(t, cfg, 60*time.Second)
	recs := published(t, env, cfg)
	if len(recs) != 1 || recs[0] != pending {
		t.Fatalf("published (de-duplicated) %+v, want once the record stored before the kill %+v", recs, pending)
	}
	raw := len(env.ReadTopic(t, cfg.Topic(membership.TopicSuffix)))
	t.Logf("the stored entry was published %d time(s), one message id", raw)
}
