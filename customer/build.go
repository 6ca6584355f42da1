package customer

import (
	"math/big"
	"slices"
	"sort"
	"strconv"
	"time"

	"cdp/identity"
	"cdp/schema"
)

// The customer table's columns, as package schema declares them.
var (
	// ProfileFields are the root fields a CRM row or an SDK identify may
	// set: those a customers column of the same name sets. The later of
	// the column and the trait of that name wins.
	ProfileFields []string
	// renamedColumns set a root field of another name (created_at →
	// registered_at); the column wins over a trait of the column's name.
	renamedColumns []schema.Column
	// customerColumns are the CRM columns with a place of their own in
	// the document; every other column goes under attrs.
	customerColumns = map[string]bool{}
)

func init() {
	tbl, _ := schema.TableNamed("customers")
	for _, c := range tbl.Columns() {
		customerColumns[c.Name] = true
		switch {
		case c.Field == c.Name:
			ProfileFields = append(ProfileFields, c.Name)
		case c.Field != "":
			renamedColumns = append(renamedColumns, c)
		}
	}
}

// isRenamedColumn reports whether a trait names a renamed column.
func isRenamedColumn(name string) bool {
	for _, c := range renamedColumns {
		if c.Name == name {
			return true
		}
	}
	return false
}

// IsProfileField reports whether a trait or column name sets a root field.
func IsProfileField(name string) bool {
	for _, f := range ProfileFields {
		if f == name {
			return true
		}
	}
	return false
}

// Build returns the document of a customer and whether the customer exists:
// a customer exists while its CRM row does, or while SDK events speak of it
// and none of them is older than the CRM row's delete.
func Build(customerID string, s Sources) (map[string]any, bool) {
	crm, ok := liveRow(s)
	if !ok {
		return nil, false
	}
	m := merge{crm: crm}
	if s.Profile != nil {
		m.traits = s.Profile.Traits
	}
	doc := map[string]any{"customer_id": customerID, "tags": []string{}}
	m.setProfileFields(doc)
	doc["attrs"] = m.attrs()
	if s.Identities != nil {
		ids := slices.Clone(s.Identities)
		s.Rules.Order(ids)
		doc["identities"] = ids
	} else {
		doc["identities"] = s.Rules.Linking(identities(crm, s.Profile, doc))
	}

	orders, metrics, ordersTS := buildOrders(s.Orders, s.Items)
	doc["orders"] = orders
	latest := max(m.latest(), ordersTS)
	if s.Profile != nil && s.Profile.LastSeen > 0 {
		metrics["last_seen_at"] = FormatMillis(s.Profile.LastSeen)
		latest = max(latest, s.Profile.LastSeen)
	}
	doc["metrics"] = metrics
	if latest > 0 {
		doc["updated_at"] = FormatMillis(latest)
	}
	return doc, true
}

// liveRow returns the CRM row that speaks for the customer (nil for none,
// or for a delete older than the SDK's last word) and whether the customer
// exists at all.
func liveRow(s Sources) (*Row, bool) {
	crm := s.Customer
	if crm != nil && crm.Deleted {
		if s.Profile == nil || s.Profile.LastSeen <= crm.TS {
			return nil, false
		}
		crm = nil
	}
	if crm == nil && s.Profile == nil {
		return nil, false
	}
	return crm, true
}

// merge is a customer's CRM row (nil for none) and identify traits, merged
// value by value.
type merge struct {
	crm    *Row
	traits map[string]Trait
}

// later returns the newer of a CRM value and a trait, CRM on a tie.
func (m merge) later(name string, crmHas bool, crmV any) (any, bool) {
	t, tOK := m.traits[name]
	switch {
	case tOK && (!crmHas || t.TS > m.crm.TS):
		return t.V, true
	case crmHas:
		return crmV, true
	}
	return nil, false
}

// crmValue returns the CRM row's value of a column.
func (m merge) crmValue(col string) (any, bool) {
	if m.crm == nil {
		return nil, false
	}
	v, ok := m.crm.Data[col]
	return v, ok
}

