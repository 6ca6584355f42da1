package querytest_test

import (
	"encoding/json"
	"testing"
	"time"

	"cdp/query"
	"cdp/query/querytest"
)

var now = time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)

func zone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// event returns an event of the given name that happened ago before now.
func event(name string, ago time.Duration, props map[string]any) querytest.Event {
	return querytest.Event{Name: name, Timestamp: now.Add(-ago), Properties: props}
}

func TestEvalFollowsTheContract(t *testing.T) {
	orders := `{"orders": [
		{"status": "paid", "total_amount": 50, "created_at": "2026-11-01T00:00:00Z",
		 "items": [{"sku": "p-1", "category": "shoes", "price": 10}, {"sku": "p-2", "category": "bags", "price": 200}]},
		{"status": "created", "total_amount": 300,
		 "items": [{"sku": "p-3", "category": "shoes", "price": 300}]}]}`
	tests := []struct {
		name   string
		filter string
		doc    string
		events []querytest.Event
		tz     string
		want   bool
	}{
		// Rule 1: positive operators never match missing, null or empty.
		{name: "eq misses a missing field", filter: `{"field": "gender", "op": "eq", "value": "male"}`, doc: `{}`},
		{name: "eq misses a null field", filter: `{"field": "gender", "op": "eq", "value": "male"}`, doc: `{"gender": null}`},
		{name: "has_any misses an empty list", filter: `{"field": "tags", "op": "has_any", "value": ["vip"]}`, doc: `{"tags": []}`},
		{name: "is_set misses an empty list", filter: `{"field": "tags", "op": "is_set"}`, doc: `{"tags": []}`},
		{name: "lt misses a missing number", filter: `{"field": "attrs.score", "op": "lt", "value": 10}`, doc: `{"attrs": {}}`},
		{name: "a list field misses a customer without orders", filter: `{"field": "orders.status", "op": "eq", "value": "paid"}`, doc: `{"orders": null}`},
		// Rule 2: negative operators are complements.
		{name: "neq includes a missing gender", filter: `{"field": "gender", "op": "neq", "value": "male"}`, doc: `{}`, want: true},
		{name: "neq excludes the value", filter: `{"field": "gender", "op": "neq", "value": "male"}`, doc: `{"gender": "male"}`},
		{name: "not_in includes null", filter: `{"field": "city", "op": "not_in", "value": ["北京"]}`, doc: `{"city": null}`, want: true},
		{name: "has_none includes an empty list", filter: `{"field": "tags", "op": "has_none", "value": ["vip"]}`, doc: `{"tags": []}`, want: true},
		{name: "has_none excludes a list holding one of the values", filter: `{"field": "tags", "op": "has_none", "value": ["vip", "new"]}`, doc: `{"tags": ["a", "new"]}`},
		{name: "not_between includes a missing number", filter: `{"field": "metrics.total_spend", "op": "not_between", "value": [1, 2]}`, doc: `{}`, want: true},
		{name: "not_on includes a missing date", filter: `{"field": "registered_at", "op": "not_on", "value": "2026-01-01"}`, doc: `{}`, want: true},
		{name: "not_in_last includes a missing date", filter: `{"field": "registered_at", "op": "not_in_last", "value": "7d"}`, doc: `{}`, want: true},
		{name: "not_matches includes a missing name", filter: `{"field": "name", "op": "not_matches", "value": "张三"}`, doc: `{}`, want: true},
		{name: "not_contains includes a missing email", filter: `{"field": "email", "op": "not_contains", "value": "a"}`, doc: `{}`, want: true},
		{name: "is_not_set holds for null", filter: `{"field": "owner_id", "op": "is_not_set"}`, doc: `{"owner_id": null}`, want: true},
		{name: "not is the complement", filter: `{"not": {"field": "gender", "op": "eq", "value": "male"}}`, doc: `{}`, want: true},
		{name: "a negative on a list field is the customer complement", filter: `{"field": "orders.status", "op": "neq", "value": "paid"}`, doc: orders},
		// Rule 3: a nested field outside nested is a list.
		{name: "a list condition holds when some element satisfies it", filter: `{"field": "orders.status", "op": "eq", "value": "created"}`, doc: orders, want: true},
		{name: "separate list conditions may hold in different orders", filter: `{"all": [{"field": "orders.status", "op": "eq", "value": "paid"}, {"field": "orders.total_amount", "op": "gt", "value": 100}]}`, doc: orders, want: true},
		{name: "between on a list needs one element within both bounds", filter: `{"field": "orders.total_amount", "op": "between", "value": [100, 200]}`, doc: orders},
		{name: "an items field is a list across every order", filter: `{"field": "orders.items.sku", "op": "eq", "value": "p-3"}`, doc: orders, want: true},
		// Rule 4: nested correlates within one element.
		{name: "nested any needs one order satisfying every condition", filter: `{"nested": "orders", "where": {"all": [{"field": "orders.status", "op": "eq", "value": "paid"}, {"field": "orders.total_amount", "op": "gt", "value": 100}]}}`, doc: orders},
		{name: "nested none holds without orders", filter: `{"nested": "orders", "match": "none", "where": {"field": "orders.status", "op": "eq", "value": "paid"}}`, doc: `{}`, want: true},
		{name: "nested all needs at least one order", filter: `{"nested": "orders", "match": "all", "where": {"field": "orders.status", "op": "eq", "value": "paid"}}`, doc: `{"orders": []}`},
		{name: "nested all needs every order", filter: `{"nested": "orders", "match": "all", "where": {"field": "orders.total_amount", "op": "gte", "value": 50}}`, doc: orders, want: true},
		{name: "not inside a where is the element complement", filter: `{"nested": "orders", "where": {"not": {"field": "orders.status", "op": "eq", "value": "paid"}}}`, doc: orders, want: true},
		{name: "a negative inside a where is the element complement", filter: `{"nested": "orders", "match": "all", "where": {"field": "orders.status", "op": "neq", "value": "refunded"}}`, doc: orders, want: true},
		{name: "items conditions in an orders where hold in some item of that order", filter: `{"nested": "orders", "where": {"all": [{"field": "orders.status", "op": "eq", "value": "paid"}, {"field": "orders.items.price", "op": "gte", "value": 200}, {"field": "orders.items.category", "op": "eq", "value": "shoes"}]}}`, doc: orders, want: true},
		{name: "a nested items node in an orders where correlates one item", filter: `{"nested": "orders", "where": {"all": [{"field": "orders.status", "op": "eq", "value": "paid"}, {"nested": "orders.items", "where": {"all": [{"field": "orders.items.price", "op": "gte", "value": 200}, {"field": "orders.items.category", "op": "eq", "value": "shoes"}]}}]}}`, doc: orders},
		{name: "an items negative in an orders where is the order complement", filter: `{"nested": "orders", "match": "all", "where": {"field": "orders.items.sku", "op": "neq", "value": "p-3"}}`, doc: orders},
		// Rule 5: aggregates.
		{name: "count counts the elements in where", filter: `{"aggregate": {"path": "orders.items", "fn": "count", "where": {"field": "orders.items.category", "op": "eq", "value": "shoes"}}, "op": "eq", "value": 2}`, doc: orders, want: true},
		{name: "count of no elements is 0", filter: `{"aggregate": {"path": "orders", "fn": "count"}, "op": "lt", "value": 1}`, doc: `{}`, want: true},
		{name: "sum of no elements is 0", filter: `{"aggregate": {"path": "orders", "fn": "sum", "field": "orders.total_amount"}, "op": "eq", "value": 0}`, doc: `{}`, want: true},
		{name: "sum adds the elements in where", filter: `{"aggregate": {"path": "orders", "fn": "sum", "field": "orders.total_amount"}, "op": "eq", "value": 350}`, doc: orders, want: true},
		{name: "avg of no elements is missing", filter: `{"aggregate": {"path": "orders", "fn": "avg", "field": "orders.total_amount"}, "op": "lt", "value": 100}`, doc: `{}`},
		{name: "avg of no elements is in a negative operator", filter: `{"aggregate": {"path": "orders", "fn": "avg", "field": "orders.total_amount"}, "op": "neq", "value": 100}`, doc: `{}`, want: true},
		{name: "min is the smallest value in where", filter: `{"aggregate": {"path": "orders.items", "fn": "min", "field": "orders.items.price", "where": {"field": "orders.items.category", "op": "eq", "value": "shoes"}}, "op": "eq", "value": 10}`, doc: orders, want: true},
		{name: "max is the largest value", filter: `{"aggregate": {"path": "orders.items", "fn": "max", "field": "orders.items.price"}, "op": "between", "value": [300, 300]}`, doc: orders, want: true},
		{name: "max of no elements is missing", filter: `{"aggregate": {"path": "orders.items", "fn": "max", "field": "orders.items.price"}, "op": "lte", "value": 1000}`, doc: `{"orders": [{"status": "paid"}]}`},
		// Rule 6: events.
		{name: "an event without op is done at least once", filter: `{"event": "login"}`, doc: `{}`, events: []querytest.Event{event("login", time.Hour, nil)}, want: true},
		{name: "not event is did not do it", filter: `{"not": {"event": "login"}}`, doc: `{}`, want: true},
		{name: "within keeps the events of the window", filter: `{"event": "login", "within": "24h"}`, doc: `{}`, events: []querytest.Event{event("login", 25*time.Hour, nil)}},
		{name: "within includes the start of the window", filter: `{"event": "login", "within": "24h"}`, doc: `{}`, events: []querytest.Event{event("login", 24*time.Hour, nil)}, want: true},
		{name: "within leaves out events after now", filter: `{"event": "login", "within": "24h"}`, doc: `{}`, events: []querytest.Event{event("login", -time.Millisecond, nil)}},
		{name: "an event where tests each event's properties", filter: `{"event": "view", "where": {"field": "properties.sku", "op": "neq", "value": "p-7"}, "op": "eq", "value": 1}`, doc: `{}`,
			events: []querytest.Event{event("view", time.Hour, map[string]any{"sku": "p-7"}), event("view", time.Hour, nil)}, want: true},
		{name: "an event count compares exactly", filter: `{"event": "login", "op": "gt", "value": 1}`, doc: `{}`,
			events: []querytest.Event{event("login", time.Hour, nil), event("login", 2*time.Hour, nil), event("logout", time.Hour, nil)}, want: true},
		// Dates compare calendar days in the time zone.
		{name: "on is the day in Shanghai", filter: `{"field": "registered_at", "op": "on", "value": "2026-03-08"}`, doc: `{"registered_at": "2026-03-07T16:00:00Z"}`, tz: "Asia/Shanghai", want: true},
		{name: "on excludes the next day in Shanghai", filter: `{"field": "registered_at", "op": "on", "value": "2026-03-08"}`, doc: `{"registered_at": "2026-03-08T16:00:00Z"}`, tz: "Asia/Shanghai"},
		{name: "on is the day in New York on the day clocks go forward", filter: `{"field": "registered_at", "op": "on", "value": "2026-03-08"}`, doc: `{"registered_at": "2026-03-09T03:59:59.999Z"}`, tz: "America/New_York", want: true},
		{name: "before excludes the day itself", filter: `{"field": "registered_at", "op": "before", "value": "2026-03-08"}`, doc: `{"registered_at": "2026-03-07T16:00:00Z"}`, tz: "Asia/Shanghai"},
		{name: "after excludes the day itself", filter: `{"field": "registered_at", "op": "after", "value": "2026-03-08"}`, doc: `{"registered_at": "2026-03-08T15:59:59Z"}`, tz: "Asia/Shanghai"},
		{name: "between includes both days", filter: `{"field": "registered_at", "op": "between", "value": ["2026-03-01", "2026-03-08"]}`, doc: `{"registered_at": "2026-03-08T15:59:59Z"}`, tz: "Asia/Shanghai", want: true},
		{name: "a birthday is its own calendar day in any zone", filter: `{"field": "birthday", "op": "on", "value": "1990-05-01"}`, doc: `{"birthday": "1990-05-01"}`, tz: "America/New_York", want: true},
		{name: "in_last days keeps the wall-clock time across a clock change", filter: `{"field": "metrics.last_seen_at", "op": "in_last", "value": "30d"}`, doc: `{"metrics": {"last_seen_at": "2026-10-21T07:30:00Z"}}`, tz: "America/New_York", want: true},
		// Keywords and text.
		{name: "contains ignores case", filter: `{"field": "email", "op": "contains", "value": "ZHANG@"}`, doc: `{"email": "zhang@example.com"}`, want: true},
		{name: "contains takes wildcard characters literally", filter: `{"field": "member_level", "op": "contains", "value": "*"}`, doc: `{"member_level": "gold"}`},
		{name: "starts_with ignores case", filter: `{"field": "store_id", "op": "starts_with", "value": "s-"}`, doc: `{"store_id": "S-03"}`, want: true},
		{name: "eq is exact", filter: `{"field": "store_id", "op": "eq", "value": "s-03"}`, doc: `{"store_id": "S-03"}`},
		{name: "matches finds a Chinese word", filter: `{"field": "name", "op": "matches", "value": "张三"}`, doc: `{"name": "张三丰"}`, want: true},
		{name: "matches needs every word", filter: `{"field": "name", "op": "matches", "value": "zhang li"}`, doc: `{"name": "Zhang Wei"}`},
		{name: "matches with stop words only finds nothing", filter: `{"field": "name", "op": "matches", "value": "the"}`, doc: `{"name": "the"}`},
		{name: "has_all needs every value", filter: `{"field": "tags", "op": "has_all", "value": ["vip", "new"]}`, doc: `{"tags": ["new", "vip", "x"]}`, want: true},
		{name: "a segment is its filter", filter: `{"segment": "vip"}`, doc: `{"tags": ["vip"]}`, want: true},
	}
	g := querytest.NewGenerator(1, now)
	p := query.Parser{Catalog: g.Catalog(), Segments: segments{"vip": `{"field": "tags", "op": "eq", "value": "vip"}`}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := p.Parse([]byte(tc.filter))
			if err != nil {
				t.Fatal(err)
			}
			var doc map[string]any
			if err := json.Unmarshal([]byte(tc.doc), &doc); err != nil {
				t.Fatal(err)
			}
			opts := query.Options{Now: now, Location: zone(t, tc.tz)}
			if got := querytest.Eval(f, doc, tc.events, opts); got != tc.want {
				t.Errorf("Eval = %v, want %v", got, tc.want)
			}
		})
	}
}

