package membership_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"cdp/catalog"
	"cdp/config"
	"cdp/indexer"
	"cdp/mapping"
	"cdp/membership"
	"cdp/query"
	"cdp/query/querytest"
	"cdp/store"
	"cdp/testing/harness"
)

// client talks to one API under test.
type client struct {
	t   *testing.T
	url string
}

func (c client) do(method, path, body string) (int, map[string]any) {
	c.t.Helper()
	req, _ := http.NewRequest(method, c.url+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(data, &out)
	return resp.StatusCode, out
}

func (c client) must(want int, method, path, body string) map[string]any {
	c.t.Helper()
	code, out := c.do(method, path, body)
	if code != want {
		c.t.Fatalf("%s %s: %d %v, want %d", method, path, code, out, want)
	}
	return out
}

func errCode(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func TestTagRulesAreSavedReadListedUpdatedDeletedAndBadOnesRefused(t *testing.T) {
	t.Parallel()
	env := harness.Services(t)
	cfg := env.Config(t)
	c := client{t, env.StartAPI(t, cfg).URL}

	created := c.must(201, "POST", "/v1/tags", `{"name":"high_value","filter":{"field":"metrics.total_spend","op":"gte","value":1000},"description":"big"}`)
	for _, k := range []string{"name", "filter", "description", "created_at", "updated_at"} {
		if created[k] == nil {
			t.Errorf("created rule lacks %q: %v", k, created)
		}
	}
	if got := c.must(200, "GET", "/v1/tags/high_value", ""); got["description"] != "big" {
		t.Errorf("get: %v", got)
	}
	if list := c.must(200, "GET", "/v1/tags", ""); len(list["tags"].([]any)) != 1 {
		t.Errorf("list: %v", list)
	}
	upd := c.must(200, "PUT", "/v1/tags/high_value", `{"filter":{"field":"metrics.total_spend","op":"gte","value":2000}}`)
	if upd["created_at"] != created["created_at"] || upd["description"] != "big" {
		t.Errorf("update: %v", upd)
	}
	seg := c.must(201, "POST", "/v1/segments", `{"name":"women","filter":{"field":"gender","op":"eq","value":"female"}}`)["id"].(string)
	c.must(201, "POST", "/v1/tags", `{"name":"vip_women","filter":{"all":[{"segment":"`+seg+`"}]}}`)

	tests := []struct {
		name, method, path, body string
		status                   int
		code, inMessage          string
	}{
		{"a name with a space", "POST", "/v1/tags", `{"name":"high value","filter":{"all":[]}}`, 400, "invalid_request", "white space"},
		{"a name with a comma", "POST", "/v1/tags", `{"name":"a,b","filter":{"all":[]}}`, 400, "invalid_request", "commas"},
		{"an empty name", "POST", "/v1/tags", `{"name":"","filter":{"all":[]}}`, 400, "invalid_request", "1 to 64"},
		{"a name of 65 characters", "POST", "/v1/tags", `{"name":"` + strings.Repeat("标", 65) + `","filter":{"all":[]}}`, 400, "invalid_request", "64"},
		{"no filter", "POST", "/v1/tags", `{"name":"x"}`, 400, "invalid_filter", "required"},
		{"an unknown field", "POST", "/v1/tags", `{"name":"x","filter":{"field":"nope","op":"eq","value":1}}`, 400, "invalid_filter", "nope"},
		{"a missing segment", "POST", "/v1/tags", `{"name":"x","filter":{"segment":"seg_missing"}}`, 400, "invalid_filter", "seg_missing"},
		{"a name taken", "POST", "/v1/tags", `{"name":"high_value","filter":{"all":[]}}`, 409, "tag_exists", "high_value"},
		{"an empty body", "POST", "/v1/tags", ``, 400, "", ""},
		{"an unknown rule", "GET", "/v1/tags/nope", "", 404, "tag_not_found", "nope"},
		{"an update of an unknown rule", "PUT", "/v1/tags/nope", `{"filter":{"all":[]}}`, 404, "tag_not_found", "nope"},
		{"a rename", "PUT", "/v1/tags/high_value", `{"name":"other","filter":{"all":[]}}`, 400, "invalid_request", "renamed"},
		{"deleting a segment a rule names", "DELETE", "/v1/segments/" + seg, "", 409, "segment_in_use", "tag rule vip_women"},
		{"a manual tag with a rule's name", "POST", "/v1/customers/c1/tags", `{"add":["high_value"]}`, 409, "tag_is_rule", "high_value"},
		{"a manual tag with a comma", "POST", "/v1/customers/c1/tags", `{"add":["a,b"]}`, 400, "invalid_request", "commas"},
		{"manual tags of an unknown customer", "POST", "/v1/customers/nobody/tags", `{"add":["x"]}`, 404, "customer_not_found", "nobody"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := c.do(tt.method, tt.path, tt.body)
			if code != tt.status || errCode(body) != tt.code && tt.code != "" {
				t.Fatalf("%d %v, want %d %s", code, body, tt.status, tt.code)
			}
			if msg, _ := body["error"].(map[string]any)["message"].(string); !strings.Contains(msg, tt.inMessage) {
				t.Errorf("message %q does not say %q", msg, tt.inMessage)
			}
		})
	}
	if code, _ := c.do("DELETE", "/v1/tags/vip_women", ""); code != 204 {
		t.Fatalf("delete rule: %d", code)
	}
	if code, _ := c.do("GET", "/v1/tags/vip_women", ""); code != 404 {
		t.Fatalf("get after delete: %d", code)
	}
	if code, body := c.do("DELETE", "/v1/segments/"+seg, ""); code != 204 {
		t.Fatalf("the segment no rule names any more is deleted: %d %v", code, body)
	}
}

// msg is one Kafka message of a scenario.
type msg struct{ topic, key, value string }

func row(topic string, id any, r map[string]any, lsn int64) msg {
	r["id"] = id
	b, _ := json.Marshal(map[string]any{"op": "c", "after": r, "source": map[string]any{"lsn": lsn, "ts_ms": 1762000000000 + lsn}})
	return msg{topic, fmt.Sprint(id), string(b)}
}

// crmAndVisitor makes two profiles through the indexer, a CRM customer
// (crm, with name) and an anonymous visitor (device), not yet linked, and
// returns their customer ids.
func crmAndVisitor(t *testing.T, env *harness.Env, cfg *config.Config, p sarama.SyncProducer, crm int, name, device string) (crmID, anonID string) {
	t.Helper()
	produce(t, p, cfg,
		row(indexer.TopicCustomers, crm, map[string]any{"name": name}, 1),
		msg{indexer.TopicEvents, device, `{"type":"track","event":"view","messageId":"e-` + device + `","timestamp":"2026-11-20T08:00:00Z","anonymousId":"` + device + `"}`})
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		c, a := env.CustomerByIdentity(t, cfg, "crm_id", strconv.Itoa(crm)), env.CustomerByIdentity(t, cfg, "anonymous_id", device)
		if c == nil || a == nil {
			return false, "profiles not there yet"
		}
		crmID, anonID = c["customer_id"].(string), a["customer_id"].(string)
		return true, ""
	})
	return crmID, anonID
}

