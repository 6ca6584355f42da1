package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"cdp/config"
	"cdp/mapping"
	"cdp/schema"
	"cdp/store"
	"cdp/testing/harness"
)

// fixture is a small set of customers, written straight to the index in
// the indexer's document shape, each picked to tell one rule of CONTRACT
// §3.2 apart from its look-alikes.
func fixture(now time.Time) (customers []map[string]any, events []map[string]any) {
	day := func(d int) string { return now.AddDate(0, 0, -d).UTC().Format(time.RFC3339) }
	order := func(id, status string, amount float64, created string, items ...map[string]any) map[string]any {
		if items == nil {
			items = []map[string]any{}
		}
		return map[string]any{"order_id": id, "status": status, "total_amount": amount, "created_at": created, "items": items}
	}
	item := func(sku, cat string, qty, price float64) map[string]any {
		return map[string]any{"sku": sku, "category": cat, "quantity": qty, "price": price}
	}
	cust := func(id string, fields map[string]any, orders ...map[string]any) map[string]any {
		doc := map[string]any{"customer_id": id, "relation": "customer", "tags": []string{}, "attrs": map[string]any{},
			"rebuild":    map[string]any{"rows": []string{"customer:" + id}, "hash": "h"}, // the indexer's own, never shown
			"identities": []map[string]any{{"type": "crm_id", "value": strings.TrimPrefix(id, "c")}}}
		if orders == nil {
			orders = []map[string]any{}
		}
		doc["orders"] = orders
		count, spend := 0, 0.0
		for _, o := range orders {
			if o["status"] == "paid" {
				count++
				spend += o["total_amount"].(float64)
			}
		}
		doc["metrics"] = map[string]any{"order_count": count, "total_spend": spend}
		for k, v := range fields {
			doc[k] = v
		}
		return doc
	}
	customers = []map[string]any{
		cust("c1", map[string]any{"name": "张三丰", "gender": "male", "phone": "+8613800000000", "email": "zhang@example.com",
			"city": "北京", "member_level": "gold", "tags": []string{"vip", "new"}, "birthday": "1990-05-01"},
			order("o1", "paid", 120, day(3), item("p-1", "shoes", 2, 50), item("p-2", "bags", 1, 20))),
		cust("c2", map[string]any{"name": "李四", "gender": "female", "phone": "+8613900001111", "city": "上海", "tags": []string{"new"}},
			order("o2", "paid", 50, day(40), item("p-1", "shoes", 1, 50)), order("o3", "created", 500, day(1))),
		cust("c3", map[string]any{"name": "Alice Chen", "email": "alice@example.com", "city": "Hangzhou"}),
		cust("c4", map[string]any{"name": "王五", "gender": nil, "member_level": "silver"},
			order("o4", "refunded", 1000, day(2), item("p-3", "shoes", 1, 1000))),
		cust("c5", map[string]any{"name": "赵敏", "gender": "female", "member_level": "gold", "attrs": map[string]any{"shoe_size": 38.0}},
			order("o5", "paid", 80, day(5), item("p-4", "Shoes*", 1, 80)), order("o6", "paid", 30, day(100))),
	}
	ev := func(id, cid, name string, daysAgo int, props map[string]any) map[string]any {
		return map[string]any{"event_id": id, "customer_id": cid, "type": "track", "event": name, "timestamp": day(daysAgo),
			"properties": props, "relation": map[string]any{"name": "event", "parent": cid}}
	}
	events = []map[string]any{
		ev("e1", "c1", "view_product", 1, map[string]any{"category": "shoes"}),
		ev("e2", "c1", "view_product", 2, map[string]any{"category": "shoes"}),
		ev("e3", "c1", "view_product", 60, map[string]any{"category": "bags"}),
		ev("e4", "c2", "view_product", 1, map[string]any{"category": "bags"}),
		ev("e5", "c2", "add_to_cart", 1, map[string]any{"category": "shoes"}),
	}
	return customers, events
}

