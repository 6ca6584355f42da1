// Package schema declares the customer document once: every field with
// its path, labels and type, whether a date is a calendar day or an
// instant, whether it is a list or lives under a nested path, the source
// column that sets it, the join of customers and their events, and the
// OpenSearch mapping of each type, dynamic ones included.
//
// Everything else derives from it: package mapping generates the customer
// index's field mappings and dynamic templates from it, package catalog
// adds the dynamic fields to its Base catalog, filter validation and
// GET /v1/fields read that catalog, the document builder (package
// customer) takes the columns it copies from it, and the CDC decoder types
// the source columns with Tables. Adding a field to the document is one
// entry in base (fields.go).
package schema

import "sort"

// Type is the filter-language type of a field (CONTRACT §2 and §3.1).
type Type string

// The field types of the filter language.
const (
	Keyword      Type = "keyword"
	Text         Type = "text"
	Number       Type = "number"
	Date         Type = "date"
	Boolean      Type = "boolean"
	KeywordArray Type = "keyword_array"
	Nested       Type = "nested"
)

// Operators lists the filter operators allowed for each type, in the order
// the contract gives them.
var Operators = map[Type][]string{
	Keyword:      {"eq", "neq", "in", "not_in", "contains", "not_contains", "starts_with", "is_set", "is_not_set"},
	Text:         {"matches", "not_matches", "is_set", "is_not_set"},
	Number:       {"eq", "neq", "gt", "gte", "lt", "lte", "between", "not_between", "in", "not_in", "is_set", "is_not_set"},
	Date:         {"on", "not_on", "before", "after", "between", "not_between", "in_last", "not_in_last", "is_set", "is_not_set"},
	Boolean:      {"eq", "neq", "is_set", "is_not_set"},
	KeywordArray: {"eq", "has_any", "in", "neq", "has_none", "not_in", "has_all", "is_set", "is_not_set"},
}

// Label is a field's display name in Chinese and English.
type Label struct {
	ZH string `json:"zh"`
	EN string `json:"en"`
}

// Candidate is one allowed value of a field with its display names.
type Candidate struct {
	Value string `json:"value"`
	Label Label  `json:"label"`
}

// Field is one entry of the catalog. The fields tagged json:"-" are the
// schema's own: they are neither stored with dynamic fields nor shown by
// GET /v1/fields.
type Field struct {
	// Name is the full path from the document root, e.g. "orders.items.sku".
	Name  string `json:"name"`
	Label Label  `json:"label"`
	Type  Type   `json:"type"`
	// NestedPath is the innermost nested object the field lives in
	// ("orders" or "orders.items"), empty for root fields. For a field of
	// type Nested it is the path of the enclosing nested object, if any.
	NestedPath string `json:"nested,omitempty"`
	// List is true when the field can hold several values in one document:
	// keyword arrays and every field under a nested path.
	List bool `json:"list"`
	// Candidates are the declared values, if the field has a closed set.
	Candidates []Candidate `json:"candidates,omitempty"`
	// Sortable fields may be used in a search request's sort.
	Sortable bool `json:"sortable"`
	// Dynamic marks business fields under attrs.* declared at run time or
	// discovered at ingestion.
	Dynamic bool `json:"dynamic,omitempty"`
	// Default is the value a form pre-fills, if any.
	Default any `json:"default,omitempty"`

	// Day marks a Date field holding a calendar day without a time of day
	// ("1990-05-01", a birthday) rather than an instant. OpenSearch stores
	// a day as midnight UTC, so filters compute its day boundaries in UTC.
	Day bool `json:"-"`
	// Column is the source column that sets the field, in the table whose
	// rows fill the field's nested path (see Tables); "" for a field no
	// column sets (metrics, the document's own times).
	Column string `json:"-"`
	// Mapping replaces the OpenSearch mapping of the field's type
	// (TypeMapping), for a field with extra subfields or a narrower
	// number type.
	Mapping map[string]any `json:"-"`
}

// OpenSearch returns the field's OpenSearch mapping: Mapping, else that of
// its type. A Nested field's is the bare nested object.
func (f Field) OpenSearch() map[string]any {
	if f.Mapping != nil {
		return f.Mapping
	}
	if f.Type == Nested {
		return map[string]any{"type": "nested"}
	}
	return TypeMapping(f.Type)
}

// Ops returns the operators allowed on the field.
func (f Field) Ops() []string { return Operators[f.Type] }

// AllowsOp reports whether op may be used on the field.
func (f Field) AllowsOp(op string) bool {
	for _, o := range Operators[f.Type] {
		if o == op {
			return true
		}
	}
	return false
}

// Catalog is a set of fields looked up by full path. The zero value is
// empty; Base returns the fixed catalog.
type Catalog struct {
	fields map[string]Field
}

// Base returns a catalog holding the fixed fields of the customer document.
func Base() *Catalog {
	c := &Catalog{fields: make(map[string]Field, len(base))}
	for _, f := range base {
		c.fields[f.Name] = f
	}
	return c
}

// Lookup returns the field named by its full path.
func (c *Catalog) Lookup(name string) (Field, bool) {
	f, ok := c.fields[name]
	return f, ok
}

// With returns a copy of the catalog that also holds the given fields
// (dynamic attrs fields, event properties).
func (c *Catalog) With(fields ...Field) *Catalog {
	n := &Catalog{fields: make(map[string]Field, len(c.fields)+len(fields))}
	for k, v := range c.fields {
		n.fields[k] = v
	}
	for _, f := range fields {
		n.fields[f.Name] = f
	}
	return n
}

// Fields returns every field, sorted by name.
func (c *Catalog) Fields() []Field {
	out := make([]Field, 0, len(c.fields))
	for _, f := range c.fields {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// NestedPaths are the nested objects of the customer document, outermost
// first: the base fields of type Nested.
var NestedPaths = nestedPaths()

func nestedPaths() []string {
	var out []string
	for _, f := range base {
		if f.Type == Nested {
			out = append(out, f.Name)
		}
	}
	sort.Strings(out) // a path sorts before the paths under it
	return out
}