func produce(t *testing.T, p sarama.SyncProducer, cfg *config.Config, msgs ...msg) {
	t.Helper()
	for _, m := range msgs {
		if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: cfg.Topic(m.topic), Key: sarama.StringEncoder(m.key), Value: sarama.StringEncoder(m.value)}); err != nil {
			t.Fatal(err)
		}
	}
}

// published reads the membership topic, de-duplicated by message id, in
// the order of each customer's partition.
func published(t *testing.T, env *harness.Env, cfg *config.Config) []membership.Record {
	t.Helper()
	seen := map[string]bool{}
	var out []membership.Record
	msgs := env.ReadTopic(t, cfg.Topic(membership.TopicSuffix))
	slices.SortStableFunc(msgs, func(a, b *sarama.ConsumerMessage) int {
		if a.Partition != b.Partition {
			return int(a.Partition - b.Partition)
		}
		return int(a.Offset - b.Offset)
	})
	for _, m := range msgs {
		var r membership.Record
		if err := json.Unmarshal(m.Value, &r); err != nil {
			t.Fatalf("membership record is not JSON: %s", m.Value)
		}
		if string(m.Key) != r.CustomerID {
			t.Errorf("record keyed %q for customer %q", m.Key, r.CustomerID)
		}
		if !seen[r.MessageID] {
			seen[r.MessageID] = true
			out = append(out, r)
		}
	}
	return out
}

// net replays records: the members each definition has after them, and
// an error for any entered or exited that does not alternate.
func net(recs []membership.Record, cause string) (map[string]map[string]bool, error) {
	in := map[string]map[string]bool{}
	for _, r := range recs {
		if cause != "" && r.Cause != cause {
			continue
		}
		k := r.Kind + ":" + r.ID
		if in[k] == nil {
			in[k] = map[string]bool{}
		}
		switch {
		case r.Type == "entered" && !in[k][r.CustomerID]:
			in[k][r.CustomerID] = true
		case r.Type == "exited" && in[k][r.CustomerID]:
			delete(in[k], r.CustomerID)
		default:
			return nil, fmt.Errorf("%s %s for %s does not alternate", r.Type, k, r.CustomerID)
		}
	}
	return in, nil
}

type def struct {
	kind, id string
	filter   string
}

