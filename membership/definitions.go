package membership

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"cdp/query"
	"cdp/store"
)

// Kinds of definition, as the membership record names them.
const (
	KindSegment = "segment"
	KindTag     = "tag"
)

// Key names one definition: a saved segment by id or a tag rule by name.
type Key struct {
	Kind string
	ID   string
}

func (k Key) String() string { return k.Kind + ":" + k.ID }

// definition is a saved segment or tag rule, ready to evaluate.
type definition struct {
	key Key
	// refs are the segments its filter names itself.
	refs []string
	// query is the filter translated to the query DSL; nil when the filter
	// no longer parses (it names a segment deleted meanwhile).
	query any
	// clocks are its rolling windows (clock.go).
	clocks []clock
}

// stored is what both the segments and the tags index hold of a
// definition.
type stored struct {
	ID     string          `json:"id"`
	Name   string          `json:"name"`
	Filter json.RawMessage `json:"filter"`
	Refs   []string        `json:"refs"`
}

// mapResolver resolves segment nodes from the segments read with the
// definitions, so that one evaluation sees one set of filters.
type mapResolver map[string]json.RawMessage

func (r mapResolver) Segment(id string) (json.RawMessage, bool, error) {
	f, ok := r[id]
	return f, ok, nil
}

// parsed is a definition's parsed filter (nil: it does not parse).
type parsed struct {
	key    Key
	refs   []string
	filter query.Filter
}

// defCache holds the parsed definitions as of one generation of the
// segments and tags indices: parsing 1,000 filters was most of the cost
// of evaluating a change.
type defCache struct {
	mu   sync.Mutex
	gen  string
	defs []parsed
}

// generation names the state of the definitions: how many there are and
// the newest update of each index. A create or an edit moves the newest
// update, a delete the count.
func (e *Engine) generation(ctx context.Context) (string, error) {
	var b strings.Builder
	for _, index := range []string{e.cfg.Segments, e.cfg.Rules} {
		r, err := e.st.Search(ctx, index, map[string]any{"size": 0, "track_total_hits": true,
			"aggs": map[string]any{"newest": map[string]any{"max": map[string]any{"field": "updated_at"}}}})
		if err != nil {
			return "", fmt.Errorf("membership: definitions' generation: %w", err)
		}
		fmt.Fprintf(&b, "%d/%s;", r.Total, r.Aggregations)
	}
	return b.String(), nil
}

// definitions returns every saved segment and tag rule with its filter
// translated with now as the end of rolling windows. A filter that no
// longer parses matches nobody (logged when read).
func (e *Engine) definitions(ctx context.Context, now time.Time) ([]definition, error) {
	gen, err := e.generation(ctx)
	if err != nil {
		return nil, err
	}
	e.cache.mu.Lock()
	defer e.cache.mu.Unlock()
	if e.cache.gen != gen || gen == "" {
		defs, broken, err := e.parseDefinitions(ctx)
		if err != nil {
			return nil, err
		}
		if broken {
			gen = "" // parsed again next time, the catalog reloaded
		}
		e.cache.gen, e.cache.defs = gen, defs
	}
	opts := query.Options{Now: now, Location: e.cfg.Location}
	out := make([]definition, len(e.cache.defs))
	for i, p := range e.cache.defs {
		out[i] = definition{key: p.key, refs: p.refs}
		if p.filter != nil {
			out[i].query, out[i].clocks = query.Translate(p.filter, opts), clocks(p.filter)
		}
	}
	return out, nil
}

// parseDefinitions reads and parses every saved segment and tag rule;
// broken says some did not parse, which are then read again next time.
func (e *Engine) parseDefinitions(ctx context.Context) (_ []parsed, broken bool, _ error) {
	var segs, rules []stored
	for _, src := range []struct {
		index string
		sort  string
		out   *[]stored
	}{{e.cfg.Segments, "id", &segs}, {e.cfg.Rules, "name", &rules}} {
		scan := store.Scan{Body: map[string]any{"query": map[string]any{"match_all": map[string]any{}},
			"_source": []string{"id", "name", "filter", "refs"},
			"sort":    []any{map[string]any{src.sort: "asc"}}}, PageSize: 1000}
		for h, err := range e.st.Hits(ctx, src.index, scan) {
			if err != nil {
				return nil, false, fmt.Errorf("membership: read definitions: %w", err)
			}
			var d stored
			if err := h.Decode(&d); err != nil {
				return nil, false, err
			}
			*src.out = append(*src.out, d)
		}
	}
	res := mapResolver{}
	for _, s := range segs {
		res[s.ID] = s.Filter
	}
	cat, err := e.fields.Catalog(ctx)
	if err != nil {
		return nil, false, err
	}
	out := make([]parsed, 0, len(segs)+len(rules))
	reloaded := false
	add := func(k Key, refs []string, raw json.RawMessage) error {
		f, err := (&query.Parser{Catalog: cat, Limits: e.cfg.Limits, Segments: res}).Parse(raw)
		var qe *query.Error
		if errors.As(err, &qe) && !reloaded {
			// A field declared or discovered since the catalog was read.
			reloaded = true
			if cat, err = e.fields.Reload(ctx); err != nil {
				return err
			}
			f, err = (&query.Parser{Catalog: cat, Limits: e.cfg.Limits, Segments: res}).Parse(raw)
		}
		if errors.As(err, &qe) {
			broken = true
			e.log.Warn("a definition does not parse; it matches nobody", "definition", k.String(), "path", qe.Path, "err", qe.Message)
			out = append(out, parsed{key: k, refs: refs})
			return nil
		}
		if err != nil {
			return err
		}
		out = append(out, parsed{key: k, refs: refs, filter: f})
		return nil
	}
	for _, s := range segs {
		if err := add(Key{KindSegment, s.ID}, s.Refs, s.Filter); err != nil {
			return nil, false, err
		}
	}
	for _, r := range rules {
		if err := add(Key{KindTag, r.Name}, r.Refs, r.Filter); err != nil {
			return nil, false, err
		}
	}
	return out, broken, nil
}

// dependents are the keys of the definitions that name segment id, or a
// segment that does, at any depth, plus key itself.
func dependents(defs []definition, key Key) map[Key]bool {
	out := map[Key]bool{key: true}
	if key.Kind != KindSegment {
		return out
	}
	for grew := true; grew; {
		grew = false
		for _, d := range defs {
			if out[d.key] {
				continue
			}
			for _, r := range d.refs {
				if out[Key{KindSegment, r}] {
					out[d.key] = true
					grew = true
					break
				}
			}
		}
	}
	return out
}
