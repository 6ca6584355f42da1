package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"time"

	"cdp/schema"
)

// shape is one filter of the query phase.
type shape struct {
	Name   string          `json:"name"`
	Filter json.RawMessage `json:"filter"`
	// Sort is the API's sort; empty means the default (customer_id).
	Sort []sortSpec `json:"sort,omitempty"`
	// Count measures POST /v1/customers/count against _count instead of
	// search against _search.
	Count bool `json:"count,omitempty"`
	// Preview measures POST /v1/filters/preview (a count, a sample of
	// previewSample and the DSL) against one _search with the exact total
	// and that many hits.
	Preview bool `json:"preview,omitempty"`
}

// previewSample is the sample size of a preview shape.
const previewSample = 10

type sortSpec struct {
	Field string `json:"field"`
	Order string `json:"order"`
}

// shapes are the filters measured: one of each kind the contract has, on
// the generated data (every one matches some customers).
var shapes = []shape{
	{Name: "term", Filter: raw(`{"field":"member_level","op":"eq","value":"gold"}`)},
	{Name: "range", Filter: raw(`{"field":"metrics.total_spend","op":"between","value":[1000,5000]}`),
		Sort: []sortSpec{{"metrics.total_spend", "desc"}}},
	{Name: "negation (missing included)", Filter: raw(`{"field":"gender","op":"neq","value":"male"}`)},
	{Name: "contains", Filter: raw(`{"field":"email","op":"contains","value":"user12"}`)},
	{Name: "nested any", Filter: raw(`{"nested":"orders","match":"any","where":{"all":[
		{"field":"orders.status","op":"eq","value":"paid"},{"field":"orders.total_amount","op":"gt","value":1000}]}}`)},
	{Name: "nested none", Filter: raw(`{"nested":"orders","match":"none","where":{"field":"orders.status","op":"eq","value":"refunded"}}`)},
	{Name: "two-level nested", Filter: raw(`{"nested":"orders","where":{"all":[
		{"field":"orders.status","op":"eq","value":"paid"},
		{"nested":"orders.items","where":{"all":[{"field":"orders.items.category","op":"eq","value":"shoes"},{"field":"orders.items.price","op":"gte","value":100}]}}]}}`)},
	{Name: "aggregate in window", Filter: raw(`{"aggregate":{"path":"orders","fn":"sum","field":"orders.total_amount",
		"where":{"field":"orders.created_at","op":"in_last","value":"365d"}},"op":"gte","value":1000}`)},
	{Name: "event count in window", Filter: raw(`{"event":"view_product","within":"30d","op":"gte","value":2}`)},
	{Name: "did not do (event)", Filter: raw(`{"not":{"event":"add_to_cart","within":"30d"}}`)},
	{Name: "date and keyword list", Filter: raw(`{"all":[{"field":"registered_at","op":"in_last","value":"1000d"},
		{"field":"city","op":"in","value":["上海","北京","深圳"]}]}`)},
	{Name: "deep mix", Filter: raw(`{"any":[
		{"all":[{"field":"gender","op":"eq","value":"female"},{"not":{"field":"city","op":"in","value":["北京"]}},
			{"nested":"orders","match":"all","where":{"any":[{"field":"orders.status","op":"eq","value":"paid"},
				{"not":{"nested":"orders.items","where":{"field":"orders.items.sku","op":"contains","value":"p-1"}}}]}}]},
		{"all":[{"event":"view_product","within":"30d","where":{"field":"properties.category","op":"eq","value":"shoes"},"op":"gte","value":1},
			{"aggregate":{"path":"orders","fn":"sum","field":"orders.total_amount"},"op":"between","value":[100,3000]},
			{"field":"member_level","op":"in","value":["gold","platinum"]}]}]}`),
		Sort: []sortSpec{{"metrics.total_spend", "desc"}}},
	{Name: "count: negation", Filter: raw(`{"field":"gender","op":"neq","value":"male"}`), Count: true},
	{Name: "count: nested any", Filter: raw(`{"nested":"orders","match":"any","where":{"all":[
		{"field":"orders.status","op":"eq","value":"paid"},{"field":"orders.total_amount","op":"gt","value":1000}]}}`), Count: true},
	{Name: "count: event count in window", Filter: raw(`{"event":"view_product","within":"30d","op":"gte","value":2}`), Count: true},
	// The audience builder's call on every edit, next to the count of the
	// same filter above.
	{Name: "preview: negation", Filter: raw(`{"field":"gender","op":"neq","value":"male"}`), Preview: true},
}

