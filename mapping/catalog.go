// Package mapping holds the field catalog and the OpenSearch index mappings
// built on it.
//
// Every searchable field of the customer document is declared exactly once,
// in the catalog below: its path, labels, type, whether it is list-valued or
// lives under a nested path, and its candidate values. The index mappings are
// JSON files embedded from this folder; mapping_test.go checks them against
// the catalog so that the two cannot drift apart. Filter validation and
// GET /v1/fields read the same catalog.
package mapping

import (
	"sort"
	"strings"
)

// Type is the filter-language type of a field (CONTRACT §2 and §3.1).
type Type string

// The field types of the filter language.
const (
	Keyword      Type = "keyword"
	Text         Type = "text"
	Number       Type = "number"
	Date         Type = "date"
	Boolean      Type = "boolean"
	KeywordArray Type = "keyword_array"
	Nested       Type = "nested"
)

// Operators lists the filter operators allowed for each type, in the order
// the contract gives them.
var Operators = map[Type][]string{
	Keyword:      {"eq", "neq", "in", "not_in", "contains", "not_contains", "starts_with", "is_set", "is_not_set"},
	Text:         {"matches", "not_matches", "is_set", "is_not_set"},
	Number:       {"eq", "neq", "gt", "gte", "lt", "lte", "between", "not_between", "in", "not_in", "is_set", "is_not_set"},
	Date:         {"on", "not_on", "before", "after", "between", "not_between", "in_last", "not_in_last", "is_set", "is_not_set"},
	Boolean:      {"eq", "neq", "is_set", "is_not_set"},
	KeywordArray: {"eq", "has_any", "in", "neq", "has_none", "not_in", "has_all", "is_set", "is_not_set"},
}

// Label is a field's display name in Chinese and English.
type Label struct {
	ZH string `json:"zh"`
	EN string `json:"en"`
}

// Candidate is one allowed value of a field with its display names.
type Candidate struct {
	Value string `json:"value"`
	Label Label  `json:"label"`
}

// Field is one entry of the catalog.
type Field struct {
	// Name is the full path from the document root, e.g. "orders.items.sku".
	Name  string `json:"name"`
	Label Label  `json:"label"`
	Type  Type   `json:"type"`
	// NestedPath is the innermost nested object the field lives in
	// ("orders" or "orders.items"), empty for root fields. For a field of
	// type Nested it is the path of the enclosing nested object, if any.
	NestedPath string `json:"nested,omitempty"`
	// List is true when the field can hold several values in one document:
	// keyword arrays and every field under a nested path.
	List bool `json:"list"`
	// Candidates are the declared values, if the field has a closed set.
	Candidates []Candidate `json:"candidates,omitempty"`
	// Sortable fields may be used in a search request's sort.
	Sortable bool `json:"sortable"`
	// Dynamic marks business fields under attrs.* declared at run time or
	// discovered at ingestion.
	Dynamic bool `json:"dynamic,omitempty"`
	// Default is the value a form pre-fills, if any.
	Default any `json:"default,omitempty"`
}

// Ops returns the operators allowed on the field.
func (f Field) Ops() []string { return Operators[f.Type] }

// AllowsOp reports whether op may be used on the field.
func (f Field) AllowsOp(op string) bool {
	for _, o := range Operators[f.Type] {
		if o == op {
			return true
		}
	}
	return false
}

func l(zh, en string) Label { return Label{ZH: zh, EN: en} }

