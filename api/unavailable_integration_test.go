package api_test

import (
	"encoding/json"
	"net"
	"strings"
	"testing"

	"cdp/testing/harness"
)

// OpenSearch being down is a 503 in the contract's words, never a 500, and
// never with OpenSearch's address or the service's index names in it.
func TestOpenSearchDownAnswers503(t *testing.T) {
	env := harness.Services(t)
	cfg := env.Config(t)

	// Point a second API at a port nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	down := *cfg
	down.OpenSearchURL = dead
	a := &apiTest{t: t, srv: harness.ServeAPI(t, &down)}
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/v1/customers/c1", ""},
		{"GET", "/v1/customers/lookup?type=phone&value=13800000000", ""},
		{"GET", "/v1/customers?q=张", ""},
		{"POST", "/v1/customers/search", `{"filter":{"field":"gender","op":"eq","value":"male"}}`},
		{"POST", "/v1/customers/count", `{}`},
		{"POST", "/v1/filters/translate", `{"filter":{"field":"attrs.unknown_yet","op":"eq","value":"x"}}`},
		{"GET", "/v1/fields", ""},
		{"GET", "/readyz", ""},
	} {
		code, body := a.do(c.method, c.path, c.body)
		if code != 503 {
			t.Errorf("%s %s with OpenSearch down: %d %v, want 503", c.method, c.path, code, body)
		}
		raw, _ := json.Marshal(body)
		for _, secret := range []string{strings.TrimPrefix(dead, "http://"), cfg.IndexPrefix + "-", "_search", "exception", "dial", "store:"} {
			if strings.Contains(strings.ToLower(string(raw)), strings.ToLower(secret)) {
				t.Errorf("%s %s: the answer %s gives away %q", c.method, c.path, raw, secret)
			}
		}
		if e, ok := body["error"].(map[string]any); !ok || e["request_id"] == nil {
			t.Errorf("%s %s: %s carries no request id", c.method, c.path, raw)
		}
	}
}
