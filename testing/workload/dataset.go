// Package workload is the synthetic workload that the benchmark (cmd/bench)
// and the chaos suite (testing/chaos) share: a reproducible generator of
// source changes and SDK events (dataset.go), the Kafka messages they are
// encoded into (stream.go), how far an indexer has come through them
// (progress.go), and the reference model of the documents they must lead
// to (model.go). For OneID it also generates identity traffic in phases
// with split requests (identity_traffic.go) and models who is whom
// (oneid.go). It needs no running service and links no container
// tooling, so the benchmark binary stays small.
//
// The models are test oracles: they apply the stream by the rules of the
// contract alone and import no package of the service they judge
// (TestTheModelImportsNothingOfTheService checks that).
package workload

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"time"
)

// Dataset is a generated stream and the reference model it leads to.
type Dataset struct {
	Messages []Message
	Stats    DatasetStats
	// MaxLSN is the highest source position in the stream, and LastTime
	// the latest source or event time: messages added later must be newer.
	MaxLSN   int64
	LastTime time.Time
	model    *Model
}

// DatasetStats counts what a generated stream holds.
type DatasetStats struct {
	Customers, SDKOnlyUsers, AnonymousDevices, Orders, Items int // distinct rows and people
	CDCMessages, EventMessages, Tombstones                   int
	Updates, Deletes, OrderMoves, ItemMoves                  int // row changes by kind
	SchemaWrapped, StructKeys                                int // encodings: schema-wrapped order changes, Debezium struct keys
	Duplicates, Stale                                        int // redelivered copies; changes delivered after a newer one of their row
}

// Add adds the counts of o to s (for a stream made of several datasets).
func (s *DatasetStats) Add(o DatasetStats) {
	s.Customers += o.Customers
	s.SDKOnlyUsers += o.SDKOnlyUsers
	s.AnonymousDevices += o.AnonymousDevices
	s.Orders += o.Orders
	s.Items += o.Items
	s.CDCMessages += o.CDCMessages
	s.EventMessages += o.EventMessages
	s.Tombstones += o.Tombstones
	s.Updates += o.Updates
	s.Deletes += o.Deletes
	s.OrderMoves += o.OrderMoves
	s.ItemMoves += o.ItemMoves
	s.SchemaWrapped += o.SchemaWrapped
	s.StructKeys += o.StructKeys
	s.Duplicates += o.Duplicates
	s.Stale += o.Stale
}

func (s DatasetStats) String() string {
	return fmt.Sprintf("%d customers (+%d SDK-only users, %d anonymous devices), %d orders, %d items; "+
		"%d CDC messages (%d tombstones, %d schema-wrapped, %d with struct keys), %d event messages; "+
		"%d updates, %d deletes, %d order moves, %d item moves, %d duplicates, %d stale",
		s.Customers, s.SDKOnlyUsers, s.AnonymousDevices, s.Orders, s.Items, s.CDCMessages, s.Tombstones, s.SchemaWrapped, s.StructKeys,
		s.EventMessages, s.Updates, s.Deletes, s.OrderMoves, s.ItemMoves, s.Duplicates, s.Stale)
}

// Model is the reference model of everything in Messages that is not
// poison. Tests that add messages of their own apply them to it.
func (d *Dataset) Model() *Model { return d.model }

// Expected is the final state the stream must lead to: the documents by
// person key ("crm_id:…" or "anonymous_id:…").
func (d *Dataset) Expected() (map[string]Doc, error) { return d.model.Docs() }

// Epoch is where generated source times start.
var Epoch = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// NewDataset generates a reproducible stream about the given number of CRM
// customers: about 3 orders per customer and 2 items per order, SDK events
// (track, page, identify; a device id with some), SDK-only users and
// anonymous devices, with updates, deletes (and tombstones), orders moving
// between customers, items moving between orders, changes of a row
// delivered after a newer one, children before their parents, Debezium
// struct keys and schema-wrapped messages, and about 4% redelivered
// duplicates. It has about 15 messages per customer. The reference model
// has applied all of it.
func NewDataset(seed uint64, customers int) *Dataset {
	return NewDatasetAt(seed, customers, 0)
}