// base is the catalog of the fixed customer document (CONTRACT §2).
var base = []Field{
	{Name: "customer_id", Label: l("客户ID", "Customer ID"), Type: Keyword, Sortable: true},
	{Name: "name", Label: l("姓名", "Name"), Type: Text},
	{Name: "gender", Label: l("性别", "Gender"), Type: Keyword, Sortable: true, Candidates: []Candidate{
		{"male", l("男", "Male")}, {"female", l("女", "Female")},
	}},
	{Name: "birthday", Label: l("生日", "Birthday"), Type: Date, Sortable: true},
	{Name: "phone", Label: l("手机号", "Phone"), Type: Keyword, Sortable: true},
	{Name: "email", Label: l("邮箱", "Email"), Type: Keyword, Sortable: true},
	{Name: "city", Label: l("城市", "City"), Type: Keyword, Sortable: true},
	{Name: "member_level", Label: l("会员等级", "Member level"), Type: Keyword, Sortable: true},
	{Name: "store_id", Label: l("门店", "Store"), Type: Keyword, Sortable: true},
	{Name: "owner_id", Label: l("负责人", "Owner"), Type: Keyword, Sortable: true},
	{Name: "registered_at", Label: l("注册时间", "Registered at"), Type: Date, Sortable: true},
	{Name: "updated_at", Label: l("更新时间", "Updated at"), Type: Date, Sortable: true},
	{Name: "tags", Label: l("标签", "Tags"), Type: KeywordArray, List: true},

	{Name: "metrics.order_count", Label: l("订单数", "Order count"), Type: Number, Sortable: true, Default: 0},
	{Name: "metrics.total_spend", Label: l("消费总额", "Total spend"), Type: Number, Sortable: true, Default: 0},
	{Name: "metrics.first_order_at", Label: l("首单时间", "First order at"), Type: Date, Sortable: true},
	{Name: "metrics.last_order_at", Label: l("最近下单时间", "Last order at"), Type: Date, Sortable: true},
	{Name: "metrics.last_seen_at", Label: l("最近活跃时间", "Last seen at"), Type: Date, Sortable: true},

	{Name: "orders", Label: l("订单", "Orders"), Type: Nested, List: true},
	{Name: "orders.order_id", Label: l("订单ID", "Order ID"), Type: Keyword, NestedPath: "orders", List: true},
	{Name: "orders.order_no", Label: l("订单号", "Order number"), Type: Keyword, NestedPath: "orders", List: true},
	{Name: "orders.store_id", Label: l("下单门店", "Order store"), Type: Keyword, NestedPath: "orders", List: true},
	{Name: "orders.status", Label: l("订单状态", "Order status"), Type: Keyword, NestedPath: "orders", List: true, Candidates: []Candidate{
		{"created", l("已创建", "Created")}, {"paid", l("已支付", "Paid")},
		{"refunded", l("已退款", "Refunded")}, {"cancelled", l("已取消", "Cancelled")},
	}},
	{Name: "orders.total_amount", Label: l("订单金额", "Order amount"), Type: Number, NestedPath: "orders", List: true},
	{Name: "orders.created_at", Label: l("下单时间", "Ordered at"), Type: Date, NestedPath: "orders", List: true},
	{Name: "orders.paid_at", Label: l("支付时间", "Paid at"), Type: Date, NestedPath: "orders", List: true},

	{Name: "orders.items", Label: l("订单商品", "Order items"), Type: Nested, NestedPath: "orders", List: true},
	{Name: "orders.items.sku", Label: l("商品SKU", "SKU"), Type: Keyword, NestedPath: "orders.items", List: true},
	{Name: "orders.items.product_name", Label: l("商品名称", "Product name"), Type: Text, NestedPath: "orders.items", List: true},
	{Name: "orders.items.category", Label: l("商品品类", "Category"), Type: Keyword, NestedPath: "orders.items", List: true},
	{Name: "orders.items.quantity", Label: l("购买数量", "Quantity"), Type: Number, NestedPath: "orders.items", List: true},
	{Name: "orders.items.price", Label: l("商品单价", "Unit price"), Type: Number, NestedPath: "orders.items", List: true},
}

// Catalog is a set of fields looked up by full path. The zero value is
// empty; Base returns the fixed catalog.
type Catalog struct {
	fields map[string]Field
}

// Base returns a catalog holding the fixed fields of the customer document.
func Base() *Catalog {
	c := &Catalog{fields: make(map[string]Field, len(base))}
	for _, f := range base {
		c.fields[f.Name] = f
	}
	return c
}

// Lookup returns the field named by its full path.
func (c *Catalog) Lookup(name string) (Field, bool) {
	f, ok := c.fields[name]
	return f, ok
}

// With returns a copy of the catalog that also holds the given fields
// (dynamic attrs fields, event properties).
func (c *Catalog) With(fields ...Field) *Catalog {
	n := &Catalog{fields: make(map[string]Field, len(c.fields)+len(fields))}
	for k, v := range c.fields {
		n.fields[k] = v
	}
	for _, f := range fields {
		n.fields[f.Name] = f
	}
	return n
}

// Fields returns every field, sorted by name.
func (c *Catalog) Fields() []Field {
	out := make([]Field, 0, len(c.fields))
	for _, f := range c.fields {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// NestedPaths are the nested objects of the customer document, outermost
// first.
var NestedPaths = []string{"orders", "orders.items"}

// AttrsPrefix is the path under which dynamic business fields live.
const AttrsPrefix = "attrs."

// IsAttr reports whether a path names a dynamic business field.
func IsAttr(path string) bool { return strings.HasPrefix(path, AttrsPrefix) }
