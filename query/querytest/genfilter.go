package querytest

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"

	"cdp/schema"
)

// Filter returns a random filter of at most depth levels as JSON. It may
// use every node kind and every operator; its values come from the
// customers generated before it.
func (g *Generator) Filter(depth int) json.RawMessage {
	b, err := json.Marshal(g.node(depth, place{}))
	if err != nil {
		panic(err)
	}
	return b
}

// Segment resolves the segments the generated filters refer to; it
// implements query.SegmentResolver.
func (g *Generator) Segment(id string) (json.RawMessage, bool, error) {
	f, ok := g.segments[id]
	return f, ok, nil
}

// place is where a generated node stands.
type place struct {
	nested  string // nested path of the elements tested, "" at the top
	event   bool   // in an event's where
	segment bool   // in a segment's own filter
}

type node = map[string]any

func (g *Generator) node(depth int, p place) node {
	type kind struct {
		weight int
		make   func() node
	}
	sub := func() node { return g.node(depth-1, p) }
	list := func(key string) func() node {
		return func() node {
			fs := make([]any, g.r.IntN(4))
			for i := range fs {
				fs[i] = sub()
			}
			return node{key: fs}
		}
	}
	kinds := []kind{{10, func() node { return g.cond(p) }}}
	if depth > 1 {
		kinds = append(kinds,
			kind{3, list("all")},
			kind{3, list("any")},
			kind{2, func() node { return node{"not": sub()} }})
	}
	if inner := g.deeper(p); inner != "" && !p.event {
		kinds = append(kinds,
			kind{3, func() node { return g.nested(inner, depth) }},
			kind{3, func() node { return g.aggregate(inner, depth) }})
	}
	if p.nested == "" && !p.event {
		kinds = append(kinds, kind{3, func() node { return g.event(depth) }})
		if !p.segment {
			kinds = append(kinds, kind{1, g.segment})
		}
	}
	total := 0
	for _, k := range kinds {
		total += k.weight
	}
	n := g.r.IntN(total)
	for _, k := range kinds {
		if n -= k.weight; n < 0 {
			return k.make()
		}
	}
	panic("unreachable")
}

// deeper returns a nested path below the place, "" when there is none.
func (g *Generator) deeper(p place) string {
	switch p.nested {
	case "":
		return pick(g.r, schema.NestedPaths)
	case "orders":
		return "orders.items"
	}
	return ""
}

// where returns the optional where of a node, at the given place.
func (g *Generator) where(n node, depth int, p place) node {
	if depth > 1 && g.chance(0.75) {
		n["where"] = g.node(depth-1, p)
	}
	return n
}

func (g *Generator) nested(path string, depth int) node {
	n := node{"nested": path, "match": pick(g.r, []string{"any", "none", "all"})}
	return g.where(n, depth, place{nested: path})
}

func (g *Generator) aggregate(path string, depth int) node {
	fn := pick(g.r, []string{"count", "sum", "avg", "min", "max"})
	spec := node{"path": path, "fn": fn}
	source := "count"
	if fn != "count" {
		var fields []string
		for _, f := range g.cat.Fields() {
			if f.Type == schema.Number && f.NestedPath == path {
				fields = append(fields, f.Name)
			}
		}
		source = pick(g.r, fields)
		spec["field"] = source
	}
	g.where(spec, depth, place{nested: path})
	return g.compare(node{"aggregate": spec}, func() any {
		if source == "count" || g.chance(0.2) {
			return json.Number(pick(g.r, []string{"0", "1", "2", "3", "1.5", "-1"}))
		}
		v := g.float(source)
		if fn == "sum" && g.chance(0.5) {
			v = math.Round((v+g.float(source))*100) / 100
		}
		return number(v)
	})
}

func (g *Generator) event(depth int) node {
	n := node{"event": pick(g.r, append(eventNames, "share"))}
	if g.chance(0.5) {
		n["within"] = g.duration()
	}
	g.where(n, depth, place{event: true})
	if g.chance(0.5) {
		return n
	}
	return g.compare(n, func() any { return json.Number(strconv.Itoa(g.r.IntN(4))) })
}

// compare adds a random number operator with values from v.
func (g *Generator) compare(n node, v func() any) node {
	op := pick(g.r, schema.Operators[schema.Number])
	n["op"] = op
	if value := g.operand(op, v); value != nil {
		n["value"] = value
	}
	return n
}

