package export

import (
	"context"
	"encoding/json"
	"iter"
	"slices"
	"strings"
	"time"

	"cdp/schema"
	"cdp/store"
)

// Pager walks a search page by page; *store.Client is one.
type Pager interface {
	Pages(ctx context.Context, index string, s store.Scan) iter.Seq2[*store.SearchResult, error]
}

// Defaults of a Query.
const (
	DefaultPageSize  = 1000
	DefaultKeepAlive = 2 * time.Minute
)

// Query is what one export reads.
type Query struct {
	// Index is the alias searched (the customers view).
	Index string
	// Query is the OpenSearch query of the members.
	Query any
	// Source is the _source of each hit: the fields exported.
	Source any
	// PageSize is the hits of one search (DefaultPageSize when 0).
	PageSize int
	// KeepAlive is how long the point in time lives after each page
	// (DefaultKeepAlive when 0): the longest a consumer may take over one.
	KeepAlive time.Duration
	// After, when set, starts the walk after this customer id: where a
	// resumed export stopped (Progress.Last of its last checkpoint), so
	// that no member is written twice.
	After string
}

// Progress is where a Stream stands after a page.
type Progress struct {
	// Written counts the documents written so far.
	Written int64
	// Last is the customer id of the last of them, to resume after.
	Last string
}

// Stream writes every document q matches to w, as of one point in time,
// flushing w after each page and then calling afterPage (when not nil),
// which may extend a deadline, flush a connection or checkpoint. It
// returns how many documents it wrote. It stops at the first error of
// the search, of w or of afterPage, or when ctx ends; the point in time
// is closed then.
func Stream(ctx context.Context, p Pager, q Query, w Writer, afterPage func(Progress) error) (int64, error) {
	size := q.PageSize
	if size <= 0 {
		size = DefaultPageSize
	}
	keep := q.KeepAlive
	if keep <= 0 {
		keep = DefaultKeepAlive
	}
	body := map[string]any{"query": q.Query, "sort": []any{map[string]any{"customer_id": "asc"}}, "track_total_hits": false}
	if q.Source != nil {
		body["_source"] = q.Source
	}
	if q.After != "" {
		body["search_after"] = []any{q.After}
	}
	var n int64
	var last string
	for page, err := range p.Pages(ctx, q.Index, store.Scan{Body: body, PageSize: size, KeepAlive: keep, Prefetch: true}) {
		if err != nil {
			return n, err
		}
		for _, h := range page.Hits {
			if err := w.Write(h.Source); err != nil {
				return n, err
			}
			n++
		}
		if err := w.Flush(); err != nil {
			return n, err
		}
		if k := len(page.Hits); k > 0 {
			last = sortKey(page.Hits[k-1])
		}
		if afterPage != nil {
			if err := afterPage(Progress{Written: n, Last: last}); err != nil {
				return n, err
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return n, err
	}
	return n, nil
}

// sortKey is the customer id a hit was sorted by.
func sortKey(h store.Hit) string {
	var id string
	if len(h.Sort) > 0 && json.Unmarshal(h.Sort[0], &id) == nil {
		return id
	}
	return ""
}

// DefaultColumns are the CSV columns when none are asked for: the
// catalog's fields outside nested objects (lists of keywords included),
// by name, without customer_id (always the first column) and without
// the properties.* fields of events.
func DefaultColumns(cat *schema.Catalog) []string {
	var out []string
	for _, f := range cat.Fields() {
		if f.Type == schema.Nested || f.NestedPath != "" || f.Name == "customer_id" || strings.HasPrefix(f.Name, "properties.") {
			continue
		}
		out = append(out, f.Name)
	}
	return slices.Clip(out)
}
