package export

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"strings"
	"testing"

	"cdp/schema"
	"cdp/store"
)

func TestCSVRowsAreRFC4180WithCRLFAndDefusedFormulas(t *testing.T) {
	tests := []struct {
		name    string
		columns []string
		doc     string
		want    string // the data row, CRLF included
	}{
		{"plain values", []string{"name", "city"}, `{"customer_id":"c1","name":"张三","city":"北京"}`, "c1,张三,北京\r\n"},
		{"a comma is quoted", []string{"name"}, `{"customer_id":"c1","name":"Chen, Alice"}`, "c1,\"Chen, Alice\"\r\n"},
		{"quotes are doubled", []string{"name"}, `{"customer_id":"c1","name":"the \"boss\""}`, "c1,\"the \"\"boss\"\"\"\r\n"},
		{"a newline is kept inside quotes", []string{"name"}, `{"customer_id":"c1","name":"a\nb"}`, "c1,\"a\nb\"\r\n"},
		{"a CR is kept inside quotes", []string{"name"}, `{"customer_id":"c1","name":"a\rb"}`, "c1,\"a\rb\"\r\n"},
		{"a formula is defused", []string{"name"}, `{"customer_id":"c1","name":"=SUM(A1)"}`, "c1,'=SUM(A1)\r\n"},
		{"a phone reads as text", []string{"phone"}, `{"customer_id":"c1","phone":"+8613800000000"}`, "c1,'+8613800000000\r\n"},
		{"minus, at, tab and CR are defused", []string{"a", "b", "c", "d"}, `{"customer_id":"c1","a":"-1","b":"@x","c":"\tx","d":"\rx"}`, "c1,'-1,'@x,'\tx,\"'\rx\"\r\n"},
		{"a negative number is defused too", []string{"n"}, `{"customer_id":"c1","n":-5}`, "c1,'-5\r\n"},
		{"numbers are written as in the document", []string{"metrics.total_spend", "metrics.order_count"}, `{"customer_id":"c1","metrics":{"total_spend":199.50,"order_count":3}}`, "c1,199.50,3\r\n"},
		{"booleans and nulls", []string{"attrs.vip", "owner_id"}, `{"customer_id":"c1","attrs":{"vip":true},"owner_id":null}`, "c1,true,\r\n"},
		{"a missing field is empty", []string{"name", "city"}, `{"customer_id":"c1"}`, "c1,,\r\n"},
		{"a list is JSON text", []string{"tags"}, `{"customer_id":"c1","tags":["vip","new"]}`, "c1,\"[\"\"vip\"\",\"\"new\"\"]\"\r\n"},
		{"an object is JSON text without HTML escapes", []string{"attrs"}, `{"customer_id":"c1","attrs":{"a":"<b>&"}}`, "c1,\"{\"\"a\"\":\"\"<b>&\"\"}\"\r\n"},
		{"a path through a list collects its values", []string{"orders.status"}, `{"customer_id":"c1","orders":[{"status":"paid"},{"status":"created"},{}]}`, "c1,\"[\"\"paid\"\",\"\"created\"\"]\"\r\n"},
		{"customer_id named again is not a second column", []string{"customer_id", "city"}, `{"customer_id":"c1","city":"x"}`, "c1,x\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			w, err := NewCSV(&b, tt.columns, false)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Write(json.RawMessage(tt.doc)); err != nil {
				t.Fatal(err)
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			_, row, ok := strings.Cut(b.String(), "\r\n")
			if !ok || row != tt.want {
				t.Errorf("row %q, want %q", row, tt.want)
			}
		})
	}
}

func TestACSVHasAHeaderOfPathsAndOptionallyAByteOrderMark(t *testing.T) {
	for _, bom := range []bool{false, true} {
		var b bytes.Buffer
		w, err := NewCSV(&b, []string{"name", "metrics.total_spend"}, bom)
		if err != nil {
			t.Fatal(err)
		}
		_ = w.Flush()
		want := "customer_id,name,metrics.total_spend\r\n"
		if bom {
			want = "\xEF\xBB\xBF" + want
		}
		if b.String() != want {
			t.Errorf("bom %v: %q, want %q", bom, b.String(), want)
		}
	}
}

func TestACSVReadsBackWithEncodingCSV(t *testing.T) {
	names := []string{"张三", "Chen, Alice", `say "hi"`, "line\nbreak", "=HYPERLINK(\"x\")", "", "普通,中文\n第二行"}
	var b bytes.Buffer
	w, _ := NewCSV(&b, []string{"name"}, false)
	for i, n := range names {
		doc, _ := json.Marshal(map[string]any{"customer_id": string(rune('a' + i)), "name": n})
		if err := w.Write(doc); err != nil {
			t.Fatal(err)
		}
	}
	_ = w.Flush()
	records, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(records) != len(names)+1 {
		t.Fatalf("%d records, want %d", len(records), len(names)+1)
	}
	for i, n := range names {
		if want := Defuse(n); records[i+1][1] != want {
			t.Errorf("record %d: %q, want %q", i+1, records[i+1][1], want)
		}
	}
}

