package wire

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	"cdp/schema"
)

// Source tables of the CDC topics (CONTRACT §1.2).
// They name tables of schema.Tables.
const (
	TableCustomers  = "customers"
	TableOrders     = "orders"
	TableOrderItems = "order_items"
)

// Change is one Debezium change event of a CDC table, decoded and checked.
type Change struct {
	Table string // TableCustomers, TableOrders or TableOrderItems
	Key   string
	Op    string // c, u, d or r
	// Pos is the source position: source.lsn, else source.ts_ms.
	Pos int64
	// TS is source.ts_ms.
	TS int64
	// Data is the row after the change (nil for a delete), with decimals,
	// dates and timestamps decoded.
	Data map[string]any
	// Parent is the owning row's key: the customer (CRM id) of an order,
	// the order of an item.
	Parent string
}

// Deleted reports whether the change removes the row.
func (c *Change) Deleted() bool { return c.Op == "d" }

// cdcTable describes a source table: the column naming its parent, and the
// declared column types ("" for a column the table does not declare).
type cdcTable struct {
	parent  string
	columns map[string]schema.ColumnType
}

// cdcTables are the source tables of package schema, where every column is
// declared with the field it sets.
var cdcTables = func() map[string]cdcTable {
	out := make(map[string]cdcTable, len(schema.Tables))
	for _, t := range schema.Tables {
		cols := map[string]schema.ColumnType{}
		for _, c := range t.Columns() {
			cols[c.Name] = c.Type
		}
		out[t.Name] = cdcTable{parent: t.Parent, columns: cols}
	}
	return out
}()

// envelope is a Debezium change event, with or without the schema wrapper.
type envelope struct {
	Before map[string]any `json:"before"`
	After  map[string]any `json:"after"`
	Source struct {
		LSN  json.Number `json:"lsn"`
		TsMs json.Number `json:"ts_ms"`
	} `json:"source"`
	Op   string      `json:"op"`
	TsMs json.Number `json:"ts_ms"`
}

// field is a Connect schema entry: its logical name and parameters tell
// how Debezium encoded the value.
type field struct {
	Field      string            `json:"field"`
	Type       string            `json:"type"`
	Name       string            `json:"name"`
	Parameters map[string]string `json:"parameters"`
	Fields     []field           `json:"fields"`
}

// ParseChange decodes a Debezium message of a source table (TableCustomers,
// TableOrders or TableOrderItems). key is the Kafka key (plain "1001" or a
// Debezium struct {"id": 1001}). A nil change with a nil error is a
// tombstone: nothing to apply. An error about the message wraps ErrBad and
// says what is wrong.
func ParseChange(table string, key, value []byte) (*Change, error) {
	tbl, ok := cdcTables[table]
	if !ok {
		return nil, fmt.Errorf("no CDC table %q", table)
	}
	if len(bytes.TrimSpace(value)) == 0 || string(bytes.TrimSpace(value)) == "null" {
		return nil, nil
	}
	payload, schema, err := unwrap(value)
	if err != nil {
		return nil, err
	}
	var env envelope
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&env); err != nil {
		return nil, bad("invalid Debezium envelope: %v", err)
	}
	c := &Change{Table: table, Op: env.Op}
	switch env.Op {
	case "c", "u", "r", "d":
	case "t":
		return nil, bad("truncate (op t) is not applied: truncating a source table would delete every row of it; replay a snapshot instead")
	case "":
		return nil, bad("missing op")
	default:
		return nil, bad("unknown op %q", env.Op)
	}
	// The position orders a row's changes: source.lsn, else source.ts_ms
	// (CONTRACT §1.2). The envelope's own ts_ms is when Debezium read the
	// change, not where it stands in the source: it never orders changes.
	// TS, for last-writer-wins against SDK traits, is the source commit
	// time, else that read time.
	if env.Source.TsMs != "" {
		if c.TS, err = intOf(env.Source.TsMs); err != nil || c.TS <= 0 {
			return nil, bad("source.ts_ms %q is not a positive integer", env.Source.TsMs)
		}
	} else if env.TsMs != "" {
		c.TS, _ = intOf(env.TsMs)
	}
	switch {
	case env.Source.LSN != "":
		if c.Pos, err = intOf(env.Source.LSN); err != nil || c.Pos <= 0 {
			return nil, bad("source.lsn %q is not a positive integer", env.Source.LSN)
		}
	case env.Source.TsMs != "":
		c.Pos = c.TS
	default:
		return nil, bad("neither source.lsn nor source.ts_ms: the change has no source position to order it by")
	}
	row := env.After
	if c.Deleted() {
		row = env.Before
	} else if row == nil {
		return nil, bad("op %q without an after image", env.Op)
	}
	cols := columnSchemas(schema, c.Deleted())
	decoded := make(map[string]any, len(row))
	for col, v := range row {
		dv, err := decodeColumn(tbl.columns[col], cols[col], v)
		if err != nil {
			return nil, bad("column %s: %v", col, err)
		}
		if name := SanitizeKey(col); name != "" {
			decoded[name] = dv
		}
	}
	if c.Key, err = rowKey(decoded["id"], key); err != nil {
		return nil, err
	}
	if len(c.Key) > maxIDBytes {
		return nil, bad("row key is longer than %d bytes", maxIDBytes)
	}
	delete(decoded, "id")
	if tbl.parent != "" {
		p, _ := scalarString(decoded[tbl.parent])
		if p == "" && !c.Deleted() {
			return nil, bad("%s is required", tbl.parent)
		}
		if len(p) > maxIDBytes {
			return nil, bad("%s is longer than %d bytes", tbl.parent, maxIDBytes)
		}
		c.Parent = p
	}
	if !c.Deleted() {
		c.Data = decoded
	}
	return c, nil
}

