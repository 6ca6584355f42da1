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

// identities returns the identities an event speaks for, in precedence
// order, as the resolver takes them.
func identities(e *wire.Event) []identity.Identity {
	ids := e.Identities()
	out := make([]identity.Identity, len(ids))
	for i, id := range ids {
		out[i] = identity.Identity(id)
	}
	return out
}
