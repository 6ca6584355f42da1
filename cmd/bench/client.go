package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// httpClient is the one HTTP client of the bench: the API and OpenSearch
// are called through the same transport (keep-alive, no compression), so
// neither side gets a cheaper connection.
var httpClient = &http.Client{
	Timeout: 2 * time.Minute,
	Transport: keyed{&http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        512,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}},
}

// apiKeys holds the API key of each API address the bench started.
var apiKeys sync.Map

// keyed adds the API key of the request's host, when it has one.
type keyed struct{ base http.RoundTripper }

func (k keyed) RoundTrip(req *http.Request) (*http.Response, error) {
	if key, ok := apiKeys.Load(req.URL.Host); ok && req.Header.Get("Authorization") == "" {
		req = req.Clone(req.Context())
		req.Header.Set("Authorization", "Bearer "+key.(string))
	}
	return k.base.RoundTrip(req)
}

// endpoint is a base URL (the API's or OpenSearch's).
type endpoint string

// do sends one request and returns the body of a 2xx answer; any other
// status is an error that quotes the start of the body.
func (e endpoint) do(ctx context.Context, method, path string, body any) ([]byte, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequestWithContext(ctx, method, string(e)+path, rd)
	if err != nil {
		return nil, err
	}
	if rd != nil {
		ct := "application/json"
		if strings.Contains(path, "_bulk") {
			ct = "application/x-ndjson"
		}
		req.Header.Set("Content-Type", ct)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: read: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s %s: %d: %.300s", method, path, resp.StatusCode, data)
	}
	return data, nil
}

// json sends one request and decodes the 2xx answer into out.
func (e endpoint) json(ctx context.Context, method, path string, body, out any) error {
	data, err := e.do(ctx, method, path, body)
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decode: %w", method, path, err)
	}
	return nil
}

// timed runs one request and reports its latency from due into s (or its
// failure).
func timed(s *Samples, due time.Time, f func() error) {
	if err := f(); err != nil {
		s.Fail(err)
		return
	}
	s.Add(time.Since(due))
}

func httpNewGet(ctx context.Context, url string) (*http.Request, error) {
	return http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
}