func TestNDJSONIsOneCompactDocumentPerLine(t *testing.T) {
	var b bytes.Buffer
	w := NewNDJSON(&b)
	for _, doc := range []string{"{\n  \"customer_id\": \"c1\",\n  \"name\": \"a\\nb\"\n}", `{"customer_id":"c2","orders":[{"items":[{"sku":"p"}]}]}`} {
		if err := w.Write(json.RawMessage(doc)); err != nil {
			t.Fatal(err)
		}
	}
	_ = w.Flush()
	want := "{\"customer_id\":\"c1\",\"name\":\"a\\nb\"}\n{\"customer_id\":\"c2\",\"orders\":[{\"items\":[{\"sku\":\"p\"}]}]}\n"
	if b.String() != want {
		t.Errorf("%q, want %q", b.String(), want)
	}
	if err := w.Write(json.RawMessage(`{"broken`)); err == nil {
		t.Error("a document that is not JSON was written")
	}
}

func TestFormatsAreNamedNDJSONOrCSV(t *testing.T) {
	tests := []struct {
		in   string
		want Format
		ok   bool
	}{{"", NDJSON, true}, {"ndjson", NDJSON, true}, {"CSV", CSV, true}, {"xlsx", "", false}, {"json", "", false}}
	for _, tt := range tests {
		got, err := ParseFormat(tt.in)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("ParseFormat(%q) = %q, %v", tt.in, got, err)
		}
	}
}

func TestTheDefaultColumnsAreTheNonNestedCatalogFields(t *testing.T) {
	cols := DefaultColumns(schema.Base().With(schema.Field{Name: "attrs.shoe", Type: schema.Number}, schema.Field{Name: "properties.sku", Type: schema.Keyword}))
	has := map[string]bool{}
	for _, c := range cols {
		has[c] = true
	}
	for _, want := range []string{"name", "phone", "metrics.total_spend", "tags", "attrs.shoe"} {
		if !has[want] {
			t.Errorf("default columns lack %s: %v", want, cols)
		}
	}
	for _, not := range []string{"customer_id", "orders", "orders.status", "orders.items.sku", "properties.sku"} {
		if has[not] {
			t.Errorf("default columns hold %s", not)
		}
	}
}

// pages is a Pager over fixed pages.
type pages struct {
	pages [][]string
	err   error
	scans []store.Scan
}

func (p *pages) Pages(ctx context.Context, index string, s store.Scan) iter.Seq2[*store.SearchResult, error] {
	p.scans = append(p.scans, s)
	return func(yield func(*store.SearchResult, error) bool) {
		for _, pg := range p.pages {
			r := &store.SearchResult{}
			for _, d := range pg {
				var doc struct {
					ID string `json:"customer_id"`
				}
				_ = json.Unmarshal([]byte(d), &doc)
				key, _ := json.Marshal(doc.ID)
				r.Hits = append(r.Hits, store.Hit{Source: json.RawMessage(d), Sort: []json.RawMessage{key}})
			}
			if !yield(r, nil) {
				return
			}
		}
		if p.err != nil {
			yield(nil, p.err)
		}
	}
}

func TestStreamWritesEveryPageFlushingAfterEachUnderAPointInTime(t *testing.T) {
	p := &pages{pages: [][]string{{`{"customer_id":"a"}`, `{"customer_id":"b"}`}, {`{"customer_id":"c"}`}}}
	var b bytes.Buffer
	var seen []Progress
	n, err := Stream(context.Background(), p, Query{Index: "x", Query: map[string]any{"match_all": map[string]any{}}}, NewNDJSON(&b),
		func(pr Progress) error { seen = append(seen, pr); return nil })
	if err != nil || n != 3 {
		t.Fatalf("n %d, err %v", n, err)
	}
	want := []Progress{{Written: 2, Last: "b"}, {Written: 3, Last: "c"}}
	if strings.Count(b.String(), "\n") != 3 || len(seen) != 2 || seen[0] != want[0] || seen[1] != want[1] {
		t.Errorf("output %q, pages %v, want %v", b.String(), seen, want)
	}
	s := p.scans[0]
	if s.KeepAlive <= 0 || s.PageSize != DefaultPageSize || s.Body["sort"] == nil || s.Body["search_after"] != nil {
		t.Errorf("scan %+v: want a point in time, the default page, a sort and no start", s)
	}
	if _, _ = Stream(context.Background(), p, Query{After: "b"}, NewNDJSON(&bytes.Buffer{}), nil); fmt.Sprint(p.scans[1].Body["search_after"]) != "[b]" {
		t.Errorf("a resumed walk starts after %v, want [b]", p.scans[1].Body["search_after"])
	}
}

func TestStreamStopsAtTheFirstErrorOfTheSearchOrOfTheConsumer(t *testing.T) {
	boom := errors.New("boom")
	p := &pages{pages: [][]string{{`{"customer_id":"a"}`}}, err: boom}
	if _, err := Stream(context.Background(), p, Query{}, NewNDJSON(&bytes.Buffer{}), nil); !errors.Is(err, boom) {
		t.Errorf("search error: got %v", err)
	}
	p = &pages{pages: [][]string{{`{"customer_id":"a"}`}, {`{"customer_id":"b"}`}}}
	n, err := Stream(context.Background(), p, Query{}, NewNDJSON(&bytes.Buffer{}), func(Progress) error { return boom })
	if !errors.Is(err, boom) || n != 1 {
		t.Errorf("consumer error: n %d, err %v", n, err)
	}
}
