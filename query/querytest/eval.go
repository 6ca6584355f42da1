// Package querytest supports testing the query package: a reference
// evaluator that interprets a filter over a customer document directly,
// random generators of documents, events and filters, and a coverage
// report of the node and operator combinations a set of filters uses.
//
// The evaluator is written from CONTRACT §3 alone and never looks at the
// OpenSearch translation, so that comparing the two finds the mistakes of
// either.
package querytest

import (
	"encoding/json"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode"

	"cdp/query"
	"cdp/schema"
)

// Event is one event of a customer.
type Event struct {
	Name       string         `json:"event"`
	Timestamp  time.Time      `json:"timestamp"`
	Properties map[string]any `json:"properties,omitempty"`
}

// Eval reports whether a customer satisfies f: doc is the customer
// document decoded from JSON (CONTRACT §2), in which any field may be
// missing, null or an empty list, and events are the customer's events.
// opts gives the current time and the time zone of calendar days.
func Eval(f query.Filter, doc map[string]any, events []Event, opts query.Options) bool {
	e := evaluator{now: opts.Now, loc: opts.Location, events: events}
	if e.loc == nil {
		e.loc = time.UTC
	}
	return e.eval(f, object{fields: doc})
}

type evaluator struct {
	now    time.Time
	loc    *time.Location
	events []Event
}

// object is what a filter node tests: the customer document, an element of
// a nested list, or an event.
type object struct {
	fields map[string]any
	// path is the nested path of the element, "" for a customer or an
	// event; field names are full paths, so it is cut off their front.
	path string
}

// values returns every non-null value of the field, flattening the lists
// met on the way, relative to the object.
func (o object) values(name string) []any {
	if o.path != "" {
		name = strings.TrimPrefix(name, o.path+".")
	}
	return collect(o.fields, strings.Split(name, "."))
}

func collect(v any, path []string) []any {
	switch v := v.(type) {
	case nil:
		return nil
	case []any:
		var out []any
		for _, e := range v {
			out = append(out, collect(e, path)...)
		}
		return out
	case map[string]any:
		if len(path) == 0 {
			return []any{v}
		}
		return collect(v[path[0]], path[1:])
	}
	if len(path) > 0 {
		return nil
	}
	return []any{v}
}

// elements returns the elements of the nested list at path under o.
func (o object) elements(path string) []object {
	var out []object
	for _, v := range o.values(path) {
		if m, ok := v.(map[string]any); ok {
			out = append(out, object{fields: m, path: path})
		}
	}
	return out
}

func (e *evaluator) eval(f query.Filter, o object) bool {
	switch f := f.(type) {
	case *query.All:
		for _, g := range f.Filters {
			if !e.eval(g, o) {
				return false
			}
		}
		return true
	case *query.Any:
		for _, g := range f.Filters {
			if e.eval(g, o) {
				return true
			}
		}
		return false
	case *query.Not:
		return !e.eval(f.Filter, o)
	case *query.Cond:
		return e.cond(f, o)
	case *query.Nested:
		return e.nested(f, o)
	case *query.Aggregate:
		return e.aggregate(f, o)
	case *query.Event:
		return e.event(f)
	case *query.Segment:
		return e.eval(f.Filter, o)
	}
	panic("querytest: unknown filter node")
}

// where evaluates an optional where: absent, it always holds.
func (e *evaluator) where(f query.Filter, o object) bool {
	return f == nil || e.eval(f, o)
}

// complements maps each negative operator to the positive one it negates.
var complements = map[string]string{
	"neq": "eq", "not_in": "in", "not_contains": "contains", "not_between": "between",
	"not_on": "on", "not_in_last": "in_last", "not_matches": "matches", "has_none": "has_any",
	"is_not_set": "is_set",
}

func (e *evaluator) cond(c *query.Cond, o object) bool {
	if pos, ok := complements[c.Op]; ok {
		return !e.holds(c.Field, pos, c.Values, o.values(c.Field.Name))
	}
	return e.holds(c.Field, c.Op, c.Values, o.values(c.Field.Name))
}

