package store

import (
	"bytes"
	"context"
	"errors"
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
