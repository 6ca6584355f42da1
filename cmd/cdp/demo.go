package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/IBM/sarama"
	"github.com/spf13/cobra"

	"cdp/config"
	"cdp/demo"
	"cdp/indexer"
)

// demoSegments are saved once the demo data is in, so the console's
// segments page has something to show.
var demoSegments = []map[string]any{
	{"name": "高价值客户 High value", "description": "消费总额超过 5,000", "filter": map[string]any{"field": "metrics.total_spend", "op": "gt", "value": 5000}},
	{"name": "上海女性 Women in Shanghai", "description": "", "filter": map[string]any{"all": []any{
		map[string]any{"field": "gender", "op": "eq", "value": "female"}, map[string]any{"field": "city", "op": "eq", "value": "上海"}}}},
	{"name": "近 7 天浏览未下单 Browsed, no order", "description": "最近 7 天浏览商品至少 1 次，30 天内没有已支付订单", "filter": map[string]any{"all": []any{
		map[string]any{"event": "view_product", "within": "7d", "op": "gte", "value": 1},
		map[string]any{"nested": "orders", "match": "none", "where": map[string]any{"all": []any{
			map[string]any{"field": "orders.status", "op": "eq", "value": "paid"},
			map[string]any{"field": "orders.created_at", "op": "in_last", "value": "30d"}}}}}}},
}

func newDemoCmd(cfg *config.Config) *cobra.Command {
	var api, key string
	var customers int
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Load the demo dataset through Kafka and wait until the API serves it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Minute)
			defer cancel()
			c := &apiClient{base: api, key: key}
			before, err := c.count(ctx)
			if err != nil {
				return fmt.Errorf("the API at %s does not answer: %w", api, err)
			}
			msgs := demo.Messages(demo.Config{Customers: customers, Seed: 1, Now: time.Now()}, cfg.Topic)
			if err := produce(cfg, msgs); err != nil {
				return err
			}
			fmt.Printf("Sent %d messages for %d demo customers; waiting for the indexer…\n", len(msgs), customers)
			last := time.Now()
			for {
				n, err := c.count(ctx)
				if err == nil && n >= int64(customers) {
					break
				}
				if time.Since(last) > 5*time.Second {
					fmt.Printf("  %d customers indexed\n", n)
					last = time.Now()
				}
				select {
				case <-ctx.Done():
					return fmt.Errorf("the demo customers never all appeared (%d of %d were there before): %w", before, customers, ctx.Err())
				case <-time.After(500 * time.Millisecond):
				}
			}
			for _, s := range demoSegments {
				if err := c.ensureSegment(ctx, s); err != nil {
					return err
				}
			}
			fmt.Printf("Demo dataset loaded (%d customers, %d segments).\n", customers, len(demoSegments))
			return nil
		},
	}
	cmd.Flags().StringVar(&api, "api", "http://127.0.0.1:8080", "base URL of the running API to wait on")
	cmd.Flags().StringVar(&key, "api-key", os.Getenv("CDP_API_KEY"), "API key to call the API with, an admin's (default $CDP_API_KEY)")
	cmd.Flags().IntVar(&customers, "customers", 10000, "how many customers to generate")
	return cmd
}

func produce(cfg *config.Config, msgs []*sarama.ProducerMessage) error {
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
	for len(msgs) > 0 {
		n := min(len(msgs), 5000)
		if err := p.SendMessages(msgs[:n]); err != nil {
			return fmt.Errorf("kafka: %w", err)
		}
		msgs = msgs[n:]
	}
	return nil
}

// apiClient is the little of the API the demo loader calls.
type apiClient struct{ base, key string }

func (c *apiClient) do(ctx context.Context, method, path string, body, out any) (int, error) {
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if out != nil {
		return resp.StatusCode, json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode, nil
}

func (c *apiClient) count(ctx context.Context) (int64, error) {
	var r struct{ Count int64 }
	_, err := c.do(ctx, http.MethodPost, "/v1/customers/count", map[string]any{"filter": map[string]any{"all": []any{}}}, &r)
	return r.Count, err
}

// ensureSegment saves s unless a segment of its name exists.
func (c *apiClient) ensureSegment(ctx context.Context, s map[string]any) error {
	var list struct {
		Segments []struct{ Name string } `json:"segments"`
	}
	if _, err := c.do(ctx, http.MethodGet, "/v1/segments", nil, &list); err != nil {
		return err
	}
	for _, x := range list.Segments {
		if x.Name == s["name"] {
			return nil
		}
	}
	_, err := c.do(ctx, http.MethodPost, "/v1/segments", s, nil)
	return err
}
