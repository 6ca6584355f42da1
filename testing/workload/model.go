package workload

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// This file is the reference model of the chaos and scale tests: it applies
// a stream of source changes and SDK events by the rules of CONTRACT §1 and
// §2 alone, and says what every customer document must finally look like.
// It shares no code with the indexer or package customer on purpose, so
// that a bug there cannot hide in the expectation.

// CDC source tables (CONTRACT §1.2).
const (
	TableCustomers  = "customers"
	TableOrders     = "orders"
	TableOrderItems = "order_items"
)

// CustomerRow is a row of the customers table. An empty string is a SQL
// null.
type CustomerRow struct {
	Name, Phone, Email, Gender, City, MemberLevel, StoreID, OwnerID string
	Birthday                                                        string // YYYY-MM-DD
	CreatedAt, UpdatedAt                                            time.Time
	// Extra are columns the contract does not name: kept under attrs.
	Extra map[string]any
}

// OrderRow is a row of the orders table.
type OrderRow struct {
	CustomerID, OrderNo, StoreID, Status string
	TotalCents                           int64
	CreatedAt                            time.Time
	PaidAt                               time.Time // zero: null
}

// ItemRow is a row of the order_items table.
type ItemRow struct {
	OrderID, SKU, ProductName, Category string
	Quantity                            int
	PriceCents                          int64
}

// Change is one Debezium change of a source row, before encoding.
type Change struct {
	Table string
	Key   string
	Op    string // c, u, d or r
	LSN   int64  // source.lsn
	TsMs  int64  // source.ts_ms
	// The row after the change, or before it for a delete: exactly one is set.
	Customer *CustomerRow
	Order    *OrderRow
	Item     *ItemRow
	// Encoding: the key as Debezium's struct {"id": …} instead of plain, and
	// (orders only) the {"schema", "payload"} wrapper with Debezium's
	// base64 decimals and epoch timestamps.
	StructKey, Schema bool
}

// Deleted reports whether the change removes its row.
func (c *Change) Deleted() bool { return c.Op == "d" }

// Event is one SDK message (CONTRACT §1.1), before encoding.
type Event struct {
	Type        string // identify, track, page, screen, alias
	MessageID   string
	Timestamp   time.Time
	UserID      string
	AnonymousID string
	PreviousID  string // alias: the id that userId is the same person as
	Name        string // the track event's name
	Properties  map[string]any
	Traits      map[string]any
	Channel     string
}

// Person is the key a person is known by in the model and in the
// documents: "crm_id:<id>", or "anonymous_id:<id>" for an anonymous
// profile.
func (e *Event) Person() string {
	if e.UserID != "" {
		return "crm_id:" + e.UserID
	}
	return "anonymous_id:" + e.AnonymousID
}

// Doc is the comparable form of a customer document: what the contract
// fixes about it, with values in one canonical text form (timestamps as
// UTC milliseconds, numbers in shortest form, lists sorted).
type Doc struct {
	// Fields are the root fields: the profile fields and registered_at.
	Fields     map[string]string
	Identities []string // "type:value", sorted
	Attrs      map[string]any
	Orders     []string // one line per order with its items, sorted
	Metrics    map[string]string
}

func (d *Doc) normalize() {
	if d.Fields == nil {
		d.Fields = map[string]string{}
	}
	if d.Attrs == nil {
		d.Attrs = map[string]any{}
	}
	if d.Metrics == nil {
		d.Metrics = map[string]string{}
	}
	if d.Identities == nil {
		d.Identities = []string{}
	}
	if d.Orders == nil {
		d.Orders = []string{}
	}
	sort.Strings(d.Identities)
	sort.Strings(d.Orders)
}

// profileFields are the root fields a CRM row or an identify sets.
var profileFields = []string{"name", "gender", "birthday", "phone", "email", "city", "member_level", "store_id", "owner_id"}

func isProfileField(name string) bool {
	for _, f := range profileFields {
		if f == name {
			return true
		}
	}
	return false
}

// Model applies changes and events by the contract's rules.
type Model struct {
	rows   map[string]*Change // table:key → the change with the newest position
	events map[string]*Event  // message id → the event (a redelivery changes nothing)
}

