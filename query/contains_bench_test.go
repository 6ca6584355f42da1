package query_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"cdp/mapping"
	"cdp/schema"
	"cdp/store"
	"cdp/testing/harness"
)

// BenchmarkContainsOnOpenSearch measures the two ways of matching a
// substring of a keyword on a real OpenSearch: the trigram phrase the
// translation uses (schema.GramsSubfield) and the wildcard *value* it
// replaced, for one 6-letter value and for the costliest filter the
// default limits allow (20 values of 100 letters).
//
//	go test -run '^$' -bench ContainsOnOpenSearch -benchtime 200x ./query
func BenchmarkContainsOnOpenSearch(b *testing.B) {
	env := harness.Services(b)
	cfg := env.Config(b)
	env.Bootstrap(b, cfg)
	st := env.Store(b)
	index := mapping.Customers.Alias(cfg.IndexPrefix)
	const customers = 100_000
	r := rand.New(rand.NewPCG(7, 7))
	letters := func(n int) string {
		s := make([]byte, n)
		for i := range s {
			s[i] = byte('a' + r.IntN(26))
		}
		return string(s)
	}
	emails := make([]string, customers)
	ops := make([]store.Op, 0, 5000)
	for i := range customers {
		emails[i] = letters(10) + "@" + letters(6) + ".com"
		ops = append(ops, store.Op{Action: store.Index, Index: index, ID: fmt.Sprint("c", i),
			Body: map[string]any{"customer_id": fmt.Sprint("c", i), "email": emails[i], schema.JoinField: schema.CustomerRelation}})
		if len(ops) == cap(ops) || i == customers-1 {
			if _, err := st.Bulk(context.Background(), ops); err != nil {
				b.Fatal(err)
			}
			ops = ops[:0]
		}
	}
	if err := st.Refresh(context.Background(), index); err != nil {
		b.Fatal(err)
	}
	// A value: a piece of a stored email, or for long values letters that
	// no email holds.
	value := func(n int) string {
		if n > 16 {
			return letters(n)
		}
		e := emails[r.IntN(customers)]
		i := r.IntN(len(e) - n)
		return e[i : i+n]
	}
	grams := func(v string) any {
		return map[string]any{"match_phrase": map[string]any{"email." + schema.GramsSubfield: map[string]any{"query": v}}}
	}
	wildcard := func(v string) any {
		return map[string]any{"wildcard": map[string]any{"email.lc": map[string]any{"value": "*" + v + "*"}}}
	}
	for _, shape := range []struct {
		name         string
		values, size int
	}{{"one value of 6", 1, 6}, {"20 values of 100", 20, 100}} {
		for _, impl := range []struct {
			name string
			leaf func(string) any
		}{{"trigram phrase", grams}, {"wildcard", wildcard}} {
			b.Run(shape.name+"/"+impl.name, func(b *testing.B) {
				before := env.BreakerTrips(b)
				for b.Loop() {
					should := make([]any, shape.values)
					for i := range should {
						should[i] = impl.leaf(value(shape.size))
					}
					body := map[string]any{"size": 0, "track_total_hits": true, "query": map[string]any{"bool": map[string]any{"should": should}}}
					if err := st.Do(context.Background(), "POST", "/"+index+"/_search?request_cache=false", body, nil); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(env.BreakerTrips(b)-before), "breaker-trips")
			})
		}
	}
}
