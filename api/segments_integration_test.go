package api_test

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// save creates a segment and returns its id.
func (a *apiTest) save(name, filter string) string {
	a.t.Helper()
	code, body := a.do("POST", "/v1/segments", `{"name":"`+name+`","filter":`+filter+`,"description":"test"}`)
	if code != http.StatusCreated {
		a.t.Fatalf("create segment %s: %d %v", name, code, body)
	}
	return body["id"].(string)
}

// status sends a request and returns only its status.
func (a *apiTest) status(method, path, body string) int {
	a.t.Helper()
	req, _ := http.NewRequest(method, a.srv.URL+path, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestASavedSegmentIsCreatedReadListedUpdatedAndDeleted(t *testing.T) {
	t.Parallel()
	a := setup(t)
	code, created := a.do("POST", "/v1/segments", `{"name":"gold","filter":{"field":"member_level","op":"eq","value":"gold"},"description":"金卡"}`)
	if code != http.StatusCreated {
		t.Fatalf("create: %d %v", code, created)
	}
	id, _ := created["id"].(string)
	for _, k := range []string{"id", "name", "filter", "description", "created_at", "updated_at"} {
		if created[k] == nil {
			t.Errorf("created segment lacks %q: %v", k, created)
		}
	}
	// Read right after the write: no refresh in between.
	code, got := a.do("GET", "/v1/segments/"+id, "")
	if code != 200 || got["name"] != "gold" || got["size"] != float64(2) || got["description"] != "金卡" {
		t.Fatalf("get: %d %v, want gold with size 2", code, got)
	}
	code, list := a.do("GET", "/v1/segments", "")
	if segs, _ := list["segments"].([]any); code != 200 || len(segs) != 1 || segs[0].(map[string]any)["id"] != id {
		t.Fatalf("list: %d %v", code, list)
	}
	code, upd := a.do("PUT", "/v1/segments/"+id, `{"name":"gold or silver","filter":{"field":"member_level","op":"in","value":["gold","silver"]}}`)
	if code != 200 || upd["name"] != "gold or silver" || upd["created_at"] != created["created_at"] {
		t.Fatalf("update: %d %v", code, upd)
	}
	if _, got = a.do("GET", "/v1/segments/"+id, ""); got["size"] != float64(3) {
		t.Errorf("size after update %v, want 3", got["size"])
	}
	if code := a.status("DELETE", "/v1/segments/"+id, ""); code != http.StatusNoContent {
		t.Fatalf("delete: %d", code)
	}
	if code, body := a.do("GET", "/v1/segments/"+id, ""); code != 404 {
		t.Fatalf("get after delete: %d %v", code, body)
	}
}

func TestSegmentErrorsAreTheRightStatusNamingWhatIsWrong(t *testing.T) {
	t.Parallel()
	a := setup(t)
	base := a.save("base", `{"field":"gender","op":"eq","value":"female"}`)
	top := a.save("top", `{"all":[{"segment":"`+base+`"},{"field":"member_level","op":"eq","value":"gold"}]}`)
	tests := []struct {
		name, method, path, body string
		status                   int
		code, errPath, message   string
	}{
		{"an unknown segment in the path", "GET", "/v1/segments/seg_nope", "", 404, "segment_not_found", "", "seg_nope"},
		{"an unknown segment to update", "PUT", "/v1/segments/seg_nope", `{"name":"x","filter":{"all":[]}}`, 404, "segment_not_found", "", ""},
		{"an unknown segment to delete", "DELETE", "/v1/segments/seg_nope", "", 404, "segment_not_found", "", ""},
		{"an empty body", "POST", "/v1/segments", "", 400, "invalid_json", "", ""},
		{"a body that is not JSON", "POST", "/v1/segments", "name=x", 400, "invalid_json", "", ""},
		{"no name", "POST", "/v1/segments", `{"filter":{"all":[]}}`, 400, "invalid_request", "name", ""},
		{"no filter", "POST", "/v1/segments", `{"name":"x"}`, 400, "invalid_filter", "filter", ""},
		{"an unknown key", "POST", "/v1/segments", `{"name":"x","filter":{"all":[]},"owner":"me"}`, 400, "invalid_request", "owner", ""},
		{"an invalid filter", "POST", "/v1/segments", `{"name":"x","filter":{"all":[{"field":"shoe","op":"eq","value":1}]}}`, 400, "invalid_filter", "all[0].field", ""},
		{"a missing segment in the filter", "POST", "/v1/segments", `{"name":"x","filter":{"any":[{"segment":"seg_gone"}]}}`, 400, "invalid_filter", "any[0].segment", "seg_gone"},
		{"an update that makes a cycle", "PUT", "/v1/segments/" + base, `{"name":"base","filter":{"not":{"segment":"` + top + `"}}}`, 400, "invalid_filter", "not.segment", "refers to itself"},
		{"an update that refers to itself", "PUT", "/v1/segments/" + base, `{"name":"base","filter":{"segment":"` + base + `"}}`, 400, "invalid_filter", "segment", ""},
		{"a delete of a referenced segment", "DELETE", "/v1/segments/" + base, "", 409, "segment_in_use", "", top},
		{"a search naming a missing segment", "POST", "/v1/customers/search", `{"filter":{"all":[{"segment":"seg_gone"}]}}`, 400, "invalid_filter", "all[0].segment", ""},
		{"a count naming a missing segment", "POST", "/v1/customers/count", `{"filter":{"segment":"seg_gone"}}`, 400, "invalid_filter", "segment", ""},
		{"a preview naming a missing segment", "POST", "/v1/filters/preview", `{"filter":{"segment":"seg_gone"}}`, 400, "invalid_filter", "segment", ""},
		{"a translate naming a missing segment", "POST", "/v1/filters/translate", `{"filter":{"segment":"seg_gone"}}`, 400, "invalid_filter", "segment", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := a.do(tt.method, tt.path, tt.body)
			e, _ := body["error"].(map[string]any)
			if code != tt.status || e["code"] != tt.code {
				t.Fatalf("%d %v, want %d %s", code, body, tt.status, tt.code)
			}
			if tt.errPath != "" && e["path"] != tt.errPath {
				t.Errorf("path %v, want %q", e["path"], tt.errPath)
			}
			if msg, _ := e["message"].(string); !strings.Contains(msg, tt.message) {
				t.Errorf("message %q does not name %q", msg, tt.message)
			}
		})
	}
	// The failed update changed nothing: base is still used by top.
	a.expect(`{"segment":"`+top+`"}`, "c5")
}

func TestSegmentNodesWorkInSearchCountAndAsUnionIntersectionAndDifference(t *testing.T) {
	t.Parallel()
	a := setup(t)
	female := a.save("female", `{"field":"gender","op":"eq","value":"female"}`)
	gold := a.save("gold", `{"field":"member_level","op":"eq","value":"gold"}`)
	goldWomen := a.save("gold women", `{"all":[{"segment":"`+female+`"},{"segment":"`+gold+`"}]}`)
	a.expect(`{"segment":"`+female+`"}`, "c2", "c5")
	a.expect(`{"any":[{"segment":"`+female+`"},{"segment":"`+gold+`"}]}`, "c1", "c2", "c5")
	a.expect(`{"all":[{"segment":"`+gold+`"},{"not":{"segment":"`+female+`"}}]}`, "c1")
	a.expect(`{"segment":"`+goldWomen+`"}`, "c5")
	// An edit of a segment changes what the segments over it mean at once.
	if code, body := a.do("PUT", "/v1/segments/"+gold, `{"name":"silver","filter":{"field":"member_level","op":"eq","value":"silver"}}`); code != 200 {
		t.Fatalf("update: %d %v", code, body)
	}
	a.expect(`{"segment":"` + goldWomen + `"}`)
	a.expect(`{"segment":"`+gold+`"}`, "c4")
}

func TestTheCustomerViewListsTheSegmentsItBelongsToNow(t *testing.T) {
	t.Parallel()
	a := setup(t)
	view := func(id string) []string {
		t.Helper()
		code, body := a.do("GET", "/v1/customers/"+id, "")
		if code != 200 {
			t.Fatalf("view %s: %d %v", id, code, body)
		}
		var out []string
		for _, s := range body["segments"].([]any) {
			out = append(out, s.(string))
		}
		slices.Sort(out)
		return out
	}
	if got := view("c5"); len(got) != 0 {
		t.Fatalf("segments before any is saved: %v", got)
	}
	female := a.save("female", `{"field":"gender","op":"eq","value":"female"}`)
	gold := a.save("gold", `{"field":"member_level","op":"eq","value":"gold"}`)
	both := a.save("both", `{"all":[{"segment":"`+female+`"},{"segment":"`+gold+`"}]}`)
	bigSpender := a.save("big spender", `{"field":"metrics.total_spend","op":"gte","value":1000}`)
	viewer := a.save("viewer", `{"event":"view_product","within":"7d","op":"gte","value":2}`)
	paidShoes := a.save("paid shoes", `{"nested":"orders","match":"any","where":{"all":[{"field":"orders.status","op":"eq","value":"paid"},{"field":"orders.items.category","op":"eq","value":"shoes"}]}}`)
	want := []string{female, gold, both}
	slices.Sort(want)
	if got := view("c5"); !slices.Equal(got, want) {
		t.Errorf("c5 belongs to %v, want %v", got, want)
	}
	want = []string{gold, viewer, paidShoes}
	slices.Sort(want)
	if got := view("c1"); !slices.Equal(got, want) {
		t.Errorf("c1 belongs to %v, want %v", got, want)
	}
	if got := view("c3"); len(got) != 0 {
		t.Errorf("c3 belongs to %v, want none", got)
	}
	a.setSpend("c3", 5000)
	if got := view("c3"); !slices.Equal(got, []string{bigSpender}) {
		t.Errorf("c3 after spending belongs to %v, want [%s]", got, bigSpender)
	}
}

func TestAPreviewCountsAsCountDoesAndSamplesAtMostItsSize(t *testing.T) {
	t.Parallel()
	a := setup(t)
	seg := a.save("female", `{"field":"gender","op":"eq","value":"female"}`)
	filters := []string{
		`{"all":[]}`,
		`{"field":"gender","op":"neq","value":"male"}`,
		`{"segment":"` + seg + `"}`,
		`{"nested":"orders","match":"any","where":{"field":"orders.status","op":"eq","value":"paid"}}`,
	}
	for _, f := range filters {
		for _, n := range []int{0, 1, 10} {
			code, p := a.do("POST", "/v1/filters/preview", `{"filter":`+f+`,"sample":`+strconv.Itoa(n)+`}`)
			_, cnt := a.do("POST", "/v1/customers/count", `{"filter":`+f+`}`)
			if code != 200 || p["count"] != cnt["count"] || p["query"] == nil {
				t.Fatalf("preview %s: %d %v, count %v", f, code, p, cnt["count"])
			}
			if got, want := len(p["sample"].([]any)), min(n, int(cnt["count"].(float64))); got != want {
				t.Errorf("preview %s sample %d: %d documents, want %d", f, n, got, want)
			}
			for _, d := range p["sample"].([]any) {
				if doc := d.(map[string]any); doc["customer_id"] == nil || doc["relation"] != nil {
					t.Errorf("a sampled document %v: want its customer_id and no join field", doc)
				}
			}
		}
	}
	for _, body := range []string{`{"sample":-1}`, `{"sample":101}`, `{"sample":"ten"}`} {
		code, resp := a.do("POST", "/v1/filters/preview", body)
		if e, _ := resp["error"].(map[string]any); code != 400 || e["path"] != "sample" {
			t.Errorf("preview %s: %d %v, want 400 at sample", body, code, resp)
		}
	}
}
