package indexer_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"cdp/config"
	"cdp/indexer"
	"cdp/testing/harness"
)

// getJSON GETs path from the API and decodes the answer.
func getJSON(t *testing.T, base, path string) (int, map[string]any) {
	t.Helper()
	return callJSON(t, http.MethodGet, base+path, "")
}

// callJSON sends a request (a JSON body unless empty) and decodes the
// JSON answer.
func callJSON(t *testing.T, method, target, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("%s %s: %d %s: %v", method, target, resp.StatusCode, data, err)
	}
	return resp.StatusCode, out
}

// eventsOf counts the events stored under a customer id.
func eventsOf(t *testing.T, env *harness.Env, cfg *config.Config, cid string) int64 {
	t.Helper()
	return env.Count(t, cfg, "events", map[string]any{"term": map[string]any{"customer_id": cid}})
}

// waitCustomer waits until one customer holds the identity and returns it.
func waitCustomer(t *testing.T, env *harness.Env, cfg *config.Config, typ, value string, ok func(doc map[string]any) (bool, string)) map[string]any {
	t.Helper()
	var doc map[string]any
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		doc = env.CustomerByIdentity(t, cfg, typ, value)
		if doc == nil {
			return false, "nobody holds " + typ + " " + value
		}
		if ok == nil {
			return true, ""
		}
		return ok(doc)
	})
	return doc
}

func trackMsg(id, anon, user, ts string) msg {
	v := map[string]any{"type": "track", "event": "view", "messageId": id, "timestamp": ts, "anonymousId": anon}
	if user != "" {
		v["userId"] = user
	}
	b, _ := json.Marshal(v)
	return msg{indexer.TopicEvents, anon + user, string(b)}
}

// CONTRACT §6: a visitor browses anonymously, then logs in as a CRM
// customer already indexed. The two profiles merge into the one holding
// the crm_id: one document, every event under it, the merged-away id
// answering with the survivor's view and merged_ids, lookups by the device
// finding the survivor, and the merge in the identity history with the
// Kafka position that caused it.
func TestAnonymousBrowsingThenLoginMergesIntoTheCRMCustomerWithEveryEvent(t *testing.T) {
	t.Parallel()
	env := harness.Services(t)
	cfg := env.Config(t)
	p := env.Producer(t)
	srv := env.StartAPI(t, cfg)
	env.StartIndexer(t, cfg)

	produce(t, p, cfg.TopicPrefix,
		change(indexer.TopicCustomers, "c", 9101, map[string]any{"name": "李四", "phone": "13800139101"}, 1),
		trackMsg("e-1", "dev-91", "", "2026-11-20T08:00:00Z"),
		trackMsg("e-2", "dev-91", "", "2026-11-20T08:01:00Z"),
		trackMsg("e-3", "dev-91", "", "2026-11-20T08:02:00Z"))
	crmDoc := waitCustomer(t, env, cfg, "crm_id", "9101", nil)
	anonDoc := waitCustomer(t, env, cfg, "anonymous_id", "dev-91", nil)
	crmID, anonID := crmDoc["customer_id"].(string), anonDoc["customer_id"].(string)
	if crmID == anonID {
		t.Fatalf("the anonymous visitor is %s before logging in, want a profile of its own", crmID)
	}
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		n := eventsOf(t, env, cfg, anonID)
		return n == 3, fmt.Sprintf("%d events on the anonymous profile, want 3", n)
	})

	produce(t, p, cfg.TopicPrefix, msg{indexer.TopicEvents, "dev-91", `{"type":"identify","messageId":"i-91","timestamp":"2026-11-20T08:03:00Z",
		"userId":"9101","anonymousId":"dev-91","traits":{"city":"杭州"}}`})
	want := []string{"anonymous_id:dev-91", "crm_id:9101", "phone:+8613800139101"}
	waitCustomer(t, env, cfg, "anonymous_id", "dev-91", func(doc map[string]any) (bool, string) {
		if doc["customer_id"] != crmID || !slices.Equal(docIdentities(doc), want) || doc["city"] != "杭州" {
			return false, fmt.Sprintf("dev-91 on %v with %v (city %v), want %s with %v", doc["customer_id"], docIdentities(doc), doc["city"], crmID, want)
		}
		return true, ""
	})
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		moved, left := eventsOf(t, env, cfg, crmID), eventsOf(t, env, cfg, anonID)
		all := len(env.AllCustomers(t, cfg))
		return moved == 4 && left == 0 && all == 1, fmt.Sprintf("%d events on the survivor (want 4), %d on the merged-away id (want 0), %d customers (want 1)", moved, left, all)
	})

	for _, path := range []string{"/v1/customers/" + anonID, "/v1/customers/" + crmID, "/v1/customers/lookup?type=anonymous_id&value=dev-91"} {
		code, view := getJSON(t, srv.URL, path)
		merged, _ := view["merged_ids"].([]any)
		events, _ := view["recent_events"].([]any)
		if code != 200 || view["customer_id"] != crmID || len(merged) != 1 || merged[0] != anonID || len(events) != 4 {
			t.Errorf("GET %s: %d customer_id %v merged_ids %v, %d events; want %s, [%s], 4", path, code, view["customer_id"], merged, len(events), crmID, anonID)
		}
	}
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		_, h := getJSON(t, srv.URL, "/v1/customers/"+anonID+"/identity-history")
		entries, _ := h["history"].([]any)
		for _, e := range entries {
			m := e.(map[string]any)
			ids, _ := m["customer_ids"].([]any)
			src, _ := m["source"].(map[string]any)
			if m["action"] == "merge" && len(ids) == 2 && ids[0] == crmID && ids[1] == anonID &&
				src["topic"] == cfg.Topic(indexer.TopicEvents) && src["offset"] != nil {
				return true, ""
			}
		}
		return false, fmt.Sprintf("history %v has no merge of %s into %s from %s", entries, anonID, crmID, cfg.Topic(indexer.TopicEvents))
	})
}

