package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"cdp/store"
)

// LookupResult is the 360 view against the OpenSearch requests it makes.
type LookupResult struct {
	Sample   int     `json:"sample_customers"`
	RateEach float64 `json:"rate_per_target_per_sec"`
	// The API.
	ByID    Summary `json:"api_by_id"`
	ByPhone Summary `json:"api_by_phone"`
	// Direct: GET of the document alone; GET plus the recent-events search
	// the API also makes (the fair comparison for by-id); the identity
	// search plus the events search (the fair comparison for by-phone).
	RawGet         Summary `json:"raw_get"`
	RawGetEvents   Summary `json:"raw_get_plus_events"`
	RawPhoneEvents Summary `json:"raw_identity_search_plus_events"`
	PassByID       bool    `json:"goal_pass_by_id"`
	PassByPhone    bool    `json:"goal_pass_by_phone"`
}

// judgedByID and judgedByPhone are the percentiles the two goals are
// judged at.
func (l LookupResult) judgedByID() judged    { return judgedAt(l.ByID, l.RawGetEvents) }
func (l LookupResult) judgedByPhone() judged { return judgedAt(l.ByPhone, l.RawPhoneEvents) }

type lookupTarget struct {
	id, phone string
}

// sampleCustomers picks n customers with a phone, at random but
// reproducibly.
func sampleCustomers(ctx context.Context, os endpoint, customers string, n int) ([]lookupTarget, error) {
	var resp store.SearchResult
	err := os.json(ctx, http.MethodPost, "/"+customers+"/_search", map[string]any{
		"size": n, "_source": []string{"customer_id", "phone"},
		"query": map[string]any{"function_score": map[string]any{
			"query":        map[string]any{"exists": map[string]any{"field": "phone"}},
			"random_score": map[string]any{"seed": 42, "field": "_seq_no"},
		}},
	}, &resp)
	var out []lookupTarget
	for _, h := range resp.Hits {
		var doc struct {
			ID    string `json:"customer_id"`
			Phone string `json:"phone"`
		}
		if err := h.Decode(&doc); err != nil {
			return nil, err
		}
		out = append(out, lookupTarget{doc.ID, doc.Phone})
	}
	if err == nil && len(out) == 0 {
		err = fmt.Errorf("no customer with a phone to look up")
	}
	return out, err
}

// lookupCalls are the five requests measured for one customer.
func lookupCalls(api, os endpoint, customers, events string) []func(context.Context, lookupTarget) error {
	eventsBody := func(id string) map[string]any { // api/customers.go view
		return map[string]any{"size": 50, "query": map[string]any{"term": map[string]any{"customer_id": id}},
			"sort": []any{map[string]any{"timestamp": "desc"}, map[string]any{"event_id": "desc"}}}
	}
	phoneBody := func(phone string) map[string]any { // api/customers.go lookup
		return map[string]any{"size": 1, "query": map[string]any{"nested": map[string]any{
			"path": "identities",
			"query": map[string]any{"bool": map[string]any{"filter": []any{
				map[string]any{"term": map[string]any{"identities.type": "phone"}},
				map[string]any{"term": map[string]any{"identities.value": phone}},
			}}},
		}}}
	}
	get := func(ctx context.Context, t lookupTarget) error {
		_, err := os.do(ctx, http.MethodGet, "/"+customers+"/_doc/"+url.PathEscape(t.id), nil)
		return err
	}
	eventsOf := func(ctx context.Context, id string) error {
		_, err := os.do(ctx, http.MethodPost, "/"+events+"/_search", eventsBody(id))
		return err
	}
	return []func(context.Context, lookupTarget) error{
		func(ctx context.Context, t lookupTarget) error {
			_, err := api.do(ctx, http.MethodGet, "/v1/customers/"+url.PathEscape(t.id), nil)
			return err
		},
		func(ctx context.Context, t lookupTarget) error {
			_, err := api.do(ctx, http.MethodGet, "/v1/customers/lookup?type=phone&value="+url.QueryEscape(t.phone), nil)
			return err
		},
		get,
		func(ctx context.Context, t lookupTarget) error {
			if err := get(ctx, t); err != nil {
				return err
			}
			return eventsOf(ctx, t.id)
		},
		func(ctx context.Context, t lookupTarget) error {
			var resp store.SearchResult
			if err := os.json(ctx, http.MethodPost, "/"+customers+"/_search", phoneBody(t.phone), &resp); err != nil {
				return err
			}
			if len(resp.Hits) == 0 {
				return fmt.Errorf("no customer with phone %s", t.phone)
			}
			return eventsOf(ctx, t.id)
		},
	}
}

// runLookups calibrates, then measures the five calls open-loop, cycling
// through them on one timetable, each going through the same customers in
// the same order.
func runLookups(ctx context.Context, api, os endpoint, customers, events string, sample []lookupTarget, tune queryTuning) (LookupResult, error) {
	calls := lookupCalls(api, os, customers, events)
	var cal []func(context.Context) error
	k := 0
	for _, c := range calls {
		cal = append(cal, func(ctx context.Context) error {
			k++
			return c(ctx, sample[k%len(sample)])
		})
	}
	means, err := calibrate(ctx, cal, 3, 10)
	if err != nil {
		return LookupResult{}, err
	}
	rate, n := tune.rateFor(means...)
	s := make([]Samples, len(calls))
	OpenLoop{Rate: rate * float64(len(calls)), N: n * len(calls)}.Run(ctx, func(i int, due time.Time) {
		c, t := i%len(calls), sample[(i/len(calls))%len(sample)]
		timed(&s[c], due, func() error { return calls[c](ctx, t) })
	})
	r := LookupResult{Sample: len(sample), RateEach: rate, ByID: s[0].Summary(), ByPhone: s[1].Summary(),
		RawGet: s[2].Summary(), RawGetEvents: s[3].Summary(), RawPhoneEvents: s[4].Summary()}
	r.PassByID = latencyGoal(r.ByID, r.RawGetEvents)
	r.PassByPhone = latencyGoal(r.ByPhone, r.RawPhoneEvents)
	return r, nil
}
