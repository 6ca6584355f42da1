package membership

import (
	"encoding/json"
	"iter"
	"slices"
	"strings"
	"testing"
	"time"

	"cdp/query"
	"cdp/schema"
)

func seq(ids ...string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		for _, id := range ids {
			if !yield(id, nil) {
				return
			}
		}
	}
}

func TestDifferYieldsTheIdsInOneSortedWalkAndNotTheOther(t *testing.T) {
	tests := []struct {
		name string
		a, b []string
		want []string
	}{
		{"both empty", nil, nil, nil},
		{"only stored members leave", []string{"a", "b"}, nil, []string{"a", "b"}},
		{"only new members enter", nil, []string{"a", "c"}, []string{"a", "c"}},
		{"shared ids are left out", []string{"a", "b", "d"}, []string{"b", "c", "d", "e"}, []string{"a", "c", "e"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			if err := differ(seq(tt.a...), seq(tt.b...), func(id string) error { got = append(got, id); return nil }); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFlipRecordsEveryChangeInScopeWithIdsThatDependOnTheVersion(t *testing.T) {
	s := State{CustomerID: "c1", Segments: []string{"s1", "s2"}, Rules: []string{"vip"}, Version: 4}
	want := map[Key]bool{{KindSegment, "s2"}: true, {KindSegment, "s3"}: true, {KindTag, "vip"}: false}
	inScope := func(k Key) bool { return k.ID != "s1" } // s1 is being swept by its own definition
	next, flips := flip(s, want, inScope, CauseChange, "2026-01-01T00:00:00Z")
	if !slices.Equal(next.Segments, []string{"s1", "s2", "s3"}) || len(next.Rules) != 0 || next.Version != 5 {
		t.Fatalf("next state %+v", next)
	}
	if len(flips) != 2 || flips[0].ID != "s3" || flips[0].Type != "entered" || flips[1].ID != "vip" || flips[1].Type != "exited" {
		t.Fatalf("flips %+v", flips)
	}
	if next.PendingCount != 2 || flips[0].MessageID != messageID("c1", Key{KindSegment, "s3"}, "entered", 5) {
		t.Errorf("pending %d, id %s", next.PendingCount, flips[0].MessageID)
	}
	if again, more := flip(next, want, inScope, CauseChange, "x"); len(more) != 0 || again.Version != 5 {
		t.Errorf("a second evaluation flipped %+v", more)
	}
}

func TestClocksFindEveryRollingWindowOfAFilterAndNothingElse(t *testing.T) {
	cat := schema.Base()
	segs := mapResolver{"s1": json.RawMessage(`{"field":"metrics.last_seen_at","op":"in_last","value":"7d"}`)}
	tests := []struct {
		name, filter string
		want         []clock
	}{
		{"a fixed day is no clock", `{"field":"registered_at","op":"before","value":"2026-01-01"}`, nil},
		{"in_last on a field", `{"field":"metrics.last_order_at","op":"in_last","value":"30d"}`,
			[]clock{{field: "metrics.last_order_at", d: query.Duration{N: 30, Unit: 'd'}}}},
		{"not_in_last under a not", `{"not":{"field":"registered_at","op":"not_in_last","value":"2h"}}`,
			[]clock{{field: "registered_at", d: query.Duration{N: 2, Unit: 'h'}}}},
		{"inside a nested where", `{"nested":"orders","match":"any","where":{"field":"orders.created_at","op":"in_last","value":"1h"}}`,
			[]clock{{field: "orders.created_at", d: query.Duration{N: 1, Unit: 'h'}}}},
		{"an event within", `{"event":"view","within":"3d"}`, []clock{{event: "view", d: query.Duration{N: 3, Unit: 'd'}}}},
		{"an event without within", `{"event":"view"}`, nil},
		{"through a segment node", `{"any":[{"segment":"s1"}]}`,
			[]clock{{field: "metrics.last_seen_at", d: query.Duration{N: 7, Unit: 'd'}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := (&query.Parser{Catalog: cat, Segments: segs}).Parse([]byte(tt.filter))
			if err != nil {
				t.Fatal(err)
			}
			if got := clocks(f); !slices.Equal(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestAWindowLetsGoOfAnInstantAfterItsDurationInTheTimeZone(t *testing.T) {
	sh, _ := time.LoadLocation("Asia/Shanghai")
	e := &Engine{cfg: Config{Location: sh}}
	at := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	if got := e.after(at, query.Duration{N: 2, Unit: 'h'}); !got.Equal(at.Add(2 * time.Hour)) {
		t.Errorf("2h: %s", got)
	}
	if got := e.after(at, query.Duration{N: 1, Unit: 'd'}); !got.Equal(at.AddDate(0, 0, 1)) {
		t.Errorf("1d: %s", got)
	}
}

func TestValuesCollectAPathThroughLists(t *testing.T) {
	doc := map[string]any{"orders": []any{
		map[string]any{"created_at": "a", "items": []any{map[string]any{"sku": "x"}, map[string]any{"sku": "y"}}},
		map[string]any{"created_at": "b"},
	}, "tags": []any{"t1", "t2"}}
	for _, tt := range []struct {
		path string
		want []any
	}{
		{"orders.created_at", []any{"a", "b"}},
		{"orders.items.sku", []any{"x", "y"}},
		{"tags", []any{"t1", "t2"}},
		{"metrics.total_spend", nil},
	} {
		if got := values(doc, strings.Split(tt.path, ".")); !slices.Equal(got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.path, got, tt.want)
		}
	}
}

func TestDependentsAreTheDefinitionsThatNameASegmentAtAnyDepth(t *testing.T) {
	defs := []definition{
		{key: Key{KindSegment, "a"}},
		{key: Key{KindSegment, "b"}, refs: []string{"a"}},
		{key: Key{KindTag, "r"}, refs: []string{"b"}},
		{key: Key{KindSegment, "c"}},
	}
	got := dependents(defs, Key{KindSegment, "a"})
	if len(got) != 3 || !got[Key{KindSegment, "b"}] || !got[Key{KindTag, "r"}] || got[Key{KindSegment, "c"}] {
		t.Errorf("dependents of a: %v", got)
	}
}
