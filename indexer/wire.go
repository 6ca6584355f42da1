package indexer

import (
	"fmt"

	"cdp/customer"
	"cdp/identity"
	"cdp/wire"
)

// How the indexer reads the wire formats (package wire) off its topics.

// cdcTables names the source table behind each CDC topic.
var cdcTables = map[string]string{
	TopicCustomers:  wire.TableCustomers,
	TopicOrders:     wire.TableOrders,
	TopicOrderItems: wire.TableOrderItems,
}

// rowKinds gives the row-store kind of each source table's rows.
var rowKinds = map[string]string{
	wire.TableCustomers:  customer.KindCustomer,
	wire.TableOrders:     customer.KindOrder,
	wire.TableOrderItems: customer.KindItem,
}

// change is a decoded CDC change with the kind of the row it writes.
type change struct {
	*wire.Change
	Kind string // customer.KindCustomer, KindOrder or KindItem
}

// parseChange decodes a message of the CDC topic with the given suffix.
// A nil change with a nil error is a tombstone: nothing to apply.
func parseChange(topicSuffix string, key, value []byte) (*change, error) {
	table, ok := cdcTables[topicSuffix]
	if !ok {
		return nil, fmt.Errorf("no CDC table for topic %q", topicSuffix)
	}
	c, err := wire.ParseChange(table, key, value)
	if c == nil || err != nil {
		return nil, err
	}
	return &change{Change: c, Kind: rowKinds[table]}, nil
}

// identities returns the identities of an event that link people, as
// the rules have them (identity.Rules.Linking): normalized, in priority
// order, without the values that identify nobody. What is dropped stays
// on the event and in the profile's traits as data.
func identities(rules *identity.Rules, e *wire.Event) []identity.Identity {
	ids := e.Identities()
	out := make([]identity.Identity, len(ids))
	for i, id := range ids {
		out[i] = identity.Identity(id)
	}
	return rules.Linking(out)
}

// customerIdentities returns the identities a CDC customers row links
// (CONTRACT §6: its id with its phone and email), as identities does. A
// row whose id identifies nobody links nothing, not even its phone: the
// phone alone would bring the row to whoever holds it.
func customerIdentities(rules *identity.Rules, crmID string, data map[string]any) []identity.Identity {
	crm := identity.Identity{Type: identity.CRMID, Value: crmID}
	if rules.Blocked(crm) {
		return nil
	}
	ids := []identity.Identity{crm}
	for _, t := range []string{identity.Phone, identity.Email} {
		if v, ok := data[t].(string); ok {
			ids = append(ids, identity.Identity{Type: t, Value: v})
		}
	}
	return rules.Linking(ids)
}
