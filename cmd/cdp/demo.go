package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/IBM/sarama"
	"github.com/spf13/cobra"

	"cdp/config"
	"cdp/indexer"
)

// demoPeople is the small demo dataset `make run` loads.
var demoPeople = []struct {
	crm, name, phone, email, gender, city, level string
}{
	{"1001", "张三", "13800000000", "Zhang@Example.com", "male", "北京", "gold"},
	{"1002", "李四", "13800000001", "lisi@example.com", "male", "上海", "silver"},
	{"1003", "王芳", "13900000002", "wangfang@example.com", "female", "广州", "gold"},
	{"1004", "赵敏", "13700000003", "zhaomin@example.com", "female", "深圳", ""},
	{"1005", "Alice Chen", "+1 415 555 2671", "alice@example.com", "", "杭州", "bronze"},
	{"1006", "陈晨", "15000000005", "chenchen@example.com", "female", "北京", "silver"},
}

// demoMessages returns the demo dataset: each person's CRM row, orders and
// items as Debezium changes, and an identify plus a few track events from
// the SDK. Message ids and source positions are fixed, so loading it twice
// changes nothing.
func demoMessages(topic func(string) string, now time.Time) []*sarama.ProducerMessage {
	var out []*sarama.ProducerMessage
	send := func(t, key string, v map[string]any) {
		b, _ := json.Marshal(v)
		out = append(out, &sarama.ProducerMessage{Topic: topic(t), Key: sarama.StringEncoder(key), Value: sarama.ByteEncoder(b)})
	}
	add := func(key string, v map[string]any) { send(indexer.TopicEvents, key, v) }
	lsn := int64(1000)
	cdc := func(t string, id int, after map[string]any) {
		lsn++
		after["id"] = id
		send(t, fmt.Sprint(id), map[string]any{"before": nil, "after": after, "op": "r",
			"source": map[string]any{"lsn": lsn, "ts_ms": now.Add(-72 * time.Hour).UnixMilli()}})
	}
	categories := []string{"shoes", "bags", "apparel"}
	for i, p := range demoPeople {
		crm := 1001 + i
		cdc(indexer.TopicCustomers, crm, map[string]any{"name": p.name, "phone": p.phone, "email": p.email,
			"gender": nullable(p.gender), "city": p.city, "member_level": nullable(p.level), "store_id": fmt.Sprintf("s-%02d", i%3+1),
			"created_at": now.AddDate(-1, 0, -i).UTC().Format(time.RFC3339)})
		for j := 0; j <= i%3; j++ {
			order := crm*10 + j
			status := []string{"paid", "paid", "refunded"}[j]
			created := now.AddDate(0, 0, -(i+1)*(j+2)).UTC().Format(time.RFC3339)
			cdc(indexer.TopicOrders, order, map[string]any{"customer_id": crm, "order_no": fmt.Sprintf("NO-%d", order),
				"store_id": "s-01", "status": status, "total_amount": 199.5 + float64(100*i+10*j), "created_at": created, "paid_at": created})
			for k := 0; k < 2; k++ {
				cdc(indexer.TopicOrderItems, order*10+k, map[string]any{"order_id": order, "sku": fmt.Sprintf("p-%d", 7+k+j),
					"product_name": []string{"跑步鞋", "帆布包", "卫衣"}[(k+j)%3], "category": categories[(k+j)%3], "quantity": 1 + k, "price": 99.5})
			}
		}
	}
	for i, p := range demoPeople {
		day := now.AddDate(0, 0, -i-1).UTC().Truncate(time.Hour)
		traits := map[string]any{"name": p.name, "phone": p.phone, "email": p.email, "city": p.city, "favourite_channel": "miniprogram"}
		if p.gender != "" {
			traits["gender"] = p.gender
		}
		if p.level != "" {
			traits["member_level"] = p.level
		}
		add(p.crm, map[string]any{"type": "identify", "messageId": "demo-identify-" + p.crm, "timestamp": day.Format(time.RFC3339),
			"userId": p.crm, "anonymousId": "dev-" + p.crm, "traits": traits})
		for j, ev := range []string{"view_product", "add_to_cart", "view_product"} {
			add(p.crm, map[string]any{"type": "track", "messageId": fmt.Sprintf("demo-track-%s-%d", p.crm, j),
				"timestamp": day.Add(time.Duration(j+1) * time.Minute).Format(time.RFC3339),
				"userId":    p.crm, "anonymousId": "dev-" + p.crm, "event": ev,
				"properties": map[string]any{"sku": fmt.Sprintf("p-%d", 7+j), "category": "shoes", "price": 399 + j*100},
				"context":    map[string]any{"channel": "miniprogram"}})
		}
	}
	return out
}

func newDemoCmd(cfg *config.Config) *cobra.Command {
	var api, key string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Load the demo dataset through Kafka and wait until the API serves it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Minute)
			defer cancel()
			if err := produceDemo(cfg); err != nil {
				return err
			}
			url := fmt.Sprintf("%s/v1/customers/lookup?type=crm_id&value=%s", api, demoPeople[0].crm)
			if err := waitFor(ctx, url, key); err != nil {
				return fmt.Errorf("demo customer never appeared at %s: %w", url, err)
			}
			fmt.Printf("Demo dataset loaded (%d customers). Try:\n  curl -H \"Authorization: Bearer $CDP_API_KEY\" '%s'\n", len(demoPeople), url)
			return nil
		},
	}
	cmd.Flags().StringVar(&api, "api", "http://127.0.0.1:8080", "base URL of the running API to wait on")
	cmd.Flags().StringVar(&key, "api-key", os.Getenv("CDP_API_KEY"), "API key to call the API with (default $CDP_API_KEY)")
	return cmd
}

func produceDemo(cfg *config.Config) error {
	topics := make([]string, len(indexer.AllTopics))
	for i, t := range indexer.AllTopics {
		topics[i] = cfg.Topic(t)
	}
	if err := indexer.EnsureTopics(cfg.KafkaBrokers, topics, indexer.Partitions); err != nil {
		return err
	}
	p, err := sarama.NewSyncProducer(cfg.KafkaBrokers, indexer.KafkaConfig("cdp-demo"))
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	defer p.Close()
	return p.SendMessages(demoMessages(cfg.Topic, time.Now()))
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func waitFor(ctx context.Context, url, key string) error {
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}
