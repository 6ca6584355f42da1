package workload

import (
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strconv"
	"time"

	"cdp/indexer"
)

// This file is the message stream: the Kafka messages of a workload and how
// changes and events are encoded into them (Debezium envelopes, SDK
// messages).

// Message is one Kafka message of a generated stream.
type Message struct {
	Topic string // the topic suffix: indexer.TopicCustomers, indexer.TopicEvents, …
	Key   []byte // nil: no key
	Value []byte // nil: a tombstone
	// What the message says, when it says something the model applies
	// (nil for tombstones and for poison that is not even JSON).
	Change *Change
	Event  *Event
	// Poison, when not empty, is why the indexer must dead-letter the
	// message (a word the reason must contain); the model ignores it.
	Poison string
	// Where Produce put it.
	Partition int32
	Offset    int64
}

func topicOf(table string) string {
	switch table {
	case TableCustomers:
		return indexer.TopicCustomers
	case TableOrders:
		return indexer.TopicOrders
	}
	return indexer.TopicOrderItems
}

func rowKey(c *Change) []byte {
	if c.StructKey {
		return []byte(`{"id":` + c.Key + `}`)
	}
	return []byte(c.Key)
}

func jsonTime(t time.Time, offset bool) string {
	if offset {
		return t.In(time.FixedZone("", 8*3600)).Format("2006-01-02T15:04:05.000-07:00")
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

func intOrString(key string) any {
	if n, err := strconv.ParseInt(key, 10, 64); err == nil {
		return n
	}
	return key
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// rowImage is the Debezium row image of a change.
func rowImage(c *Change) map[string]any {
	img := map[string]any{"id": intOrString(c.Key)}
	offset := c.LSN%3 == 0 // some timestamps with a +08:00 offset
	switch {
	case c.Customer != nil:
		r := c.Customer
		for k, v := range r.Extra {
			img[k] = v
		}
		for k, v := range map[string]string{"name": r.Name, "phone": r.Phone, "email": r.Email, "gender": r.Gender, "birthday": r.Birthday,
			"city": r.City, "member_level": r.MemberLevel, "store_id": r.StoreID, "owner_id": r.OwnerID} {
			img[k] = nullable(v)
		}
		img["created_at"] = jsonTime(r.CreatedAt, offset)
		img["updated_at"] = jsonTime(r.UpdatedAt, offset)
	case c.Order != nil:
		r := c.Order
		img["customer_id"] = intOrString(r.CustomerID)
		img["order_no"], img["store_id"], img["status"] = r.OrderNo, r.StoreID, r.Status
		if c.Schema {
			img["total_amount"] = decimalBase64(r.TotalCents)
			img["created_at"] = r.CreatedAt.UnixMilli()
			img["paid_at"] = nil
			if !r.PaidAt.IsZero() {
				img["paid_at"] = r.PaidAt.UnixMicro()
			}
		} else {
			img["total_amount"] = json.Number(money(r.TotalCents))
			img["created_at"] = jsonTime(r.CreatedAt, offset)
			img["paid_at"] = nil
			if !r.PaidAt.IsZero() {
				img["paid_at"] = jsonTime(r.PaidAt, offset)
			}
		}
	case c.Item != nil:
		r := c.Item
		img["order_id"] = intOrString(r.OrderID)
		img["sku"], img["product_name"], img["category"] = r.SKU, r.ProductName, r.Category
		img["quantity"] = r.Quantity
		img["price"] = json.Number(money(r.PriceCents))
	}
	return img
}

// decimalBase64 is Debezium's encoding of a decimal of scale 2: the
// unscaled value's big-endian two's complement bytes, in base64.
func decimalBase64(cents int64) string {
	b := big.NewInt(cents).Bytes()
	if len(b) == 0 || b[0]&0x80 != 0 {
		b = append([]byte{0}, b...)
	}
	return base64.StdEncoding.EncodeToString(b)
}

var orderSchema = json.RawMessage(`{"type":"struct","name":"shop.orders.Envelope","fields":[
 {"field":"before","type":"struct","optional":true,"fields":[{"field":"id","type":"int64"},{"field":"customer_id","type":"int64"},{"field":"order_no","type":"string"},{"field":"store_id","type":"string"},{"field":"status","type":"string"},{"field":"total_amount","type":"bytes","name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2","connect.decimal.precision":"12"}},{"field":"created_at","type":"int64","name":"io.debezium.time.Timestamp"},{"field":"paid_at","type":"int64","optional":true,"name":"io.debezium.time.MicroTimestamp"}]},
 {"field":"after","type":"struct","optional":true,"fields":[{"field":"id","type":"int64"},{"field":"customer_id","type":"int64"},{"field":"order_no","type":"string"},{"field":"store_id","type":"string"},{"field":"status","type":"string"},{"field":"total_amount","type":"bytes","name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2","connect.decimal.precision":"12"}},{"field":"created_at","type":"int64","name":"io.debezium.time.Timestamp"},{"field":"paid_at","type":"int64","optional":true,"name":"io.debezium.time.MicroTimestamp"}]},
 {"field":"source","type":"struct","fields":[{"field":"table","type":"string"},{"field":"lsn","type":"int64"},{"field":"ts_ms","type":"int64"}]},
 {"field":"op","type":"string"},{"field":"ts_ms","type":"int64","optional":true}]}`)

// ChangeValue encodes a change as a Debezium message value.
func ChangeValue(c *Change) []byte {
	env := map[string]any{"before": nil, "after": nil, "op": c.Op, "ts_ms": c.TsMs + 7,
		"source": map[string]any{"table": c.Table, "lsn": c.LSN, "ts_ms": c.TsMs}}
	if c.Deleted() {
		env["before"] = rowImage(c)
	} else {
		env["after"] = rowImage(c)
	}
	var v any = env
	if c.Schema && c.Order != nil {
		v = map[string]any{"schema": orderSchema, "payload": env}
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func changeMessage(c *Change) Message {
	return Message{Topic: topicOf(c.Table), Key: rowKey(c), Value: ChangeValue(c), Change: c}
}

// EventValue encodes an event as an SDK message.
func EventValue(e *Event) []byte {
	v := map[string]any{"type": e.Type, "messageId": e.MessageID, "timestamp": jsonTime(e.Timestamp, e.Timestamp.UnixMilli()%2 == 0)}
	if e.UserID != "" {
		v["userId"] = e.UserID
	}
	if e.AnonymousID != "" {
		v["anonymousId"] = e.AnonymousID
	}
	if e.PreviousID != "" {
		v["previousId"] = e.PreviousID
	}
	if e.Name != "" {
		v["event"] = e.Name
	}
	if e.Properties != nil {
		v["properties"] = e.Properties
	}
	if e.Traits != nil {
		v["traits"] = e.Traits
	}
	if e.Channel != "" {
		v["context"] = map[string]any{"channel": e.Channel, "ip": "10.0.0.1"}
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// EventMessage is an event as a Kafka message, keyed by the user id, else
// the device id (CONTRACT §1.1).
func EventMessage(e *Event) Message {
	key := e.UserID
	if key == "" {
		key = e.AnonymousID
	}
	return Message{Topic: indexer.TopicEvents, Key: []byte(key), Value: EventValue(e), Event: e}
}