// setProfileFields sets the root fields of doc: a profile field to the
// later of column and trait, a renamed column's field to the column, else
// to the trait of the column's name.
func (m merge) setProfileFields(doc map[string]any) {
	for _, f := range ProfileFields {
		cv, has := m.crmValue(f)
		if v, ok := m.later(f, has, cv); ok && v != nil && v != "" {
			doc[f] = normalizeField(f, v)
		}
	}
	for _, c := range renamedColumns {
		if v, ok := m.crmValue(c.Name); ok && v != nil {
			doc[c.Field] = v
		} else if t, ok := m.traits[c.Name]; ok && t.V != nil {
			doc[c.Field] = t.V
		}
	}
}

// attrs returns the values without a root field of their own: the CRM
// columns the schema does not place (the later of column and trait), and
// the traits no column speaks for.
func (m merge) attrs() map[string]any {
	attrs := map[string]any{}
	if m.crm != nil {
		for col, v := range m.crm.Data {
			if !customerColumns[col] {
				if w, ok := m.later(col, true, v); ok && w != nil {
					attrs[col] = w
				}
			}
		}
	}
	for name, t := range m.traits {
		if _, done := attrs[name]; done || IsProfileField(name) || isRenamedColumn(name) || t.V == nil {
			continue
		}
		if _, crmHas := m.crmValue(name); !crmHas {
			attrs[name] = t.V
		}
	}
	return attrs
}

// latest returns the time of the newest CRM change or trait.
func (m merge) latest() int64 {
	var latest int64
	if m.crm != nil {
		latest = m.crm.TS
	}
	for _, t := range m.traits {
		latest = max(latest, t.TS)
	}
	return latest
}

func normalizeField(name string, v any) any {
	s, ok := v.(string)
	if !ok {
		return v
	}
	switch name {
	case "phone":
		return identity.NormalizePhone(s)
	case "email":
		return identity.NormalizeEmail(s)
	}
	return s
}

