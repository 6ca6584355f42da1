// Package dsl holds typed OpenSearch query nodes.
//
// Each node is a plain struct whose MarshalJSON writes the query DSL JSON
// with its keys in a fixed order, so the same query always encodes to the
// same bytes. Optional parts are left out when they hold their zero value.
// Values (term values, range bounds) are encoded with encoding/json: pass a
// string, a bool, a json.Number (kept exactly as written) or a float.
package dsl

import (
	"bytes"
	"encoding/json"
)

// Query is an OpenSearch query clause.
type Query interface {
	json.Marshaler
}

// member is one key of a JSON object.
type member struct {
	key   string
	value any
}

// object is a JSON object whose keys are written in order.
type object []member

// MarshalJSON writes the members in order.
func (o object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(m.key)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(m.value)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// with appends the member when its value is set: not nil, not an empty
// string, not zero and not an empty list.
func (o object) with(key string, value any) object {
	switch v := value.(type) {
	case nil:
		return o
	case string:
		if v == "" {
			return o
		}
	case int:
		if v == 0 {
			return o
		}
	case float64:
		if v == 0 {
			return o
		}
	case []Query:
		if len(v) == 0 {
			return o
		}
	}
	return append(o, member{key, value})
}

// bound appends the member when its value is not nil.
func (o object) bound(key string, value any) object {
	if value == nil {
		return o
	}
	return append(o, member{key, value})
}

// wrap returns {"kind": body}.
func wrap(kind string, body any) ([]byte, error) {
	return json.Marshal(object{{kind, body}})
}

// Bool combines clauses: every Must and Filter clause matches, no MustNot
// clause matches, and at least MinimumShouldMatch Should clauses match.
type Bool struct {
	Must               []Query
	Filter             []Query
	Should             []Query
	MustNot            []Query
	MinimumShouldMatch int
}

// MarshalJSON implements json.Marshaler.
func (q Bool) MarshalJSON() ([]byte, error) {
	return wrap("bool", object{}.
		with("must", q.Must).
		with("filter", q.Filter).
		with("should", q.Should).
		with("must_not", q.MustNot).
		with("minimum_should_match", q.MinimumShouldMatch))
}

// Term matches documents whose field holds exactly Value.
type Term struct {
	Field string
	Value any
}

// MarshalJSON implements json.Marshaler.
func (q Term) MarshalJSON() ([]byte, error) {
	return wrap("term", object{{q.Field, object{{"value", q.Value}}}})
}

// Terms matches documents whose field holds any of Values.
type Terms struct {
	Field  string
	Values []any
}

// MarshalJSON implements json.Marshaler.
func (q Terms) MarshalJSON() ([]byte, error) {
	return wrap("terms", object{{q.Field, q.Values}})
}

// Range matches documents whose field lies within the bounds that are set.
// Dates are given as RFC 3339 strings.
type Range struct {
	Field            string
	GT, GTE, LT, LTE any
}

// MarshalJSON implements json.Marshaler.
func (q Range) MarshalJSON() ([]byte, error) {
	return wrap("range", object{{q.Field, object{}.
		bound("gt", q.GT).
		bound("gte", q.GTE).
		bound("lt", q.LT).
		bound("lte", q.LTE)}})
}

// Exists matches documents that hold at least one value in the field.
type Exists struct {
	Field string
}

// MarshalJSON implements json.Marshaler.
func (q Exists) MarshalJSON() ([]byte, error) {
	return wrap("exists", object{{"field", q.Field}})
}

// Wildcard matches a pattern where * stands for any characters and ? for
// one; a backslash escapes the next character.
type Wildcard struct {
	Field   string
	Pattern string
}

// MarshalJSON implements json.Marshaler.
func (q Wildcard) MarshalJSON() ([]byte, error) {
	return wrap("wildcard", object{{q.Field, object{{"value", q.Pattern}}}})
}

// MatchPhrase matches the analyzed terms of Query at consecutive
// positions (slop 0).
type MatchPhrase struct {
	Field string
	Query string
}

// MarshalJSON implements json.Marshaler.
func (q MatchPhrase) MarshalJSON() ([]byte, error) {
	return wrap("match_phrase", object{{q.Field, object{{"query", q.Query}}}})
}

// Prefix matches values that start with Value.
type Prefix struct {
	Field string
	Value string
}

// MarshalJSON implements json.Marshaler.
func (q Prefix) MarshalJSON() ([]byte, error) {
	return wrap("prefix", object{{q.Field, object{{"value", q.Value}}}})
}

// Match is a full-text match; with Operator "and" every analyzed term of
// Query must appear.
type Match struct {
	Field    string
	Query    string
	Operator string
}

// MarshalJSON implements json.Marshaler.
func (q Match) MarshalJSON() ([]byte, error) {
	return wrap("match", object{{q.Field, object{{"query", q.Query}}.with("operator", q.Operator)}})
}

// MatchAll matches every document.
type MatchAll struct{}

// MarshalJSON implements json.Marshaler.
func (MatchAll) MarshalJSON() ([]byte, error) { return wrap("match_all", object{}) }

// MatchNone matches no document.
type MatchNone struct{}

// MarshalJSON implements json.Marshaler.
func (MatchNone) MarshalJSON() ([]byte, error) { return wrap("match_none", object{}) }

// Nested runs Query on the nested objects at Path and matches the documents
// that own a matching object. ScoreMode ("none", "sum", "avg", "min",
// "max") combines the scores of the matching objects.
type Nested struct {
	Path      string
	Query     Query
	ScoreMode string
}

// MarshalJSON implements json.Marshaler.
func (q Nested) MarshalJSON() ([]byte, error) {
	return wrap("nested", object{{"path", q.Path}, {"query", q.Query}}.with("score_mode", q.ScoreMode))
}

// ConstantScore matches Filter and gives every match the score Boost.
type ConstantScore struct {
	Filter Query
	Boost  float64
}

// MarshalJSON implements json.Marshaler.
func (q ConstantScore) MarshalJSON() ([]byte, error) {
	return wrap("constant_score", object{{"filter", q.Filter}}.with("boost", q.Boost))
}

// FieldValueFactor is a score function: the value of Field times Factor.
type FieldValueFactor struct {
	Field  string
	Factor float64
}

// MarshalJSON implements json.Marshaler.
func (f FieldValueFactor) MarshalJSON() ([]byte, error) {
	return wrap("field_value_factor", object{{"field", f.Field}}.with("factor", f.Factor))
}

// FunctionScore scores the matches of Query with Functions, combined with
// the query's score by BoostMode, and, when MinScore is set, drops the
// matches scoring below it.
type FunctionScore struct {
	Query     Query
	Functions []FieldValueFactor
	BoostMode string
	MinScore  *float32
}

// MarshalJSON implements json.Marshaler.
func (q FunctionScore) MarshalJSON() ([]byte, error) {
	o := object{{"query", q.Query}}
	if len(q.Functions) > 0 {
		o = append(o, member{"functions", q.Functions})
	}
	o = o.with("boost_mode", q.BoostMode)
	if q.MinScore != nil {
		o = append(o, member{"min_score", *q.MinScore})
	}
	return wrap("function_score", o)
}

// HasChild matches parent documents having between MinChildren and
// MaxChildren child documents of Type that match Query (0: no bound).
type HasChild struct {
	Type        string
	Query       Query
	MinChildren int
	MaxChildren int
}

// MarshalJSON implements json.Marshaler.
func (q HasChild) MarshalJSON() ([]byte, error) {
	return wrap("has_child", object{{"type", q.Type}, {"query", q.Query}}.
		with("min_children", q.MinChildren).
		with("max_children", q.MaxChildren))
}

// IDs matches the documents with the given _id values.
type IDs struct {
	Values []string
}

// MarshalJSON implements json.Marshaler.
func (q IDs) MarshalJSON() ([]byte, error) {
	return wrap("ids", object{{"values", q.Values}})
}