type apiTest struct {
	t   testing.TB
	env *harness.Env
	srv *httptest.Server
	st  *store.Client
	cfg *config.Config
}

func setup(t *testing.T) *apiTest {
	env := harness.Services(t)
	cfg := env.Config(t)
	srv := env.StartAPI(t, cfg)
	st := env.Store(t)
	load(t, st, cfg)
	return &apiTest{t: t, env: env, srv: srv, st: st, cfg: cfg}
}

// setSpend changes a customer's total spend in place, as a new order would.
func (a *apiTest) setSpend(id string, spend float64) {
	a.t.Helper()
	idx := mapping.Customers.Alias(a.cfg.IndexPrefix)
	body := map[string]any{"doc": map[string]any{"metrics": map[string]any{"total_spend": spend}}}
	if err := a.st.Do(context.Background(), "POST", "/"+idx+"/_update/"+id+"?refresh=true", body, nil); err != nil {
		a.t.Fatal(err)
	}
}

func load(t *testing.T, st *store.Client, cfg *config.Config) {
	customers, events := fixture(time.Now())
	var ops []store.Op
	for _, c := range customers {
		ops = append(ops, store.Op{Action: store.Index, Index: mapping.Customers.Alias(cfg.IndexPrefix), ID: c["customer_id"].(string), Body: c})
	}
	for _, e := range events {
		ops = append(ops, store.Op{Action: store.Index, Index: mapping.Events.Alias(cfg.IndexPrefix), ID: e["event_id"].(string),
			Routing: e["customer_id"].(string), Body: e})
	}
	verdicts, err := st.Bulk(context.Background(), ops)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range verdicts {
		if !v.OK() {
			t.Fatalf("fixture %s: %d %s %s", ops[i].ID, v.Status, v.Type, v.Reason)
		}
	}
	if err := st.Refresh(context.Background(), mapping.Customers.Alias(cfg.IndexPrefix)); err != nil {
		t.Fatal(err)
	}
}

