package querytest

import (
	"slices"

	"cdp/query"
	"cdp/schema"
)

// Coverage counts the node and operator combinations a set of filters
// uses, segments' own filters included. The keys are:
//
//	all, any, not, segment
//	cond <type> <op>                  every field condition
//	cond <type> <op> <place>          the same, by place: customer (a
//	                                  customer field), list (a nested field
//	                                  outside its nested node), element (in
//	                                  the where of its own path), inner list
//	                                  (an items field in an orders where),
//	                                  event (an event property)
//	nested <path> <match> [inside orders]
//	aggregate <path> <fn>, aggregate op <op>
//	event op <op>, event within, event where
func Coverage(filters []query.Filter) map[string]int {
	c := coverage{}
	for _, f := range filters {
		c.walk(f, "", false)
	}
	return c
}

type coverage map[string]int

func (c coverage) walk(f query.Filter, at string, event bool) {
	switch f := f.(type) {
	case *query.All:
		c["all"]++
		for _, g := range f.Filters {
			c.walk(g, at, event)
		}
	case *query.Any:
		c["any"]++
		for _, g := range f.Filters {
			c.walk(g, at, event)
		}
	case *query.Not:
		c["not"]++
		c.walk(f.Filter, at, event)
	case *query.Cond:
		key := "cond " + string(f.Field.Type) + " " + f.Op
		c[key]++
		c[key+" "+placeOf(f.Field, at, event)]++
	case *query.Nested:
		key := "nested " + f.Path + " " + f.Match
		if at != "" {
			key += " inside " + at
		}
		c[key]++
		c.where(f.Where, f.Path, false)
	case *query.Aggregate:
		c["aggregate "+f.Path+" "+f.Fn]++
		c["aggregate op "+f.Compare.Op]++
		c.where(f.Where, f.Path, false)
	case *query.Event:
		c["event op "+f.Compare.Op]++
		if f.Within != nil {
			c["event within"]++
		}
		if f.Where != nil {
			c["event where"]++
		}
		c.where(f.Where, "", true)
	case *query.Segment:
		c["segment"]++
		c.walk(f.Filter, at, event)
	}
}

func (c coverage) where(f query.Filter, at string, event bool) {
	if f != nil {
		c.walk(f, at, event)
	}
}

// placeOf names where a condition stands, for its coverage key.
func placeOf(f schema.Field, at string, event bool) string {
	switch {
	case event:
		return "event"
	case f.NestedPath == "":
		return "customer"
	case at == "":
		return "list"
	case f.NestedPath == at:
		return "element"
	}
	return "inner list"
}

// Missing returns, sorted, the basic combinations a coverage lacks: the
// node kinds, every operator of every field type, every nested path with
// every match, every aggregate function on every path, every number
// operator on aggregates and events.
func Missing(c map[string]int) []string {
	want := []string{"all", "any", "not", "segment", "event within", "event where"}
	for t, ops := range schema.Operators {
		for _, op := range ops {
			want = append(want, "cond "+string(t)+" "+op)
		}
	}
	for _, op := range schema.Operators[schema.Number] {
		want = append(want, "aggregate op "+op, "event op "+op)
	}
	for _, p := range schema.NestedPaths {
		for _, m := range []string{query.MatchAny, query.MatchNone, query.MatchAll} {
			want = append(want, "nested "+p+" "+m)
		}
		for _, fn := range []string{"count", "sum", "avg", "min", "max"} {
			want = append(want, "aggregate "+p+" "+fn)
		}
	}
	var out []string
	for _, k := range want {
		if c[k] == 0 {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}