// DatasetKeySpan is how far apart the key spaces of two datasets made by
// NewDatasetAt must start (bases 0, DatasetKeySpan, 2×DatasetKeySpan, …)
// to share no row, identity or event id, for up to 100,000 customers each.
const DatasetKeySpan = 10_000_000

// NewDatasetAt is NewDataset with every key, phone, email, device and
// event id moved by base, so that datasets at bases DatasetKeySpan apart
// describe different people and can be streamed one after another. Base 0
// is NewDataset.
func NewDatasetAt(seed uint64, customers, base int) *Dataset {
	g := &generator{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), n: customers, base: base}
	return g.run()
}

var (
	names      = []string{"张三", "李四", "王芳", "赵敏", "陈晨", "刘洋", "杨静", "黄磊", "周杰", "吴敏", "Alice Chen", "Bob Li", "Carol Wang", "David Zhao"}
	cities     = []string{"北京", "上海", "广州", "深圳", "杭州", "成都", "武汉", "南京"}
	levels     = []string{"bronze", "silver", "gold", "platinum"}
	categories = []string{"shoes", "bags", "beauty", "food", "toys", "books"}
	products   = []string{"跑步鞋", "Leather Bag", "口红", "Green Tea", "积木", "Go 编程", "Sneaker Pro", "面霜"}
	trackNames = []string{"view_product", "add_to_cart", "search", "share"}
	channels   = []string{"miniprogram", "app", "web"}
)

type generator struct {
	r     *rand.Rand
	n     int
	base  int // added to every numeric key (NewDatasetAt)
	plans []*plan
	stats DatasetStats
	nextO int
	nextI int
	nextE int
	// rows created so far, for moves
	customerKeys []string
	orderKeys    []string
}

// plan is one change or event on the timeline: t is when it happened in
// the source, emit when it is delivered.
type plan struct {
	t, emit   float64
	change    *Change
	event     *Event
	tombstone bool
}

// row collects the versions of one source row in time order.
type row struct {
	table, key string
	structKey  bool
	versions   []*plan
}

func (g *generator) chance(p float64) bool  { return g.r.Float64() < p }
func (g *generator) pick(s []string) string { return s[g.r.IntN(len(s))] }

// pickOther picks one of keys other than not, for a row moving to another
// parent; keys must hold another.
func (g *generator) pickOther(keys []string, not string) string {
	for {
		if k := g.pick(keys); k != not {
			return k
		}
	}
}

// gap is the time from a change of a row to its next one: a millisecond
// to a tenth of a second.
func (g *generator) gap() float64 { return 0.001 + g.r.Float64()*0.1 }

func (g *generator) newRow(table, key string) *row {
	return &row{table: table, key: key, structKey: g.chance(0.2)}
}

func (g *generator) add(r *row, t float64, op string, c *Change) {
	c.Table, c.Key, c.Op, c.StructKey = r.table, r.key, op, r.structKey
	c.Schema = r.table == TableOrders && g.chance(0.15) // Debezium's schema wrapper, base64 decimals, epoch times
	p := &plan{t: t, change: c}
	r.versions = append(r.versions, p)
	g.plans = append(g.plans, p)
	if c.Schema {
		g.stats.SchemaWrapped++
	}
	if c.StructKey {
		g.stats.StructKeys++
	}
	switch op {
	case "u":
		g.stats.Updates++
	case "d":
		g.stats.Deletes++
	}
}

func (g *generator) date(from, to time.Time) time.Time {
	d := to.Sub(from)
	return from.Add(time.Duration(g.r.Int64N(int64(d)))).Truncate(time.Second)
}

func (g *generator) run() *Dataset {
	for i := 0; i < g.n; i++ {
		g.customerKeys = append(g.customerKeys, strconv.Itoa(100000+g.base+i))
	}
	var rows []*row
	for i := 0; i < g.n; i++ {
		rows = append(rows, g.crmCustomer(i)...)
	}
	g.sdkOnlyPeople()
	lsn, last := g.stampTimeline()
	return g.encode(g.deliveries(rows), lsn*10, last)
}