// truth evaluates definitions over every customer document with the
// independent evaluator (querytest): key → members.
func truth(t *testing.T, env *harness.Env, cfg *config.Config, defs []def) (map[string]map[string]bool, []map[string]any) {
	t.Helper()
	cat, err := catalog.New(env.Store(t), mapping.Fields.Alias(cfg.IndexPrefix)).Catalog(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	segs := map[string]json.RawMessage{}
	for _, d := range defs {
		if d.kind == membership.KindSegment {
			segs[d.id] = json.RawMessage(d.filter)
		}
	}
	docs := env.AllCustomers(t, cfg)
	out := map[string]map[string]bool{}
	opts := query.Options{Now: time.Now(), Location: cfg.Location}
	for _, d := range defs {
		f, err := (&query.Parser{Catalog: cat, Segments: resolver(segs)}).Parse([]byte(d.filter))
		if err != nil {
			t.Fatalf("%s: %v", d.filter, err)
		}
		k := d.kind + ":" + d.id
		out[k] = map[string]bool{}
		for _, doc := range docs {
			if querytest.Eval(f, doc, nil, opts) {
				out[k][doc["customer_id"].(string)] = true
			}
		}
	}
	return out, docs
}

type resolver map[string]json.RawMessage

func (r resolver) Segment(id string) (json.RawMessage, bool, error) {
	f, ok := r[id]
	return f, ok, nil
}

// stored reads the membership index: key → members, and manual tags.
func stored(t *testing.T, env *harness.Env, cfg *config.Config) (map[string]map[string]bool, map[string][]string) {
	t.Helper()
	st := env.Store(t)
	idx := mapping.Membership.Alias(cfg.IndexPrefix)
	if err := st.Refresh(context.Background(), idx); err != nil {
		t.Fatal(err)
	}
	res, err := st.Search(context.Background(), idx, map[string]any{"size": 10000})
	if err != nil {
		t.Fatal(err)
	}
	out, manual := map[string]map[string]bool{}, map[string][]string{}
	add := func(k, cid string) {
		if out[k] == nil {
			out[k] = map[string]bool{}
		}
		out[k][cid] = true
	}
	for _, h := range res.Hits {
		var s membership.State
		if err := h.Decode(&s); err != nil {
			t.Fatal(err)
		}
		for _, id := range s.Segments {
			add("segment:"+id, s.CustomerID)
		}
		for _, id := range s.Rules {
			add("tag:"+id, s.CustomerID)
		}
		manual[s.CustomerID] = s.Manual
	}
	return out, manual
}

// same compares two key → members maps over the keys of want.
func same(got, want map[string]map[string]bool) string {
	for k, w := range want {
		g := got[k]
		for cid := range w {
			if !g[cid] {
				return fmt.Sprintf("%s: %s missing", k, cid)
			}
		}
		for cid := range g {
			if !w[cid] {
				return fmt.Sprintf("%s: %s extra", k, cid)
			}
		}
	}
	return ""
}

func TestMembershipFollowsIngestionDefinitionsAndTheIndependentEvaluator(t *testing.T) {
	t.Parallel()
	env := harness.Services(t)
	cfg := env.Config(t)
	env.StartIndexer(t, cfg)
	c := client{t, env.StartAPI(t, cfg).URL}
	p := env.Producer(t)

	// The definitions are saved before any customer: their creation
	// publishes nobody, and every entered after it is caused by a change.
	defs := []def{
		{membership.KindSegment, "", `{"field":"gender","op":"eq","value":"female"}`},
		{membership.KindSegment, "", `{"field":"metrics.total_spend","op":"gte","value":500}`},
		{membership.KindSegment, "", `{"any":[{"field":"city","op":"in","value":["北京","上海"]},{"field":"member_level","op":"neq","value":"gold"}]}`},
		{membership.KindSegment, "", `{"nested":"orders","match":"any","where":{"all":[{"field":"orders.status","op":"eq","value":"paid"},{"field":"orders.total_amount","op":"gt","value":300}]}}`},
		{membership.KindTag, "big_spender", `{"field":"metrics.total_spend","op":"gte","value":800}`},
		{membership.KindTag, "gold_woman", `{"all":[{"field":"member_level","op":"eq","value":"gold"},{"field":"gender","op":"eq","value":"female"}]}`},
	}
	for i := range defs {
		d := &defs[i]
		if d.kind == membership.KindSegment {
			d.id = c.must(201, "POST", "/v1/segments", `{"name":"s`+fmt.Sprint(i)+`","filter":`+d.filter+`}`)["id"].(string)
		} else {
			c.must(201, "POST", "/v1/tags", `{"name":"`+d.id+`","filter":`+d.filter+`}`)
		}
	}
	// A segment naming a rule's tag and another segment.
	defs = append(defs, def{membership.KindSegment, "", `{"all":[{"field":"tags","op":"has_any","value":["big_spender"]},{"segment":"` + defs[0].id + `"}]}`})
	last := &defs[len(defs)-1]
	last.id = c.must(201, "POST", "/v1/segments", `{"name":"rich women","filter":`+last.filter+`}`)["id"].(string)

	rng := rand.New(rand.NewPCG(14, 2))
	var msgs []msg
	lsn := int64(1)
	const customers = 40
	for i := 1; i <= customers; i++ {
		r := map[string]any{"name": fmt.Sprintf("客户%d", i), "gender": []any{"male", "female", nil}[rng.IntN(3)],
			"city": []string{"北京", "上海", "深圳"}[rng.IntN(3)], "member_level": []string{"gold", "silver"}[rng.IntN(2)]}
		msgs = append(msgs, row(indexer.TopicCustomers, 1000+i, r, lsn))
		lsn++
		for j := range rng.IntN(3) {
			msgs = append(msgs, row(indexer.TopicOrders, 100*i+j, map[string]any{"customer_id": 1000 + i, "order_no": fmt.Sprintf("n%d-%d", i, j),
				"status": []string{"paid", "created", "refunded"}[rng.IntN(3)], "total_amount": float64(rng.IntN(60)) * 10,
				"created_at": "2026-11-01T00:00:00Z"}, lsn))
			lsn++
		}
	}
	produce(t, p, cfg, msgs...)
	env.WaitIdle(t, cfg, 60*time.Second)

	// Stored membership and every document's tags are what the
	// independent evaluator says; the topic says the same, once each.
	harness.Eventually(t, 30*time.Second, func() (bool, string) { return agree(t, env, cfg, defs, customers, true) })

	// A paid order pushing a customer over the spend threshold: entered,
	// soon.
	spend := "segment:" + defs[1].id
	want, _ := truth(t, env, cfg, defs)
	var poor string
	for i := 1; i <= customers; i++ {
		if cid := customerID(t, env, cfg, 1000+i); !want[spend][cid] {
			poor = cid
			produce(t, p, cfg, row(indexer.TopicOrders, 99000+i, map[string]any{"customer_id": 1000 + i, "order_no": "big",
				"status": "paid", "total_amount": 5000, "created_at": "2026-11-02T00:00:00Z"}, lsn))
			lsn++
			break
		}
	}
	start := time.Now()
	harness.Eventually(t, 10*time.Second, func() (bool, string) {
		for _, r := range published(t, env, cfg) {
			if r.CustomerID == poor && r.Kind == "segment" && r.ID == defs[1].id && r.Type == "entered" {
				return true, ""
			}
		}
		return false, "no entered for " + poor
	})
	t.Logf("entered published %s after the order was produced", time.Since(start).Round(time.Millisecond))

	// Manual tags join the rules' in the document and survive rebuilds.
	c.must(200, "POST", "/v1/customers/"+poor+"/tags", `{"add":["called","wechat"]}`)
	c.must(200, "POST", "/v1/customers/"+poor+"/tags", `{"remove":["wechat"]}`)
	harness.Eventually(t, 10*time.Second, func() (bool, string) {
		_, body := c.do("GET", "/v1/customers/"+poor, "")
		tags := fmt.Sprint(body["tags"])
		return tags == "[big_spender called]", "tags " + tags
	})

	// Editing a segment publishes exactly the differences; deleting one
	// publishes exited for every member.
	before := published(t, env, cfg)
	old, _ := truth(t, env, cfg, defs)
	defs[0].filter = `{"field":"gender","op":"is_not_set"}`
	c.must(200, "PUT", "/v1/segments/"+defs[0].id, `{"name":"s0","filter":`+defs[0].filter+`}`)
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		now, _ := truth(t, env, cfg, defs)
		got, _ := stored(t, env, cfg)
		if d := same(got, now); d != "" {
			return false, "stored: " + d
		}
		recs := since(before, published(t, env, cfg))
		k := "segment:" + defs[0].id
		var flips int
		for _, r := range recs {
			if r.Kind+":"+r.ID != k {
				continue
			}
			flips++
			if r.Cause != membership.CauseDefinition || (r.Type == "entered") == old[k][r.CustomerID] {
				return false, fmt.Sprintf("record %+v is not a difference", r)
			}
		}
		if diff := len(symmetric(old[k], now[k])); flips != diff {
			return false, fmt.Sprintf("%d records for %d differences", flips, diff)
		}
		return true, ""
	})
	members, _ := truth(t, env, cfg, defs[1:2])
	before = published(t, env, cfg)
	c.must(204, "DELETE", "/v1/segments/"+defs[1].id, "")
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		exited := map[string]bool{}
		for _, r := range since(before, published(t, env, cfg)) {
			if r.ID == defs[1].id && r.Type == "exited" && r.Cause == membership.CauseDefinition {
				exited[r.CustomerID] = true
			}
		}
		if d := same(map[string]map[string]bool{"x": exited}, map[string]map[string]bool{"x": members[spend]}); d != "" {
			return false, d
		}
		return true, ""
	})

	// A rule created over existing customers: its members enter, by
	// definition, and their documents carry the tag.
	rule := def{membership.KindTag, "silver", `{"field":"member_level","op":"eq","value":"silver"}`}
	before = published(t, env, cfg)
	c.must(201, "POST", "/v1/tags", `{"name":"silver","filter":`+rule.filter+`}`)
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		want, docs := truth(t, env, cfg, []def{rule})
		entered := map[string]bool{}
		for _, r := range since(before, published(t, env, cfg)) {
			if r.Kind == "tag" && r.ID == "silver" && r.Type == "entered" && r.Cause == membership.CauseDefinition {
				entered[r.CustomerID] = true
			}
		}
		if d := same(map[string]map[string]bool{"tag:silver": entered}, want); d != "" {
			return false, "published: " + d
		}
		for _, doc := range docs {
			cid := doc["customer_id"].(string)
			if has := slices.Contains(doc["tags"].([]any), any("silver")); has != want["tag:silver"][cid] {
				return false, fmt.Sprintf("%s tags %v", cid, doc["tags"])
			}
		}
		return true, ""
	})
}

// since are the records of now that before does not hold.
func since(before, now []membership.Record) []membership.Record {
	old := map[string]bool{}
	for _, r := range before {
		old[r.MessageID] = true
	}
	return slices.DeleteFunc(now, func(r membership.Record) bool { return old[r.MessageID] })
}

// agree says whether stored membership, the documents' tags and the
// membership topic all equal what the independent evaluator says of the
// definitions. With onlyEntered, every record must be an entered caused by
// a change: definitions whose truth only grows as a customer's rows
// arrive. Others (a "not", a "none") may see a customer enter and leave
// while its rows arrive one batch after another; their records must still
// alternate and replay to the truth.
func agree(t *testing.T, env *harness.Env, cfg *config.Config, defs []def, customers int, onlyEntered bool) (bool, string) {
	want, docs := truth(t, env, cfg, defs)
	if len(docs) != customers {
		return false, fmt.Sprintf("%d documents, want %d", len(docs), customers)
	}
	got, _ := stored(t, env, cfg)
	if d := same(got, want); d != "" {
		return false, "stored: " + d
	}
	for _, doc := range docs {
		cid := doc["customer_id"].(string)
		tags := []string{}
		for _, x := range doc["tags"].([]any) {
			tags = append(tags, x.(string))
		}
		rules := []string{}
		for _, d := range defs {
			if d.kind == membership.KindTag && want["tag:"+d.id][cid] {
				rules = append(rules, d.id)
			}
		}
		slices.Sort(rules)
		if !slices.Equal(tags, rules) {
			return false, fmt.Sprintf("%s has tags %v, want %v", cid, tags, rules)
		}
	}
	recs := published(t, env, cfg)
	pub, err := net(recs, "")
	if err != nil {
		return false, err.Error()
	}
	if d := same(pub, want); d != "" {
		return false, "published: " + d
	}
	for _, r := range recs {
		if r.Cause != membership.CauseChange || onlyEntered && r.Type != "entered" {
			return false, fmt.Sprintf("record %+v: want only entered by change", r)
		}
	}
	return true, ""
}

