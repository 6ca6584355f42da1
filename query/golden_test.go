package query_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cdp/query"
	"cdp/schema"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/")

// now is the instant every golden case is translated at.
var now = time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)

// testCatalog is the base catalog with the dynamic fields the tests use.
func testCatalog() *schema.Catalog {
	return schema.Base().With(
		schema.Field{Name: "attrs.vip", Type: schema.Boolean, Dynamic: true},
		schema.Field{Name: "attrs.score", Type: schema.Number, Dynamic: true},
		schema.Field{Name: "attrs.source", Type: schema.Keyword, Dynamic: true},
		schema.Field{Name: "attrs.interests", Type: schema.KeywordArray, List: true, Dynamic: true},
		schema.Field{Name: "properties.sku", Type: schema.Keyword, Dynamic: true},
		schema.Field{Name: "properties.price", Type: schema.Number, Dynamic: true},
	)
}

// segments is a SegmentResolver over fixed filters.
type segments map[string]string

func (s segments) Segment(id string) (json.RawMessage, bool, error) {
	f, ok := s[id]
	return json.RawMessage(f), ok, nil
}

var testSegments = segments{
	"vip":      `{"field": "tags", "op": "eq", "value": "vip"}`,
	"big_vip":  `{"all": [{"segment": "vip"}, {"field": "metrics.total_spend", "op": "gte", "value": 10000}]}`,
	"loop":     `{"segment": "loop"}`,
	"bad_node": `{"field": "nope", "op": "eq", "value": 1}`,
}

// goldenCase is the input of one golden case.
type goldenCase struct {
	Filter json.RawMessage `json:"filter"`
	TZ     string          `json:"tz"`
	// Now, when set, replaces the default instant of translation.
	Now *time.Time `json:"now"`
}

// TestTranslateMatchesGoldenFiles translates every testdata/<case>.json and
// compares the query with testdata/<case>.golden.json.
func TestTranslateMatchesGoldenFiles(t *testing.T) {
	inputs, err := filepath.Glob("testdata/*.json")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, in := range inputs {
		if strings.HasSuffix(in, ".golden.json") {
			continue
		}
		n++
		name := strings.TrimSuffix(filepath.Base(in), ".json")
		t.Run(name, func(t *testing.T) {
			got := translateCase(t, in)
			golden := strings.TrimSuffix(in, ".json") + ".golden.json"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./query -run Golden -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("translation differs from %s:\n%s", golden, got)
			}
		})
	}
	if n < 40 {
		t.Errorf("only %d golden cases, want at least 40", n)
	}
}

func translateCase(t *testing.T, path string) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c goldenCase
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	loc := zone(t, c.TZ)
	p := query.Parser{Catalog: testCatalog(), Segments: testSegments}
	f, err := p.Parse(c.Filter)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	opts := query.Options{Now: now, Location: loc}
	if c.Now != nil {
		opts.Now = *c.Now
	}
	q, err := json.MarshalIndent(query.Translate(f, opts), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(q, '\n')
}