func raw(s string) json.RawMessage {
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		panic(fmt.Sprintf("bench: bad filter %s: %v", s, err))
	}
	b, _ := json.Marshal(v)
	return b
}

// searchSize is the page size of the query phase (the API's default).
const searchSize = 20

// QueryResult is one shape under one condition.
type QueryResult struct {
	Shape     string  `json:"shape"`
	Condition string  `json:"condition"` // "idle" or "indexing"
	Matches   int64   `json:"matches"`
	RateEach  float64 `json:"rate_per_target_per_sec"`
	API       Summary `json:"api"`
	Direct    Summary `json:"direct"`
	RatioP50  float64 `json:"ratio_p50"`
	RatioP99  float64 `json:"ratio_p99"`
	Pass      bool    `json:"goal_pass"`
}

// plan is how one shape is loaded: calibrated once, idle, and reused
// under indexing so that both conditions see the same offered load.
type queryPlan struct {
	shape            shape
	apiPath, rawPath string
	apiBody, rawBody []byte
	matches          int64
	rate             float64
	n                int
}

// rawSort is the sort the API sends for specs (api/search.go sortClause):
// each field with missing last and an unmapped type, then customer_id.
func rawSort(specs []sortSpec) []any {
	out := []any{}
	for _, s := range specs {
		out = append(out, map[string]any{s.Field: map[string]any{"order": s.Order, "missing": "_last", "unmapped_type": "keyword"}})
	}
	return append(out, map[string]any{"customer_id": "asc"})
}

// translate asks the API for the DSL of a filter.
func translate(ctx context.Context, api endpoint, filter json.RawMessage) (json.RawMessage, error) {
	var resp struct {
		Query json.RawMessage `json:"query"`
	}
	err := api.json(ctx, http.MethodPost, "/v1/filters/translate", map[string]any{"filter": filter}, &resp)
	return resp.Query, err
}

// queryTuning bounds the offered load of the latency phases.
type queryTuning struct {
	Util     float64       // offered utilization of one server: rate = Util / (sum of mean service times)
	MaxRate  float64       // per target, requests/s
	Duration time.Duration // per shape and condition
	MinN     int
	MaxN     int
}

// rateFor is the per-target rate and request count for targets whose mean
// closed-loop latencies are means: together they offer t.Util of one
// server, within MaxRate, for about Duration.
func (t queryTuning) rateFor(means ...time.Duration) (float64, int) {
	var sum time.Duration
	for _, m := range means {
		sum += m
	}
	rate := t.MaxRate
	if sum > 0 {
		rate = math.Min(rate, t.Util/sum.Seconds())
	}
	n := int(rate * t.Duration.Seconds())
	n = min(max(n, t.MinN), t.MaxN)
	return round2(rate), n
}

// calibrate measures the mean closed-loop latency of each call after a
// warm-up.
func calibrate(ctx context.Context, calls []func(context.Context) error, warm, rounds int) ([]time.Duration, error) {
	total := make([]time.Duration, len(calls))
	for r := 0; r < warm+rounds; r++ {
		for i, c := range calls {
			start := time.Now()
			if err := c(ctx); err != nil {
				return nil, err
			}
			if r >= warm {
				total[i] += time.Since(start)
			}
		}
	}
	for i := range total {
		total[i] /= time.Duration(rounds)
	}
	return total, nil
}

