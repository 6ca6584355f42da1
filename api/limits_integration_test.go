package api_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"cdp/query"
)

func randomLetters(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + r.IntN(26))
	}
	return string(b)
}

// containsAny is an any of n contains conditions on city, each of length
// letters.
func containsAny(r *rand.Rand, n, length int) string {
	c := make([]string, n)
	for i := range c {
		c[i] = fmt.Sprintf(`{"field": "city", "op": "contains", "value": %q}`, randomLetters(r, length))
	}
	return `{"any": [` + strings.Join(c, ",") + `]}`
}

func TestAFilterOverTheCostLimitsIs400WithThePathAndNeverReachesOpenSearch(t *testing.T) {
	a := setup(t)
	r := rand.New(rand.NewPCG(1, 2))
	before := a.env.BreakerTrips(t)
	// The request that once exhausted OpenSearch's heap.
	code, body := a.do("POST", "/v1/customers/count", `{"filter": `+containsAny(r, 500, 300)+`}`)
	e, _ := body["error"].(map[string]any)
	if code != 400 || e["code"] != "invalid_filter" || e["path"] != "any[0].value" {
		t.Fatalf("%d %v, want 400 invalid_filter at any[0].value", code, body)
	}
	code, body = a.do("POST", "/v1/customers/count", `{"filter": `+containsAny(r, 500, 20)+`}`)
	e, _ = body["error"].(map[string]any)
	if code != 400 || e["code"] != "invalid_filter" || e["path"] != "any[100].value" {
		t.Fatalf("%d %v, want 400 invalid_filter at any[100].value, where the pattern work passes 2,000 characters", code, body)
	}
	if after := a.env.BreakerTrips(t); after != before {
		t.Errorf("circuit breakers tripped %d times during rejected requests", after-before)
	}
}

func TestTheCostliestFiltersTheLimitsAllowAreAnsweredWithoutTrippingABreaker(t *testing.T) {
	a := setup(t)
	r := rand.New(rand.NewPCG(3, 4))
	d := query.DefaultLimits
	lists := make([]string, d.MaxTerms/query.MaxValues)
	for i := range lists {
		terms := make([]string, query.MaxValues)
		for j := range terms {
			terms[j] = fmt.Sprintf("%q", randomLetters(r, 64))
		}
		lists[i] = `{"field": "city", "op": "not_in", "value": [` + strings.Join(terms, ",") + `]}`
	}
	filters := map[string]string{
		"the most pattern work, in patterns of the longest length": containsAny(r, d.MaxPatternWork/d.MaxPatternChars, d.MaxPatternChars),
		"the most conditions, each a short contains":               containsAny(r, d.MaxConditions, d.MaxPatternWork/d.MaxConditions),
		"the most values, in lists of the longest length":          `{"all": [` + strings.Join(lists, ",") + `]}`,
	}
	before := a.env.BreakerTrips(t)
	for name, f := range filters {
		for _, ep := range []string{"/v1/customers/count", "/v1/customers/search"} {
			code, body := a.do("POST", ep, `{"filter": `+f+`}`)
			if code != 200 {
				t.Errorf("%s on %s: %d %v, want 200", name, ep, code, body)
			}
		}
	}
	if after := a.env.BreakerTrips(t); after != before {
		t.Errorf("circuit breakers tripped %d times", after-before)
	}
}
