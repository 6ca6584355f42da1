package customer

import (
	"reflect"
	"testing"

	"cdp/schema"
)

// TestTheColumnsComeFromTheSchema checks what the builder takes from
// package schema: which columns and traits set root fields (at least those
// of CONTRACT §1.1), and how order and item rows fill their objects.
func TestTheColumnsComeFromTheSchema(t *testing.T) {
	for _, f := range []string{"name", "gender", "birthday", "phone", "email", "city", "member_level", "store_id", "owner_id"} {
		if !IsProfileField(f) {
			t.Errorf("%s is not a profile field (all: %v)", f, ProfileFields)
		}
	}
	for _, f := range ProfileFields {
		if fd, ok := schema.Base().Lookup(f); !ok || fd.Column != f || fd.NestedPath != "" {
			t.Errorf("profile field %s is not a root field set by its column: %+v", f, fd)
		}
	}
	if len(renamedColumns) != 1 || renamedColumns[0].Name != "created_at" || renamedColumns[0].Field != "registered_at" {
		t.Errorf("renamed columns %v, want created_at → registered_at", renamedColumns)
	}
	for _, c := range append([]string{"id", "created_at", "updated_at"}, ProfileFields...) {
		if !customerColumns[c] {
			t.Errorf("column %s would go under attrs", c)
		}
	}
	if len(customerColumns) != len(ProfileFields)+3 {
		t.Errorf("customer columns %v", customerColumns)
	}
	o := map[string]any{}
	orderFields.fill(o, Row{Key: "o1", Data: map[string]any{"order_no": "N1", "total_amount": 9.5, "customer_id": "1", "extra": 1, "paid_at": nil}})
	if want := map[string]any{"order_id": "o1", "order_no": "N1", "total_amount": 9.5}; !reflect.DeepEqual(o, want) {
		t.Errorf("order object %v, want %v", o, want)
	}
	it := map[string]any{}
	itemFields.fill(it, Row{Key: "i1", Data: map[string]any{"sku": "p-7", "order_id": "o1", "price": 3.0}})
	if want := map[string]any{"sku": "p-7", "price": 3.0}; !reflect.DeepEqual(it, want) {
		t.Errorf("item object %v, want %v", it, want)
	}
}
