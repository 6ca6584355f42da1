package customer

import (
	"fmt"
	"reflect"
	"testing"

	"cdp/identity"
)

func crmRow(ts int64, deleted bool, data map[string]any) *Row {
	return &Row{RID: "customer:1001", Kind: KindCustomer, Key: "1001", CustomerID: "c1", Pos: ts, TS: ts, Deleted: deleted, Data: data}
}

func TestTheLaterOfCRMAndIdentifyWinsPerField(t *testing.T) {
	s := Sources{
		Customer: crmRow(2000, false, map[string]any{"name": "CRM name", "city": "北京", "phone": "13800000000", "shoe": 42.0}),
		Profile: &Profile{CustomerID: "c1", LastSeen: 3000, Traits: map[string]Trait{
			"name": {V: "SDK name", TS: 3000, MID: "m2"}, // newer: wins
			"city": {V: "上海", TS: 1000, MID: "m1"},       // older: loses
			"shoe": {V: 43.0, TS: 2000, MID: "m1"},       // a tie: the CRM row wins
			"vip":  {V: true, TS: 1000, MID: "m1"},       // only the SDK knows it
		}},
	}
	doc, ok := Build("c1", s)
	if !ok {
		t.Fatal("customer must exist")
	}
	if doc["name"] != "SDK name" || doc["city"] != "北京" || doc["phone"] != "+8613800000000" {
		t.Errorf("profile fields: name %v city %v phone %v", doc["name"], doc["city"], doc["phone"])
	}
	if want := map[string]any{"shoe": 42.0, "vip": true}; !reflect.DeepEqual(doc["attrs"], want) {
		t.Errorf("attrs = %v, want %v", doc["attrs"], want)
	}
	if doc["updated_at"] != "1970-01-01T00:00:03.000Z" {
		t.Errorf("updated_at = %v, want the latest source time", doc["updated_at"])
	}
}

func TestADeletedCustomerExistsOnlyIfSDKActivityCameAfterTheDelete(t *testing.T) {
	tests := []struct {
		name    string
		profile *Profile
		want    bool
	}{
		{"no SDK profile", nil, false},
		{"SDK activity before the delete", &Profile{LastSeen: 1000}, false},
		{"SDK activity after the delete", &Profile{LastSeen: 9000}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ok := Build("c1", Sources{Customer: crmRow(5000, true, nil), Profile: tt.profile})
			if ok != tt.want {
				t.Fatalf("exists = %v, want %v", ok, tt.want)
			}
		})
	}
	if _, ok := Build("c1", Sources{Orders: []Row{{Key: "o1", Data: map[string]any{"status": "paid"}}}}); ok {
		t.Error("orders alone (their customer not arrived yet) must not make a customer")
	}
}

func TestMetricsCountPaidOrdersOnlyAndAreZeroRatherThanMissing(t *testing.T) {
	s := Sources{Customer: crmRow(1, false, map[string]any{"name": "x"})}
	doc, _ := Build("c1", s)
	if want := map[string]any{"order_count": 0, "total_spend": 0.0}; !reflect.DeepEqual(doc["metrics"], want) {
		t.Fatalf("metrics with no orders = %v, want %v", doc["metrics"], want)
	}
	s.Orders = []Row{
		{Key: "o1", Data: map[string]any{"status": "paid", "total_amount": 0.1, "created_at": "2026-01-02T00:00:00+08:00"}},
		{Key: "o2", Data: map[string]any{"status": "paid", "total_amount": 0.2, "created_at": "2026-01-01T20:00:00Z"}},
		{Key: "o3", Data: map[string]any{"status": "refunded", "total_amount": 100.0, "created_at": "2025-01-01T00:00:00Z"}},
		{Key: "o4", Deleted: true, Data: map[string]any{"status": "paid", "total_amount": 1000.0}},
	}
	s.Items = map[string][]Row{"o1": {{Key: "i2", Data: map[string]any{"sku": "b"}}, {Key: "i1", Data: map[string]any{"sku": "a"}}, {Key: "i3", Deleted: true}}}
	doc, _ = Build("c1", s)
	m := doc["metrics"].(map[string]any)
	if m["order_count"] != 2 || m["total_spend"] != 0.3 {
		t.Errorf("count %v spend %v, want 2 and exactly 0.3", m["order_count"], m["total_spend"])
	}
	if m["first_order_at"] != "2026-01-02T00:00:00+08:00" || m["last_order_at"] != "2026-01-01T20:00:00Z" {
		t.Errorf("first %v last %v: compare instants, not strings", m["first_order_at"], m["last_order_at"])
	}
	orders := doc["orders"].([]map[string]any)
	if len(orders) != 3 || orders[0]["order_id"] != "o2" {
		t.Fatalf("orders = %v, want the 3 live ones, newest first", orders)
	}
	if items := orders[1]["items"].([]map[string]any); len(items) != 2 || items[0]["sku"] != "a" {
		t.Errorf("items of o1 = %v, want the two live ones in key order", items)
	}
}

