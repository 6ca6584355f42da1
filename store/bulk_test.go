package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// fakeBulk answers every item of a _bulk body with 201, counting requests.
func fakeBulk(t *testing.T, requests *int32, largest *int) *Client {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		atomic.AddInt32(requests, 1)
		*largest = max(*largest, len(body))
		var items []string
		for _, line := range bytes.Split(bytes.TrimSpace(body), []byte("\n")) {
			if bytes.HasPrefix(line, []byte(`{"index"`)) {
				items = append(items, `{"index":{"status":201}}`)
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"items":[`+strings.Join(items, ",")+`]}`)
	}))
	t.Cleanup(srv.Close)
	c, err := New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestBulkSplitsLargeBatchesAndKeepsOneVerdictPerOpInOrder(t *testing.T) {
	var requests int32
	largest := 0
	c := fakeBulk(t, &requests, &largest)
	big := strings.Repeat("x", 1<<20)
	ops := make([]Op, 20)
	for i := range ops {
		ops[i] = Op{Action: Index, Index: "i", ID: string(rune('a' + i)), Body: map[string]string{"v": big}}
	}
	verdicts, err := c.Bulk(context.Background(), ops)
	if err != nil {
		t.Fatal(err)
	}
	if len(verdicts) != len(ops) || requests < 3 || largest > MaxBulkBytes {
		t.Fatalf("%d verdicts in %d requests, largest %d bytes: want %d verdicts, bodies ≤ %d", len(verdicts), requests, largest, len(ops), MaxBulkBytes)
	}
	for _, v := range verdicts {
		if !v.OK() {
			t.Fatalf("verdict %+v", v)
		}
	}
}

func TestAnOpLargerThanTheLimitStillGoesAlone(t *testing.T) {
	var requests int32
	largest := 0
	c := fakeBulk(t, &requests, &largest)
	huge := strings.Repeat("x", MaxBulkBytes+10)
	verdicts, err := c.Bulk(context.Background(), []Op{
		{Action: Index, Index: "i", ID: "a", Body: map[string]string{"v": "small"}},
		{Action: Index, Index: "i", ID: "b", Body: map[string]string{"v": huge}},
	})
	if err != nil || len(verdicts) != 2 || requests != 2 {
		t.Fatalf("%v, %d verdicts in %d requests", err, len(verdicts), requests)
	}
}

func TestBulkErrorsNameTheStatusAndReason(t *testing.T) {
	e := decodeError(429, []byte(`{"error":{"type":"es_rejected_execution_exception","reason":"queue full"},"status":429}`))
	if e.Status != 429 || e.Type != "es_rejected_execution_exception" || !Unavailable(e) {
		t.Fatalf("%+v", e)
	}
}

func TestASearchErrorNamesItsInnermostCause(t *testing.T) {
	body := `{"error":{"root_cause":[],"type":"search_phase_execution_exception","reason":"","phase":"fetch","grouped":true,"failed_shards":[],` +
		`"caused_by":{"type":"too_many_buckets_exception","reason":"Trying to create too many buckets.","max_buckets":65535}},"status":503}`
	e := decodeError(503, []byte(body))
	if e.Type != "search_phase_execution_exception" || e.Cause != "too_many_buckets_exception" {
		t.Fatalf("%+v", e)
	}
	if !HasCause(fmt.Errorf("evaluate: %w", e), "too_many_buckets_exception") || HasCause(e, "es_rejected_execution_exception") {
		t.Errorf("HasCause does not tell the cause of %+v", e)
	}
}

func TestOnlyOpenSearchsOwnFailuresCountAsUnavailable(t *testing.T) {
	c, err := New("http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	refused := c.Do(context.Background(), http.MethodGet, "/", nil, nil)
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", refused, true},
		{"429", &Error{Status: 429}, true},
		{"503", &Error{Status: 503}, true},
		{"400", &Error{Status: 400}, false},
		{"a body we could not decode", errors.New("store: decode: unexpected end of JSON input"), false},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		if got := Unavailable(tt.err); got != tt.want {
			t.Errorf("%s: Unavailable(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

func TestJudgeTellsWhatEachVerdictMeansForItsOp(t *testing.T) {
	index := Op{Action: Index}
	versioned := Op{Action: Index, VersionType: "external_gte"}
	tests := []struct {
		name string
		op   Op
		v    Verdict
		want Outcome
	}{
		{"a written item", index, Verdict{Status: 201}, Applied},
		{"a create that meets a stored document", Op{Action: Create}, Verdict{Status: 409}, Unchanged},
		{"a versioned write that meets a newer version", versioned, Verdict{Status: 409}, Unchanged},
		{"a plain write that conflicts", index, Verdict{Status: 409}, Refused},
		{"a write fenced by where the document stood, which changed since", Op{Action: Index, IfMatch: &SeqTerm{3, 1}}, Verdict{Status: 409}, Stale},
		{"a delete fenced by where the document stood, which changed since", Op{Action: Delete, IfMatch: &SeqTerm{3, 1}}, Verdict{Status: 409}, Stale},
		{"a write fenced by the document's absence, written since", Op{Action: Index, IfAbsent: true}, Verdict{Status: 409}, Stale},
		{"a delete of nothing", Op{Action: Delete}, Verdict{Status: 404}, Unchanged},
		{"an index write to a missing index", index, Verdict{Status: 404}, Refused},
		{"an overloaded cluster", index, Verdict{Status: 429}, Retry},
		{"a failing shard", index, Verdict{Status: 503}, Retry},
		{"a read-only index", index, Verdict{Status: 403, Type: "cluster_block_exception"}, Retry},
		{"a document the mapping refuses", index, Verdict{Status: 400, Type: "mapper_parsing_exception"}, Refused},
	}
	for _, tt := range tests {
		if got := Judge(tt.op, tt.v); got != tt.want {
			t.Errorf("%s: Judge = %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestAFencedWriteIsSentWithWhereTheDocumentStoodOrAsACreate(t *testing.T) {
	var buf bytes.Buffer
	for _, op := range []Op{
		{Action: Index, Index: "i", ID: "a", IfMatch: &SeqTerm{SeqNo: 7, PrimaryTerm: 2}, Body: 1},
		{Action: Index, Index: "i", ID: "b", IfAbsent: true, Body: 2},
		{Action: Delete, Index: "i", ID: "c", IfMatch: &SeqTerm{SeqNo: 8, PrimaryTerm: 2}},
	} {
		if err := encodeOp(&buf, op); err != nil {
			t.Fatal(err)
		}
	}
	want := `{"index":{"_id":"a","_index":"i","if_primary_term":2,"if_seq_no":7}}
1
{"create":{"_id":"b","_index":"i"}}
2
{"delete":{"_id":"c","_index":"i","if_primary_term":2,"if_seq_no":8}}
`
	if buf.String() != want {
		t.Fatalf("encoded\n%s\nwant\n%s", buf.String(), want)
	}
}

func TestCreateIfAbsentNamesTheExistingAndFailsOnTheRest(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if n := bytes.Count(body, []byte(`{"create":`)); n != 3 {
			t.Errorf("%d creates in %s", n, body)
		}
		_, _ = io.WriteString(w, `{"items":[{"create":{"status":201}},{"create":{"status":409,"error":{"type":"version_conflict_engine_exception","reason":"exists"}}},
			{"create":{"status":429,"error":{"type":"es_rejected_execution_exception","reason":"queue full"}}}]}`)
	}))
	t.Cleanup(srv.Close)
	c, err := New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	existing, err := c.CreateIfAbsent(context.Background(), []Op{
		{Action: Index, Index: "i", ID: "a", Body: 1}, {Index: "i", ID: "b", Body: 2}, {Index: "i", ID: "c", Body: 3},
	})
	var item *ItemError
	if len(existing) != 1 || existing[0] != 1 || !errors.As(err, &item) || item.Op.ID != "c" || item.Outcome != Retry {
		t.Fatalf("existing %v, err %v", existing, err)
	}
	if want := "create i/c: 429 es_rejected_execution_exception: queue full"; err.Error() != want {
		t.Fatalf("err %q, want %q", err, want)
	}
}

func TestOnlyAnItemRefusedForGoodShowsItsStatus(t *testing.T) {
	tests := []struct {
		name string
		v    Verdict
		want int
	}{
		{"a document the mapping refuses", Verdict{Status: 400, Type: "mapper_parsing_exception"}, 400},
		{"a read-only index", Verdict{Status: 403, Type: "cluster_block_exception"}, 0},
		{"an overloaded cluster", Verdict{Status: 429}, 0},
	}
	for _, tt := range tests {
		op := Op{Action: Create, Index: "i", ID: "a"}
		err := error(&ItemError{Op: op, Verdict: tt.v, Outcome: Judge(op, tt.v)})
		if got := StatusOf(errors.Join(err)); got != tt.want {
			t.Errorf("%s: StatusOf = %d, want %d", tt.name, got, tt.want)
		}
	}
}
