package api_test

import (
	"net"
	"testing"

	"cdp/testing/harness"
)

// OpenSearch being down is a 503 naming it, never a 500.
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
		{"GET", "/v1/fields", ""},
		{"GET", "/readyz", ""},
	} {
		code, body := a.do(c.method, c.path, c.body)
		if code != 503 {
			t.Errorf("%s %s with OpenSearch down: %d %v, want 503", c.method, c.path, code, body)
		}
	}
}