func (a *apiTest) do(method, path, body string) (int, map[string]any) {
	a.t.Helper()
	req, _ := http.NewRequest(method, a.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		a.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

// ids returns the customer ids a filter matches through search, checking
// that count agrees.
func (a *apiTest) ids(filter string) []string {
	a.t.Helper()
	code, body := a.do("POST", "/v1/customers/search", `{"size": 1000, "filter": `+filter+`}`)
	if code != 200 {
		a.t.Fatalf("search %s: %d %v", filter, code, body)
	}
	var out []string
	for _, c := range body["customers"].([]any) {
		out = append(out, c.(map[string]any)["customer_id"].(string))
	}
	sort.Strings(out)
	if _, cnt := a.do("POST", "/v1/customers/count", `{"filter": `+filter+`}`); cnt["count"] != float64(len(out)) || body["total"] != float64(len(out)) {
		a.t.Errorf("filter %s: search found %d (total %v), count says %v", filter, len(out), body["total"], cnt["count"])
	}
	return out
}

func (a *apiTest) expect(filter string, want ...string) {
	a.t.Helper()
	got := a.ids(filter)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		a.t.Errorf("filter %s\n got  %v\n want %v", filter, got, want)
	}
}

func TestRule1PositiveOperatorsNeverMatchMissingNullOrEmpty(t *testing.T) {
	t.Parallel()
	a := setup(t)
	a.expect(`{"field":"gender","op":"in","value":["male","female"]}`, "c1", "c2", "c5")
	a.expect(`{"field":"gender","op":"is_set"}`, "c1", "c2", "c5")
	a.expect(`{"field":"tags","op":"has_any","value":["vip","new"]}`, "c1", "c2")
	a.expect(`{"field":"email","op":"contains","value":"EXAMPLE"}`, "c1", "c3")
	a.expect(`{"field":"orders.status","op":"is_set"}`, "c1", "c2", "c4", "c5")
}

func TestRule2NegativeOperatorsAreExactComplementsIncludingMissingFields(t *testing.T) {
	t.Parallel()
	a := setup(t)
	a.expect(`{"field":"gender","op":"neq","value":"male"}`, "c2", "c3", "c4", "c5")
	a.expect(`{"field":"tags","op":"has_none","value":["vip"]}`, "c2", "c3", "c4", "c5")
	a.expect(`{"field":"email","op":"not_contains","value":"alice"}`, "c1", "c2", "c4", "c5")
	a.expect(`{"field":"name","op":"not_matches","value":"张三丰"}`, "c2", "c3", "c4", "c5")
	a.expect(`{"not":{"field":"member_level","op":"eq","value":"gold"}}`, "c2", "c3", "c4")
	a.expect(`{"field":"metrics.total_spend","op":"not_between","value":[50,150]}`, "c3", "c4")
}

func TestRule3ListFieldsOutsideNestedMatchAnyElementOnItsOwn(t *testing.T) {
	t.Parallel()
	a := setup(t)
	// c2 has one paid order (50) and another over 100 (500, created).
	a.expect(`{"all":[{"field":"orders.status","op":"eq","value":"paid"},{"field":"orders.total_amount","op":"gt","value":100}]}`, "c1", "c2")
	a.expect(`{"field":"orders.items.category","op":"neq","value":"shoes"}`, "c3", "c5") // "Shoes*" is not "shoes"
}

func TestRule4NestedConditionsHoldInTheSameElement(t *testing.T) {
	t.Parallel()
	a := setup(t)
	paidOver100 := `{"all":[{"field":"orders.status","op":"eq","value":"paid"},{"field":"orders.total_amount","op":"gt","value":100}]}`
	a.expect(`{"nested":"orders","match":"any","where":`+paidOver100+`}`, "c1")
	a.expect(`{"nested":"orders","match":"none","where":{"field":"orders.status","op":"eq","value":"paid"}}`, "c3", "c4")
	a.expect(`{"nested":"orders","match":"all","where":{"field":"orders.status","op":"eq","value":"paid"}}`, "c1", "c5")
	// An order with a shoes item of quantity 2: the item's own fields correlate.
	a.expect(`{"nested":"orders","match":"any","where":{"nested":"orders.items","match":"any","where":{"all":[
		{"field":"orders.items.category","op":"eq","value":"shoes"},{"field":"orders.items.quantity","op":"gte","value":2}]}}}`, "c1")
	// not inside nested is the complement among the elements.
	a.expect(`{"nested":"orders","match":"any","where":{"not":{"field":"orders.status","op":"eq","value":"paid"}}}`, "c2", "c4")
}

func TestRule5AggregatesCountAndSumNothingAsZeroAndAverageNothingAsMissing(t *testing.T) {
	t.Parallel()
	a := setup(t)
	a.expect(`{"aggregate":{"path":"orders","fn":"count","where":{"field":"orders.status","op":"eq","value":"paid"}},"op":"gte","value":2}`, "c5")
	a.expect(`{"aggregate":{"path":"orders","fn":"count"},"op":"lt","value":1}`, "c3")
	a.expect(`{"aggregate":{"path":"orders","fn":"sum","field":"orders.total_amount","where":{"field":"orders.status","op":"eq","value":"paid"}},"op":"lte","value":100}`, "c2", "c3", "c4")
	a.expect(`{"aggregate":{"path":"orders","fn":"avg","field":"orders.total_amount"},"op":"lt","value":300}`, "c1", "c2", "c5")
	a.expect(`{"aggregate":{"path":"orders","fn":"max","field":"orders.total_amount"},"op":"neq","value":120}`, "c2", "c3", "c4", "c5")
	a.expect(`{"aggregate":{"path":"orders.items","fn":"sum","field":"orders.items.quantity"},"op":"gte","value":3}`, "c1")
}

func TestRule6EventsAreCountedInTheirWindowAndNotEventIsDidNotDoIt(t *testing.T) {
	t.Parallel()
	a := setup(t)
	a.expect(`{"event":"view_product","within":"7d","op":"gte","value":2}`, "c1")
	a.expect(`{"event":"view_product"}`, "c1", "c2")
	a.expect(`{"event":"view_product","where":{"field":"properties.category","op":"eq","value":"bags"}}`, "c1", "c2")
	a.expect(`{"not":{"event":"add_to_cart","within":"30d"}}`, "c1", "c3", "c4", "c5")
	a.expect(`{"event":"view_product","op":"eq","value":0}`, "c3", "c4", "c5")
}

func TestRule7InvalidFiltersAnswer400NamingThePath(t *testing.T) {
	t.Parallel()
	a := setup(t)
	many := make([]string, 1001)
	for i := range many {
		many[i] = fmt.Sprintf(`"v%d"`, i)
	}
	deep := `{"field":"gender","op":"is_set"}`
	for i := 0; i < 11; i++ {
		deep = `{"not":` + deep + `}`
	}
	tests := []struct{ name, body, path string }{
		{"unknown field", `{"filter":{"all":[{"field":"gender","op":"eq","value":"male"},{"field":"shoe","op":"eq","value":1}]}}`, "all[1].field"},
		{"operator not allowed", `{"filter":{"field":"name","op":"gt","value":1}}`, "op"},
		{"value of the wrong type", `{"filter":{"all":[{"all":[]},{"any":[]},{"field":"metrics.total_spend","op":"gt","value":"lots"}]}}`, "all[2].value"},
		{"a list where one value is expected", `{"filter":{"field":"gender","op":"eq","value":["male"]}}`, "value"},
		{"too many values", `{"filter":{"field":"city","op":"in","value":[` + strings.Join(many, ",") + `]}}`, "value"},
		{"too deep", `{"filter":` + deep + `}`, ""},
		{"unknown key in a node", `{"filter":{"field":"gender","op":"is_set","extra":1}}`, "extra"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := a.do("POST", "/v1/customers/search", tt.body)
			e, _ := body["error"].(map[string]any)
			if code != 400 || e["code"] != "invalid_filter" || e["message"] == "" {
				t.Fatalf("%d %v, want 400 invalid_filter", code, body)
			}
			if tt.path != "" && e["path"] != tt.path {
				t.Errorf("path %v, want %q", e["path"], tt.path)
			}
		})
	}
}

