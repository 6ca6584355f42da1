package membership

import (
	"iter"
	"slices"
	"testing"
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
