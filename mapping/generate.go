package mapping

import (
	"fmt"
	"strings"

	"cdp/schema"
)

// customerMappings adds to the customer index's mappings what package
// schema declares: every base field under its path (objects and nested
// objects made on the way), the dynamic objects with their unindexed twins
// and their dynamic templates, and the join field. A path the file
// already maps is an error: each field is declared once.
func customerMappings(m map[string]any) error {
	props, _ := m["properties"].(map[string]any)
	if props == nil {
		props = map[string]any{}
		m["properties"] = props
	}
	put := func(path string, def map[string]any) error {
		parts := strings.Split(path, ".")
		at := props
		for _, p := range parts[:len(parts)-1] {
			obj, _ := at[p].(map[string]any)
			if obj == nil {
				obj = map[string]any{}
				at[p] = obj
			}
			sub, _ := obj["properties"].(map[string]any)
			if sub == nil {
				sub = map[string]any{}
				obj["properties"] = sub
			}
			at = sub
		}
		leaf := parts[len(parts)-1]
		if old, ok := at[leaf].(map[string]any); ok {
			// Only an object made on the way for a field under it may be
			// met again: a Nested field's own entry takes its place.
			if _, made := old["type"]; made || len(old) != 1 {
				return fmt.Errorf("%s is mapped twice", path)
			}
			def["properties"] = old["properties"]
		}
		at[leaf] = def
		return nil
	}
	for _, f := range schema.Base().Fields() {
		def := f.OpenSearch()
		if def == nil {
			return fmt.Errorf("field %s of type %s has no mapping", f.Name, f.Type)
		}
		if err := put(f.Name, def); err != nil {
			return err
		}
	}
	var templates []any
	if t, ok := m["dynamic_templates"].([]any); ok {
		templates = t
	}
	for _, o := range schema.DynamicObjects {
		if err := put(o.Name, map[string]any{"type": "object", "dynamic": true}); err != nil {
			return err
		}
		if err := put(o.Unindexed(), map[string]any{"type": "object", "enabled": false}); err != nil {
			return err
		}
		for _, t := range o.Templates() {
			templates = append(templates, t)
		}
	}
	m["dynamic_templates"] = templates
	if err := put(schema.RebuildField, schema.RebuildMapping()); err != nil {
		return err
	}
	return put(schema.JoinField, schema.JoinMapping())
}