func identities(crm *Row, p *Profile, doc map[string]any) []identity.Identity {
	seen := map[identity.Identity]bool{}
	var out []identity.Identity
	add := func(t, v string) {
		id := identity.Identity{Type: t, Value: identity.Normalize(t, v)}
		if id.Value != "" && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	if crm != nil {
		add(identity.CRMID, crm.Key)
	}
	if p != nil {
		for _, v := range p.CRMIDs {
			add(identity.CRMID, v)
		}
	}
	for _, t := range []string{identity.Phone, identity.Email} {
		if v, ok := doc[t].(string); ok {
			add(t, v)
		}
	}
	if p != nil {
		for _, v := range p.AnonymousIDs {
			add(identity.AnonymousID, v)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return rank(out[i].Type) < rank(out[j].Type) })
	return out
}

func rank(t string) int {
	for i, x := range identity.Types {
		if x == t {
			return i
		}
	}
	return len(identity.Types)
}

// orderFields and itemFields are how order and item rows fill their
// document objects, as package schema declares it.
var (
	orderFields = rowFieldsOf("orders")
	itemFields  = rowFieldsOf("order_items")
)

// rowFields are the fields a table's rows set in their objects.
type rowFields struct {
	key  string      // the object key the row's key goes to, "" for none
	cols [][2]string // column, object key
}

func rowFieldsOf(table string) rowFields {
	tbl, ok := schema.TableNamed(table)
	if !ok {
		panic("customer: schema has no table " + table)
	}
	var rf rowFields
	for _, c := range tbl.Columns() {
		switch {
		case c.Field == "":
		case c.Name == tbl.Key:
			rf.key = tbl.Leaf(c.Field)
		default:
			rf.cols = append(rf.cols, [2]string{c.Name, tbl.Leaf(c.Field)})
		}
	}
	return rf
}

// fill copies a row's fields into dst.
func (rf rowFields) fill(dst map[string]any, r Row) {
	if rf.key != "" {
		dst[rf.key] = r.Key
	}
	for _, c := range rf.cols {
		if v, ok := r.Data[c[0]]; ok && v != nil {
			dst[c[1]] = v
		}
	}
}

// buildOrders returns the live orders with their live items, newest first,
// the metrics computed from them, and the latest source time among them.
// Money is summed exactly in decimal, not in float64.
func buildOrders(rows []Row, items map[string][]Row) ([]map[string]any, map[string]any, int64) {
	var latest int64
	live := make([]Row, 0, len(rows))
	for _, r := range rows {
		if !r.Deleted {
			live = append(live, r)
		}
	}
	sort.Slice(live, func(i, j int) bool {
		ci, cj := str(live[i].Data["created_at"]), str(live[j].Data["created_at"])
		if ci != cj {
			return earlier(cj, ci)
		}
		return live[i].Key < live[j].Key
	})
	orders := make([]map[string]any, 0, len(live))
	count, total := 0, new(big.Rat)
	var first, last string
	for _, r := range live {
		latest = max(latest, r.TS)
		o := map[string]any{}
		orderFields.fill(o, r)
		its := make([]map[string]any, 0)
		for _, it := range sortedLive(items[r.Key]) {
			latest = max(latest, it.TS)
			m := map[string]any{}
			itemFields.fill(m, it)
			its = append(its, m)
		}
		o["items"] = its
		orders = append(orders, o)
		if r.Data["status"] != "paid" {
			continue
		}
		count++
		if amt, ok := decimal(r.Data["total_amount"]); ok {
			total.Add(total, amt)
		}
		if c := str(r.Data["created_at"]); c != "" {
			if first == "" || earlier(c, first) {
				first = c
			}
			if last == "" || earlier(last, c) {
				last = c
			}
		}
	}
	spend, _ := total.Float64()
	metrics := map[string]any{"order_count": count, "total_spend": spend}
	if kept := fitting(orders); kept < len(orders) {
		metrics["orders_omitted"] = len(orders) - kept
		orders = orders[:kept]
	}
	if first != "" {
		metrics["first_order_at"] = first
		metrics["last_order_at"] = last
	}
	return orders, metrics, latest
}

// NestedBudget is how many nested objects (an order, and each of its
// items) a document holds at most. OpenSearch refuses a whole document
// past its index's nested_objects limit (20,000 in mapping/customers.json,
// identities count too), and a refused document would freeze the customer
// at its last accepted version. A customer past the budget keeps its
// newest orders, whole, that fit; its metrics still count every order, and
// metrics.orders_omitted says how many were left out.
const NestedBudget = 10_000

// fitting is how many of the orders (newest first), taken whole, fit in
// NestedBudget.
func fitting(orders []map[string]any) int {
	used := 0
	for i, o := range orders {
		items, _ := o["items"].([]map[string]any)
		if used += 1 + len(items); used > NestedBudget {
			return i
		}
	}
	return len(orders)
}

func sortedLive(rows []Row) []Row {
	out := make([]Row, 0, len(rows))
	for _, r := range rows {
		if !r.Deleted {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// decimal reads a JSON number (float64 after decoding, or a numeric string)
// as an exact decimal.
func decimal(v any) (*big.Rat, bool) {
	var s string
	switch n := v.(type) {
	case float64:
		s = strconv.FormatFloat(n, 'f', -1, 64)
	case string:
		s = n
	case int64:
		s = strconv.FormatInt(n, 10)
	case int:
		s = strconv.Itoa(n)
	default:
		return nil, false
	}
	r, ok := new(big.Rat).SetString(s)
	return r, ok
}

// earlier compares two RFC 3339 timestamps by instant, falling back to
// text order when one does not parse.
func earlier(a, b string) bool {
	ta, errA := time.Parse(time.RFC3339Nano, a)
	tb, errB := time.Parse(time.RFC3339Nano, b)
	if errA != nil || errB != nil {
		return a < b
	}
	return ta.Before(tb)
}

// FormatMillis renders epoch milliseconds as RFC 3339 in UTC.
func FormatMillis(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z")
}
