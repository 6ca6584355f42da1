package access

import (
	"context"
	"encoding/json"

	"cdp/export"
)

type ctxKey struct{}

// Caller is a principal with the view of its role, as a request carries
// it.
type Caller struct {
	Principal
	View View
}

// WithCaller returns ctx carrying the caller.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, ctxKey{}, c)
}

// CallerFrom returns the caller ctx carries; ok is false when it carries
// none (a call from inside the service, not a request).
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(ctxKey{}).(Caller)
	return c, ok
}

// ViewFrom is the view of ctx's caller: nothing masked and no scope
// when there is none.
func ViewFrom(ctx context.Context) View {
	c, _ := CallerFrom(ctx)
	return c.View
}

// NewView returns the view that masks fields.
func NewView(fields []string) View {
	v := View{Mask: map[string]bool{}}
	for _, f := range fields {
		v.Mask[f] = true
	}
	return v
}

// MaskedFields lists the view's masked fields.
func (v View) MaskedFields() []string {
	var out []string
	for _, f := range personal {
		if v.Mask[f] {
			out = append(out, f)
		}
	}
	return out
}

// Writer returns w masking every document it writes; w itself when the
// view masks nothing.
func (v View) Writer(w export.Writer) export.Writer {
	if !v.Masks() {
		return w
	}
	return maskWriter{w: w, v: v}
}

type maskWriter struct {
	w export.Writer
	v View
}

func (m maskWriter) Write(doc json.RawMessage) error {
	b, err := m.v.MaskJSON(doc)
	if err != nil {
		return err
	}
	return m.w.Write(b)
}

func (m maskWriter) Flush() error { return m.w.Flush() }

// ScopeQuery returns q limited to the view's customers: those whose
// owner_id is the view's Owner or none. q comes back as it is when the
// view has no scope.
func (v View) ScopeQuery(q any) any {
	if v.Owner == "" {
		return q
	}
	return map[string]any{"bool": map[string]any{"filter": []any{q, v.ScopeFilter()}}}
}

// ScopeFilter is the OpenSearch filter of the view's scope (nil when
// none).
func (v View) ScopeFilter() any {
	if v.Owner == "" {
		return nil
	}
	return map[string]any{"bool": map[string]any{"should": []any{
		map[string]any{"terms": map[string]any{"owner_id": []string{v.Owner, ""}}},
		map[string]any{"bool": map[string]any{"must_not": map[string]any{"exists": map[string]any{"field": "owner_id"}}}},
	}, "minimum_should_match": 1}}
}

// InScope reports whether a customer with this owner_id (nil or "" for
// none) is in the view's scope.
func (v View) InScope(owner any) bool {
	if v.Owner == "" {
		return true
	}
	s, _ := owner.(string)
	return s == "" || s == v.Owner
}