func symmetric(a, b map[string]bool) []string {
	var out []string
	for k := range a {
		if !b[k] {
			out = append(out, k)
		}
	}
	for k := range b {
		if !a[k] {
			out = append(out, k)
		}
	}
	return out
}

// customerID finds the customer id of a CRM id.
func customerID(t *testing.T, env *harness.Env, cfg *config.Config, crm int) string {
	t.Helper()
	doc := env.CustomerByIdentity(t, cfg, "crm_id", fmt.Sprint(crm))
	if doc == nil {
		t.Fatalf("no customer for crm %d", crm)
	}
	return doc["customer_id"].(string)
}

// failing is a publisher whose sends all fail: a process that dies after
// storing a change and before publishing it.
type failing struct{}

func (failing) SendMessages([]*sarama.ProducerMessage) error { return fmt.Errorf("broker gone") }

func TestRecordsStoredButNotPublishedAreRepublishedOnceWithTheirMessageIDs(t *testing.T) {
	t.Parallel()
	env := harness.Services(t)
	cfg := env.Config(t)
	env.Bootstrap(t, cfg)
	env.CreateTopics(t, cfg)
	st := env.Store(t)
	ctx := context.Background()
	mcfg := membership.ConfigOf(cfg)
	for _, op := range []struct{ index, id, body string }{
		{mcfg.Segments, "seg_women", `{"id":"seg_women","name":"women","filter":{"field":"gender","op":"eq","value":"female"},"refs":[]}`},
		{mcfg.Customers, "c1", `{"customer_id":"c1","relation":"customer","gender":"female","tags":[]}`},
		{mcfg.Customers, "c2", `{"customer_id":"c2","relation":"customer","gender":"male","tags":[]}`},
	} {
		if err := st.Do(ctx, http.MethodPut, "/"+op.index+"/_doc/"+op.id+"?refresh=true", json.RawMessage(op.body), nil); err != nil {
			t.Fatal(err)
		}
	}
	crashed := membership.New(mcfg, st, failing{}, prometheusRegistry(), harness.Logger())
	if _, err := crashed.Changed(ctx, []string{"c1", "c2"}, membership.Merges{}); err == nil {
		t.Fatal("publishing through a dead broker succeeded")
	}
	s, err := crashed.State(ctx, "c1")
	if err != nil || !slices.Equal(s.Segments, []string{"seg_women"}) || len(s.Pending) != 1 {
		t.Fatalf("the change is not stored with its record pending: %+v %v", s, err)
	}
	pending := s.Pending[0]

	restarted := membership.New(mcfg, st, env.Producer(t), prometheusRegistry(), harness.Logger())
	// A second evaluation of the same customers finds nothing new to flip.
	if _, err := restarted.Changed(ctx, []string{"c1", "c2"}, membership.Merges{}); err != nil {
		t.Fatal(err)
	}
	if n, err := restarted.Republish(ctx); err != nil || n != 0 {
		t.Fatalf("republish after the records went out: %d %v, want none left", n, err)
	}
	recs := env.ReadTopic(t, cfg.Topic(membership.TopicSuffix))
	if len(recs) != 1 {
		t.Fatalf("%d records, want the one pending", len(recs))
	}
	var got membership.Record
	_ = json.Unmarshal(recs[0].Value, &got)
	if got != pending || got.Type != "entered" || got.CustomerID != "c1" || got.Cause != membership.CauseChange {
		t.Errorf("published %+v, want the pending %+v", got, pending)
	}
	if s, _ := restarted.State(ctx, "c1"); s.PendingCount != 0 || len(s.Pending) != 0 {
		t.Errorf("still pending after publishing: %+v", s)
	}
}

func prometheusRegistry() *prometheus.Registry { return prometheus.NewRegistry() }

func TestAnOrderAgeingOutOfAnHourWindowExitsWithinAMinuteOfTheEdge(t *testing.T) {
	t.Parallel()
	env := harness.Services(t)
	cfg := env.Config(t)
	env.StartIndexer(t, cfg)
	c := client{t, env.StartAPI(t, cfg).URL}
	p := env.Producer(t)
	seg := c.must(201, "POST", "/v1/segments", `{"name":"ordered this hour","filter":{"field":"metrics.last_order_at","op":"in_last","value":"1h"}}`)["id"].(string)
	c.must(201, "POST", "/v1/tags", `{"name":"recent_buyer","filter":{"segment":"`+seg+`"}}`)

	created := time.Now().Add(-time.Hour + 15*time.Second).UTC().Truncate(time.Millisecond)
	edge := created.Add(time.Hour)
	produce(t, p, cfg,
		row(indexer.TopicCustomers, 7, map[string]any{"name": "王五"}, 1),
		row(indexer.TopicOrders, 70, map[string]any{"customer_id": 7, "order_no": "o70", "status": "paid", "total_amount": 10,
			"created_at": created.Format(time.RFC3339Nano)}, 2))
	find := func(kind, id, typ string) *membership.Record {
		for _, r := range published(t, env, cfg) {
			if r.Kind == kind && r.ID == id && r.Type == typ {
				return &r
			}
		}
		return nil
	}
	harness.Eventually(t, 10*time.Second, func() (bool, string) {
		return find("segment", seg, "entered") != nil && find("tag", "recent_buyer", "entered") != nil, "not entered yet"
	})
	if time.Now().After(edge) {
		t.Skip("the machine is too slow to see the customer enter before the edge")
	}
	harness.Eventually(t, time.Until(edge)+60*time.Second, func() (bool, string) {
		return find("segment", seg, "exited") != nil && find("tag", "recent_buyer", "exited") != nil, "not exited yet"
	})
	for _, k := range []struct{ kind, id string }{{"segment", seg}, {"tag", "recent_buyer"}} {
		r := find(k.kind, k.id, "exited")
		at, _ := time.Parse(time.RFC3339Nano, r.At)
		if r.Cause != membership.CauseTime || at.Before(edge) || at.After(edge.Add(60*time.Second)) {
			t.Errorf("%s %s exited %+v, want cause time within 60 s after %s", k.kind, k.id, r, edge)
		}
	}
	cid := customerID(t, env, cfg, 7)
	harness.Eventually(t, 10*time.Second, func() (bool, string) {
		_, body := c.do("GET", "/v1/customers/"+cid, "")
		return fmt.Sprint(body["tags"]) == "[]" && fmt.Sprint(body["segments"]) == "[]", fmt.Sprintf("tags %v segments %v", body["tags"], body["segments"])
	})
}