func TestBadRequestsAnswer400NotAServerError(t *testing.T) {
	t.Parallel()
	a := setup(t)
	tests := []struct{ name, body, code, path string }{
		{"malformed JSON", `{"filter":`, "invalid_json", ""},
		{"unknown body key", `{"filtr":{}}`, "invalid_request", "filtr"},
		{"size zero", `{"size":0}`, "invalid_request", "size"},
		{"size over 1000", `{"size":1001}`, "invalid_request", "size"},
		{"size not a number", `{"size":"ten"}`, "invalid_request", "size"},
		{"sort on an unknown field", `{"sort":[{"field":"shoe","order":"asc"}]}`, "invalid_request", "sort[0].field"},
		{"sort on a list", `{"sort":[{"field":"orders.total_amount"}]}`, "invalid_request", "sort[0].field"},
		{"sort order", `{"sort":[{"field":"city","order":"up"}]}`, "invalid_request", "sort[0].order"},
		{"an unknown key in a sort entry", `{"sort":[{"field":"city","order":"asc","missing":"_first"}]}`, "invalid_request", "sort[0].missing"},
		{"a sort entry that is not an object", `{"sort":["city"]}`, "invalid_request", "sort[0]"},
		{"nine sort entries", `{"sort":[` + strings.Repeat(`{"field":"city"},`, 8) + `{"field":"city"}]}`, "invalid_request", "sort"},
		{"ten thousand sort entries", `{"sort":[` + strings.Repeat(`{"field":"city"},`, 9999) + `{"field":"city"}]}`, "invalid_request", "sort"},
		{"cursor", `{"cursor":"not-a-cursor"}`, "invalid_request", "cursor"},
		{"time zone", `{"tz":"Mars/Base"}`, "invalid_request", "tz"},
		{"projection", `{"fields":["shoe"]}`, "invalid_request", "fields[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := a.do("POST", "/v1/customers/search", tt.body)
			e, _ := body["error"].(map[string]any)
			if code != 400 || e["code"] != tt.code || (tt.path != "" && e["path"] != tt.path) {
				t.Fatalf("%d %v, want 400 %s at %q", code, body, tt.code, tt.path)
			}
		})
	}
}

