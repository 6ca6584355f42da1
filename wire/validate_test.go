package wire

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// row is a CDC message of table with the given after image.
func row(after string) string {
	return `{"after":` + after + `,"source":{"lsn":1,"ts_ms":1},"op":"c"}`
}

// withSchema is a CDC message whose after image has one column with a
// Connect schema of the given logical type and parameters.
func withSchema(col, typ, name, params, value string) string {
	return `{"schema":{"type":"struct","fields":[{"field":"after","type":"struct","fields":[
		{"field":"` + col + `","type":"` + typ + `","name":"` + name + `","parameters":` + params + `}]}]},
		"payload":{"after":{"id":1,"customer_id":1,"` + col + `":` + value + `},"source":{"lsn":1,"ts_ms":1},"op":"c"}}`
}

func TestValuesOutsideTheContractsTypesAndRangesAreBadMessages(t *testing.T) {
	huge := base64.StdEncoding.EncodeToString(make([]byte, 100))
	tests := []struct{ name, table, value, reason string }{
		{"NaN as a number column's text", TableOrders, row(`{"id":1,"customer_id":1,"total_amount":"NaN"}`), "not a finite number"},
		{"Infinity as a number column's text", TableOrders, row(`{"id":1,"customer_id":1,"total_amount":"Infinity"}`), "not a finite number"},
		{"-Infinity as a number column's text", TableOrderItems, row(`{"id":1,"order_id":1,"price":"-Infinity"}`), "not a finite number"},
		{"a number beyond a double", TableOrders, row(`{"id":1,"customer_id":1,"total_amount":1e400}`), "out of range"},
		{"an amount whose sum could overflow", TableOrders, row(`{"id":1,"customer_id":1,"total_amount":1.7e308}`), "out of range"},
		{"an amount past the exact range", TableOrderItems, row(`{"id":1,"order_id":1,"quantity":1e16}`), "out of range"},
		{"a decimal whose scale is 10^8", TableOrders, withSchema("total_amount", "bytes", "org.apache.kafka.connect.data.Decimal", `{"scale":"100000000"}`, `"AQ=="`), "scale 100000000"},
		{"a decimal of 100 bytes", TableOrders, withSchema("total_amount", "bytes", "org.apache.kafka.connect.data.Decimal", `{"scale":"2"}`, `"`+huge+`"`), "100 bytes"},
		{"a variable-scale decimal with a huge scale", TableOrders, withSchema("total_amount", "struct", "io.debezium.data.VariableScaleDecimal", `{}`, `{"scale":99999999,"value":"AQ=="}`), "scale 99999999"},
		{"epoch microseconds in the year 294247", TableOrders, row(`{"id":1,"customer_id":1,"created_at":9223372036854775807}`), "outside the years"},
		{"a Debezium timestamp in the year 294247", TableOrders, withSchema("paid_at", "int64", "io.debezium.time.Timestamp", `{}`, `9223372036854775`), "outside the years"},
		{"a date before the year 1000", TableCustomers, row(`{"id":1,"birthday":"0999-12-31"}`), "outside the years"},
		{"a date as a day count in the year 99999", TableCustomers, row(`{"id":1,"birthday":36500000}`), "outside the years"},
		{"a Debezium date of a billion days", TableCustomers, withSchema("birthday", "int32", "io.debezium.time.Date", `{}`, `1000000000`), "outside the years"},
		{"true as an id", TableCustomers, row(`{"id":true,"name":"x"}`), "column id: want a string"},
		{"a fraction as an id", TableCustomers, row(`{"id":1.5,"name":"x"}`), "column id: want a string"},
		{"true as a parent id", TableOrders, row(`{"id":1,"customer_id":true}`), "column customer_id: want a string"},
		{"a number as an email", TableCustomers, row(`{"id":1,"email":12345}`), "column email: want a string"},
		{"a number as a name", TableCustomers, row(`{"id":1,"name":42}`), "column name: want a string"},
		{"a number as an email spelled in capitals", TableCustomers, row(`{"id":1,"EMAIL":12345}`), "column EMAIL: want a string"},
		{"a number as a birthday spelled in mixed case", TableCustomers, row(`{"id":1,"BirthDay":12.5}`), "column BirthDay"},
		{"a value of white space alone", TableCustomers, " \n\t ", "blank"},
		{"true as a struct key's id", TableCustomers, `{"after":{"name":"x"},"source":{"ts_ms":1},"op":"c"}`, "key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := []byte(`{"id": true}`)
			_, err := ParseChange(tt.table, key, []byte(tt.value))
			if !errors.Is(err, ErrBad) || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("err = %v, want a bad-message error mentioning %q", err, tt.reason)
			}
		})
	}
}

