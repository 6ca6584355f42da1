package wire

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
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
	if tombstone, err := isTombstone(value); tombstone || err != nil {
		return nil, err
	}
	env, schema, err := decodeEnvelope(value)
	if err != nil {
		return nil, err
	}
	if err := checkOp(env.Op); err != nil {
		return nil, err
	}
	c := &Change{Table: table, Op: env.Op}
	if c.Pos, c.TS, err = sourcePosition(&env); err != nil {
		return nil, err
	}
	row := env.After
	if c.Deleted() {
		row = env.Before
	} else if row == nil {
		return nil, bad("op %q without an after image", env.Op)
	}
	decoded, err := decodeRow(tbl, row, columnSchemas(schema, c.Deleted()))
	if err != nil {
		return nil, err
	}
	if c.Key, err = rowKey(decoded["id"], key); err != nil {
		return nil, err
	}
	if len(c.Key) > maxIDBytes {
		return nil, bad("row key is longer than %d bytes", maxIDBytes)
	}
	delete(decoded, "id")
	if c.Parent, err = parentKey(tbl, decoded, c.Deleted()); err != nil {
		return nil, err
	}
	if !c.Deleted() {
		c.Data = decoded
	}
	return c, nil
}

// isTombstone reports whether a message is a tombstone: one without a
// value (or a JSON null). A value of white space alone is a broken
// message, not a delete.
func isTombstone(value []byte) (bool, error) {
	switch trimmed := bytes.TrimSpace(value); {
	case len(value) == 0 || string(trimmed) == "null":
		return true, nil
	case len(trimmed) == 0:
		return false, bad("the message is blank: a tombstone has no value at all")
	}
	return false, nil
}

// decodeEnvelope decodes the change event of a message, with or without
// the schema wrapper, and returns the wrapper's schema if there is one.
func decodeEnvelope(value []byte) (envelope, *field, error) {
	var env envelope
	payload, schema, err := unwrap(value)
	if err != nil {
		return env, nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&env); err != nil {
		return env, nil, bad("invalid Debezium envelope: %s", jsonProblem(err))
	}
	return env, schema, nil
}

// checkOp accepts the ops that are applied: create, update, snapshot read
// and delete.
func checkOp(op string) error {
	switch op {
	case "c", "u", "r", "d":
		return nil
	case "t":
		return bad("truncate (op t) is not applied: truncating a source table would delete every row of it; replay a snapshot instead")
	case "":
		return bad("missing op")
	}
	return bad("unknown op %q", op)
}

// sourcePosition returns where the change stands in the source and when
// it was made. The position orders a row's changes: source.lsn, else
// source.ts_ms (CONTRACT §1.2). The envelope's own ts_ms is when Debezium
// read the change, not where it stands in the source: it never orders
// changes. ts, for last-writer-wins against SDK traits, is the source
// commit time, else that read time.
func sourcePosition(env *envelope) (pos, ts int64, err error) {
	if env.Source.TsMs != "" {
		if ts, err = intOf(env.Source.TsMs); err != nil || ts <= 0 {
			return 0, 0, bad("source.ts_ms %q is not a positive integer", env.Source.TsMs)
		}
	} else if env.TsMs != "" {
		ts, _ = intOf(env.TsMs)
	}
	switch {
	case env.Source.LSN != "":
		if pos, err = intOf(env.Source.LSN); err != nil || pos <= 0 {
			return 0, 0, bad("source.lsn %q is not a positive integer", env.Source.LSN)
		}
	case env.Source.TsMs != "":
		pos = ts
	default:
		return 0, 0, bad("neither source.lsn nor source.ts_ms: the change has no source position to order it by")
	}
	return pos, ts, nil
}

// decodeRow decodes every column of a row image by the table's declared
// type and the column's Connect schema, under its sanitized name; a column
// whose name sanitizes to nothing is dropped.
func decodeRow(tbl cdcTable, row map[string]any, cols map[string]field) (map[string]any, error) {
	decoded := make(map[string]any, len(row))
	for col, v := range row {
		// A column is checked as the field its sanitized name sets:
		// "Email" sets email as much as "email" does.
		name := SanitizeKey(col)
		dv, err := decodeColumn(name, tbl.columns[name], cols[col], v)
		if err != nil {
			return nil, bad("column %s: %v", col, err)
		}
		if name != "" {
			decoded[name] = dv
		}
	}
	return decoded, nil
}

// parentKey returns the owning row's key of a decoded row ("" for a table
// without a parent). Only a delete may lack it.
func parentKey(tbl cdcTable, decoded map[string]any, deleted bool) (string, error) {
	if tbl.parent == "" {
		return "", nil
	}
	p, _ := idString(decoded[tbl.parent])
	if p == "" && !deleted {
		return "", bad("%s is required", tbl.parent)
	}
	if len(p) > maxIDBytes {
		return "", bad("%s is longer than %d bytes", tbl.parent, maxIDBytes)
	}
	return p, nil
}