// CONTRACT §6: alias links previousId (an anonymous id no profile holds
// as a crm_id) with userId, merging their profiles.
func TestAliasMergesTheProfilesOfItsTwoIDs(t *testing.T) {
	t.Parallel()
	env := harness.Services(t)
	cfg := env.Config(t)
	p := env.Producer(t)
	env.StartIndexer(t, cfg)

	produce(t, p, cfg.TopicPrefix,
		trackMsg("a-1", "dev-a", "", "2026-11-20T08:00:00Z"),
		trackMsg("a-2", "dev-b", "u-92", "2026-11-20T08:01:00Z"))
	a := waitCustomer(t, env, cfg, "anonymous_id", "dev-a", nil)
	b := waitCustomer(t, env, cfg, "crm_id", "u-92", nil)
	if a["customer_id"] == b["customer_id"] {
		t.Fatal("two visitors are one profile before the alias")
	}
	produce(t, p, cfg.TopicPrefix, msg{indexer.TopicEvents, "u-92", `{"type":"alias","messageId":"al-92","timestamp":"2026-11-20T08:02:00Z","previousId":"dev-a","userId":"u-92"}`})
	waitCustomer(t, env, cfg, "anonymous_id", "dev-a", func(doc map[string]any) (bool, string) {
		ids := docIdentities(doc)
		return doc["customer_id"] == b["customer_id"] && slices.Contains(ids, "anonymous_id:dev-b"),
			fmt.Sprintf("dev-a on %v with %v, want %v with dev-b too", doc["customer_id"], ids, b["customer_id"])
	})
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		n, all := eventsOf(t, env, cfg, b["customer_id"].(string)), len(env.AllCustomers(t, cfg))
		return n == 3 && all == 1, fmt.Sprintf("%d events on the survivor (want 3), %d customers (want 1)", n, all)
	})
}

// CONTRACT §6: a second crm_id claiming a device that a CRM customer
// holds merges nothing; the message goes to its own crm_id's profile and
// the conflict is recorded on both profiles, in their 360 views and in
// the identity history.
func TestTwoCRMIDsClaimingOneDeviceMergeNothingAndRecordAConflictOnBoth(t *testing.T) {
	t.Parallel()
	env := harness.Services(t)
	cfg := env.Config(t)
	p := env.Producer(t)
	srv := env.StartAPI(t, cfg)
	env.StartIndexer(t, cfg)

	produce(t, p, cfg.TopicPrefix, trackMsg("k-1", "dev-93", "A-93", "2026-11-20T08:00:00Z"))
	first := waitCustomer(t, env, cfg, "crm_id", "A-93", nil)
	produce(t, p, cfg.TopicPrefix, trackMsg("k-2", "dev-93", "B-93", "2026-11-20T08:01:00Z"))
	second := waitCustomer(t, env, cfg, "crm_id", "B-93", nil)
	if first["customer_id"] == second["customer_id"] {
		t.Fatal("two crm ids on one profile")
	}
	if ids := docIdentities(second); !slices.Equal(ids, []string{"crm_id:B-93"}) {
		t.Errorf("the second crm id's profile holds %v, want only its crm id: the device stays with the first", ids)
	}
	for _, doc := range []map[string]any{first, second} {
		cid := doc["customer_id"].(string)
		_, view := getJSON(t, srv.URL, "/v1/customers/"+cid)
		cs, _ := view["identity_conflicts"].([]any)
		if len(cs) != 1 || !strings.HasPrefix(fmt.Sprint(cs[0].(map[string]any)["reason"]), "most_per_profile:crm_id") {
			t.Errorf("%s: conflicts %v, want one most_per_profile:crm_id", cid, cs)
		}
		harness.Eventually(t, 30*time.Second, func() (bool, string) {
			_, h := getJSON(t, srv.URL, "/v1/customers/"+url.PathEscape(cid)+"/identity-history")
			entries, _ := h["history"].([]any)
			return len(entries) == 1 && entries[0].(map[string]any)["action"] == "conflict", fmt.Sprintf("%s: history %v, want one conflict", cid, entries)
		})
	}
	if n := len(env.AllCustomers(t, cfg)); n != 2 {
		t.Errorf("%d customers, want 2", n)
	}
}

