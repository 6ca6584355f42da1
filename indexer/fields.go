package indexer

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"

	"cdp/catalog"
	"cdp/schema"
	"cdp/store"
)

// dynamicFields bounds the dynamic object (attrs of customers, properties
// of events) of one index: at most limit distinct keys get a mapping, so
// no source can exhaust the index's field limit. A value whose key is over
// the limit, or that OpenSearch refuses for its mapped type (the indices
// do not ignore malformed values, so a refusal is never silent), is moved
// to the object's unindexed twin (mapped enabled: false): kept in the
// document and the 360 view, not searchable, never lost, and counted in
// cdp_indexer_demoted_fields_total.
type dynamicFields struct {
	st        *store.Client
	index     string
	object    string // "attrs" or "properties"
	unindexed string // "attrs_unindexed" or "properties_unindexed"
	limit     int
	// discover records the new keys in the field catalog.
	discover func(context.Context, []schema.Field) error
	// demoted counts a value moved to the unindexed twin, by reason.
	demoted func(reason string)

	mu    sync.Mutex
	known map[string]bool
}

// Reasons a value is kept unindexed.
const (
	demotedOverLimit = "over_limit" // its key is past --max-dynamic-fields
	demotedRefused   = "refused"    // OpenSearch refused it for the key's mapped type
)

func newDynamicFields(st *store.Client, index, object string, limit int, discover func(context.Context, []schema.Field) error, demoted func(reason string)) *dynamicFields {
	if demoted == nil {
		demoted = func(string) {}
	}
	return &dynamicFields{st: st, index: index, object: object, unindexed: object + "_unindexed", limit: limit,
		discover: discover, demoted: demoted, known: map[string]bool{}}
}

// load reads the keys the index has mapped already.
func (d *dynamicFields) load(ctx context.Context) error {
	var resp map[string]struct {
		Mappings struct {
			Properties map[string]struct {
				Properties map[string]any `json:"properties"`
			} `json:"properties"`
		} `json:"mappings"`
	}
	if err := d.st.Do(ctx, http.MethodGet, "/"+d.index+"/_mapping", nil, &resp); err != nil {
		return fmt.Errorf("fields: read mapping of %s: %w", d.index, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, idx := range resp {
		for k := range idx.Mappings.Properties[d.object].Properties {
			d.known[k] = true
		}
	}
	return nil
}

// prepare gives the new keys of the documents' dynamic objects a mapping,
// in one mapping update for the whole batch (left to dynamic mapping, a
// batch of documents each bringing a new key queues one cluster-state
// update per key and times out). Keys over the limit, and values with no
// mappable type, move to the unindexed twin.
func (d *dynamicFields) prepare(ctx context.Context, docs []map[string]any) error {
	d.mu.Lock()
	props := map[string]any{}
	var fields []schema.Field
	for _, doc := range docs {
		obj, _ := doc[d.object].(map[string]any)
		for k, v := range obj {
			if d.known[k] || props[k] != nil {
				continue
			}
			t := typeOf(v)
			if t == "" {
				continue // null: nothing to map yet
			}
			if len(d.known)+len(props) >= d.limit {
				d.demoteLocked(doc, k, v, demotedOverLimit)
				continue
			}
			props[k] = schema.TypeMapping(t)
			fields = append(fields, catalog.DynamicField(d.object+"."+k, t))
		}
	}
	d.mu.Unlock()
	if len(props) == 0 {
		return nil
	}
	body := map[string]any{"properties": map[string]any{d.object: map[string]any{"properties": props}}}
	err := d.st.Do(ctx, http.MethodPut, "/"+d.index+"/_mapping", body, nil)
	if store.StatusOf(err) == http.StatusBadRequest {
		// Another writer mapped one of the keys with another type first:
		// keep its mapping; the values it refuses are demoted on write.
		for k, m := range props {
			one := map[string]any{"properties": map[string]any{d.object: map[string]any{"properties": map[string]any{k: m}}}}
			if err := d.st.Do(ctx, http.MethodPut, "/"+d.index+"/_mapping", one, nil); err != nil && store.StatusOf(err) != http.StatusBadRequest {
				return fmt.Errorf("fields: map %s.%s: %w", d.object, k, err)
			}
		}
		if err := d.load(ctx); err != nil {
			return err
		}
		return d.discover(ctx, fields)
	}
	if err != nil {
		return fmt.Errorf("fields: map new %s keys: %w", d.object, err)
	}
	if err := d.discover(ctx, fields); err != nil {
		return err
	}
	d.mu.Lock()
	for k := range props {
		d.known[k] = true
	}
	d.mu.Unlock()
	return nil
}

// typeOf types a key by its first JSON value (CONTRACT §2); "" for a
// value with no type to map yet (null, an empty list). A list of strings
// comes in either form: []string as wire.SanitizeValue makes it (event
// properties), []any as JSON decoding gives it back (customer documents
// are rebuilt from rows read back from the row store).
func typeOf(v any) schema.Type {
	switch x := v.(type) {
	case string:
		return schema.Keyword
	case []string:
		if len(x) > 0 {
			return schema.KeywordArray
		}
	case []any:
		if len(x) > 0 && allStrings(x) {
			return schema.KeywordArray
		}
	case float64:
		return schema.Number
	case bool:
		return schema.Boolean
	}
	return ""
}

func allStrings(list []any) bool {
	for _, e := range list {
		if _, ok := e.(string); !ok {
			return false
		}
	}
	return true
}

// rejectedField matches OpenSearch's reason for a value its mapping refuses.
var rejectedField = regexp.MustCompile(`failed to parse field \[([^\]]+)\]`)

// demoteRejected moves the field a rejection names to the unindexed twin.
// It reports false when the reason names no field of the dynamic object,
// i.e. when demotion cannot help.
func (d *dynamicFields) demoteRejected(doc map[string]any, reason string) bool {
	m := rejectedField.FindStringSubmatch(reason)
	if m == nil || !strings.HasPrefix(m[1], d.object+".") {
		return false
	}
	key := strings.TrimPrefix(m[1], d.object+".")
	obj, _ := doc[d.object].(map[string]any)
	v, ok := obj[key]
	if !ok {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.demoteLocked(doc, key, v, demotedRefused)
	return true
}

func (d *dynamicFields) demoteLocked(doc map[string]any, key string, v any, reason string) {
	d.demoted(reason)
	delete(doc[d.object].(map[string]any), key)
	un, _ := doc[d.unindexed].(map[string]any)
	if un == nil {
		un = map[string]any{}
		doc[d.unindexed] = un
	}
	un[key] = v
}
