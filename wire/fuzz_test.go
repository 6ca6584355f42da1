package wire

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"cdp/schema"
)

// The decoders' property, whatever the bytes: they never panic, every
// error is a bad message (or, for ParseChange, a table it does not know),
// and what they accept holds to the contract's types and ranges. Run one
// target at a time, e.g.
//
//	go test -run='^$' -fuzz='^FuzzParseChange$' -fuzztime=10s ./wire

// changeSeeds are the messages of the ParseChange tests: every envelope
// form, and every kind of bad message.
var changeSeeds = []struct{ table, key, value string }{
	{TableCustomers, "1001", `{"before":null,"after":{"id":1001,"name":"张三","phone":"13800000000","birthday":"1990-05-01","created_at":"2025-01-02T03:04:05Z","vip":true},"source":{"table":"customers","lsn":123456,"ts_ms":1762000000000},"op":"c","ts_ms":1762000000123}`},
	{TableOrders, `{"id": 7}`, `{"after":{"customer_id":1001,"status":"paid","total_amount":199.5,"created_at":"2026-11-01 10:00:00"},"source":{"ts_ms":1762000000000},"op":"u"}`},
	{TableOrders, `{"schema":{},"payload":{"id":8}}`, `{"schema":{"type":"struct","fields":[{"field":"after","type":"struct","fields":[{"field":"id","type":"int64"},{"field":"customer_id","type":"int64"},{"field":"total_amount","type":"bytes","name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2"}},{"field":"created_at","type":"int64","name":"io.debezium.time.MicroTimestamp"},{"field":"paid_at","type":"int64","name":"io.debezium.time.Timestamp"}]}]},"payload":{"after":{"id":8,"customer_id":1001,"total_amount":"TkM=","created_at":1762000000123456,"paid_at":1762000000999},"source":{"lsn":99,"ts_ms":1762000000000},"op":"r"}}`},
	{TableOrderItems, "3", `{"schema":{"type":"struct","fields":[{"field":"after","type":"struct","fields":[{"field":"price","type":"bytes","name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2"}}]}]},"payload":{"after":{"order_id":"8","price":"/zg="},"source":{"ts_ms":5},"op":"c"}}`},
	{TableOrders, "7", `{"before":{"id":7,"customer_id":1001},"after":null,"source":{"lsn":200,"ts_ms":9},"op":"d"}`},
	{TableCustomers, "1", `{"schema":{"type":"struct","fields":[{"field":"after","type":"struct","fields":[{"field":"birthday","type":"int32","name":"io.debezium.time.Date"}]}]},"payload":{"after":{"id":1,"birthday":7425},"source":{"ts_ms":5},"op":"c"}}`},
	{TableCustomers, "1", ""},
	{TableCustomers, "1", "null"},
	{TableCustomers, "", `{"op":`},
	{TableCustomers, "", `{"after":{"id":1},"source":{"ts_ms":1},"op":"x"}`},
	{TableCustomers, "", `{"source":{"ts_ms":1},"op":"t"}`},
	{TableCustomers, "", `{"after":{"id":1},"op":"c","ts_ms":1762000000123}`},
	{TableCustomers, "", `{"after":{"id":"` + strings.Repeat("k", 300) + `"},"source":{"ts_ms":1},"op":"c"}`},
	{TableCustomers, "", `{"after":{"id":1,"name":{"x":1},"labels":["a","b"],"score":1e400},"source":{"ts_ms":1},"op":"c"}`},
	{TableOrders, "", `{"after":{"id":1},"source":{"ts_ms":1},"op":"c"}`},
	{TableOrders, "", row(`{"id":1,"customer_id":1,"total_amount":"NaN"}`)},
	{TableOrderItems, "", row(`{"id":1,"order_id":1,"price":"-Infinity"}`)},
	{TableOrders, "", row(`{"id":1,"customer_id":1,"total_amount":1.7e308}`)},
	{TableOrders, "", withSchema("total_amount", "bytes", "org.apache.kafka.connect.data.Decimal", `{"scale":"100000000"}`, `"AQ=="`)},
	{TableOrders, "", withSchema("total_amount", "struct", "io.debezium.data.VariableScaleDecimal", `{}`, `{"scale":3,"value":"AQ=="}`)},
	{TableOrders, "", withSchema("paid_at", "int64", "io.debezium.time.NanoTimestamp", `{}`, `1762000000000000000`)},
	{TableOrders, "", row(`{"id":1,"customer_id":1,"created_at":9223372036854775807}`)},
	{TableCustomers, "", withSchema("birthday", "int32", "io.debezium.time.Date", `{}`, `1000000000`)},
	{TableCustomers, `{"id": true}`, row(`{"id":true,"name":"x"}`)},
	{TableCustomers, "", row(`{"id":1,"email":12345}`)},
	{TableCustomers, "", " \n\t "},
	{"payments", "1", row(`{"id":1}`)},
}

