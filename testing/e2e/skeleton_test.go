package e2e_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"cdp/indexer"
	"cdp/testing/harness"
)

func getJSON(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(body) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatalf("%s: %v: %s", url, err, body)
		}
	}
	return resp.StatusCode, out
}

func send(t *testing.T, p sarama.SyncProducer, topic, key, value string) {
	t.Helper()
	if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(key), Value: sarama.StringEncoder(value)}); err != nil {
		t.Fatal(err)
	}
}

// The walking skeleton end to end: SDK events go through Kafka and the
// indexer into OpenSearch and come back out of the API, and a bad message
// in the stream neither stops it nor disappears.
func TestAnEventProducedToKafkaIsServedByTheAPI(t *testing.T) {
	env := harness.Services(t)
	cfg := env.Config(t)
	env.StartIndexer(t, cfg)
	srv := env.StartAPI(t, cfg)
	p := env.Producer(t)
	events := cfg.Topic(indexer.TopicEvents)

	send(t, p, events, "1001", `{"type":"identify","messageId":"m-1","timestamp":"2026-11-20T08:00:00Z","userId":"1001","anonymousId":"dev-9f2",
		"traits":{"name":"张三","phone":"13800000000","email":" Zhang@Example.com ","gender":"male","vip_card":"A-1"}}`)
	send(t, p, events, "1001", `{"type":"track"`) // invalid JSON: dead-lettered, the stream goes on
	send(t, p, events, "1001", `{"type":"track","messageId":"m-2","timestamp":"2026-11-20T08:05:00Z","userId":"1001",
		"event":"view_product","properties":{"sku":"p-7","category":"shoes","price":399},"context":{"channel":"miniprogram"}}`)

	var doc map[string]any
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		code, body := getJSON(t, srv.URL+"/v1/customers/lookup?type=crm_id&value=1001")
		doc = body
		if code != http.StatusOK {
			return false, fmt.Sprintf("lookup answered %d %v", code, body)
		}
		evs, _ := body["recent_events"].([]any)
		return len(evs) == 2, fmt.Sprintf("recent_events = %v", evs)
	})
	want := map[string]any{"name": "张三", "phone": "+8613800000000", "email": "zhang@example.com", "gender": "male"}
	for k, v := range want {
		if doc[k] != v {
			t.Errorf("%s = %v, want %v", k, doc[k], v)
		}
	}
	if attrs, _ := doc["attrs"].(map[string]any); attrs["vip_card"] != "A-1" {
		t.Errorf("attrs = %v, want the unknown trait vip_card under attrs", doc["attrs"])
	}
	metrics, _ := doc["metrics"].(map[string]any)
	if metrics["last_seen_at"] != "2026-11-20T08:05:00.000Z" || metrics["order_count"] != 0.0 || metrics["total_spend"] != 0.0 {
		t.Errorf("metrics = %v", metrics)
	}
	first := doc["recent_events"].([]any)[0].(map[string]any)
	if first["event"] != "view_product" || first["channel"] != "miniprogram" {
		t.Errorf("newest event = %v, want the view_product track", first)
	}

	cid := doc["customer_id"].(string)
	if code, byID := getJSON(t, srv.URL+"/v1/customers/"+cid); code != http.StatusOK || byID["name"] != "张三" {
		t.Errorf("GET by id: %d %v", code, byID)
	} else if evs, _ := byID["recent_events"].([]any); len(evs) != 2 || byID["segments"] == nil || byID["relation"] != nil {
		t.Errorf("GET by id: recent_events %v, segments %v, relation %v; want 2 events, [] and no join field", byID["recent_events"], byID["segments"], byID["relation"])
	}
	for _, q := range []string{"type=phone&value=13800000000", "type=email&value=ZHANG@example.com", "type=anonymous_id&value=dev-9f2"} {
		if code, body := getJSON(t, srv.URL+"/v1/customers/lookup?"+q); code != http.StatusOK || body["customer_id"] != cid {
			t.Errorf("lookup %s: %d %v", q, code, body)
		}
	}
	for _, id := range []string{"nobody", "m-2"} { // m-2 is an event's id in the same index
		if code, _ := getJSON(t, srv.URL+"/v1/customers/"+id); code != http.StatusNotFound {
			t.Errorf("GET /v1/customers/%s: %d, want 404", id, code)
		}
	}
	if _, ok := doc["relation"]; ok {
		t.Errorf("the join field leaks into the view: %v", doc["relation"])
	}
	if code, body := getJSON(t, srv.URL+"/v1/customers/lookup?type=shoe_size&value=42"); code != http.StatusBadRequest {
		t.Errorf("unknown identity type: %d %v, want 400", code, body)
	}

	letters := env.ReadTopic(t, cfg.Topic(indexer.TopicDLQ))
	if len(letters) != 1 {
		t.Fatalf("%d dead letters, want the one invalid message", len(letters))
	}
	dlq := string(letters[0].Value)
	if !strings.Contains(dlq, `"reason":"bad message: invalid JSON`) || !strings.Contains(dlq, `"offset":1`) {
		t.Errorf("dead letter = %s, want the invalid message with its reason and offset", dlq)
	}
}

func TestHealthReadinessAndMetricsAnswer(t *testing.T) {
	env := harness.Services(t)
	cfg := env.Config(t)
	srv := env.StartAPI(t, cfg)
	if code, _ := getJSON(t, srv.URL+"/healthz"); code != http.StatusOK {
		t.Errorf("healthz: %d", code)
	}
	code, body := getJSON(t, srv.URL+"/readyz")
	if code != http.StatusOK {
		t.Errorf("readyz: %d %v", code, body)
	}
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(text), "cdp_http_request_seconds") {
		t.Errorf("metrics lack the request histogram:\n%.500s", text)
	}
}
