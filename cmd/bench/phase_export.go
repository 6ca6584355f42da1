package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// exportFilter selects most customers: everyone not in 北京 (customers
// without a city included, CONTRACT §3.2 rule 2).
var exportFilter = raw(`{"field":"city","op":"neq","value":"北京"}`)

// exportFields are the fields of a typical audience export.
var exportFields = []string{"name", "phone", "email", "city", "member_level", "registered_at", "metrics.total_spend", "metrics.order_count"}

// exportPage is the page size of both loops (the API's maximum).
const exportPage = 1000

// ExportResult compares an export through the API with a raw loop that
// does the same work directly against OpenSearch: the same requests,
// filter, page size, sort and fields, described in APIWork and RawWork.
type ExportResult struct {
	Audience int64           `json:"audience"`
	Fields   []string        `json:"fields"`
	PageSize int             `json:"page_size"`
	APIName  string          `json:"api_name,omitempty"`
	RawName  string          `json:"raw_name,omitempty"`
	APIWork  string          `json:"api_work,omitempty"`
	RawWork  string          `json:"raw_work,omitempty"`
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

// exportPair is an export through the API and the raw loop that does the
// same work against OpenSearch, with what each side does, for the
// report. The two must change together: a raw side that pages under a
// point in time while the API does not (or the other way round) measures
// different work.
type exportPair struct {
	APIName, RawName string
	APIWork, RawWork string
	// API exports the audience of exportFilter through the API; Raw
	// exports it directly, from the filter's DSL, on the customers alias.
	API func(ctx context.Context, api endpoint) (int, time.Duration, error)
	Raw func(ctx context.Context, os endpoint, customers string, dsl json.RawMessage) (int, time.Duration, error)
}

// cursorExport is the export the API has today: cursor paging of POST
// /v1/customers/search with the export's filter, fields and page size
// and no sort. Under that default sort (customer_id alone) the API opens
// no point in time (api/search.go, cursor): each page is a _search on the
// customers alias, sorted on customer_id, search_after the previous page's
// last customer from the second page on, with track_total_hits. The raw
// loop sends exactly those searches itself.
var cursorExport = exportPair{
	APIName: "API cursor paging",
	RawName: "raw `_search` + search_after, no point in time",
	APIWork: fmt.Sprintf("`POST /v1/customers/search` with the filter, `size` %d and `fields`, then with each page's `next_cursor` until it is null; the API sends each page to OpenSearch as the raw side does", exportPage),
	RawWork: fmt.Sprintf("`_search` on the customers alias with the filter's DSL (from `/v1/filters/translate`), `size` %d, sort `customer_id` asc, `_source` includes `customer_id` and the fields, `track_total_hits` true, and from the second page `search_after` the last hit's sort values; no point in time, as the API opens none under its default sort", exportPage),
	API:     exportAPI,
	Raw:     exportRaw,
}

// streamExport is the audience export of CONTRACT §4.3: GET
// /v1/segments/{id}/export of a segment saved with the export's filter,
// as NDJSON with the export's fields. The API reads it under one point in
// time (export.Stream): pages of exportPage on the customers alias, sorted
// on customer_id, search_after the last one, no total. The raw loop opens
// a point in time and sends those searches itself.
var streamExport = exportPair{
	APIName: "API streaming export",
	RawName: "raw point-in-time loop",
	APIWork: fmt.Sprintf("`GET /v1/segments/{id}/export?format=ndjson&fields=…` of a segment saved with the filter, read to the end (one NDJSON line a member); the API pages under one point in time, %d hits a page, sorted on `customer_id`, `track_total_hits` false", exportPage),
	RawWork: fmt.Sprintf("open a point in time on the customers alias, `_search` with it, the filter's DSL, `size` %d, sort `customer_id` asc, `_source` includes `customer_id` and the fields, `track_total_hits` false, each page `search_after` the last hit's sort values, until a short page; then close it", exportPage),
	API:     exportStreamAPI,
	Raw:     exportPITRaw,
}

// measuredExport is the export the bench measures. An export endpoint of
// another shape is measured by pointing this at a pair whose API side
// calls it and whose raw side does the work it does (the same point in
// time, if it reads under one).
var measuredExport = streamExport

// exportStreamAPI saves a segment of the export's filter (the first time)
// and streams its export to the end, counting members.
func exportStreamAPI(ctx context.Context, api endpoint) (int, time.Duration, error) {
	if exportSegment == "" {
		var seg struct {
			ID string `json:"id"`
		}
		if err := api.json(ctx, http.MethodPost, "/v1/segments", map[string]any{"name": "bench export", "filter": exportFilter}, &seg); err != nil {
			return 0, 0, err
		}
		exportSegment = seg.ID
	}
	start := time.Now()
	path := "/v1/segments/" + url.PathEscape(exportSegment) + "/export?format=ndjson&fields=" + url.QueryEscape(strings.Join(exportFields, ","))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, string(api)+path, nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return 0, 0, fmt.Errorf("GET %s: %d: %s", path, resp.StatusCode, b)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	n := 0
	for sc.Scan() {
		if len(sc.Bytes()) > 0 {
			n++
		}
	}
	if err := sc.Err(); err != nil {
		return n, 0, fmt.Errorf("GET %s: read: %w", path, err)
	}
	return n, time.Since(start), nil
}

// exportSegment is the segment exportStreamAPI saved.
var exportSegment string

// exportPITRaw is the streaming export's reads done directly.
func exportPITRaw(ctx context.Context, os endpoint, customers string, dsl json.RawMessage) (int, time.Duration, error) {
	start := time.Now()
	var pit struct {
		ID string `json:"pit_id"`
	}
	if err := os.json(ctx, http.MethodPost, "/"+customers+"/_search/point_in_time?keep_alive=2m", nil, &pit); err != nil {
		return 0, 0, err
	}
	defer func() {
		_, _ = os.do(context.WithoutCancel(ctx), http.MethodDelete, "/_search/point_in_time", map[string]any{"pit_id": []string{pit.ID}})
	}()
	var after []json.RawMessage
	n := 0
	for {
		body := map[string]any{
			"query": dsl, "size": exportPage, "sort": []any{map[string]any{"customer_id": "asc"}}, "track_total_hits": false,
			"pit":     map[string]any{"id": pit.ID, "keep_alive": "2m"},
			"_source": map[string]any{"includes": append([]string{"customer_id"}, exportFields...)},
		}
		if after != nil {
			body["search_after"] = after
		}
		var resp struct {
			PITID string `json:"pit_id"`
			Hits  struct {
				Hits []struct {
					Source json.RawMessage   `json:"_source"`
					Sort   []json.RawMessage `json:"sort"`
				} `json:"hits"`
			} `json:"hits"`
		}
		if err := os.json(ctx, http.MethodPost, "/_search", body, &resp); err != nil {
			return n, 0, err
		}
		if resp.PITID != "" {
			pit.ID = resp.PITID
		}
		hits := resp.Hits.Hits
		n += len(hits)
		if len(hits) < exportPage {
			return n, time.Since(start), nil
		}
		after = hits[len(hits)-1].Sort
	}
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

// rawExportBody is the search the API sends for a page of the export
// (api/search.go plan and resume, under the default sort): after is the
// previous page's last sort values, nil for the first page.
func rawExportBody(dsl json.RawMessage, after []json.RawMessage) map[string]any {
	body := map[string]any{
		"query": dsl, "size": exportPage, "sort": rawSort(nil), "track_total_hits": true,
		"_source": map[string]any{"includes": append([]string{"customer_id"}, exportFields...)},
	}
	if after != nil {
		body["search_after"] = after
	}
	return body
}

// exportRaw is the API's export done directly: the searches of
// rawExportBody on the customers alias, each after the last hit of the
// one before, until a page comes back short (the API returns a next
// cursor for every full page, so both sides send the same requests).
func exportRaw(ctx context.Context, os endpoint, customers string, dsl json.RawMessage) (int, time.Duration, error) {
	start := time.Now()
	var after []json.RawMessage
	n := 0
	for {
		var resp struct {
			Hits struct {
				Hits []struct {
					Source json.RawMessage   `json:"_source"`
					Sort   []json.RawMessage `json:"sort"`
				} `json:"hits"`
			} `json:"hits"`
		}
		if err := os.json(ctx, http.MethodPost, "/"+customers+"/_search", rawExportBody(dsl, after), &resp); err != nil {
			return n, 0, err
		}
		hits := resp.Hits.Hits
		n += len(hits)
		if len(hits) < exportPage {
			return n, time.Since(start), nil
		}
		after = hits[len(hits)-1].Sort
	}
}

// runExport runs rounds of both sides, the API first in odd rounds and
// the raw loop first in even ones, and keeps the best of each.
func runExport(ctx context.Context, api, os endpoint, customers string, rounds int, logf func(string)) (ExportResult, error) {
	x := measuredExport
	r := ExportResult{Fields: exportFields, PageSize: exportPage, Filter: exportFilter,
		APIName: x.APIName, RawName: x.RawName, APIWork: x.APIWork, RawWork: x.RawWork}
	// The DSL the API runs for the filter; the customers alias keeps event
	// children out of both sides' searches.
	dsl, err := translate(ctx, api, exportFilter)
	if err != nil {
		return r, err
	}
	var count struct {
		Count int64 `json:"count"`
	}
	if err := api.json(ctx, http.MethodPost, "/v1/customers/count", map[string]any{"filter": exportFilter}, &count); err != nil {
		return r, err
	}
	r.Audience = count.Count
	for i := 0; i < rounds; i++ {
		var round ExportRound
		apiSide := func() error {
			n, d, err := x.API(ctx, api)
			if err != nil {
				return fmt.Errorf("API export: %w", err)
			}
			round.APIDocs, round.APISeconds = n, round3(d.Seconds())
			return nil
		}
		rawSide := func() error {
			n, d, err := x.Raw(ctx, os, customers, dsl)
			if err != nil {
				return fmt.Errorf("raw export: %w", err)
			}
			round.RawDocs, round.RawSeconds = n, round3(d.Seconds())
			return nil
		}
		// The side that goes second reads what the first just brought
		// into OpenSearch's caches: the sides take turns going first.
		sides := []func() error{apiSide, rawSide}
		if i%2 == 1 {
			sides[0], sides[1] = rawSide, apiSide
		}
		for _, side := range sides {
			if err := side(); err != nil {
				return r, err
			}
		}
		if int64(round.APIDocs) != r.Audience || int64(round.RawDocs) != r.Audience {
			return r, fmt.Errorf("export read %d (API) and %d (raw) customers of an audience of %d", round.APIDocs, round.RawDocs, r.Audience)
		}
		r.Rounds = append(r.Rounds, round)
		r.APIDocs = max(r.APIDocs, round2(float64(round.APIDocs)/round.APISeconds))
		r.RawDocs = max(r.RawDocs, round2(float64(round.RawDocs)/round.RawSeconds))
		logf(fmt.Sprintf("export round %d: %s %d docs in %.2fs, %s %d docs in %.2fs", i+1, x.APIName, round.APIDocs, round.APISeconds, x.RawName, round.RawDocs, round.RawSeconds))
	}
	r.Ratio = ratio(r.APIDocs, r.RawDocs)
	r.Pass = r.Ratio >= 0.9
	return r, nil
}
