package query

import (
	"encoding/json"
	"math"
	"math/big"

	"cdp/query/dsl"
)

// measure is a number each customer has or lacks (an aggregate, a count of
// events), seen through the queries that compare it with a threshold.
type measure interface {
	// atLeast matches the customers whose number is ≥ x.
	atLeast(x json.Number) dsl.Query
	// above matches the customers whose number is > x.
	above(x json.Number) dsl.Query
	// defined matches the customers who have the number.
	defined() dsl.Query
}

// compare translates a number operator on a measure. Every operator is
// written with ≥, > and complements: x < t is "defined and not ≥ t", so a
// customer lacking the number matches only the negative operators.
func compare(m measure, c Compare) dsl.Query {
	if pos, ok := negatives[c.Op]; ok {
		return not(compare(m, Compare{Op: pos, Values: c.Values}))
	}
	v := c.Values
	switch c.Op {
	case "gte":
		return m.atLeast(v[0])
	case "gt":
		return m.above(v[0])
	case "lt":
		return and(m.defined(), not(m.atLeast(v[0])))
	case "lte":
		return and(m.defined(), not(m.above(v[0])))
	case "eq":
		return between(m, v[0], v[0])
	case "between":
		return between(m, v[0], v[1])
	case "in":
		qs := make([]dsl.Query, len(v))
		for i, x := range v {
			qs[i] = between(m, x, x)
		}
		return or(qs...)
	case "is_set":
		return m.defined()
	}
	panic("query: unknown number operator " + c.Op)
}

// ranged is a measure with a query of its own for lo ≤ number ≤ hi.
type ranged interface {
	between(lo, hi json.Number) dsl.Query
}

// between matches the customers whose number is in [lo, hi].
func between(m measure, lo, hi json.Number) dsl.Query {
	if r, ok := m.(ranged); ok {
		return r.between(lo, hi)
	}
	return and(m.atLeast(lo), not(m.above(hi)))
}

func rat(x json.Number) *big.Rat {
	r, _ := new(big.Rat).SetString(string(x))
	return r
}

// maxCount is the largest count compared exactly: scores are float32,
// whose integers are exact up to 2^24. A threshold above it is never met.
const maxCount = 1 << 24

// count is a number of things (elements, events): a whole number ≥ 0 that
// every customer has. atLeastN(n), for 1 ≤ n ≤ maxCount, matches the
// customers with at least n things; betweenN(lo, hi), when set, those with
// lo to hi things, for 1 ≤ lo ≤ hi ≤ maxCount.
type count struct {
	atLeastN func(n int) dsl.Query
	betweenN func(lo, hi int) dsl.Query
}

func (c count) defined() dsl.Query { return dsl.MatchAll{} }

// atLeast: count ≥ x ⟺ count ≥ ⌈x⌉.
func (c count) atLeast(x json.Number) dsl.Query { return c.threshold(ceil(x)) }

// above: count > x ⟺ count ≥ ⌊x⌋ + 1.
func (c count) above(x json.Number) dsl.Query {
	n := floor(x)
	return c.threshold(n.Add(n, big.NewInt(1)))
}

// threshold matches the customers with at least n things.
func (c count) threshold(n *big.Int) dsl.Query {
	switch {
	case n.Sign() <= 0:
		return dsl.MatchAll{}
	case n.Cmp(big.NewInt(maxCount)) > 0:
		return dsl.MatchNone{}
	}
	return c.atLeastN(int(n.Int64()))
}

// between: lo ≤ count ≤ hi ⟺ ⌈lo⌉ ≤ count ≤ ⌊hi⌋, in one query when the
// count has one and the range leaves out zero.
func (c count) between(lo, hi json.Number) dsl.Query {
	l, h := ceil(lo), floor(hi)
	if c.betweenN == nil || l.Sign() <= 0 || h.Cmp(big.NewInt(maxCount)) > 0 || l.Cmp(h) > 0 {
		return and(c.threshold(l), not(c.threshold(h.Add(h, big.NewInt(1)))))
	}
	return c.betweenN(int(l.Int64()), int(h.Int64()))
}

// floor returns ⌊x⌋.
func floor(x json.Number) *big.Int {
	r := rat(x)
	n, _ := new(big.Int).DivMod(r.Num(), r.Denom(), new(big.Int))
	return n
}

// ceil returns ⌈x⌉.
func ceil(x json.Number) *big.Int {
	r := rat(x)
	n, m := new(big.Int).DivMod(r.Num(), r.Denom(), new(big.Int))
	if m.Sign() != 0 {
		n.Add(n, big.NewInt(1))
	}
	return n
}

// elementCount counts the elements at path that match where: each one
// scores 1 and the nested query sums the scores.
func elementCount(path string, where dsl.Query) count {
	return count{atLeastN: func(n int) dsl.Query {
		return minScore(dsl.Nested{Path: path, Query: dsl.ConstantScore{Filter: where, Boost: 1}, ScoreMode: "sum"}, float32(n))
	}}
}