// crmCustomer plans CRM customer i: its row's changes, its orders with
// their items, and its events. It returns the rows it planned.
func (g *generator) crmCustomer(i int) []*row {
	key := g.customerKeys[i]
	b := g.r.Float64() * 0.8
	deleted := g.chance(0.03)
	cr := g.newRow(TableCustomers, key)
	rows := []*row{cr}
	c := g.customer(i)
	op := "c"
	if g.chance(0.2) {
		op = "r" // a snapshot read
	}
	g.add(cr, b, op, &Change{Customer: c})
	if g.chance(0.3) {
		u := *c
		u.Extra = copyMap(c.Extra)
		u.Name, u.City, u.MemberLevel = g.pick(names), g.pick(cities), g.pick(levels)
		u.Extra["points"] = float64(g.r.IntN(5000))
		u.UpdatedAt = c.UpdatedAt.Add(time.Hour * time.Duration(1+g.r.IntN(500)))
		g.add(cr, b+0.01+g.r.Float64()*0.19, "u", &Change{Customer: &u})
		c = &u
	}
	if deleted {
		g.add(cr, b+0.3+g.r.Float64()*0.05, "d", &Change{Customer: c})
	}
	g.stats.Customers++
	for range 1 + g.r.IntN(5) {
		rows = append(rows, g.planOrder(key, b)...)
	}
	g.customerEvents(key, b, deleted)
	return rows
}

// planOrder plans an order of the customer whose changes start at b:
// created around the customer (sometimes before it: a child before its
// parent), updated, moved, deleted, and its items. It returns the order's
// row, then its items'.
func (g *generator) planOrder(customerKey string, b float64) []*row {
	or := g.newRow(TableOrders, strconv.Itoa(1000000+g.base+g.nextO))
	g.nextO++
	g.stats.Orders++
	rows := []*row{or}
	g.orderKeys = append(g.orderKeys, or.key)
	created := b - 0.002 + g.r.Float64()*0.052
	t := created
	o := g.order(customerKey)
	g.add(or, t, "c", &Change{Order: o})
	if g.chance(0.25) {
		u := *o
		switch o.Status {
		case "created":
			if g.chance(0.7) {
				u.Status, u.PaidAt = "paid", o.CreatedAt.Add(time.Duration(1+g.r.IntN(3600))*time.Second)
			} else {
				u.Status = "cancelled"
			}
		case "paid":
			u.Status = "refunded"
		default:
			u.StoreID = fmt.Sprintf("s-%02d", g.r.IntN(20))
		}
		t += g.gap()
		g.add(or, t, "u", &Change{Order: &u})
		o = &u
	}
	if g.chance(0.02) && g.n > 1 {
		u := *o
		u.CustomerID = g.pickOther(g.customerKeys, o.CustomerID)
		t += g.gap()
		g.add(or, t, "u", &Change{Order: &u})
		g.stats.OrderMoves++
		o = &u
	}
	if g.chance(0.05) {
		t += g.gap()
		g.add(or, t, "d", &Change{Order: o})
	}
	for range 1 + g.r.IntN(3) {
		rows = append(rows, g.planItem(or.key, created))
	}
	return rows
}

// planItem plans an item of the order created at created: around its
// order (sometimes before it), updated, moved to another order, deleted.
func (g *generator) planItem(orderKey string, created float64) *row {
	ir := g.newRow(TableOrderItems, strconv.Itoa(5000000+g.base+g.nextI))
	g.nextI++
	g.stats.Items++
	ti := created - 0.001 + g.r.Float64()*0.003
	it := g.item(orderKey)
	g.add(ir, ti, "c", &Change{Item: it})
	if g.chance(0.05) {
		u := *it
		u.Quantity = 1 + g.r.IntN(9)
		ti += g.gap()
		g.add(ir, ti, "u", &Change{Item: &u})
		it = &u
	}
	if g.chance(0.015) {
		u := *it
		u.OrderID = g.pickOther(g.orderKeys, it.OrderID)
		ti += g.gap()
		g.add(ir, ti, "u", &Change{Item: &u})
		g.stats.ItemMoves++
		it = &u
	}
	if g.chance(0.03) {
		ti += g.gap()
		g.add(ir, ti, "d", &Change{Item: it})
	}
	return ir
}