func TestAMergePublishesTheSurvivorsFlipsWithCauseMergeAndTheSurvivorTakesTheManualTags(t *testing.T) {
	t.Parallel()
	env := harness.Services(t)
	cfg := env.Config(t)
	env.StartIndexer(t, cfg)
	c := client{t, env.StartAPI(t, cfg).URL}
	p := env.Producer(t)
	called := c.must(201, "POST", "/v1/segments", `{"name":"called","filter":{"field":"tags","op":"has_any","value":["called"]}}`)["id"].(string)

	crmID, anonID := crmAndVisitor(t, env, cfg, p, 9101, "李四", "dev-91")
	c.must(200, "POST", "/v1/customers/"+anonID+"/tags", `{"add":["called"]}`)
	var before []membership.Record
	harness.Eventually(t, 10*time.Second, func() (bool, string) {
		before = published(t, env, cfg)
		return len(before) == 1 && before[0].CustomerID == anonID && before[0].Type == "entered", fmt.Sprintf("records %+v", before)
	})

	// The visitor logs in: its profile merges into the CRM one.
	produce(t, p, cfg, msg{indexer.TopicEvents, "dev-91", `{"type":"identify","messageId":"i-91","timestamp":"2026-11-20T08:03:00Z","userId":"9101","anonymousId":"dev-91"}`})
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		var flips []string
		for _, r := range since(before, published(t, env, cfg)) {
			flips = append(flips, fmt.Sprintf("%s %s %s %s", r.CustomerID, r.Type, r.ID, r.Cause))
		}
		slices.Sort(flips)
		want := []string{anonID + " exited " + called + " merge", crmID + " entered " + called + " merge"}
		slices.Sort(want)
		_, view := c.do("GET", "/v1/customers/"+crmID, "")
		return slices.Equal(flips, want), fmt.Sprintf("flips %v, want %v; survivor %v tags %v merged %v", flips, want, view["customer_id"], view["tags"], view["merged_ids"])
	})
	_, view := c.do("GET", "/v1/customers/"+crmID, "")
	if fmt.Sprint(view["tags"]) != "[called]" || fmt.Sprint(view["segments"]) != "["+called+"]" {
		t.Errorf("survivor tags %v segments %v, want the merged-away profile's manual tag and its segment", view["tags"], view["segments"])
	}
	// The tag is the survivor's own now: removing it removes it for good.
	c.must(200, "POST", "/v1/customers/"+crmID+"/tags", `{"remove":["called"]}`)
	harness.Eventually(t, 10*time.Second, func() (bool, string) {
		_, view := c.do("GET", "/v1/customers/"+crmID, "")
		return fmt.Sprint(view["tags"]) == "[]", fmt.Sprintf("tags %v", view["tags"])
	})
}

func TestAMergeWithNoDefinitionsSavedStillMovesTheManualTagsToTheSurvivor(t *testing.T) {
	t.Parallel()
	env := harness.Services(t)
	cfg := env.Config(t)
	env.StartIndexer(t, cfg)
	c := client{t, env.StartAPI(t, cfg).URL}
	p := env.Producer(t)
	// No segment or tag rule is saved: nothing can flip, yet the merge
	// must carry the visitor's manual tag over.
	crmID, anonID := crmAndVisitor(t, env, cfg, p, 9201, "王五", "dev-92")
	c.must(200, "POST", "/v1/customers/"+anonID+"/tags", `{"add":["vip-call"]}`)

	produce(t, p, cfg, msg{indexer.TopicEvents, "dev-92", `{"type":"identify","messageId":"i-92","timestamp":"2026-11-20T08:03:00Z","userId":"9201","anonymousId":"dev-92"}`})
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		_, view := c.do("GET", "/v1/customers/"+crmID, "")
		return fmt.Sprint(view["tags"]) == "[vip-call]" && fmt.Sprint(view["merged_ids"]) == "["+anonID+"]",
			fmt.Sprintf("survivor tags %v merged %v, want [vip-call] and [%s]", view["tags"], view["merged_ids"], anonID)
	})
	// The tag is filterable on the survivor, and on it alone.
	out := c.must(200, "POST", "/v1/customers/search", `{"filter":{"field":"tags","op":"has_any","value":["vip-call"]}}`)
	if hits, _ := out["customers"].([]any); len(hits) != 1 || hits[0].(map[string]any)["customer_id"] != crmID {
		t.Errorf("customers tagged vip-call: %v, want only the survivor %s", out["customers"], crmID)
	}
	// The survivor owns the tag now: removed, it stays removed through
	// the survivor's next rebuilds, which read its merged profiles too.
	c.must(200, "POST", "/v1/customers/"+crmID+"/tags", `{"remove":["vip-call"]}`)
	produce(t, p, cfg, row(indexer.TopicCustomers, 9201, map[string]any{"name": "王五五"}, 2))
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		_, view := c.do("GET", "/v1/customers/"+crmID, "")
		return view["name"] == "王五五", fmt.Sprintf("survivor %v not rebuilt yet", view["name"])
	})
	if _, view := c.do("GET", "/v1/customers/"+crmID, ""); fmt.Sprint(view["tags"]) != "[]" {
		t.Errorf("survivor tags %v after removing vip-call and a rebuild, want []", view["tags"])
	}
}

