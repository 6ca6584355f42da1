// Package catalog is the live field catalog: the fixed fields of package
// schema plus the dynamic business fields (attrs.<name>) and event
// properties (properties.<name>), declared through the API or discovered by
// the indexer, kept in the fields index so that every process sees them.
package catalog

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"cdp/schema"
	"cdp/store"
)

// Registry reads and writes the dynamic fields. Reads are cached for a
// short time; a reader that meets an unknown field may Reload.
type Registry struct {
	st    *store.Client
	index string
	ttl   time.Duration

	mu     sync.Mutex
	cat    *schema.Catalog
	loaded time.Time
}

// New returns a registry over the fields index (an alias).
func New(st *store.Client, index string) *Registry {
	return &Registry{st: st, index: index, ttl: 5 * time.Second}
}

// record is a field as stored: the field plus whether the API declared it.
type record struct {
	schema.Field
	Declared  bool   `json:"declared"`
	CreatedAt string `json:"created_at"`
}

// Catalog returns the catalog, reloading it when the cached one is older
// than the registry's time to live.
func (r *Registry) Catalog(ctx context.Context) (*schema.Catalog, error) {
	r.mu.Lock()
	cat, fresh := r.cat, time.Since(r.loaded) < r.ttl
	r.mu.Unlock()
	if cat != nil && fresh {
		return cat, nil
	}
	return r.Reload(ctx)
}

// minReload is the least time between two reloads asked for by
// ReloadStale, so that a stream of filters naming unknown fields does not
// become a stream of reads.
const minReload = time.Second

// ReloadStale reloads the catalog unless it was loaded less than a second
// ago, for a reader that met a field the catalog does not know: it may
// have been declared or discovered since.
func (r *Registry) ReloadStale(ctx context.Context) (*schema.Catalog, error) {
	r.mu.Lock()
	cat, recent := r.cat, time.Since(r.loaded) < minReload
	r.mu.Unlock()
	if cat != nil && recent {
		return cat, nil
	}
	return r.Reload(ctx)
}

// Reload reads every dynamic field now.
func (r *Registry) Reload(ctx context.Context) (*schema.Catalog, error) {
	var fields []schema.Field
	scan := store.Scan{Body: map[string]any{"sort": []any{map[string]any{"name": "asc"}}}}
	for h, err := range r.st.Hits(ctx, r.index, scan) {
		if err != nil {
			return nil, fmt.Errorf("catalog: read fields: %w", err)
		}
		var rec record
		if err := h.Decode(&rec); err != nil {
			return nil, fmt.Errorf("catalog: read fields: %w", err)
		}
		fields = append(fields, rec.Field)
	}
	cat := schema.Base().With(fields...)
	r.mu.Lock()
	r.cat, r.loaded = cat, time.Now()
	r.mu.Unlock()
	return cat, nil
}

// Discover records fields the indexer met for the first time. A field
// already known keeps what it has: the first declaration or discovery wins.
func (r *Registry) Discover(ctx context.Context, fields []schema.Field) error {
	if len(fields) == 0 {
		return nil
	}
	now := time.Now().UTC().Format(time.RFC3339)
	ops := make([]store.Op, len(fields))
	for i, f := range fields {
		ops[i] = store.Op{Action: store.Create, Index: r.index, ID: f.Name, Body: record{Field: f, CreatedAt: now}}
	}
	// A field already recorded keeps its first declaration or discovery.
	if _, err := r.st.CreateIfAbsent(ctx, ops); err != nil {
		return fmt.Errorf("catalog: record fields: %w", err)
	}
	return nil
}

// ErrConflict is returned by Declare when the field exists with another
// type.
var ErrConflict = errors.New("field exists with another type")

// Declare stores a field declared through the API. A field discovered
// earlier with the same type takes the declaration's labels and
// candidates; one of another type is a conflict. created reports whether
// the field is new.
func (r *Registry) Declare(ctx context.Context, f schema.Field) (created bool, err error) {
	rec := record{Field: f, Declared: true, CreatedAt: time.Now().UTC().Format(time.RFC3339)}
	err = r.st.Do(ctx, http.MethodPut, "/"+r.index+"/_create/"+f.Name+"?refresh=wait_for", rec, nil)
	if err == nil {
		r.invalidate()
		return true, nil
	}
	if store.StatusOf(err) != http.StatusConflict {
		return false, fmt.Errorf("catalog: declare %s: %w", f.Name, err)
	}
	var existing record
	if _, err := r.st.GetSource(ctx, r.index, f.Name, &existing); err != nil {
		return false, fmt.Errorf("catalog: read %s: %w", f.Name, err)
	}
	if existing.Type != f.Type {
		return false, fmt.Errorf("%w: %s is %s", ErrConflict, f.Name, existing.Type)
	}
	rec.CreatedAt = existing.CreatedAt
	if err := r.st.Do(ctx, http.MethodPut, "/"+r.index+"/_doc/"+f.Name+"?refresh=wait_for", rec, nil); err != nil {
		return false, fmt.Errorf("catalog: declare %s: %w", f.Name, err)
	}
	r.invalidate()
	return false, nil
}

func (r *Registry) invalidate() {
	r.mu.Lock()
	r.loaded = time.Time{}
	r.mu.Unlock()
}

// DynamicField returns the catalog entry of a dynamic field of the given
// type, with its name as label until someone declares a better one.
func DynamicField(name string, t schema.Type) schema.Field {
	return schema.Field{
		Name: name, Label: schema.Label{ZH: name, EN: name}, Type: t,
		List:     t == schema.KeywordArray,
		Sortable: t != schema.KeywordArray && t != schema.Text,
		Dynamic:  true,
	}
}
