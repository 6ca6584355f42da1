package wire

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseChangeDecodesEveryEnvelopeForm(t *testing.T) {
	tests := []struct {
		name, table, key, value string
		want                    Change
	}{
		{
			name: "plain envelope with a plain key", table: TableCustomers, key: "1001",
			value: `{"before":null,"after":{"id":1001,"name":"张三","phone":"13800000000","birthday":"1990-05-01","created_at":"2025-01-02T03:04:05Z","vip":true},
				"source":{"table":"customers","lsn":123456,"ts_ms":1762000000000},"op":"c","ts_ms":1762000000123}`,
			want: Change{Table: TableCustomers, Key: "1001", Op: "c", Pos: 123456, TS: 1762000000000, Data: map[string]any{
				"name": "张三", "phone": "13800000000", "birthday": "1990-05-01", "created_at": "2025-01-02T03:04:05.000Z", "vip": true}},
		},
		{
			name: "no lsn: the position is ts_ms; a struct key", table: TableOrders, key: `{"id": 7}`,
			value: `{"after":{"customer_id":1001,"status":"paid","total_amount":199.5,"created_at":"2026-11-01 10:00:00"},
				"source":{"ts_ms":1762000000000},"op":"u"}`,
			want: Change{Table: TableOrders, Key: "7", Op: "u", Pos: 1762000000000, TS: 1762000000000, Parent: "1001", Data: map[string]any{
				"customer_id": "1001", "status": "paid", "total_amount": 199.5, "created_at": "2026-11-01T10:00:00.000Z"}},
		},
		{
			name: "schema wrapper: base64 decimal, integer days, epoch micros", table: TableOrders, key: `{"schema":{},"payload":{"id":8}}`,
			value: `{"schema":{"type":"struct","fields":[{"field":"after","type":"struct","fields":[
				{"field":"id","type":"int64"},{"field":"customer_id","type":"int64"},
				{"field":"total_amount","type":"bytes","name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2"}},
				{"field":"created_at","type":"int64","name":"io.debezium.time.MicroTimestamp"},
				{"field":"paid_at","type":"int64","name":"io.debezium.time.Timestamp"}]}]},
				"payload":{"after":{"id":8,"customer_id":1001,"total_amount":"TkM=","created_at":1762000000123456,"paid_at":1762000000999},
				"source":{"lsn":99,"ts_ms":1762000000000},"op":"r"}}`,
			want: Change{Table: TableOrders, Key: "8", Op: "r", Pos: 99, TS: 1762000000000, Parent: "1001", Data: map[string]any{
				"customer_id": "1001", "total_amount": 200.35, "created_at": "2025-11-01T12:26:40.123Z", "paid_at": "2025-11-01T12:26:40.999Z"}},
		},
		{
			name: "negative base64 decimal", table: TableOrderItems, key: "3",
			value: `{"schema":{"type":"struct","fields":[{"field":"after","type":"struct","fields":[
				{"field":"price","type":"bytes","name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2"}}]}]},
				"payload":{"after":{"order_id":"8","price":"/zg="},"source":{"ts_ms":5},"op":"c"}}`,
			want: Change{Table: TableOrderItems, Key: "3", Op: "c", Pos: 5, TS: 5, Parent: "8", Data: map[string]any{"order_id": "8", "price": -2.0}},
		},
		{
			name: "delete keeps the before image's parent and no data", table: TableOrders, key: "7",
			value: `{"before":{"id":7,"customer_id":1001},"after":null,"source":{"lsn":200,"ts_ms":9},"op":"d"}`,
			want:  Change{Table: TableOrders, Key: "7", Op: "d", Pos: 200, TS: 9, Parent: "1001"},
		},
		{
			name: "schema date as integer days", table: TableCustomers, key: "1",
			value: `{"schema":{"type":"struct","fields":[{"field":"after","type":"struct","fields":[
				{"field":"birthday","type":"int32","name":"io.debezium.time.Date"}]}]},
				"payload":{"after":{"id":1,"birthday":7425},"source":{"ts_ms":5},"op":"c"}}`,
			want: Change{Table: TableCustomers, Key: "1", Op: "c", Pos: 5, TS: 5, Data: map[string]any{"birthday": "1990-05-01"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseChange(tt.table, []byte(tt.key), []byte(tt.value))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Fatalf("got  %+v\nwant %+v", *got, tt.want)
			}
		})
	}
}

func TestParseChangeTreatsATombstoneAsNothingToApply(t *testing.T) {
	for _, v := range []string{"", "null"} {
		c, err := ParseChange(TableCustomers, []byte("1"), []byte(v))
		if c != nil || err != nil {
			t.Errorf("tombstone %q: %v %v", v, c, err)
		}
	}
}

func TestParseChangeRejectsWhatCannotBeAppliedWithAReason(t *testing.T) {
	tests := []struct{ name, table, value, reason string }{
		{"unparsable", TableCustomers, `{"op":`, "invalid JSON"},
		{"unknown op", TableCustomers, `{"after":{"id":1},"source":{"ts_ms":1},"op":"x"}`, `unknown op "x"`},
		{"truncate", TableCustomers, `{"source":{"ts_ms":1},"op":"t"}`, "truncate"},
		{"missing op", TableCustomers, `{"after":{"id":1},"source":{"ts_ms":1}}`, "missing op"},
		{"no position", TableCustomers, `{"after":{"id":1},"op":"c"}`, "no source position"},
		{"only the envelope time", TableCustomers, `{"after":{"id":1},"op":"c","ts_ms":1762000000123}`, "no source position"},
		{"overlong key", TableCustomers, `{"after":{"id":"` + strings.Repeat("k", 300) + `"},"source":{"ts_ms":1},"op":"c"}`, "longer than 256"},
		{"no after", TableCustomers, `{"source":{"ts_ms":1},"op":"u"}`, "without an after image"},
		{"wrong type", TableOrders, `{"after":{"id":1,"customer_id":1,"total_amount":"lots"},"source":{"ts_ms":1},"op":"c"}`, "column total_amount: want a number"},
		{"object for a string column", TableCustomers, `{"after":{"id":1,"name":{"x":1}},"source":{"ts_ms":1},"op":"c"}`, "column name: want a string"},
		{"bad date", TableCustomers, `{"after":{"id":1,"birthday":"someday"},"source":{"ts_ms":1},"op":"c"}`, "column birthday"},
		{"order without customer", TableOrders, `{"after":{"id":1},"source":{"ts_ms":1},"op":"c"}`, "customer_id is required"},
		{"no key at all", TableCustomers, `{"after":{"name":"x"},"source":{"ts_ms":1},"op":"c"}`, "no id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := []byte("")
			_, err := ParseChange(tt.table, key, []byte(tt.value))
			if !errors.Is(err, ErrBad) || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("err = %v, want a bad-message error mentioning %q", err, tt.reason)
			}
		})
	}
}
