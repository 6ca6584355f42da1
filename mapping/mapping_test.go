package mapping

import (
	"encoding/json"
	"strings"
	"testing"
)

// esTypes are the OpenSearch field types each catalog type may be mapped to.
var esTypes = map[Type][]string{
	Keyword:      {"keyword"},
	KeywordArray: {"keyword"},
	Text:         {"text"},
	Number:       {"double", "long", "scaled_float", "integer"},
	Date:         {"date"},
	Boolean:      {"boolean"},
	Nested:       {"nested"},
}

// systemFields are mapped but not in the catalog: containers, and the
// fields of event documents (join children of customers), which filters
// reach through event nodes.
var systemFields = map[string]bool{
	"identities": true, "identities.type": true, "identities.value": true, "attrs": true, "attrs_unindexed": true, "metrics": true,
	"relation": true, "event_id": true, "type": true, "event": true, "timestamp": true, "received_at": true, "channel": true,
	"user_id": true, "anonymous_id": true, "properties": true, "properties_unindexed": true, "context": true,
}

func properties(t *testing.T, idx Index) map[string]string {
	t.Helper()
	var body struct {
		Mappings map[string]any `json:"mappings"`
	}
	if err := json.Unmarshal(idx.Body(), &body); err != nil {
		t.Fatalf("%s: %v", idx.Name, err)
	}
	out := map[string]string{}
	var walk func(prefix string, props map[string]any)
	walk = func(prefix string, props map[string]any) {
		for name, raw := range props {
			def := raw.(map[string]any)
			path := prefix + name
			typ, _ := def["type"].(string)
			if typ == "" {
				typ = "object"
			}
			out[path] = typ
			if sub, ok := def["properties"].(map[string]any); ok {
				walk(path+".", sub)
			}
		}
	}
	walk("", body.Mappings["properties"].(map[string]any))
	return out
}

func TestEveryCatalogFieldIsMappedWithItsType(t *testing.T) {
	mapped := properties(t, Customers)
	for _, f := range Base().Fields() {
		got, ok := mapped[f.Name]
		if !ok {
			t.Errorf("catalog field %q is not in customers.json", f.Name)
			continue
		}
		if !contains(esTypes[f.Type], got) {
			t.Errorf("field %q: catalog type %s, mapped as %s", f.Name, f.Type, got)
		}
	}
}

func TestEveryMappedFieldIsInTheCatalog(t *testing.T) {
	cat := Base()
	for path := range properties(t, Customers) {
		if _, ok := cat.Lookup(path); !ok && !systemFields[path] {
			t.Errorf("customers.json maps %q, which the catalog does not declare", path)
		}
	}
}

func TestNestedFieldsNameTheirInnermostNestedPath(t *testing.T) {
	for _, f := range Base().Fields() {
		want := ""
		for _, p := range NestedPaths {
			if strings.HasPrefix(f.Name, p+".") {
				want = p
			}
		}
		if f.NestedPath != want {
			t.Errorf("field %q: nested path %q, want %q", f.Name, f.NestedPath, want)
		}
		if want != "" && !f.List {
			t.Errorf("field %q under %q must be a list", f.Name, want)
		}
	}
}

func TestEveryFieldTypeHasOperators(t *testing.T) {
	for _, f := range Base().Fields() {
		if f.Type != Nested && len(f.Ops()) == 0 {
			t.Errorf("field %q of type %s has no operators", f.Name, f.Type)
		}
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

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
