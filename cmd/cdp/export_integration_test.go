package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"cdp/config"
	"cdp/exportjob"
	"cdp/indexer"
	"cdp/mapping"
	"cdp/store"
	"cdp/testing/harness"
)

// audience is n generated customers of a deployment of the test's own,
// all in one saved segment.
type audience struct {
	env     *harness.Env
	cfg     *config.Config
	st      *store.Client
	n       int
	segment string
}

func memberID(i int) string { return fmt.Sprintf("m%05d", i) }

// memberName carries what a CSV must keep intact: Chinese text, a
// comma, a quote, a line break, a formula.
func memberName(i int) string {
	return []string{"张三", "Chen, Alice", `say "hi"`, "line\nbreak", "=1+2"}[i%5] + " " + strconv.Itoa(i)
}

func newAudience(t *testing.T, n int) *audience {
	t.Helper()
	env := harness.Services(t)
	cfg := env.Config(t)
	cfg.ExportLockTTL = 2 * time.Second
	srv := env.StartAPI(t, cfg)
	st := env.Store(t)
	idx := mapping.Customers.Alias(cfg.IndexPrefix)
	var ops []store.Op
	for i := range n {
		ops = append(ops, store.Op{Action: store.Index, Index: idx, ID: memberID(i), Body: map[string]any{
			"customer_id": memberID(i), "relation": "customer", "name": memberName(i), "tags": []string{"aud"},
			"phone": fmt.Sprintf("+86138%08d", i)}})
	}
	for len(ops) > 0 {
		k := min(len(ops), 1000)
		verdicts, err := st.Bulk(context.Background(), ops[:k])
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range verdicts {
			if !v.OK() {
				t.Fatalf("load %s: %d %s", ops[i].ID, v.Status, v.Reason)
			}
		}
		ops = ops[k:]
	}
	if err := st.Refresh(context.Background(), idx); err != nil {
		t.Fatal(err)
	}
	code, raw := do(t, "POST", srv.URL+"/v1/segments", `{"name": "aud", "filter": {"field": "tags", "op": "eq", "value": "aud"}}`)
	var seg struct{ ID string }
	if code != http.StatusCreated || json.Unmarshal(raw, &seg) != nil {
		t.Fatalf("save segment: %d %s", code, raw)
	}
	return &audience{env: env, cfg: cfg, st: st, n: n, segment: seg.ID}
}

func do(t testing.TB, method, url, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	harness.Authorize(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, raw
}

// onceEach fails unless ids are memberID(0..n-1), each once.
func onceEach(t testing.TB, ids []string, n int) {
	t.Helper()
	count := map[string]int{}
	for _, id := range ids {
		count[id]++
	}
	dups, missing := 0, 0
	for id, c := range count {
		if c > 1 {
			dups++
			if dups <= 5 {
				t.Errorf("%s written %d times", id, c)
			}
		}
	}
	for i := range n {
		if count[memberID(i)] == 0 {
			missing++
			if missing <= 5 {
				t.Errorf("%s missing", memberID(i))
			}
		}
	}
	if dups+missing > 0 || len(ids) != n {
		t.Errorf("%d members written (%d duplicated, %d missing), want %d each once", len(ids), dups, missing, n)
	}
}

// idsOf reads the customer ids of an NDJSON or CSV export, checking the
// names came through intact.
func idsOf(t testing.TB, format string, body []byte) []string {
	t.Helper()
	var ids []string
	check := func(id, name string) {
		i, _ := strconv.Atoi(strings.TrimPrefix(id, "m"))
		want := memberName(i)
		if format == "csv" && strings.HasPrefix(want, "=") {
			want = "'" + want
		}
		if name != want {
			t.Errorf("%s: name %q, want %q", id, name, want)
		}
		ids = append(ids, id)
	}
	if format == "csv" {
		rows, err := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(body, []byte("\uFEFF")))).ReadAll()
		if err != nil {
			t.Fatalf("csv: %v", err)
		}
		if len(rows) == 0 || strings.Join(rows[0], ",") != "customer_id,name" {
			t.Fatalf("csv header: %v", rows[:min(1, len(rows))])
		}
		for _, r := range rows[1:] {
			check(r[0], r[1])
		}
		return ids
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		var doc struct {
			CustomerID string `json:"customer_id"`
			Name       string `json:"name"`
		}
		if err := json.Unmarshal(sc.Bytes(), &doc); err != nil {
			t.Fatalf("ndjson line %q: %v", sc.Text(), err)
		}
		check(doc.CustomerID, doc.Name)
	}
	return ids
}

