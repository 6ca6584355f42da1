package indexer

import (
	"reflect"
	"testing"
	"time"

	"cdp/customer"
	"cdp/identity"
	"cdp/wire"
)

func TestEveryCDCTopicIsReadAsItsSourceTableIntoRowsOfItsKind(t *testing.T) {
	tests := []struct{ topic, table, kind string }{
		{TopicCustomers, wire.TableCustomers, customer.KindCustomer},
		{TopicOrders, wire.TableOrders, customer.KindOrder},
		{TopicOrderItems, wire.TableOrderItems, customer.KindItem},
	}
	for _, tt := range tests {
		t.Run(tt.topic, func(t *testing.T) {
			c, err := parseChange(tt.topic, []byte("7"), []byte(`{"after":{"id":7,"customer_id":1,"order_id":2},"source":{"ts_ms":1},"op":"c"}`))
			if err != nil {
				t.Fatal(err)
			}
			if c.Table != tt.table || c.Kind != tt.kind || c.Key != "7" {
				t.Fatalf("table %q kind %q key %q, want %q %q 7", c.Table, c.Kind, c.Key, tt.table, tt.kind)
			}
		})
	}
	if len(cdcTables) != len(tests) {
		t.Errorf("%d CDC topics mapped, %d tested", len(cdcTables), len(tests))
	}
	if _, err := parseChange(TopicEvents, nil, []byte(`{}`)); err == nil {
		t.Error("the events topic was read as a CDC table")
	}
}

func TestAnEventsIdentitiesAreTheResolversIdentityTypes(t *testing.T) {
	for _, tt := range []struct{ wire, resolver string }{
		{wire.CRMID, identity.CRMID},
		{wire.AnonymousID, identity.AnonymousID},
		{wire.Phone, identity.Phone},
		{wire.Email, identity.Email},
	} {
		if tt.wire != tt.resolver {
			t.Errorf("wire names the identity type %q, the resolver %q", tt.wire, tt.resolver)
		}
	}
	e, err := wire.ParseEvent([]byte(`{"type":"alias","userId":"1001","previousId":"dev-1"}`), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	want := []identity.Identity{{Type: identity.CRMID, Value: "1001"}, {Type: identity.AnonymousID, Value: "dev-1"}}
	if got := identities(nil, e); !reflect.DeepEqual(got, want) {
		t.Errorf("identities = %v, want %v", got, want)
	}
}

func TestTheIdentitiesThatLinkAreNormalizedUnblockedAndInPriorityOrder(t *testing.T) {
	tests := []struct {
		name, msg string
		want      []identity.Identity
	}{
		{"an identify with phone and email traits",
			`{"type":"identify","userId":"1001","anonymousId":"dev-9","traits":{"email":" Zhang@Example.com ","phone":"138 0000 0000"}}`,
			[]identity.Identity{{Type: "crm_id", Value: "1001"}, {Type: "phone", Value: "+8613800000000"},
				{Type: "email", Value: "zhang@example.com"}, {Type: "anonymous_id", Value: "dev-9"}}},
		{"a new device with a known phone",
			`{"type":"identify","anonymousId":"dev-9","traits":{"phone":"13800000000"}}`,
			[]identity.Identity{{Type: "phone", Value: "+8613800000000"}, {Type: "anonymous_id", Value: "dev-9"}}},
		{"blocked values link nobody",
			`{"type":"identify","userId":"1001","anonymousId":"anonymous","traits":{"phone":"00000000000","email":"null"}}`,
			[]identity.Identity{{Type: "crm_id", Value: "1001"}}},
		{"a blocked device alone links nothing",
			`{"type":"track","event":"x","anonymousId":"undefined"}`,
			[]identity.Identity{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := wire.ParseEvent([]byte(tt.msg), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if got := identities(nil, e); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("identities = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestACustomersRowLinksItsIdWithItsPhoneAndEmailUnlessItsIdIsBlocked(t *testing.T) {
	tests := []struct {
		name, id string
		data     map[string]any
		want     []identity.Identity
	}{
		{"id, phone and email", "1001", map[string]any{"phone": "13800000000", "email": "A@B.com", "name": "x"},
			[]identity.Identity{{Type: "crm_id", Value: "1001"}, {Type: "phone", Value: "+8613800000000"}, {Type: "email", Value: "a@b.com"}}},
		{"a blocked phone stays data", "1001", map[string]any{"phone": "11111111111", "email": nil},
			[]identity.Identity{{Type: "crm_id", Value: "1001"}}},
		{"a blocked id links not even its phone", "0", map[string]any{"phone": "13800000000"}, nil},
		{"a delete or an order links the id alone", "1001", nil, []identity.Identity{{Type: "crm_id", Value: "1001"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := customerIdentities(nil, tt.id, tt.data); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("customerIdentities = %v, want %v", got, tt.want)
			}
		})
	}
}
