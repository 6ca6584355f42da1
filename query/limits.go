package query

// Limits bound what one filter may ask of OpenSearch, so that no single
// request can exhaust its heap or trip its circuit breakers (a count with
// 500 long contains conditions once built wildcard automata until the node
// died). They are checked by the parser, over the filter as expanded
// (saved segments included), and every rejection is an *Error with the
// path of the node that crossed the limit. A zero field takes its
// default.
type Limits struct {
	// MaxStringBytes bounds one string value of a condition.
	MaxStringBytes int
	// MaxPatternChars bounds one contains, not_contains or starts_with
	// value, in characters.
	MaxPatternChars int
	// MaxConditions bounds the leaf conditions (field, aggregate and event
	// nodes) of the whole filter.
	MaxConditions int
	// MaxPatternWork bounds the characters of every contains,
	// not_contains and starts_with value of the filter together: each one
	// is matched against the terms of the field, so their cost adds up.
	MaxPatternWork int
	// MaxTerms bounds the values of every condition of the filter
	// together.
	MaxTerms int
}

// DefaultLimits are the limits a zero Limits field takes.
var DefaultLimits = Limits{
	MaxStringBytes:  1024,
	MaxPatternChars: 100,
	MaxConditions:   200,
	MaxPatternWork:  2000,
	MaxTerms:        10000,
}

// withDefaults returns l with every zero field set to its default.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	if l.MaxStringBytes > 0 {
		d.MaxStringBytes = l.MaxStringBytes
	}
	if l.MaxPatternChars > 0 {
		d.MaxPatternChars = l.MaxPatternChars
	}
	if l.MaxConditions > 0 {
		d.MaxConditions = l.MaxConditions
	}
	if l.MaxPatternWork > 0 {
		d.MaxPatternWork = l.MaxPatternWork
	}
	if l.MaxTerms > 0 {
		d.MaxTerms = l.MaxTerms
	}
	return d
}

// budget is what a filter has spent of its limits so far; one budget is
// shared by a filter and the segments it expands.
type budget struct {
	Limits
	conditions, patternWork, terms int
}

// condition spends one leaf condition at the node at.
func (b *budget) condition(at string) error {
	b.conditions++
	if b.conditions > b.MaxConditions {
		return errorf(at, "a filter may hold at most %d conditions, saved segments included", b.MaxConditions)
	}
	return nil
}

// values spends n values at at.
func (b *budget) values(at string, n int) error {
	b.terms += n
	if b.terms > b.MaxTerms {
		return errorf(at, "a filter may hold at most %d values in all its conditions, saved segments included", b.MaxTerms)
	}
	return nil
}

// isPattern reports whether op matches a value inside the terms of a field.
func isPattern(op string) bool {
	return op == "contains" || op == "not_contains" || op == "starts_with"
}

// stringValue checks one string value of op at at.
func (b *budget) stringValue(at, op, s string) error {
	if len(s) > b.MaxStringBytes {
		return errorf(at, "a value may be at most %d bytes long, this one is %d", b.MaxStringBytes, len(s))
	}
	if !isPattern(op) {
		return nil
	}
	n := len([]rune(s))
	if n > b.MaxPatternChars {
		return errorf(at, "a %s value may be at most %d characters long, this one is %d", op, b.MaxPatternChars, n)
	}
	b.patternWork += n
	if b.patternWork > b.MaxPatternWork {
		return errorf(at, "the contains, not_contains and starts_with values of a filter may add up to at most %d characters", b.MaxPatternWork)
	}
	return nil
}
