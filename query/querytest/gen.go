package querytest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"cdp/schema"
)

// Customer is a generated customer: its document and its events.
type Customer struct {
	ID     string
	Doc    map[string]any
	Events []Event
}

// Generator draws random customers and random filters over one domain:
// the filters draw their values from what the customers generated so far
// hold, so that they match some customers and miss others, often right at
// the boundaries (equal values, midnights, window edges).
type Generator struct {
	r   *rand.Rand
	now time.Time
	cat *schema.Catalog
	// seen holds, per field, the values the generated documents hold.
	seen map[string][]any
	// segments are the saved segments filters may refer to, made when first
	// needed.
	segments map[string]json.RawMessage
}

// NewGenerator returns a generator seeded with seed, whose documents and
// events lie around now. A Generator is not safe for concurrent use.
func NewGenerator(seed uint64, now time.Time) *Generator {
	return &Generator{
		r:    rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		now:  now,
		cat:  schema.Base().With(append(slices.Clone(attrFields), propertyFields...)...),
		seen: map[string][]any{},
	}
}

// Dynamic fields of the generated documents and events.
var (
	attrFields = []schema.Field{
		{Name: "attrs.source", Type: schema.Keyword, Dynamic: true},
		{Name: "attrs.score", Type: schema.Number, Dynamic: true},
		{Name: "attrs.vip", Type: schema.Boolean, Dynamic: true},
		{Name: "attrs.interests", Type: schema.KeywordArray, List: true, Dynamic: true},
	}
	propertyFields = []schema.Field{
		{Name: "properties.sku", Type: schema.Keyword, Dynamic: true},
		{Name: "properties.category", Type: schema.Keyword, Dynamic: true},
		{Name: "properties.price", Type: schema.Number, Dynamic: true},
		{Name: "properties.first", Type: schema.Boolean, Dynamic: true},
	}
)

// Catalog returns the base catalog with the attrs and event property
// fields of the generated data.
func (g *Generator) Catalog() *schema.Catalog { return g.cat }

// The vocabularies of generated values. Some hold wildcard characters, to
// test their escaping, and mixed case, to test case-insensitivity.
var (
	names      = []string{"张三", "张三丰", "李四", "王小明", "Zhang San", "Li Lei", "Han Meimei", "zhang wei", "王 Li"}
	cities     = []string{"北京", "上海", "广州", "深圳", "Hangzhou", "hangzhou"}
	levels     = []string{"gold", "Silver", "bronze", "GOLD*", "vip?"}
	stores     = []string{"s-01", "s-02", "S-03", "s*04"}
	tagWords   = []string{"vip", "new", "churn_risk", "Wholesale", "a*b"}
	statuses   = []string{"created", "paid", "refunded", "cancelled"}
	skus       = []string{"p-1", "p-2", "p-7", "P-70", "q?1", "x\\y"}
	categories = []string{"shoes", "shirts", "Bags", "food"}
	products   = []string{"Nike 跑鞋", "Adidas 跑鞋 pro", "运动 T恤", "Leather bag", "有机 大米", "running shoes"}
	sources    = []string{"wechat", "WeChat Ads", "offline", "ad*1"}
	interests  = []string{"running", "cooking", "travel", "Tech"}
	eventNames = []string{"login", "view_product", "add_to_cart", "purchase"}
	zones      = []string{"Asia/Shanghai", "America/New_York", "UTC"}
)

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

// chance is true with probability p.
func (g *Generator) chance(p float64) bool { return g.r.Float64() < p }

// note records a value of a field for the filters to draw from.
func (g *Generator) note(field string, v any) any {
	g.seen[field] = append(g.seen[field], v)
	return v
}

// set puts a value in a document: usually v, noted under field unless
// that is empty, else null or nothing.
func (g *Generator) set(doc map[string]any, key, field string, v func() any) {
	switch x := g.r.Float64(); {
	case x < 0.1:
	case x < 0.18:
		doc[key] = nil
	case field == "":
		doc[key] = v()
	default:
		doc[key] = g.note(field, v())
	}
}

