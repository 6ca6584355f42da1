package query_test

import (
	"fmt"
	"strings"
	"testing"

	"cdp/query"
)

// conds returns an any of n copies of a condition.
func conds(n int, cond string) string {
	c := make([]string, n)
	for i := range c {
		c[i] = cond
	}
	return `{"any": [` + strings.Join(c, ",") + `]}`
}

func contains(value string) string {
	return fmt.Sprintf(`{"field": "city", "op": "contains", "value": %q}`, value)
}

func TestFiltersOverACostLimitAreRejectedWithThePathThatCrossedIt(t *testing.T) {
	small := query.Limits{MaxStringBytes: 20, MaxPatternChars: 5, MaxConditions: 3, MaxPatternWork: 8, MaxTerms: 4}
	tests := []rejection{
		{"a string value is longer than the byte limit", `{"field": "city", "op": "eq", "value": "` + strings.Repeat("x", 21) + `"}`, "value", "at most 20 bytes"},
		{"a list element is longer than the byte limit", `{"field": "city", "op": "in", "value": ["a", "` + strings.Repeat("x", 21) + `"]}`, "value[1]", "at most 20 bytes"},
		{"an event name is longer than the byte limit", `{"event": "` + strings.Repeat("e", 21) + `"}`, "event", "at most 20 bytes"},
		{"a contains value is longer than the pattern limit", contains("abcdef"), "value", "at most 5 characters"},
		{"a starts_with value is longer than the pattern limit", `{"field": "city", "op": "starts_with", "value": "abcdef"}`, "value", "at most 5 characters"},
		{"patterns count characters, not bytes", contains("北京北京北京"), "value", "this one is 6"},
		{"the fourth condition crosses the condition limit", conds(4, `{"field": "gender", "op": "is_set"}`), "any[3]", "at most 3 conditions"},
		{"aggregates and events count as conditions", `{"all": [{"event": "a"}, {"event": "b"}, {"aggregate": {"path": "orders", "fn": "count"}, "op": "gt", "value": 1}, {"event": "c"}]}`, "all[3]", "at most 3 conditions"},
		{"patterns add up past the work limit", `{"any": [` + contains("abcde") + `, ` + contains("abcd") + `]}`, "any[1].value", "add up to at most 8 characters"},
		{"values add up past the term limit", `{"any": [{"field": "city", "op": "in", "value": ["a", "b", "c"]}, {"field": "city", "op": "in", "value": ["d", "e"]}]}`, "any[1].value", "at most 4 values"},
		{"a saved segment's conditions count with the filter's", `{"all": [{"field": "gender", "op": "is_set"}, {"field": "city", "op": "is_set"}, {"segment": "big_vip"}]}`, "all[2].segment", "at most 3 conditions"},
	}
	expectRejections(t, &query.Parser{Catalog: testCatalog(), Segments: testSegments, Limits: small}, tests)
}

func TestFiltersAtTheirCostLimitsAreAccepted(t *testing.T) {
	small := query.Limits{MaxStringBytes: 20, MaxPatternChars: 5, MaxConditions: 3, MaxPatternWork: 10, MaxTerms: 5}
	tests := []struct{ name, filter string }{
		{"a value of exactly the byte limit", `{"field": "city", "op": "eq", "value": "` + strings.Repeat("x", 20) + `"}`},
		{"a contains value of exactly the pattern limit in Chinese", contains("北京北京北")},
		{"exactly the condition limit", conds(3, `{"field": "gender", "op": "is_set"}`)},
		{"patterns adding up to exactly the work limit", `{"any": [` + contains("abcde") + `, ` + contains("fghij") + `]}`},
		{"values adding up to exactly the term limit", `{"field": "city", "op": "in", "value": ["a", "b", "c", "d", "e"]}`},
	}
	p := query.Parser{Catalog: testCatalog(), Segments: testSegments, Limits: small}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := p.Parse([]byte(tc.filter)); err != nil {
				t.Errorf("Parse: %v", err)
			}
		})
	}
}

func TestTheDefaultLimitsKeepContainsUsefulAndBoundItsWork(t *testing.T) {
	p := query.Parser{Catalog: testCatalog()}
	if _, err := p.Parse([]byte(contains(strings.Repeat("a", 100)))); err != nil {
		t.Errorf("a 100-character contains: %v", err)
	}
	if _, err := p.Parse([]byte(contains(strings.Repeat("a", 101)))); err == nil {
		t.Error("a 101-character contains was accepted")
	}
	// The request that once took OpenSearch down: 500 contains of 300 letters.
	if _, err := p.Parse([]byte(conds(500, contains(strings.Repeat("a", 300))))); err == nil {
		t.Error("500 contains conditions of 300 letters were accepted")
	}
	if _, err := p.Parse([]byte(conds(500, contains(strings.Repeat("a", 50))))); err == nil {
		t.Error("500 contains conditions of 50 letters were accepted")
	}
}