func TestRandomSegmentsAndRulesAgreeWithTheIndependentEvaluatorAfterIngestion(t *testing.T) {
	t.Parallel()
	env := harness.Services(t)
	cfg := env.Config(t)
	env.StartIndexer(t, cfg)
	c := client{t, env.StartAPI(t, cfg).URL}
	p := env.Producer(t)

	// The differential test's generator draws the customers (their CRM
	// and order rows go through the real indexer) and then the filters,
	// whose values come from those customers.
	seed := uint64(42)
	if s, err := strconv.ParseUint(os.Getenv("CDP_MEMBERSHIP_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("seed %d (CDP_MEMBERSHIP_SEED)", seed)
	g := querytest.NewGenerator(seed, time.Now())
	const customers = 30
	lsn := int64(1)
	// rows are the CDC rows of customer i as the generator draws it now:
	// its profile, its orders and, with items, their items.
	rows := func(i int, items bool) []msg {
		doc := g.Customer(fmt.Sprint(2000 + i)).Doc
		pick := func(from map[string]any, keys []string, into map[string]any) map[string]any {
			for _, k := range keys {
				if v, ok := from[k]; ok {
					into[k] = v
				}
			}
			return into
		}
		out := []msg{row(indexer.TopicCustomers, 2000+i, pick(doc, []string{"name", "gender", "birthday", "city", "member_level", "store_id", "owner_id"}, map[string]any{}), lsn)}
		lsn++
		orders, _ := doc["orders"].([]any)
		for j, o := range orders {
			o := o.(map[string]any)
			oid := 100*(2000+i) + j
			out = append(out, row(indexer.TopicOrders, oid, pick(o, []string{"order_no", "store_id", "status", "total_amount", "created_at", "paid_at"}, map[string]any{"customer_id": 2000 + i}), lsn))
			lsn++
			its, _ := o["items"].([]any)
			for k, it := range its {
				if !items {
					break
				}
				ir := map[string]any{"order_id": oid}
				for key, v := range it.(map[string]any) {
					ir[key] = v
				}
				out = append(out, row(indexer.TopicOrderItems, 10*oid+k, ir, lsn))
				lsn++
			}
		}
		return out
	}
	var msgs []msg
	for i := 1; i <= customers; i++ {
		msgs = append(msgs, rows(i, true)...)
	}
	// Filters the deployment's catalog takes (the generator's own has
	// attrs and event properties these customers lack), saved
	// alternately as segments and rules.
	var defs []def
	for i := 0; len(defs) < 16 && i < 400; i++ {
		f := string(g.Filter(3))
		if len(defs)%3 == 2 {
			name := fmt.Sprintf("rule_%d", i)
			if code, _ := c.do("POST", "/v1/tags", `{"name":"`+name+`","filter":`+f+`}`); code == 201 {
				defs = append(defs, def{membership.KindTag, name, f})
			}
			continue
		}
		if code, body := c.do("POST", "/v1/segments", `{"name":"random","filter":`+f+`}`); code == 201 {
			defs = append(defs, def{membership.KindSegment, body["id"].(string), f})
		}
	}
	if len(defs) < 8 {
		t.Fatalf("only %d random filters were taken", len(defs))
	}
	produce(t, p, cfg, msgs...)
	env.WaitIdle(t, cfg, 60*time.Second)
	harness.Eventually(t, 30*time.Second, func() (bool, string) { return agree(t, env, cfg, defs, customers, false) })
	want, _ := truth(t, env, cfg, defs)
	members := 0
	for _, m := range want {
		members += len(m)
	}
	t.Logf("%d random definitions, %d memberships", len(defs), members)

	// Two more waves, each in batches of its own: half the customers
	// change profile and order rows (new values drawn the same way), so
	// that members leave and others join, negated and none-of filters
	// included; the published records must net to the new memberships.
	movedAll := 0
	for wave := 1; wave <= 2; wave++ {
		var update []msg
		for i := 1; i <= customers; i++ {
			if (i+wave)%2 != 0 {
				continue
			}
			update = append(update, rows(i, false)...)
		}
		produce(t, p, cfg, update...)
		env.WaitIdle(t, cfg, 60*time.Second)
		harness.Eventually(t, 30*time.Second, func() (bool, string) { return agree(t, env, cfg, defs, customers, false) })
		after, _ := truth(t, env, cfg, defs)
		moved := 0
		for k, m := range after {
			moved += len(symmetric(m, want[k]))
		}
		want = after
		movedAll += moved
		t.Logf("wave %d: %d messages, %d memberships changed", wave, len(update), moved)
	}
	if movedAll == 0 {
		t.Errorf("the waves changed no membership: nothing left or joined")
	}
}

func TestReconciliationPublishesWhatStoredMembershipMissesAndTheLeaversOfADeletedDefinition(t *testing.T) {
	t.Parallel()
	env := harness.Services(t)
	cfg := env.Config(t)
	env.Bootstrap(t, cfg)
	env.CreateTopics(t, cfg)
	st := env.Store(t)
	ctx := context.Background()
	mcfg := membership.ConfigOf(cfg)
	put := func(index, id, body string) {
		t.Helper()
		if err := st.Do(ctx, http.MethodPut, "/"+index+"/_doc/"+id+"?refresh=true", json.RawMessage(body), nil); err != nil {
			t.Fatal(err)
		}
	}
	put(mcfg.Segments, "seg_women", `{"id":"seg_women","name":"women","filter":{"field":"gender","op":"eq","value":"female"},"refs":[]}`)
	put(mcfg.Customers, "c1", `{"customer_id":"c1","relation":"customer","gender":"female","tags":[]}`)
	// c1 matches but its membership was never stored (a crash before the
	// write); c2 is stored as a member of a segment deleted meanwhile.
	put(mcfg.States, "c2", `{"customer_id":"c2","segments":["seg_gone"],"rules":[],"manual":[],"version":3,"pending":[],"pending_count":0}`)
	e := membership.New(mcfg, st, env.Producer(t), prometheusRegistry(), harness.Logger())
	if err := e.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range env.ReadTopic(t, cfg.Topic(membership.TopicSuffix)) {
		var r membership.Record
		_ = json.Unmarshal(m.Value, &r)
		got = append(got, fmt.Sprintf("%s %s %s %s", r.CustomerID, r.Type, r.ID, r.Cause))
	}
	slices.Sort(got)
	want := []string{"c1 entered seg_women change", "c2 exited seg_gone definition"}
	if !slices.Equal(got, want) {
		t.Fatalf("published %v, want %v", got, want)
	}
	if err := e.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(env.ReadTopic(t, cfg.Topic(membership.TopicSuffix))); n != 2 {
		t.Errorf("a second reconciliation published again: %d records", n)
	}
}

// definitionsTest is the start of a parallel test that saves definitions
// straight into their indices and drives an engine itself: deployed
// indices and topics, no indexer.
func definitionsTest(t *testing.T) (*harness.Env, *store.Client, membership.Config) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the services")
	}
	t.Parallel()
	env := harness.Services(t)
	cfg := env.Config(t)
	env.Bootstrap(t, cfg)
	env.CreateTopics(t, cfg)
	return env, env.Store(t), membership.ConfigOf(cfg)
}

// definitions are the writes of n definitions, the even ones segments
// seg_NNNN and the odd ones tag rules rule_NNNN, definition i with the
// filter filter(i).
func definitions(mcfg membership.Config, n int, filter func(i int) string) []store.Op {
	var ops []store.Op
	for i := range n {
		f := json.RawMessage(filter(i))
		index, id := mcfg.Segments, fmt.Sprintf("seg_%04d", i)
		doc := map[string]any{"id": id, "name": id, "filter": f, "refs": []string{}}
		if i%2 == 1 {
			index, id = mcfg.Rules, fmt.Sprintf("rule_%04d", i)
			doc = map[string]any{"name": id, "filter": f, "refs": []string{}}
		}
		ops = append(ops, store.Op{Action: store.Index, Index: index, ID: id, Body: doc})
	}
	return ops
}

func TestOneChangeIsEvaluatedAgainstAThousandDefinitionsAndEveryRoundAgrees(t *testing.T) {
	env, st, mcfg := definitionsTest(t)
	ctx := context.Background()
	ops := definitions(mcfg, 1000, func(i int) string {
		return fmt.Sprintf(`{"all":[{"field":"metrics.total_spend","op":"gte","value":%d},{"field":"gender","op":"eq","value":"female"}]}`, i)
	})
	ops = append(ops, store.Op{Action: store.Index, Index: mcfg.Customers, ID: "c1",
		Body: map[string]any{"customer_id": "c1", "relation": "customer", "gender": "female", "tags": []string{}, "metrics": map[string]any{"total_spend": 500}}})
	if _, err := st.Bulk(ctx, ops); err != nil {
		t.Fatal(err)
	}
	if err := st.Refresh(ctx, mcfg.Segments, mcfg.Rules, mcfg.Customers); err != nil {
		t.Fatal(err)
	}
	e := membership.New(mcfg, st, env.Producer(t), prometheusRegistry(), harness.Logger())
	var took []time.Duration
	for round := range 5 {
		start := time.Now()
		if _, err := e.Changed(ctx, []string{"c1"}, membership.Merges{}); err != nil {
			t.Fatal(err)
		}
		took = append(took, time.Since(start))
		if round == 0 {
			s, _ := e.State(ctx, "c1")
			if len(s.Segments) != 251 || len(s.Rules) != 250 {
				t.Fatalf("c1 in %d segments and %d rules, want 251 and 250", len(s.Segments), len(s.Rules))
			}
		}
	}
	// The 2 s budget is judged by the bench (make bench, its membership
	// phase), not here: a timed assertion on a shared machine fails for
	// its neighbours' load, not for this code.
	slices.Sort(took)
	t.Logf("a change against 1,000 definitions: first (501 flips published) %s, median of the rest %s", took[len(took)-1], took[2])
	if s, _ := e.State(ctx, "c1"); len(s.Segments) != 251 || len(s.Rules) != 250 {
		t.Errorf("after 5 evaluations c1 is in %d segments and %d rules, want 251 and 250 still", len(s.Segments), len(s.Rules))
	}
}