type segments map[string]string

func (s segments) Segment(id string) (json.RawMessage, bool, error) {
	f, ok := s[id]
	return json.RawMessage(f), ok, nil
}

func TestGeneratedFiltersAreValidAndCoverEveryCombination(t *testing.T) {
	g := querytest.NewGenerator(7, now)
	for i := range 300 {
		g.Customer("c" + string(rune('a'+i%26)))
	}
	p := query.Parser{Catalog: g.Catalog(), Segments: g}
	var filters []query.Filter
	for range 2000 {
		raw := g.Filter(4)
		f, err := p.Parse(raw)
		if err != nil {
			t.Fatalf("generated filter %s: %v", raw, err)
		}
		filters = append(filters, f)
	}
	if missing := querytest.Missing(querytest.Coverage(filters)); len(missing) > 0 {
		t.Errorf("2000 generated filters miss %v", missing)
	}
}

func TestGeneratorIsDeterministic(t *testing.T) {
	draw := func() string {
		g := querytest.NewGenerator(42, now)
		c := g.Customer("c1")
		b, err := json.Marshal([]any{c.Doc, c.Events, json.RawMessage(g.Filter(4))})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if a, b := draw(), draw(); a != b {
		t.Errorf("the same seed drew\n%s\nand\n%s", a, b)
	}
}
