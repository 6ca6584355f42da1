package harness

import (
	"strings"
	"testing"
)

func TestAProcesssMetricsAreSummedByNameAndLabels(t *testing.T) {
	text := `# HELP cdp_indexer_fenced_writes_total Fenced.
# TYPE cdp_indexer_fenced_writes_total counter
cdp_indexer_fenced_writes_total 3
# HELP cdp_indexer_applied_total Applied.
# TYPE cdp_indexer_applied_total counter
cdp_indexer_applied_total{kind="row"} 5
cdp_indexer_applied_total{kind="event"} 7
# HELP cdp_indexer_bulk_seconds Bulk.
# TYPE cdp_indexer_bulk_seconds histogram
cdp_indexer_bulk_seconds_bucket{step="materialize",le="+Inf"} 4
cdp_indexer_bulk_seconds_sum{step="materialize"} 0.5
cdp_indexer_bulk_seconds_count{step="materialize"} 4
cdp_indexer_bulk_seconds_bucket{step="apply_events",le="+Inf"} 9
cdp_indexer_bulk_seconds_sum{step="apply_events"} 0.7
cdp_indexer_bulk_seconds_count{step="apply_events"} 9
`
	families, err := parseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"cdp_indexer_fenced_writes_total", nil, 3},
		{"cdp_indexer_applied_total", nil, 12},
		{"cdp_indexer_applied_total", []string{"kind", "event"}, 7},
		{"cdp_indexer_applied_total", []string{"kind", "profile"}, 0},
		{"cdp_indexer_bulk_seconds_count", []string{"step", "materialize"}, 4},
		{"cdp_indexer_bulk_seconds_count", nil, 13},
		{"cdp_indexer_missing_total", nil, 0},
	} {
		if got := sumSamples(families, tt.name, tt.labels...); got != tt.want {
			t.Errorf("%s %v: %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
}
