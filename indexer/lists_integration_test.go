package indexer_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"cdp/indexer"
	"cdp/testing/harness"
)

// A list of strings, from a CDC customers column or an identify trait, is a
// keyword array under attrs (CONTRACT §2): real messages through the
// running indexer, checked through the API's field catalog and filters.
func TestListsOfStringsFromCDCAndIdentifyBecomeFilterableKeywordArrays(t *testing.T) {
	t.Parallel()
	env := harness.Services(t)
	cfg := env.Config(t)
	p := env.Producer(t)
	env.StartIndexer(t, cfg)
	srv := env.StartAPI(t, cfg)

	// An empty list first: it types nothing yet.
	produce(t, p, cfg.TopicPrefix, change(indexer.TopicCustomers, "c", 7001, map[string]any{"name": "a", "labels": []string{}}, 1))
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		return env.CustomerByIdentity(t, cfg, "crm_id", "7001") != nil, "customer 7001 not indexed"
	})
	if typ := fieldType(t, srv, "attrs.labels"); typ != "" {
		t.Fatalf("after an empty list only, attrs.labels is typed %q, want no field yet", typ)
	}

	// Then lists with values, from CDC and from an identify trait.
	produce(t, p, cfg.TopicPrefix,
		change(indexer.TopicCustomers, "c", 7002, map[string]any{"name": "b", "labels": []string{"vip", "b2b"}}, 2),
		change(indexer.TopicCustomers, "c", 7003, map[string]any{"name": "c", "labels": []string{"b2b"}}, 3),
		msg{indexer.TopicEvents, "7004", `{"type":"identify","messageId":"i-7004","userId":"7004","traits":{"labels":["vip"],"interests":["golf","tennis"]}}`},
	)
	tests := []struct {
		filter string
		want   []string // crm ids
	}{
		{`{"field":"attrs.labels","op":"has_any","value":["vip"]}`, []string{"7002", "7004"}},
		{`{"field":"attrs.labels","op":"has_any","value":["b2b"]}`, []string{"7002", "7003"}},
		{`{"field":"attrs.labels","op":"has_none","value":["vip"]}`, []string{"7001", "7003"}},
		{`{"field":"attrs.interests","op":"has_all","value":["golf","tennis"]}`, []string{"7004"}},
	}
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		for _, f := range []string{"attrs.labels", "attrs.interests"} {
			if typ := fieldType(t, srv, f); typ != "keyword_array" {
				return false, fmt.Sprintf("%s is typed %q in the field catalog, want keyword_array", f, typ)
			}
		}
		for _, tt := range tests {
			code, body := call(t, srv, "/v1/customers/count", `{"filter":`+tt.filter+`}`)
			if code != http.StatusOK || body["count"] != float64(len(tt.want)) {
				return false, fmt.Sprintf("count %s: %d %v, want %d", tt.filter, code, body, len(tt.want))
			}
		}
		return true, ""
	})
	for _, tt := range tests {
		if got := crmIDs(t, srv, tt.filter); strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("search %s: customers %v, want %v", tt.filter, got, tt.want)
		}
	}
}

// call posts a JSON body to the API, or gets path when body is "".
func call(t *testing.T, srv *httptest.Server, path, body string) (int, map[string]any) {
	t.Helper()
	method := http.MethodPost
	if body == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

// fieldType is the type the field catalog gives a field, "" when it lists
// none of that name.
func fieldType(t *testing.T, srv *httptest.Server, name string) string {
	t.Helper()
	code, body := call(t, srv, "/v1/fields", "")
	if code != http.StatusOK {
		t.Fatalf("GET /v1/fields: %d %v", code, body)
	}
	for _, f := range body["fields"].([]any) {
		if f := f.(map[string]any); f["name"] == name {
			typ, _ := f["type"].(string)
			return typ
		}
	}
	return ""
}

// crmIDs returns the CRM ids of the customers a search with the filter finds.
func crmIDs(t *testing.T, srv *httptest.Server, filter string) []string {
	t.Helper()
	code, body := call(t, srv, "/v1/customers/search", `{"size":100,"filter":`+filter+`}`)
	if code != http.StatusOK {
		t.Fatalf("search %s: %d %v", filter, code, body)
	}
	var out []string
	for _, c := range body["customers"].([]any) {
		for _, id := range c.(map[string]any)["identities"].([]any) {
			if id := id.(map[string]any); id["type"] == "crm_id" {
				out = append(out, id["value"].(string))
			}
		}
	}
	sort.Strings(out)
	return out
}
