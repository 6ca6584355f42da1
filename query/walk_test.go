package query_test

import (
	"fmt"
	"strings"
	"testing"

	"cdp/query"
)

func TestWalkVisitsEveryNodeDepthFirstAndPrunesWhereVisitSaysSo(t *testing.T) {
	const filter = `{"all": [{"not": {"field": "city", "op": "eq", "value": "北京"}},
		{"nested": "orders", "where": {"field": "orders.status", "op": "eq", "value": "paid"}},
		{"event": "view_product", "within": "7d", "where": {"field": "properties.category", "op": "eq", "value": "shoes"}},
		{"segment": "vip"}]}`
	p := query.Parser{Catalog: testCatalog(), Segments: testSegments}
	f, err := p.Parse([]byte(filter))
	if err != nil {
		t.Fatal(err)
	}
	name := func(f query.Filter) string {
		switch n := f.(type) {
		case *query.Cond:
			return n.Field.Name
		case *query.Segment:
			return "segment:" + n.ID
		}
		return strings.TrimPrefix(fmt.Sprintf("%T", f), "*query.")
	}
	tests := []struct {
		name  string
		prune func(query.Filter) bool // true: do not descend
		want  string
	}{
		{"everything", func(query.Filter) bool { return false },
			"All Not city Nested orders.status Event properties.category segment:vip tags"},
		{"not into events or segments", func(f query.Filter) bool {
			switch f.(type) {
			case *query.Event, *query.Segment:
				return true
			}
			return false
		}, "All Not city Nested orders.status Event segment:vip"},
		{"the root only", func(query.Filter) bool { return true }, "All"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			query.Walk(f, func(f query.Filter) bool {
				got = append(got, name(f))
				return !tt.prune(f)
			})
			if g := strings.Join(got, " "); g != tt.want {
				t.Errorf("visited %q, want %q", g, tt.want)
			}
		})
	}
	query.Walk(nil, func(query.Filter) bool { t.Fatal("a nil filter was visited"); return false })
}
