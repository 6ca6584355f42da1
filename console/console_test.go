package console_test

import (
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"

	"cdp/config"
	"cdp/console"
)

func get(t *testing.T, h http.Handler, path string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	resp := rec.Result()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestTheConsoleIsServedFromTheBinaryAndEveryModuleItImportsIsThere(t *testing.T) {
	h := console.Handler(console.Config{})
	resp, body := get(t, h, console.Prefix)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `src="app.js"`) {
		t.Fatalf("GET %s: %d %q", console.Prefix, resp.StatusCode, body)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Fatalf("content security policy %q does not keep requests on the console's origin", csp)
	}
	// Follow the page's references and the modules' imports: each one is served.
	ref := regexp.MustCompile(`(?:src|href)="([^":]+)"|from '\./([^']+)'`)
	seen := map[string]bool{}
	queue := []string{""} // the page itself (index.html redirects to it)
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		if seen[name] {
			continue
		}
		seen[name] = true
		resp, body := get(t, h, console.Prefix+name)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: HTTP %d", name, resp.StatusCode)
		}
		if strings.HasSuffix(name, ".js") && !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") {
			t.Errorf("%s is served as %q: browsers refuse a module that is not JavaScript", name, resp.Header.Get("Content-Type"))
		}
		for _, m := range ref.FindAllStringSubmatch(body, -1) {
			queue = append(queue, m[1]+m[2])
		}
	}
	for _, want := range []string{"", "app.js", "builder.js", "api.js", "ui.js", "i18n.js", "style.css"} {
		if !seen[want] {
			t.Errorf("%s is not reachable from index.html", want)
		}
	}
}

func TestTheConsoleNamesNoOtherHost(t *testing.T) {
	url := regexp.MustCompile(`(?i)\b(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	err := fs.WalkDir(os.DirFS("static"), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile("static/" + path)
		if err != nil {
			return err
		}
		if m := url.Find(b); m != nil {
			t.Errorf("%s names another host: %s", path, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestAnUnknownConsoleFileIsA404(t *testing.T) {
	if resp, _ := get(t, console.Handler(console.Config{}), console.Prefix+"nope.js"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("HTTP %d", resp.StatusCode)
	}
}

func TestTheConsolesConfigSaysWhetherAndWhereToLogInThroughOIDC(t *testing.T) {
	type oidc struct {
		Issuer   string `json:"issuer"`
		ClientID string `json:"client_id"`
		Audience string `json:"audience"`
	}
	read := func(h http.Handler) (*http.Response, *oidc) {
		t.Helper()
		resp, body := get(t, h, console.Prefix+"config.json")
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("GET config.json: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		var doc struct{ OIDC *oidc }
		if err := json.Unmarshal([]byte(body), &doc); err != nil {
			t.Fatalf("config.json %q: %v", body, err)
		}
		return resp, doc.OIDC
	}

	// Without an issuer: API keys only, and no request leaves the origin.
	resp, o := read(console.Handler(console.Config{}))
	if o != nil {
		t.Errorf("no issuer configured, config.json names %+v", o)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "connect-src 'self';") {
		t.Errorf("no issuer configured, the CSP lets the console connect elsewhere: %q", csp)
	}

	// With one: its address and the client id, the audience by default.
	iss := "https://login.example.com/realms/cdp"
	resp, o = read(console.Handler(console.Config{Issuer: iss, Audience: "cdp"}))
	if o == nil || o.Issuer != iss || o.ClientID != "cdp" || o.Audience != "cdp" {
		t.Errorf("config.json names %+v, want the issuer with client id and audience cdp", o)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "connect-src 'self' https://login.example.com;") {
		t.Errorf("the CSP does not let the console reach the issuer, and it alone: %q", csp)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("config.json is cached (%q): a changed issuer would not be seen", cc)
	}
	if _, o = read(console.Handler(console.Config{Issuer: iss, ClientID: "console", Audience: "cdp"})); o == nil || o.ClientID != "console" {
		t.Errorf("an explicit client id: config.json names %+v", o)
	}

	// The service's configuration reaches it: CDP_OIDC_CLIENT_ID defaults
	// to the audience.
	cfg, err := config.FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	cfg.OIDCIssuer, cfg.OIDCAudience, cfg.OIDCClientID = iss, "cdp", ""
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, o = read(console.Handler(console.ConfigOf(cfg))); o == nil || o.Issuer != iss || o.ClientID != "cdp" {
		t.Errorf("from the service's configuration: config.json names %+v", o)
	}
}
