package query_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/opensearch-project/opensearch-go/v4"
	"github.com/opensearch-project/opensearch-go/v4/opensearchapi"

	"cdp/mapping"

	"cdp/query"
	"cdp/query/dsl"
	"cdp/query/querytest"
	"cdp/schema"
	"cdp/testing/harness"
)

// Knobs of the differential test, from the environment.
const (
	envFilters   = "CDP_DIFF_FILTERS"   // how many random filters (default 2000)
	envCustomers = "CDP_DIFF_CUSTOMERS" // how many random customers (default 400)
	envSeed      = "CDP_DIFF_SEED"      // the seed of the generator (default 1)
)

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, s, err)
	}
	return n
}

// TestTranslationAgreesWithTheEvaluatorOnOpenSearch indexes random
// customers with their events into a fresh index of a real OpenSearch,
// then checks for random filters that the translated query finds exactly
// the customers the reference evaluator accepts.
func TestTranslationAgreesWithTheEvaluatorOnOpenSearch(t *testing.T) {
	cluster := openSearch(t)
	nFilters, nCustomers := envInt(t, envFilters, 2000), envInt(t, envCustomers, 400)
	seed := uint64(envInt(t, envSeed, 1))
	t.Logf("%d filters over %d customers, seed %d (%s, %s, %s)", nFilters, nCustomers, seed, envFilters, envCustomers, envSeed)

	g := querytest.NewGenerator(seed, now)
	customers := make([]querytest.Customer, nCustomers)
	for i := range customers {
		customers[i] = g.Customer(fmt.Sprintf("c%04d", i))
	}
	cluster.create(t, cluster.index)
	cluster.bulk(t, cluster.index, customers)

	p := query.Parser{Catalog: g.Catalog(), Segments: g}
	r := rand.New(rand.NewPCG(seed, 0))
	var filters []query.Filter
	var cases []diffCase
	for range nFilters {
		raw := g.Filter(4)
		f, err := p.Parse(raw)
		if err != nil {
			t.Fatalf("generated filter %s: %v", raw, err)
		}
		filters = append(filters, f)
		opts := query.Options{Now: now, Location: zone(t, []string{"Asia/Shanghai", "America/New_York", "UTC"}[r.IntN(3)])}
		cases = append(cases, diffCase{raw: raw, filter: f, opts: opts, query: query.Translate(f, opts)})
	}

	got := cluster.search(t, cases, len(customers))
	mismatches, partial := 0, 0
	for i, c := range cases {
		if n := len(got[i]); n > 0 && n < len(customers) {
			partial++
		}
		for _, cu := range customers {
			want := querytest.Eval(c.filter, cu.Doc, cu.Events, c.opts)
			if want == got[i][cu.ID] {
				continue
			}
			mismatches++
			if mismatches <= 5 {
				cluster.report(t, c, cu, want)
			} else {
				t.Errorf("filter %s in %s also disagrees on %s", c.raw, c.opts.Location, cu.ID)
			}
			break
		}
	}
	cov := querytest.Coverage(filters)
	t.Logf("%d filters covered %d node/operator combinations; %d matched some customers but not all", len(filters), len(cov), partial)
	if missing := querytest.Missing(cov); len(missing) > 0 {
		t.Errorf("the filters miss the combinations %v", missing)
	}
	if mismatches > 0 {
		t.Errorf("%d of %d filters disagree with the evaluator", mismatches, len(cases))
	}
}

// TestSumsAndAveragesOfCentsAreExactOnOpenSearch checks the scoring trick
// of sum and avg on amounts whose float32 sum is off by one unit in the
// last place (0.01 + 0.53) unless they are scaled to whole cents.
func TestSumsAndAveragesOfCentsAreExactOnOpenSearch(t *testing.T) {
	cluster := openSearch(t)
	cluster.create(t, cluster.index)
	var doc map[string]any
	if err := json.Unmarshal([]byte(`{"customer_id": "cents", "orders": [
		{"total_amount": 0.01, "items": [{"price": 199.99}, {"price": 199.99}]},
		{"total_amount": 0.53, "items": [{"price": 199.99}]}]}`), &doc); err != nil {
		t.Fatal(err)
	}
	customer := querytest.Customer{ID: "cents", Doc: doc}
	cluster.bulk(t, cluster.index, []querytest.Customer{customer})
	p := query.Parser{Catalog: schema.Base()}
	for _, agg := range []string{
		`{"path": "orders", "fn": "sum", "field": "orders.total_amount"}, "op": "eq", "value": 0.54`,
		`{"path": "orders", "fn": "sum", "field": "orders.total_amount"}, "op": "gte", "value": 0.54`,
		`{"path": "orders", "fn": "sum", "field": "orders.total_amount"}, "op": "lte", "value": 0.54`,
		`{"path": "orders", "fn": "sum", "field": "orders.total_amount"}, "op": "gt", "value": 0.53`,
		`{"path": "orders", "fn": "avg", "field": "orders.total_amount"}, "op": "eq", "value": 0.27`,
		`{"path": "orders.items", "fn": "sum", "field": "orders.items.price"}, "op": "eq", "value": 599.97`,
		`{"path": "orders.items", "fn": "avg", "field": "orders.items.price"}, "op": "eq", "value": 199.99`,
		`{"path": "orders.items", "fn": "avg", "field": "orders.items.price"}, "op": "lt", "value": 199.99`,
	} {
		raw := `{"aggregate": ` + agg + `}`
		f, err := p.Parse([]byte(raw))
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		opts := query.Options{Now: now, Location: time.UTC}
		want := querytest.Eval(f, customer.Doc, nil, opts)
		if got := cluster.matches(t, cluster.index, query.Translate(f, opts), customer.ID); got != want {
			t.Errorf("%s: OpenSearch says %v, the evaluator %v", raw, got, want)
		}
	}
}