func TestAnEvaluationPastOpenSearchsBucketLimitIsSplitAndMissesNoMember(t *testing.T) {
	env, st, mcfg := definitionsTest(t)
	ctx := context.Background()
	// 300 definitions every one of 300 customers matches: 90,300 buckets
	// in one search, over search.max_buckets (65,535).
	const defs, customers = 300, 300
	ops := definitions(mcfg, defs, func(i int) string { return fmt.Sprintf(`{"field":"metrics.total_spend","op":"gte","value":%d}`, i) })
	var cids []string
	for i := range customers {
		cid := fmt.Sprintf("c%03d", i)
		cids = append(cids, cid)
		ops = append(ops, store.Op{Action: store.Index, Index: mcfg.Customers, ID: cid,
			Body: map[string]any{"customer_id": cid, "relation": "customer", "tags": []string{}, "metrics": map[string]any{"total_spend": 1000}}})
	}
	if _, err := st.Bulk(ctx, ops); err != nil {
		t.Fatal(err)
	}
	if err := st.Refresh(ctx, mcfg.Segments, mcfg.Rules, mcfg.Customers); err != nil {
		t.Fatal(err)
	}
	reg := prometheusRegistry()
	e := membership.New(mcfg, st, env.Producer(t), reg, harness.Logger())
	if _, err := e.Changed(ctx, cids, membership.Merges{}); err != nil {
		t.Fatal(err)
	}
	for _, cid := range cids {
		s, err := e.State(ctx, cid)
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Segments) != defs/2 || len(s.Rules) != defs/2 {
			t.Fatalf("%s in %d segments and %d rules, want %d of each", cid, len(s.Segments), len(s.Rules), defs/2)
		}
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	splits := 0.0
	for _, f := range families {
		if f.GetName() == "cdp_membership_eval_splits_total" {
			splits = f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	if splits < 1 {
		t.Errorf("no evaluation search was split: the test did not reach the bucket limit")
	}
}

func TestAnEventAgeingOutOfAnHourWindowExitsWithinAMinuteOfTheEdge(t *testing.T) {
	t.Parallel()
	env := harness.Services(t)
	cfg := env.Config(t)
	env.StartIndexer(t, cfg)
	c := client{t, env.StartAPI(t, cfg).URL}
	p := env.Producer(t)
	seg := c.must(201, "POST", "/v1/segments", `{"name":"viewed this hour","filter":{"event":"view_product","within":"1h"}}`)["id"].(string)

	at := time.Now().Add(-time.Hour + 15*time.Second).UTC().Truncate(time.Millisecond)
	edge := at.Add(time.Hour)
	produce(t, p, cfg, msg{indexer.TopicEvents, "u-8", `{"type":"track","messageId":"v-1","timestamp":"` + at.Format(time.RFC3339Nano) +
		`","userId":"u-8","event":"view_product","properties":{"sku":"p-1"}}`})
	find := func(typ string) *membership.Record {
		for _, r := range published(t, env, cfg) {
			if r.ID == seg && r.Type == typ {
				return &r
			}
		}
		return nil
	}
	harness.Eventually(t, 10*time.Second, func() (bool, string) { return find("entered") != nil, "not entered yet" })
	if time.Now().After(edge) {
		t.Skip("the machine is too slow to see the customer enter before the edge")
	}
	harness.Eventually(t, time.Until(edge)+60*time.Second, func() (bool, string) { return find("exited") != nil, "not exited yet" })
	r := find("exited")
	if got, _ := time.Parse(time.RFC3339Nano, r.At); r.Cause != membership.CauseTime || got.Before(edge) || got.After(edge.Add(60*time.Second)) {
		t.Errorf("exited %+v, want cause time within 60 s after %s", r, edge)
	}
}

// cutAfter is a publisher that sends its first n calls' messages and
// fails every call after them, closing cut at the first that fails: a
// process that stops in the middle of a definition sweep.
type cutAfter struct {
	n   int
	pub membership.Publisher
	cut chan struct{}
}

func (c *cutAfter) SendMessages(msgs []*sarama.ProducerMessage) error {
	if c.n > 0 {
		c.n--
		return c.pub.SendMessages(msgs)
	}
	select {
	case <-c.cut:
	default:
		close(c.cut)
	}
	return fmt.Errorf("process stopping")
}

func TestADefinitionSweepCutShortIsResumedFromItsCheckpointAndTheRemainingFlipsArriveOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the services")
	}
	t.Parallel()
	env := harness.Services(t)
	cfg := env.Config(t)
	env.Bootstrap(t, cfg)
	env.CreateTopics(t, cfg)
	st := env.Store(t)
	ctx := context.Background()
	mcfg := membership.ConfigOf(cfg)
	const members = 1100 // three batches of a sweep: 500, 500 and 100
	var ops []store.Op
	for i := range members + 50 {
		gender := "female"
		if i >= members {
			gender = "male"
		}
		id := fmt.Sprintf("c%05d", i)
		ops = append(ops, store.Op{Action: store.Index, Index: mcfg.Customers, ID: id,
			Body: map[string]any{"customer_id": id, "relation": "customer", "gender": gender, "tags": []string{}}})
	}
	ops = append(ops, store.Op{Action: store.Index, Index: mcfg.Segments, ID: "seg_women",
		Body: map[string]any{"id": "seg_women", "name": "women", "filter": json.RawMessage(`{"field":"gender","op":"eq","value":"female"}`), "refs": []string{}}})
	if _, err := st.Bulk(ctx, ops); err != nil {
		t.Fatal(err)
	}
	if err := st.Refresh(ctx, mcfg.Customers, mcfg.Segments); err != nil {
		t.Fatal(err)
	}

	// The first process publishes the first batch, then stops while
	// publishing the second.
	cut := &cutAfter{n: 1, pub: env.Producer(t), cut: make(chan struct{})}
	first := membership.New(mcfg, st, cut, prometheusRegistry(), harness.Logger())
	first.RedefineLater(membership.KindSegment, "seg_women")
	select {
	case <-cut.cut:
	case <-time.After(60 * time.Second):
		t.Fatal("the sweep never reached its second batch")
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Refresh(ctx, mcfg.Sweeps); err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Keys  []string `json:"keys"`
		Done  int      `json:"done"`
		After string   `json:"after"`
	}
	if found, err := st.GetSource(ctx, mcfg.Sweeps, "segment:seg_women", &rec); err != nil || !found {
		t.Fatalf("no record of the sweep cut short (%v)", err)
	}
	if rec.Done != 0 || rec.After != "c00499" || !slices.Equal(rec.Keys, []string{"segment:seg_women"}) {
		t.Fatalf("sweep record %+v, want the first batch done (after c00499)", rec)
	}
	before := published(t, env, cfg)
	if len(before) != 500 {
		t.Fatalf("%d records before the cut, want the first batch's 500", len(before))
	}

	// The next process publishes what the first left pending (the second
	// batch, stored and not published), as every indexer does on start,
	// and its leader takes the sweep over from its checkpoint: the third.
	next := membership.New(mcfg, st, env.Producer(t), prometheusRegistry(), harness.Logger())
	defer next.Close()
	if n, err := next.Republish(ctx); err != nil || n != 500 {
		t.Fatalf("republished %d (%v), want the second batch's 500", n, err)
	}
	if n, err := next.ResumeSweeps(ctx); err != nil || n != 1 {
		t.Fatalf("resumed %d sweeps (%v), want the one cut short", n, err)
	}
	recs := published(t, env, cfg)
	entered := map[string]int{}
	for _, r := range recs {
		if r.Type != "entered" || r.ID != "seg_women" || r.Cause != membership.CauseDefinition {
			t.Errorf("unexpected record %+v", r)
		}
		entered[r.CustomerID]++
	}
	if len(recs) != members || len(entered) != members {
		t.Fatalf("%d records for %d customers after the resume, want one entered for each of the %d members", len(recs), len(entered), members)
	}
	if raw := len(env.ReadTopic(t, cfg.Topic(membership.TopicSuffix))); raw != members {
		t.Errorf("%d messages on the topic, want %d: the resumed sweep published the first batch again", raw, members)
	}
	if n, err := next.ResumeSweeps(ctx); err != nil || n != 0 {
		t.Errorf("a finished sweep resumed again: %d %v", n, err)
	}
	if found, _ := st.GetSource(ctx, mcfg.Sweeps, "segment:seg_women", &rec); found {
		t.Errorf("the finished sweep's record is left: %+v", rec)
	}
}

