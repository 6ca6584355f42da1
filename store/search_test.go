package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeSearch stands in for OpenSearch's _search, point in time and _mget
// over n documents d00000…, sorted by id. It hands out a new PIT id with
// every page, as OpenSearch may.
type fakeSearch struct {
	t    *testing.T
	docs []string

	mu       sync.Mutex
	open     map[string]bool // PIT ids currently open
	opened   int
	searches int
	bodies   []map[string]any
	failAt   int // the search (1-based) that answers 503; 0 for none
}

func newFakeSearch(t *testing.T, n int) (*fakeSearch, *Client) {
	f := &fakeSearch{t: t, open: map[string]bool{}}
	for i := range n {
		f.docs = append(f.docs, fmt.Sprintf("d%05d", i))
	}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return f, c
}

func (f *fakeSearch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	data, _ := io.ReadAll(r.Body)
	var body map[string]any
	if len(data) > 0 {
		if err := json.Unmarshal(data, &body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/_search/point_in_time"):
		f.opened++
		id := fmt.Sprintf("pit-%d-0", f.opened)
		f.open[id] = true
		fmt.Fprintf(w, `{"pit_id":%q}`, id)
	case r.Method == http.MethodDelete && r.URL.Path == "/_search/point_in_time":
		for _, id := range body["pit_id"].([]any) {
			delete(f.open, id.(string))
		}
		_, _ = io.WriteString(w, `{"pits":[]}`)
	case strings.HasSuffix(r.URL.Path, "/_search"):
		f.search(w, r, body)
	case strings.HasSuffix(r.URL.Path, "/_mget"):
		var docs []string
		for _, id := range body["ids"].([]any) {
			if slices.Contains(f.docs, id.(string)) {
				docs = append(docs, fmt.Sprintf(`{"_index":"i","_id":%q,"_seq_no":7,"_primary_term":1,"found":true,"_source":{"id":%q}}`, id, id))
			} else {
				docs = append(docs, fmt.Sprintf(`{"_index":"i","_id":%q,"found":false}`, id))
			}
		}
		_, _ = io.WriteString(w, `{"docs":[`+strings.Join(docs, ",")+`]}`)
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeSearch) search(w http.ResponseWriter, r *http.Request, body map[string]any) {
	f.searches++
	f.bodies = append(f.bodies, body)
	if f.searches == f.failAt {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"error":{"type":"unavailable","reason":"try later"},"status":503}`)
		return
	}
	pitID := ""
	if pit, ok := body["pit"].(map[string]any); ok {
		if r.URL.Path != "/_search" {
			http.Error(w, "a search with a pit must not name an index", http.StatusBadRequest)
			return
		}
		id := pit["id"].(string)
		if !f.open[id] {
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"error":{"type":"search_context_missing_exception","reason":"no pit"},"status":404}`)
			return
		}
		delete(f.open, id)
		pitID = id + "+"
		f.open[pitID] = true
	}
	start := 0
	if after, ok := body["search_after"].([]any); ok {
		start, _ = slices.BinarySearch(f.docs, after[0].(string))
		start++
	}
	size := int(body["size"].(float64))
	var hits []string
	for _, id := range f.docs[start:min(start+size, len(f.docs))] {
		hits = append(hits, fmt.Sprintf(`{"_index":"i","_id":%q,"_score":null,"_source":{"id":%q,"n":1.50},"sort":[%q]}`, id, id, id))
	}
	fmt.Fprintf(w, `{"pit_id":%q,"hits":{"total":{"value":%d,"relation":"eq"},"hits":[%s]}}`, pitID, len(f.docs), strings.Join(hits, ","))
}

