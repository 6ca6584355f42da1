package query

import (
	"strings"
	"time"
	"unicode/utf8"

	"cdp/query/dsl"
	"cdp/schema"
)

// The parent-child join of the customers index, as package schema
// declares it: every customer document has JoinField set to
// CustomerRelation; every event is a child document with JoinField
// {"name": EventRelation, "parent": <customer_id>}, routed to its
// customer, holding EventNameField, EventTimeField and properties.<name>
// fields.
const (
	JoinField        = schema.JoinField
	CustomerRelation = schema.CustomerRelation
	EventRelation    = schema.EventRelation
	EventNameField   = schema.EventNameField
	EventTimeField   = schema.EventTimeField
)

// Options are the inputs of a translation besides the filter.
type Options struct {
	// Now ends every rolling window (in_last, within); the zero time means
	// the current time. It is truncated to the millisecond, the resolution
	// of OpenSearch dates.
	Now time.Time
	// Location is the time zone of calendar days (on, before, after, date
	// between) and of day-long durations; nil means UTC.
	Location *time.Location
}

// Translate returns the OpenSearch query matching exactly the customer
// documents that satisfy f. The query also restricts the hits to customer
// documents, leaving out the event documents that share the index.
func Translate(f Filter, opts Options) dsl.Query {
	t := translator{now: opts.Now, loc: opts.Location}
	if t.now.IsZero() {
		t.now = time.Now()
	}
	if t.loc == nil {
		t.loc = time.UTC
	}
	t.now = t.now.Truncate(time.Millisecond)
	return and(t.filter(f, ""), dsl.Term{Field: JoinField, Value: CustomerRelation})
}

// translator holds the options of one translation.
type translator struct {
	now time.Time
	loc *time.Location
}

// filter translates f at a nested path: "" for the customer level (and for
// an event's where), else the path whose elements f tests.
func (t *translator) filter(f Filter, at string) dsl.Query {
	switch f := f.(type) {
	case *All:
		return and(t.each(f.Filters, at)...)
	case *Any:
		return or(t.each(f.Filters, at)...)
	case *Not:
		return not(t.filter(f.Filter, at))
	case *Cond:
		return t.cond(f, at)
	case *Nested:
		return t.nested(f)
	case *Aggregate:
		return t.aggregate(f)
	case *Event:
		return t.event(f)
	case *Segment:
		return t.filter(f.Filter, at)
	}
	panic("query: unknown filter node")
}

func (t *translator) each(fs []Filter, at string) []dsl.Query {
	qs := make([]dsl.Query, len(fs))
	for i, f := range fs {
		qs[i] = t.filter(f, at)
	}
	return qs
}

// where translates the optional where of a node at its path.
func (t *translator) where(f Filter, at string) dsl.Query {
	if f == nil {
		return dsl.MatchAll{}
	}
	return t.filter(f, at)
}

// negatives maps each negative operator to its positive twin, whose
// complement it is (CONTRACT §3.2 rule 2).
var negatives = map[string]string{
	"neq":          "eq",
	"not_in":       "in",
	"not_contains": "contains",
	"not_between":  "between",
	"not_on":       "on",
	"not_in_last":  "in_last",
	"not_matches":  "matches",
	"has_none":     "has_any",
	"is_not_set":   "is_set",
}

// cond translates a field condition at a nested path. A field deeper than
// the path is a list there: the positive operator holds when some element
// satisfies it, and the negative one is the complement at the path's level.
func (t *translator) cond(c *Cond, at string) dsl.Query {
	op, negative := negatives[c.Op]
	if !negative {
		op = c.Op
	}
	q := t.leaf(c.Field, op, c.Values)
	if p := c.Field.NestedPath; p != "" && p != at {
		q = nested(p, q)
	}
	if negative {
		return not(q)
	}
	return q
}

// leaf translates a positive operator on one field, in the field's own
// nested context.
func (t *translator) leaf(f schema.Field, op string, vals []any) dsl.Query {
	name := f.Name
	switch op {
	case "eq":
		return dsl.Term{Field: name, Value: vals[0]}
	case "in", "has_any":
		return dsl.Terms{Field: name, Values: vals}
	case "has_all":
		qs := make([]dsl.Query, len(vals))
		for i, v := range vals {
			qs[i] = dsl.Term{Field: name, Value: v}
		}
		return and(qs...)
	case "contains":
		// See schema.GramsSubfield: trigrams as a phrase where the value
		// has any, else a wildcard with a tiny automaton.
		v := strings.ToLower(vals[0].(string))
		if utf8.RuneCountInString(v) >= schema.GramSize {
			return dsl.MatchPhrase{Field: name + "." + schema.GramsSubfield, Query: v}
		}
		return dsl.Wildcard{Field: name + ".lc", Pattern: "*" + escapeWildcard(v) + "*"}
	case "starts_with":
		return dsl.Prefix{Field: name + ".lc", Value: strings.ToLower(vals[0].(string))}
	case "matches":
		return dsl.Match{Field: name, Query: vals[0].(string), Operator: "and"}
	case "is_set":
		return dsl.Exists{Field: name}
	case "gt":
		return dsl.Range{Field: name, GT: vals[0]}
	case "gte":
		return dsl.Range{Field: name, GTE: vals[0]}
	case "lt":
		return dsl.Range{Field: name, LT: vals[0]}
	case "lte":
		return dsl.Range{Field: name, LTE: vals[0]}
	case "between":
		if f.Type == schema.Date {
			return dsl.Range{Field: name, GTE: t.dayStart(f, vals[0].(Date), 0), LT: t.dayStart(f, vals[1].(Date), 1)}
		}
		return dsl.Range{Field: name, GTE: vals[0], LTE: vals[1]}
	case "on":
		return dsl.Range{Field: name, GTE: t.dayStart(f, vals[0].(Date), 0), LT: t.dayStart(f, vals[0].(Date), 1)}
	case "before":
		return dsl.Range{Field: name, LT: t.dayStart(f, vals[0].(Date), 0)}
	case "after":
		return dsl.Range{Field: name, GTE: t.dayStart(f, vals[0].(Date), 1)}
	case "in_last":
		return t.window(name, vals[0].(Duration))
	}
	panic("query: unknown operator " + op)
}