// eventCount counts the customer's child events that match q.
func eventCount(q dsl.Query) count {
	return count{
		atLeastN: func(n int) dsl.Query {
			return dsl.HasChild{Type: EventRelation, Query: q, MinChildren: n}
		},
		betweenN: func(lo, hi int) dsl.Query {
			return dsl.HasChild{Type: EventRelation, Query: q, MinChildren: lo, MaxChildren: hi}
		},
	}
}

func minScore(q dsl.Query, min float32) dsl.Query {
	return dsl.FunctionScore{Query: q, MinScore: &min}
}

// scoreScale multiplies values before they become scores, so that amounts
// with up to two decimals are whole numbers of hundredths, which float32
// holds exactly up to 2^24.
const scoreScale = 100

// scored is the sum (mode "sum") or the average (mode "avg") of a number
// field over the elements at path that match where, computed as the
// score of a nested query: each element scores scoreScale × its value.
// Elements with a negative value, or without one, are left out (scores
// cannot be negative), so a sum is never negative.
type scored struct {
	path  string
	field string
	where dsl.Query
	mode  string
}

// elements matches the elements that take part.
func (s scored) elements() dsl.Query {
	return and(s.where, dsl.Range{Field: s.field, GTE: json.Number("0")})
}

// defined: a sum always is (the sum of nothing is 0); an average needs an
// element.
func (s scored) defined() dsl.Query {
	if s.mode == "sum" {
		return dsl.MatchAll{}
	}
	return nested(s.path, s.elements())
}

func (s scored) atLeast(x json.Number) dsl.Query {
	if rat(x).Sign() <= 0 {
		return s.defined()
	}
	return s.scoreAtLeast(max(scaled(x), math.SmallestNonzeroFloat32))
}

func (s scored) above(x json.Number) dsl.Query {
	if rat(x).Sign() < 0 {
		return s.defined()
	}
	return s.scoreAtLeast(math.Nextafter32(scaled(x), math.MaxFloat32))
}

func (s scored) scoreAtLeast(min float32) dsl.Query {
	element := dsl.FunctionScore{
		Query:     s.elements(),
		Functions: []dsl.FieldValueFactor{{Field: s.field, Factor: scoreScale}},
		BoostMode: "replace",
	}
	return minScore(dsl.Nested{Path: s.path, Query: element, ScoreMode: s.mode}, min)
}

// scaled returns the float32 nearest to scoreScale × x.
func scaled(x json.Number) float32 {
	f, _ := new(big.Rat).Mul(rat(x), big.NewRat(scoreScale, 1)).Float32()
	return f
}

// extreme is the minimum or maximum of a number field over the elements at
// path that match where, compared exactly through the existence of
// elements: max ≥ x ⟺ some element has a value ≥ x; min ≥ x ⟺ some
// element has a value and none has one < x.
type extreme struct {
	path  string
	field string
	where dsl.Query
	max   bool
}

// some matches the customers with an element that matches where and q.
func (e extreme) some(q dsl.Query) dsl.Query { return nested(e.path, and(e.where, q)) }

func (e extreme) defined() dsl.Query { return e.some(dsl.Exists{Field: e.field}) }

func (e extreme) atLeast(x json.Number) dsl.Query {
	if e.max {
		return e.some(dsl.Range{Field: e.field, GTE: x})
	}
	return and(e.defined(), not(e.some(dsl.Range{Field: e.field, LT: x})))
}

func (e extreme) above(x json.Number) dsl.Query {
	if e.max {
		return e.some(dsl.Range{Field: e.field, GT: x})
	}
	return and(e.defined(), not(e.some(dsl.Range{Field: e.field, LTE: x})))
}

// aggregate translates an aggregate node.
func (t *translator) aggregate(a *Aggregate) dsl.Query {
	where := t.where(a.Where, a.Path)
	var m measure
	switch a.Fn {
	case "count":
		m = elementCount(a.Path, where)
	case "sum", "avg":
		m = scored{path: a.Path, field: a.Field.Name, where: where, mode: a.Fn}
	default:
		m = extreme{path: a.Path, field: a.Field.Name, where: where, max: a.Fn == "max"}
	}
	return compare(m, a.Compare)
}

// event translates an event node into has_child queries on the events of
// the customer with the name, within the window, that match where.
func (t *translator) event(e *Event) dsl.Query {
	q := []dsl.Query{dsl.Term{Field: EventNameField, Value: e.Name}}
	if e.Within != nil {
		q = append(q, t.window(EventTimeField, *e.Within))
	}
	return compare(eventCount(and(append(q, t.where(e.Where, ""))...)), e.Compare)
}
