package indexer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"cdp/config"
	"cdp/indexer"
	"cdp/mapping"
	"cdp/testing/harness"
)

// identityRecords returns the identity index as "type:value → customer id".
func identityRecords(t *testing.T, env *harness.Env, cfg *config.Config) map[string]string {
	t.Helper()
	st := env.Store(t)
	idx := mapping.Identities.Alias(cfg.IndexPrefix)
	ctx := context.Background()
	if err := st.Refresh(ctx, idx); err != nil {
		t.Fatal(err)
	}
	res, err := st.Search(ctx, idx, map[string]any{"size": 1000, "query": map[string]any{"match_all": map[string]any{}}})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, h := range res.Hits {
		var r struct {
			Type       string `json:"type"`
			Value      string `json:"value"`
			CustomerID string `json:"customer_id"`
		}
		if err := json.Unmarshal(h.Source, &r); err != nil {
			t.Fatal(err)
		}
		out[r.Type+":"+r.Value] = r.CustomerID
	}
	return out
}

// docIdentities lists a document's identities as sorted "type:value".
func docIdentities(doc map[string]any) []string {
	var out []string
	ids, _ := doc["identities"].([]any)
	for _, id := range ids {
		m := id.(map[string]any)
		out = append(out, fmt.Sprint(m["type"], ":", m["value"]))
	}
	sort.Strings(out)
	return out
}

// CONTRACT §1.1 and §6: identify traits phone and email are identities, so
// a new device that gives a known phone (in local form) is the customer
// who holds that phone, not a new anonymous profile.
func TestAnIdentifyFromANewDeviceWithAKnownPhoneJoinsTheCustomerHoldingIt(t *testing.T) {
	t.Parallel()
	env := harness.Services(t)
	cfg := env.Config(t)
	p := env.Producer(t)
	env.StartIndexer(t, cfg)

	produce(t, p, cfg.TopicPrefix, change(indexer.TopicCustomers, "c", 8001, map[string]any{"name": "张三", "phone": "+86 138 0013 8001"}, 1))
	var cid string
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		doc := env.CustomerByIdentity(t, cfg, "crm_id", "8001")
		if doc == nil {
			return false, "customer 8001 not indexed"
		}
		cid = doc["customer_id"].(string)
		return true, ""
	})

	produce(t, p, cfg.TopicPrefix, msg{indexer.TopicEvents, "dev-9", `{"type":"identify","messageId":"i-8001","timestamp":"2026-11-20T08:00:00Z",
		"anonymousId":"dev-9","traits":{"phone":"13800138001","city":"上海"}}`})
	want := []string{"anonymous_id:dev-9", "crm_id:8001", "phone:+8613800138001"}
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		doc := env.CustomerByIdentity(t, cfg, "anonymous_id", "dev-9")
		if doc == nil {
			return false, "no customer holds dev-9"
		}
		if doc["customer_id"] != cid || doc["city"] != "上海" || !slices.Equal(docIdentities(doc), want) {
			return false, fmt.Sprintf("dev-9 is on %v (city %v, identities %v), want %s with city 上海 and identities %v",
				doc["customer_id"], doc["city"], docIdentities(doc), cid, want)
		}
		return true, ""
	})
	if all := env.AllCustomers(t, cfg); len(all) != 1 {
		t.Errorf("%d customers, want the one", len(all))
	}
	recs := identityRecords(t, env, cfg)
	for _, k := range want {
		if recs[k] != cid {
			t.Errorf("identity index: %s → %q, want %s", k, recs[k], cid)
		}
	}
}

