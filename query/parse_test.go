package query_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"cdp/query"
)

// nest wraps a filter in n not nodes.
func nest(n int, inner string) string {
	return strings.Repeat(`{"not": `, n) + inner + strings.Repeat(`}`, n)
}

// values returns a JSON list of n strings.
func values(n int) string {
	v := make([]string, n)
	for i := range v {
		v[i] = `"v"`
	}
	return "[" + strings.Join(v, ",") + "]"
}

const male = `{"field": "gender", "op": "eq", "value": "male"}`

func TestParseRejectsInvalidFilters(t *testing.T) {
	tests := []rejection{
		{"the filter is not JSON", `{`, "", "not valid JSON"},
		{"the filter is not an object", `[1]`, "", "must be a JSON object"},
		{"data follows the filter", `{"all": []} {}`, "", "data after the filter"},
		{"a node has no kind key", `{"foo": 1}`, "", "needs one of the keys"},
		{"an unknown key sits beside a kind", `{"all": [], "extra": 1}`, "extra", `unknown key "extra" in this all node`},
		{"a node holds two kinds", `{"all": [], "any": []}`, "any", `unknown key "any"`},
		{"all is not a list", `{"all": {}}`, "all", "takes a list"},
		{"an element of any is not an object", `{"any": [` + male + `, 1]}`, "any[1]", "must be a JSON object"},
		{"the third condition names an unknown field", `{"all": [` + male + `, ` + male + `, {"field": "nope", "op": "eq", "value": 1}]}`, "all[2].field", `unknown field "nope"`},
		{"an unknown attrs field", `{"field": "attrs.nope", "op": "eq", "value": "x"}`, "field", "unknown field"},
		{"the field is not a string", `{"field": 1, "op": "eq", "value": "x"}`, "field", "non-empty string"},
		{"a nested list is used as a field", `{"field": "orders", "op": "is_set"}`, "field", "nested list"},
		{"an operator is not allowed for the field's type", `{"field": "metrics.total_spend", "op": "contains", "value": "1"}`, "op", `op "contains" is not allowed on number field`},
		{"the op is missing", `{"field": "gender", "value": "male"}`, "op", "is not allowed"},
		{"an unknown key sits in a condition", `{"all": [{"field": "gender", "op": "in", "values": ["male"]}]}`, "all[0].values", `unknown key "values"`},
		{"a number field is given a string", `{"field": "metrics.total_spend", "op": "eq", "value": "100"}`, "value", "must be a number"},
		{"a keyword field is given a number", `{"field": "gender", "op": "eq", "value": 1}`, "value", "must be a string"},
		{"a boolean field is given a string", `{"field": "attrs.vip", "op": "eq", "value": "true"}`, "value", "true or false"},
		{"a list is given where one value is expected", `{"field": "gender", "op": "eq", "value": ["male"]}`, "value", "takes one value, not a list"},
		{"one value is given where a list is expected", `{"field": "city", "op": "in", "value": "北京"}`, "value", "takes a list"},
		{"a list holds a value of the wrong type", `{"field": "city", "op": "in", "value": ["北京", 1]}`, "value[1]", "must be a string"},
		{"a list holds more than 1,000 values", `{"field": "city", "op": "in", "value": ` + values(1001) + `}`, "value", "at most 1000 values"},
		{"a list is empty", `{"field": "tags", "op": "has_all", "value": []}`, "value", "at least one value"},
		{"between is given three values", `{"field": "metrics.total_spend", "op": "between", "value": [1, 2, 3]}`, "value", "[low, high]"},
		{"between is given one value", `{"field": "metrics.total_spend", "op": "not_between", "value": 1}`, "value", "[low, high]"},
		{"is_set is given a value", `{"field": "gender", "op": "is_set", "value": "male"}`, "value", "takes no value"},
		{"the value is missing", `{"field": "gender", "op": "eq"}`, "value", "needs a value"},
		{"the value is null", `{"field": "gender", "op": "neq", "value": null}`, "value", "needs a value"},
		{"a date cannot be parsed", `{"field": "registered_at", "op": "on", "value": "2026/01/01"}`, "value", "must be a date"},
		{"a date has a year out of range", `{"field": "registered_at", "op": "before", "value": "0001-01-01"}`, "value", "must be a date"},
		{"a date between holds a bad date", `{"field": "registered_at", "op": "between", "value": ["2026-01-01", "soon"]}`, "value[1]", "must be a date"},
		{"a duration cannot be parsed", `{"field": "registered_at", "op": "in_last", "value": "7 days"}`, "value", "duration"},
		{"a duration is zero", `{"field": "registered_at", "op": "in_last", "value": "0d"}`, "value", "duration"},
		{"a number is out of range", `{"field": "metrics.total_spend", "op": "gt", "value": 1e400}`, "value", "out of range"},
		{"a number has a huge negative exponent", `{"field": "metrics.total_spend", "op": "gt", "value": 1e-999999}`, "value", "out of range"},
		{"not nodes nest 11 levels deep", nest(11, male), strings.Repeat("not.", 10)[:39], "at most 10 levels"},
		{"all, any, not and nested nest 11 levels deep", `{"all": [{"any": [{"not": {"nested": "orders", "where": ` + nest(7, `{"all": []}`) + `}}]}]}`, "all[0].any[0].not.where" + strings.Repeat(".not", 6), "at most 10 levels"},
		{"a nested where uses a customer field", `{"nested": "orders", "where": ` + male + `}`, "where.field", "is not a field of orders"},
		{"an items where uses an orders field", `{"nested": "orders.items", "where": {"field": "orders.status", "op": "eq", "value": "paid"}}`, "where.field", "is not a field of orders.items"},
		{"a nested node names a field that is not nested", `{"nested": "tags", "where": {"all": []}}`, "nested", "is not a nested list"},
		{"a nested node repeats its own path inside its where", `{"nested": "orders", "where": {"nested": "orders"}}`, "where.nested", "cannot be used in the where of orders"},
		{"a nested node has an unknown match", `{"nested": "orders", "match": "some"}`, "match", "any, none or all"},
		{"a nested node has an unknown key", `{"nested": "orders", "filter": {"all": []}}`, "filter", `unknown key "filter" in this nested node`},
		{"an aggregate is not an object", `{"aggregate": "orders", "op": "gt", "value": 1}`, "aggregate", "must be an object"},
		{"an aggregate has an unknown key", `{"aggregate": {"path": "orders", "fn": "count", "by": "x"}, "op": "gt", "value": 1}`, "aggregate.by", `unknown key "by" in an aggregate's object`},
		{"an aggregate has an unknown fn", `{"aggregate": {"path": "orders", "fn": "median"}, "op": "gt", "value": 1}`, "aggregate.fn", "fn must be one of"},
		{"an aggregate has an unknown path", `{"aggregate": {"path": "tags", "fn": "count"}, "op": "gt", "value": 1}`, "aggregate.path", "not a nested list"},
		{"a count is given a field", `{"aggregate": {"path": "orders", "fn": "count", "field": "orders.total_amount"}, "op": "gt", "value": 1}`, "aggregate.field", "count takes no field"},
		{"a sum has no field", `{"aggregate": {"path": "orders", "fn": "sum"}, "op": "gt", "value": 1}`, "aggregate.field", "non-empty string"},
		{"a sum names a field of another path", `{"aggregate": {"path": "orders", "fn": "sum", "field": "orders.items.price"}, "op": "gt", "value": 1}`, "aggregate.field", "needs a number field of orders"},
		{"a max names a keyword field", `{"aggregate": {"path": "orders", "fn": "max", "field": "orders.status"}, "op": "gt", "value": 1}`, "aggregate.field", "needs a number field"},
		{"an aggregate where uses a field outside its path", `{"aggregate": {"path": "orders.items", "fn": "count", "where": {"field": "orders.status", "op": "eq", "value": "paid"}}, "op": "gt", "value": 1}`, "aggregate.where.field", "is not a field of orders.items"},
		{"an aggregate has no op", `{"aggregate": {"path": "orders", "fn": "count"}, "value": 1}`, "op", "op must be one of"},
		{"an aggregate compares with a string", `{"aggregate": {"path": "orders", "fn": "count"}, "op": "gt", "value": "1"}`, "value", "must be a number"},
		{"an aggregate nests its own path", `{"nested": "orders", "where": {"aggregate": {"path": "orders", "fn": "count"}, "op": "gt", "value": 1}}`, "where.aggregate.path", "cannot be used in the where of orders"},
		{"an event sits in a nested where", `{"nested": "orders", "where": {"event": "login"}}`, "where", "cannot be used in the where of orders"},
		{"an event has an empty name", `{"event": ""}`, "event", "non-empty string"},
		{"an event has a bad window", `{"event": "login", "within": "a week"}`, "within", "duration"},
		{"an event count is a fraction", `{"event": "login", "op": "gte", "value": 1.5}`, "value", "whole number"},
		{"an event has a value but no op", `{"event": "login", "value": 2}`, "op", "op must be one of"},
		{"an event where uses a customer field", `{"event": "login", "where": ` + male + `}`, "where.field", "can only use properties.<name> fields"},
		{"an event property is used outside an event", `{"field": "properties.sku", "op": "eq", "value": "p-7"}`, "field", "is an event property"},
		{"an unknown event property gets an operator its value does not fit", `{"event": "login", "where": {"field": "properties.new", "op": "contains", "value": 5}}`, "where.op", "is not allowed on number field"},
		{"an unknown event property has an empty name", `{"event": "login", "where": {"field": "properties.", "op": "is_set"}}`, "where.field", "not a valid property name"},
		{"an unknown event property has a wildcard in its name", `{"event": "login", "where": {"field": "properties.*", "op": "is_set"}}`, "where.field", "not a valid property name"},
		{"an event sits in an event where", `{"event": "login", "where": {"event": "login"}}`, "where", "cannot be used in an event's where"},
		{"a segment is unknown", `{"all": [{"segment": "nope"}]}`, "all[0].segment", `unknown segment "nope"`},
		{"a segment refers to itself", `{"segment": "loop"}`, "segment", "refers to itself"},
		{"a segment's filter is invalid", `{"segment": "bad_node"}`, "segment", `segment "bad_node" is invalid at "field"`},
		{"a segment sits in a nested where", `{"nested": "orders", "where": {"segment": "vip"}}`, "where", "cannot be used in the where of orders"},
		{"a segment id is not a string", `{"segment": 7}`, "segment", "non-empty string"},
	}
	expectRejections(t, &query.Parser{Catalog: testCatalog(), Segments: testSegments}, tests)
}