// unwrap returns the payload of a {"schema", "payload"} message (and its
// schema), or the message itself.
func unwrap(value []byte) (payload json.RawMessage, schema *field, err error) {
	var w struct {
		Schema  *field          `json:"schema"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(value, &w); err != nil {
		return nil, nil, bad("invalid JSON: %v", err)
	}
	if w.Payload != nil && w.Schema != nil {
		return w.Payload, w.Schema, nil
	}
	return value, nil, nil
}

// columnSchemas returns the schema of each column of the after (or, for a
// delete, before) image.
func columnSchemas(schema *field, before bool) map[string]field {
	out := map[string]field{}
	if schema == nil {
		return out
	}
	want := "after"
	if before {
		want = "before"
	}
	for _, f := range schema.Fields {
		if f.Field == want {
			for _, col := range f.Fields {
				out[col.Field] = col
			}
		}
	}
	return out
}

// decodeColumn turns a column value into the document's form: decimals to
// numbers, dates to YYYY-MM-DD, timestamps to RFC 3339 in UTC. Columns the
// table does not declare keep their JSON type (they go under attrs).
func decodeColumn(want schema.ColumnType, f field, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch f.Name {
	case "org.apache.kafka.connect.data.Decimal":
		return decodeDecimal(v, f.Parameters["scale"])
	case "io.debezium.data.VariableScaleDecimal":
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("variable-scale decimal is not a struct")
		}
		scale, _ := m["scale"].(json.Number)
		return decodeDecimal(m["value"], scale.String())
	case "io.debezium.time.Date", "org.apache.kafka.connect.data.Date":
		days, err := intOf(v)
		if err != nil {
			return nil, fmt.Errorf("date: %v", err)
		}
		return time.Unix(days*86400, 0).UTC().Format("2006-01-02"), nil
	case "io.debezium.time.Timestamp", "org.apache.kafka.connect.data.Timestamp":
		ms, err := intOf(v)
		if err != nil {
			return nil, fmt.Errorf("timestamp: %v", err)
		}
		return formatTime(time.UnixMilli(ms)), nil
	case "io.debezium.time.MicroTimestamp":
		us, err := intOf(v)
		if err != nil {
			return nil, fmt.Errorf("timestamp: %v", err)
		}
		return formatTime(time.UnixMicro(us)), nil
	case "io.debezium.time.NanoTimestamp":
		ns, err := intOf(v)
		if err != nil {
			return nil, fmt.Errorf("timestamp: %v", err)
		}
		return formatTime(time.Unix(0, ns)), nil
	}
	switch want {
	case schema.ColString:
		s, ok := scalarString(v)
		if !ok {
			return nil, fmt.Errorf("want a string, got %s", jsonText(v))
		}
		return s, nil
	case schema.ColNumber:
		switch x := v.(type) {
		case json.Number:
			return x.Float64()
		case string:
			if f, err := strconv.ParseFloat(strings.TrimSpace(x), 64); err == nil {
				return f, nil
			}
		}
		return nil, fmt.Errorf("want a number, got %s", jsonText(v))
	case schema.ColDate:
		return parseDate(v)
	case schema.ColTime:
		return parseTime(v)
	case schema.ColBoolean:
		b, ok := v.(bool)
		if !ok {
			return nil, fmt.Errorf("want true or false, got %s", jsonText(v))
		}
		return b, nil
	}
	return SanitizeValue(convertNumber(v)), nil
}

func decodeDecimal(v any, scaleText string) (any, error) {
	s, ok := v.(string)
	if !ok {
		if n, isNum := v.(json.Number); isNum {
			return n.Float64()
		}
		return nil, fmt.Errorf("decimal is neither base64 bytes nor a number")
	}
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("decimal %q is not base64", s)
	}
	scale, err := strconv.Atoi(scaleText)
	if err != nil {
		return nil, fmt.Errorf("decimal without a scale parameter")
	}
	unscaled := new(big.Int).SetBytes(raw)
	if len(raw) > 0 && raw[0]&0x80 != 0 { // two's complement negative
		unscaled.Sub(unscaled, new(big.Int).Lsh(big.NewInt(1), uint(8*len(raw))))
	}
	r := new(big.Rat).SetFrac(unscaled, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil))
	f, _ := r.Float64()
	return f, nil
}

func parseDate(v any) (any, error) {
	switch x := v.(type) {
	case json.Number:
		days, err := x.Int64()
		if err != nil {
			return nil, fmt.Errorf("date %s is not a day count", x)
		}
		return time.Unix(days*86400, 0).UTC().Format("2006-01-02"), nil
	case string:
		x = strings.TrimSpace(x)
		if t, err := time.Parse("2006-01-02", x); err == nil {
			return t.Format("2006-01-02"), nil
		}
		if t, err := time.Parse(time.RFC3339Nano, x); err == nil {
			return t.Format("2006-01-02"), nil
		}
	}
	return nil, fmt.Errorf("want a date, got %s", jsonText(v))
}

// timeLayouts are the timestamp forms accepted as strings; those without a
// zone are read as UTC.
var timeLayouts = []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999"}

func parseTime(v any) (any, error) {
	switch x := v.(type) {
	case json.Number:
		n, err := x.Int64()
		if err != nil {
			return nil, fmt.Errorf("timestamp %s is not an integer", x)
		}
		if n > 1e14 || n < -1e14 { // microseconds
			return formatTime(time.UnixMicro(n)), nil
		}
		return formatTime(time.UnixMilli(n)), nil
	case string:
		x = strings.TrimSpace(x)
		for _, layout := range timeLayouts {
			if t, err := time.Parse(layout, x); err == nil {
				return formatTime(t), nil
			}
		}
	}
	return nil, fmt.Errorf("want a timestamp, got %s", jsonText(v))
}

// formatTime renders an instant as the document does: RFC 3339 in UTC, to
// the millisecond.
func formatTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func scalarString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(x), true
	}
	return "", false
}

func intOf(v any) (int64, error) {
	switch x := v.(type) {
	case json.Number:
		return x.Int64()
	case float64:
		return int64(x), nil
	}
	return 0, fmt.Errorf("%v is not an integer", v)
}

// rowKey returns the row's primary key from its id column, else from the
// Kafka key (plain, a Debezium struct, or a struct with its schema).
func rowKey(id any, key []byte) (string, error) {
	if s, ok := scalarString(id); ok && s != "" {
		return s, nil
	}
	k := bytes.TrimSpace(key)
	if len(k) == 0 {
		return "", bad("the row has no id and the message no key")
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(k))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return string(k), nil // a plain key
	}
	if m, ok := v.(map[string]any); ok {
		if p, ok := m["payload"].(map[string]any); ok {
			m = p
		}
		if s, ok := scalarString(m["id"]); ok && s != "" {
			return s, nil
		}
		return "", bad("key %s has no id", k)
	}
	if s, ok := scalarString(v); ok && s != "" {
		return s, nil
	}
	return "", bad("key %s is not a row key", k)
}
