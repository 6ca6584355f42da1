package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
)

// net/http refuses some requests before any handler runs — no Host
// header, headers beyond MaxHeaderBytes, a malformed request line or
// header, an unsupported Transfer-Encoding or HTTP version, an Expect
// other than 100-continue — and writes its answer straight to the
// connection in text/plain. The contract wants every error in the JSON
// shape, with a request id. No handler hook sees those requests, so the
// connections of the server are wrapped (jsonErrorsListener) and a write
// made while no request of the connection is being served is, when it is
// an HTTP error answer, replaced by the same error in JSON.
//
// Which writes are net/http's own is known from the server, not guessed
// from their bytes: NewHTTPServer's ConnContext arms a connection, its
// handler marks the connection busy before the handler runs, and its
// ConnState hook marks it free again on StateIdle, which net/http enters
// only once the answer is wholly written (finishRequest flushes it,
// chunk trailer included, before the hook runs). Every byte of a
// handler's answer — a 100 Continue, a streamed body, a hijacked
// connection — is therefore written while the connection is busy and
// passes untouched. While it is free, net/http writes only its refusals
// and the 200 of "OPTIONS *" (served without the handler); only a write
// that is a whole 4xx or 5xx head is replaced, anything else passes.
// Every way the wiring can be incomplete (a server without the hooks, a
// listener without the wrapper, hooks replaced) leaves the text answers
// as they were, never a handler's answer changed.

// jsonErrorsListener wraps each accepted connection in a jsonErrorsConn.
type jsonErrorsListener struct {
	net.Listener
	maxHeaderBytes int
}

func (l jsonErrorsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &jsonErrorsConn{Conn: c, maxHeaderBytes: l.maxHeaderBytes}, nil
}

// jsonErrorsConn replaces net/http's own error answers by JSON ones.
type jsonErrorsConn struct {
	net.Conn
	maxHeaderBytes int
	// armed: the server's hooks track this connection (ConnContext ran).
	armed atomic.Bool
	// busy: a request is being served, from the start of its handler to
	// the end of its answer.
	busy atomic.Bool
	// dropping: an answer was replaced; the rest of it, should net/http
	// write it in more than one piece, is dropped.
	dropping atomic.Bool
}

func (c *jsonErrorsConn) Write(p []byte) (int, error) {
	if !c.armed.Load() || c.busy.Load() {
		return c.Conn.Write(p)
	}
	if c.dropping.Load() {
		return len(p), nil
	}
	answer, ok := jsonAnswer(p, c.maxHeaderBytes)
	if !ok {
		return c.Conn.Write(p)
	}
	c.dropping.Store(true)
	if _, err := c.Conn.Write(answer); err != nil {
		return 0, err
	}
	return len(p), nil
}

// CloseWrite lets net/http half-close after a 431 (closeWriteAndWait),
// so that the client reads the answer, when the connection beneath can.
func (c *jsonErrorsConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// begin marks the connection busy: a handler is about to run.
func (c *jsonErrorsConn) begin() { c.busy.Store(true) }

// idle marks the connection free: the last answer is wholly written and
// net/http reads the next request.
func (c *jsonErrorsConn) idle() {
	c.dropping.Store(false)
	c.busy.Store(false)
}

type jsonErrorsConnKey struct{}

// trackConn is the server's ConnContext: it arms the connection and lets
// the handler find it.
func trackConn(ctx context.Context, c net.Conn) context.Context {
	jc, ok := c.(*jsonErrorsConn)
	if !ok {
		return ctx
	}
	jc.armed.Store(true)
	return context.WithValue(ctx, jsonErrorsConnKey{}, jc)
}

// trackState is the server's ConnState hook.
func trackState(c net.Conn, s http.ConnState) {
	if jc, ok := c.(*jsonErrorsConn); ok && s == http.StateIdle {
		jc.idle()
	}
}

// trackHandler marks the request's connection busy before h runs.
func trackHandler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if jc, ok := r.Context().Value(jsonErrorsConnKey{}).(*jsonErrorsConn); ok {
			jc.begin()
		}
		h.ServeHTTP(w, r)
	})
}