// topicIDs reads the keys of a topic's records of one job.
func topicIDs(t testing.TB, env *harness.Env, topic, job string) []string {
	t.Helper()
	var ids []string
	for _, m := range env.ReadTopic(t, topic) {
		for _, h := range m.Headers {
			if string(h.Key) == exportjob.JobHeader && string(h.Value) == job {
				ids = append(ids, string(m.Key))
			}
		}
	}
	return ids
}

// recordsPast counts the records of a topic past the offsets of a
// checkpoint.
func recordsPast(t testing.TB, env *harness.Env, topic string, offsets map[string]int64) int64 {
	t.Helper()
	client, err := sarama.NewClient(env.KafkaBrokers, indexer.KafkaConfig("cdp-test-offsets"))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	var past int64
	for p, from := range offsets {
		n, _ := strconv.Atoi(p)
		end, err := client.GetOffset(topic, int32(n), sarama.OffsetNewest)
		if err != nil {
			return 0
		}
		past += end - from
	}
	return past
}

func TestAnExportJobWhoseRunnerIsKilledFinishesOnTheOtherProcessWithEveryMemberOnce(t *testing.T) {
	for _, tc := range []struct {
		name  string
		kafka bool
	}{
		{name: "file destination"},
		{name: "Kafka destination", kafka: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 3000
			a := newAudience(t, n)
			// Small, slow pages: the job is mid-way when its runner is
			// killed, some pages after its first checkpoint.
			hooks := []string{"CDP_TEST_EXPORT_PAGE_SIZE=50", "CDP_TEST_EXPORT_PAGE_DELAY=150ms"}
			procs := []*harness.Process{
				a.env.StartServeProcess(t, a.cfg, "serve-a", hooks...),
				a.env.StartServeProcess(t, a.cfg, "serve-b", hooks...),
			}
			for _, p := range procs {
				p.WaitLog(t, "HTTP listening", time.Minute)
			}
			topic := a.cfg.Topic("audience")
			body := fmt.Sprintf(`{"segment": %q}`, a.segment)
			if tc.kafka {
				body = fmt.Sprintf(`{"segment": %q, "destination": {"type": "kafka", "topic": %q}}`, a.segment, topic)
			}
			code, raw := do(t, "POST", "http://"+procs[0].Addr()+"/v1/exports", body)
			var job struct{ ID string }
			if code != http.StatusAccepted || json.Unmarshal(raw, &job) != nil {
				t.Fatalf("POST /v1/exports: %d %s", code, raw)
			}
			jobs := exportjob.NewStore(a.st, mapping.ExportJobs.Alias(a.cfg.IndexPrefix))
			var victim, other *harness.Process
			harness.Eventually(t, time.Minute, func() (bool, string) {
				j, _, _, err := jobs.Get(context.Background(), job.ID)
				if err != nil || j.Exported < 600 {
					return false, fmt.Sprintf("job %+v, %v: not far enough yet", j, err)
				}
				// A page written past the checkpoint: what the resume
				// must drop (a file) or not produce again (Kafka).
				if !tc.kafka {
					st, err := os.Stat(filepath.Join(a.cfg.ExportDir, j.Part))
					if err != nil || st.Size() <= j.Bytes {
						return false, "no page past the checkpoint yet"
					}
				} else if past := recordsPast(t, a.env, topic, j.Offsets); past == 0 {
					return false, "no record past the checkpoint yet"
				}
				if again, _, _, _ := jobs.Get(context.Background(), job.ID); again == nil || again.Last != j.Last {
					return false, "the checkpoint moved meanwhile"
				}
				for i, p := range procs {
					if strings.HasSuffix(j.Runner, ":"+strconv.Itoa(p.Pid())) {
						victim, other = p, procs[1-i]
					}
				}
				return victim != nil, "runner " + j.Runner + " is neither process"
			})
			// One job, two processes: one runner.
			if got := other.LogCount("export job started"); got != 0 {
				t.Fatalf("%s started the job too while %s ran it (%d times):\n%s", other.Name, victim.Name, got, other.LogTail(10))
			}
			before, _, _, _ := jobs.Get(context.Background(), job.ID)
			victim.Kill(t)
			t.Logf("killed %s at %d of %d exported", victim.Name, before.Exported, n)
			base := "http://" + other.Addr()
			harness.Eventually(t, 2*time.Minute, func() (bool, string) {
				code, raw := do(t, "GET", base+"/v1/exports/"+job.ID, "")
				var v exportjob.View
				if code != http.StatusOK || json.Unmarshal(raw, &v) != nil {
					return false, fmt.Sprintf("%d %s", code, raw)
				}
				if v.Status == exportjob.Failed || v.Status == exportjob.Cancelled {
					t.Fatalf("job ended %s: %s", v.Status, raw)
				}
				return v.Status == exportjob.Done && v.Exported == n, string(raw)
			})
			if got := other.LogCount(`"msg":"export job started"`); got != 1 {
				t.Errorf("%s started the job %d times, want once, after the kill:\n%s", other.Name, got, other.LogTail(10))
			}
			// The kill came after a page was written and before its
			// checkpoint (the page delay sits there): the resume met it.
			tail := "dropping what the runner before wrote past its checkpoint"
			if tc.kafka {
				tail = "not producing them again"
			}
			if other.LogCount(tail) != 1 {
				t.Errorf("%s did not log %q: the kill did not land between a page and its checkpoint", other.Name, tail)
			}
			after, _, _, _ := jobs.Get(context.Background(), job.ID)
			if after.Fence <= before.Fence {
				t.Errorf("fence %d after the takeover, %d before: want it larger", after.Fence, before.Fence)
			}
			if tc.kafka {
				onceEach(t, topicIDs(t, a.env, topic, job.ID), n)
				return
			}
			code, raw = do(t, "GET", base+"/v1/exports/"+job.ID+"/download", "")
			if code != http.StatusOK {
				t.Fatalf("download: %d %s", code, raw[:min(300, len(raw))])
			}
			onceEach(t, idsOf(t, "ndjson", raw), n)
			left, _ := filepath.Glob(filepath.Join(a.cfg.ExportDir, "*"))
			if len(left) != 1 || filepath.Base(left[0]) != job.ID+".ndjson" {
				t.Errorf("the export directory holds %v, want only the job's file", left)
			}
		})
	}
}

