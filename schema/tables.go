package schema

import "strings"

// Table is a source table of change data capture (CONTRACT §1.2) and where
// its rows go in the customer document.
type Table struct {
	Name string
	// Path is the nested path its rows fill, one element per row; "" for
	// the customer table, whose row fills the document root.
	Path string
	// Key is the primary key column; Parent the column naming the owning
	// row's key ("" for customers).
	Key, Parent string
	// Other are columns that set no field but are known: typed on input
	// and kept out of attrs.
	Other []Column
}

// ColumnType is the type of a source column's value, which tells how
// Debezium encodes it.
type ColumnType string

// The column types.
const (
	ColString  ColumnType = "string"
	ColNumber  ColumnType = "number"  // a decimal
	ColDate    ColumnType = "date"    // a calendar day
	ColTime    ColumnType = "time"    // an instant
	ColBoolean ColumnType = "boolean" // no column is one yet
)

// Column is one declared column of a source table.
type Column struct {
	Name string
	Type ColumnType
	// Field is the full path of the field the column sets, "" for none.
	Field string
}

// Tables are the CDC source tables, parents first.
var Tables = []Table{
	{Name: "customers", Key: "id", Other: []Column{{Name: "updated_at", Type: ColTime}}},
	{Name: "orders", Path: "orders", Key: "id", Parent: "customer_id"},
	{Name: "order_items", Path: "orders.items", Key: "id", Parent: "order_id"},
}

// TableNamed returns the source table of that name.
func TableNamed(name string) (Table, bool) {
	for _, t := range Tables {
		if t.Name == name {
			return t, true
		}
	}
	return Table{}, false
}

// Columns returns every declared column of the table with its type: the
// key, the parent, the column of each base field at the table's path, and
// the Other columns. A field's column takes the type of the field; the
// key and parent are strings.
func (t Table) Columns() []Column {
	cols := []Column{{Name: t.Key, Type: ColString}}
	if t.Parent != "" {
		cols = append(cols, Column{Name: t.Parent, Type: ColString})
	}
	for _, f := range base {
		if f.Column == "" || f.NestedPath != t.Path || f.Type == Nested {
			continue
		}
		c := Column{Name: f.Column, Type: columnType(f), Field: f.Name}
		if f.Column == t.Key {
			cols[0].Field = f.Name
			continue
		}
		cols = append(cols, c)
	}
	return append(cols, t.Other...)
}

// Leaf returns the field's name inside the table's rows: its path less the
// table's path ("orders.order_no" → "order_no").
func (t Table) Leaf(field string) string {
	if t.Path == "" {
		return field
	}
	return strings.TrimPrefix(field, t.Path+".")
}

func columnType(f Field) ColumnType {
	switch f.Type {
	case Number:
		return ColNumber
	case Date:
		if f.Day {
			return ColDate
		}
		return ColTime
	case Boolean:
		return ColBoolean
	}
	return ColString
}