func TestPagingVisitsEveryHitOnceInSortOrder(t *testing.T) {
	tests := []struct {
		name      string
		docs      int
		pageSize  int
		keepAlive time.Duration
		searches  int
		prefetch  bool
	}{
		{"no documents", 0, 10, 0, 1, false},
		{"fewer than a page", 7, 10, 0, 1, false},
		{"exactly one page asks once more", 10, 10, 0, 2, false},
		{"several pages", 25, 10, 0, 3, false},
		{"several pages under a point in time", 25, 10, time.Minute, 3, false},
		{"the default page size", 1001, 0, 0, 2, false},
		{"several pages, each asked for before the last is taken", 25, 10, 0, 3, true},
		{"several pages prefetched under a point in time", 25, 10, time.Minute, 3, true},
		{"exactly one page prefetched asks once more", 10, 10, time.Minute, 2, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c := newFakeSearch(t, tt.docs)
			body := map[string]any{"sort": []any{map[string]any{"id": "asc"}}}
			var got []string
			for h, err := range c.Hits(context.Background(), "i", Scan{Body: body, PageSize: tt.pageSize, KeepAlive: tt.keepAlive, Prefetch: tt.prefetch}) {
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, h.ID)
			}
			if !slices.Equal(got, f.docs) {
				t.Fatalf("visited %d hits %v…, want %d", len(got), got[:min(len(got), 3)], len(f.docs))
			}
			if f.searches != tt.searches {
				t.Errorf("%d searches, want %d", f.searches, tt.searches)
			}
			if len(f.open) != 0 {
				t.Errorf("points in time left open: %v", f.open)
			}
			if _, ok := body["search_after"]; ok || len(body) != 1 {
				t.Errorf("the caller's body was modified: %v", body)
			}
		})
	}
}

func TestPagingUnderAPointInTimeFollowsTheNewestIDAndNamesNoIndex(t *testing.T) {
	f, c := newFakeSearch(t, 5)
	for _, err := range c.Pages(context.Background(), "i", Scan{Body: map[string]any{"sort": []any{"id"}}, PageSize: 2, KeepAlive: 90 * time.Second}) {
		if err != nil {
			t.Fatal(err)
		}
	}
	// Each page is answered with a new id and the fake refuses an old one,
	// so finishing at all means every page used the newest id.
	if f.searches != 3 || f.opened != 1 || len(f.open) != 0 {
		t.Fatalf("%d searches, %d PITs opened, %v left open", f.searches, f.opened, f.open)
	}
	if pit := f.bodies[0]["pit"].(map[string]any); pit["keep_alive"] != "90000ms" {
		t.Fatalf("keep_alive %v", pit["keep_alive"])
	}
}

func TestAWalkClosesItsPointInTimeHoweverItEnds(t *testing.T) {
	body := map[string]any{"sort": []any{"id"}}
	t.Run("the loop breaks", func(t *testing.T) {
		f, c := newFakeSearch(t, 50)
		n := 0
		for _, err := range c.Hits(context.Background(), "i", Scan{Body: body, PageSize: 10, KeepAlive: time.Minute}) {
			if err != nil {
				t.Fatal(err)
			}
			if n++; n == 15 {
				break
			}
		}
		if len(f.open) != 0 || f.searches != 2 {
			t.Fatalf("%d searches, left open %v", f.searches, f.open)
		}
	})
	t.Run("the loop breaks with the next page on its way", func(t *testing.T) {
		f, c := newFakeSearch(t, 50)
		n := 0
		for _, err := range c.Hits(context.Background(), "i", Scan{Body: body, PageSize: 10, KeepAlive: time.Minute, Prefetch: true}) {
			if err != nil {
				t.Fatal(err)
			}
			if n++; n == 15 {
				break
			}
		}
		if len(f.open) != 0 || f.searches > 3 {
			t.Fatalf("%d searches (want at most the 2 taken and 1 prefetched), left open %v", f.searches, f.open)
		}
	})
	t.Run("a page fails", func(t *testing.T) {
		f, c := newFakeSearch(t, 50)
		f.failAt = 2
		var errs []error
		n := 0
		for _, err := range c.Hits(context.Background(), "i", Scan{Body: body, PageSize: 10, KeepAlive: time.Minute}) {
			if err != nil {
				errs = append(errs, err)
				continue
			}
			n++
		}
		if n != 10 || len(errs) != 1 || !Unavailable(errs[0]) {
			t.Fatalf("%d hits then errors %v: want 10 hits and one 503", n, errs)
		}
		if len(f.open) != 0 {
			t.Fatalf("left open %v", f.open)
		}
	})
	t.Run("the context ends", func(t *testing.T) {
		f, c := newFakeSearch(t, 50)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var last error
		for _, err := range c.Hits(ctx, "i", Scan{Body: body, PageSize: 10, KeepAlive: time.Minute}) {
			cancel()
			last = err
		}
		if !errors.Is(last, context.Canceled) {
			t.Fatalf("last error %v, want context.Canceled", last)
		}
		if len(f.open) != 0 {
			t.Fatalf("left open %v", f.open)
		}
	})
}