// rejection is a filter Parse must refuse as invalid, at path, with an
// error message containing message.
type rejection struct {
	name, filter, path, message string
}

// expectRejections checks that p refuses each filter as a rejection says.
func expectRejections(t *testing.T, p *query.Parser, tests []rejection) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := p.Parse([]byte(tc.filter))
			var e *query.Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse returned %v, want a *query.Error", err)
			}
			if e.Code != query.CodeInvalidFilter || e.Path != tc.path || !strings.Contains(e.Message, tc.message) {
				t.Errorf("Parse error = {%s %q %q}, want {%s %q containing %q}", e.Code, e.Path, e.Message, query.CodeInvalidFilter, tc.path, tc.message)
			}
		})
	}
}

func TestParseAcceptsValidFilters(t *testing.T) {
	tests := []struct{ name, filter string }{
		{"all, any, not and nested nest exactly 10 levels deep", nest(9, `{"all": []}`)},
		{"an items field is used in an orders where", `{"nested": "orders", "where": {"field": "orders.items.sku", "op": "eq", "value": "p-7"}}`},
		{"an items node is used in an orders where", `{"nested": "orders", "where": {"nested": "orders.items", "match": "all"}}`},
		{"a list holds exactly 1,000 values", `{"field": "city", "op": "in", "value": ` + values(1000) + `}`},
		{"is_set is given a null value", `{"field": "gender", "op": "is_set", "value": null}`},
		{"a date is given in RFC 3339", `{"field": "registered_at", "op": "after", "value": "2026-01-01T10:00:00+08:00"}`},
		{"an event count is a whole number written with a fraction", `{"event": "login", "op": "eq", "value": 2.0}`},
		{"an unknown event property is typed by its value", `{"event": "login", "where": {"field": "properties.new", "op": "gt", "value": 5}}`},
		{"an event property is tested for presence", `{"event": "login", "where": {"field": "properties.new", "op": "is_set"}}`},
		{"a segment refers to another segment", `{"segment": "big_vip"}`},
	}
	p := query.Parser{Catalog: testCatalog(), Segments: testSegments}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := p.Parse([]byte(tc.filter)); err != nil {
				t.Errorf("Parse: %v", err)
			}
		})
	}
}

func TestParseWithoutResolverRejectsSegments(t *testing.T) {
	_, err := query.Parse([]byte(`{"segment": "vip"}`), testCatalog())
	var e *query.Error
	if !errors.As(err, &e) || e.Path != "segment" || !strings.Contains(e.Message, "unknown segment") {
		t.Errorf("Parse = %v, want an unknown segment error at segment", err)
	}
}

// failingResolver fails every look-up.
type failingResolver struct{ err error }

func (r failingResolver) Segment(string) (json.RawMessage, bool, error) { return nil, false, r.err }

func TestParseReturnsTheResolversErrorAsItIs(t *testing.T) {
	down := errors.New("segment store down")
	p := query.Parser{Catalog: testCatalog(), Segments: failingResolver{down}}
	if _, err := p.Parse([]byte(`{"segment": "vip"}`)); err != down {
		t.Errorf("Parse = %v, want %v", err, down)
	}
}
