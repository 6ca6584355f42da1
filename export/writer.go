package export

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Format is an export's encoding.
type Format string

// The formats.
const (
	NDJSON Format = "ndjson"
	CSV    Format = "csv"
)

// ParseFormat reads a format name; "" is NDJSON.
func ParseFormat(s string) (Format, error) {
	switch Format(strings.ToLower(s)) {
	case "", NDJSON:
		return NDJSON, nil
	case CSV:
		return CSV, nil
	}
	return "", fmt.Errorf("format %q is not one of ndjson, csv", s)
}

// ContentType is the media type of the format.
func (f Format) ContentType() string {
	if f == CSV {
		return "text/csv; charset=utf-8"
	}
	return "application/x-ndjson"
}

// A Writer encodes the documents of one export.
type Writer interface {
	// Write encodes one document, the _source of a hit.
	Write(doc json.RawMessage) error
	// Flush writes what is buffered to the underlying writer.
	Flush() error
}

// byteOrderMark is the UTF-8 byte-order mark.
const byteOrderMark = "\uFEFF"

// ndjson writes one compact JSON document per line.
type ndjson struct {
	w   *bufio.Writer
	buf bytes.Buffer
}

// NewNDJSON returns a Writer of one document per line, each as it came
// (the search's _source already holds only the fields asked for), made
// compact when it spans lines.
func NewNDJSON(w io.Writer) Writer {
	return &ndjson{w: bufio.NewWriterSize(w, 64<<10)}
}

func (n *ndjson) Write(doc json.RawMessage) error {
	if bytes.IndexByte(doc, '\n') < 0 && bytes.IndexByte(doc, '\r') < 0 && json.Valid(doc) {
		// Already one line (OpenSearch sends sources compact): as it is.
		n.w.Write(doc)
		return n.w.WriteByte('\n')
	}
	n.buf.Reset()
	if err := json.Compact(&n.buf, doc); err != nil {
		return fmt.Errorf("export: a document is not JSON: %w", err)
	}
	n.buf.WriteByte('\n')
	_, err := n.w.Write(n.buf.Bytes())
	return err
}

func (n *ndjson) Flush() error { return n.w.Flush() }

// csvWriter writes rows of the columns' values.
type csvWriter struct {
	w       *bufio.Writer
	columns []string
	paths   [][]string
	row     []string
	json    bytes.Buffer
	enc     *json.Encoder
}

// NewCSV returns a Writer of one row per document, columns customer_id
// and then columns in their order (customer_id named again is left out),
// after the byte-order mark when bom is set and the header row, which it
// writes at once.
func NewCSV(w io.Writer, columns []string, bom bool) (Writer, error) {
	cols := []string{"customer_id"}
	for _, c := range columns {
		if c != "customer_id" {
			cols = append(cols, c)
		}
	}
	c := &csvWriter{w: bufio.NewWriterSize(w, 64<<10), columns: cols, row: make([]string, len(cols))}
	c.enc = json.NewEncoder(&c.json)
	c.enc.SetEscapeHTML(false)
	for _, col := range cols {
		c.paths = append(c.paths, strings.Split(col, "."))
	}
	if bom {
		if _, err := c.w.WriteString(byteOrderMark); err != nil {
			return nil, err
		}
	}
	return c, c.writeRow(cols)
}

func (c *csvWriter) Write(doc json.RawMessage) error {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v map[string]any
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("export: a document is not a JSON object: %w", err)
	}
	for i, p := range c.paths {
		s, err := c.cell(lookup(v, p))
		if err != nil {
			return err
		}
		c.row[i] = s
	}
	return c.writeRow(c.row)
}

func (c *csvWriter) Flush() error { return c.w.Flush() }

// cell renders one value as the text of a cell.
func (c *csvWriter) cell(v any) (string, error) {
	var s string
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		s = x
	case json.Number:
		s = x.String()
	case bool:
		s = fmt.Sprint(x)
	default:
		c.json.Reset()
		if err := c.enc.Encode(x); err != nil {
			return "", err
		}
		s = strings.TrimSuffix(c.json.String(), "\n")
	}
	return Defuse(s), nil
}

// Defuse prefixes with ' a cell that a spreadsheet would take for a
// formula: one starting with =, +, -, @, a tab or a carriage return.
func Defuse(s string) string {
	if s != "" && strings.IndexByte("=+-@\t\r", s[0]) >= 0 {
		return "'" + s
	}
	return s
}

// writeRow writes one record, quoting as RFC 4180 says, ended by CRLF.
func (c *csvWriter) writeRow(cells []string) error {
	for i, s := range cells {
		if i > 0 {
			c.w.WriteByte(',')
		}
		if !strings.ContainsAny(s, ",\"\r\n") {
			c.w.WriteString(s)
			continue
		}
		c.w.WriteByte('"')
		for {
			j := strings.IndexByte(s, '"')
			if j < 0 {
				break
			}
			c.w.WriteString(s[:j+1])
			c.w.WriteByte('"')
			s = s[j+1:]
		}
		c.w.WriteString(s)
		c.w.WriteByte('"')
	}
	_, err := c.w.WriteString("\r\n")
	return err
}

// lookup follows a dotted path through objects; through a list it
// collects what the path reaches in each element, one list in all.
func lookup(v any, path []string) any {
	if len(path) == 0 {
		return v
	}
	switch x := v.(type) {
	case map[string]any:
		next, ok := x[path[0]]
		if !ok {
			return nil
		}
		return lookup(next, path[1:])
	case []any:
		var out []any
		for _, e := range x {
			switch r := lookup(e, path).(type) {
			case nil:
			case []any:
				out = append(out, r...)
			default:
				out = append(out, r)
			}
		}
		if out == nil {
			return nil
		}
		return out
	}
	return nil
}
