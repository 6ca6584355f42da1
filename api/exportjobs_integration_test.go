package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"cdp/config"
	"cdp/exportjob"
	"cdp/mapping"
	"cdp/testing/harness"
)

// jobView is an export job as answered.
type jobView struct {
	ID         string  `json:"id"`
	Status     string  `json:"status"`
	Exported   int64   `json:"exported"`
	Total      int64   `json:"total"`
	CreatedAt  string  `json:"created_at"`
	FinishedAt *string `json:"finished_at"`
	Error      *string `json:"error"`
}

// call sends a request to base and returns the status and the body.
func call(t testing.TB, method, url, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
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

func postJob(t testing.TB, base, body string) jobView {
	t.Helper()
	code, raw := call(t, "POST", base+"/v1/exports", body)
	if code != http.StatusAccepted {
		t.Fatalf("POST /v1/exports %s: %d %s", body, code, raw)
	}
	var j jobView
	if err := json.Unmarshal(raw, &j); err != nil || j.ID == "" || j.Status != "queued" || j.CreatedAt == "" {
		t.Fatalf("POST /v1/exports answered %s (%v)", raw, err)
	}
	return j
}

func getJob(t testing.TB, base, id string) jobView {
	t.Helper()
	code, raw := call(t, "GET", base+"/v1/exports/"+id, "")
	var j jobView
	if code != http.StatusOK || json.Unmarshal(raw, &j) != nil {
		t.Fatalf("GET /v1/exports/%s: %d %s", id, code, raw)
	}
	return j
}

// waitJob polls the job until it has status want, and returns it with
// the distinct exported counts seen while it ran.
func waitJob(t testing.TB, base, id, want string, timeout time.Duration) (jobView, []int64) {
	t.Helper()
	var seen []int64
	deadline := time.Now().Add(timeout)
	for {
		j := getJob(t, base, id)
		if j.Status == "running" && (len(seen) == 0 || seen[len(seen)-1] != j.Exported) {
			seen = append(seen, j.Exported)
		}
		if j.Status == want {
			return j, seen
		}
		if j.Status == "failed" || j.Status == "cancelled" || j.Status == "done" {
			t.Fatalf("job %s ended %s, not %s: %+v", id, j.Status, want, j)
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s not %s within %s: %+v", id, want, timeout, j)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// onceEach fails unless ids are exportID(0..n-1), each once.
func onceEach(t testing.TB, ids []string, n int) {
	t.Helper()
	count := map[string]int{}
	for _, id := range ids {
		count[id]++
	}
	for id, c := range count {
		if c > 1 {
			t.Errorf("%s written %d times", id, c)
		}
	}
	for i := range n {
		if count[exportID(i)] == 0 {
			t.Errorf("%s missing", exportID(i))
		}
	}
	if len(ids) != n {
		t.Errorf("%d members written, want %d", len(ids), n)
	}
}

// parseExport reads the customer ids of an NDJSON or CSV export,
// checking each row's name.
func parseExport(t testing.TB, format string, body []byte) []string {
	t.Helper()
	var ids []string
	if format == "csv" {
		body = bytes.TrimPrefix(body, []byte("\uFEFF"))
		r := csv.NewReader(bytes.NewReader(body))
		rows, err := r.ReadAll()
		if err != nil {
			t.Fatalf("csv: %v", err)
		}
		if len(rows) == 0 || rows[0][0] != "customer_id" {
			t.Fatalf("csv header: %v", rows[:min(1, len(rows))])
		}
		for _, row := range rows[1:] {
			ids = append(ids, row[0])
		}
		return ids
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var doc struct {
			CustomerID string `json:"customer_id"`
			Name       string `json:"name"`
		}
		if err := json.Unmarshal(sc.Bytes(), &doc); err != nil {
			t.Fatalf("ndjson line %q: %v", sc.Text(), err)
		}
		i, _ := strconv.Atoi(strings.TrimPrefix(doc.CustomerID, "x"))
		if doc.Name != exportName(i) {
			t.Errorf("%s: name %q, want %q", doc.CustomerID, doc.Name, exportName(i))
		}
		ids = append(ids, doc.CustomerID)
	}
	return ids
}

// topicIDs reads the keys of a topic's records, checking that each
// record's value is its member's NDJSON line and its header the job.
func topicIDs(t testing.TB, env *harness.Env, topic, job string) []string {
	t.Helper()
	var ids []string
	for _, m := range env.ReadTopic(t, topic) {
		var doc struct {
			CustomerID string `json:"customer_id"`
		}
		if err := json.Unmarshal(m.Value, &doc); err != nil || doc.CustomerID != string(m.Key) || bytes.ContainsAny(m.Value, "\r\n") {
			t.Fatalf("record %s: value %q is not its member's NDJSON line (%v)", m.Key, m.Value, err)
		}
		var hdr string
		for _, h := range m.Headers {
			if string(h.Key) == exportjob.JobHeader {
				hdr = string(h.Value)
			}
		}
		if hdr != job {
			t.Fatalf("record %s: job header %q, want %q", m.Key, hdr, job)
		}
		ids = append(ids, string(m.Key))
	}
	return ids
}

func fastLease(cfg *config.Config) { cfg.ExportLockTTL = 2 * time.Second }

func TestAnExportJobWritesEveryMemberOnceAndShowsItsProgress(t *testing.T) {
	const n = 3000
	e := setupExport(t, n, fastLease)
	e.env.StartExportRunner(t, e.cfg, "r1", func(rc *exportjob.RunnerConfig) {
		rc.PageSize, rc.PageDelay = 200, 30*time.Millisecond
	})
	topic := e.cfg.Topic("audience")
	for _, tc := range []struct {
		name, body, format string
		kafka              bool
	}{
		{name: "NDJSON to a file", body: `{"segment": %q}`, format: "ndjson"},
		{name: "CSV with a BOM to a file", body: `{"segment": %q, "format": "csv", "bom": true, "fields": ["name", "phone"]}`, format: "csv"},
		{name: "NDJSON of a filter to a file", body: `{"filter": {"field": "tags", "op": "eq", "value": "exp"}, "fields": ["name"], "_": %q}`, format: "ndjson"},
		{name: "Kafka records keyed by customer id", body: `{"segment": %q, "destination": {"type": "kafka", "topic": "` + topic + `"}}`, kafka: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := fmt.Sprintf(tc.body, e.segment)
			body = strings.Replace(body, fmt.Sprintf(`, "_": %q`, e.segment), "", 1)
			j := postJob(t, e.srv.URL, body)
			if !tc.kafka {
				if code, raw := call(t, "GET", e.srv.URL+"/v1/exports/"+j.ID+"/download", ""); code != http.StatusConflict {
					t.Fatalf("download before done: %d %s, want 409", code, raw)
				}
			}
			done, seen := waitJob(t, e.srv.URL, j.ID, "done", 2*time.Minute)
			if done.Exported != n || done.Total != n || done.FinishedAt == nil || done.Error != nil {
				t.Fatalf("done job: %+v", done)
			}
			moving := 0
			for _, x := range seen {
				if x > 0 && x < n {
					moving++
				}
			}
			if moving < 2 {
				t.Errorf("progress seen while running: %v; want at least two counts between 0 and %d", seen, n)
			}
			if tc.kafka {
				onceEach(t, topicIDs(t, e.env, topic, j.ID), n)
				if code, _ := call(t, "GET", e.srv.URL+"/v1/exports/"+j.ID+"/download", ""); code != http.StatusConflict {
					t.Errorf("download of a Kafka job: %d, want 409", code)
				}
				return
			}
			code, raw := call(t, "GET", e.srv.URL+"/v1/exports/"+j.ID+"/download", "")
			if code != http.StatusOK {
				t.Fatalf("download: %d %s", code, raw[:min(len(raw), 300)])
			}
			if strings.Contains(body, `"bom": true`) && !bytes.HasPrefix(raw, []byte("\uFEFF")) {
				t.Errorf("CSV with bom=true does not start with the byte-order mark")
			}
			onceEach(t, parseExport(t, tc.format, raw), n)
		})
	}
	code, raw := call(t, "GET", e.srv.URL+"/v1/exports", "")
	var list struct{ Exports []jobView }
	if code != http.StatusOK || json.Unmarshal(raw, &list) != nil || len(list.Exports) != 4 {
		t.Errorf("GET /v1/exports: %d %s, want the 4 jobs", code, raw)
	}
}

func TestACancelledExportJobStops(t *testing.T) {
	e := setupExport(t, 2000, fastLease)
	e.env.StartExportRunner(t, e.cfg, "r1", func(rc *exportjob.RunnerConfig) {
		rc.PageSize, rc.PageDelay = 50, 100*time.Millisecond
	})
	j := postJob(t, e.srv.URL, fmt.Sprintf(`{"segment": %q}`, e.segment))
	harness.Eventually(t, time.Minute, func() (bool, string) {
		g := getJob(t, e.srv.URL, j.ID)
		return g.Status == "running" && g.Exported > 0, fmt.Sprintf("job %+v", g)
	})
	code, raw := call(t, "DELETE", e.srv.URL+"/v1/exports/"+j.ID, "")
	if code != http.StatusOK || !strings.Contains(string(raw), `"cancelled"`) {
		t.Fatalf("DELETE: %d %s", code, raw)
	}
	// The runner stops at its next checkpoint, which the cancel fenced
	// off: the lease is given back then.
	jobs := exportjob.NewStore(e.st, mapping.ExportJobs.Alias(e.cfg.IndexPrefix))
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		got, _, _, err := jobs.Get(context.Background(), j.ID)
		if err != nil {
			return false, err.Error()
		}
		return got.Status == exportjob.Cancelled && got.FinishedAt != "", fmt.Sprintf("job %+v", got.View())
	})
	if code, _ := call(t, "GET", e.srv.URL+"/v1/exports/"+j.ID+"/download", ""); code != http.StatusConflict {
		t.Errorf("download of a cancelled job: %d, want 409", code)
	}
	harness.Eventually(t, 10*time.Second, func() (bool, string) {
		left, _ := filepath.Glob(filepath.Join(e.cfg.ExportDir, "*"))
		return len(left) == 0, fmt.Sprintf("the runner left %v", left)
	})
	if code, raw := call(t, "DELETE", e.srv.URL+"/v1/exports/"+j.ID, ""); code != http.StatusOK || !strings.Contains(string(raw), `"cancelled"`) {
		t.Errorf("second DELETE: %d %s, want 200 and still cancelled", code, raw)
	}
}

func TestBadExportJobRequestsAreRefusedNamingWhatIsWrong(t *testing.T) {
	e := setupExport(t, 10, nil)
	for _, tc := range []struct {
		name, method, path, body string
		code                     int
		want                     string
	}{
		{"an unknown segment is a 404", "POST", "/v1/exports", `{"segment": "seg_missing"}`, 404, "segment_not_found"},
		{"an unknown format is a 400 naming format", "POST", "/v1/exports", `{"segment": "SEG", "format": "xml"}`, 400, `"path":"format"`},
		{"an unknown field is a 400 naming it", "POST", "/v1/exports", `{"segment": "SEG", "fields": ["nope"]}`, 400, `"path":"fields[0]"`},
		{"an unknown destination type is a 400", "POST", "/v1/exports", `{"segment": "SEG", "destination": {"type": "s3"}}`, 400, `"path":"destination.type"`},
		{"a Kafka destination without a topic is a 400", "POST", "/v1/exports", `{"segment": "SEG", "destination": {"type": "kafka"}}`, 400, `"path":"destination.topic"`},
		{"a bad topic name is a 400", "POST", "/v1/exports", `{"segment": "SEG", "destination": {"type": "kafka", "topic": "a b"}}`, 400, `"path":"destination.topic"`},
		{"neither segment nor filter is a 400", "POST", "/v1/exports", `{"format": "csv"}`, 400, `"path":"segment"`},
		{"both segment and filter is a 400", "POST", "/v1/exports", `{"segment": "SEG", "filter": {"all": []}}`, 400, `"path":"segment"`},
		{"an empty body is a 400", "POST", "/v1/exports", ``, 400, "invalid_json"},
		{"an unknown key is a 400", "POST", "/v1/exports", `{"segment": "SEG", "colour": 1}`, 400, `"path":"colour"`},
		{"a bad filter is a 400 with its path", "POST", "/v1/exports", `{"filter": {"field": "nope", "op": "eq", "value": 1}}`, 400, "invalid"},
		{"an unknown job is a 404", "GET", "/v1/exports/exp_nope", ``, 404, "export_not_found"},
		{"the download of an unknown job is a 404", "GET", "/v1/exports/exp_nope/download", ``, 404, "export_not_found"},
		{"the cancel of an unknown job is a 404", "DELETE", "/v1/exports/exp_nope", ``, 404, "export_not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, raw := call(t, tc.method, e.srv.URL+tc.path, strings.ReplaceAll(tc.body, "SEG", e.segment))
			if code != tc.code || !strings.Contains(string(raw), tc.want) {
				t.Errorf("%d %s, want %d with %s", code, raw, tc.code, tc.want)
			}
		})
	}
}
