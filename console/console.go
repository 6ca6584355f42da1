// Package console is the marketer's console: a single-page application of
// plain ES modules (no build step, no third-party code) embedded in the
// binary and served by `cdp serve` under /console/. It talks only to the
// API on its own origin, with the API key the user logged in with.
package console

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var files embed.FS

// Prefix is where the console is served.
const Prefix = "/console/"

// Handler serves the console's files under Prefix. The content security
// policy keeps every request on the console's own origin.
func Handler() http.Handler {
	sub, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // the embedded tree always has static/
	}
	files := http.StripPrefix(Prefix, http.FileServer(http.FS(sub)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		// Embedded files have no modification time: have the browser
		// revalidate, so a new binary's console is what loads.
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}