// diffCase is one random filter with its translation.
type diffCase struct {
	raw    json.RawMessage
	filter query.Filter
	opts   query.Options
	query  dsl.Query
}

// searcher runs the test's requests against one index.
type searcher struct {
	client *opensearchapi.Client
	index  string
	// scratch is the index minimal failing customers are tried in, made
	// when first needed.
	scratch string
	tries   int
}

// openSearch connects to the harness's OpenSearch: the test skips under
// -short and fails when OpenSearch does not answer.
func openSearch(t *testing.T) *searcher {
	t.Helper()
	url := harness.Services(t).OpenSearchURL
	client, err := opensearchapi.NewClient(opensearchapi.Config{Client: opensearch.Config{Addresses: []string{url}}})
	if err != nil {
		t.Fatalf("OpenSearch at %s: %v", url, err)
	}
	return &searcher{client: client, index: fmt.Sprintf("cdp-querytest-%d", time.Now().UnixNano())}
}

// create creates an index with the production customers mapping (which
// has what the translation relies on: the join field of customers and
// their events, the event fields, and properties.<name> typed like
// attrs.<name>), deleted when the test ends.
func (s *searcher) create(t *testing.T, index string) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.client.Indices.Create(ctx, opensearchapi.IndicesCreateReq{Index: index, Body: bytes.NewReader(mapping.Customers.Body())}); err != nil {
		t.Fatalf("create index %s: %v", index, err)
	}
	t.Cleanup(func() {
		if _, err := s.client.Indices.Delete(context.Background(), opensearchapi.IndicesDeleteReq{Indices: []string{index}}); err != nil {
			t.Errorf("delete index %s: %v", index, err)
		}
	})
}

