package customer

import (
	"math/big"
	"sort"
	"strconv"
	"time"

	"cdp/identity"
)

// ProfileFields are the root fields a CRM row or an SDK identify may set.
var ProfileFields = []string{"name", "gender", "birthday", "phone", "email", "city", "member_level", "store_id", "owner_id"}

// customerColumns are the CRM columns with a place of their own in the
// document; every other column goes under attrs.
var customerColumns = map[string]bool{"id": true, "created_at": true, "updated_at": true}

func init() {
	for _, f := range ProfileFields {
		customerColumns[f] = true
	}
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
	var traits map[string]Trait
	if s.Profile != nil {
		traits = s.Profile.Traits
	}

	doc := map[string]any{"customer_id": customerID, "tags": []string{}}
	attrs := map[string]any{}
	var latest int64
	// later returns the newer of a CRM value and a trait, CRM on a tie.
	later := func(name string, crmHas bool, crmV any) (any, bool) {
		t, tOK := traits[name]
		switch {
		case tOK && (!crmHas || t.TS > crm.TS):
			return t.V, true
		case crmHas:
			return crmV, true
		}
		return nil, false
	}
	crmValue := func(col string) (any, bool) {
		if crm == nil {
			return nil, false
		}
		v, ok := crm.Data[col]
		return v, ok
	}
	for _, f := range ProfileFields {
		cv, has := crmValue(f)
		if v, ok := later(f, has, cv); ok && v != nil && v != "" {
			doc[f] = normalizeField(f, v)
		}
	}
	if v, ok := crmValue("created_at"); ok && v != nil {
		doc["registered_at"] = v
	} else if t, ok := traits["created_at"]; ok && t.V != nil {
		doc["registered_at"] = t.V
	}
	if crm != nil {
		latest = crm.TS
		for col, v := range crm.Data {
			if !customerColumns[col] {
				if w, ok := later(col, true, v); ok && w != nil {
					attrs[col] = w
				}
			}
		}
	}
	for name, t := range traits {
		latest = max(latest, t.TS)
		if _, done := attrs[name]; done || IsProfileField(name) || name == "created_at" || t.V == nil {
			continue
		}
		if _, crmHas := crmValue(name); !crmHas {
			attrs[name] = t.V
		}
	}
	doc["attrs"] = attrs
	doc["identities"] = identities(crm, s.Profile, doc)

	orders, metrics, ordersTS := buildOrders(s.Orders, s.Items)
	doc["orders"] = orders
	latest = max(latest, ordersTS)
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

// orderFields and itemFields are the columns copied into the document.
var (
	orderFields = []string{"order_no", "store_id", "status", "total_amount", "created_at", "paid_at"}
	itemFields  = []string{"sku", "product_name", "category", "quantity", "price"}
)

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
		o := map[string]any{"order_id": r.Key}
		copyFields(o, r.Data, orderFields)
		its := make([]map[string]any, 0)
		for _, it := range sortedLive(items[r.Key]) {
			latest = max(latest, it.TS)
			m := map[string]any{}
			copyFields(m, it.Data, itemFields)
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
	if first != "" {
		metrics["first_order_at"] = first
		metrics["last_order_at"] = last
	}
	return orders, metrics, latest
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

func copyFields(dst, src map[string]any, fields []string) {
	for _, f := range fields {
		if v, ok := src[f]; ok && v != nil {
			dst[f] = v
		}
	}
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
