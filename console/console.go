// Package console is the marketer's console: a single-page application of
// plain ES modules (no build step, no third-party code) embedded in the
// binary and served by `cdp serve` under /console/. It talks only to the
// API on its own origin, with the API key the user logged in with, and,
// when an OIDC issuer is configured, to that issuer to log in through it
// (Authorization Code with PKCE, as a public client).
package console

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/url"

	"cdp/config"
)

//go:embed static
var files embed.FS

// Prefix is where the console is served.
const Prefix = "/console/"

// Config is what the console learns from GET /console/config.json: the
// OIDC issuer to log in through (none: API keys only), the console's
// client id there, and the audience the API verifies, which the token the
// console keeps must name.
type Config struct {
	Issuer   string
	ClientID string
	Audience string
}

// ConfigOf is the console's share of the service's configuration.
func ConfigOf(c *config.Config) Config {
	return Config{Issuer: c.OIDCIssuer, ClientID: c.OIDCClientID, Audience: c.OIDCAudience}
}

// origin is the scheme and host of an http(s) URL, "" for anything else.
func origin(s string) string {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// Handler serves the console's files under Prefix, and its configuration
// at Prefix+"config.json". The content security policy keeps every
// request on the console's own origin, but for the calls to the issuer
// (discovery and the token endpoint) when one is configured.
func Handler(c Config) http.Handler {
	sub, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // the embedded tree always has static/
	}
	connect := "'self'"
	doc := map[string]any{"oidc": nil}
	if o := origin(c.Issuer); o != "" {
		connect += " " + o
		clientID := c.ClientID
		if clientID == "" {
			clientID = c.Audience
		}
		doc["oidc"] = map[string]string{"issuer": c.Issuer, "client_id": clientID, "audience": c.Audience}
	}
	cfgJSON, err := json.Marshal(doc)
	if err != nil {
		panic(err) // strings only
	}
	csp := "default-src 'self'; connect-src " + connect + "; img-src 'self' data: blob:; style-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
	files := http.StripPrefix(Prefix, http.FileServer(http.FS(sub)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		if r.URL.Path == Prefix+"config.json" {
			h.Set("Content-Type", "application/json")
			h.Set("Cache-Control", "no-store")
			_, _ = w.Write(cfgJSON)
			return
		}
		// Embedded files have no modification time: have the browser
		// revalidate, so a new binary's console is what loads.
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}
