package schema

import (
	"reflect"
	"strings"
	"testing"
)

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
	if !reflect.DeepEqual(NestedPaths, []string{"orders", "orders.items"}) {
		t.Errorf("nested paths %v", NestedPaths)
	}
}

func TestEveryFieldTypeHasOperatorsAndAMapping(t *testing.T) {
	for _, f := range Base().Fields() {
		if f.Type != Nested && len(f.Ops()) == 0 {
			t.Errorf("field %q of type %s has no operators", f.Name, f.Type)
		}
		if f.OpenSearch() == nil {
			t.Errorf("field %q of type %s has no mapping", f.Name, f.Type)
		}
	}
	for t2 := range Operators {
		if TypeMapping(t2) == nil {
			t.Errorf("type %s has operators but no mapping", t2)
		}
	}
}

func TestOnlyDatesAreCalendarDays(t *testing.T) {
	days := []string{}
	for _, f := range Base().Fields() {
		if f.Day {
			days = append(days, f.Name)
			if f.Type != Date {
				t.Errorf("field %q of type %s is marked a calendar day", f.Name, f.Type)
			}
		}
	}
	if !reflect.DeepEqual(days, []string{"birthday"}) {
		t.Errorf("calendar-day fields %v, want [birthday]", days)
	}
}

// TestTheTablesHaveTheContractsColumns checks the CDC tables of CONTRACT
// §1.2 and the type of each column, which tells how it is decoded, in
// order. A field added with a column of its own adds to them.
func TestTheTablesHaveTheContractsColumns(t *testing.T) {
	want := map[string][]Column{
		"customers": {
			{"id", ColString, ""}, {"name", ColString, "name"}, {"gender", ColString, "gender"}, {"birthday", ColDate, "birthday"},
			{"phone", ColString, "phone"}, {"email", ColString, "email"}, {"city", ColString, "city"},
			{"member_level", ColString, "member_level"}, {"store_id", ColString, "store_id"}, {"owner_id", ColString, "owner_id"},
			{"created_at", ColTime, "registered_at"}, {"updated_at", ColTime, ""},
		},
		"orders": {
			{"id", ColString, "orders.order_id"}, {"customer_id", ColString, ""}, {"order_no", ColString, "orders.order_no"},
			{"store_id", ColString, "orders.store_id"}, {"status", ColString, "orders.status"}, {"total_amount", ColNumber, "orders.total_amount"},
			{"created_at", ColTime, "orders.created_at"}, {"paid_at", ColTime, "orders.paid_at"},
		},
		"order_items": {
			{"id", ColString, ""}, {"order_id", ColString, ""}, {"sku", ColString, "orders.items.sku"},
			{"product_name", ColString, "orders.items.product_name"}, {"category", ColString, "orders.items.category"},
			{"quantity", ColNumber, "orders.items.quantity"}, {"price", ColNumber, "orders.items.price"},
		},
	}
	for _, tbl := range Tables {
		got, next := tbl.Columns(), 0
		for _, c := range got {
			if next < len(want[tbl.Name]) && c == want[tbl.Name][next] {
				next++
			}
		}
		if next < len(want[tbl.Name]) {
			t.Errorf("table %s: columns\n%v\nlack %v", tbl.Name, got, want[tbl.Name][next])
		}
		delete(want, tbl.Name)
	}
	for name := range want {
		t.Errorf("no table %s", name)
	}
	if tbl, ok := TableNamed("orders"); !ok || tbl.Leaf("orders.order_no") != "order_no" {
		t.Errorf("TableNamed(orders): %v %v", tbl, ok)
	}
}

func TestEveryColumnIsDeclaredOnceInATable(t *testing.T) {
	paths := map[string]bool{}
	for _, tbl := range Tables {
		paths[tbl.Path] = true
		if tbl.Path != "" {
			if f, ok := Base().Lookup(tbl.Path); !ok || f.Type != Nested {
				t.Errorf("table %s fills %q, which is not a nested field", tbl.Name, tbl.Path)
			}
		}
		seen := map[string]bool{}
		for _, c := range tbl.Columns() {
			if seen[c.Name] {
				t.Errorf("table %s: column %s twice", tbl.Name, c.Name)
			}
			seen[c.Name] = true
		}
	}
	for _, f := range Base().Fields() {
		if f.Column != "" && !paths[f.NestedPath] {
			t.Errorf("field %q names column %s, but no table fills %q", f.Name, f.Column, f.NestedPath)
		}
	}
}

func TestTheDocumentsObjects(t *testing.T) {
	got := Objects()
	want := []string{"identities", "attrs", "attrs_unindexed", "metrics", "orders"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("objects %v, want %v", got, want)
	}
}

func TestTheDynamicTemplatesCoverEachObject(t *testing.T) {
	for _, o := range DynamicObjects {
		for _, tpl := range o.Templates() {
			for name, def := range tpl {
				if !strings.HasPrefix(name, o.Template+"_") || def.(map[string]any)["path_match"] != o.Name+".*" {
					t.Errorf("template %s: %v", name, def)
				}
			}
		}
	}
	if AttrsPrefix != Attrs.Prefix() {
		t.Errorf("AttrsPrefix %q, attrs prefix %q", AttrsPrefix, Attrs.Prefix())
	}
}
