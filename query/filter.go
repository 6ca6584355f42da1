package query

import (
	"encoding/json"

	"cdp/schema"
)

// Filter is a node of a parsed and validated filter tree (CONTRACT §3): one
// of *All, *Any, *Not, *Cond, *Nested, *Aggregate, *Event and *Segment.
type Filter interface {
	filter()
}

// All holds when every one of Filters holds; with none it always holds.
type All struct {
	Filters []Filter
}

// Any holds when at least one of Filters holds; with none it never holds.
type Any struct {
	Filters []Filter
}

// Not is the complement of Filter.
type Not struct {
	Filter Filter
}

// Cond is a field condition: {"field", "op", "value"}.
type Cond struct {
	// Field is the catalog entry of the field. Event properties that are not
	// in the catalog are typed by their value (see the package doc).
	Field schema.Field
	// Op is one of the operators of the field's type.
	Op string
	// Values are the operands: none for is_set and is_not_set, two for
	// between and not_between, one or more for in, not_in and has_*, one
	// otherwise. Their Go type follows the field's type: string (keyword,
	// keyword array, text), json.Number (number), bool (boolean), Date
	// (date) or Duration (date in_last and not_in_last).
	Values []any
}

// The match modes of a nested node.
const (
	MatchAny  = "any"
	MatchNone = "none"
	MatchAll  = "all"
)

// Nested is a condition on the elements of a nested list:
// {"nested", "match", "where"}.
type Nested struct {
	// Path is "orders" or "orders.items".
	Path string
	// Match is MatchAny, MatchNone or MatchAll.
	Match string
	// Where is the condition each element is tested against; nil when the
	// node has none, which every element satisfies.
	Where Filter
}

// Aggregate compares a function of the elements of a nested list with a
// number: {"aggregate": {"path", "fn", "field", "where"}, "op", "value"}.
type Aggregate struct {
	// Path is "orders" or "orders.items".
	Path string
	// Fn is "count", "sum", "avg", "min" or "max".
	Fn string
	// Field is the number field aggregated by every Fn but count, where it
	// is the zero Field.
	Field schema.Field
	// Where selects the elements aggregated; nil selects all of them.
	Where Filter
	// Compare is the test applied to the aggregated value.
	Compare Compare
}

// Event counts the customer's events with a name, within a window, that
// satisfy a condition, and compares the count with a number:
// {"event", "where", "within", "op", "value"}.
type Event struct {
	// Name is the event name.
	Name string
	// Where is a condition on the event's properties.<name> fields; nil
	// when absent.
	Where Filter
	// Within is the rolling window [now − Within, now]; nil for all time.
	Within *Duration
	// Compare is the test applied to the count; "gte" 1 when the node has
	// no op.
	Compare Compare
}

// Segment is membership of a saved segment: {"segment": "<id>"}.
type Segment struct {
	// ID names the saved segment.
	ID string
	// Filter is the segment's own filter, parsed when the node was.
	Filter Filter
}

// Compare is a number operator with its operands, as used by aggregate and
// event nodes.
type Compare struct {
	// Op is one of the number operators.
	Op string
	// Values are the operands, as for Cond.Values.
	Values []json.Number
}

func (*All) filter()       {}
func (*Any) filter()       {}
func (*Not) filter()       {}
func (*Cond) filter()      {}
func (*Nested) filter()    {}
func (*Aggregate) filter() {}
func (*Event) filter()     {}
func (*Segment) filter()   {}

// Walk calls visit with f and, while visit returns true for a node, with
// each node under it, depth first: the filters of All and Any, that of
// Not, the wheres of Nested, Aggregate and Event, and a segment's own
// filter. A nil filter (an absent where) is not visited.
func Walk(f Filter, visit func(Filter) bool) {
	if f == nil || !visit(f) {
		return
	}
	switch n := f.(type) {
	case *All:
		for _, c := range n.Filters {
			Walk(c, visit)
		}
	case *Any:
		for _, c := range n.Filters {
			Walk(c, visit)
		}
	case *Not:
		Walk(n.Filter, visit)
	case *Nested:
		Walk(n.Where, visit)
	case *Aggregate:
		Walk(n.Where, visit)
	case *Event:
		Walk(n.Where, visit)
	case *Segment:
		Walk(n.Filter, visit)
	}
}