// escapeWildcard escapes the metacharacters of a wildcard pattern.
func escapeWildcard(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r == '*' || r == '?' || r == '\\' {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// dayStart returns, as an RFC 3339 instant, the start of the calendar day
// plusDays after the day d names in the request's time zone. A field
// holding calendar days without a time of day (schema.Field.Day, as
// "1990-05-01") is stored by OpenSearch as midnight UTC, so its day
// boundaries are computed in UTC, whatever the time zone of the request.
func (t *translator) dayStart(f schema.Field, d Date, plusDays int) string {
	y, m, day := d.Day(t.loc)
	loc := t.loc
	if f.Day {
		loc = time.UTC
	}
	return startOfDay(y, m, day+plusDays, loc).UTC().Format(time.RFC3339)
}

// startOfDay returns the first instant of a calendar day in loc (day may
// overflow its month, as for time.Date). Where the clocks skip midnight
// (a daylight-saving jump at 00:00), time.Date may answer an instant of
// the previous day; the day then starts where the skipped hour ends.
func startOfDay(year int, month time.Month, day int, loc *time.Location) time.Time {
	s := time.Date(year, month, day, 0, 0, 0, 0, loc)
	if want := time.Date(year, month, day, 0, 0, 0, 0, time.UTC); s.Day() != want.Day() {
		h, m, sec := s.Clock()
		s = s.Add(24*time.Hour - time.Duration(h)*time.Hour - time.Duration(m)*time.Minute - time.Duration(sec)*time.Second)
	}
	return s
}

// window matches the instants of the rolling window [now − d, now].
func (t *translator) window(field string, d Duration) dsl.Query {
	start := t.now.Add(-time.Duration(d.N) * time.Hour)
	if d.Unit == 'd' {
		start = t.now.In(t.loc).AddDate(0, 0, -d.N)
	}
	return dsl.Range{Field: field, GTE: instant(start), LTE: instant(t.now)}
}

func instant(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// nested translates a nested node. Its where is translated at the node's
// path, so that its conditions hold in one and the same element and its
// negations are complements among the elements.
func (t *translator) nested(n *Nested) dsl.Query {
	where := t.where(n.Where, n.Path)
	switch n.Match {
	case MatchNone:
		return not(nested(n.Path, where))
	case MatchAll:
		return and(nested(n.Path, dsl.MatchAll{}), not(nested(n.Path, not(where))))
	}
	return nested(n.Path, where)
}

// nested matches the owners of an element at path that matches q.
func nested(path string, q dsl.Query) dsl.Query {
	if _, ok := q.(dsl.MatchNone); ok {
		return q
	}
	return dsl.Nested{Path: path, Query: q, ScoreMode: "none"}
}

// and matches what every one of qs matches, merging nested conjunctions.
func and(qs ...dsl.Query) dsl.Query {
	var b dsl.Bool
	for _, q := range qs {
		switch q := q.(type) {
		case dsl.MatchAll:
			continue
		case dsl.MatchNone:
			return q
		case dsl.Bool:
			if len(q.Must) == 0 && len(q.Should) == 0 {
				b.Filter = append(b.Filter, q.Filter...)
				b.MustNot = append(b.MustNot, q.MustNot...)
				continue
			}
		}
		b.Filter = append(b.Filter, q)
	}
	switch {
	case len(b.Filter)+len(b.MustNot) == 0:
		return dsl.MatchAll{}
	case len(b.Filter) == 1 && len(b.MustNot) == 0:
		return b.Filter[0]
	}
	return b
}

// or matches what at least one of qs matches, merging nested disjunctions.
func or(qs ...dsl.Query) dsl.Query {
	var should []dsl.Query
	for _, q := range qs {
		switch q := q.(type) {
		case dsl.MatchNone:
			continue
		case dsl.MatchAll:
			return q
		case dsl.Bool:
			if len(q.Must)+len(q.Filter)+len(q.MustNot) == 0 && q.MinimumShouldMatch == 1 {
				should = append(should, q.Should...)
				continue
			}
		}
		should = append(should, q)
	}
	switch len(should) {
	case 0:
		return dsl.MatchNone{}
	case 1:
		return should[0]
	}
	return dsl.Bool{Should: should, MinimumShouldMatch: 1}
}

// not matches what q does not match.
func not(q dsl.Query) dsl.Query {
	switch q := q.(type) {
	case dsl.MatchAll:
		return dsl.MatchNone{}
	case dsl.MatchNone:
		return dsl.MatchAll{}
	case dsl.Bool:
		if len(q.Must)+len(q.Filter)+len(q.Should) == 0 && len(q.MustNot) == 1 {
			return q.MustNot[0]
		}
	}
	return dsl.Bool{MustNot: []dsl.Query{q}}
}