func FuzzParseChange(f *testing.F) {
	for _, s := range changeSeeds {
		f.Add(s.table, []byte(s.key), []byte(s.value))
	}
	f.Fuzz(func(t *testing.T, table string, key, value []byte) {
		c, err := ParseChange(table, key, value)
		if _, known := cdcTables[table]; err != nil {
			if known && !errors.Is(err, ErrBad) || !known && !strings.Contains(err.Error(), "no CDC table") {
				t.Fatalf("error %v is neither a bad message nor an unknown table", err)
			}
			return
		}
		if c == nil {
			return // a tombstone
		}
		if why := changeBreaksTheContract(c); why != "" {
			t.Fatalf("accepted a change that %s: %+v", why, c)
		}
	})
}

// changeBreaksTheContract says how an accepted change breaks the
// contract, or "".
func changeBreaksTheContract(c *Change) string {
	tbl := cdcTables[c.Table]
	switch {
	case c.Op != "c" && c.Op != "u" && c.Op != "r" && c.Op != "d":
		return "has op " + c.Op
	case c.Key == "" || len(c.Key) > maxIDBytes:
		return "has an empty or overlong key"
	case c.Pos <= 0:
		return "has no positive source position"
	case len(c.Parent) > maxIDBytes:
		return "has an overlong parent"
	case tbl.parent != "" && c.Parent == "" && !c.Deleted():
		return "has no parent"
	case c.Deleted() != (c.Data == nil):
		return "is a delete with data, or a write without"
	}
	if _, ok := c.Data["id"]; ok {
		return "keeps the key among its data"
	}
	for col, v := range c.Data {
		if col == "" || SanitizeKey(col) != col {
			return "has the unsanitized column " + col
		}
		if why := valueBreaksTheContract(tbl.columns[col], v); why != "" {
			return "has " + col + " that " + why
		}
	}
	return ""
}

// valueBreaksTheContract says how a decoded value breaks its column's
// type and range, or "".
func valueBreaksTheContract(want schema.ColumnType, v any) string {
	if v == nil {
		return ""
	}
	if why := unbounded(v); why != "" {
		return why
	}
	switch want {
	case schema.ColString:
		if _, ok := v.(string); !ok {
			return "is no string"
		}
	case schema.ColNumber:
		if n, ok := v.(float64); !ok || math.Abs(n) >= maxMagnitude {
			return "is no number in range"
		}
	case schema.ColBoolean:
		if _, ok := v.(bool); !ok {
			return "is no boolean"
		}
	case schema.ColDate, schema.ColTime:
		s, ok := v.(string)
		if !ok {
			return "is no date or time text"
		}
		if why := outsideTheYears(s); why != "" {
			return why
		}
	default:
		switch x := v.(type) {
		case string, float64, bool, []string:
		default:
			return "is of the dynamic type " + jsonText(x)
		}
	}
	return ""
}

// unbounded says how v, or a number inside it, is no finite number.
func unbounded(v any) string {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return "is not finite"
		}
	case map[string]any:
		for _, e := range x {
			if why := unbounded(e); why != "" {
				return why
			}
		}
	case []any:
		for _, e := range x {
			if why := unbounded(e); why != "" {
				return why
			}
		}
	}
	return ""
}

func outsideTheYears(s string) string {
	for _, layout := range []string{"2006-01-02", time.RFC3339Nano} {
		if t, err := time.Parse(layout, s); err == nil {
			if y := t.Year(); y < minYear || y > maxYear {
				return "is in the year " + t.Format("2006")
			}
			return ""
		}
	}
	return "is no date or time: " + s
}

