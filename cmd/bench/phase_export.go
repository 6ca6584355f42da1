package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"cdp/schema"
	"cdp/store"
)

// exportFilter selects most customers: everyone not in 北京 (customers
// without a city included, CONTRACT §3.2 rule 2).
var exportFilter = raw(`{"field":"city","op":"neq","value":"北京"}`)

// exportFields are the fields of a typical audience export.
var exportFields = []string{"name", "phone", "email", "city", "member_level", "registered_at", "metrics.total_spend", "metrics.order_count"}

// exportPage is the page size of both loops (the API's maximum).
const exportPage = 1000

// ExportResult compares the API's cursor paging with a raw point-in-time
// loop over the same query, sort and fields.
type ExportResult struct {
	Audience int64           `json:"audience"`
	Fields   []string        `json:"fields"`
	PageSize int             `json:"page_size"`
	Rounds   []ExportRound   `json:"rounds"`
	APIDocs  float64         `json:"api_docs_per_sec"` // best round
	RawDocs  float64         `json:"raw_docs_per_sec"` // best round
	Ratio    float64         `json:"ratio"`
	Pass     bool            `json:"goal_pass"`
	Filter   json.RawMessage `json:"filter"`
}

// ExportRound is one API pass and one raw pass.
type ExportRound struct {
	APIDocs    int     `json:"api_docs"`
	APISeconds float64 `json:"api_seconds"`
	RawDocs    int     `json:"raw_docs"`
	RawSeconds float64 `json:"raw_seconds"`
}

// exportAPI pages through POST /v1/customers/search with next_cursor.
func exportAPI(ctx context.Context, api endpoint) (int, time.Duration, error) {
	start := time.Now()
	var cursor *string
	n := 0
	for {
		req := map[string]any{"filter": exportFilter, "size": exportPage, "fields": exportFields, "cursor": cursor}
		var resp struct {
			Customers  []json.RawMessage `json:"customers"`
			NextCursor *string           `json:"next_cursor"`
		}
		if err := api.json(ctx, http.MethodPost, "/v1/customers/search", req, &resp); err != nil {
			return n, 0, err
		}
		n += len(resp.Customers)
		if resp.NextCursor == nil {
			return n, time.Since(start), nil
		}
		cursor = resp.NextCursor
	}
}

// exportRaw is the same export done directly: a point in time on the
// customers alias and search_after on customer_id, through the store
// package's paging (the loop exports use).
func exportRaw(ctx context.Context, os endpoint, customers string, dsl json.RawMessage) (int, time.Duration, error) {
	start := time.Now()
	st, err := store.New(string(os))
	if err != nil {
		return 0, 0, err
	}
	include := append([]string{"customer_id"}, exportFields...)
	scan := store.Scan{PageSize: exportPage, KeepAlive: 2 * time.Minute, Body: map[string]any{
		"query": dsl, "sort": []any{map[string]any{"customer_id": "asc"}},
		"_source": map[string]any{"includes": include}, "track_total_hits": false,
	}}
	n := 0
	for page, err := range st.Pages(ctx, customers, scan) {
		if err != nil {
			return n, 0, err
		}
		n += len(page.Hits)
	}
	return n, time.Since(start), nil
}

// runExport runs rounds of API then raw, and keeps the best of each.
func runExport(ctx context.Context, api, os endpoint, customers string, rounds int, logf func(string)) (ExportResult, error) {
	r := ExportResult{Fields: exportFields, PageSize: exportPage, Filter: exportFilter}
	dsl, err := translate(ctx, api, exportFilter)
	if err != nil {
		return r, err
	}
	// The PIT is taken on the filtered customers alias; make the relation
	// filter explicit too, so the raw loop can never read event children.
	dsl, _ = json.Marshal(map[string]any{"bool": map[string]any{"must": []any{dsl},
		"filter": []any{map[string]any{"term": map[string]any{schema.JoinField: schema.CustomerRelation}}}}})
	var count struct {
		Count int64 `json:"count"`
	}
	if err := api.json(ctx, http.MethodPost, "/v1/customers/count", map[string]any{"filter": exportFilter}, &count); err != nil {
		return r, err
	}
	r.Audience = count.Count
	for i := 0; i < rounds; i++ {
		var round ExportRound
		n, d, err := exportAPI(ctx, api)
		if err != nil {
			return r, fmt.Errorf("API export: %w", err)
		}
		round.APIDocs, round.APISeconds = n, round3(d.Seconds())
		if n2, d2, err := exportRaw(ctx, os, customers, dsl); err != nil {
			return r, fmt.Errorf("raw export: %w", err)
		} else {
			round.RawDocs, round.RawSeconds = n2, round3(d2.Seconds())
		}
		if int64(round.APIDocs) != r.Audience || int64(round.RawDocs) != r.Audience {
			return r, fmt.Errorf("export read %d (API) and %d (raw) customers of an audience of %d", round.APIDocs, round.RawDocs, r.Audience)
		}
		r.Rounds = append(r.Rounds, round)
		r.APIDocs = max(r.APIDocs, round2(float64(round.APIDocs)/round.APISeconds))
		r.RawDocs = max(r.RawDocs, round2(float64(round.RawDocs)/round.RawSeconds))
		logf(fmt.Sprintf("export round %d: API %d docs in %.2fs, raw PIT %d docs in %.2fs", i+1, round.APIDocs, round.APISeconds, round.RawDocs, round.RawSeconds))
	}
	r.Ratio = ratio(r.APIDocs, r.RawDocs)
	r.Pass = r.Ratio >= 0.9
	return r, nil
}