// customerEvents plans the SDK events of a CRM customer whose changes start
// at b, all before a delete of the customer (an event after it is a case
// the contract leaves open).
func (g *generator) customerEvents(key string, b float64, deleted bool) {
	device := ""
	if g.chance(0.4) {
		device = "dev-" + key
	}
	for range g.r.IntN(6) {
		g.event(b+g.r.Float64()*0.15, key, device, "")
	}
	if g.chance(0.2) {
		t := b + g.r.Float64()*0.15
		if !deleted && g.chance(0.5) {
			t = b + 0.22 + g.r.Float64()*0.08 // newer than every CRM change: the identify wins
		}
		traits := map[string]any{"vip_card": fmt.Sprintf("VIP-%d", g.r.IntN(100000))}
		if g.chance(0.6) {
			traits["city"] = g.pick(cities)
		}
		g.event(t, key, device, "identify", traits)
	}
}

// sdkOnlyPeople plans the events of users known only from the SDK, and of
// anonymous devices.
func (g *generator) sdkOnlyPeople() {
	for j := range max(1, g.n/50) {
		user := strconv.Itoa(900000 + g.base + j)
		g.stats.SDKOnlyUsers++
		b := g.r.Float64() * 0.9
		g.event(b, user, "", "identify", map[string]any{"name": g.pick(names), "vip_card": fmt.Sprintf("VIP-S%d", j)})
		for range g.r.IntN(3) {
			g.event(b+g.r.Float64()*0.05, user, "", "")
		}
	}
	for j := range max(1, g.n/20) {
		dev := fmt.Sprintf("anon-%d", g.base+j)
		g.stats.AnonymousDevices++
		b := g.r.Float64() * 0.9
		for range 1 + g.r.IntN(3) {
			g.event(b+g.r.Float64()*0.05, "", dev, "")
		}
	}
}

// stampTimeline gives the plans source times and positions that follow
// the timeline, and returns the number of changes and the latest time.
func (g *generator) stampTimeline() (changes int64, last time.Time) {
	sort.SliceStable(g.plans, func(i, j int) bool { return g.plans[i].t < g.plans[j].t })
	for i, p := range g.plans {
		ms := Epoch.UnixMilli() + int64(i)*1000 + g.r.Int64N(1000)
		last = time.UnixMilli(ms).UTC()
		p.emit = p.t
		if p.change != nil {
			changes++
			p.change.LSN, p.change.TsMs = changes*10, ms
		} else {
			p.event.Timestamp = last
		}
	}
	return changes, last
}

// deliveries returns the plans in delivery order: some changes arrive
// after a newer change of their row (an older update, or a create after
// the delete), tombstones follow deletes, and some messages are delivered
// twice.
func (g *generator) deliveries(rows []*row) []*plan {
	extra := []*plan{}
	for _, r := range rows {
		for k, p := range r.versions {
			if k+1 < len(r.versions) {
				stale := 0.15
				if r.versions[k+1].change.Deleted() || r.versions[k+1].change.Table == TableOrders && r.versions[k+1].change.Order.CustomerID != p.change.Order.CustomerID {
					stale = 0.5 // deletes and moves are where stale changes hurt
				}
				if g.chance(stale) {
					p.emit = r.versions[k+1].emit + g.r.Float64()*0.01
					g.stats.Stale++
				}
			}
			if p.change.Deleted() && g.chance(0.7) {
				extra = append(extra, &plan{emit: p.emit + g.r.Float64()*0.001, change: p.change, tombstone: true})
				g.stats.Tombstones++
			}
		}
	}
	all := append(g.plans, extra...)
	for _, p := range all[:len(all):len(all)] {
		if g.chance(0.04) {
			dup := *p
			dup.emit = p.emit + g.r.Float64()*0.05
			all = append(all, &dup)
			g.stats.Duplicates++
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].emit < all[j].emit })
	return all
}

// encode turns the plans, in delivery order, into the dataset's messages
// and applies them to its model.
func (g *generator) encode(all []*plan, maxLSN int64, last time.Time) *Dataset {
	d := &Dataset{model: NewModel(), MaxLSN: maxLSN, LastTime: last}
	for _, p := range all {
		var m Message
		switch {
		case p.tombstone:
			m = Message{Topic: topicOf(p.change.Table), Key: rowKey(p.change)}
			g.stats.CDCMessages++
		case p.change != nil:
			g.stats.CDCMessages++
			d.model.ApplyChange(p.change)
			m = changeMessage(p.change)
		default:
			g.stats.EventMessages++
			d.model.ApplyEvent(p.event)
			m = EventMessage(p.event)
		}
		d.Messages = append(d.Messages, m)
	}
	d.Stats = g.stats
	return d
}