// postJSON POSTs a JSON body to the API and decodes the answer.
func postJSON(t *testing.T, base, path, body string) (int, map[string]any) {
	t.Helper()
	return callJSON(t, http.MethodPost, base+path, body)
}

// CONTRACT §6: a split moves the identities, and the events that came
// with them alone, to a new profile; it is remembered, so a later message
// linking the two sides records a conflict instead of merging them again;
// it is in the history with the API caller; and the 409s and 400s say
// what is wrong.
func TestASplitRestoresTwoProfilesThatStaySplitWhenALaterMessageLinksThem(t *testing.T) {
	t.Parallel()
	env := harness.Services(t)
	cfg := env.Config(t)
	p := env.Producer(t)
	srv := env.StartAPI(t, cfg)
	env.StartIndexer(t, cfg)

	produce(t, p, cfg.TopicPrefix,
		msg{indexer.TopicEvents, "S1", `{"type":"identify","messageId":"s-i1","timestamp":"2026-11-20T08:00:00Z","userId":"S1","anonymousId":"dev-s1"}`},
		trackMsg("s-t1", "dev-s2", "", "2026-11-20T08:01:00Z"),
		trackMsg("s-t2", "dev-s2", "", "2026-11-20T08:02:00Z"))
	waitCustomer(t, env, cfg, "anonymous_id", "dev-s2", nil)
	produce(t, p, cfg.TopicPrefix, msg{indexer.TopicEvents, "S1", `{"type":"identify","messageId":"s-i2","timestamp":"2026-11-20T08:03:00Z","userId":"S1","anonymousId":"dev-s2"}`})
	var from string
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		doc := env.CustomerByIdentity(t, cfg, "anonymous_id", "dev-s2")
		if doc == nil || !slices.Contains(docIdentities(doc), "crm_id:S1") {
			return false, fmt.Sprintf("dev-s2 not merged with S1 yet: %v", doc)
		}
		from = doc["customer_id"].(string)
		n := eventsOf(t, env, cfg, from)
		return n == 4 && len(env.AllCustomers(t, cfg)) == 1, fmt.Sprintf("%d events on %s, want 4, one customer", n, from)
	})

	for _, bad := range []struct {
		body string
		code int
		want string
	}{
		{`{"identities":[]}`, 400, "invalid_request"},
		{`{"identities":[{"type":"shoe_size","value":"42"}]}`, 400, "invalid_request"},
		{`{}`, 400, "invalid_request"},
		{`{"identities":[{"type":"anonymous_id","value":"dev-nobody"}]}`, 409, "identity_not_on_profile"},
		{`{"identities":[{"type":"anonymous_id","value":"dev-s1"},{"type":"anonymous_id","value":"dev-s2"},{"type":"crm_id","value":"S1"}]}`, 409, "nothing_would_remain"},
	} {
		code, out := postJSON(t, srv.URL, "/v1/customers/"+from+"/split", bad.body)
		e, _ := out["error"].(map[string]any)
		if code != bad.code || e["code"] != bad.want {
			t.Errorf("split %s: %d %v, want %d %s", bad.body, code, out, bad.code, bad.want)
		}
	}
	if code, _ := postJSON(t, srv.URL, "/v1/customers/c_nobody/split", `{"identities":[{"type":"anonymous_id","value":"dev-s2"}]}`); code != 404 {
		t.Errorf("split of an unknown customer: %d, want 404", code)
	}

	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/customers/"+from+"/split", strings.NewReader(`{"identities":[{"type":"anonymous_id","value":"dev-s2"}]}`))
	req.Header.Set("Authorization", "Bearer "+harness.AdminKey(t, cfg)) // the actor the history names
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var created map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	split, _ := created["customer_id"].(string)
	if resp.StatusCode != 201 || split == "" || split == from {
		t.Fatalf("split: %d %v, want 201 with a new customer id", resp.StatusCode, created)
	}
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		a, b := env.CustomerByIdentity(t, cfg, "anonymous_id", "dev-s2"), env.CustomerByIdentity(t, cfg, "crm_id", "S1")
		if a == nil || b == nil || a["customer_id"] != split || b["customer_id"] != from {
			return false, fmt.Sprintf("dev-s2 on %v, S1 on %v; want %s and %s", a, b, split, from)
		}
		na, nb := eventsOf(t, env, cfg, split), eventsOf(t, env, cfg, from)
		ia, ib := docIdentities(a), docIdentities(b)
		return na == 2 && nb == 2 && slices.Equal(ia, []string{"anonymous_id:dev-s2"}) && slices.Equal(ib, []string{"anonymous_id:dev-s1", "crm_id:S1"}),
			fmt.Sprintf("split side %v with %d events (want dev-s2, 2: its tracks), the other %v with %d (want dev-s1 and S1, 2: the identifies)", ia, na, ib, nb)
	})

	// A later message linking the two sides: a conflict, no merge.
	produce(t, p, cfg.TopicPrefix, trackMsg("s-t3", "dev-s2", "S1", "2026-11-20T09:00:00Z"))
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		_, view := getJSON(t, srv.URL, "/v1/customers/"+from)
		cs, _ := view["identity_conflicts"].([]any)
		for _, c := range cs {
			if c.(map[string]any)["reason"] == "split" {
				return true, ""
			}
		}
		return false, fmt.Sprintf("conflicts of %s: %v, want a split conflict", from, cs)
	})
	if n := len(env.AllCustomers(t, cfg)); n != 2 {
		t.Errorf("%d customers after a message linked the split sides, want 2", n)
	}
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		_, h := getJSON(t, srv.URL, "/v1/customers/"+split+"/identity-history")
		entries, _ := h["history"].([]any)
		for _, e := range entries {
			m := e.(map[string]any)
			src, _ := m["source"].(map[string]any)
			if m["action"] == "split" && src["api"] == "split" && src["actor"] == "key:test-admin" {
				return true, ""
			}
		}
		return false, fmt.Sprintf("history of %s: %v, want the split by key:test-admin", split, entries)
	})
}