// CONTRACT §6: a blocked value is kept on the message's profile as data
// but links nobody. Two people who both send the placeholder device id
// "anonymous" and the phone 00000000000 stay two, the identity index never
// holds those values, and an event with nothing but a blocked id is
// dead-lettered (it has no profile to attach to).
func TestBlockedValuesNeverJoinTwoPeopleAndStayOnlyAsData(t *testing.T) {
	t.Parallel()
	env := harness.Services(t)
	cfg := env.Config(t)
	p := env.Producer(t)
	env.StartIndexer(t, cfg)

	produce(t, p, cfg.TopicPrefix,
		msg{indexer.TopicEvents, "8101", `{"type":"identify","messageId":"i-8101","timestamp":"2026-11-20T08:00:00Z",
			"userId":"8101","anonymousId":"anonymous","traits":{"name":"甲","phone":"00000000000","email":"null"}}`},
		msg{indexer.TopicEvents, "8102", `{"type":"identify","messageId":"i-8102","timestamp":"2026-11-20T08:00:01Z",
			"userId":"8102","anonymousId":"anonymous","traits":{"name":"乙","phone":"00000000000"}}`},
		msg{indexer.TopicEvents, "anonymous", `{"type":"track","messageId":"t-anon","event":"view","anonymousId":"anonymous"}`},
	)
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		a, b := env.CustomerByIdentity(t, cfg, "crm_id", "8101"), env.CustomerByIdentity(t, cfg, "crm_id", "8102")
		if a == nil || b == nil {
			return false, "8101 or 8102 not indexed"
		}
		if a["customer_id"] == b["customer_id"] {
			return false, fmt.Sprintf("8101 and 8102 are one customer %v", a["customer_id"])
		}
		for crm, doc := range map[string]map[string]any{"8101": a, "8102": b} {
			if doc["phone"] != "+860000000000" {
				return false, fmt.Sprintf("%s: phone %v, want the value kept as data", crm, doc["phone"])
			}
			if got := docIdentities(doc); !slices.Equal(got, []string{"crm_id:" + crm}) {
				return false, fmt.Sprintf("%s: identities %v, want its crm id alone", crm, got)
			}
		}
		if a["email"] != "null" || a["name"] != "甲" || b["name"] != "乙" {
			return false, fmt.Sprintf("traits: email %v, names %v %v", a["email"], a["name"], b["name"])
		}
		return true, ""
	})
	recs := identityRecords(t, env, cfg)
	if len(recs) != 2 || recs["crm_id:8101"] == "" || recs["crm_id:8102"] == "" {
		t.Errorf("identity index %v, want the two crm ids alone", recs)
	}
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		for _, d := range env.DeadLetters(t, cfg) {
			if strings.Contains(d.Reason, "identify nobody") && strings.Contains(d.Raw, "t-anon") {
				return true, ""
			}
		}
		return false, "the track with only a blocked anonymousId is not dead-lettered"
	})
}

// Until profiles know what they hold (merges), a phone never brings a
// new CRM id to a customer who may hold another: two CRM customers who
// share a phone, and a user who gives it in an identify, stay three.
func TestCustomersWhoShareAPhoneAreNotJoinedThroughIt(t *testing.T) {
	t.Parallel()
	env := harness.Services(t)
	cfg := env.Config(t)
	p := env.Producer(t)
	env.StartIndexer(t, cfg)

	produce(t, p, cfg.TopicPrefix, change(indexer.TopicCustomers, "c", 8201, map[string]any{"name": "父", "phone": "13900139000"}, 1))
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		return env.CustomerByIdentity(t, cfg, "crm_id", "8201") != nil, "customer 8201 not indexed"
	})
	produce(t, p, cfg.TopicPrefix,
		change(indexer.TopicCustomers, "c", 8202, map[string]any{"name": "子", "phone": "139 0013 9000"}, 2),
		msg{indexer.TopicEvents, "8203", `{"type":"identify","messageId":"i-8203","userId":"8203","traits":{"phone":"13900139000"}}`},
	)
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		seen := map[any]string{}
		for _, crm := range []string{"8201", "8202", "8203"} {
			doc := env.CustomerByIdentity(t, cfg, "crm_id", crm)
			if doc == nil {
				return false, crm + " not indexed"
			}
			if other, dup := seen[doc["customer_id"]]; dup {
				return false, fmt.Sprintf("%s and %s are one customer", other, crm)
			}
			seen[doc["customer_id"]] = crm
		}
		return true, ""
	})
	recs := identityRecords(t, env, cfg)
	if owner := recs["phone:+8613900139000"]; owner == "" || owner != recs["crm_id:8201"] {
		t.Errorf("the phone is on %q, want 8201's %q, who had it first", owner, recs["crm_id:8201"])
	}
}