// NewModel returns an empty model.
func NewModel() *Model {
	return &Model{rows: map[string]*Change{}, events: map[string]*Event{}}
}

// ApplyChange applies a CDC change: per row, the newest source position
// wins, whatever the arrival order; a delete is a version like any other,
// so an older change arriving after it is ignored.
func (m *Model) ApplyChange(c *Change) {
	k := c.Table + ":" + c.Key
	if cur := m.rows[k]; cur != nil && cur.LSN > c.LSN {
		return
	}
	m.rows[k] = c
}

// ApplyEvent applies an SDK event; its message id makes a redelivery a
// no-op.
func (m *Model) ApplyEvent(e *Event) {
	if _, ok := m.events[e.MessageID]; !ok {
		m.events[e.MessageID] = e
	}
}

// Row returns the newest change of a source row (nil when none).
func (m *Model) Row(table, key string) *Change { return m.rows[table+":"+key] }

// LiveRows returns the keys of the rows of a table that exist at the end,
// sorted.
func (m *Model) LiveRows(table string) []string {
	var out []string
	for _, c := range m.rows {
		if c.Table == table && !c.Deleted() {
			out = append(out, c.Key)
		}
	}
	sort.Strings(out)
	return out
}

// EventCount is how many distinct events the index holds: those of the
// people who have a document (EventsPerPerson).
func (m *Model) EventCount() int {
	n := 0
	for _, c := range m.EventsPerPerson() {
		n += c
	}
	return n
}

// EventsPerPerson counts the distinct events of each person who has a
// document: a deleted customer's events leave the index with it.
func (m *Model) EventsPerPerson() map[string]int {
	people, orders, items := m.gather()
	gone := map[string]bool{}
	for k, p := range people {
		if _, ok, err := p.doc(orders, items); err == nil && !ok {
			gone[k] = true
		}
	}
	out := map[string]int{}
	for _, e := range m.events {
		if k := e.Person(); !gone[k] {
			out[k]++
		}
	}
	return out
}

type trait struct {
	v   any
	ts  int64
	mid string
}

type person struct {
	key      string
	crm      *Change // the customers row, when the person is a CRM customer
	events   []*Event
	lastSeen int64
	traits   map[string]trait
	anonIDs  map[string]bool
}

// Docs returns the documents that must exist, by person key. It fails when
// the stream holds a case the contract leaves open (an event after the
// delete of its customer), which a generator must not produce.
func (m *Model) Docs() (map[string]Doc, error) {
	people, orders, items := m.gather()
	out := map[string]Doc{}
	for key, p := range people {
		d, ok, err := p.doc(orders, items)
		if err != nil {
			return nil, err
		}
		if ok {
			out[key] = d
		}
	}
	return out, nil
}

// gather sorts the model's rows and events by whom they are about: the
// people by key (with their CRM row, events and traits), the live orders
// by customer key and the live items by order key.
func (m *Model) gather() (people map[string]*person, orders, items map[string][]*Change) {
	people = map[string]*person{}
	get := func(k string) *person {
		p := people[k]
		if p == nil {
			p = &person{key: k, traits: map[string]trait{}, anonIDs: map[string]bool{}}
			people[k] = p
		}
		return p
	}
	orders = map[string][]*Change{} // customer key → live orders
	items = map[string][]*Change{}  // order key → live items
	for _, c := range m.rows {
		if c.Deleted() {
			if c.Table == TableCustomers {
				get("crm_id:" + c.Key).crm = c
			}
			continue
		}
		switch c.Table {
		case TableCustomers:
			get("crm_id:" + c.Key).crm = c
		case TableOrders:
			orders[c.Order.CustomerID] = append(orders[c.Order.CustomerID], c)
		case TableOrderItems:
			items[c.Item.OrderID] = append(items[c.Item.OrderID], c)
		}
	}
	for _, e := range m.events {
		get(e.Person()).addEvent(e)
	}
	return people, orders, items
}

// addEvent records an event of the person: when it was seen, the device
// it came from, and for an identify its traits (the latest one wins).
func (p *person) addEvent(e *Event) {
	p.events = append(p.events, e)
	ms := e.Timestamp.UnixMilli()
	p.lastSeen = max(p.lastSeen, ms)
	if e.UserID != "" && e.AnonymousID != "" {
		p.anonIDs[e.AnonymousID] = true
	}
	if e.Type != "identify" {
		return
	}
	for k, v := range e.Traits {
		cur, ok := p.traits[k]
		if !ok || cur.ts < ms || (cur.ts == ms && cur.mid < e.MessageID) {
			p.traits[k] = trait{v, ms, e.MessageID}
		}
	}
}

