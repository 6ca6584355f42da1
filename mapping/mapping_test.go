package mapping

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"cdp/schema"
)

// esTypes are the OpenSearch field types each catalog type may be mapped to.
var esTypes = map[schema.Type][]string{
	schema.Keyword:      {"keyword"},
	schema.KeywordArray: {"keyword"},
	schema.Text:         {"text"},
	schema.Number:       {"double", "long", "scaled_float", "integer"},
	schema.Date:         {"date"},
	schema.Boolean:      {"boolean"},
	schema.Nested:       {"nested"},
}

// fileFields are what customers.json maps itself, outside the schema: the
// identities, and the fields of event documents (join children of
// customers), which filters reach through event nodes, with their types.
var fileFields = map[string]string{
	schema.Identities: "nested", schema.Identities + ".type": "keyword", schema.Identities + ".value": "keyword",
	"event_id": "keyword", "type": "keyword", schema.EventNameField: "keyword", schema.EventTimeField: "date", "received_at": "date",
	"channel": "keyword", "user_id": "keyword", "anonymous_id": "keyword", "context": "object",
}

type mappings struct {
	Properties       map[string]any   `json:"properties"`
	DynamicTemplates []map[string]any `json:"dynamic_templates"`
}

func decode(t *testing.T, b []byte) mappings {
	t.Helper()
	var body struct {
		Mappings mappings `json:"mappings"`
	}
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatal(err)
	}
	return body.Mappings
}

// flatten returns every mapped path with its definition.
func flatten(props map[string]any) map[string]map[string]any {
	out := map[string]map[string]any{}
	var walk func(prefix string, props map[string]any)
	walk = func(prefix string, props map[string]any) {
		for name, raw := range props {
			def := raw.(map[string]any)
			out[prefix+name] = def
			if sub, ok := def["properties"].(map[string]any); ok {
				walk(prefix+name+".", sub)
			}
		}
	}
	walk("", props)
	return out
}

func typeOf(def map[string]any) string {
	if t, ok := def["type"].(string); ok {
		return t
	}
	return "object"
}