func TestEveryJSONEndpointAnswers400ForABodyThatIsNotAJSONObject(t *testing.T) {
	t.Parallel()
	a := setup(t)
	endpoints := []string{"/v1/customers/search", "/v1/customers/count", "/v1/filters/translate", "/v1/fields", "/v1/filters/preview", "/v1/segments"}
	bodies := []struct{ name, body string }{
		{"empty", ""},
		{"only white space", " \n\t "},
		{"null", "null"},
		{"a list", `[{"filter":{"all":[]}}]`},
		{"a string", `"filter"`},
		{"not JSON", "filter=all"},
		{"an object with trailing data", `{} {}`},
	}
	for _, ep := range endpoints {
		for _, b := range bodies {
			t.Run(ep+" "+b.name, func(t *testing.T) {
				code, body := a.do("POST", ep, b.body)
				e, _ := body["error"].(map[string]any)
				if code != 400 || e["code"] != "invalid_json" || e["message"] == "" || e["request_id"] == nil {
					t.Fatalf("%d %v, want 400 invalid_json with a request id", code, body)
				}
			})
		}
	}
}

func TestDecodeErrorsNameJSONKindsNotGoTypes(t *testing.T) {
	t.Parallel()
	a := setup(t)
	tests := []struct{ body, want string }{
		{`{"size":"ten"}`, "size must be a whole number, not a JSON string"},
		{`{"fields":"name"}`, "fields must be a list, not a JSON string"},
		{`{"cursor":7}`, "cursor must be a string, not a JSON number"},
	}
	for _, tt := range tests {
		code, body := a.do("POST", "/v1/customers/search", tt.body)
		e, _ := body["error"].(map[string]any)
		if code != 400 || e["message"] != tt.want {
			t.Errorf("%s: %d %v, want 400 %q", tt.body, code, body, tt.want)
		}
	}
}

func TestHTTPEdgesAnswerInTheContractsShape(t *testing.T) {
	t.Parallel()
	a := setup(t)
	tests := []struct {
		name, method, path string
		status             int
		code               string
	}{
		{"a customer id of 4 KB", "GET", "/v1/customers/" + strings.Repeat("c", 4096), 400, "invalid_parameter"},
		{"a lookup value of 4 KB", "GET", "/v1/customers/lookup?type=email&value=" + strings.Repeat("e", 4096), 400, "invalid_parameter"},
		{"a trailing slash", "GET", "/v1/fields/", 404, "not_found"},
		{"a path in another case", "GET", "/V1/fields", 404, "not_found"},
		{"a method the path does not take", "DELETE", "/v1/fields", 405, "method_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := a.do(tt.method, tt.path, "")
			e, _ := body["error"].(map[string]any)
			if code != tt.status || e["code"] != tt.code || e["request_id"] == nil {
				t.Errorf("%d %v, want %d %s with a request id", code, body, tt.status, tt.code)
			}
		})
	}
}

func TestANullFilterIsRejectedNotReadAsEveryone(t *testing.T) {
	t.Parallel()
	a := setup(t)
	for _, ep := range []string{"/v1/customers/search", "/v1/customers/count", "/v1/filters/translate"} {
		code, body := a.do("POST", ep, `{"filter": null}`)
		e, _ := body["error"].(map[string]any)
		if code != 400 || e["code"] != "invalid_filter" || e["path"] != "filter" {
			t.Errorf("%s: %d %v, want 400 invalid_filter at filter", ep, code, body)
		}
	}
}