// doc is the person's document, and false when the person has none (a
// deleted customer disappears from search).
func (p *person) doc(orders, items map[string][]*Change) (Doc, bool, error) {
	var crm *CustomerRow
	var crmTS int64
	if p.crm != nil {
		if p.crm.Deleted() {
			if p.lastSeen > p.crm.TsMs {
				return Doc{}, false, fmt.Errorf("model: %s has an event newer than the delete of its CRM row: the contract leaves that open", p.key)
			}
			return Doc{}, false, nil
		}
		crm, crmTS = p.crm.Customer, p.crm.TsMs
	}
	if crm == nil && len(p.events) == 0 {
		return Doc{}, false, nil
	}
	d := Doc{Fields: map[string]string{}, Attrs: map[string]any{}, Metrics: map[string]string{}}
	p.profile(&d, crm, crmTS)
	// Identities: the CRM id, the normalized phone and email of the
	// document, and every device id seen with the user id.
	d.Identities = append(d.Identities, p.key)
	for _, f := range []string{"phone", "email"} {
		if v := d.Fields[f]; v != "" {
			d.Identities = append(d.Identities, f+":"+v)
		}
	}
	for a := range p.anonIDs {
		d.Identities = append(d.Identities, "anonymous_id:"+a)
	}
	// Orders move with customer_id; items attach to their order.
	var own []*Change
	if crmID, ok := strings.CutPrefix(p.key, "crm_id:"); ok {
		own = orders[crmID]
	}
	addOrders(&d, own, items)
	if p.lastSeen > 0 {
		d.Metrics["last_seen_at"] = canonTime(time.UnixMilli(p.lastSeen))
	}
	d.normalize()
	return d, true, nil
}

// profile sets the profile fields, registered_at and attrs of the person's
// document from the CRM row (nil: none), changed at crmTS, and the
// identify traits.
func (p *person) profile(d *Doc, crm *CustomerRow, crmTS int64) {
	crmFields := map[string]string{}
	if crm != nil {
		crmFields = map[string]string{"name": crm.Name, "gender": crm.Gender, "birthday": crm.Birthday, "phone": crm.Phone,
			"email": crm.Email, "city": crm.City, "member_level": crm.MemberLevel, "store_id": crm.StoreID, "owner_id": crm.OwnerID}
	}
	// Where CDC and an identify disagree, the later one wins.
	for _, f := range profileFields {
		v, has := crmFields[f], crm != nil
		if t, ok := p.traits[f]; ok && (!has || t.ts > crmTS) {
			v, _ = t.v.(string)
		}
		if v != "" {
			d.Fields[f] = normalizeValue(f, v)
		}
	}
	if crm != nil {
		d.Fields["registered_at"] = canonTime(crm.CreatedAt)
		for k, v := range crm.Extra {
			if v != nil {
				d.Attrs[k] = v
			}
		}
	}
	for k, t := range p.traits {
		if isProfileField(k) || t.v == nil {
			continue
		}
		if _, crmHas := crmExtra(crm)[k]; !crmHas {
			d.Attrs[k] = t.v
		}
	}
}

// addOrders adds the customer's live orders with their live items, and
// the order metrics, which count paid orders only.
func addOrders(d *Doc, own []*Change, items map[string][]*Change) {
	var count int
	var spend int64
	var first, last time.Time
	for _, o := range own {
		var its []string
		for _, it := range items[o.Key] {
			r := it.Item
			its = append(its, fmt.Sprintf("%s|%s|%s|%d|%s", r.SKU, r.ProductName, r.Category, r.Quantity, money(r.PriceCents)))
		}
		sort.Strings(its)
		r := o.Order
		paid := ""
		if !r.PaidAt.IsZero() {
			paid = canonTime(r.PaidAt)
		}
		d.Orders = append(d.Orders, orderLine(o.Key, r.OrderNo, r.StoreID, r.Status, money(r.TotalCents), canonTime(r.CreatedAt), paid, its))
		if r.Status != "paid" {
			continue
		}
		count++
		spend += r.TotalCents
		if first.IsZero() || r.CreatedAt.Before(first) {
			first = r.CreatedAt
		}
		if last.IsZero() || r.CreatedAt.After(last) {
			last = r.CreatedAt
		}
	}
	d.Metrics["order_count"] = strconv.Itoa(count)
	d.Metrics["total_spend"] = money(spend)
	if count > 0 {
		d.Metrics["first_order_at"] = canonTime(first)
		d.Metrics["last_order_at"] = canonTime(last)
	}
}

