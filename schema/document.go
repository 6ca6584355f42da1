package schema

// A keyword's contains and not_contains match its lowercased value's
// character trigrams, indexed in the subfield GramsSubfield by the
// analyzer GramsAnalyzer (declared in the index settings), as a phrase:
// the trigrams of the value at consecutive positions are the value as a
// substring. Looking up a few terms and their positions costs little,
// where a wildcard *value* builds an automaton and runs it over every
// term of the field. Values shorter than GramSize have no trigram and
// use the wildcard, whose automaton is then tiny.
const (
	GramsSubfield = "grams"
	GramsAnalyzer = "grams3"
	GramSize      = 3
)

// TypeMapping returns the OpenSearch mapping of a field of type t: what a
// base field of that type is mapped as unless it sets Field.Mapping, and
// what a dynamic field (attrs.<key>, properties.<key>) of that type is
// mapped as, by the dynamic templates or when declared or discovered.
// It is nil for Nested, and for a type no field may have.
func TypeMapping(t Type) map[string]any {
	switch t {
	case Keyword, KeywordArray:
		return map[string]any{"type": "keyword", "ignore_above": 4096,
			"fields": map[string]any{
				"lc":          map[string]any{"type": "keyword", "normalizer": "lc", "ignore_above": 4096},
				GramsSubfield: map[string]any{"type": "text", "analyzer": GramsAnalyzer, "norms": false},
			}}
	case Text:
		return map[string]any{"type": "text", "analyzer": "cjk"}
	case Number:
		return map[string]any{"type": "double"}
	case Date:
		return map[string]any{"type": "date", "format": "strict_date_optional_time||epoch_millis"}
	case Boolean:
		return map[string]any{"type": "boolean"}
	}
	return nil
}

// DynamicObject is an object of free keys: a customer's attrs or an
// event's properties. Its keys are typed by their first value; a key that
// cannot be mapped (over the limit, or of another type than its mapping)
// moves to the object's unindexed twin.
type DynamicObject struct {
	// Name is the object's path from the document root.
	Name string
	// Template prefixes the names of its dynamic templates.
	Template string
	// Event is true for an object of event documents.
	Event bool
}

// The dynamic objects.
var (
	Attrs      = DynamicObject{Name: "attrs", Template: "attrs"}
	Properties = DynamicObject{Name: "properties", Template: "props", Event: true}

	DynamicObjects = []DynamicObject{Attrs, Properties}
)

// AttrsPrefix is the path under which dynamic business fields live.
const AttrsPrefix = "attrs."

// Prefix is the path prefix of the object's keys ("attrs.").
func (o DynamicObject) Prefix() string { return o.Name + "." }

// Unindexed is the path of the object's unindexed twin.
func (o DynamicObject) Unindexed() string { return o.Name + "_unindexed" }

// dynamicTypes are the types OpenSearch's dynamic mapping detects in a
// JSON value (match_mapping_type) and the field type each is mapped as, in
// the order of the dynamic templates.
var dynamicTypes = []struct {
	match, plural string
	t             Type
}{
	{"string", "strings", Keyword},
	{"long", "longs", Number},
	{"double", "doubles", Number},
	{"boolean", "booleans", Boolean},
}

// Templates returns the object's dynamic templates: each JSON type of a
// new key mapped as TypeMapping of its field type.
func (o DynamicObject) Templates() []map[string]any {
	out := make([]map[string]any, 0, len(dynamicTypes))
	for _, d := range dynamicTypes {
		out = append(out, map[string]any{o.Template + "_" + d.plural: map[string]any{
			"path_match": o.Prefix() + "*", "match_mapping_type": d.match, "mapping": TypeMapping(d.t),
		}})
	}
	return out
}

// Identities is the nested list of a customer's identities (package
// identity), mapped by mapping/customers.json: filters do not reach it.
const Identities = "identities"

// The parent-child join of the customers index: every customer document
// has JoinField set to CustomerRelation; every event is a child document
// with JoinField {"name": EventRelation, "parent": <customer_id>}, routed
// to its customer, holding EventNameField, EventTimeField and
// properties.<name> fields.
const (
	JoinField        = "relation"
	CustomerRelation = "customer"
	EventRelation    = "event"
	EventNameField   = "event"
	EventTimeField   = "timestamp"
)

// RebuildField holds, in a customer document, what the indexer built it
// from (the ids of its rows, and a hash of the document), so that the
// next rebuild reads those rows by id rather than searching for them. It
// is stored, not indexed, and no answer of the API shows it.
const RebuildField = "rebuild"

// RebuildMapping is the OpenSearch mapping of RebuildField.
func RebuildMapping() map[string]any { return map[string]any{"type": "object", "enabled": false} }

// Internal are the customer document's fields for the service's own use:
// answers leave them out of the documents they return.
var Internal = []string{JoinField, RebuildField}

// JoinMapping is the OpenSearch mapping of JoinField.
func JoinMapping() map[string]any {
	return map[string]any{"type": "join", "relations": map[string]any{CustomerRelation: EventRelation}}
}

// EventJoin is the JoinField value of an event of the customer parent.
func EventJoin(parent string) map[string]any {
	return map[string]any{"name": EventRelation, "parent": parent}
}

// Objects are the top-level objects of the customer document: those of
// the base fields (metrics, orders), the identities and the attrs with
// their unindexed twin. A search may project any of them.
func Objects() []string {
	out := []string{Identities, Attrs.Name, Attrs.Unindexed()}
	for _, f := range base {
		if i := indexDot(f.Name); i > 0 && !contains(out, f.Name[:i]) {
			out = append(out, f.Name[:i])
		}
	}
	return out
}

func indexDot(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			return i
		}
	}
	return -1
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