func TestAScanWithoutASortIsRefusedBeforeAnyRequest(t *testing.T) {
	f, c := newFakeSearch(t, 5)
	for _, err := range c.Hits(context.Background(), "i", Scan{Body: map[string]any{"query": map[string]any{}}}) {
		if !errors.Is(err, ErrNoSort) {
			t.Fatalf("err = %v, want ErrNoSort", err)
		}
	}
	if f.searches != 0 || f.opened != 0 {
		t.Fatalf("%d searches, %d PITs", f.searches, f.opened)
	}
}

func TestSearchKeepsSourcesAndSortValuesAsOpenSearchWroteThem(t *testing.T) {
	var res SearchResult
	err := json.Unmarshal([]byte(`{"took":1,"pit_id":"p2","hits":{"total":{"value":12,"relation":"eq"},"hits":[
		{"_index":"c","_id":"a","_routing":"r1","_seq_no":5,"_primary_term":2,"_score":1.25,
		 "_source":{"name":"张三", "n":1.50},"sort":[9223372036854775807,"a",199.0],
		 "highlight":{"name.chars":["<em>张</em>三"]}},
		{"_index":"c","_id":"b","_score":null,"_source":{}}]},
		"aggregations":{"by":{"buckets":[]}}}`), &res)
	if err != nil {
		t.Fatal(err)
	}
	if res.PITID != "p2" || res.Total != 12 || len(res.Hits) != 2 || string(res.Aggregations) != `{"by":{"buckets":[]}}` {
		t.Fatalf("%+v", res)
	}
	a, b := res.Hits[0], res.Hits[1]
	if string(a.Source) != `{"name":"张三", "n":1.50}` {
		t.Errorf("source %s: must be passed through byte for byte", a.Source)
	}
	if sort, _ := json.Marshal(a.Sort); string(sort) != `[9223372036854775807,"a",199.0]` {
		t.Errorf("sort %s: must be repeated exactly in search_after", sort)
	}
	if a.Routing != "r1" || *a.SeqNo != 5 || *a.PrimaryTerm != 2 || *a.Score != 1.25 || a.Highlight["name.chars"][0] != "<em>张</em>三" {
		t.Errorf("hit %+v", a)
	}
	if b.Score != nil || b.SeqNo != nil || b.Sort != nil {
		t.Errorf("hit %+v: absent values must stay absent", b)
	}
	var doc struct{ Name string }
	if err := a.Decode(&doc); err != nil || doc.Name != "张三" {
		t.Errorf("decode: %v %+v", err, doc)
	}
}

func TestMgetReturnsTheFoundDocumentsInTheOrderAsked(t *testing.T) {
	_, c := newFakeSearch(t, 5)
	docs, err := c.Mget(context.Background(), "i", []string{"d00003", "nope", "d00001"})
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 2 || docs[0].ID != "d00003" || docs[1].ID != "d00001" || string(docs[0].Source) != `{"id":"d00003"}` || *docs[0].SeqNo != 7 {
		t.Fatalf("%+v", docs)
	}
	if docs, err := c.Mget(context.Background(), "i", nil); err != nil || docs != nil {
		t.Fatalf("no ids: %v %v", docs, err)
	}
}

// A document OpenSearch could not read (a shard still starting after an
// outage) fails the whole _mget as unavailable: taken for "not found", it
// made the resolver mint a second customer for a known identity.
func TestMgetFailsWhenADocumentCouldNotBeReadRatherThanCallingItMissing(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"docs":[{"_id":"a","found":true,"_source":{}},{"_id":"b","error":{"type":"no_shard_available_action_exception","reason":"No shard available"}}]}`)
	}))
	t.Cleanup(srv.Close)
	c, err := New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	docs, err := c.Mget(context.Background(), "x", []string{"a", "b"})
	if err == nil || !Unavailable(err) {
		t.Fatalf("Mget = %v, %v; want an unavailable error", docs, err)
	}
}