func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (g *generator) customer(i int) *CustomerRow {
	c := &CustomerRow{
		Name:        g.pick(names),
		Phone:       fmt.Sprintf("13%09d", g.base+i),
		Email:       fmt.Sprintf("User%d@Example.com", g.base+i),
		Birthday:    g.date(time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2006, 1, 1, 0, 0, 0, 0, time.UTC)).Format("2006-01-02"),
		City:        g.pick(cities),
		MemberLevel: g.pick(levels),
		StoreID:     fmt.Sprintf("s-%02d", g.r.IntN(20)),
		CreatedAt:   g.date(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)),
		Extra:       map[string]any{"points": float64(g.r.IntN(5000))},
	}
	c.UpdatedAt = c.CreatedAt.Add(time.Hour)
	switch g.r.IntN(3) {
	case 0:
		c.Phone = " " + c.Phone + " "
	case 1:
		c.Phone = "+86 " + c.Phone
	}
	if g.chance(0.5) {
		c.Email = "  " + c.Email
	}
	switch g.r.IntN(3) {
	case 0:
		c.Gender = "male"
	case 1:
		c.Gender = "female"
	}
	if g.chance(0.3) {
		c.OwnerID = fmt.Sprintf("u-%d", g.r.IntN(50))
	}
	if g.chance(0.5) {
		c.Extra["wechat_openid"] = fmt.Sprintf("wx-%d", g.base+i)
	}
	if g.chance(0.2) {
		c.Extra["is_employee"] = g.chance(0.5)
	}
	return c
}

func (g *generator) order(customerKey string) *OrderRow {
	o := &OrderRow{
		CustomerID: customerKey,
		OrderNo:    fmt.Sprintf("NO-%d", g.base+g.nextO),
		StoreID:    fmt.Sprintf("s-%02d", g.r.IntN(20)),
		TotalCents: 100 + g.r.Int64N(200000),
		CreatedAt:  g.date(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 10, 31, 0, 0, 0, 0, time.UTC)),
	}
	switch x := g.r.Float64(); {
	case x < 0.6:
		o.Status = "paid"
	case x < 0.8:
		o.Status = "created"
	case x < 0.9:
		o.Status = "refunded"
	default:
		o.Status = "cancelled"
	}
	if o.Status == "paid" || o.Status == "refunded" {
		o.PaidAt = o.CreatedAt.Add(time.Duration(1+g.r.IntN(3600)) * time.Second)
	}
	return o
}

func (g *generator) item(orderKey string) *ItemRow {
	return &ItemRow{OrderID: orderKey, SKU: fmt.Sprintf("p-%d", g.r.IntN(500)), ProductName: g.pick(products),
		Category: g.pick(categories), Quantity: 1 + g.r.IntN(5), PriceCents: 50 + g.r.Int64N(50000)}
}

// event plans an SDK event of a user (or of a device alone when user is
// ""); typ "" is a track or page event.
func (g *generator) event(t float64, user, device, typ string, traits ...map[string]any) {
	id := fmt.Sprintf("ev-%d-%d", g.nextE, g.r.IntN(1e6))
	if g.base != 0 {
		id = fmt.Sprintf("ev%d-%s", g.base, id[3:])
	}
	e := &Event{MessageID: id, UserID: user, AnonymousID: device, Channel: g.pick(channels)}
	g.nextE++
	switch {
	case typ == "identify":
		e.Type, e.Traits = "identify", traits[0]
	case g.chance(0.25):
		e.Type, e.Properties = "page", map[string]any{"path": fmt.Sprintf("/p/%d", g.r.IntN(100))}
	default:
		e.Type, e.Name = "track", g.pick(trackNames)
		e.Properties = map[string]any{"sku": fmt.Sprintf("p-%d", g.r.IntN(500)), "category": g.pick(categories), "price": float64(g.r.IntN(100000)) / 100}
	}
	g.plans = append(g.plans, &plan{t: t, event: e})
}
