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
	if got := identities(e); !reflect.DeepEqual(got, want) {
		t.Errorf("identities = %v, want %v", got, want)
	}
}