// CONTRACT §6: alias's previousId is taken as a crm_id where a profile
// holds it as one: aliasing one CRM customer to another is two crm ids,
// a conflict on both, and previousId is not taken as a device.
func TestAnAliasWhosePreviousIDIsAHeldCRMIDIsReadAsOne(t *testing.T) {
	t.Parallel()
	env := harness.Services(t)
	cfg := env.Config(t)
	p := env.Producer(t)
	srv := env.StartAPI(t, cfg)
	env.StartIndexer(t, cfg)

	produce(t, p, cfg.TopicPrefix, trackMsg("p-1", "dev-p1", "P-OLD", "2026-11-20T08:00:00Z"), trackMsg("p-2", "dev-p2", "P-NEW", "2026-11-20T08:00:01Z"))
	old := waitCustomer(t, env, cfg, "crm_id", "P-OLD", nil)
	waitCustomer(t, env, cfg, "crm_id", "P-NEW", nil)
	produce(t, p, cfg.TopicPrefix, msg{indexer.TopicEvents, "P-NEW", `{"type":"alias","messageId":"p-al","timestamp":"2026-11-20T08:01:00Z","previousId":"P-OLD","userId":"P-NEW"}`})
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		_, view := getJSON(t, srv.URL, "/v1/customers/"+old["customer_id"].(string))
		cs, _ := view["identity_conflicts"].([]any)
		return len(cs) == 1, fmt.Sprintf("conflicts on P-OLD's profile: %v, want the alias's", cs)
	})
	if doc := env.CustomerByIdentity(t, cfg, "anonymous_id", "P-OLD"); doc != nil {
		t.Errorf("previousId P-OLD was taken as a device of %v", doc["customer_id"])
	}
	if n := len(env.AllCustomers(t, cfg)); n != 2 {
		t.Errorf("%d customers, want 2", n)
	}
}