// planQueries translates every shape, checks that the API and the direct
// query agree on the match count, and calibrates the rate.
func planQueries(ctx context.Context, api, os endpoint, customers string, tune queryTuning) ([]*queryPlan, error) {
	var plans []*queryPlan
	for _, s := range shapes {
		dsl, err := translate(ctx, api, s.Filter)
		if err != nil {
			return nil, fmt.Errorf("shape %q: translate: %w", s.Name, err)
		}
		p := &queryPlan{shape: s}
		switch {
		case s.Count:
			p.apiPath, p.rawPath = "/v1/customers/count", "/"+customers+"/_count"
			p.apiBody, _ = json.Marshal(map[string]any{"filter": s.Filter})
			p.rawBody, _ = json.Marshal(map[string]any{"query": dsl})
		case s.Preview:
			p.apiPath, p.rawPath = "/v1/filters/preview", "/"+customers+"/_search"
			p.apiBody, _ = json.Marshal(map[string]any{"filter": s.Filter, "sample": previewSample})
			p.rawBody, _ = json.Marshal(map[string]any{"query": dsl, "size": previewSample, "track_total_hits": true,
				"_source": map[string]any{"excludes": schema.Internal}})
		default:
			apiReq := map[string]any{"filter": s.Filter, "size": searchSize}
			if len(s.Sort) > 0 {
				apiReq["sort"] = s.Sort
			}
			p.apiPath, p.rawPath = "/v1/customers/search", "/"+customers+"/_search"
			p.apiBody, _ = json.Marshal(apiReq)
			p.rawBody, _ = json.Marshal(map[string]any{"query": dsl, "size": searchSize, "sort": rawSort(s.Sort),
				"track_total_hits": true, "_source": map[string]any{"excludes": schema.Internal}})
		}
		// Both answer shapes decode into one struct: search's total and
		// hits.total.value, count's count.
		var a, r struct {
			Total int64 `json:"total"`
			Count int64 `json:"count"` // count's, and preview's
			Hits  struct {
				Total struct {
					Value int64 `json:"value"`
				} `json:"total"`
			} `json:"hits"`
		}
		if err := api.json(ctx, http.MethodPost, p.apiPath, p.apiBody, &a); err != nil {
			return nil, fmt.Errorf("shape %q: API: %w", s.Name, err)
		}
		if err := os.json(ctx, http.MethodPost, p.rawPath, p.rawBody, &r); err != nil {
			return nil, fmt.Errorf("shape %q: direct: %w", s.Name, err)
		}
		a.Total += a.Count
		r.Hits.Total.Value += r.Count
		if a.Total != r.Hits.Total.Value {
			return nil, fmt.Errorf("shape %q: the API counts %d customers, the direct query %d", s.Name, a.Total, r.Hits.Total.Value)
		}
		p.matches = a.Total
		means, err := calibrate(ctx, []func(context.Context) error{
			func(ctx context.Context) error {
				_, err := api.do(ctx, http.MethodPost, p.apiPath, p.apiBody)
				return err
			},
			func(ctx context.Context) error {
				_, err := os.do(ctx, http.MethodPost, p.rawPath, p.rawBody)
				return err
			},
		}, 3, 10)
		if err != nil {
			return nil, fmt.Errorf("shape %q: calibrate: %w", s.Name, err)
		}
		p.rate, p.n = tune.rateFor(means...)
		plans = append(plans, p)
	}
	return plans, nil
}

// runQueries measures every planned shape open-loop: the API request and
// the direct request alternate on one timetable, so both see the same
// conditions.
func runQueries(ctx context.Context, api, os endpoint, customers string, plans []*queryPlan, condition string, logf func(string)) []QueryResult {
	var out []QueryResult
	for _, p := range plans {
		var a, d Samples
		OpenLoop{Rate: 2 * p.rate, N: 2 * p.n}.Run(ctx, func(i int, due time.Time) {
			if i%2 == 0 {
				timed(&a, due, func() error {
					_, err := api.do(ctx, http.MethodPost, p.apiPath, p.apiBody)
					return err
				})
				return
			}
			timed(&d, due, func() error {
				_, err := os.do(ctx, http.MethodPost, p.rawPath, p.rawBody)
				return err
			})
		})
		r := QueryResult{Shape: p.shape.Name, Condition: condition, Matches: p.matches, RateEach: p.rate, API: a.Summary(), Direct: d.Summary()}
		r.RatioP50, r.RatioP99 = ratio(r.API.P50Ms, r.Direct.P50Ms), ratio(r.API.P99Ms, r.Direct.P99Ms)
		r.Pass = latencyGoal(r.API, r.Direct)
		out = append(out, r)
		line := fmt.Sprintf("query %-28s %-8s API p50 %7.2f p99 %7.2f ms | direct p50 %7.2f p99 %7.2f ms | %d req at %.1f/s each",
			p.shape.Name, condition, r.API.P50Ms, r.API.P99Ms, r.Direct.P50Ms, r.Direct.P99Ms, r.API.Count, p.rate)
		for _, e := range []struct {
			who string
			s   Summary
		}{{"API", r.API}, {"direct", r.Direct}} {
			if e.s.Errors > 0 {
				line += fmt.Sprintf(" | %d %s requests failed, last: %.300s", e.s.Errors, e.who, e.s.LastError)
			}
		}
		logf(line)
	}
	return out
}

// latencyGoal: API p99 ≤ 1.05 × direct p99 + 1 ms, with no failed
// request; judged at p95 instead when either side has fewer than
// minP99Samples latencies (see judgedAt).
func latencyGoal(api, direct Summary) bool {
	j := judgedAt(api, direct)
	return api.Errors == 0 && direct.Errors == 0 && api.Count > 0 && j.of(api) <= 1.05*j.of(direct)+1
}

// judged is the percentile the shape's goal is judged at.
func (q QueryResult) judged() judged { return judgedAt(q.API, q.Direct) }
