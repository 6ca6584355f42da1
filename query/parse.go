package query

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"cdp/schema"
)

// Limits of the filter language (CONTRACT §3.2 rule 7).
const (
	// MaxValues is the largest number of values a list operand may hold.
	MaxValues = 1000
	// MaxDepth is how deeply all, any, not and nested nodes may nest.
	MaxDepth = 10
	// maxSegmentChain bounds segments that refer to segments.
	maxSegmentChain = 10
)

// propertiesPrefix starts the fields of an event's properties.
const propertiesPrefix = "properties."

// propertyName is the form of the name of a property field missing from
// the catalog: dot-separated words of letters, digits, _ and -.
var propertyName = regexp.MustCompile(`^properties(\.[\p{L}\p{N}_-]+)+$`)

// SegmentResolver looks up saved segments for segment nodes.
type SegmentResolver interface {
	// Segment returns the filter of the saved segment id as JSON. found is
	// false when there is no such segment; err reports a failure to look it
	// up, which Parse returns as it is.
	Segment(id string) (filter json.RawMessage, found bool, err error)
}

// Parser parses filters against a field catalog.
type Parser struct {
	// Catalog holds every field a filter may name: the base fields, the
	// dynamic attrs.<name> fields, and the properties.<name> fields of
	// events known so far.
	Catalog *schema.Catalog
	// Segments resolves segment nodes; when nil every segment node is an
	// unknown segment.
	Segments SegmentResolver
	// Limits bound the cost of a filter; zero fields take DefaultLimits.
	Limits Limits
}

// Parse parses and validates a filter against the catalog, without
// segments. Every error it returns is an *Error.
func Parse(raw []byte, cat *schema.Catalog) (Filter, error) {
	return (&Parser{Catalog: cat}).Parse(raw)
}

// Parse parses and validates a filter. Validation errors are *Error; an
// error of the SegmentResolver is returned as it is.
func (p *Parser) Parse(raw []byte) (Filter, error) {
	return p.parse(raw, nil, &budget{Limits: p.Limits.withDefaults()})
}

// parse parses raw with the chain of segments being expanded, spending
// from b.
func (p *Parser) parse(raw []byte, chain []string, b *budget) (Filter, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, errorf("", "the filter is not valid JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errorf("", "the filter is not valid JSON: data after the filter")
	}
	w := walker{Parser: p, chain: chain, budget: b}
	return w.node(v, "", scope{})
}

// scope is where in the tree a node stands.
type scope struct {
	// nested is the nested path whose elements the node tests ("" at the
	// customer level).
	nested string
	// event is true inside an event's where.
	event bool
	// depth counts the all, any, not and nested nodes above the node.
	depth int
}

func (s scope) name() string {
	switch {
	case s.event:
		return "an event's where"
	case s.nested != "":
		return "the where of " + s.nested
	}
	return "the customer level"
}

// walker turns decoded JSON into a Filter.
type walker struct {
	*Parser
	chain  []string
	budget *budget
}

// kinds are the keys that name a node's kind, in the order they are looked
// for, each with every key a node of that kind may hold.
var kinds = [][]string{
	{"all"},
	{"any"},
	{"not"},
	{"nested", "match", "where"},
	{"aggregate", "op", "value"},
	{"event", "where", "within", "op", "value"},
	{"segment"},
	{"field", "op", "value"},
}

