package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Hit is one search hit. Source is the document's JSON exactly as
// OpenSearch sent it, so that callers may splice it into an answer
// without decoding and encoding it again, or decode it into their own
// type. Sort holds the hit's sort values as raw JSON, so that handing
// them back as search_after repeats them exactly (through a float64, a
// long beyond 2^53, such as the Long.MAX_VALUE OpenSearch gives a document
// missing a long sort field, would come back as another number).
type Hit struct {
	Index   string `json:"_index"`
	ID      string `json:"_id"`
	Routing string `json:"_routing,omitempty"`
	// SeqNo and PrimaryTerm are set when the search asked for them
	// ("seq_no_primary_term": true).
	SeqNo       *int64              `json:"_seq_no,omitempty"`
	PrimaryTerm *int64              `json:"_primary_term,omitempty"`
	Score       *float64            `json:"_score"`
	Source      json.RawMessage     `json:"_source"`
	Sort        []json.RawMessage   `json:"sort,omitempty"`
	Highlight   map[string][]string `json:"highlight,omitempty"`
}

// Decode unmarshals the hit's source into out.
func (h *Hit) Decode(out any) error {
	if err := json.Unmarshal(h.Source, out); err != nil {
		return fmt.Errorf("store: decode %s/%s: %w", h.Index, h.ID, err)
	}
	return nil
}

// SearchResult is the part of a _search answer the service reads.
type SearchResult struct {
	// PITID is the point in time to use for the next page, when the
	// search ran under one; OpenSearch may hand out a new id.
	PITID string
	// Total is hits.total.value: exact with "track_total_hits": true, a
	// lower bound past 10,000 otherwise, 0 when not tracked.
	Total int64
	Hits  []Hit
	// Aggregations is the aggregations object as sent, if any.
	Aggregations json.RawMessage
}

// UnmarshalJSON decodes OpenSearch's _search answer.
func (r *SearchResult) UnmarshalJSON(data []byte) error {
	var wire struct {
		PITID string `json:"pit_id"`
		Hits  struct {
			Total struct {
				Value int64 `json:"value"`
			} `json:"total"`
			Hits []Hit `json:"hits"`
		} `json:"hits"`
		Aggregations json.RawMessage `json:"aggregations"`
	}
	if err := json.Unmarshal(data, &wire); err != nil {
		return err
	}
	*r = SearchResult{PITID: wire.PITID, Total: wire.Hits.Total.Value, Hits: wire.Hits.Hits, Aggregations: wire.Aggregations}
	return nil
}