// roundTrip gives a mapping as it reads back from JSON.
func roundTrip(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestEverySchemaFieldIsMappedAsItDeclares(t *testing.T) {
	mapped := flatten(decode(t, Customers.Body()).Properties)
	for _, f := range schema.Base().Fields() {
		def, ok := mapped[f.Name]
		if !ok {
			t.Errorf("schema field %q is not mapped", f.Name)
			continue
		}
		if !slices.Contains(esTypes[f.Type], typeOf(def)) {
			t.Errorf("field %q: schema type %s, mapped as %s", f.Name, f.Type, typeOf(def))
		}
		delete(def, "properties") // a nested field's children are checked on their own
		if want := roundTrip(t, f.OpenSearch()); !reflect.DeepEqual(roundTrip(t, def), want) {
			t.Errorf("field %q is mapped as %v, the schema says %v", f.Name, def, want)
		}
	}
}

func TestEveryMappedFieldIsDeclaredOnce(t *testing.T) {
	cat := schema.Base()
	known := map[string]bool{schema.JoinField: true, schema.RebuildField: true}
	for _, o := range schema.DynamicObjects {
		known[o.Name], known[o.Unindexed()] = true, true
	}
	for path, def := range flatten(decode(t, Customers.Body()).Properties) {
		_, inSchema := cat.Lookup(path)
		_, inFile := fileFields[path]
		container := typeOf(def) == "object" && def["properties"] != nil && !inFile
		if n := btoi(inSchema) + btoi(inFile) + btoi(known[path]); n > 1 || n == 0 && !container {
			t.Errorf("%q is mapped; the schema declares it: %v, customers.json: %v, generated: %v", path, inSchema, inFile, known[path])
		}
		if inFile && typeOf(def) != fileFields[path] {
			t.Errorf("%q is mapped as %s, want %s", path, typeOf(def), fileFields[path])
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestTheFileLeavesTheSchemaToTheSchema keeps customers.json from
// restating what is generated: a field declared in both places would be
// two declarations to keep in step.
func TestTheFileLeavesTheSchemaToTheSchema(t *testing.T) {
	raw, err := files.ReadFile(Customers.file)
	if err != nil {
		t.Fatal(err)
	}
	file := decode(t, raw)
	if len(file.DynamicTemplates) != 0 {
		t.Errorf("customers.json has dynamic templates: they are generated from schema.DynamicObjects")
	}
	for path := range flatten(file.Properties) {
		if _, ok := fileFields[path]; !ok {
			t.Errorf("customers.json maps %q: declare it in package schema", path)
		}
	}
	for path := range fileFields {
		if _, ok := flatten(file.Properties)[path]; !ok {
			t.Errorf("customers.json does not map %q", path)
		}
	}
}

func TestTheDynamicTemplatesMapAsTheSchemaDoes(t *testing.T) {
	got := decode(t, Customers.Body()).DynamicTemplates
	var want []map[string]any
	for _, o := range schema.DynamicObjects {
		want = append(want, o.Templates()...)
	}
	if !reflect.DeepEqual(roundTrip(t, got), roundTrip(t, want)) {
		t.Fatalf("dynamic templates\n%v\nwant\n%v", got, want)
	}
	// A dynamic key of each JSON type is mapped as a declared field of
	// the type the indexer gives it.
	byMatch := map[string]schema.Type{"string": schema.Keyword, "long": schema.Number, "double": schema.Number, "boolean": schema.Boolean}
	for _, tpl := range got {
		for name, raw := range tpl {
			def := raw.(map[string]any)
			typ, ok := byMatch[def["match_mapping_type"].(string)]
			if !ok {
				t.Errorf("template %s: unexpected match_mapping_type %v", name, def["match_mapping_type"])
				continue
			}
			if !reflect.DeepEqual(def["mapping"], roundTrip(t, schema.TypeMapping(typ))) {
				t.Errorf("template %s maps %v, a declared %s field %v", name, def["mapping"], typ, schema.TypeMapping(typ))
			}
		}
	}
}

func TestTheJoinFieldIsTheSchemas(t *testing.T) {
	def := flatten(decode(t, Customers.Body()).Properties)[schema.JoinField]
	if !reflect.DeepEqual(roundTrip(t, def), roundTrip(t, schema.JoinMapping())) {
		t.Fatalf("%s is mapped as %v", schema.JoinField, def)
	}
	if def["relations"].(map[string]any)[schema.CustomerRelation] != schema.EventRelation {
		t.Fatalf("join relations %v", def["relations"])
	}
}

func TestCreateBodyAddsTheAlias(t *testing.T) {
	for _, idx := range All {
		b, err := idx.CreateBody("t1")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), `"t1-`+idx.Name+`":{`) {
			t.Errorf("%s: alias missing in %s", idx.Name, b[:80])
		}
	}
}

func TestTheEventsViewSharesTheCustomersIndex(t *testing.T) {
	if Events.Physical("p") != Customers.Physical("p") || Events.Alias("p") != "p-events" || Customers.Alias("p") != "p-customers" {
		t.Fatalf("events view: physical %s alias %s", Events.Physical("p"), Events.Alias("p"))
	}
	b, _ := Customers.CreateBody("p")
	for _, want := range []string{`"p-customers":{"filter":{"term":{"relation":"customer"}}}`, `"p-events":{"filter":{"term":{"relation":"event"}}}`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("create body lacks %s", want)
		}
	}
}

func TestAFieldDeclaredTwiceIsAnError(t *testing.T) {
	m := map[string]any{"properties": map[string]any{"birthday": map[string]any{"type": "date"}}}
	if err := customerMappings(m); err == nil || !strings.Contains(err.Error(), "birthday") {
		t.Fatalf("a file mapping birthday too: %v", err)
	}
}

func TestTheGramsAnalyzerIsDeclaredWithTheSchemasGramSize(t *testing.T) {
	var body struct {
		Settings struct {
			Analysis struct {
				Tokenizer map[string]struct {
					Type  string   `json:"type"`
					Min   int      `json:"min_gram"`
					Max   int      `json:"max_gram"`
					Chars []string `json:"token_chars"`
				} `json:"tokenizer"`
				Analyzer map[string]struct {
					Tokenizer string   `json:"tokenizer"`
					Filter    []string `json:"filter"`
				} `json:"analyzer"`
			} `json:"analysis"`
		} `json:"settings"`
	}
	b, err := Customers.CreateBody("p")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatal(err)
	}
	an, ok := body.Settings.Analysis.Analyzer[schema.GramsAnalyzer]
	if !ok {
		t.Fatalf("the index settings declare no analyzer %q", schema.GramsAnalyzer)
	}
	tok := body.Settings.Analysis.Tokenizer[an.Tokenizer]
	// Every character is part of a gram (no token_chars), grams of exactly
	// GramSize characters, lowercased as the .lc normalizer does.
	if tok.Type != "ngram" || tok.Min != schema.GramSize || tok.Max != schema.GramSize || len(tok.Chars) != 0 || !slices.Equal(an.Filter, []string{"lowercase"}) {
		t.Errorf("analyzer %s: tokenizer %+v, filters %v; want ngram of %d over every character, lowercased", schema.GramsAnalyzer, tok, an.Filter, schema.GramSize)
	}
}
