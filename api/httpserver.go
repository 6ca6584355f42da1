package api

import (
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"
)

// HTTPLimits bound what one client connection may take of the API
// process: time to send its headers and body, time to take its answer,
// time to sit idle, header bytes, and how many connections are open at
// once. With the admission control of the /v1 routes they keep memory
// bounded at any number of clients (a slow or stuck client once held its
// connection, and the memory behind it, forever).
type HTTPLimits struct {
	// ReadHeaderTimeout is the longest a client may take to send the
	// request line and headers.
	ReadHeaderTimeout time.Duration
	// ReadTimeout is the longest from the start of a request until its
	// body has arrived. The /v1 routes read their bodies before
	// admission under a deadline of their own (Admission.BodyTimeout),
	// which replaces this one once the headers are in; ReadTimeout is the
	// bound of every other route.
	ReadTimeout time.Duration
	// WriteTimeout is the longest from the end of the headers until the
	// answer is written: it covers the body, the wait for admission, the
	// work on OpenSearch and the write. Answers are small today; a
	// streaming answer (an export) must extend its own write deadline as
	// it goes, with http.ResponseController.SetWriteDeadline, rather than
	// raise this for every request.
	WriteTimeout time.Duration
	// IdleTimeout is how long a keep-alive connection may wait for its
	// next request.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the request line and headers.
	MaxHeaderBytes int
	// MaxConns bounds the open connections; more wait in the kernel's
	// accept queue until one closes.
	MaxConns int
}

// DefaultHTTPLimits fit DefaultAdmission: headers within 5 s, the body
// within its 10 s after them, and the whole answer within 30 s of the
// headers (10 s of body, a 250 ms queue and OpenSearch's time). 1,024
// connections of at most 32 KiB of headers and their buffers and
// goroutines come to a few tens of MiB, next to the 64 MiB of bodies
// admission allows, within the process's 256 MiB.
var DefaultHTTPLimits = HTTPLimits{
	ReadHeaderTimeout: 5 * time.Second,
	ReadTimeout:       5*time.Second + DefaultAdmission.BodyTimeout,
	WriteTimeout:      30 * time.Second,
	IdleTimeout:       60 * time.Second,
	MaxHeaderBytes:    32 << 10,
	MaxConns:          1024,
}

// NewHTTPServer returns a server of handler with the limits' deadlines
// and header bound (a zero field keeps net/http's default: none, or 1 MiB
// of headers). On a listener of Listen or LimitListener it answers the
// requests net/http refuses itself in the contract's JSON error shape
// (httperrors.go); its ConnContext, ConnState and Handler carry that and
// must not be replaced.
func NewHTTPServer(handler http.Handler, l HTTPLimits) *http.Server {
	return &http.Server{
		Handler:           trackHandler(handler),
		ConnContext:       trackConn,
		ConnState:         trackState,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       l.ReadTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
	}
}

// Listen listens on addr with at most l.MaxConns connections open at once
// (0: no bound), each wrapped as LimitListener does.
func Listen(addr string, l HTTPLimits) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return LimitListener(ln, l), nil
}

// LimitListener bounds the connections ln accepts to l.MaxConns (0: no
// bound) and wraps each so that a server of NewHTTPServer answers
// net/http's own refusals (no Host header, headers beyond
// l.MaxHeaderBytes, a malformed request) in JSON.
func LimitListener(ln net.Listener, l HTTPLimits) net.Listener {
	if l.MaxConns > 0 {
		ln = netutil.LimitListener(ln, l.MaxConns)
	}
	return jsonErrorsListener{Listener: ln, maxHeaderBytes: l.MaxHeaderBytes}
}
