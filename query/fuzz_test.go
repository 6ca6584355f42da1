package query_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cdp/query"
)

// FuzzParse checks that no input makes Parse or Translate panic, that every
// error is a *query.Error, and that every accepted filter translates to
// valid JSON.
func FuzzParse(f *testing.F) {
	inputs, _ := filepath.Glob("testdata/*.json")
	for _, in := range inputs {
		if strings.HasSuffix(in, ".golden.json") {
			continue
		}
		var c goldenCase
		if raw, err := os.ReadFile(in); err == nil && json.Unmarshal(raw, &c) == nil {
			f.Add([]byte(c.Filter))
		}
	}
	for _, s := range []string{`{`, `[]`, `null`, `{"all": [{"not": {}}]}`, `{"field": "tags", "op": "has_all", "value": ["a", 1]}`} {
		f.Add([]byte(s))
	}
	p := query.Parser{Catalog: testCatalog(), Segments: testSegments}
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		filter, err := p.Parse(raw)
		if err != nil {
			var e *query.Error
			if !errors.As(err, &e) || e.Code != query.CodeInvalidFilter {
				t.Fatalf("Parse(%q) = %v, want a *query.Error", raw, err)
			}
			return
		}
		out, err := json.Marshal(query.Translate(filter, query.Options{Now: now, Location: shanghai}))
		if err != nil || !json.Valid(out) {
			t.Fatalf("Translate(%q) does not encode: %v", raw, err)
		}
	})
}