// jsonAnswer returns the JSON answer that replaces p, net/http's own
// answer, when p is a whole head of a 4xx or 5xx answer, as net/http
// writes them: in one piece, "HTTP/1.x NNN <reason>[: <detail>]", a
// text body.
func jsonAnswer(p []byte, maxHeaderBytes int) ([]byte, bool) {
	end := bytes.Index(p, []byte("\r\n\r\n"))
	if end < 0 {
		return nil, false
	}
	line, _, _ := bytes.Cut(p[:end], []byte("\r\n"))
	proto, rest, ok := strings.Cut(string(line), " ")
	if !ok || proto != "HTTP/1.1" && proto != "HTTP/1.0" || len(rest) < 3 {
		return nil, false
	}
	status, err := strconv.Atoi(rest[:3])
	if err != nil || status < 400 || status > 599 || len(rest) > 3 && rest[3] != ' ' {
		return nil, false
	}
	_, detail, _ := strings.Cut(rest, ": ")
	code, msg := describeRefusal(status, detail, string(p[end+4:]), maxHeaderBytes)
	id := newRequestID()
	body, err := json.Marshal(map[string]errorBody{"error": {apiError: apiError{Code: code, Message: msg}, RequestID: id}})
	if err != nil {
		return nil, false
	}
	var b bytes.Buffer
	b.WriteString(proto + " " + strconv.Itoa(status) + " " + http.StatusText(status) + "\r\n")
	b.WriteString("Content-Type: application/json; charset=utf-8\r\n")
	b.WriteString("X-Request-Id: " + id + "\r\n")
	b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n")
	b.WriteString("Connection: close\r\n\r\n")
	b.Write(body)
	return b.Bytes(), true
}

// describeRefusal names a refusal of net/http in the contract's terms.
// detail is what follows the reason in its status line ("missing required
// Host header"), text its body. Neither echoes the request: net/http
// writes fixed strings.
func describeRefusal(status int, detail, text string, maxHeaderBytes int) (code, msg string) {
	switch status {
	case http.StatusBadRequest:
		switch detail {
		case "missing required Host header":
			return "invalid_request", "the request has no Host header"
		case "malformed Host header":
			return "invalid_request", "the request's Host header is malformed"
		case "invalid header name":
			return "invalid_request", "the request has a header with an invalid name"
		case "invalid header value":
			return "invalid_request", "the request has a header with an invalid value"
		case "":
			return "invalid_request", "the request is not valid HTTP/1.1: its request line, a header or its framing (Content-Length, Transfer-Encoding) is malformed"
		}
		return "invalid_request", "the request is invalid: " + detail
	case http.StatusRequestHeaderFieldsTooLarge:
		if maxHeaderBytes <= 0 {
			maxHeaderBytes = http.DefaultMaxHeaderBytes
		}
		kib := strconv.FormatFloat(float64(maxHeaderBytes)/1024, 'f', -1, 64)
		return "headers_too_large", "the request line and headers exceed the limit of " + kib + " KiB"
	case http.StatusExpectationFailed:
		return "expectation_failed", "the request's Expect header is not supported; only 100-continue is"
	case http.StatusNotImplemented:
		if text == "Unsupported transfer encoding" {
			return "unsupported_transfer_encoding", "the request's Transfer-Encoding is not supported; only chunked alone is"
		}
	case http.StatusHTTPVersionNotSupported:
		return "http_version_not_supported", "the HTTP version of the request is not supported; HTTP/1.0 and HTTP/1.1 are"
	}
	// A refusal this code does not know yet: still the JSON shape, in
	// net/http's words.
	reason := strings.ToLower(http.StatusText(status))
	code = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			return r
		case r == ' ' || r == '-':
			return '_'
		}
		return -1
	}, reason)
	if code == "" {
		code, reason = "http_error", "HTTP error "+strconv.Itoa(status)
	}
	if detail != "" {
		return code, reason + ": " + detail
	}
	return code, reason
}