func TestValuesAtTheEdgesOfTheRangesAreKept(t *testing.T) {
	tests := []struct {
		name, table, value, col string
		want                    any
	}{
		{"a whole-number id", TableCustomers, row(`{"id":1001,"name":"x"}`), "", nil},
		{"a numeric phone", TableCustomers, row(`{"id":1,"phone":13800000000}`), "phone", "13800000000"},
		{"a numeric order number", TableOrders, row(`{"id":1,"customer_id":1,"order_no":20261101}`), "order_no", "20261101"},
		{"the largest amount", TableOrders, row(`{"id":1,"customer_id":1,"total_amount":999999999999999}`), "total_amount", 999999999999999.0},
		{"a negative amount", TableOrders, row(`{"id":1,"customer_id":1,"total_amount":"-12.5"}`), "total_amount", -12.5},
		{"the year 1000", TableCustomers, row(`{"id":1,"birthday":"1000-01-01"}`), "birthday", "1000-01-01"},
		{"the year 9999", TableOrders, row(`{"id":1,"customer_id":1,"created_at":"9999-12-31T23:59:59Z"}`), "created_at", "9999-12-31T23:59:59.000Z"},
		{"a decimal of scale 38", TableOrders, withSchema("total_amount", "bytes", "org.apache.kafka.connect.data.Decimal", `{"scale":"38"}`, `"AQ=="`), "total_amount", 1e-38},
		{"a decimal of negative scale", TableOrders, withSchema("total_amount", "bytes", "org.apache.kafka.connect.data.Decimal", `{"scale":"-2"}`, `"Aw=="`), "total_amount", 300.0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseChange(tt.table, nil, []byte(tt.value))
			if err != nil {
				t.Fatal(err)
			}
			if tt.col != "" && fmt.Sprint(c.Data[tt.col]) != fmt.Sprint(tt.want) {
				t.Errorf("%s = %v (%T), want %v", tt.col, c.Data[tt.col], c.Data[tt.col], tt.want)
			}
		})
	}
}

func TestEventsOutsideTheContractsTypesAndRangesAreBadMessages(t *testing.T) {
	tests := []struct{ name, value, reason string }{
		{"a timestamp in the year 10000", `{"type":"track","userId":"1","event":"e","timestamp":"10000-01-01T00:00:00Z"}`, "RFC 3339"},
		{"a timestamp in the year 0500", `{"type":"track","userId":"1","event":"e","timestamp":"0500-01-01T00:00:00Z"}`, "outside the years"},
		{"an email trait that is a number", `{"type":"identify","userId":"1","traits":{"email":12345}}`, "trait email: want a string"},
		{"a name trait that is an object", `{"type":"identify","userId":"1","traits":{"name":{"first":"x"}}}`, "trait name: want a string"},
		{"a birthday trait in the year 99999", `{"type":"identify","userId":"1","traits":{"birthday":36500000}}`, "trait birthday"},
		{"a birthday trait that is no date", `{"type":"identify","userId":"1","traits":{"birthday":"someday"}}`, "trait birthday"},
		{"true as the user id", `{"type":"track","userId":true,"event":"e"}`, "invalid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseEvent([]byte(tt.value), time.Now())
			if !errors.Is(err, ErrBad) || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("err = %v, want a bad-message error mentioning %q", err, tt.reason)
			}
		})
	}
}

func TestAReasonNamesTheJSONNotTheGoTypesItIsDecodedInto(t *testing.T) {
	tests := []struct{ name, value, want string }{
		{"a list instead of an event", `[1,2,3]`, "invalid JSON: the message is a JSON array, not an object"},
		{"a number as the type", `{"type":1,"userId":"1"}`, "invalid JSON: type must be a string, not a JSON number"},
		{"an object as the user id", `{"type":"track","userId":{"id":1},"event":"e"}`, "invalid JSON: userId must be a string, not a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseEvent([]byte(tt.value), time.Now())
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "Go value") {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
	_, err := ParseChange(TableCustomers, nil, []byte(`{"after":[1],"source":{"lsn":1},"op":"c"}`))
	if err == nil || !strings.Contains(err.Error(), "after must be an object, not a JSON array") {
		t.Errorf("change with a list as its after image: %v", err)
	}
}
