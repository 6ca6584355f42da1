// Package query parses the filter language of CONTRACT §3 and translates it
// into OpenSearch queries over the customers index.
//
// Parse (or Parser.Parse) decodes a filter, keeping numbers exactly as
// written, and validates it against the field catalog into a tree of
// Filter nodes; every validation error is an *Error with the code
// invalid_filter and the path of the offending node or key, e.g.
// "all[2].value". Translate turns a Filter into a dsl.Query. The package
// querytest holds an independent evaluator of the same tree, and the
// differential test checks the two against each other on a real
// OpenSearch.
//
// # Missing values and negation
//
// A positive operator becomes a query that cannot match a missing, null or
// empty field (term, terms, range, wildcard, prefix, match, exists). Every
// negative operator is bool must_not of its positive twin, so it matches
// exactly the rest, missing fields included; not is must_not too. A bare
// must_not matches every document of the index, and events are documents
// of the customers index too (see Events), so Translate always adds the
// filter JoinField = CustomerRelation at the top.
//
// # Lists and nested objects
//
// Each condition is translated at a nested path: "" at the customer level,
// or the path of the nested node (or aggregate) whose where it is in. A
// field whose nested path lies deeper than that is a list there: its
// positive query is wrapped in a nested query on the field's own path
// (orders.items straight from the root, for instance), so that one element
// on its own must satisfy it, and its negative twin is the must_not of
// that, the complement at the level where the condition stands: among
// customers at the top, among the orders of a customer inside an orders
// where.
//
// A nested node translates its whole where at the node's path, inside one
// nested query, so that all its conditions hold in the same element, and a
// not or a negative operator in it is a complement among the elements:
//
//	any:  nested(where)
//	none: must_not nested(where)
//	all:  nested(match_all) and must_not nested(must_not where)
//
// # Dates
//
// on, before, after and date between compare calendar days in
// Options.Location. The day boundaries are computed in Go with time.Date,
// so that days of 23 or 25 hours are right, and a day whose midnight a
// clock change skips starts when the skipped hour ends; the query holds
// explicit RFC 3339 instants in UTC: on d is [start(d), start(d+1)),
// before d is < start(d), after d is ≥ start(d+1), between [a, b] is
// [start(a), start(b+1)). A date operand written in RFC 3339 names the
// day the instant falls on in the time zone. Fields holding calendar days
// without a time (birthday) are stored by OpenSearch as midnight UTC, so
// their boundaries are computed in UTC: a birthday is the same day in
// every time zone. The catalog carries this as a property of the field
// (schema.Field.Day).
//
// in_last and within are the closed window [now − n, now]: n hours are
// exact hours, n days end at the same wall-clock time n days earlier in the
// time zone. Now comes from Options, truncated to the millisecond (the API
// passes the request's time truncated to the second, so that a filter
// repeated within a second is one cacheable query).
//
// # Keywords and text
//
// eq, neq, in and not_in are exact on the keyword field. contains,
// not_contains and starts_with are case-insensitive, with the value
// lowercased. starts_with is a prefix on the field's .lc subfield (a
// lowercase normalizer). contains of three characters or more is a
// match_phrase on the .grams subfield, the lowercased character trigrams
// of the value at consecutive positions, which hold exactly where the
// value is a substring (schema.GramsSubfield); shorter values are a
// wildcard on .lc with *, ? and \ escaped, whose automaton is then tiny.
// On 100,000 customers the phrase answered one 6-letter contains in a
// fifth of the wildcard's time, and 20 of 100 letters in a third
// (BenchmarkContainsOnOpenSearch).
// matches is a match query with operator and: every word the field's
// analyzer makes of the value must appear; a value of stop words only
// makes no word and matches nothing.
//
// # Aggregates
//
// OpenSearch has no query for "at least n nested objects"; every aggregate
// is written with three queries on its value v (v ≥ t, v > t, v is set)
// and complements: v < t is "set and not v ≥ t", eq is "≥ t and not > t",
// and so on, so that a missing value (avg, min, max of no element) only
// matches the negative operators.
//
// count: each element in where scores 1 (constant_score), the nested query
// sums the scores (score_mode sum), and function_score min_score n keeps
// the customers with count ≥ n. Scores are float32, exact for whole
// numbers up to 2^24, more than the nested objects a document may hold.
// Thresholds become whole numbers (> 2.5 is ≥ 3); count ≥ 0 matches every
// customer and count < 1 includes the customers with no element.
//
// min and max are exact, through the existence of elements: max ≥ t when
// some element in where has a value ≥ t; min ≥ t when some element in where
// has a value and none has one < t.
//
// sum and avg use the same scoring with field_value_factor: each element
// scores 100 × its value, and the nested query sums or averages the scores.
// Scores are float32: scaling by 100 makes amounts with up to two decimals
// whole numbers of hundredths, which float32 holds exactly, so sums of
// such amounts are exact up to 167,772.16 (2^24 hundredths) and averages
// exact while a tie needs no more precision than that. Beyond, values
// agree to about seven significant digits, and a value within that of the
// threshold may fall on either side. No exact method exists in the query
// DSL short of scripts that reimplement the filter language. Scores cannot
// be negative (OpenSearch rejects them, and min_score could not test
// them), so elements with a negative value are left out of sum and avg;
// amounts, prices and quantities are never negative in this data model.
// The sum of no element is 0, so sum ≥ t matches every customer for t ≤ 0.
//
// # Events
//
// Events are child documents of their customer in the customers index: a
// join field JoinField with the relation CustomerRelation → EventRelation,
// each event routed to its customer and holding EventNameField (keyword),
// EventTimeField (date) and properties.<name> fields, typed like attrs
// (strings as keyword with a .lc subfield, numbers as double, booleans as
// boolean). An event node counts the children that match its name, window
// and where with has_child: min_children n is count ≥ n, and min_children
// with max_children a range. The count works like the aggregate count, so
// that {"not": {"event": …}}, and count < 1, include the customers without
// events. An event's where uses properties.<name> fields only: the catalog
// given to the Parser lists those seen so far; one it does not list is
// typed by the value it is compared with (a string as keyword, a number as
// number, a boolean as boolean), as the index would type it, so a filter on
// a property no event has sent yet is valid and matches no event.
//
// # Segments
//
// A segment node stands for the filter of a saved segment, which the
// Parser's SegmentResolver returns as JSON and Parse parses in place:
// Translate and the evaluator see the segment's own tree. Without a
// resolver, or for an id it does not know, a segment node is an unknown
// segment (invalid_filter). A segment may refer to other segments, up to
// ten deep and never to itself; an invalid segment filter is reported at
// the segment node.
package query
