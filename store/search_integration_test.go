package store_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"cdp/store"
	"cdp/testing/harness"
)

// Against the real OpenSearch: a walk over more documents than one page
// sees each exactly once, in order, with and without a point in time, and
// leaves no point in time open on the index.
func TestPagingThroughTheRealOpenSearchVisitsEveryDocumentOnceAndClosesItsPointInTime(t *testing.T) {
	env := harness.Services(t)
	st := env.Store(t)
	ctx := context.Background()
	index := "t" + harness.Unique() + "-scan"
	if err := st.Do(ctx, http.MethodPut, "/"+index, map[string]any{
		"settings": map[string]any{"number_of_shards": 2, "number_of_replicas": 0},
		"mappings": map[string]any{"properties": map[string]any{"k": map[string]any{"type": "keyword"}, "n": map[string]any{"type": "long"}}},
	}, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Do(context.Background(), http.MethodDelete, "/"+index, nil, nil) })

	const n = 2345
	ops := make([]store.Op, n)
	want := make([]string, n)
	for i := range ops {
		want[i] = fmt.Sprintf("k%05d", i)
		body := map[string]any{"k": want[i]}
		if i%3 != 0 {
			body["n"] = i % 7 // ties on n, and a third of the documents without it
		}
		ops[i] = store.Op{Action: store.Index, Index: index, ID: want[i], Body: body}
	}
	verdicts, err := st.Bulk(ctx, ops)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range verdicts {
		if !v.OK() {
			t.Fatalf("op %d: %+v", i, v)
		}
	}
	if err := st.Refresh(ctx, index); err != nil {
		t.Fatal(err)
	}

	openPITs := func() int {
		t.Helper()
		var stats struct {
			Indices map[string]struct {
				Total struct {
					Search struct {
						PITCurrent int `json:"point_in_time_current"`
					} `json:"search"`
				} `json:"total"`
			} `json:"indices"`
		}
		if err := st.Do(ctx, http.MethodGet, "/"+index+"/_stats/search", nil, &stats); err != nil {
			t.Fatal(err)
		}
		return stats.Indices[index].Total.Search.PITCurrent
	}

	tests := []struct {
		name      string
		sort      []any
		keepAlive time.Duration
		wantOrder bool
	}{
		{"on a unique key", []any{map[string]any{"k": "asc"}}, 0, true},
		{"on a unique key under a point in time", []any{map[string]any{"k": "asc"}}, time.Minute, true},
		// A long sort with ties and missing values: OpenSearch gives those
		// Long.MAX_VALUE as their sort value, more than a float64 holds
		// exactly, and the walk must still pass over every one once.
		{"on a long with ties and missing values", []any{map[string]any{"n": map[string]any{"order": "asc", "missing": "_last"}}, map[string]any{"k": "asc"}}, 0, false},
		{"on a long with ties and missing values under a point in time", []any{map[string]any{"n": map[string]any{"order": "asc", "missing": "_last"}}, map[string]any{"k": "asc"}}, time.Minute, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			scan := store.Scan{Body: map[string]any{"sort": tt.sort, "_source": []string{"k"}}, PageSize: 500, KeepAlive: tt.keepAlive}
			var got []string
			pitSeen := false
			for h, err := range st.Hits(ctx, index, scan) {
				if err != nil {
					t.Fatal(err)
				}
				if len(got) == 0 && tt.keepAlive > 0 {
					pitSeen = openPITs() > 0 // one per shard
				}
				var doc struct{ K string }
				if err := h.Decode(&doc); err != nil {
					t.Fatal(err)
				}
				if doc.K != h.ID {
					t.Fatalf("hit %s has source %s", h.ID, h.Source)
				}
				got = append(got, h.ID)
			}
			if tt.wantOrder && !slices.Equal(got, want) {
				t.Fatalf("visited %d documents, not the %d in order", len(got), n)
			}
			if sorted := slices.Sorted(slices.Values(got)); !slices.Equal(sorted, want) {
				t.Fatalf("visited %d documents (%d distinct of %d)", len(got), len(slices.Compact(sorted)), n)
			}
			if tt.keepAlive > 0 && !pitSeen {
				t.Fatal("no point in time was open on the index during the walk")
			}
			if open := openPITs(); open != 0 {
				t.Fatalf("%d points in time still open on %s after the walk", open, index)
			}
		})
	}

	t.Run("a walk left early closes its point in time", func(t *testing.T) {
		scan := store.Scan{Body: map[string]any{"sort": []any{"k"}}, PageSize: 100, KeepAlive: time.Minute}
		seen := 0
		for _, err := range st.Hits(ctx, index, scan) {
			if err != nil {
				t.Fatal(err)
			}
			if seen++; seen == 150 {
				break
			}
		}
		if open := openPITs(); open != 0 {
			t.Fatalf("%d points in time still open after leaving the walk", open)
		}
	})

	t.Run("mget finds the stored documents", func(t *testing.T) {
		docs, err := st.Mget(ctx, index, []string{"k00002", "missing", "k02344"})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, d := range docs {
			ids = append(ids, d.ID)
		}
		if strings.Join(ids, ",") != "k00002,k02344" {
			t.Fatalf("found %v", ids)
		}
	})
}

