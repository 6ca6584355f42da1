// Package store is the service's access to OpenSearch: a small JSON client
// over opensearch-go's transport, index bootstrap behind aliases, bulk
// writes that return a verdict per item, and the one way the service reads
// searches: Search for one page, Pages and Hits to walk every hit with
// search_after (under a point in time if asked), Mget by id.
package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/opensearch-project/opensearch-go/v4"
)

// Client talks JSON to one OpenSearch cluster.
type Client struct {
	os *opensearch.Client
}

// New returns a client for the cluster at url. The transport's own retries
// are off: callers retry with their own context and backoff, so that a
// bulk write is never silently replayed behind their back.
//
// Its transport keeps up to 256 idle connections (net/http's default
// keeps 2, so a busy API opened a new connection for most requests) and
// does not ask for compressed answers: OpenSearch runs beside the service,
// where compressing and inflating every answer costs both ends CPU and
// buys nothing.
func New(url string) (*Client, error) {
	disable := false
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 512, 256
	tr.DisableCompression = true
	c, err := opensearch.NewClient(opensearch.Config{
		Transport:             tr,
		Addresses:             []string{url},
		DisableRetry:          true,
		DiscoverNodesOnStart:  &disable,
		HealthCheckMaxRetries: -1,
	})
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return &Client{os: c}, nil
}

// Error is a non-2xx answer of OpenSearch.
type Error struct {
	Status int
	Type   string
	Reason string
	// Cause is the type of the innermost caused_by, when the error has
	// one: a search refused as search_phase_execution_exception says
	// why there (too_many_buckets_exception, say).
	Cause string
}

// HasCause reports whether err is an *Error whose type or innermost
// cause is typ.
func HasCause(err error, typ string) bool {
	var e *Error
	return errors.As(err, &e) && (e.Type == typ || e.Cause == typ)
}

func (e *Error) Error() string {
	return fmt.Sprintf("opensearch: %d %s: %s", e.Status, e.Type, e.Reason)
}

// ErrUnreachable wraps a request that got no answer from OpenSearch
// (connection refused, reset, timed out).
var ErrUnreachable = errors.New("opensearch unreachable")

// Unavailable reports whether err means OpenSearch could not be reached or
// answered that it cannot serve now, so the caller should answer 503 or
// retry later. Any other error (a body we could not encode or decode) is
// not OpenSearch's doing.
func Unavailable(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Status == http.StatusTooManyRequests || e.Status >= 500
	}
	return errors.Is(err, ErrUnreachable)
}

// StatusOf returns the HTTP status of an *Error, or 0.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// Do sends one request. body is marshalled unless it is already []byte;
// out, when not nil, receives the decoded 2xx answer. A non-2xx answer is
// returned as *Error.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			return fmt.Errorf("store: encode %s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequestWithContext(ctx, method, path, rd)
	if err != nil {
		return err
	}
	ct := "application/json"
	if strings.Contains(path, "_bulk") {
		ct = "application/x-ndjson"
	}
	req.Header = http.Header{"Content-Type": {ct}}
	resp, err := c.os.Stream(req)
	if err != nil {
		return fmt.Errorf("store: %s %s: %w: %w", method, path, ErrUnreachable, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("store: %s %s: read: %w: %w", method, path, ErrUnreachable, err)
	}
	if resp.StatusCode >= 300 {
		return decodeError(resp.StatusCode, data)
	}
	if out == nil || method == http.MethodHead {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("store: %s %s: decode: %w", method, path, err)
	}
	return nil
}

type errorDetail struct {
	Type     string       `json:"type"`
	Reason   string       `json:"reason"`
	CausedBy *errorDetail `json:"caused_by"`
}

func decodeError(status int, data []byte) *Error {
	var body struct {
		Error json.RawMessage `json:"error"`
	}
	e := &Error{Status: status}
	if json.Unmarshal(data, &body) == nil && len(body.Error) > 0 {
		var detail errorDetail
		if json.Unmarshal(body.Error, &detail) == nil && detail.Type != "" {
			e.Type, e.Reason = detail.Type, detail.Reason
			for c := detail.CausedBy; c != nil; c = c.CausedBy {
				e.Cause = c.Type
			}
			return e
		}
		e.Reason = strings.Trim(string(body.Error), `"`)
		return e
	}
	e.Reason = strings.TrimSpace(string(data))
	if len(e.Reason) > 300 {
		e.Reason = e.Reason[:300]
	}
	return e
}

// Ping checks that the cluster answers and is at least yellow.
func (c *Client) Ping(ctx context.Context) error {
	var health struct {
		Status string `json:"status"`
	}
	if err := c.Do(ctx, http.MethodGet, "/_cluster/health", nil, &health); err != nil {
		return err
	}
	if health.Status == "red" {
		return &Error{Status: http.StatusServiceUnavailable, Type: "cluster_red", Reason: "cluster health is red"}
	}
	return nil
}

// Refresh makes everything written to the named indices searchable.
func (c *Client) Refresh(ctx context.Context, indices ...string) error {
	return c.Do(ctx, http.MethodPost, "/"+strings.Join(indices, ",")+"/_refresh", nil, nil)
}

// DeleteByQuery deletes the documents of index that match query, as the
// index stood at its last refresh, and returns how many it deleted. A
// document changed while it runs is left alone (conflicts=proceed); any
// other failure fails the call.
func (c *Client) DeleteByQuery(ctx context.Context, index string, query any) (int64, error) {
	var resp struct {
		Deleted  int64             `json:"deleted"`
		Failures []json.RawMessage `json:"failures"`
	}
	if err := c.Do(ctx, http.MethodPost, "/"+index+"/_delete_by_query?conflicts=proceed", map[string]any{"query": query}, &resp); err != nil {
		return 0, err
	}
	if len(resp.Failures) > 0 {
		return resp.Deleted, &Error{Status: http.StatusServiceUnavailable, Type: "delete_by_query_failures",
			Reason: fmt.Sprintf("%d failures, the first: %s", len(resp.Failures), resp.Failures[0])}
	}
	return resp.Deleted, nil
}

// GetSource returns the _source of one document, without the excluded
// fields; found is false on 404.
func (c *Client) GetSource(ctx context.Context, index, id string, out any, excludes ...string) (found bool, err error) {
	var doc struct {
		Found  bool            `json:"found"`
		Source json.RawMessage `json:"_source"`
	}
	path := "/" + index + "/_doc/" + escapeID(id)
	if len(excludes) > 0 {
		path += "?_source_excludes=" + url.QueryEscape(strings.Join(excludes, ","))
	}
	err = c.Do(ctx, http.MethodGet, path, nil, &doc)
	if StatusOf(err) == http.StatusNotFound {
		return false, nil
	}
	if err != nil || !doc.Found {
		return false, err
	}
	return true, json.Unmarshal(doc.Source, out)
}

func escapeID(id string) string {
	var b strings.Builder
	for _, r := range []byte(id) {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' || r == '~' {
			b.WriteByte(r)
		} else {
			fmt.Fprintf(&b, "%%%02X", r)
		}
	}
	return b.String()
}

// WaitReady polls Ping until it succeeds or ctx ends.
func (c *Client) WaitReady(ctx context.Context) error {
	for {
		err := c.Ping(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("store: opensearch not ready: %w", err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}