func TestIdentitiesAreNormalizedAndListedOnce(t *testing.T) {
	s := Sources{
		Customer: crmRow(1, false, map[string]any{"phone": "138 0000 0000", "email": " A@B.com"}),
		Profile:  &Profile{CRMIDs: []string{"1001"}, AnonymousIDs: []string{"dev-1", "dev-1"}},
	}
	doc, _ := Build("c1", s)
	want := []identity.Identity{{Type: "crm_id", Value: "1001"}, {Type: "phone", Value: "+8613800000000"},
		{Type: "email", Value: "a@b.com"}, {Type: "anonymous_id", Value: "dev-1"}}
	if !reflect.DeepEqual(doc["identities"], want) {
		t.Fatalf("identities = %v, want %v", doc["identities"], want)
	}
}

func TestABlockedValueStaysAsDataButIsNoIdentityOfTheDocument(t *testing.T) {
	doc, _ := Build("c1", Sources{
		Customer: crmRow(1, false, map[string]any{"phone": "00000000000", "email": "null"}),
		Profile:  &Profile{CRMIDs: []string{"1001"}, AnonymousIDs: []string{"anonymous", "dev-1"}},
	})
	want := []identity.Identity{{Type: "crm_id", Value: "1001"}, {Type: "anonymous_id", Value: "dev-1"}}
	if !reflect.DeepEqual(doc["identities"], want) {
		t.Errorf("identities = %v, want %v", doc["identities"], want)
	}
	if doc["phone"] != "+860000000000" || doc["email"] != "null" {
		t.Errorf("phone %v email %v: the values are data still", doc["phone"], doc["email"])
	}
}

func TestACustomerPastTheNestedBudgetKeepsItsNewestOrdersAndExactMetrics(t *testing.T) {
	order := func(key, created string, items int) (Row, []Row) {
		o := Row{Key: key, Data: map[string]any{"status": "paid", "total_amount": 1.0, "created_at": created}}
		its := make([]Row, items)
		for i := range its {
			its[i] = Row{Key: fmt.Sprintf("%s-%05d", key, i), Data: map[string]any{"sku": "s"}}
		}
		return o, its
	}
	tests := []struct {
		name      string
		items     []int // per order, oldest first
		wantKept  []string
		wantOmits any
	}{
		{"within the budget: every order", []int{10, 20}, []string{"o1", "o0"}, nil},
		{"exactly the budget: every order", []int{NestedBudget/2 - 1, NestedBudget/2 - 1}, []string{"o1", "o0"}, nil},
		{"past it: the newest orders that fit, whole", []int{4000, 4000, 4000}, []string{"o2", "o1"}, 1},
		{"a newest order alone past it: none", []int{10, NestedBudget}, []string{}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Sources{Customer: crmRow(1, false, map[string]any{"name": "x"}), Items: map[string][]Row{}}
			for i, n := range tt.items {
				o, its := order(fmt.Sprintf("o%d", i), fmt.Sprintf("2026-01-%02dT00:00:00Z", i+1), n)
				s.Orders = append(s.Orders, o)
				s.Items[o.Key] = its
			}
			doc, _ := Build("c1", s)
			var kept []string
			nested := 0
			for _, o := range doc["orders"].([]map[string]any) {
				kept = append(kept, o["order_id"].(string))
				nested += 1 + len(o["items"].([]map[string]any))
			}
			if kept == nil {
				kept = []string{}
			}
			m := doc["metrics"].(map[string]any)
			if !reflect.DeepEqual(kept, tt.wantKept) || nested > NestedBudget {
				t.Errorf("kept orders %v (%d nested objects), want %v", kept, nested, tt.wantKept)
			}
			if m["orders_omitted"] != tt.wantOmits {
				t.Errorf("orders_omitted = %v, want %v", m["orders_omitted"], tt.wantOmits)
			}
			if m["order_count"] != len(tt.items) || m["total_spend"] != float64(len(tt.items)) {
				t.Errorf("metrics %v: they must count every order", m)
			}
		})
	}
}