// Against the real OpenSearch: Versions tells where each document stands,
// and a write fenced with it goes through only while no other write came
// in between; one that comes after another write is judged Stale, never
// Unchanged, whether the document was found (IfMatch) or not (IfAbsent).
func TestAWriteFencedWithVersionsLosesToAnyWriteSinceTheRead(t *testing.T) {
	env := harness.Services(t)
	st := env.Store(t)
	ctx := context.Background()
	index := "t" + harness.Unique() + "-fence"
	if err := st.Do(ctx, http.MethodPut, "/"+index, map[string]any{"settings": map[string]any{"number_of_shards": 1, "number_of_replicas": 0}}, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Do(context.Background(), http.MethodDelete, "/"+index, nil, nil) })
	write := func(ops ...store.Op) []store.Outcome {
		t.Helper()
		verdicts, err := st.Bulk(ctx, ops)
		if err != nil {
			t.Fatal(err)
		}
		out := make([]store.Outcome, len(ops))
		for i, v := range verdicts {
			out[i] = store.Judge(ops[i], v)
		}
		return out
	}
	read := func() map[string]store.SeqTerm {
		t.Helper()
		at, err := st.Versions(ctx, index, []string{"a", "b", "gone"})
		if err != nil {
			t.Fatal(err)
		}
		return at
	}
	if got := write(store.Op{Action: store.Index, Index: index, ID: "a", Body: map[string]any{"v": 1}}); got[0] != store.Applied {
		t.Fatalf("first write: %v", got)
	}
	stale := read() // a: found; b and gone: missing
	if _, ok := stale["a"]; len(stale) != 1 || !ok {
		t.Fatalf("versions %v, want a alone", stale)
	}
	fresh := func(id string) store.SeqTerm { return read()[id] }

	// Another writer comes in after the read.
	if got := write(
		store.Op{Action: store.Index, Index: index, ID: "a", IfMatch: ptr(fresh("a")), Body: map[string]any{"v": 2}},
		store.Op{Action: store.Index, Index: index, ID: "b", IfAbsent: true, Body: map[string]any{"v": 2}},
	); got[0] != store.Applied || got[1] != store.Applied {
		t.Fatalf("the newer writer: %v, want both applied", got)
	}
	a := stale["a"]
	if got := write(
		store.Op{Action: store.Index, Index: index, ID: "a", IfMatch: &a, Body: map[string]any{"v": 1}},
		store.Op{Action: store.Index, Index: index, ID: "b", IfAbsent: true, Body: map[string]any{"v": 1}},
		store.Op{Action: store.Delete, Index: index, ID: "a", IfMatch: &a},
	); got[0] != store.Stale || got[1] != store.Stale || got[2] != store.Stale {
		t.Fatalf("the stale writer: %v, want all three stale", got)
	}
	var doc struct{ V int }
	for _, id := range []string{"a", "b"} {
		if found, err := st.GetSource(ctx, index, id, &doc); err != nil || !found || doc.V != 2 {
			t.Fatalf("%s: found %v, %+v, %v: want the newer writer's", id, found, doc, err)
		}
	}
	if got := write(store.Op{Action: store.Delete, Index: index, ID: "a", IfMatch: ptr(fresh("a"))}); got[0] != store.Applied {
		t.Fatalf("a delete fenced with a fresh read: %v", got)
	}
	if at := read(); len(at) != 1 {
		t.Fatalf("versions after the delete: %v, want b alone", at)
	}
}

func ptr[T any](v T) *T { return &v }
