package api

import (
	"cdp/access"
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/gin-gonic/gin"

	"cdp/catalog"
	"cdp/schema"
	"cdp/store"
)

// fieldView is a catalog entry as GET /v1/fields shows it: the field
// (its nested path under "nested" when it has one) and its operators.
type fieldView struct {
	schema.Field
	Operators []string `json:"operators"`
}

func view(f schema.Field) fieldView {
	v := fieldView{Field: f, Operators: f.Ops()}
	if v.Operators == nil {
		v.Operators = []string{}
	}
	return v
}

func (s *Server) listFields(c *gin.Context) {
	cat, err := s.fields.Catalog(c.Request.Context())
	if err != nil {
		s.failed(c, err)
		return
	}
	out := []fieldView{}
	for _, f := range cat.Fields() {
		out = append(out, view(f))
	}
	c.JSON(http.StatusOK, gin.H{"fields": out})
}

// declaredName is the form of a declared business field.
var declaredName = regexp.MustCompile(`^attrs\.[\p{Ll}\p{Lo}0-9][\p{Ll}\p{Lo}0-9_]{0,63}$`)

// declareRequest is the body of POST /v1/fields.
type declareRequest struct {
	Name       string             `json:"name"`
	Label      schema.Label       `json:"label"`
	Type       schema.Type        `json:"type"`
	Candidates []schema.Candidate `json:"candidates"`
	Default    any                `json:"default"`
}

