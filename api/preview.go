package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"
	"golang.org/x/sync/errgroup"

	"cdp/schema"
	"cdp/store"
)

// Bounds of a preview's sample.
const (
	defaultSample = 10
	maxSample     = 100
)

type previewRequest struct {
	Filter json.RawMessage `json:"filter"`
	Sample *int            `json:"sample"`
	TZ     string          `json:"tz"`
}

// preview answers the count, a sample and the query of a filter. The
// count (_count) and the sample run side by side, so a preview takes about
// as long as the count alone: the sample is the first hits in index order
// (sort _doc), which costs no scoring and no sort, and each shard stops
// collecting once it has them (terminate_after); its fetch of the sampled
// documents overlaps the count's query. Under concurrent writes the two
// may see refreshes a moment apart, as two requests would. The internal
// fields are left out by _source excludes, as search does: cutting them
// in Go instead would fetch every sampled document's manifest
// (schema.RebuildField), which can be larger than the rest of it, to
// throw it away.
func (s *Server) preview(c *gin.Context) {
	var req previewRequest
	if err := decodeBody(c, []string{"filter", "sample", "tz"}, &req); err != nil {
		s.failed(c, err)
		return
	}
	n := defaultSample
	if req.Sample != nil {
		n = *req.Sample
	}
	if n < 0 || n > maxSample {
		s.failed(c, invalid("sample", "sample must be between 0 and %d, got %d", maxSample, n))
		return
	}
	q, err := s.compile(c.Request.Context(), &searchRequest{Filter: req.Filter, TZ: req.TZ})
	if err != nil {
		s.failed(c, err)
		return
	}
	ctx := c.Request.Context()
	var count struct {
		Count int64 `json:"count"`
	}
	var res *store.SearchResult
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return s.st.Do(gctx, http.MethodPost, "/"+s.customers+"/_count", gin.H{"query": q.query}, &count)
	})
	if n > 0 {
		g.Go(func() (err error) {
			res, err = s.st.Search(gctx, s.customers, gin.H{"query": q.query, "size": n, "track_total_hits": false, "terminate_after": n,
				"sort": []string{"_doc"}, "_source": gin.H{"excludes": schema.Internal}})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		s.failed(c, err)
		return
	}
	dsl, err := json.Marshal(q.query)
	if err != nil {
		s.failed(c, err)
		return
	}
	var b bytes.Buffer
	b.WriteString(`{"count":`)
	b.WriteString(strconv.FormatInt(count.Count, 10))
	b.WriteString(`,"sample":[`)
	if res != nil {
		writeSources(&b, res.Hits)
	}
	b.WriteString(`],"query":`)
	b.Write(dsl)
	b.WriteByte('}')
	c.Data(http.StatusOK, "application/json; charset=utf-8", b.Bytes())
}
