package chaos_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"cdp/config"
	"cdp/indexer"
	"cdp/mapping"
	"cdp/testing/harness"
	"cdp/testing/workload"
)

// Issue 12, fenced writes: an indexer paused past its session timeout
// (SIGSTOP, as a long GC pause or a stalled VM would) between reading a
// customer and writing its document loses the customer's partition to
// another indexer, which writes newer documents meanwhile. When it wakes
// (SIGCONT) it sends the write it had prepared: the write must lose, and
// the document stay the newer one.
//
// The pause is deterministic: the paused process is started with the
// indexer's test hook (indexer.StopBeforeWriteEnv), so it stops itself
// right before the _bulk that writes the customer's document, after it
// has read the document's version and the rows.
func TestAnIndexerPausedPastItsSessionTimeoutDoesNotOverwriteANewerDocument(t *testing.T) {
	env := chaos(t)
	cfg := testConfig(t, env)
	env.Bootstrap(t, cfg)
	env.CreateTopics(t, cfg)
	const crm = "4242"
	lsn := int64(0)
	rename := func(name string) {
		lsn++
		env.Produce(t, cfg, []workload.Message{customerRenamed(crm, lsn, name)})
	}

	// The customer's first document, by a first indexer: OneID mints the
	// customer id, which names the customer to the hook.
	first := env.StartIndexerProcess(t, cfg, "indexer-first")
	rename("v1")
	cid := waitName(t, env, cfg, crm, "", "v1")
	first.Stop(t, 30*time.Second)

	// The stale writer: alone in the group, it rebuilds the customer for
	// v2 and stops itself before writing.
	stale := env.StartIndexerProcess(t, cfg, "indexer-stale", indexer.StopBeforeWriteEnv+"="+cid)
	rename("v2")
	harness.Eventually(t, time.Minute, func() (bool, string) {
		if !stale.Running() {
			t.Fatalf("%s exited: %v", stale.Name, stale.ExitError())
		}
		return stale.Stopped() && stale.LogCount("test hook: stopping") > 0, "the stale writer has not stopped before its write"
	})
	pausedAt := time.Now()

	// Its session times out; the other indexer takes every partition over
	// and writes the newer document.
	active := env.StartIndexerProcess(t, cfg, "indexer-active")
	active.WaitLog(t, "partitions assigned", time.Minute)
	t.Logf("%s has the partitions %.1fs after %s stopped", active.Name, time.Since(pausedAt).Seconds(), stale.Name)
	rename("v3")
	waitName(t, env, cfg, crm, cid, "v3")

	// The stale writer wakes and sends the write it prepared (of v2).
	stale.Continue(t)
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		n, err := stale.Metric("cdp_indexer_bulk_seconds_count", "step", "materialize")
		return err == nil && n >= 1, fmt.Sprintf("%s has not sent its document write yet (%v)", stale.Name, err)
	})
	if got := docName(t, env, cfg, cid); got != "v3" {
		t.Fatalf("after the stale writer's write, the document's name is %q, want the newer %q: a process paused past its session timeout overwrote a newer document", got, "v3")
	}
	fenced, err := stale.Metric("cdp_indexer_fenced_writes_total")
	if err != nil || fenced < 1 {
		t.Fatalf("the stale writer counted %v fenced writes (%v), want at least 1", fenced, err)
	}
	t.Logf("%s's write was fenced off (%v fenced writes); the document is still %q", stale.Name, fenced, "v3")
	// The rebuild that follows a fenced write reads afresh: it may write
	// again, but only the current document.
	env.WaitIdle(t, cfg, time.Minute)
	if got := docName(t, env, cfg, cid); got != "v3" {
		t.Fatalf("once idle, the document's name is %q, want %q", got, "v3")
	}
}

// customerRenamed is a CDC change of a CRM customer that sets its name.
func customerRenamed(key string, lsn int64, name string) workload.Message {
	at := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	op := "u"
	if lsn == 1 {
		op = "c"
	}
	c := &workload.Change{Table: workload.TableCustomers, Key: key, Op: op, LSN: lsn, TsMs: at.UnixMilli() + lsn,
		Customer: &workload.CustomerRow{Name: name, CreatedAt: at, UpdatedAt: at.Add(time.Duration(lsn) * time.Second)}}
	return workload.Message{Topic: indexer.TopicCustomers, Key: []byte(key), Value: workload.ChangeValue(c), Change: c}
}

// waitName waits until the customer holding the CRM id (cid, when known)
// has a document named name, and returns its customer id.
func waitName(t *testing.T, env *harness.Env, cfg *config.Config, crm, cid, name string) string {
	t.Helper()
	harness.Eventually(t, time.Minute, func() (bool, string) {
		if cid == "" {
			doc := env.CustomerByIdentity(t, cfg, "crm_id", crm)
			if doc == nil {
				return false, "no document of crm_id " + crm + " yet"
			}
			cid, _ = doc["customer_id"].(string)
		}
		got := docName(t, env, cfg, cid)
		return got == name, fmt.Sprintf("document %s named %q, want %q", cid, got, name)
	})
	return cid
}

// docName reads the name on the customer's document as stored now
// (realtime, no refresh).
func docName(t *testing.T, env *harness.Env, cfg *config.Config, cid string) string {
	t.Helper()
	var doc struct{ Name string }
	if _, err := env.Store(t).GetSource(context.Background(), mapping.Customers.Alias(cfg.IndexPrefix), cid, &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Name
}