// declareField declares a dynamic business field before data arrives:
// it is mapped in place (no reindex) and usable in filters at once.
func (s *Server) declareField(c *gin.Context) {
	var req declareRequest
	if err := decodeBody(c, []string{"name", "label", "type", "candidates", "default"}, &req); err != nil {
		s.failed(c, err)
		return
	}
	if !declaredName.MatchString(req.Name) {
		s.failed(c, invalid("name", "name must be attrs.<key>, the key lowercase letters, digits and _ (at most 64), got %q", req.Name))
		return
	}
	if req.Type == schema.Nested || schema.TypeMapping(req.Type) == nil {
		s.failed(c, invalid("type", "type must be one of keyword, text, number, date, boolean, keyword_array, got %q", req.Type))
		return
	}
	for i, cand := range req.Candidates {
		if cand.Value == "" {
			s.failed(c, invalid(fmt.Sprintf("candidates[%d].value", i), "a candidate needs a value"))
			return
		}
	}
	f := catalog.DynamicField(req.Name, req.Type)
	if req.Label.ZH != "" || req.Label.EN != "" {
		f.Label = req.Label
	}
	f.Candidates, f.Default = req.Candidates, req.Default
	ctx := c.Request.Context()
	key := strings.TrimPrefix(req.Name, schema.AttrsPrefix)
	body := gin.H{"properties": gin.H{"attrs": gin.H{"properties": gin.H{key: schema.TypeMapping(req.Type)}}}}
	if err := s.st.Do(ctx, http.MethodPut, "/"+s.customers+"/_mapping", body, nil); err != nil {
		if store.StatusOf(err) == http.StatusBadRequest {
			s.log.Warn("mapping update refused", "field", req.Name, "err", err, "request_id", c.GetString(requestIDKey))
			writeError(c, http.StatusConflict, "field_conflict", req.Name+" is already mapped with another type")
			return
		}
		s.failed(c, err)
		return
	}
	created, err := s.fields.Declare(ctx, f)
	if errors.Is(err, catalog.ErrConflict) {
		writeError(c, http.StatusConflict, "field_conflict", err.Error())
		return
	}
	if err != nil {
		s.failed(c, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	c.JSON(status, view(f))
}

// fieldValue is one suggested value of a field: a declared candidate with
// its label, or an indexed value with the number of customers holding it.
type fieldValue struct {
	Value any           `json:"value"`
	Label *schema.Label `json:"label,omitempty"`
	Count *int64        `json:"count,omitempty"`
}

// fieldValues suggests candidate values of a field: its declared
// candidates, else the most frequent indexed values; q narrows either to
// values containing it (case-insensitive).
func (s *Server) fieldValues(c *gin.Context) {
	ctx := c.Request.Context()
	cat, err := s.fields.Catalog(ctx)
	if err != nil {
		s.failed(c, err)
		return
	}
	name := c.Param("name")
	f, ok := cat.Lookup(name)
	if !ok {
		writeError(c, http.StatusNotFound, "field_not_found", "no field "+strconv.Quote(name))
		return
	}
	q := strings.ToLower(strings.TrimSpace(c.Query("q")))
	v := callerOf(c).View
	if v.Masked(name) && q != "" {
		// Narrowing a masked field's values by a substring is bisecting.
		writeAPIError(c, http.StatusForbidden, apiError{Code: "forbidden_field", Message: "the field " + name + " is masked for this role: its values cannot be searched", Path: "q"})
		return
	}
	size := 20
	if v := c.Query("size"); v != "" {
		if size, err = strconv.Atoi(v); err != nil || size < 1 || size > 100 {
			writeError(c, http.StatusBadRequest, "invalid_parameter", "size must be a whole number from 1 to 100")
			return
		}
	}
	if len(f.Candidates) > 0 {
		c.JSON(http.StatusOK, gin.H{"field": name, "values": declaredValues(f, q)})
		return
	}
	if f.Type != schema.Keyword && f.Type != schema.KeywordArray && f.Type != schema.Boolean {
		writeError(c, http.StatusBadRequest, "no_candidate_values", name+" is a "+string(f.Type)+" field: it has no candidate values")
		return
	}
	out, err := s.frequentValues(ctx, f, q, size)
	if err != nil {
		s.failed(c, err)
		return
	}
	if root, _, _ := strings.Cut(name, "."); v.Masked(name) {
		for i := range out {
			if str, ok := out[i].Value.(string); ok {
				out[i].Value = access.MaskValue(root, str)
			}
		}
	}
	c.JSON(http.StatusOK, gin.H{"field": name, "values": out})
}

// declaredValues returns the declared candidates of a field whose value or
// label contains q (q lower-cased; "" for all).
func declaredValues(f schema.Field, q string) []fieldValue {
	out := []fieldValue{}
	for _, cand := range f.Candidates {
		l := cand.Label
		text := strings.ToLower(cand.Value + " " + l.ZH + " " + l.EN)
		if q == "" || strings.Contains(text, q) {
			out = append(out, fieldValue{Value: cand.Value, Label: &l})
		}
	}
	return out
}

// valueBucket is a bucket of a terms aggregation.
type valueBucket struct {
	Key      any   `json:"key"`
	KeyText  any   `json:"key_as_string"`
	DocCount int64 `json:"doc_count"`
}

// frequentValues returns the size most frequent indexed values of a
// keyword or boolean field, most frequent first, with their customer
// counts; q (lower-cased) narrows a keyword field to values containing it
// in any letter case.
func (s *Server) frequentValues(ctx context.Context, f schema.Field, q string, size int) ([]fieldValue, error) {
	terms := gin.H{"field": f.Name, "size": size}
	if q != "" && f.Type != schema.Boolean {
		terms["include"] = ".*" + caseless(q) + ".*"
	}
	agg := gin.H{"values": gin.H{"terms": terms}}
	if f.NestedPath != "" {
		agg = gin.H{"nested": gin.H{"nested": gin.H{"path": f.NestedPath}, "aggs": agg}}
	}
	var resp struct {
		Aggregations map[string]struct {
			Buckets []valueBucket `json:"buckets"`
			Values  struct {
				Buckets []valueBucket `json:"buckets"`
			} `json:"values"`
		} `json:"aggregations"`
	}
	if err := s.st.Do(ctx, http.MethodPost, "/"+s.customers+"/_search", gin.H{"size": 0, "aggs": agg}, &resp); err != nil {
		return nil, err
	}
	buckets := resp.Aggregations["values"].Buckets
	if f.NestedPath != "" {
		buckets = resp.Aggregations["nested"].Values.Buckets
	}
	out := []fieldValue{}
	for _, b := range buckets {
		n := b.DocCount
		v := b.Key
		if b.KeyText != nil {
			v = b.KeyText
		}
		out = append(out, fieldValue{Value: v, Count: &n})
	}
	sort.SliceStable(out, func(i, j int) bool { return *out[i].Count > *out[j].Count })
	return out, nil
}

// caseless is a Lucene regular expression matching s in any letter case
// (Lucene's regexps have no case-insensitive flag), every other character
// escaped.
func caseless(s string) string {
	var b strings.Builder
	for _, r := range s {
		lo, up := unicode.ToLower(r), unicode.ToUpper(r)
		switch {
		case lo != up:
			b.WriteString("[" + string(lo) + string(up) + "]")
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		default:
			b.WriteString("\\" + string(r))
		}
	}
	return b.String()
}
