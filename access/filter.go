package access

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// ForbiddenField is a filter condition on a masked field with an
// operator other than is_set / is_not_set: answering it would let a
// caller recover the value by bisecting.
type ForbiddenField struct {
	// Path is where the condition's field is, relative to the filter
	// root (as in invalid_filter's paths).
	Path  string
	Field string
}

func (e *ForbiddenField) Error() string {
	return fmt.Sprintf("%s: the field %s is masked for this role: filter it only with is_set or is_not_set", e.Path, e.Field)
}

// CheckFilter returns a *ForbiddenField for the first condition of the
// filter (its JSON) on a masked field with another operator; nil when
// there is none or the view masks nothing. A filter that is not valid
// JSON is left to the parser.
func (v View) CheckFilter(raw json.RawMessage) error {
	if !v.Masks() || len(raw) == 0 {
		return nil
	}
	var tree any
	if json.Unmarshal(raw, &tree) != nil {
		return nil
	}
	return v.check(tree, "")
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (v View) check(node any, path string) error {
	m, ok := node.(map[string]any)
	if !ok {
		return nil
	}
	if f, ok := m["field"].(string); ok && v.Masked(f) {
		if op, _ := m["op"].(string); op != "is_set" && op != "is_not_set" {
			return &ForbiddenField{Path: join(path, "field"), Field: f}
		}
	}
	for _, k := range []string{"all", "any"} {
		if list, ok := m[k].([]any); ok {
			for i, e := range list {
				if err := v.check(e, join(path, k)+"["+strconv.Itoa(i)+"]"); err != nil {
					return err
				}
			}
		}
	}
	if err := v.check(m["not"], join(path, "not")); err != nil {
		return err
	}
	if err := v.check(m["where"], join(path, "where")); err != nil {
		return err
	}
	if agg, ok := m["aggregate"].(map[string]any); ok {
		if f, ok := agg["field"].(string); ok && v.Masked(f) {
			return &ForbiddenField{Path: join(path, "aggregate.field"), Field: f}
		}
		return v.check(agg["where"], join(path, "aggregate.where"))
	}
	return nil
}

// MaskFilter returns the filter (its JSON) with the values of its
// conditions on masked fields masked as answers mask them, for showing a
// saved filter (a segment's, a tag rule's, an export job's) to a caller
// who sees those fields masked: a filter someone else saved must not give
// away the phone number it selects. It comes back as it was when the
// view masks nothing or it is not valid JSON.
func (v View) MaskFilter(raw json.RawMessage) json.RawMessage {
	if !v.Masks() || len(raw) == 0 {
		return raw
	}
	var tree any
	if json.Unmarshal(raw, &tree) != nil {
		return raw
	}
	if !v.maskConditions(tree) {
		return raw
	}
	b, err := json.Marshal(tree)
	if err != nil {
		return raw
	}
	return b
}

// maskConditions masks, in place, the values of the conditions on masked
// fields anywhere in node; it reports whether it changed anything.
func (v View) maskConditions(node any) bool {
	changed := false
	switch x := node.(type) {
	case []any:
		for _, e := range x {
			changed = v.maskConditions(e) || changed
		}
	case map[string]any:
		if f, ok := x["field"].(string); ok && v.Masked(f) {
			if val, ok := x["value"]; ok {
				x["value"] = maskValues(rootOf(f), val)
				changed = true
			}
		}
		for k, e := range x {
			if k != "value" {
				changed = v.maskConditions(e) || changed
			}
		}
	}
	return changed
}

func rootOf(path string) string {
	root, _, _ := strings.Cut(path, ".")
	return root
}

// maskValues masks a condition's value: a string, or each string of a
// list; anything else (a number compared with a name?) is hidden whole.
func maskValues(field string, val any) any {
	switch x := val.(type) {
	case string:
		return MaskValue(field, x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = maskValues(field, e)
		}
		return out
	case nil:
		return nil
	}
	return "***"
}