func (g *Generator) segment() node {
	ids := []string{"seg-a", "seg-b", "seg-c"}
	id := pick(g.r, ids)
	if g.segments == nil {
		g.segments = map[string]json.RawMessage{}
		for _, s := range ids {
			b, _ := json.Marshal(g.node(2, place{segment: true}))
			g.segments[s] = b
		}
	}
	return node{"segment": id}
}

// fields returns the catalog fields a condition may use at a place.
func (g *Generator) fields(p place) []schema.Field {
	var out []schema.Field
	for _, f := range g.cat.Fields() {
		isProperty := strings.HasPrefix(f.Name, "properties.")
		if f.Type == schema.Nested || isProperty != p.event ||
			(p.nested != "" && !strings.HasPrefix(f.Name, p.nested+".")) {
			continue
		}
		out = append(out, f)
	}
	return out
}

func (g *Generator) cond(p place) node {
	f := pick(g.r, g.fields(p))
	op := pick(g.r, f.Ops())
	n := node{"field": f.Name, "op": op}
	if v := g.operand(op, func() any { return g.value(f, op) }); v != nil {
		n["value"] = v
	}
	return n
}

// operand returns the value of an operator: nothing, one value, a pair or
// a list of 1–3 values.
func (g *Generator) operand(op string, v func() any) any {
	switch op {
	case "is_set", "is_not_set":
		return nil
	case "between", "not_between":
		return []any{v(), v()}
	case "in", "not_in", "has_any", "has_none", "has_all":
		out := make([]any, 1+g.r.IntN(3))
		for i := range out {
			out[i] = v()
		}
		return out
	}
	return v()
}

// value returns one operand of a field and operator.
func (g *Generator) value(f schema.Field, op string) any {
	switch f.Type {
	case schema.Number:
		return number(g.float(f.Name))
	case schema.Boolean:
		return g.chance(0.5)
	case schema.Date:
		if op == "in_last" || op == "not_in_last" {
			return g.duration()
		}
		return g.date(f.Name)
	}
	s := g.word(f.Name)
	switch op {
	case "contains", "not_contains", "starts_with", "matches", "not_matches":
		r := []rune(s)
		i := g.r.IntN(len(r) + 1)
		if op == "starts_with" {
			i = 0
		}
		s = string(r[i : i+g.r.IntN(len(r)-i+1)])
		if op != "matches" && op != "not_matches" && s == "" {
			s = string(r)
		}
		return g.recase(s)
	}
	return s
}

// word returns a string the field holds, or now and then one it does not.
func (g *Generator) word(field string) string {
	seen := g.seen[field]
	if len(seen) == 0 || g.chance(0.05) {
		return "zz-" + strconv.Itoa(g.r.IntN(3))
	}
	return pick(g.r, seen).(string)
}

// recase changes the case of s at times.
func (g *Generator) recase(s string) string {
	switch g.r.IntN(4) {
	case 0:
		return strings.ToUpper(s)
	case 1:
		return strings.ToLower(s)
	}
	return s
}

// float returns a number the field holds, or one a hundredth off it.
func (g *Generator) float(field string) float64 {
	seen := g.seen[field]
	x := float64(g.r.IntN(100))
	if len(seen) > 0 {
		x = pick(g.r, seen).(float64)
	}
	if g.chance(0.3) {
		x = math.Round((x+float64(g.r.IntN(3)-1)/100)*100) / 100
	}
	return x
}

func number(x float64) json.Number { return json.Number(strconv.FormatFloat(x, 'f', -1, 64)) }

// date returns the day of a value the field holds, in some time zone, or
// now and then the instant itself in RFC 3339.
func (g *Generator) date(field string) string {
	t := g.now.Add(-time.Duration(g.r.IntN(60*24)) * time.Hour)
	if seen := g.seen[field]; len(seen) > 0 {
		s := pick(g.r, seen).(string)
		if len(s) == len(time.DateOnly) || g.chance(0.2) {
			return s
		}
		t, _ = time.Parse(time.RFC3339, s)
	}
	loc, _ := time.LoadLocation(pick(g.r, zones))
	return t.In(loc).Format(time.DateOnly)
}
