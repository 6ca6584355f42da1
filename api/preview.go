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
// sort, so a preview costs about what a count does. The join field is
// cut from the sources here rather than by _source excludes: filtering
// made OpenSearch parse and write every sampled document again. In
// BenchmarkPreviewAgainstCount (3,000 customers, a new filter each
// request, on a node shared with other work) a preview took 1.3 times a
// count with excludes and 1.03 to 1.3 times without.
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
	body := gin.H{"query": q.query, "size": n, "track_total_hits": true, "sort": []string{"_doc"}}
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
	for i, h := range res.Hits {
		if i > 0 {
			b.WriteByte(',')
		}
		if len(h.Source) == 0 {
			b.WriteString("{}")
			continue
		}
		src := h.Source
		for _, k := range schema.Internal {
			src = dropKey(src, k)
		}
		b.Write(src)
	}
	b.WriteString(`],"query":`)
	b.Write(dsl)
	b.WriteByte('}')
	c.Data(http.StatusOK, "application/json; charset=utf-8", b.Bytes())
}

// dropKey returns the JSON object doc without its top-level member key,
// the rest byte for byte as it was; doc as it is when it has no such
// member or is not an object.
func dropKey(doc json.RawMessage, key string) json.RawMessage {
	dec := json.NewDecoder(bytes.NewReader(doc))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return doc
	}
	first := true
	for dec.More() {
		start := dec.InputOffset() // after '{' or after the previous value, before its comma
		k, err := dec.Token()
		if err != nil {
			return doc
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return doc
		}
		end := dec.InputOffset()
		if k != key {
			first = false
			continue
		}
		if first {
			// Take the comma after the member instead of the one before.
			rest := bytes.TrimLeft(doc[end:], " \t\r\n")
			if len(rest) > 0 && rest[0] == ',' {
				end = int64(len(doc) - len(rest) + 1)
			}
		}
		out := make([]byte, 0, len(doc)-int(end-start))
		return append(append(out, doc[:start]...), doc[end:]...)
	}
	return doc
}