// CONTRACT §6: a CRM customers row and a track of its customer on a
// device, applied side by side (the events and the changes of one batch
// are resolved at once, by two writers racing for the crm_id), make one
// profile holding every identity of both, the crm_id, the row's phone and
// email and the device, with nothing merged. The writer that loses the
// race redoes its pass; what it claimed before losing must still reach
// the person (and so the document), and the profile it minted in vain
// must not show up as a merge.
func TestACRMRowAndATrackOfItsCustomerResolvedSideBySideKeepEveryIdentity(t *testing.T) {
	t.Parallel()
	env := harness.Services(t)
	cfg := env.Config(t)
	cfg.BatchWait = time.Second // take everything produced before the start in few batches
	env.CreateTopics(t, cfg)
	p := env.Producer(t)
	const n = 400
	var msgs []msg
	for i := range n {
		id := 9500 + i
		msgs = append(msgs,
			change(indexer.TopicCustomers, "c", id, map[string]any{"name": "王五", "phone": fmt.Sprintf("139%08d", id), "email": fmt.Sprintf("w%d@example.com", id)}, 1),
			trackMsg(fmt.Sprintf("s-%d", id), fmt.Sprintf("dev-s%d", id), fmt.Sprint(id), "2026-11-20T08:00:00Z"))
	}
	produce(t, p, cfg.TopicPrefix, msgs...)
	reg := env.StartIndexer(t, cfg)
	env.WaitIdle(t, cfg, 2*time.Minute)
	state, err := env.ReadOneID(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	bad := state.Problems
	for i := range n {
		id := 9500 + i
		key := fmt.Sprintf("crm_id:%d", id)
		want := []string{fmt.Sprintf("anonymous_id:dev-s%d", id), key, fmt.Sprintf("email:w%d@example.com", id), fmt.Sprintf("phone:+86139%08d", id)}
		got, ok := state.People[key]
		switch {
		case !ok:
			bad = append(bad, key+": no document")
		case !slices.Equal(got.Identities, want) || got.MergedAway != 0:
			bad = append(bad, fmt.Sprintf("%s: %s holds %v with %d merged away, want %v and none", key, state.CustomerIDs[key], got.Identities, got.MergedAway, want))
		}
	}
	if len(bad) > 0 || len(state.People) != n {
		t.Errorf("%d customers, want %d; %d wrong:\n%s", len(state.People), n, len(bad), strings.Join(bad[:min(len(bad), 10)], "\n"))
	}
	if m := harness.Counter(t, reg, "cdp_indexer_oneid_total", "what", "merge"); m != 0 {
		t.Errorf("%v merges, want none: each customer's first profile holds its crm_id", m)
	}
}

// CONTRACT §2 and §6: last_seen_at is the latest timestamp of the
// customer's events, and a split moves the events that came with the
// split identities alone. A CRM customer whose phone a new device used,
// split from that phone and device, keeps none of the device's events:
// its last_seen_at goes with them.
func TestASplitTakesTheLastSeenOfTheEventsItMovesAway(t *testing.T) {
	t.Parallel()
	env := harness.Services(t)
	cfg := env.Config(t)
	p := env.Producer(t)
	srv := env.StartAPI(t, cfg)
	env.StartIndexer(t, cfg)

	produce(t, p, cfg.TopicPrefix,
		change(indexer.TopicCustomers, "c", 9701, map[string]any{"name": "孙七", "phone": "13800139701"}, 1),
		msg{indexer.TopicEvents, "dev-97", `{"type":"identify","messageId":"ls-1","timestamp":"2026-11-20T08:00:00Z","anonymousId":"dev-97","traits":{"phone":"13800139701"}}`},
		trackMsg("ls-2", "dev-97", "", "2026-11-20T08:01:00Z"))
	var cid string
	waitCustomer(t, env, cfg, "anonymous_id", "dev-97", func(doc map[string]any) (bool, string) {
		cid, _ = doc["customer_id"].(string)
		m, _ := doc["metrics"].(map[string]any)
		return slices.Contains(docIdentities(doc), "crm_id:9701") && m["last_seen_at"] != nil, fmt.Sprintf("dev-97 on %v with %v, metrics %v", cid, docIdentities(doc), m)
	})
	code, out := postJSON(t, srv.URL, "/v1/customers/"+cid+"/split", `{"identities":[{"type":"phone","value":"13800139701"},{"type":"anonymous_id","value":"dev-97"}]}`)
	if code != http.StatusCreated {
		t.Fatalf("split: %d %v", code, out)
	}
	env.WaitIdle(t, cfg, 30*time.Second)
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		n := eventsOf(t, env, cfg, cid)
		doc := env.CustomerByIdentity(t, cfg, "crm_id", "9701")
		m, _ := doc["metrics"].(map[string]any)
		return n == 0 && m["last_seen_at"] == nil, fmt.Sprintf("%s keeps %d events (want 0) and last_seen_at %v (want none)", cid, n, m["last_seen_at"])
	})
}