func crmExtra(c *CustomerRow) map[string]any {
	if c == nil {
		return nil
	}
	return c.Extra
}

// normalizeValue is CONTRACT §2's normalization, written independently:
// mainland phone numbers to +86 E.164, emails lowercased and trimmed.
func normalizeValue(field, v string) string {
	switch field {
	case "email":
		return strings.ToLower(strings.TrimSpace(v))
	case "phone":
		var digits strings.Builder
		for _, r := range v {
			if r >= '0' && r <= '9' {
				digits.WriteRune(r)
			}
		}
		d := digits.String()
		if strings.HasPrefix(strings.TrimSpace(v), "+86") {
			d = strings.TrimPrefix(d, "86")
		}
		if len(d) == 11 && d[0] == '1' {
			return "+86" + d
		}
		return strings.TrimSpace(v)
	}
	return v
}

func orderLine(id, no, store, status, amount, created, paid string, items []string) string {
	return fmt.Sprintf("%s no=%s store=%s status=%s amount=%s created=%s paid=%s items=[%s]",
		id, no, store, status, amount, created, paid, strings.Join(items, "; "))
}

// money renders cents as the shortest decimal number.
func money(cents int64) string { return fmtNumber(float64(cents) / 100) }

func fmtNumber(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Sprint(f)
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

const canonLayout = "2006-01-02T15:04:05.000Z"

func canonTime(t time.Time) string { return t.UTC().Format(canonLayout) }

// canonTimeText parses an RFC 3339 timestamp and renders it canonically;
// text that does not parse is kept, marked, so that it shows in a diff.
func canonTimeText(s string) string {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return "unparsable:" + s
	}
	return canonTime(t)
}

// CanonicalDoc turns a customer document as stored into its comparable
// form. Values of an unexpected JSON type are kept, marked with their type,
// so that they show in a diff.
func CanonicalDoc(raw map[string]any) Doc {
	d := Doc{Fields: map[string]string{}, Attrs: map[string]any{}, Metrics: map[string]string{}}
	text := func(v any) string {
		switch x := v.(type) {
		case string:
			return x
		case float64:
			return fmtNumber(x)
		}
		return fmt.Sprintf("!%T:%v", v, v)
	}
	for _, f := range append(append([]string{}, profileFields...), "registered_at") {
		v, ok := raw[f]
		if !ok || v == nil {
			continue
		}
		s := text(v)
		if f == "registered_at" {
			s = canonTimeText(s)
		}
		d.Fields[f] = s
	}
	ids, _ := raw["identities"].([]any)
	for _, x := range ids {
		m, _ := x.(map[string]any)
		d.Identities = append(d.Identities, text(m["type"])+":"+text(m["value"]))
	}
	if a, ok := raw["attrs"].(map[string]any); ok {
		d.Attrs = a
	}
	orders, _ := raw["orders"].([]any)
	for _, x := range orders {
		o, _ := x.(map[string]any)
		get := func(k string) string {
			if v, ok := o[k]; ok && v != nil {
				return text(v)
			}
			return ""
		}
		var its []string
		items, _ := o["items"].([]any)
		for _, y := range items {
			it, _ := y.(map[string]any)
			its = append(its, fmt.Sprintf("%s|%s|%s|%s|%s", text(it["sku"]), text(it["product_name"]), text(it["category"]), text(it["quantity"]), text(it["price"])))
		}
		sort.Strings(its)
		created, paid := get("created_at"), get("paid_at")
		if created != "" {
			created = canonTimeText(created)
		}
		if paid != "" {
			paid = canonTimeText(paid)
		}
		d.Orders = append(d.Orders, orderLine(get("order_id"), get("order_no"), get("store_id"), get("status"), get("total_amount"), created, paid, its))
	}
	metrics, _ := raw["metrics"].(map[string]any)
	for k, v := range metrics {
		if v == nil {
			continue
		}
		s := text(v)
		if strings.HasSuffix(k, "_at") {
			s = canonTimeText(s)
		}
		d.Metrics[k] = s
	}
	d.normalize()
	return d
}

