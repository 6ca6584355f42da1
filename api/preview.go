package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"cdp/schema"
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

// preview answers the count, a sample and the query of a filter in one
// search: track_total_hits makes its total exact, and the sample is the
// first hits in index order (sort _doc), which costs no scoring and no
// sort. The internal fields are left out by _source excludes, as search
// does: cutting them in Go instead (as this did for the join field)
// would fetch every sampled document's manifest (schema.RebuildField),
// which can be larger than the rest of it, to throw it away.
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
	body := gin.H{"query": q.query, "size": n, "track_total_hits": true, "sort": []string{"_doc"},
		"_source": gin.H{"excludes": schema.Internal}}
	res, err := s.st.Search(c.Request.Context(), s.customers, body)
	if err != nil {
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
	b.WriteString(strconv.FormatInt(res.Total, 10))
	b.WriteString(`,"sample":[`)
	writeSources(&b, res.Hits)
	b.WriteString(`],"query":`)
	b.Write(dsl)
	b.WriteByte('}')
	c.Data(http.StatusOK, "application/json; charset=utf-8", b.Bytes())
}