func (w *walker) node(v any, at string, sc scope) (Filter, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, errorf(at, "a filter node must be a JSON object")
	}
	for _, keys := range kinds {
		kind := keys[0]
		body, ok := obj[kind]
		if !ok {
			continue
		}
		if err := onlyKeys(obj, at, "this "+kind+" node", keys); err != nil {
			return nil, err
		}
		switch kind {
		case "all", "any", "not", "nested":
			sc.depth++
			if sc.depth > MaxDepth {
				return nil, errorf(at, "all, any, not and nested may nest at most %d levels deep", MaxDepth)
			}
		}
		switch kind {
		case "all", "any":
			return w.list(kind, body, at, sc)
		case "not":
			f, err := w.node(body, join(at, "not"), sc)
			if err != nil {
				return nil, err
			}
			return &Not{Filter: f}, nil
		case "nested":
			return w.nested(obj, at, sc)
		case "aggregate":
			return w.aggregate(obj, at, sc)
		case "event":
			return w.event(obj, at, sc)
		case "segment":
			return w.segment(body, at, sc)
		default:
			return w.cond(obj, at, sc)
		}
	}
	return nil, errorf(at, "a filter node needs one of the keys all, any, not, field, nested, aggregate, event, segment")
}

// onlyKeys reports the first key of obj, in sorted order, that is not one
// of allowed.
func onlyKeys(obj map[string]any, at, what string, allowed []string) error {
	var unknown []string
	for k := range obj {
		if !slices.Contains(allowed, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	k := slices.Min(unknown)
	return errorf(join(at, k), "unknown key %q in %s", k, what)
}

func join(at, key string) string {
	if at == "" {
		return key
	}
	return at + "." + key
}

func index(at string, i int) string { return at + "[" + strconv.Itoa(i) + "]" }

func (w *walker) list(kind string, body any, at string, sc scope) (Filter, error) {
	at = join(at, kind)
	items, ok := body.([]any)
	if !ok {
		return nil, errorf(at, "%s takes a list of filters", kind)
	}
	fs := make([]Filter, len(items))
	for i, item := range items {
		f, err := w.node(item, index(at, i), sc)
		if err != nil {
			return nil, err
		}
		fs[i] = f
	}
	if kind == "all" {
		return &All{Filters: fs}, nil
	}
	return &Any{Filters: fs}, nil
}

// str returns a required non-empty string.
func str(v any, at, what string) (string, error) {
	s, ok := v.(string)
	if !ok || s == "" {
		return "", errorf(at, "%s must be a non-empty string", what)
	}
	return s, nil
}

// nestedPath checks that path names a nested list below the scope.
func (w *walker) nestedPath(v any, at string, sc scope) (string, error) {
	path, err := str(v, at, "the nested path")
	if err != nil {
		return "", err
	}
	if f, ok := w.Catalog.Lookup(path); !ok || f.Type != schema.Nested {
		return "", errorf(at, "%q is not a nested list: use one of %s", path, strings.Join(schema.NestedPaths, ", "))
	}
	if sc.event || (sc.nested != "" && !strings.HasPrefix(path, sc.nested+".")) || path == sc.nested {
		return "", errorf(at, "%s cannot be used in %s", path, sc.name())
	}
	return path, nil
}

func (w *walker) nested(obj map[string]any, at string, sc scope) (Filter, error) {
	path, err := w.nestedPath(obj["nested"], join(at, "nested"), sc)
	if err != nil {
		return nil, err
	}
	n := &Nested{Path: path, Match: MatchAny}
	if m, ok := obj["match"]; ok {
		n.Match, _ = m.(string)
		if n.Match != MatchAny && n.Match != MatchNone && n.Match != MatchAll {
			return nil, errorf(join(at, "match"), "match must be any, none or all")
		}
	}
	if n.Where, err = w.where(obj, at, scope{nested: path, depth: sc.depth}); err != nil {
		return nil, err
	}
	return n, nil
}

// where parses the optional where of a node; nil when absent.
func (w *walker) where(obj map[string]any, at string, sc scope) (Filter, error) {
	v, ok := obj["where"]
	if !ok {
		return nil, nil
	}
	return w.node(v, join(at, "where"), sc)
}

// aggregateFns are the functions of an aggregate node.
var aggregateFns = []string{"count", "sum", "avg", "min", "max"}

func (w *walker) aggregate(obj map[string]any, at string, sc scope) (Filter, error) {
	if err := w.budget.condition(at); err != nil {
		return nil, err
	}
	aat := join(at, "aggregate")
	spec, ok := obj["aggregate"].(map[string]any)
	if !ok {
		return nil, errorf(aat, "aggregate must be an object with path, fn, field and where")
	}
	if err := onlyKeys(spec, aat, "an aggregate's object", []string{"path", "fn", "field", "where"}); err != nil {
		return nil, err
	}
	path, err := w.nestedPath(spec["path"], join(aat, "path"), sc)
	if err != nil {
		return nil, err
	}
	a := &Aggregate{Path: path}
	a.Fn, _ = spec["fn"].(string)
	if !slices.Contains(aggregateFns, a.Fn) {
		return nil, errorf(join(aat, "fn"), "fn must be one of %s", strings.Join(aggregateFns, ", "))
	}
	fat := join(aat, "field")
	name, hasField := spec["field"]
	switch {
	case a.Fn == "count" && hasField:
		return nil, errorf(fat, "count takes no field")
	case a.Fn != "count":
		s, err := str(name, fat, "the field")
		if err != nil {
			return nil, err
		}
		f, ok := w.Catalog.Lookup(s)
		if !ok || f.Type != schema.Number || f.NestedPath != path {
			return nil, errorf(fat, "%s of %s needs a number field of %s", a.Fn, path, path)
		}
		a.Field = f
	}
	if a.Where, err = w.where(spec, aat, scope{nested: path, depth: sc.depth}); err != nil {
		return nil, err
	}
	if a.Compare, err = w.compare(obj, at, false); err != nil {
		return nil, err
	}
	return a, nil
}

func (w *walker) event(obj map[string]any, at string, sc scope) (Filter, error) {
	if sc.event || sc.nested != "" {
		return nil, errorf(at, "an event condition cannot be used in %s", sc.name())
	}
	if err := w.budget.condition(at); err != nil {
		return nil, err
	}
	name, err := str(obj["event"], join(at, "event"), "the event name")
	if err != nil {
		return nil, err
	}
	if err := w.budget.stringValue(join(at, "event"), "", name); err != nil {
		return nil, err
	}
	e := &Event{Name: name, Compare: Compare{Op: "gte", Values: []json.Number{"1"}}}
	if v, ok := obj["within"]; ok {
		s, _ := v.(string)
		d, ok := parseDuration(s)
		if !ok {
			return nil, errorf(join(at, "within"), "within must be a duration like 24h or 7d")
		}
		e.Within = &d
	}
	if e.Where, err = w.where(obj, at, scope{event: true, depth: sc.depth}); err != nil {
		return nil, err
	}
	_, hasOp := obj["op"]
	_, hasValue := obj["value"]
	if !hasOp && !hasValue {
		return e, nil
	}
	if e.Compare, err = w.compare(obj, at, true); err != nil {
		return nil, err
	}
	return e, nil
}

// compare parses the op and value of an aggregate or event node, and
// charges its values to the budget; counts of events must be whole
// numbers.
func (w *walker) compare(obj map[string]any, at string, whole bool) (Compare, error) {
	op, _ := obj["op"].(string)
	if !slices.Contains(schema.Operators[schema.Number], op) {
		return Compare{}, errorf(join(at, "op"), "op must be one of %s", strings.Join(schema.Operators[schema.Number], ", "))
	}
	vals, err := operands(obj, at, op, func(v any, at string) (any, error) {
		n, err := number(v, at)
		if err == nil && whole && !isWhole(n) {
			err = errorf(at, "an event count must be a whole number")
		}
		return n, err
	})
	if err != nil {
		return Compare{}, err
	}
	if err := w.budget.values(join(at, "value"), len(vals)); err != nil {
		return Compare{}, err
	}
	c := Compare{Op: op, Values: make([]json.Number, len(vals))}
	for i, v := range vals {
		c.Values[i] = v.(json.Number)
	}
	return c, nil
}

func isWhole(n json.Number) bool {
	r, ok := new(big.Rat).SetString(string(n))
	return ok && r.IsInt()
}

func (w *walker) segment(v any, at string, sc scope) (Filter, error) {
	sat := join(at, "segment")
	id, err := str(v, sat, "the segment id")
	if err != nil {
		return nil, err
	}
	if sc.event || sc.nested != "" {
		return nil, errorf(at, "a segment cannot be used in %s", sc.name())
	}
	if slices.Contains(w.chain, id) {
		return nil, errorf(sat, "segment %q refers to itself", id)
	}
	if len(w.chain) >= maxSegmentChain {
		return nil, errorf(sat, "segments may refer to segments at most %d deep", maxSegmentChain)
	}
	var raw json.RawMessage
	found := false
	if w.Segments != nil {
		if raw, found, err = w.Segments.Segment(id); err != nil {
			return nil, err
		}
	}
	if !found {
		return nil, errorf(sat, "unknown segment %q", id)
	}
	f, err := w.parse(raw, append(slices.Clip(w.chain), id), w.budget)
	if e := (*Error)(nil); errors.As(err, &e) {
		return nil, errorf(sat, "segment %q is invalid at %q: %s", id, e.Path, e.Message)
	}
	if err != nil {
		return nil, err
	}
	return &Segment{ID: id, Filter: f}, nil
}

func (w *walker) cond(obj map[string]any, at string, sc scope) (Filter, error) {
	if err := w.budget.condition(at); err != nil {
		return nil, err
	}
	fat := join(at, "field")
	name, err := str(obj["field"], fat, "the field")
	if err != nil {
		return nil, err
	}
	isProperty := strings.HasPrefix(name, propertiesPrefix)
	f, known := w.Catalog.Lookup(name)
	switch {
	case isProperty != sc.event:
		if sc.event {
			return nil, errorf(fat, "an event's where can only use properties.<name> fields")
		}
		return nil, errorf(fat, "%s is an event property: use it in an event's where", name)
	case !known && isProperty && !propertyName.MatchString(name):
		return nil, errorf(fat, "%q is not a valid property name", name)
	case !known && isProperty:
		f = schema.Field{Name: name, Type: propertyType(obj["value"]), Dynamic: true}
	case !known:
		return nil, errorf(fat, "unknown field %q", name)
	case f.Type == schema.Nested:
		return nil, errorf(fat, "%s is a nested list: use a nested or aggregate node", name)
	case sc.nested != "" && !strings.HasPrefix(name, sc.nested+"."):
		return nil, errorf(fat, "%s is not a field of %s and cannot be used in its where", name, sc.nested)
	}
	op, _ := obj["op"].(string)
	if !f.AllowsOp(op) {
		return nil, errorf(join(at, "op"), "op %q is not allowed on %s field %s: use one of %s",
			op, f.Type, name, strings.Join(f.Ops(), ", "))
	}
	vals, err := operands(obj, at, op, w.limited(op, operand(f.Type, op)))
	if err != nil {
		return nil, err
	}
	if err := w.budget.values(join(at, "value"), len(vals)); err != nil {
		return nil, err
	}
	return &Cond{Field: f, Op: op, Values: vals}, nil
}

// propertyType types an event property missing from the catalog by its
// value, as the index types it on first sight: strings are keywords,
// numbers are numbers, booleans are booleans.
func propertyType(v any) schema.Type {
	if list, ok := v.([]any); ok && len(list) > 0 {
		v = list[0]
	}
	switch v.(type) {
	case json.Number:
		return schema.Number
	case bool:
		return schema.Boolean
	}
	return schema.Keyword
}

// arity is how many operands an operator takes.
type arity int

const (
	none arity = iota
	one
	pair
	many
)

func arityOf(op string) arity {
	switch op {
	case "is_set", "is_not_set":
		return none
	case "between", "not_between":
		return pair
	case "in", "not_in", "has_any", "has_none", "has_all":
		return many
	}
	return one
}

// operandFunc checks and converts one operand.
type operandFunc func(v any, at string) (any, error)

// operands checks the value of a node against the arity of op and converts
// each operand.
func operands(obj map[string]any, at, op string, conv operandFunc) ([]any, error) {
	vat := join(at, "value")
	v, present := obj["value"]
	ar := arityOf(op)
	if ar == none {
		if present && v != nil {
			return nil, errorf(vat, "%s takes no value", op)
		}
		return nil, nil
	}
	if !present || v == nil {
		return nil, errorf(vat, "%s needs a value", op)
	}
	list, isList := v.([]any)
	switch {
	case ar == one && isList:
		return nil, errorf(vat, "%s takes one value, not a list", op)
	case ar == one:
		c, err := conv(v, vat)
		return []any{c}, err
	case !isList && ar == pair:
		return nil, errorf(vat, "%s takes a list [low, high]", op)
	case !isList:
		return nil, errorf(vat, "%s takes a list of values", op)
	case ar == pair && len(list) != 2:
		return nil, errorf(vat, "%s takes a list [low, high] of two values", op)
	case len(list) == 0:
		return nil, errorf(vat, "%s needs at least one value", op)
	case len(list) > MaxValues:
		return nil, errorf(vat, "a list may hold at most %d values", MaxValues)
	}
	out := make([]any, len(list))
	for i, item := range list {
		c, err := conv(item, index(vat, i))
		if err != nil {
			return nil, err
		}
		out[i] = c
	}
	return out, nil
}

// limited wraps conv so that every string operand is checked against the
// filter's limits before it is converted.
func (w *walker) limited(op string, conv operandFunc) operandFunc {
	return func(v any, at string) (any, error) {
		if s, ok := v.(string); ok {
			if err := w.budget.stringValue(at, op, s); err != nil {
				return nil, err
			}
		}
		return conv(v, at)
	}
}

// operand returns the operand converter of a field type and operator.
func operand(t schema.Type, op string) operandFunc {
	switch t {
	case schema.Number:
		return func(v any, at string) (any, error) { return number(v, at) }
	case schema.Boolean:
		return func(v any, at string) (any, error) {
			b, ok := v.(bool)
			if !ok {
				return nil, errorf(at, "the value must be true or false")
			}
			return b, nil
		}
	case schema.Date:
		if op == "in_last" || op == "not_in_last" {
			return func(v any, at string) (any, error) {
				s, _ := v.(string)
				d, ok := parseDuration(s)
				if !ok {
					return nil, errorf(at, "the value must be a duration like 24h or 7d")
				}
				return d, nil
			}
		}
		return func(v any, at string) (any, error) {
			s, _ := v.(string)
			d, ok := parseDate(s)
			if !ok {
				return nil, errorf(at, "the value must be a date, YYYY-MM-DD or RFC 3339, between the years %d and %d", minYear, maxYear)
			}
			return d, nil
		}
	}
	return func(v any, at string) (any, error) {
		s, ok := v.(string)
		if !ok {
			return nil, errorf(at, "the value must be a string")
		}
		return s, nil
	}
}

// maxExponent bounds the exponent of a number as written, so that exact
// arithmetic on it stays cheap.
const maxExponent = 400

// number checks a number operand: a JSON number within the range of a
// double, kept exactly as written.
func number(v any, at string) (json.Number, error) {
	n, ok := v.(json.Number)
	if !ok {
		return "", errorf(at, "the value must be a number")
	}
	_, err := strconv.ParseFloat(string(n), 64)
	if i := strings.IndexAny(string(n), "eE"); i >= 0 && err == nil {
		var exp int
		exp, err = strconv.Atoi(string(n[i+1:]))
		if exp < -maxExponent || exp > maxExponent {
			err = strconv.ErrRange
		}
	}
	if err != nil {
		return "", errorf(at, "the number %s is out of range", n)
	}
	return n, nil
}