func TestSearchSortsPagesWithACursorAndProjectsFields(t *testing.T) {
	t.Parallel()
	a := setup(t)
	var seen []string
	cursor := "null"
	for page := 0; page < 5; page++ {
		code, body := a.do("POST", "/v1/customers/search", `{"size":2,"sort":[{"field":"metrics.total_spend","order":"desc"}],"fields":["name"],"cursor":`+cursor+`}`)
		if code != 200 {
			t.Fatalf("page %d: %d %v", page, code, body)
		}
		for _, c := range body["customers"].([]any) {
			doc := c.(map[string]any)
			if _, ok := doc["city"]; ok || doc["customer_id"] == nil {
				t.Errorf("projection: %v, want customer_id and name only", doc)
			}
			seen = append(seen, doc["customer_id"].(string))
		}
		if body["next_cursor"] == nil {
			break
		}
		cursor = fmt.Sprintf("%q", body["next_cursor"])
	}
	// spend: c1 120, c5 110, c2 50, c3 0, c4 0 (ties by customer id)
	if got := strings.Join(seen, ","); got != "c1,c5,c2,c3,c4" {
		t.Fatalf("pages gave %s", got)
	}
}

// Paging by a value that changes meanwhile neither repeats nor skips
// anyone: from the second page on, the cursor reads one snapshot.
func TestPagingBySpendIsStableWhileSpendsChange(t *testing.T) {
	t.Parallel()
	a := setup(t)
	var seen []string
	cursor, snapshotted := "null", ""
	for page := 0; page < 5; page++ {
		code, body := a.do("POST", "/v1/customers/search", `{"size":2,"sort":[{"field":"metrics.total_spend","order":"desc"}],"cursor":`+cursor+`}`)
		if code != 200 {
			t.Fatalf("page %d: %d %v", page, code, body)
		}
		for _, c := range body["customers"].([]any) {
			seen = append(seen, c.(map[string]any)["customer_id"].(string))
		}
		if page == 1 {
			snapshotted = fmt.Sprintf("%q", body["next_cursor"]) // reads the snapshot the second page opened
			// c5 (on page one) drops to the bottom, c4 (not yet seen) jumps
			// to the top.
			a.setSpend("c5", 0)
			a.setSpend("c4", 5000)
		}
		if body["next_cursor"] == nil {
			break
		}
		cursor = fmt.Sprintf("%q", body["next_cursor"])
	}
	if got := strings.Join(seen, ","); got != "c1,c5,c2,c3,c4" {
		t.Fatalf("pages gave %s, want every customer once, in the order of the second page's snapshot", got)
	}
	// The last page freed the snapshot: a cursor still naming it is told so.
	code, body := a.do("POST", "/v1/customers/search", `{"size":2,"sort":[{"field":"metrics.total_spend","order":"desc"}],"cursor":`+snapshotted+`}`)
	if e, _ := body["error"].(map[string]any); code != 400 || e["path"] != "cursor" || !strings.Contains(fmt.Sprint(e["message"]), "expired") {
		t.Errorf("a cursor whose snapshot is gone: %d %v, want 400 at cursor saying it expired", code, body)
	}
}