// amount returns an amount of money below max, with up to two decimals;
// never negative, as the translation of sum and avg requires (see the
// query package doc).
func (g *Generator) amount(max int) float64 { return float64(g.r.IntN(max*100)) / 100 }

// instant returns a time within about days days before now (a few after
// it), at millisecond resolution; often exactly at or next to a midnight
// of one of the zones, to test day boundaries.
func (g *Generator) instant(days int) time.Time {
	t := g.now.Add(-time.Duration(g.r.Int64N(int64(days) * 24 * int64(time.Hour)))).Add(2 * time.Hour)
	if g.chance(0.3) {
		loc, _ := time.LoadLocation(pick(g.r, zones))
		y, m, d := t.In(loc).Date()
		t = time.Date(y, m, d, 0, 0, 0, 0, loc).Add(time.Duration(g.r.IntN(3)-1) * time.Millisecond)
	}
	return t.Truncate(time.Millisecond).UTC()
}

func timestamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// Customer returns a random customer with the given id.
func (g *Generator) Customer(id string) Customer {
	doc := map[string]any{
		"customer_id": g.note("customer_id", id),
		"identities":  []any{map[string]any{"type": "crm_id", "value": id}},
	}
	g.set(doc, "name", "name", func() any { return pick(g.r, names) })
	g.set(doc, "gender", "gender", func() any { return pick(g.r, []string{"male", "female"}) })
	g.set(doc, "birthday", "birthday", func() any { return g.instant(365 * 40).Format(time.DateOnly) })
	g.set(doc, "phone", "phone", func() any { return fmt.Sprintf("+86138%08d", g.r.IntN(1000)) })
	g.set(doc, "email", "email", func() any { return fmt.Sprintf("user%d@example.com", g.r.IntN(50)) })
	g.set(doc, "city", "city", func() any { return pick(g.r, cities) })
	g.set(doc, "member_level", "member_level", func() any { return pick(g.r, levels) })
	g.set(doc, "store_id", "store_id", func() any { return pick(g.r, stores) })
	g.set(doc, "owner_id", "owner_id", func() any { return pick(g.r, []string{"u-1", "u-2"}) })
	g.set(doc, "registered_at", "registered_at", func() any { return timestamp(g.instant(700)) })
	g.set(doc, "updated_at", "updated_at", func() any { return timestamp(g.instant(30)) })
	g.set(doc, "tags", "", func() any { return g.words("tags", tagWords) })
	g.set(doc, "attrs", "", func() any {
		attrs := map[string]any{}
		g.set(attrs, "source", "attrs.source", func() any { return pick(g.r, sources) })
		g.set(attrs, "score", "attrs.score", func() any { return float64(g.r.IntN(100)) / 2 })
		g.set(attrs, "vip", "attrs.vip", func() any { return g.chance(0.5) })
		g.set(attrs, "interests", "", func() any { return g.words("attrs.interests", interests) })
		return attrs
	})
	orders := g.orders()
	if orders != nil || g.chance(0.5) {
		doc["orders"] = orders
	}
	c := Customer{ID: id, Doc: doc, Events: g.events()}
	doc["metrics"] = g.metrics(orders, c.Events)
	return c
}

// words returns a list of 0–3 words of a vocabulary, noting each.
func (g *Generator) words(field string, vocabulary []string) any {
	out := []any{}
	for range g.r.IntN(4) {
		out = append(out, g.note(field, pick(g.r, vocabulary)))
	}
	return out
}