// eventSeeds are the messages of the ParseEvent tests.
var eventSeeds = []string{
	`{"type":"track","messageId":"m1","timestamp":"2026-11-20T08:00:00Z","userId":"1001","anonymousId":"dev-9f2","event":"view_product","properties":{"price":399,"tags":["a"],"n":{"x":1e400}}}`,
	`{"type":"identify","messageId":"m2","userId":"1001","traits":{"name":"张三","email":"a@b.c","birthday":"1990-05-01","phone":13800000000,"vip":true}}`,
	`{"type":"page","messageId":"m3","anonymousId":"a1","timestamp":"2026-11-20T08:00:00+08:00"}`,
	`{"type":"screen","messageId":"m4","anonymousId":"a1","context":{"channel":"app"}}`,
	`{"type":"alias","messageId":"m5","userId":"1001","previousId":"a1"}`,
	`{"type":"track","userId":"1","event":"x"}`,
	`{"type":`,
	``,
	`{"type":"group","userId":"1"}`,
	`{"userId":"1"}`,
	`{"type":"track","event":"x"}`,
	`{"type":"track","userId":"1","event":"x","timestamp":"yesterday"}`,
	`{"type":"track","userId":"1","event":"x","timestamp":12}`,
	`{"type":"track","userId":"1"}`,
	`{"type":"alias","userId":"1"}`,
	`{"type":"track","userId":"1","event":"x","messageId":"` + strings.Repeat("m", 600) + `"}`,
	`{"type":"track","userId":"1","event":"e","timestamp":"10000-01-01T00:00:00Z"}`,
	`{"type":"track","userId":"1","event":"e","timestamp":"0500-01-01T00:00:00Z"}`,
	`{"type":"identify","userId":"1","traits":{"email":12345}}`,
	`{"type":"identify","userId":"1","traits":{"birthday":36500000}}`,
	`{"type":"track","userId":true,"event":"e"}`,
	`{"type":"track","userId":" ","anonymousId":" a ","event":" "}`,
}

func FuzzParseEvent(f *testing.F) {
	for _, s := range eventSeeds {
		f.Add([]byte(s))
	}
	fallback := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, value []byte) {
		e, err := ParseEvent(value, fallback)
		if err != nil {
			if !errors.Is(err, ErrBad) {
				t.Fatalf("error %v is not a bad message", err)
			}
			return
		}
		if why := eventBreaksTheContract(e); why != "" {
			t.Fatalf("accepted an event that %s: %+v", why, e)
		}
	})
}

// eventBreaksTheContract says how an accepted event breaks the contract,
// or "".
func eventBreaksTheContract(e *Event) string {
	switch e.Type {
	case "identify", "track", "page", "screen":
		if e.UserID == "" && e.AnonymousID == "" {
			return "has no id"
		}
	case "alias":
		if e.UserID == "" || e.PreviousID == "" {
			return "is an alias without both ids"
		}
	default:
		return "has the type " + e.Type
	}
	if e.MessageID == "" {
		return "has no message id"
	}
	if len(e.MessageID) > maxIDBytes {
		return "has an overlong message id"
	}
	for _, id := range []string{e.UserID, e.AnonymousID, e.PreviousID} {
		if len(id) > maxIDBytes || strings.TrimSpace(id) != id {
			return "has an overlong id, or one with white space around it"
		}
	}
	if e.Type == "track" && strings.TrimSpace(e.Event) == "" {
		return "is a track call without a name"
	}
	if y := e.Timestamp.Year(); y < minYear || y > maxYear || e.Timestamp.Location() != time.UTC {
		return "has the timestamp " + e.Timestamp.String()
	}
	for _, m := range []map[string]any{e.Properties, e.Traits} {
		if why := unbounded(m); why != "" {
			return "has a number that " + why
		}
	}
	for name, v := range e.Traits {
		if want, ok := profileColumns[name]; ok {
			if why := traitBreaksTheContract(name, want, v); why != "" {
				return "has the trait " + name + " that " + why
			}
		}
	}
	return ""
}

// traitBreaksTheContract checks a trait that sets a document field, after
// numbers became float64: of its column's type (a code may be a whole
// number, a date or time a count since the epoch).
func traitBreaksTheContract(name string, want schema.ColumnType, v any) string {
	if v == nil {
		return ""
	}
	switch want {
	case schema.ColString:
		if _, ok := v.(string); ok {
			return ""
		}
		if n, ok := v.(float64); ok && codeColumn(name) && n == math.Trunc(n) {
			return ""
		}
		return "is no string"
	case schema.ColDate, schema.ColTime:
		switch x := v.(type) {
		case float64:
			return ""
		case string:
			if _, err := decodeColumn(name, want, field{}, x); err != nil {
				return "is no date or time in range: " + err.Error()
			}
			return ""
		}
		return "is no date or time"
	}
	return ""
}