// unwrap returns the payload of a {"schema", "payload"} message (and its
// schema), or the message itself.
func unwrap(value []byte) (payload json.RawMessage, schema *field, err error) {
	var w struct {
		Schema  *field          `json:"schema"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(value, &w); err != nil {
		return nil, nil, bad("invalid JSON: %s", jsonProblem(err))
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

// The ranges a value of a declared column must fall in. A value outside
// them is not what the contract's types say, so its message is
// dead-lettered instead of stored (CONTRACT §1.2), and no value can make
// a later step fail for ever: a total that sums to infinity, a date
// OpenSearch refuses, a decimal whose scale takes minutes to apply.
const (
	minYear, maxYear = 1000, 9999
	// maxMagnitude bounds the numbers of number columns: amounts and
	// quantities, exact to the cent below it.
	maxMagnitude = 1e15
	// maxDecimalScale and maxDecimalBytes bound a Debezium decimal (SQL
	// allows a scale of at most 38 and 38 digits need 16 bytes).
	maxDecimalScale = 64
	maxDecimalBytes = 64
	// maxDayCount bounds a date given as days since the epoch, so that the
	// conversion cannot overflow before the year is checked.
	maxDayCount = 1 << 22
)

// decodeColumn turns a column value into the document's form: decimals to
// numbers, dates to YYYY-MM-DD, timestamps to RFC 3339 in UTC, each checked
// against its type and range. Columns the table does not declare keep
// their JSON type (they go under attrs).
func decodeColumn(col string, want schema.ColumnType, f field, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	if dv, ok, err := decodeLogical(f, v); ok || err != nil {
		return dv, err
	}
	switch want {
	case schema.ColString:
		s, ok := stringOf(col, v)
		if !ok {
			return nil, fmt.Errorf("want a string, got %s", jsonText(v))
		}
		return s, nil
	case schema.ColNumber:
		switch x := v.(type) {
		case json.Number:
			n, err := x.Float64()
			if err != nil {
				return nil, fmt.Errorf("number %s is out of range", x)
			}
			return finite(n)
		case string:
			// Some connectors send decimals as text; NaN and Infinity
			// parse as floats but are no amount.
			if n, err := strconv.ParseFloat(strings.TrimSpace(x), 64); err == nil {
				return finite(n)
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

// decodeLogical decodes a value by its Connect schema's logical type;
// ok is false when the schema names none.
func decodeLogical(f field, v any) (any, bool, error) {
	var dv any
	var err error
	switch f.Name {
	case "org.apache.kafka.connect.data.Decimal":
		dv, err = decodeDecimal(v, f.Parameters["scale"])
	case "io.debezium.data.VariableScaleDecimal":
		m, ok := v.(map[string]any)
		if !ok {
			return nil, true, fmt.Errorf("variable-scale decimal is not a struct")
		}
		scale, _ := m["scale"].(json.Number)
		dv, err = decodeDecimal(m["value"], scale.String())
	case "io.debezium.time.Date", "org.apache.kafka.connect.data.Date":
		dv, err = dayCount(v)
	case "io.debezium.time.Timestamp", "org.apache.kafka.connect.data.Timestamp":
		dv, err = epoch(v, time.UnixMilli)
	case "io.debezium.time.MicroTimestamp":
		dv, err = epoch(v, time.UnixMicro)
	case "io.debezium.time.NanoTimestamp":
		dv, err = epoch(v, func(n int64) time.Time { return time.Unix(0, n) })
	default:
		return nil, false, nil
	}
	return dv, true, err
}

// epoch decodes an integer count since the epoch in the unit of toTime.
func epoch(v any, toTime func(int64) time.Time) (any, error) {
	n, err := intOf(v)
	if err != nil {
		return nil, fmt.Errorf("timestamp: %v", err)
	}
	return instant(toTime(n))
}

// dayCount decodes a date given as days since the epoch.
func dayCount(v any) (any, error) {
	days, err := intOf(v)
	if err != nil {
		return nil, fmt.Errorf("date: %v", err)
	}
	if days > maxDayCount || days < -maxDayCount {
		return nil, fmt.Errorf("date of day %d is outside the years %d to %d", days, minYear, maxYear)
	}
	return day(time.Unix(days*86400, 0))
}

// finite checks a number of a number column.
func finite(n float64) (any, error) {
	if math.IsNaN(n) || math.IsInf(n, 0) {
		return nil, fmt.Errorf("%v is not a finite number", n)
	}
	if math.Abs(n) >= maxMagnitude {
		return nil, fmt.Errorf("%v is out of range (at most ±%g)", n, maxMagnitude)
	}
	return n, nil
}

// inYears checks that an instant falls in the years a document holds.
func inYears(t time.Time) error {
	if y := t.UTC().Year(); y < minYear || y > maxYear {
		return fmt.Errorf("%s is outside the years %d to %d", t.UTC().Format(time.RFC3339), minYear, maxYear)
	}
	return nil
}

// instant renders a checked instant as the document does: RFC 3339 in
// UTC, to the millisecond.
func instant(t time.Time) (any, error) {
	if err := inYears(t); err != nil {
		return nil, err
	}
	return formatTime(t), nil
}

// day renders a checked calendar day as YYYY-MM-DD.
func day(t time.Time) (any, error) {
	if err := inYears(t); err != nil {
		return nil, err
	}
	return t.UTC().Format("2006-01-02"), nil
}

func decodeDecimal(v any, scaleText string) (any, error) {
	s, ok := v.(string)
	if !ok {
		if n, isNum := v.(json.Number); isNum {
			f, err := n.Float64()
			if err != nil {
				return nil, fmt.Errorf("decimal %s is out of range", n)
			}
			return finite(f)
		}
		return nil, fmt.Errorf("decimal is neither base64 bytes nor a number")
	}
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("decimal %q is not base64", s)
	}
	if len(raw) > maxDecimalBytes {
		return nil, fmt.Errorf("decimal of %d bytes is longer than %d", len(raw), maxDecimalBytes)
	}
	scale, err := strconv.Atoi(scaleText)
	if err != nil {
		return nil, fmt.Errorf("decimal without a scale parameter")
	}
	if scale < -maxDecimalScale || scale > maxDecimalScale {
		return nil, fmt.Errorf("decimal scale %d is outside ±%d", scale, maxDecimalScale)
	}
	unscaled := new(big.Int).SetBytes(raw)
	if len(raw) > 0 && raw[0]&0x80 != 0 { // two's complement negative
		unscaled.Sub(unscaled, new(big.Int).Lsh(big.NewInt(1), uint(8*len(raw))))
	}
	pow := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(max(scale, -scale))), nil)
	r := new(big.Rat).SetInt(unscaled)
	if scale >= 0 {
		r.Quo(r, new(big.Rat).SetInt(pow))
	} else {
		r.Mul(r, new(big.Rat).SetInt(pow))
	}
	f, _ := r.Float64()
	return finite(f)
}

func parseDate(v any) (any, error) {
	switch x := v.(type) {
	case json.Number:
		if _, err := x.Int64(); err != nil {
			return nil, fmt.Errorf("date %s is not a day count", x)
		}
		return dayCount(x)
	case string:
		x = strings.TrimSpace(x)
		if t, err := time.Parse("2006-01-02", x); err == nil {
			return day(t)
		}
		if t, err := time.Parse(time.RFC3339Nano, x); err == nil {
			return day(t)
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
			return instant(time.UnixMicro(n))
		}
		return instant(time.UnixMilli(n))
	case string:
		x = strings.TrimSpace(x)
		for _, layout := range timeLayouts {
			if t, err := time.Parse(layout, x); err == nil {
				return instant(t)
			}
		}
	}
	return nil, fmt.Errorf("want a timestamp, got %s", jsonText(v))
}

// formatTime renders an instant as the document does: RFC 3339 in UTC, to
// the millisecond.
func formatTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// codeColumn reports whether a string column holds an identifier or a
// code, which databases often store as whole numbers: the key and parent
// columns, phone, and columns named *_id or *_no. Text columns (a name,
// an email, a status) take only JSON strings.
func codeColumn(col string) bool {
	return col == "id" || col == "phone" || strings.HasSuffix(col, "_id") || strings.HasSuffix(col, "_no")
}

// stringOf returns the value of a string column: a JSON string, or for a
// code column a whole number written in decimal.
func stringOf(col string, v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		if codeColumn(col) {
			return idString(x)
		}
	}
	return "", false
}

// idString returns an identifier: a string, or a whole number. A boolean,
// a fraction or an object is no identifier.
func idString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		if _, err := strconv.ParseInt(x.String(), 10, 64); err == nil {
			return x.String(), true
		}
		if _, ok := new(big.Int).SetString(x.String(), 10); ok {
			return x.String(), true
		}
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
	if s, ok := idString(id); ok && s != "" {
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
		if s, ok := idString(m["id"]); ok && s != "" {
			return s, nil
		}
		return "", bad("key %s has no id", k)
	}
	if s, ok := idString(v); ok && s != "" {
		return s, nil
	}
	return "", bad("key %s is not a row key", k)
}
