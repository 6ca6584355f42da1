package schema

func l(zh, en string) Label { return Label{ZH: zh, EN: en} }

// keyword returns the mapping of a Keyword field with extra subfields.
func keyword(subfields map[string]any) map[string]any {
	m := TypeMapping(Keyword)
	for k, v := range subfields {
		m["fields"].(map[string]any)[k] = v
	}
	return m
}

// base is the catalog of the fixed customer document (CONTRACT §2), and
// the one place a field of it is declared: its mapping (package mapping),
// its catalog entry, the source column that sets it and that column's type
// all derive from its entry here.
var base = []Field{
	{Name: "customer_id", Label: l("客户ID", "Customer ID"), Type: Keyword, Sortable: true},
	{Name: "name", Label: l("姓名", "Name"), Type: Text, Column: "name", Mapping: map[string]any{
		"type": "text", "analyzer": "cjk", "fields": map[string]any{
			"keyword": map[string]any{"type": "keyword", "ignore_above": 256},
			"chars":   map[string]any{"type": "text", "analyzer": "standard"},
		}}},
	{Name: "gender", Label: l("性别", "Gender"), Type: Keyword, Sortable: true, Column: "gender", Candidates: []Candidate{
		{"male", l("男", "Male")}, {"female", l("女", "Female")},
	}},
	{Name: "birthday", Label: l("生日", "Birthday"), Type: Date, Day: true, Sortable: true, Column: "birthday"},
	{Name: "phone", Label: l("手机号", "Phone"), Type: Keyword, Sortable: true, Column: "phone", Mapping: keyword(map[string]any{
		"digits": map[string]any{"type": "text", "analyzer": "phone_digits"}, // four-digit fragments, for the search box
	})},
	{Name: "email", Label: l("邮箱", "Email"), Type: Keyword, Sortable: true, Column: "email"},
	{Name: "city", Label: l("城市", "City"), Type: Keyword, Sortable: true, Column: "city"},
	{Name: "member_level", Label: l("会员等级", "Member level"), Type: Keyword, Sortable: true, Column: "member_level"},
	{Name: "store_id", Label: l("门店", "Store"), Type: Keyword, Sortable: true, Column: "store_id"},
	{Name: "owner_id", Label: l("负责人", "Owner"), Type: Keyword, Sortable: true, Column: "owner_id"},
	{Name: "registered_at", Label: l("注册时间", "Registered at"), Type: Date, Sortable: true, Column: "created_at"},
	{Name: "updated_at", Label: l("更新时间", "Updated at"), Type: Date, Sortable: true},
	{Name: "tags", Label: l("标签", "Tags"), Type: KeywordArray, List: true},

	{Name: "metrics.order_count", Label: l("订单数", "Order count"), Type: Number, Sortable: true, Default: 0, Mapping: map[string]any{"type": "long"}},
	{Name: "metrics.total_spend", Label: l("消费总额", "Total spend"), Type: Number, Sortable: true, Default: 0},
	{Name: "metrics.first_order_at", Label: l("首单时间", "First order at"), Type: Date, Sortable: true},
	{Name: "metrics.last_order_at", Label: l("最近下单时间", "Last order at"), Type: Date, Sortable: true},
	{Name: "metrics.last_seen_at", Label: l("最近活跃时间", "Last seen at"), Type: Date, Sortable: true},
	// orders_omitted counts the oldest orders a document leaves out to stay
	// within NestedBudget (customer.Build); the metrics above count them.
	{Name: "metrics.orders_omitted", Label: l("未收入的订单数", "Orders left out of the document"), Type: Number, Sortable: true, Default: 0, Mapping: map[string]any{"type": "long"}},

	{Name: "orders", Label: l("订单", "Orders"), Type: Nested, List: true},
	{Name: "orders.order_id", Label: l("订单ID", "Order ID"), Type: Keyword, NestedPath: "orders", List: true, Column: "id"},
	{Name: "orders.order_no", Label: l("订单号", "Order number"), Type: Keyword, NestedPath: "orders", List: true, Column: "order_no"},
	{Name: "orders.store_id", Label: l("下单门店", "Order store"), Type: Keyword, NestedPath: "orders", List: true, Column: "store_id"},
	{Name: "orders.status", Label: l("订单状态", "Order status"), Type: Keyword, NestedPath: "orders", List: true, Column: "status", Candidates: []Candidate{
		{"created", l("已创建", "Created")}, {"paid", l("已支付", "Paid")},
		{"refunded", l("已退款", "Refunded")}, {"cancelled", l("已取消", "Cancelled")},
	}},
	{Name: "orders.total_amount", Label: l("订单金额", "Order amount"), Type: Number, NestedPath: "orders", List: true, Column: "total_amount"},
	{Name: "orders.created_at", Label: l("下单时间", "Ordered at"), Type: Date, NestedPath: "orders", List: true, Column: "created_at"},
	{Name: "orders.paid_at", Label: l("支付时间", "Paid at"), Type: Date, NestedPath: "orders", List: true, Column: "paid_at"},

	{Name: "orders.items", Label: l("订单商品", "Order items"), Type: Nested, NestedPath: "orders", List: true},
	{Name: "orders.items.sku", Label: l("商品SKU", "SKU"), Type: Keyword, NestedPath: "orders.items", List: true, Column: "sku"},
	{Name: "orders.items.product_name", Label: l("商品名称", "Product name"), Type: Text, NestedPath: "orders.items", List: true, Column: "product_name"},
	{Name: "orders.items.category", Label: l("商品品类", "Category"), Type: Keyword, NestedPath: "orders.items", List: true, Column: "category"},
	{Name: "orders.items.quantity", Label: l("购买数量", "Quantity"), Type: Number, NestedPath: "orders.items", List: true, Column: "quantity"},
	{Name: "orders.items.price", Label: l("商品单价", "Unit price"), Type: Number, NestedPath: "orders.items", List: true, Column: "price"},
}