// bulk writes customers and their events into an index and makes them
// searchable.
func (s *searcher) bulk(t *testing.T, index string, customers []querytest.Customer) {
	t.Helper()
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	line := func(v any) {
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range customers {
		doc := maps.Clone(c.Doc)
		doc[query.JoinField] = query.CustomerRelation
		line(map[string]any{"index": map[string]any{"_id": c.ID, "routing": c.ID}})
		line(doc)
		for i, e := range c.Events {
			line(map[string]any{"index": map[string]any{"_id": c.ID + "-e" + strconv.Itoa(i), "routing": c.ID}})
			line(map[string]any{
				query.JoinField:      map[string]any{"name": query.EventRelation, "parent": c.ID},
				query.EventNameField: e.Name,
				query.EventTimeField: e.Timestamp,
				"properties":         e.Properties,
			})
		}
	}
	resp, err := s.client.Bulk(context.Background(), opensearchapi.BulkReq{Index: index, Body: &body, Params: opensearchapi.BulkParams{Refresh: "true"}})
	if err != nil {
		t.Fatalf("bulk: %v", err)
	}
	if resp.Errors {
		for _, item := range resp.Items {
			for _, r := range item {
				if r.Error != nil {
					t.Fatalf("bulk: %s: %s: %s", r.ID, r.Error.Type, r.Error.Reason)
				}
			}
		}
	}
}

// search runs the cases in batches of _msearch and returns, per case, the
// ids of the customers found.
func (s *searcher) search(t *testing.T, cases []diffCase, size int) []map[string]bool {
	t.Helper()
	const batch = 100
	out := make([]map[string]bool, 0, len(cases))
	for start := 0; start < len(cases); start += batch {
		var body bytes.Buffer
		for _, c := range cases[start:min(start+batch, len(cases))] {
			req, err := json.Marshal(map[string]any{"query": c.query, "size": size, "_source": false})
			if err != nil {
				t.Fatal(err)
			}
			body.WriteString("{}\n")
			body.Write(req)
			body.WriteByte('\n')
		}
		resp, err := s.client.MSearch(context.Background(), opensearchapi.MSearchReq{Indices: []string{s.index}, Body: &body})
		if err != nil {
			t.Fatalf("msearch: %v", err)
		}
		for i, r := range resp.Responses {
			if r.Error != nil {
				c := cases[start+i]
				q, _ := json.Marshal(c.query)
				t.Fatalf("filter %s failed: %s: %s\nquery: %s", c.raw, r.Error.Type, r.Error.Reason, q)
			}
			ids := map[string]bool{}
			for _, h := range r.Hits.Hits {
				ids[h.ID] = true
			}
			out = append(out, ids)
		}
	}
	return out
}

// matches runs one query against one customer of an index.
func (s *searcher) matches(t *testing.T, index string, q dsl.Query, id string) bool {
	t.Helper()
	body, err := json.Marshal(map[string]any{"query": dsl.Bool{Filter: []dsl.Query{q, dsl.IDs{Values: []string{id}}}}, "size": 0})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := s.client.Search(context.Background(), &opensearchapi.SearchReq{Indices: []string{index}, Body: bytes.NewReader(body)})
	if err != nil {
		t.Fatalf("search: %v", err)
	}
	return resp.Hits.Total.Value == 1
}

// report prints a disagreement with a minimal customer that still shows it.
func (s *searcher) report(t *testing.T, c diffCase, cu querytest.Customer, want bool) {
	t.Helper()
	small := s.shrink(t, c, cu)
	q, _ := json.MarshalIndent(c.query, "", "  ")
	doc, _ := json.Marshal(small.Doc)
	events, _ := json.Marshal(small.Events)
	t.Errorf("filter %s in %s: the evaluator says %v, OpenSearch says %v\nfor customer %s\nwith events %s\nquery: %s",
		c.raw, c.opts.Location, want, !want, doc, events, q)
}

// shrink removes parts of a customer (fields, orders, items, events,
// properties) as long as OpenSearch and the evaluator still disagree on it.
func (s *searcher) shrink(t *testing.T, c diffCase, cu querytest.Customer) querytest.Customer {
	t.Helper()
	if s.scratch == "" {
		s.scratch = s.index + "-shrink"
		s.create(t, s.scratch)
	}
	disagrees := func(x querytest.Customer) bool {
		s.tries++
		x.ID = fmt.Sprintf("shrink-%d", s.tries)
		s.bulk(t, s.scratch, []querytest.Customer{x})
		return s.matches(t, s.scratch, c.query, x.ID) != querytest.Eval(c.filter, x.Doc, x.Events, c.opts)
	}
	if !disagrees(cu) {
		return cu
	}
	for budget := 300; budget > 0; {
		shrunk := false
		for _, x := range smaller(cu) {
			if budget--; budget <= 0 {
				break
			}
			if disagrees(x) {
				cu, shrunk = x, true
				break
			}
		}
		if !shrunk {
			break
		}
	}
	return cu
}

// smaller returns the customers one step smaller than c.
func smaller(c querytest.Customer) []querytest.Customer {
	var out []querytest.Customer
	for i := range c.Events {
		x := c
		x.Events = slices.Delete(slices.Clone(c.Events), i, i+1)
		out = append(out, x)
	}
	for i, e := range c.Events {
		for _, small := range smallerValues(e.Properties) {
			x := c
			x.Events = slices.Clone(c.Events)
			x.Events[i].Properties = small.(map[string]any)
			out = append(out, x)
		}
	}
	for _, doc := range smallerValues(c.Doc) {
		x := c
		x.Doc = doc.(map[string]any)
		out = append(out, x)
	}
	return out
}

// smallerValues returns the JSON values one step smaller than v: with one
// key or one element less, or one of them smaller.
func smallerValues(v any) []any {
	var out []any
	switch v := v.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(v)) {
			if k == "customer_id" {
				continue
			}
			x := maps.Clone(v)
			delete(x, k)
			out = append(out, x)
			for _, small := range smallerValues(v[k]) {
				x := maps.Clone(v)
				x[k] = small
				out = append(out, x)
			}
		}
	case []any:
		for i := range v {
			out = append(out, slices.Delete(slices.Clone(v), i, i+1))
			for _, small := range smallerValues(v[i]) {
				x := slices.Clone(v)
				x[i] = small
				out = append(out, x)
			}
		}
	}
	return out
}

func zone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}