func TestAnExportJobSurvivesARestartOfItsOnlyProcess(t *testing.T) {
	const n = 2000
	a := newAudience(t, n)
	hooks := []string{"CDP_TEST_EXPORT_PAGE_SIZE=50", "CDP_TEST_EXPORT_PAGE_DELAY=100ms"}
	first := a.env.StartServeProcess(t, a.cfg, "serve-1", hooks...)
	first.WaitLog(t, "HTTP listening", time.Minute)
	code, raw := do(t, "POST", "http://"+first.Addr()+"/v1/exports", fmt.Sprintf(`{"segment": %q, "format": "csv", "fields": ["name"]}`, a.segment))
	var job struct{ ID string }
	if code != http.StatusAccepted || json.Unmarshal(raw, &job) != nil {
		t.Fatalf("POST /v1/exports: %d %s", code, raw)
	}
	jobs := exportjob.NewStore(a.st, mapping.ExportJobs.Alias(a.cfg.IndexPrefix))
	harness.Eventually(t, time.Minute, func() (bool, string) {
		j, _, _, err := jobs.Get(context.Background(), job.ID)
		return err == nil && j.Exported >= 300, fmt.Sprintf("job %+v, %v", j, err)
	})
	first.Stop(t, 15*time.Second)
	stopped, _, _, _ := jobs.Get(context.Background(), job.ID)
	if stopped.Status != exportjob.Running || stopped.Exported >= n {
		t.Fatalf("after SIGTERM the job is %s at %d: want it running, mid-way, for the next process", stopped.Status, stopped.Exported)
	}

	second := a.env.StartServeProcess(t, a.cfg, "serve-2", hooks...)
	second.WaitLog(t, "HTTP listening", time.Minute)
	base := "http://" + second.Addr()
	harness.Eventually(t, 2*time.Minute, func() (bool, string) {
		j, _, _, err := jobs.Get(context.Background(), job.ID)
		return err == nil && j.Status == exportjob.Done, fmt.Sprintf("job %+v, %v", j, err)
	})
	if second.LogCount(`"resumed":true`) != 1 {
		t.Errorf("serve-2 did not resume the job:\n%s", second.LogTail(10))
	}
	code, raw = do(t, "GET", base+"/v1/exports/"+job.ID+"/download", "")
	if code != http.StatusOK {
		t.Fatalf("download: %d %s", code, raw[:min(300, len(raw))])
	}
	onceEach(t, idsOf(t, "csv", raw), n)
}