// holdingProxy passes requests to OpenSearch, but holds the first one
// whose body holds hold until release is closed, closing held when it
// has it.
func holdingProxy(t *testing.T, target, hold string, held, release chan struct{}) string {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if strings.Contains(string(body), hold) {
			once.Do(func() {
				close(held)
				<-release
			})
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// Two processes evaluate one customer around a change of its document:
// the first one's tags write, held back, lands after the second's. The
// first finds the stored rules moved on and writes the newest tags.
func TestATagsWriteThatLandsLateIsPutRightByTheProcessThatWroteIt(t *testing.T) {
	env, st, mcfg := definitionsTest(t)
	ctx := context.Background()
	put := func(index, id, body string) {
		t.Helper()
		if err := st.Do(ctx, http.MethodPut, "/"+index+"/_doc/"+id+"?refresh=true", json.RawMessage(body), nil); err != nil {
			t.Fatal(err)
		}
	}
	put(mcfg.Rules, "women", `{"name":"women","filter":{"field":"gender","op":"eq","value":"female"},"refs":[]}`)
	put(mcfg.Customers, "c1", `{"customer_id":"c1","relation":"customer","gender":"female","tags":[]}`)

	held, release := make(chan struct{}), make(chan struct{})
	slow, err := store.New(holdingProxy(t, env.OpenSearchURL, `{"doc":{"tags":`, held, release))
	if err != nil {
		t.Fatal(err)
	}
	first := membership.New(mcfg, slow, env.Producer(t), prometheusRegistry(), harness.Logger())
	second := membership.New(mcfg, st, env.Producer(t), prometheusRegistry(), harness.Logger())
	done := make(chan error, 1)
	go func() { _, err := first.Changed(ctx, []string{"c1"}, membership.Merges{}); done <- err }()
	select {
	case <-held: // the first stored c1 in the rule and is writing its tags
	case err := <-done:
		t.Fatalf("the first evaluation ended (%v) without writing tags", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the first evaluation never wrote tags")
	}
	put(mcfg.Customers, "c1", `{"customer_id":"c1","relation":"customer","gender":"male","tags":["women"]}`)
	if _, err := second.Changed(ctx, []string{"c1"}, membership.Merges{}); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	s, err := second.State(ctx, "c1")
	if err != nil || len(s.Rules) != 0 {
		t.Fatalf("stored %+v (%v), want c1 out of the rule", s, err)
	}
	var doc struct{ Tags []string }
	if _, err := st.GetSource(ctx, mcfg.Customers, "c1", &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Tags) != 0 {
		t.Errorf("document tags %v, want none: the late write of the first process stayed", doc.Tags)
	}
}

// A manual tag is removed from a survivor while a rebuild is moving it
// there from the visitor merged into it: the rebuild read the visitor's
// tags before the removal, and its write of the survivor's state, held
// back, lands after it. The tag stays removed, on both profiles.
func TestAManualTagRemovedFromASurvivorWhileAMergeMovesItStaysRemoved(t *testing.T) {
	env, st, mcfg := definitionsTest(t)
	ctx := context.Background()
	if err := st.Do(ctx, http.MethodPut, "/"+mcfg.Customers+"/_doc/c1?refresh=true", json.RawMessage(`{"customer_id":"c1","relation":"customer","tags":["vip-call"]}`), nil); err != nil {
		t.Fatal(err)
	}
	direct := membership.New(mcfg, st, env.Producer(t), prometheusRegistry(), harness.Logger())
	if _, err := direct.SetManual(ctx, "v1", nil, []string{"vip-call"}, nil); err != nil {
		t.Fatal(err)
	}

	held, release := make(chan struct{}), make(chan struct{})
	slow, err := store.New(holdingProxy(t, env.OpenSearchURL, `"manual":["vip-call"]`, held, release))
	if err != nil {
		t.Fatal(err)
	}
	// Released before the proxy closes, which waits for held requests.
	var releaseOnce sync.Once
	letGo := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(letGo)
	rebuild := membership.New(mcfg, slow, env.Producer(t), prometheusRegistry(), harness.Logger())
	merge := membership.Merges{Absorb: map[string][]string{"c1": {"v1"}}, Cause: map[string]bool{"c1": true}}
	done := make(chan error, 1)
	go func() { _, err := rebuild.Changed(ctx, []string{"c1"}, merge); done <- err }()
	select {
	case <-held: // the rebuild read v1's tag and is writing it into c1's state
	case err := <-done:
		t.Fatalf("the rebuild ended (%v) without moving the tag", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the rebuild never moved the tag")
	}
	manual, err := direct.SetManual(ctx, "c1", []string{"v1"}, nil, []string{"vip-call"})
	if err != nil || len(manual) != 0 {
		t.Fatalf("remove answered %v (%v), want no manual tags", manual, err)
	}
	letGo()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, cid := range []string{"c1", "v1"} {
		if s, err := direct.State(ctx, cid); err != nil || len(s.Manual) != 0 {
			t.Errorf("%s stored %+v (%v), want no manual tags", cid, s, err)
		}
	}
	tags, err := direct.TagsOf(ctx, []string{"c1"}, map[string][]string{"c1": {"v1"}})
	if err != nil || len(tags["c1"]) != 0 {
		t.Errorf("the survivor's next rebuild would tag it %v (%v), want nothing", tags["c1"], err)
	}
}