// PersonKey names the person a stored document is about: its CRM id, else
// its only device id.
func PersonKey(d Doc) (string, error) {
	var crm, anon []string
	for _, id := range d.Identities {
		switch {
		case strings.HasPrefix(id, "crm_id:"):
			crm = append(crm, id)
		case strings.HasPrefix(id, "anonymous_id:"):
			anon = append(anon, id)
		}
	}
	switch {
	case len(crm) == 1:
		return crm[0], nil
	case len(crm) == 0 && len(anon) == 1:
		return anon[0], nil
	}
	return "", fmt.Errorf("cannot tell whose document this is: identities %v", d.Identities)
}

// DiffDocs lists how got differs from want, at most limit lines (0: all).
func DiffDocs(want, got map[string]Doc, limit int) []string {
	keys := unionKeys(want, got)
	var out []string
	add := func(format string, args ...any) bool {
		out = append(out, fmt.Sprintf(format, args...))
		return limit > 0 && len(out) >= limit
	}
	for _, k := range keys {
		w, wok := want[k]
		g, gok := got[k]
		switch {
		case !gok:
			if add("%s: missing, want %s", k, docText(w)) {
				return out
			}
		case !wok:
			if add("%s: unexpected document %s", k, docText(g)) {
				return out
			}
		case !reflect.DeepEqual(w, g):
			for _, line := range docDiff(w, g) {
				if add("%s: %s", k, line) {
					return out
				}
			}
		}
	}
	return out
}

func docText(d Doc) string {
	return fmt.Sprintf("{fields %v identities %v attrs %v metrics %v orders %v}", d.Fields, d.Identities, d.Attrs, d.Metrics, d.Orders)
}

func docDiff(w, g Doc) []string {
	var out []string
	mapDiff := func(name string, w, g map[string]string) {
		for k, v := range w {
			if gv, ok := g[k]; !ok {
				out = append(out, fmt.Sprintf("%s.%s missing, want %q", name, k, v))
			} else if gv != v {
				out = append(out, fmt.Sprintf("%s.%s = %q, want %q", name, k, gv, v))
			}
		}
		for k, v := range g {
			if _, ok := w[k]; !ok {
				out = append(out, fmt.Sprintf("%s.%s = %q, want it absent", name, k, v))
			}
		}
	}
	mapDiff("fields", w.Fields, g.Fields)
	mapDiff("metrics", w.Metrics, g.Metrics)
	if !reflect.DeepEqual(w.Identities, g.Identities) {
		out = append(out, fmt.Sprintf("identities = %v, want %v", g.Identities, w.Identities))
	}
	if !reflect.DeepEqual(w.Attrs, g.Attrs) {
		out = append(out, fmt.Sprintf("attrs = %v, want %v", g.Attrs, w.Attrs))
	}
	if !reflect.DeepEqual(w.Orders, g.Orders) {
		missing, extra := setDiff(w.Orders, g.Orders), setDiff(g.Orders, w.Orders)
		for _, o := range missing {
			out = append(out, "order missing or different: want "+o)
		}
		for _, o := range extra {
			out = append(out, "order unexpected or different: got "+o)
		}
		if len(missing) == 0 && len(extra) == 0 {
			out = append(out, fmt.Sprintf("orders = %v, want %v", g.Orders, w.Orders))
		}
	}
	return out
}

// setDiff returns the elements of a (with repetition) that b lacks.
func setDiff(a, b []string) []string {
	n := map[string]int{}
	for _, x := range b {
		n[x]++
	}
	var out []string
	for _, x := range a {
		if n[x] > 0 {
			n[x]--
			continue
		}
		out = append(out, x)
	}
	return out
}

// unionKeys returns the keys of a and b, sorted.
func unionKeys[V any](a, b map[string]V) []string {
	keys := make([]string, 0, len(a)+len(b))
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}
