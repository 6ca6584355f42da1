package dsl_test

import (
	"encoding/json"
	"testing"

	"cdp/query/dsl"
)

func TestQueriesEncodeAsOpenSearchJSON(t *testing.T) {
	min := float32(19999.002)
	tests := []struct {
		name  string
		query dsl.Query
		want  string
	}{
		{"a term keeps a number as written", dsl.Term{Field: "n", Value: json.Number("199.10")}, `{"term":{"n":{"value":199.10}}}`},
		{"terms list their values", dsl.Terms{Field: "k", Values: []any{"a", true}}, `{"terms":{"k":["a",true]}}`},
		{"a range writes only its set bounds, zero included", dsl.Range{Field: "n", GTE: json.Number("0"), LT: "2026-01-01T00:00:00Z"}, `{"range":{"n":{"gte":0,"lt":"2026-01-01T00:00:00Z"}}}`},
		{"exists names its field", dsl.Exists{Field: "f"}, `{"exists":{"field":"f"}}`},
		{"a wildcard keeps its pattern", dsl.Wildcard{Field: "f.lc", Pattern: `*a\*b*`}, `{"wildcard":{"f.lc":{"value":"*a\\*b*"}}}`},
		{"a phrase keeps its query", dsl.MatchPhrase{Field: "f.grams", Query: `ab"c`}, `{"match_phrase":{"f.grams":{"query":"ab\"c"}}}`},
		{"a prefix keeps its value", dsl.Prefix{Field: "f.lc", Value: "ab"}, `{"prefix":{"f.lc":{"value":"ab"}}}`},
		{"a match may have an operator", dsl.Match{Field: "name", Query: "张三", Operator: "and"}, `{"match":{"name":{"query":"张三","operator":"and"}}}`},
		{"match_all is empty", dsl.MatchAll{}, `{"match_all":{}}`},
		{"match_none is empty", dsl.MatchNone{}, `{"match_none":{}}`},
		{"a bool writes its clauses in a fixed order and leaves out empty ones", dsl.Bool{MustNot: []dsl.Query{dsl.MatchAll{}}, Should: []dsl.Query{dsl.MatchNone{}}, Filter: []dsl.Query{dsl.Exists{Field: "f"}}, MinimumShouldMatch: 1},
			`{"bool":{"filter":[{"exists":{"field":"f"}}],"should":[{"match_none":{}}],"must_not":[{"match_all":{}}],"minimum_should_match":1}}`},
		{"an empty bool is an empty object", dsl.Bool{}, `{"bool":{}}`},
		{"nested has a path, a query and a score mode", dsl.Nested{Path: "orders", Query: dsl.MatchAll{}, ScoreMode: "sum"}, `{"nested":{"path":"orders","query":{"match_all":{}},"score_mode":"sum"}}`},
		{"constant_score has a boost", dsl.ConstantScore{Filter: dsl.MatchAll{}, Boost: 1}, `{"constant_score":{"filter":{"match_all":{}},"boost":1}}`},
		{"function_score writes its functions and min_score", dsl.FunctionScore{Query: dsl.MatchAll{}, Functions: []dsl.FieldValueFactor{{Field: "p", Factor: 100}}, BoostMode: "replace", MinScore: &min},
			`{"function_score":{"query":{"match_all":{}},"functions":[{"field_value_factor":{"field":"p","factor":100}}],"boost_mode":"replace","min_score":19999.002}}`},
		{"function_score without min_score leaves it out", dsl.FunctionScore{Query: dsl.MatchAll{}}, `{"function_score":{"query":{"match_all":{}}}}`},
		{"has_child has its bounds", dsl.HasChild{Type: "event", Query: dsl.MatchAll{}, MinChildren: 2, MaxChildren: 5}, `{"has_child":{"type":"event","query":{"match_all":{}},"min_children":2,"max_children":5}}`},
		{"ids list their values", dsl.IDs{Values: []string{"a"}}, `{"ids":{"values":["a"]}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := json.Marshal(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}
