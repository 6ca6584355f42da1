// Package demo generates the demo dataset `make run` loads and the
// console's browser tests use: customers with Chinese and Latin names in
// real cities, their orders with items as Debezium changes, and SDK
// events, all timed relative to a given now so that "in the last 30 days"
// finds people. The same Config gives the same messages.
package demo

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/IBM/sarama"

	"cdp/indexer"
)

// Config is what to generate.
type Config struct {
	Customers int
	Seed      uint64
	// Now is the instant the dataset's times count back from.
	Now time.Time
	// FirstID is the CRM id of the first customer (default 100001).
	FirstID int
}

// Product is one item of the demo catalogue.
type Product struct {
	SKU, Name, Category string
	Price               float64
}

// Products is the demo catalogue: orders and product views pick from it.
var Products = []Product{
	{"SKU-1001", "轻跑鞋 Air", "shoes", 599}, {"SKU-1002", "帆布鞋", "shoes", 259}, {"SKU-1003", "Trail Runner Pro", "shoes", 899},
	{"SKU-2001", "真皮托特包", "bags", 1299}, {"SKU-2002", "Canvas Backpack", "bags", 349}, {"SKU-2003", "迷你斜挎包", "bags", 459},
	{"SKU-3001", "丝绒口红", "beauty", 229}, {"SKU-3002", "保湿面霜", "beauty", 399}, {"SKU-3003", "Vitamin C Serum", "beauty", 329},
	{"SKU-4001", "羊毛大衣", "apparel", 1899}, {"SKU-4002", "纯棉卫衣", "apparel", 299}, {"SKU-4003", "Denim Jacket", "apparel", 599},
	{"SKU-5001", "西湖龙井 250g", "food", 168}, {"SKU-5002", "Dark Chocolate Box", "food", 88}, {"SKU-5003", "云南小粒咖啡", "food", 79},
	{"SKU-6001", "香薰蜡烛", "home", 129}, {"SKU-6002", "Linen Bedding Set", "home", 699}, {"SKU-6003", "手冲咖啡壶", "home", 219},
	{"SKU-7001", "三体（全集）", "books", 98}, {"SKU-7002", "The Go Programming Language", "books", 119},
}

var (
	surnames    = []string{"王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭", "何", "高", "林", "罗", "欧阳", "司马"}
	femaleGiven = []string{"芳", "娜", "敏", "静", "丽", "艳", "娟", "秀英", "霞", "欣怡", "梓萱", "雨桐", "思彤", "佳怡", "晓雯"}
	maleGiven   = []string{"伟", "强", "磊", "军", "洋", "勇", "杰", "涛", "明", "超", "浩然", "雨泽", "子轩", "俊杰", "志强"}
	femaleLatin = []string{"Emily", "Olivia", "Sophia", "Mia", "Chloe", "Grace", "Emma", "Ava", "Lily", "Zoe"}
	maleLatin   = []string{"James", "Liam", "Noah", "Lucas", "Ethan", "Daniel", "Oliver", "Henry", "Leo", "Jack"}
	latinLast   = []string{"Chen", "Wang", "Smith", "Li", "Johnson", "Zhang", "Brown", "Liu", "Garcia", "Lee", "Müller", "Martin"}
	cities      = []string{"北京", "上海", "广州", "深圳", "杭州", "成都", "武汉", "南京", "西安", "重庆", "苏州", "天津", "长沙", "厦门", "青岛"}
	levels      = []string{"bronze", "bronze", "silver", "silver", "gold", "platinum"}
	domains     = []string{"example.com", "example.cn", "mail.example.org"}
	channels    = []string{"miniprogram", "app", "web"}
	mobile      = []string{"130", "133", "135", "136", "138", "139", "150", "152", "158", "186", "188", "199"}
	searches    = []string{"跑鞋", "口红", "backpack", "大衣", "咖啡", "gift"}
)

