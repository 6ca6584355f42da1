package console_test

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"

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
	h := console.Handler()
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
	if resp, _ := get(t, console.Handler(), console.Prefix+"nope.js"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("HTTP %d", resp.StatusCode)
	}
}