// holds applies a positive operator to the values a field has: it holds
// when some value satisfies it (has_all: when every operand is among them).
func (e *evaluator) holds(f schema.Field, op string, operands []any, vals []any) bool {
	switch op {
	case "is_set":
		return len(vals) > 0
	case "has_all":
		for _, x := range operands {
			if !e.holds(f, "eq", []any{x}, vals) {
				return false
			}
		}
		return len(operands) > 0
	}
	for _, v := range vals {
		if e.satisfies(f, op, operands, v) {
			return true
		}
	}
	return false
}

// satisfies applies a positive operator to one value.
func (e *evaluator) satisfies(f schema.Field, op string, operands []any, v any) bool {
	switch op {
	case "in", "has_any":
		for _, x := range operands {
			if e.satisfies(f, "eq", []any{x}, v) {
				return true
			}
		}
		return false
	case "contains", "starts_with", "matches":
		s, ok := v.(string)
		if !ok {
			return false
		}
		x := operands[0].(string)
		switch op {
		case "contains":
			return strings.Contains(strings.ToLower(s), strings.ToLower(x))
		case "starts_with":
			return strings.HasPrefix(strings.ToLower(s), strings.ToLower(x))
		}
		return matches(s, x)
	}
	if f.Type == schema.Date {
		return e.date(op, operands, v)
	}
	if f.Type == schema.Number {
		n, ok := float(v)
		if !ok {
			return false
		}
		x := func(i int) float64 { f, _ := float(operands[i]); return f }
		switch op {
		case "eq":
			return n == x(0)
		case "gt":
			return n > x(0)
		case "gte":
			return n >= x(0)
		case "lt":
			return n < x(0)
		case "lte":
			return n <= x(0)
		case "between":
			return x(0) <= n && n <= x(1)
		}
	}
	return op == "eq" && v == operands[0]
}

// date applies a date operator to one value.
func (e *evaluator) date(op string, operands []any, v any) bool {
	s, ok := v.(string)
	if !ok {
		return false
	}
	t, dateOnly, ok := parseTime(s)
	if !ok {
		return false
	}
	if op == "in_last" {
		return e.within(t, operands[0].(query.Duration))
	}
	// A value without a time of day is the calendar day it names; an
	// instant is the day it falls on in the time zone.
	day := t.In(e.loc)
	if dateOnly {
		day = t
	}
	x := func(i int) time.Time {
		y, m, d := operands[i].(query.Date).Day(e.loc)
		return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	}
	vd := time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, time.UTC)
	switch op {
	case "on":
		return vd.Equal(x(0))
	case "before":
		return vd.Before(x(0))
	case "after":
		return vd.After(x(0))
	case "between":
		return !vd.Before(x(0)) && !vd.After(x(1))
	}
	return false
}

// within reports whether t lies in the window [now − d, now]; a window of
// days starts at the same wall-clock time d days before now.
func (e *evaluator) within(t time.Time, d query.Duration) bool {
	start := e.now.Add(-time.Duration(d.N) * time.Hour)
	if d.Unit == 'd' {
		start = e.now.In(e.loc).AddDate(0, 0, -d.N)
	}
	return !t.Before(start) && !t.After(e.now)
}

// parseTime reads a date value of a document: YYYY-MM-DD, read as midnight
// UTC as OpenSearch does, or RFC 3339.
func parseTime(s string) (t time.Time, dateOnly bool, ok bool) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, true, true
	}
	t, err := time.Parse(time.RFC3339, s)
	return t, false, err == nil
}

// float reads a number of a document or an operand.
func float(v any) (float64, bool) {
	switch v := v.(type) {
	case float64:
		return v, true
	case int:
		return float64(v), true
	case json.Number:
		f, err := v.Float64()
		return f, err == nil
	}
	return 0, false
}

// exact reads a number as the exact decimal it is written as.
func exact(v any) (*big.Rat, bool) {
	var s string
	switch v := v.(type) {
	case float64:
		s = strconv.FormatFloat(v, 'g', -1, 64)
	case int:
		s = strconv.Itoa(v)
	case json.Number:
		s = string(v)
	default:
		return nil, false
	}
	return new(big.Rat).SetString(s)
}