// orders returns 0–4 orders with 0–3 items each; nil or empty at times.
func (g *Generator) orders() []any {
	n := g.r.IntN(5)
	if n == 0 {
		return nil
	}
	out := make([]any, n)
	for i := range out {
		o := map[string]any{}
		g.set(o, "order_id", "orders.order_id", func() any { return "o-" + strconv.Itoa(g.r.IntN(1000)) })
		g.set(o, "order_no", "orders.order_no", func() any { return pick(g.r, []string{"NO-1", "no-2", "N*3", "N?4"}) })
		g.set(o, "store_id", "orders.store_id", func() any { return pick(g.r, stores) })
		g.set(o, "status", "orders.status", func() any { return pick(g.r, statuses) })
		g.set(o, "total_amount", "orders.total_amount", func() any { return g.amount(500) })
		g.set(o, "created_at", "orders.created_at", func() any { return timestamp(g.instant(90)) })
		g.set(o, "paid_at", "orders.paid_at", func() any { return timestamp(g.instant(90)) })
		items := make([]any, g.r.IntN(4))
		for j := range items {
			it := map[string]any{}
			g.set(it, "sku", "orders.items.sku", func() any { return pick(g.r, skus) })
			g.set(it, "product_name", "orders.items.product_name", func() any { return pick(g.r, products) })
			g.set(it, "category", "orders.items.category", func() any { return pick(g.r, categories) })
			g.set(it, "quantity", "orders.items.quantity", func() any { return float64(1 + g.r.IntN(5)) })
			g.set(it, "price", "orders.items.price", func() any { return g.amount(200) })
			items[j] = it
		}
		if len(items) > 0 || g.chance(0.5) {
			o["items"] = items
		}
		out[i] = o
	}
	return out
}

// metrics computes the metrics of CONTRACT §2 from the paid orders and the
// events.
func (g *Generator) metrics(orders []any, events []Event) map[string]any {
	m := map[string]any{}
	count, spend := 0, 0.0
	var first, last time.Time
	for _, o := range orders {
		o := o.(map[string]any)
		if o["status"] != "paid" {
			continue
		}
		count++
		if v, ok := o["total_amount"].(float64); ok {
			spend += v
		}
		if s, ok := o["created_at"].(string); ok {
			at, _ := time.Parse(time.RFC3339, s)
			if first.IsZero() || at.Before(first) {
				first = at
			}
			if at.After(last) {
				last = at
			}
		}
	}
	m["order_count"] = g.note("metrics.order_count", float64(count))
	m["total_spend"] = g.note("metrics.total_spend", spend)
	if !first.IsZero() {
		m["first_order_at"] = g.note("metrics.first_order_at", timestamp(first))
		m["last_order_at"] = g.note("metrics.last_order_at", timestamp(last))
	}
	var seen time.Time
	for _, e := range events {
		if e.Timestamp.After(seen) {
			seen = e.Timestamp
		}
	}
	if !seen.IsZero() {
		m["last_seen_at"] = g.note("metrics.last_seen_at", timestamp(seen))
	}
	return m
}

// events returns 0–8 events, some at the edges of the windows a filter
// may ask for, a few after now.
func (g *Generator) events() []Event {
	out := make([]Event, g.r.IntN(9))
	for i := range out {
		t := g.instant(40)
		if g.chance(0.2) {
			d, _ := parseDuration(g.duration())
			t = g.now.Add(-d).Add(time.Duration(g.r.IntN(3)-1) * time.Millisecond)
		}
		props := map[string]any{}
		g.set(props, "sku", "properties.sku", func() any { return pick(g.r, skus) })
		g.set(props, "category", "properties.category", func() any { return pick(g.r, categories) })
		g.set(props, "price", "properties.price", func() any { return g.amount(200) })
		g.set(props, "first", "properties.first", func() any { return g.chance(0.5) })
		out[i] = Event{Name: pick(g.r, eventNames), Timestamp: t.UTC(), Properties: props}
	}
	return out
}

// durations are the windows filters ask for.
var durations = []string{"1h", "24h", "48h", "1d", "7d", "30d"}

func (g *Generator) duration() string { return pick(g.r, durations) }

// parseDuration reads a duration of durations as a time.Duration of
// whole days or hours (the time zone does not matter for generating).
func parseDuration(s string) (time.Duration, bool) {
	n, err := strconv.Atoi(s[:len(s)-1])
	if err != nil {
		return 0, false
	}
	if strings.HasSuffix(s, "d") {
		return time.Duration(n) * 24 * time.Hour, true
	}
	return time.Duration(n) * time.Hour, true
}
