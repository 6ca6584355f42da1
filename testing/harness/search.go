package harness

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"cdp/config"
	"cdp/mapping"
)

// CustomerByIdentity returns the customer document holding the identity,
// as search sees it now (nil when there is none).
func (e *Env) CustomerByIdentity(t testing.TB, cfg *config.Config, typ, value string) map[string]any {
	t.Helper()
	docs := e.searchCustomers(t, cfg, map[string]any{"nested": map[string]any{"path": "identities",
		"query": map[string]any{"bool": map[string]any{"filter": []any{
			map[string]any{"term": map[string]any{"identities.type": typ}},
			map[string]any{"term": map[string]any{"identities.value": value}},
		}}}}}, 2)
	switch len(docs) {
	case 0:
		return nil
	case 1:
		return docs[0]
	}
	t.Fatalf("%d customers hold %s %s: identities must resolve to one", len(docs), typ, value)
	return nil
}

// AllCustomers returns every customer document (up to 10,000).
func (e *Env) AllCustomers(t testing.TB, cfg *config.Config) []map[string]any {
	t.Helper()
	return e.searchCustomers(t, cfg, map[string]any{"match_all": map[string]any{}}, 10000)
}

func (e *Env) searchCustomers(t testing.TB, cfg *config.Config, query map[string]any, size int) []map[string]any {
	t.Helper()
	st := e.Store(t)
	idx := mapping.Customers.Alias(cfg.IndexPrefix)
	ctx := context.Background()
	if err := st.Refresh(ctx, idx); err != nil {
		t.Fatal(err)
	}
	res, err := st.Search(ctx, idx, map[string]any{"size": size, "query": query})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]map[string]any, 0, len(res.Hits))
	for _, h := range res.Hits {
		var d map[string]any
		if err := json.Unmarshal(h.Source, &d); err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

// Count returns how many documents of one of the service's indices
// ("customers", "events", …) match the query, after a refresh.
func (e *Env) Count(t testing.TB, cfg *config.Config, index string, query map[string]any) int64 {
	t.Helper()
	st := e.Store(t)
	alias := cfg.IndexPrefix + "-" + index
	ctx := context.Background()
	if err := st.Refresh(ctx, alias); err != nil {
		t.Fatal(err)
	}
	var resp struct {
		Count int64 `json:"count"`
	}
	if err := st.Do(ctx, http.MethodPost, "/"+alias+"/_count", map[string]any{"query": query}, &resp); err != nil {
		t.Fatal(err)
	}
	return resp.Count
}

// BreakerTrips is how many times any circuit breaker of any OpenSearch
// node has tripped since it started: a request that made OpenSearch shed
// work shows as a rise.
func (e *Env) BreakerTrips(t testing.TB) int64 {
	t.Helper()
	var resp struct {
		Nodes map[string]struct {
			Breakers map[string]struct {
				Tripped int64 `json:"tripped"`
			} `json:"breakers"`
		} `json:"nodes"`
	}
	if err := e.Store(t).Do(context.Background(), http.MethodGet, "/_nodes/stats/breaker", nil, &resp); err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, node := range resp.Nodes {
		for _, b := range node.Breakers {
			n += b.Tripped
		}
	}
	return n
}
