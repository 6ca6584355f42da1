package main

import (
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"cdp/testing/harness"
)

// `cdp keys create` prints the key alone on its last line; the service
// of the same configuration takes it, with its role; `cdp keys revoke`
// ends it.
func TestKeysCreatePrintsAKeyTheServiceTakesUntilItIsRevoked(t *testing.T) {
	env := harness.Services(t)
	cfg := env.Config(t)
	env.Bootstrap(t, cfg)
	srv := harness.ServeAccess(t, cfg)
	cdp := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(harness.CDPBinary(t), append(args, cfg.Args()...)...).Output()
		if err != nil {
			t.Fatalf("cdp %s: %v", strings.Join(args, " "), err)
		}
		return string(out)
	}
	lines := strings.Split(strings.TrimRight(cdp("keys", "create", "--name", "cli-test", "--role", "service"), "\n"), "\n")
	key := lines[len(lines)-1]
	get := func(path string) int {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get("/v1/customers?q=x"); code != http.StatusOK {
		t.Fatalf("the search box with the new service key (%q): %d, want 200", key, code)
	}
	if code := get("/v1/fields"); code != http.StatusForbidden {
		t.Errorf("the field catalog with a service key: %d, want 403", code)
	}
	list := cdp("keys", "list")
	if !strings.Contains(list, "cli-test") || strings.Contains(list, key) {
		t.Fatalf("cdp keys list: %q, want the key's name and never its token", list)
	}
	var id string
	for _, l := range strings.Split(list, "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[1] == "cli-test" {
			id = f[0]
		}
	}
	cdp("keys", "revoke", id)
	// Another process revoked it: the service's cache holds a key 5 s.
	harness.Eventually(t, 10*time.Second, func() (bool, string) {
		code := get("/v1/customers?q=x")
		return code == http.StatusUnauthorized, fmt.Sprintf("the revoked key: %d, want 401", code)
	})
}
