package main

import (
	"strings"
	"testing"
)

const metricsText = `# TYPE cdp_indexer_rebuild_part_seconds histogram
cdp_indexer_rebuild_part_seconds_bucket{part="write",le="+Inf"} 4
cdp_indexer_rebuild_part_seconds_sum{part="write"} 2.5
cdp_indexer_rebuild_part_seconds_count{part="write"} 4
cdp_indexer_rebuild_part_seconds_bucket{part="versions",le="+Inf"} 4
cdp_indexer_rebuild_part_seconds_sum{part="versions"} 0.5
cdp_indexer_rebuild_part_seconds_count{part="versions"} 4
cdp_indexer_rebuild_part_seconds_bucket{part="sources",le="+Inf"} 0
cdp_indexer_rebuild_part_seconds_sum{part="sources"} 0
cdp_indexer_rebuild_part_seconds_count{part="sources"} 0
# TYPE cdp_indexer_batch_seconds histogram
cdp_indexer_batch_seconds_bucket{lane="sources",le="+Inf"} 2
cdp_indexer_batch_seconds_sum{lane="sources"} 1.25
cdp_indexer_batch_seconds_count{lane="sources"} 2
# TYPE cdp_other_seconds histogram
cdp_other_seconds_bucket{le="+Inf"} 1
cdp_other_seconds_sum 9
cdp_other_seconds_count 1
`

func TestTheBreakdownKeepsTheIndexersTimeHistogramsLargestFirstAndSkipsEmptySeries(t *testing.T) {
	got, err := parseBreakdown(strings.NewReader(metricsText))
	if err != nil {
		t.Fatal(err)
	}
	want := []TimeShare{
		{"cdp_indexer_batch_seconds", "sources", 1.25, 2},
		{"cdp_indexer_rebuild_part_seconds", "write", 2.5, 4},
		{"cdp_indexer_rebuild_part_seconds", "versions", 0.5, 4},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("share %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestAPhasesBreakdownIsWhatItsEndAddsToItsStart(t *testing.T) {
	before := []TimeShare{{"m", "a", 1, 2}, {"m", "b", 3, 3}}
	after := []TimeShare{{"m", "a", 1.5, 5}, {"m", "b", 3, 3}, {"m", "c", 2, 1}}
	got := since(after, before)
	want := []TimeShare{{"m", "a", 0.5, 3}, {"m", "c", 2, 1}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}
