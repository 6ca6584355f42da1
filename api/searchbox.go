package api

import (
	"cdp/access"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"cdp/identity"
	"cdp/schema"
	"cdp/store"
)

// nonDigits strips a phone fragment to its digits.
var nonDigits = regexp.MustCompile(`[^0-9]`)

// searchBox serves GET /v1/customers?q=: the CRM search box. One query
// scores every way a person may be typed in, exact identities far above
// partial matches:
//
//   - a CRM id, phone (normalized to E.164) or email equal to q: first;
//   - 4 or more consecutive digits of a phone: phone.digits holds the
//     phone's 4-digit n-grams, and q's n-grams must appear as a phrase,
//     which is exactly "q's digits are a substring of the phone";
//   - a name containing q: name.chars splits Chinese into characters and
//     Latin into words, so "张" and "张三" both find 张三丰, as a phrase;
//     the cjk-analyzed name adds relevance for bigrams;
//   - an email starting with q.
func (s *Server) searchBox(c *gin.Context) {
	q := strings.TrimSpace(c.Query("q"))
	if q == "" {
		writeError(c, http.StatusBadRequest, "invalid_parameter", "q is required")
		return
	}
	if len([]rune(q)) > 200 {
		writeError(c, http.StatusBadRequest, "invalid_parameter", "q is longer than 200 characters")
		return
	}
	size := 10
	if v := c.Query("size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			writeError(c, http.StatusBadRequest, "invalid_parameter", "size must be a whole number from 1 to 100, got "+strconv.Quote(v))
			return
		}
		size = n
	}
	v := callerOf(c).View
	body := searchBoxQuery(q, size, v)
	body["query"] = v.ScopeQuery(body["query"])
	res, err := s.st.Search(c.Request.Context(), s.customers, body)
	if err != nil {
		s.failed(c, err)
		return
	}
	out := make([]map[string]any, len(res.Hits))
	for i, h := range res.Hits {
		if out[i], err = searchBoxHit(h, q); err != nil {
			s.failed(c, err)
			return
		}
		v.MaskDoc(out[i])
	}
	c.JSON(http.StatusOK, gin.H{"total": res.Total, "customers": out})
}

// searchBoxQuery is the search of the first size customers matching q,
// best first, with the matched parts of name, phone and email
// highlighted.
//
// A field the view masks is not searched: finding a customer by part of
// a phone the caller may not see would let them recover it.
func searchBoxQuery(q string, size int, v access.View) gin.H {
	lower := strings.ToLower(q)
	should := []any{
		gin.H{"nested": gin.H{"path": "identities", "query": gin.H{"bool": gin.H{"filter": []any{
			gin.H{"term": gin.H{"identities.type": identity.CRMID}},
			gin.H{"term": gin.H{"identities.value": q}},
		}}}, "boost": 100}},
	}
	if !v.Mask["phone"] {
		should = append(should, gin.H{"term": gin.H{"phone": gin.H{"value": identity.NormalizePhone(q), "boost": 100}}})
	}
	if !v.Mask["email"] {
		should = append(should, gin.H{"term": gin.H{"email.lc": gin.H{"value": lower, "boost": 80}}},
			gin.H{"prefix": gin.H{"email.lc": gin.H{"value": lower, "boost": 3}}})
	}
	if !v.Mask["name"] {
		should = append(should, gin.H{"match_phrase": gin.H{"name.chars": gin.H{"query": q, "boost": 10}}},
			gin.H{"match": gin.H{"name": gin.H{"query": q, "operator": "and", "boost": 5}}})
	}
	if digits := nonDigits.ReplaceAllString(q, ""); len(digits) >= 4 && !v.Mask["phone"] {
		should = append(should, gin.H{"match_phrase": gin.H{"phone.digits": gin.H{"query": digits, "boost": 20}}})
	}
	return gin.H{
		"size":             size,
		"query":            gin.H{"bool": gin.H{"should": should, "minimum_should_match": 1}},
		"sort":             []any{"_score", gin.H{"customer_id": "asc"}},
		"track_total_hits": true,
		"_source":          gin.H{"excludes": schema.Internal},
		"highlight": gin.H{"pre_tags": []string{"<em>"}, "post_tags": []string{"</em>"}, "fields": gin.H{
			"name.chars": gin.H{"number_of_fragments": 0}, "phone.digits": gin.H{"number_of_fragments": 0},
			"email.lc": gin.H{"number_of_fragments": 0},
		}},
	}
}

// searchBoxHit is a found customer as the search box shows it: the
// document with its score and the first highlight of each field, by the
// field's name without its subfield.
func searchBoxHit(h store.Hit, q string) (map[string]any, error) {
	var doc map[string]any
	if err := h.Decode(&doc); err != nil {
		return nil, err
	}
	hl := map[string]string{}
	for field, frags := range h.Highlight {
		name := strings.SplitN(field, ".", 2)[0]
		if len(frags) > 0 {
			hl[name] = frags[0]
		}
	}
	if p, ok := hl["phone"]; ok {
		// n-gram highlights cover the digits only: show the phone
		// with the matched digits marked.
		hl["phone"] = markDigits(doc["phone"], q, p)
	}
	doc["highlight"] = hl
	if h.Score != nil {
		doc["score"] = *h.Score
	}
	return doc, nil
}

// markDigits marks q's digits inside the stored phone.
func markDigits(phone any, q, fallback string) string {
	p, _ := phone.(string)
	digits := nonDigits.ReplaceAllString(q, "")
	if i := strings.Index(p, digits); p != "" && digits != "" && i >= 0 {
		return p[:i] + "<em>" + digits + "</em>" + p[i+len(digits):]
	}
	return fallback
}