// Search runs one search on index (an index, an alias, a comma-separated
// list, or "" for a body that names a point in time) and decodes the
// answer. body is marshalled unless it is already []byte.
func (c *Client) Search(ctx context.Context, index string, body any) (*SearchResult, error) {
	path := "/_search"
	if index != "" {
		path = "/" + index + "/_search"
	}
	var res SearchResult
	if err := c.Do(ctx, http.MethodPost, path, body, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// Scan describes a walk through every hit of a search, page by page with
// search_after.
type Scan struct {
	// Body is the search body: query, _source and the like. Its "sort" is
	// required and must end on a field unique per document (customer_id,
	// say), or search_after may skip or repeat hits that tie. Scan does
	// not modify it; "size", "search_after" and "pit" are set per page.
	Body map[string]any
	// PageSize is the number of hits per request (1,000 when 0).
	PageSize int
	// KeepAlive, when set, opens a point in time on the index before the
	// first page, so that every page reads the same snapshot; each page
	// keeps it alive this long again. The point in time is closed when the
	// walk ends, however it ends; should closing fail, it expires after
	// KeepAlive. Without it, each page sees the index as it is then:
	// documents changed during the walk may be seen in their old or new
	// place, but with a unique sort key none is lost or seen twice unless
	// its sort values change.
	KeepAlive time.Duration
	// Prefetch asks for the next page before the caller has the current
	// one, so that OpenSearch finds it while the caller works through
	// this one (an export writing it to a client): two pages are held at
	// a time instead of one.
	Prefetch bool
}

// DefaultPageSize is the page size of a Scan that names none.
const DefaultPageSize = 1000

// ErrNoSort is returned by a Scan whose body has no sort.
var ErrNoSort = errors.New("store: a scan needs a sort ending on a unique field")

// Pages walks the search page by page. Each page is yielded once; the
// walk stops after a page shorter than the page size, at the first error
// (yielded with a nil page), or when the loop breaks. Only one page is
// held at a time, so a walk through millions of documents takes constant
// memory as long as the caller does not keep them.
func (c *Client) Pages(ctx context.Context, index string, s Scan) iter.Seq2[*SearchResult, error] {
	return func(yield func(*SearchResult, error) bool) {
		if s.Body["sort"] == nil {
			yield(nil, ErrNoSort)
			return
		}
		size := s.PageSize
		if size <= 0 {
			size = DefaultPageSize
		}
		body := maps.Clone(s.Body)
		body["size"] = size
		target := index
		var pit string
		if s.KeepAlive > 0 {
			var err error
			if pit, err = c.OpenPIT(ctx, index, s.KeepAlive); err != nil {
				yield(nil, err)
				return
			}
			defer func() { c.closePIT(ctx, pit) }()
			target = ""
		}
		// A page is asked for by a goroutine of its own, so that with
		// Prefetch the next one is on its way while the caller has this
		// one; a walk that ends with a page in flight cancels it and
		// waits for it before it closes the point in time.
		type fetched struct {
			res *SearchResult
			err error
		}
		fctx, cancel := context.WithCancel(ctx)
		var inflight chan fetched
		defer func() {
			cancel()
			if inflight != nil {
				if f := <-inflight; f.err == nil && f.res.PITID != "" {
					pit = f.res.PITID // the id to close
				}
			}
		}()
		ask := func(b map[string]any) {
			if pit != "" {
				b["pit"] = map[string]any{"id": pit, "keep_alive": duration(s.KeepAlive)}
			}
			ch := make(chan fetched, 1)
			inflight = ch
			go func() {
				res, err := c.Search(fctx, target, b)
				ch <- fetched{res, err}
			}()
		}
		ask(body)
		for {
			f := <-inflight
			inflight = nil
			if f.err != nil {
				yield(nil, f.err)
				return
			}
			res := f.res
			if res.PITID != "" {
				pit = res.PITID
			}
			more := len(res.Hits) >= size
			var next map[string]any
			if more {
				after := res.Hits[len(res.Hits)-1].Sort
				if len(after) == 0 {
					yield(nil, fmt.Errorf("store: scan %s: a hit came back without sort values", index))
					return
				}
				next = maps.Clone(body)
				next["search_after"] = after
				if s.Prefetch {
					ask(next)
				}
			}
			if !yield(res, nil) || !more {
				return
			}
			if !s.Prefetch {
				ask(next)
			}
		}
	}
}

// Hits walks the search hit by hit; see Pages. An error is yielded with a
// zero Hit and ends the walk.
func (c *Client) Hits(ctx context.Context, index string, s Scan) iter.Seq2[Hit, error] {
	return func(yield func(Hit, error) bool) {
		for page, err := range c.Pages(ctx, index, s) {
			if err != nil {
				yield(Hit{}, err)
				return
			}
			for _, h := range page.Hits {
				if !yield(h, nil) {
					return
				}
			}
		}
	}
}

// OpenPIT opens a point in time on index that lives keepAlive.
func (c *Client) OpenPIT(ctx context.Context, index string, keepAlive time.Duration) (string, error) {
	var resp struct {
		PITID string `json:"pit_id"`
	}
	if err := c.Do(ctx, http.MethodPost, "/"+index+"/_search/point_in_time?keep_alive="+duration(keepAlive), nil, &resp); err != nil {
		return "", fmt.Errorf("store: open point in time on %s: %w", index, err)
	}
	if resp.PITID == "" {
		return "", fmt.Errorf("store: open point in time on %s: no pit_id in the answer", index)
	}
	return resp.PITID, nil
}

// ClosePIT frees a point in time.
func (c *Client) ClosePIT(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodDelete, "/_search/point_in_time", map[string]any{"pit_id": []string{id}}, nil)
}

// closePIT closes a scan's point in time even when the scan's context has
// ended (that is when it matters most), giving up after a few seconds.
func (c *Client) closePIT(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = c.ClosePIT(ctx, id) // best effort: the keep-alive frees it anyway
}

// duration spells a duration as OpenSearch's time units (whole
// milliseconds).
func duration(d time.Duration) string { return fmt.Sprintf("%dms", max(d.Milliseconds(), 1)) }

// Doc is one document found by Mget.
type Doc struct {
	ID          string          `json:"_id"`
	Found       bool            `json:"found"`
	SeqNo       *int64          `json:"_seq_no,omitempty"`
	PrimaryTerm *int64          `json:"_primary_term,omitempty"`
	Source      json.RawMessage `json:"_source"`
	// Error is set when OpenSearch could not read the document.
	Error json.RawMessage `json:"error,omitempty"`
}

// Decode unmarshals the document's source into out.
func (d *Doc) Decode(out any) error {
	if err := json.Unmarshal(d.Source, out); err != nil {
		return fmt.Errorf("store: decode %s: %w", d.ID, err)
	}
	return nil
}

// Mget reads documents of index by id with realtime GET semantics (no
// refresh needed) and returns those found, in the order asked. A document
// OpenSearch could not read (its answer carries an error) fails the read
// with a 503 *Error (Unavailable), never counts as not found.
func (c *Client) Mget(ctx context.Context, index string, ids []string) ([]Doc, error) {
	return c.mget(ctx, index, ids, "")
}

// MgetFields is Mget of only the given fields of each source, with the
// sequence number and primary term of each document found.
func (c *Client) MgetFields(ctx context.Context, index string, ids []string, fields ...string) ([]Doc, error) {
	return c.mget(ctx, index, ids, "?_source_includes="+url.QueryEscape(strings.Join(fields, ",")))
}

// Versions reads where the documents of index stand now, with realtime
// GET semantics and without their sources: the sequence number and
// primary term of each one found, by id. An id missing from the answer
// has no document. A write made with the answer (Op.IfMatch, or
// Op.IfAbsent for a missing id) fails if another writer got there since.
func (c *Client) Versions(ctx context.Context, index string, ids []string) (map[string]SeqTerm, error) {
	docs, err := c.mget(ctx, index, ids, "?_source=false")
	if err != nil {
		return nil, err
	}
	out := make(map[string]SeqTerm, len(docs))
	for _, d := range docs {
		if d.SeqNo == nil || d.PrimaryTerm == nil {
			return nil, fmt.Errorf("store: %s/%s: found without _seq_no and _primary_term", index, d.ID)
		}
		out[d.ID] = SeqTerm{SeqNo: *d.SeqNo, PrimaryTerm: *d.PrimaryTerm}
	}
	return out, nil
}

func (c *Client) mget(ctx context.Context, index string, ids []string, query string) ([]Doc, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var resp struct {
		Docs []Doc `json:"docs"`
	}
	if err := c.Do(ctx, http.MethodPost, "/"+index+"/_mget"+query, map[string]any{"ids": ids}, &resp); err != nil {
		return nil, err
	}
	found := resp.Docs[:0]
	for _, d := range resp.Docs {
		if d.Error != nil {
			// A shard that cannot answer (a node just back, a primary
			// still starting) is not "no such document": a caller that
			// took it for one would mint a second customer for a known
			// identity. The whole read fails, to be retried.
			return nil, &Error{Status: http.StatusServiceUnavailable, Type: "mget_item_failed", Reason: d.ID + ": " + string(d.Error)}
		}
		if d.Found {
			found = append(found, d)
		}
	}
	return found, nil
}