// Messages returns the dataset's Kafka messages; topic maps a topic
// suffix (indexer.TopicCustomers, …) to its full name.
func Messages(c Config, topic func(string) string) []*sarama.ProducerMessage {
	if c.FirstID == 0 {
		c.FirstID = 100001
	}
	r := rand.New(rand.NewPCG(c.Seed, c.Seed^0x5eed))
	now := c.Now.UTC().Truncate(time.Second)
	var out []*sarama.ProducerMessage
	send := func(t, key string, v map[string]any) {
		b, _ := json.Marshal(v)
		out = append(out, &sarama.ProducerMessage{Topic: topic(t), Key: sarama.StringEncoder(key), Value: sarama.ByteEncoder(b)})
	}
	lsn := int64(0)
	cdc := func(t string, id int, after map[string]any) {
		lsn++
		after["id"] = id
		send(t, strconv.Itoa(id), map[string]any{"before": nil, "after": after, "op": "r",
			"source": map[string]any{"lsn": lsn, "ts_ms": now.Add(-72 * time.Hour).UnixMilli()}})
	}
	pick := func(s []string) string { return s[r.IntN(len(s))] }
	// ago is a time up to max before now, more often recent.
	ago := func(max time.Duration) time.Time {
		f := r.Float64()
		return now.Add(-time.Duration(f * f * float64(max))).Truncate(time.Second)
	}
	ts := func(t time.Time) string { return t.Format(time.RFC3339) }
	orderID, itemID := c.FirstID*10, c.FirstID*100
	for i := 0; i < c.Customers; i++ {
		crm := c.FirstID + i
		female := r.IntN(2) == 0
		var name, email string
		if r.IntN(10) < 7 {
			given := maleGiven
			if female {
				given = femaleGiven
			}
			name = pick(surnames) + pick(given)
			email = fmt.Sprintf("user%d@%s", crm, pick(domains))
		} else {
			first := maleLatin
			if female {
				first = femaleLatin
			}
			f, l := pick(first), pick(latinLast)
			name = f + " " + l
			email = fmt.Sprintf("%s.%s%d@%s", f, l, crm%1000, pick(domains))
		}
		var gender any = "male"
		if female {
			gender = "female"
		}
		if r.IntN(12) == 0 {
			gender = nil
		}
		registered := ago(3 * 365 * 24 * time.Hour)
		cust := map[string]any{"name": name, "email": email, "gender": gender,
			"phone":    fmt.Sprintf("%s%08d", pick(mobile), (i*7919+1234567)%100_000_000),
			"birthday": time.Date(1965+r.IntN(40), time.Month(1+r.IntN(12)), 1+r.IntN(28), 0, 0, 0, 0, time.UTC).Format("2006-01-02"),
			"city":     pick(cities), "member_level": pick(levels), "store_id": fmt.Sprintf("s-%02d", 1+r.IntN(12)),
			"owner_id": nil, "created_at": ts(registered), "updated_at": ts(registered.Add(time.Hour)),
			"points": r.IntN(20000), "wechat_bound": r.IntN(3) > 0}
		if r.IntN(3) == 0 {
			cust["owner_id"] = fmt.Sprintf("sales-%02d", 1+r.IntN(8))
		}
		cdc(indexer.TopicCustomers, crm, cust)
		for n := orderCount(r); n > 0; n-- {
			orderID++
			created := ago(365 * 24 * time.Hour)
			status := "paid"
			switch x := r.IntN(10); {
			case x == 0:
				status = "created"
			case x == 1:
				status = "refunded"
			case x == 2:
				status = "cancelled"
			}
			total := 0.0
			for k := 1 + r.IntN(3); k > 0; k-- {
				itemID++
				p := Products[r.IntN(len(Products))]
				q := 1 + r.IntN(2)
				total += p.Price * float64(q)
				cdc(indexer.TopicOrderItems, itemID, map[string]any{"order_id": orderID, "sku": p.SKU, "product_name": p.Name,
					"category": p.Category, "quantity": q, "price": p.Price})
			}
			o := map[string]any{"customer_id": crm, "order_no": fmt.Sprintf("DM%d", orderID), "store_id": fmt.Sprintf("s-%02d", 1+r.IntN(12)),
				"status": status, "total_amount": total, "created_at": ts(created), "paid_at": nil}
			if status == "paid" || status == "refunded" {
				o["paid_at"] = ts(created.Add(time.Duration(1+r.IntN(1800)) * time.Second))
			}
			cdc(indexer.TopicOrders, orderID, o)
		}
		user := strconv.Itoa(crm)
		for j, n := 0, 1+r.IntN(6); j < n; j++ {
			at := ago(30 * 24 * time.Hour)
			ev := map[string]any{"type": "track", "messageId": fmt.Sprintf("demo-%d-%d", crm, j), "timestamp": ts(at),
				"userId": user, "anonymousId": "dev-" + user, "context": map[string]any{"channel": pick(channels)}}
			p := Products[r.IntN(len(Products))]
			switch x := r.IntN(10); {
			case x < 6:
				ev["event"], ev["properties"] = "view_product", map[string]any{"sku": p.SKU, "category": p.Category, "price": p.Price}
			case x < 8:
				ev["event"], ev["properties"] = "add_to_cart", map[string]any{"sku": p.SKU, "category": p.Category, "price": p.Price}
			case x < 9:
				ev["event"], ev["properties"] = "search", map[string]any{"keyword": pick(searches)}
			default:
				ev["event"], ev["properties"] = "share", map[string]any{"sku": p.SKU, "category": p.Category, "price": p.Price}
			}
			send(indexer.TopicEvents, user, ev)
		}
	}
	return out
}

// orderCount is how many orders one customer placed: a few have none,
// most one to three, some many.
func orderCount(r *rand.Rand) int {
	switch x := r.IntN(20); {
	case x < 3:
		return 0
	case x < 16:
		return 1 + r.IntN(3)
	default:
		return 4 + r.IntN(5)
	}
}