func (e *evaluator) nested(n *query.Nested, o object) bool {
	elems := o.elements(n.Path)
	matched := 0
	for _, el := range elems {
		if e.where(n.Where, el) {
			matched++
		}
	}
	switch n.Match {
	case query.MatchNone:
		return matched == 0
	case query.MatchAll:
		return len(elems) > 0 && matched == len(elems)
	}
	return matched > 0
}

func (e *evaluator) aggregate(a *query.Aggregate, o object) bool {
	var nums []*big.Rat
	n := 0
	for _, el := range o.elements(a.Path) {
		if !e.where(a.Where, el) {
			continue
		}
		n++
		if a.Fn == "count" {
			continue
		}
		for _, v := range el.values(a.Field.Name) {
			if r, ok := exact(v); ok {
				nums = append(nums, r)
			}
		}
	}
	var value *big.Rat // nil: the aggregate has no value
	switch a.Fn {
	case "count":
		value = big.NewRat(int64(n), 1)
	case "sum":
		value = new(big.Rat)
		for _, r := range nums {
			value.Add(value, r)
		}
	case "avg":
		if len(nums) > 0 {
			value = new(big.Rat)
			for _, r := range nums {
				value.Add(value, r)
			}
			value.Quo(value, big.NewRat(int64(len(nums)), 1))
		}
	default:
		for _, r := range nums {
			if value == nil || (a.Fn == "min") == (r.Cmp(value) < 0) {
				value = r
			}
		}
	}
	return compare(value, a.Compare)
}

func (e *evaluator) event(ev *query.Event) bool {
	n := 0
	for _, x := range e.events {
		if x.Name != ev.Name {
			continue
		}
		if ev.Within != nil && !e.within(x.Timestamp, *ev.Within) {
			continue
		}
		if e.where(ev.Where, object{fields: map[string]any{"properties": x.Properties}}) {
			n++
		}
	}
	return compare(big.NewRat(int64(n), 1), ev.Compare)
}

// compare applies a number operator to a value that may be missing (nil).
func compare(v *big.Rat, c query.Compare) bool {
	if pos, ok := complements[c.Op]; ok {
		return !compare(v, query.Compare{Op: pos, Values: c.Values})
	}
	if v == nil {
		return false
	}
	x := func(i int) int {
		r, _ := exact(c.Values[i])
		return v.Cmp(r)
	}
	switch c.Op {
	case "eq":
		return x(0) == 0
	case "gt":
		return x(0) > 0
	case "gte":
		return x(0) >= 0
	case "lt":
		return x(0) < 0
	case "lte":
		return x(0) <= 0
	case "between":
		return x(0) >= 0 && x(1) <= 0
	case "in":
		for i := range c.Values {
			if x(i) == 0 {
				return true
			}
		}
		return false
	}
	return c.Op == "is_set"
}

// stopWords are the words the cjk analyzer drops.
var stopWords = map[string]bool{}

func init() {
	for _, w := range strings.Fields("a and are as at be but by for if in into is it no not of on or s such t that the their then there these they this to was will with www") {
		stopWords[w] = true
	}
}

// matches reports whether every word of query appears in text, words being
// what the cjk analyzer makes of them: runs of letters and digits,
// lowercased, less stop words, and overlapping pairs of Chinese characters
// (a lone character stands for itself). With no words it never holds.
func matches(text, query string) bool {
	have := map[string]bool{}
	for _, w := range words(text) {
		have[w] = true
	}
	want := words(query)
	for _, w := range want {
		if !have[w] {
			return false
		}
	}
	return len(want) > 0
}

func words(s string) []string {
	var out []string
	var run []rune
	han := false
	flush := func() {
		switch {
		case len(run) == 0:
		case !han && !stopWords[string(run)]:
			out = append(out, string(run))
		case han && len(run) == 1:
			out = append(out, string(run))
		case han:
			for i := 0; i+1 < len(run); i++ {
				out = append(out, string(run[i:i+2]))
			}
		}
		run = run[:0]
	}
	for _, r := range s {
		isHan := unicode.Is(unicode.Han, r)
		if !isHan && !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			flush()
			continue
		}
		if isHan != han {
			flush()
			han = isHan
		}
		run = append(run, unicode.ToLower(r))
	}
	flush()
	return out
}