func TestACursorThatWasChangedOrBelongsToAnotherSearchIs400(t *testing.T) {
	t.Parallel()
	a := setup(t)
	const search = `"size":2,"sort":[{"field":"metrics.total_spend","order":"desc"}],"filter":{"field":"gender","op":"neq","value":"x"}`
	code, body := a.do("POST", "/v1/customers/search", `{`+search+`}`)
	next, _ := body["next_cursor"].(string)
	if code != 200 || next == "" {
		t.Fatalf("first page: %d %v", code, body)
	}
	payload, sig, _ := strings.Cut(next, ".")
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		t.Fatalf("cursor payload %q: %v", payload, err)
	}
	forged := strings.Replace(string(raw), `"c`, `"d`, 1)
	tests := []struct{ name, body string }{
		{"a payload edited by hand, the signature kept", `{` + search + `,"cursor":"` + base64.RawURLEncoding.EncodeToString([]byte(forged)) + "." + sig + `"}`},
		{"bytes appended", `{` + search + `,"cursor":"` + next + `AA"}`},
		{"no signature", `{` + search + `,"cursor":"` + payload + `"}`},
		{"another filter", `{"size":2,"sort":[{"field":"metrics.total_spend","order":"desc"}],"filter":{"field":"gender","op":"eq","value":"male"},"cursor":"` + next + `"}`},
		{"another projection", `{` + search + `,"fields":["name"],"cursor":"` + next + `"}`},
		{"another sort", `{"size":2,"sort":[{"field":"metrics.total_spend","order":"asc"}],"filter":{"field":"gender","op":"neq","value":"x"},"cursor":"` + next + `"}`},
		{"another time zone", `{` + search + `,"tz":"America/New_York","cursor":"` + next + `"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := a.do("POST", "/v1/customers/search", tt.body)
			if e, _ := body["error"].(map[string]any); code != 400 || e["code"] != "invalid_request" || e["path"] != "cursor" {
				t.Errorf("%d %v, want 400 invalid_request at cursor", code, body)
			}
		})
	}
	// The same search, sent by another process of the deployment, takes it.
	other := &apiTest{t: t, srv: harness.ServeAPI(t, a.cfg)}
	if code, body := other.do("POST", "/v1/customers/search", `{`+search+`,"cursor":"`+next+`"}`); code != 200 || len(body["customers"].([]any)) == 0 {
		t.Errorf("the cursor in another API process: %d %v, want its next page", code, body)
	}
}

func TestTranslateReturnsTheDSLSearchUses(t *testing.T) {
	t.Parallel()
	a := setup(t)
	code, body := a.do("POST", "/v1/filters/translate", `{"filter":{"field":"gender","op":"eq","value":"male"}}`)
	if code != 200 || !strings.Contains(fmt.Sprint(body["query"]), "gender") {
		t.Fatalf("%d %v", code, body)
	}
}

func TestNoAnswerShowsTheIndexersOwnFields(t *testing.T) {
	t.Parallel()
	a := setup(t)
	list := func(key string) func(map[string]any) []any {
		return func(body map[string]any) []any { l, _ := body[key].([]any); return l }
	}
	for _, tt := range []struct {
		method, path, body string
		docs               func(map[string]any) []any
	}{
		{"POST", "/v1/customers/search", `{"filter":{"all":[]},"size":100}`, list("customers")},
		{"GET", "/v1/customers/c1", "", func(body map[string]any) []any { return []any{body} }},
		{"GET", "/v1/customers?q=" + urlQuery("张"), "", list("customers")},
		{"POST", "/v1/filters/preview", `{"filter":{"all":[]},"sample":100}`, list("sample")},
	} { // a lookup answers with the 360 view of GET /v1/customers/{id}
		code, body := a.do(tt.method, tt.path, tt.body)
		docs := tt.docs(body)
		if code != 200 || len(docs) == 0 {
			t.Fatalf("%s %s: %d %v", tt.method, tt.path, code, body)
		}
		for _, d := range docs {
			for _, f := range schema.Internal {
				if _, ok := d.(map[string]any)[f]; ok {
					t.Errorf("%s %s shows %q: %v", tt.method, tt.path, f, d)
				}
			}
		}
	}
}

func TestTheSearchBoxFindsNamesPhoneFragmentsEmailsAndIdsBestFirst(t *testing.T) {
	t.Parallel()
	a := setup(t)
	tests := []struct{ q, first string }{
		{"张", "c1"}, {"张三", "c1"}, {"三丰", "c1"}, {"alice", "c3"}, {"Chen", "c3"},
		{"00000000", "c1"}, {"1380000", "c1"}, {"0111", "c2"}, {"13800000000", "c1"},
		{"ALICE@example.com", "c3"}, {"zhang@", "c1"}, {"5", "c5"},
	}
	for _, tt := range tests {
		code, body := a.do("GET", "/v1/customers?q="+urlQuery(tt.q), "")
		if code != 200 {
			t.Fatalf("q=%s: %d %v", tt.q, code, body)
		}
		list := body["customers"].([]any)
		if len(list) == 0 || list[0].(map[string]any)["customer_id"] != tt.first {
			t.Errorf("q=%s: got %v, want %s first", tt.q, ids(list), tt.first)
		}
	}
	code, body := a.do("GET", "/v1/customers?q=00000000", "")
	hl := body["customers"].([]any)[0].(map[string]any)["highlight"].(map[string]any)
	if code != 200 || !strings.Contains(fmt.Sprint(hl["phone"]), "<em>00000000</em>") {
		t.Errorf("highlight = %v, want the phone digits marked", hl)
	}
	if code, _ := a.do("GET", "/v1/customers?q=", ""); code != 400 {
		t.Errorf("empty q: %d, want 400", code)
	}
}

func ids(list []any) []any {
	var out []any
	for _, c := range list {
		out = append(out, c.(map[string]any)["customer_id"])
	}
	return out
}

func urlQuery(s string) string {
	var b bytes.Buffer
	for _, c := range []byte(s) {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func TestFieldsAreListedDeclaredAtRunTimeAndSuggestValues(t *testing.T) {
	t.Parallel()
	a := setup(t)
	code, body := a.do("GET", "/v1/fields", "")
	if code != 200 {
		t.Fatal(code, body)
	}
	byName := map[string]map[string]any{}
	for _, f := range body["fields"].([]any) {
		f := f.(map[string]any)
		byName[f["name"].(string)] = f
	}
	g := byName["gender"]
	if g == nil || g["type"] != "keyword" || len(g["operators"].([]any)) != 9 || len(g["candidates"].([]any)) != 2 {
		t.Errorf("gender = %v", g)
	}
	if byName["orders.items.sku"]["nested"] != "orders.items" {
		t.Errorf("orders.items.sku = %v", byName["orders.items.sku"])
	}

	code, body = a.do("POST", "/v1/fields", `{"name":"attrs.level2","label":{"zh":"二级等级","en":"Level 2"},"type":"keyword","candidates":[{"value":"a","label":{"zh":"甲","en":"A"}}]}`)
	if code != 201 {
		t.Fatalf("declare: %d %v", code, body)
	}
	a.expect(`{"field":"attrs.level2","op":"neq","value":"a"}`, "c1", "c2", "c3", "c4", "c5")
	if code, body := a.do("POST", "/v1/fields", `{"name":"attrs.level2","type":"number"}`); code != 409 {
		t.Errorf("redeclare with another type: %d %v, want 409", code, body)
	}
	if code, body := a.do("POST", "/v1/fields", `{"name":"gender","type":"keyword"}`); code != 400 {
		t.Errorf("declare a base field: %d %v, want 400", code, body)
	}
	code, body = a.do("GET", "/v1/fields/attrs.level2/values?q=甲", "")
	if code != 200 || len(body["values"].([]any)) != 1 {
		t.Errorf("declared candidates: %d %v", code, body)
	}
	code, body = a.do("GET", "/v1/fields/city/values", "")
	if code != 200 || len(body["values"].([]any)) != 3 {
		t.Errorf("indexed values of city: %d %v", code, body)
	}
	code, body = a.do("GET", "/v1/fields/orders.items.category/values?q=SHO", "")
	if code != 200 || fmt.Sprint(body["values"]) != "[map[count:3 value:shoes] map[count:1 value:Shoes*]]" {
		t.Errorf("nested values matching SHO, in their own case: %d %v", code, body)
	}
}
