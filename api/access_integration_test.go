package api_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"cdp/access"
	"cdp/api"
	"cdp/audit"
	"cdp/config"
	"cdp/mapping"
	"cdp/store"
	"cdp/testing/harness"
)

// issuer is a local OIDC issuer: an httptest server with its own RSA key,
// serving discovery and its JWKS, minting tokens.
type issuer struct {
	srv *httptest.Server
	key *rsa.PrivateKey
}

func newIssuer(t *testing.T) *issuer {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	is := &issuer{key: key}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": is.srv.URL, "jwks_uri": is.srv.URL + "/jwks"})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, _ *http.Request) {
		b64 := base64.RawURLEncoding.EncodeToString
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []any{map[string]string{
			"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
			"n": b64(key.N.Bytes()), "e": b64(big.NewInt(int64(key.E)).Bytes())}}})
	})
	is.srv = httptest.NewServer(mux)
	t.Cleanup(is.srv.Close)
	return is
}

// token mints a JWT of this issuer (iss overridable) for the audience.
func (is *issuer) token(t *testing.T, iss, aud, sub, role string, exp time.Time) string {
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": iss, "aud": aud, "sub": sub, "cdp_role": role,
		"exp": exp.Unix(), "iat": time.Now().Add(-time.Minute).Unix()})
	tok.Header["kid"] = "k1"
	s, err := tok.SignedString(is.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// People of the access dataset: their names, phones and emails must
// never reach a marketer in clear.
var accessPeople = []struct {
	id, name, phone, email, owner string
}{
	{"a1", "张三丰", "+8613812345678", "zhangsf@example.com", ""},
	{"a2", "欧阳娜娜", "+8613987654321", "ouyang@example.org", "alice"},
	{"a3", "Emily Watson", "+8613711112222", "emily.w@example.net", "bob"},
	{"a4", "李四海", "+8613633334444", "lisihai@example.cn", "alice"},
}

type accessTest struct {
	t       *testing.T
	env     *harness.Env
	cfg     *config.Config
	srv     *httptest.Server
	is      *issuer
	st      *store.Client
	keys    map[string]string // role → key
	segment string
	mu      sync.Mutex
	n       int
	// since is when the first call was made; calls are every call made
	// through call, for the audit trail's accounting.
	since time.Time
	calls []sentCall
}

// sentCall is one request call made and its answer's status.
type sentCall struct {
	token, method, path string
	status              int
	code                string // the error's code, for a refusal
}

// setupAccess serves one API with an OIDC issuer over the access dataset,
// shared by the tests of this file, with a key of every role.
func setupAccess(t *testing.T) *accessTest {
	env := harness.Services(t)
	{
		cfg := env.Config(t)
		cfg.ExportDir = t.TempDir()
		env.Bootstrap(t, cfg)
		is := newIssuer(t)
		o, err := access.NewOIDC(context.Background(), access.OIDCConfig{Issuer: is.srv.URL, Audience: "cdp-test"})
		if err != nil {
			t.Fatal(err)
		}
		a := &accessTest{t: t, env: env, cfg: cfg, is: is, st: env.Store(t), keys: map[string]string{}, since: time.Now().UTC()}
		a.srv = harness.ServeAccess(t, cfg, api.WithOIDC(o))
		env.StartExportRunner(t, cfg, "access", nil)
		var ops []store.Op
		for _, p := range accessPeople {
			doc := map[string]any{"customer_id": p.id, "relation": "customer", "name": p.name, "phone": p.phone, "email": p.email,
				"city": "北京", "tags": []string{}, "attrs": map[string]any{"nickname": "n-" + p.id}, "orders": []any{},
				"metrics":    map[string]any{"order_count": 0, "total_spend": 0},
				"identities": []map[string]any{{"type": "crm_id", "value": "crm-" + p.id}, {"type": "phone", "value": p.phone}, {"type": "email", "value": p.email}}}
			if p.owner != "" {
				doc["owner_id"] = p.owner
			}
			ops = append(ops, store.Op{Action: store.Index, Index: mapping.Customers.Alias(cfg.IndexPrefix), ID: p.id, Body: doc})
			for _, id := range [][2]string{{"crm_id", "crm-" + p.id}, {"phone", p.phone}, {"email", p.email}} {
				ops = append(ops, store.Op{Action: store.Index, Index: mapping.Identities.Alias(cfg.IndexPrefix), ID: id[0] + ":" + id[1],
					Body: map[string]any{"type": id[0], "value": id[1], "customer_id": p.id}})
			}
		}
		// A merge in a1's identity history, naming the identities that
		// joined the two profiles.
		a1, a4 := accessPeople[0], accessPeople[3]
		ops = append(ops, store.Op{Action: store.Index, Index: mapping.IdentityHistory.Alias(cfg.IndexPrefix), ID: "merge-a1-a4",
			Body: map[string]any{"at": "2026-11-20T08:00:00Z", "action": "merge", "customer_ids": []string{"a1", "a4"},
				"identities": []map[string]any{{"type": "phone", "value": a1.phone}, {"type": "email", "value": a4.email}},
				"source":     map[string]any{"topic": "cdp.events", "partition": 0, "offset": 7}}})
		if _, err := a.st.Bulk(context.Background(), ops); err != nil {
			t.Fatal(err)
		}
		if err := a.st.Refresh(context.Background(), mapping.Customers.Alias(cfg.IndexPrefix), mapping.Identities.Alias(cfg.IndexPrefix), mapping.IdentityHistory.Alias(cfg.IndexPrefix)); err != nil {
			t.Fatal(err)
		}
		admin := harness.AdminKey(t, cfg)
		a.keys["admin"] = admin
		for _, r := range []struct{ name, role string }{{"m1", "marketer"}, {"alice", "sales"}, {"svc", "service"}, {"ing", "ingest"}} {
			code, body := a.call(admin, "POST", "/v1/keys", fmt.Sprintf(`{"name":%q,"role":%q}`, r.name, r.role))
			if code != http.StatusCreated {
				t.Fatalf("POST /v1/keys %s: %d %s", r.role, code, body)
			}
			var k struct{ Key string }
			_ = json.Unmarshal(body, &k)
			a.keys[r.role] = k.Key
		}
		code, body := a.call(admin, "POST", "/v1/segments", `{"name":"everyone","filter":{"all":[]}}`)
		var seg struct{ ID string }
		if code != http.StatusCreated || json.Unmarshal(body, &seg) != nil {
			t.Fatalf("POST /v1/segments: %d %s", code, body)
		}
		a.segment = seg.ID
		return a
	}
}

// call sends one request with the token ("" for none).
func (a *accessTest) call(token, method, path, body string) (int, []byte) {
	a.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, a.srv.URL+path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal(raw, &e)
	a.mu.Lock()
	a.calls = append(a.calls, sentCall{token, method, path, resp.StatusCode, e.Error.Code})
	a.mu.Unlock()
	return resp.StatusCode, raw
}

// auditedAs is CONTRACT §7's audit action of a request ("" for none),
// matched on the path alone: the test's own reading of the contract,
// not the API's table.
func auditedAs(method, path string) string {
	path, query, _ := strings.Cut(path, "?")
	p := strings.Split(strings.TrimPrefix(path, "/v1/"), "/")
	switch {
	case method == "GET" && len(p) == 1 && p[0] == "customers" && strings.Contains(query, "q="):
		return "searchbox.query"
	case method == "GET" && len(p) == 2 && p[0] == "customers": // lookup and 360
		return "customer.view"
	case method == "GET" && len(p) == 3 && p[0] == "customers" && p[2] == "identity-history":
		return "customer.view"
	case method == "POST" && len(p) == 2 && p[0] == "customers" && p[1] == "search":
		return "customer.search"
	case method == "POST" && len(p) == 3 && p[0] == "customers" && p[2] == "tags":
		return "tag.update"
	case method == "POST" && len(p) == 1 && p[0] == "exports",
		method == "GET" && len(p) == 3 && p[0] == "segments" && p[2] == "export":
		return "export.create"
	case method == "GET" && len(p) == 3 && p[0] == "exports" && p[2] == "download":
		return "export.download"
	case len(p) <= 2 && (p[0] == "segments" || p[0] == "tags" || p[0] == "keys"):
		kind := map[string]string{"segments": "segment", "tags": "tag", "keys": "key"}[p[0]]
		switch {
		case method == "POST" && len(p) == 1:
			return kind + ".create"
		case method == "PUT" && len(p) == 2 && kind != "key":
			return kind + ".update"
		case method == "DELETE" && len(p) == 2:
			if kind == "key" {
				return "key.revoke"
			}
			return kind + ".delete"
		}
	case method == "POST" && len(p) == 1 && p[0] == "fields":
		return "field.declare"
	}
	return ""
}

// principalOf is who a token is to the audit trail: the setup's keys by
// name, a JWT by its (unverified) sub and cdp_role.
func (a *accessTest) principalOf(token string) (actor, role string) {
	names := map[string]string{"admin": "test-admin", "marketer": "m1", "sales": "alice", "service": "svc", "ingest": "ing"}
	for r, tok := range a.keys {
		if tok == token {
			return "key:" + names[r], r
		}
	}
	var claims jwt.MapClaims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &claims); err == nil {
		sub, _ := claims["sub"].(string)
		role, _ := claims["cdp_role"].(string)
		return sub, role
	}
	return "?", "?"
}

// theAuditTrailHoldsOneRecordPerAuditedCallOfTheseTests checks the whole
// trail since the setup against every call the tests made through a:
// each 401, and each 403 of the role's policy ("forbidden"), an
// auth.denied; each audited route's answer (a handler's 403 included)
// its action with the status; any other 403 an auth.denied; nothing
// else.
func theAuditTrailHoldsOneRecordPerAuditedCallOfTheseTests(t *testing.T, a *accessTest) {
	a.mu.Lock()
	calls := slices.Clone(a.calls)
	a.mu.Unlock()
	want := map[string]int{}
	for _, c := range calls {
		action := auditedAs(c.method, c.path)
		actor, role := "", ""
		switch {
		case c.status == http.StatusUnauthorized:
			action = "auth.denied"
		case c.status == http.StatusForbidden && (action == "" || c.code == "forbidden"):
			action = "auth.denied"
			actor, role = a.principalOf(c.token)
		case action != "":
			actor, role = a.principalOf(c.token)
		}
		if action != "" {
			want[fmt.Sprintf("%s|%s|%s|%d", actor, role, action, c.status)]++
		}
	}
	records := 0
	for _, n := range want {
		records += n
	}
	t.Logf("%d calls, %d audit records expected", len(calls), records)
	harness.Eventually(t, 20*time.Second, func() (bool, string) {
		got := map[string]int{}
		for _, r := range a.auditSince(a.keys["admin"], a.since) {
			got[fmt.Sprintf("%s|%s|%s|%d", r.Actor, r.Role, r.Action, r.Status)]++
		}
		for k, n := range want {
			if got[k] != n {
				return false, fmt.Sprintf("%d audit records %s, want %d (of %d calls)", got[k], k, n, len(calls))
			}
		}
		for k, n := range got {
			if want[k] == 0 {
				return false, fmt.Sprintf("%d audit records %s, for no call of these tests", n, k)
			}
		}
		return true, ""
	})
}

func (a *accessTest) next() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.n++
	return a.n
}

// route is one request of the matrix and the answer a role allowed to
// make it gets.
type route struct {
	method, path, body string
	ok                 int
	roles              []string // the roles allowed besides admin
	// salesOK, when not 0, is what sales gets instead of ok (scope).
	salesOK int
	// audit is the action CONTRACT §7 records for the route ("" for a
	// route it does not audit).
	audit string
}

func (a *accessTest) routes() []route {
	mk := []string{"marketer"}
	return []route{
		{"GET", "/v1/customers?q=" + url.QueryEscape("张三"), "", 200, []string{"sales", "service"}, 0, "searchbox.query"},
		{"GET", "/v1/customers/lookup?type=crm_id&value=crm-a1", "", 200, []string{"marketer", "sales", "service"}, 0, "customer.view"},
		{"GET", "/v1/customers/lookup?type=crm_id&value=crm-a3", "", 200, []string{"marketer", "sales", "service"}, 404, "customer.view"},
		{"POST", "/v1/customers/search", `{"filter":{"all":[]}}`, 200, []string{"marketer", "sales"}, 0, "customer.search"},
		{"POST", "/v1/customers/count", `{"filter":{"all":[]}}`, 200, []string{"marketer", "sales"}, 0, ""},
		{"POST", "/v1/filters/translate", `{"filter":{"all":[]}}`, 200, mk, 0, ""},
		{"POST", "/v1/filters/preview", `{"filter":{"all":[]},"sample":5}`, 200, mk, 0, ""},
		{"POST", "/v1/segments", `{"name":"s{n}","filter":{"field":"city","op":"eq","value":"北京"}}`, 201, mk, 0, "segment.create"},
		{"GET", "/v1/segments", "", 200, mk, 0, ""},
		{"GET", "/v1/segments/" + a.segment, "", 200, mk, 0, ""},
		{"PUT", "/v1/segments/missing", `{"name":"x","filter":{"all":[]}}`, 404, mk, 0, "segment.update"},
		{"DELETE", "/v1/segments/missing", "", 404, mk, 0, "segment.delete"},
		{"GET", "/v1/segments/" + a.segment + "/export?format=ndjson", "", 200, mk, 0, "export.create"},
		{"POST", "/v1/tags", `{"name":"t{n}","filter":{"field":"city","op":"eq","value":"北京"}}`, 201, mk, 0, "tag.create"},
		{"GET", "/v1/tags", "", 200, mk, 0, ""},
		{"GET", "/v1/tags/missing", "", 404, mk, 0, ""},
		{"PUT", "/v1/tags/missing", `{"filter":{"field":"city","op":"eq","value":"北京"}}`, 404, mk, 0, "tag.update"},
		{"DELETE", "/v1/tags/missing", "", 404, mk, 0, "tag.delete"},
		{"POST", "/v1/customers/a1/tags", `{"add":["called"]}`, 200, []string{"sales"}, 0, "tag.update"},
		{"POST", "/v1/customers/a3/tags", `{"add":["called"]}`, 200, []string{"sales"}, 404, "tag.update"},
		{"POST", "/v1/exports", `{"filter":{"all":[]},"format":"ndjson"}`, 202, mk, 0, "export.create"},
		{"GET", "/v1/exports", "", 200, mk, 0, ""},
		{"GET", "/v1/exports/missing", "", 404, mk, 0, ""},
		{"GET", "/v1/exports/missing/download", "", 404, mk, 0, "export.download"},
		{"DELETE", "/v1/exports/missing", "", 404, mk, 0, ""},
		{"GET", "/v1/fields", "", 200, mk, 0, ""},
		{"GET", "/v1/fields/city/values", "", 200, mk, 0, ""},
		{"POST", "/v1/fields", `{"name":"attrs.access_level","type":"keyword"}`, 0, mk, 0, "field.declare"},
		{"GET", "/v1/customers/a1", "", 200, []string{"marketer", "sales", "service"}, 0, "customer.view"},
		{"GET", "/v1/customers/a2", "", 200, []string{"marketer", "sales", "service"}, 0, "customer.view"},
		{"GET", "/v1/customers/a3", "", 200, []string{"marketer", "sales", "service"}, 404, "customer.view"},
		{"GET", "/v1/customers/a1/identity-history", "", 0, []string{"marketer", "sales", "service"}, 0, "customer.view"},
		{"POST", "/v1/customers/missing/split", `{"identities":[{"type":"crm_id","value":"crm-missing"}]}`, 0, nil, 0, ""},
		{"POST", "/v1/keys", `{"name":"k{n}","role":"service"}`, 201, nil, 0, "key.create"},
		{"GET", "/v1/keys", "", 200, nil, 0, ""},
		{"DELETE", "/v1/keys/0000000000000000", "", 404, nil, 0, "key.revoke"},
		{"GET", "/v1/audit", "", 200, nil, 0, ""},
	}
}

// TestEveryRouteAnswersEachCallerAsItsRoleAllows calls every /v1 route
// with no token, bad tokens, a revoked key, expired and foreign JWTs and
// each role: 401, 403, the scope's 404 or the route's own answer, and
// never a 5xx.
func everyRouteAnswersEachCallerAsItsRoleAllows(t *testing.T, a *accessTest) {
	admin := a.keys["admin"]
	// Every call below leaves exactly the audit records CONTRACT §7
	// says, counted here by actor, role, action and status.
	since := time.Now().UTC()
	audited := map[string]int{}
	expect := func(actor, role, action string, status int) {
		audited[fmt.Sprintf("%s|%s|%s|%d", actor, role, action, status)]++
	}
	// A revoked key.
	expect("key:test-admin", "admin", "key.create", 201)
	expect("key:test-admin", "admin", "key.revoke", 200)
	code, body := a.call(admin, "POST", "/v1/keys", `{"name":"gone","role":"admin"}`)
	var k struct{ ID, Key string }
	if code != 201 || json.Unmarshal(body, &k) != nil {
		t.Fatalf("POST /v1/keys: %d %s", code, body)
	}
	code, body = a.call(admin, "DELETE", "/v1/keys/"+k.ID, "")
	if code != 200 {
		t.Fatalf("DELETE /v1/keys/%s: %d %s", k.ID, code, body)
	}
	if strings.Contains(string(body), k.Key) {
		t.Errorf("a key's token came back after it was created: %s", body)
	}
	iss := a.is.srv.URL
	other := newIssuer(t)
	unauthenticated := map[string]string{
		"no token":              "",
		"a bad token":           "not-a-token",
		"a wrong key":           "cdpk_" + k.ID + "_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"a revoked key":         k.Key,
		"an expired JWT":        a.is.token(t, iss, "cdp-test", "carol", "admin", time.Now().Add(-time.Hour)),
		"a JWT of another aud":  a.is.token(t, iss, "someone-else", "carol", "admin", time.Now().Add(time.Hour)),
		"a JWT of another iss":  other.token(t, other.srv.URL, "cdp-test", "carol", "admin", time.Now().Add(time.Hour)),
		"a JWT signed by other": other.token(t, iss, "cdp-test", "carol", "admin", time.Now().Add(time.Hour)),
	}
	callers := map[string]string{
		"admin": admin, "marketer": a.keys["marketer"], "sales": a.keys["sales"], "service": a.keys["service"], "ingest": a.keys["ingest"],
	}
	oidcCallers := map[string]string{
		"marketer": a.is.token(t, iss, "cdp-test", "mary", "marketer", time.Now().Add(time.Hour)),
		"sales":    a.is.token(t, iss, "cdp-test", "alice", "sales", time.Now().Add(time.Hour)),
	}
	actors := map[string]string{ // token → its actor in the audit trail
		admin: "key:test-admin", a.keys["marketer"]: "key:m1", a.keys["sales"]: "key:alice", a.keys["service"]: "key:svc", a.keys["ingest"]: "key:ing",
		oidcCallers["marketer"]: "mary", oidcCallers["sales"]: "alice",
	}
	for _, r := range a.routes() {
		for what, tok := range unauthenticated {
			expect("", "", "auth.denied", http.StatusUnauthorized)
			if code, body := a.call(tok, r.method, r.path, r.body); code != http.StatusUnauthorized || !strings.Contains(string(body), `"unauthenticated"`) {
				t.Errorf("%s %s with %s: %d %s, want 401 unauthenticated", r.method, r.path, what, code, body)
			}
		}
		check := func(how, role, tok string) {
			code, body := a.call(tok, r.method, r.path, strings.ReplaceAll(r.body, "{n}", strconv.Itoa(a.next())))
			switch {
			case code == http.StatusForbidden:
				expect(actors[tok], role, "auth.denied", code)
			case r.audit != "":
				expect(actors[tok], role, r.audit, code)
			}
			allowed := role == "admin"
			for _, x := range r.roles {
				allowed = allowed || x == role
			}
			want := r.ok
			if role == "sales" && r.salesOK != 0 {
				want = r.salesOK
			}
			switch {
			case code >= 500:
				t.Errorf("%s %s as %s (%s): %d %s", r.method, r.path, role, how, code, body)
			case !allowed && code != http.StatusForbidden:
				t.Errorf("%s %s as %s (%s): %d %s, want 403", r.method, r.path, role, how, code, body)
			case allowed && want != 0 && code != want:
				t.Errorf("%s %s as %s (%s): %d %s, want %d", r.method, r.path, role, how, code, body, want)
			case allowed && (code == 401 || code == 403):
				t.Errorf("%s %s as %s (%s): %d %s, want it allowed", r.method, r.path, role, how, code, body)
			}
		}
		for role, tok := range callers {
			check("API key", role, tok)
		}
		for role, tok := range oidcCallers {
			check("OIDC", role, tok)
		}
	}
	harness.Eventually(t, 20*time.Second, func() (bool, string) {
		got := map[string]int{}
		for _, r := range a.auditSince(admin, since) {
			got[fmt.Sprintf("%s|%s|%s|%d", r.Actor, r.Role, r.Action, r.Status)]++
		}
		for k, n := range audited {
			if got[k] != n {
				return false, fmt.Sprintf("%d audit records %s, want %d (of %d records since %s)", got[k], k, n, len(got), since)
			}
		}
		for k, n := range got {
			if audited[k] == 0 {
				return false, fmt.Sprintf("%d audit records %s, for no call of the test", n, k)
			}
		}
		return true, ""
	})
}

// auditSince reads every audit record from since on, page by page.
func (a *accessTest) auditSince(admin string, since time.Time) []audit.Record {
	var out []audit.Record
	path := "/v1/audit?size=1000&since=" + url.QueryEscape(since.Format(time.RFC3339Nano))
	for cursor := ""; ; {
		code, body := a.call(admin, "GET", path+cursor, "")
		var page struct {
			Records    []audit.Record
			NextCursor *string `json:"next_cursor"`
		}
		if code != 200 || json.Unmarshal(body, &page) != nil {
			a.t.Fatalf("GET %s: %d %.300s", path, code, body)
		}
		for _, r := range page.Records {
			if !r.At.Before(since) {
				out = append(out, r)
			}
		}
		if page.NextCursor == nil {
			return out
		}
		cursor = "&cursor=" + *page.NextCursor
	}
}

// TestAMarketerSeesNoPersonalValueInClearAnywhere queries the dataset
// through every endpoint and export a marketer may use: no answer holds
// a name, phone or email of it as a substring.
func aMarketerSeesNoPersonalValueInClearAnywhere(t *testing.T, a *accessTest) {
	m := a.keys["marketer"]
	var secrets []string
	for _, p := range accessPeople {
		secrets = append(secrets, p.name, p.phone, strings.TrimPrefix(p.phone, "+86"), p.email)
	}
	leaks := func(what string, code int, body []byte) {
		t.Helper()
		if code >= 300 {
			t.Errorf("%s: %d %s", what, code, body)
		}
		for _, s := range secrets {
			if strings.Contains(string(body), s) {
				t.Errorf("%s: the answer holds %q in clear: %.400s", what, s, body)
			}
		}
	}
	for _, r := range []struct{ method, path, body string }{
		{"POST", "/v1/customers/search", `{"filter":{"all":[]},"size":10}`},
		{"POST", "/v1/customers/search", `{"filter":{"field":"phone","op":"is_set"},"fields":["name","phone","email","identities"]}`},
		{"POST", "/v1/filters/preview", `{"filter":{"all":[]},"sample":10}`},
		{"GET", "/v1/customers/a1", ""},
		{"GET", "/v1/customers/a2", ""},
		{"GET", "/v1/customers/a3", ""},
		{"GET", "/v1/customers/lookup?type=crm_id&value=crm-a4", ""},
		{"GET", "/v1/fields/phone/values", ""},
		{"GET", "/v1/fields/email/values", ""},
		{"GET", "/v1/segments/" + a.segment + "/export?format=ndjson", ""},
		{"GET", "/v1/segments/" + a.segment + "/export?format=csv&fields=name,phone,email,identities", ""},
		{"GET", "/v1/segments/" + a.segment + "/export?format=csv", ""},
		{"GET", "/v1/customers/a1/identity-history", ""},
		{"GET", "/v1/customers/a4/identity-history", ""},
		{"POST", "/v1/customers/count", `{"filter":{"field":"phone","op":"is_set"}}`},
		{"POST", "/v1/filters/translate", `{"filter":{"field":"phone","op":"is_set"}}`},
		{"GET", "/v1/fields", ""},
	} {
		code, body := a.call(m, r.method, r.path, r.body)
		leaks(r.method+" "+r.path+" "+r.body, code, body)
	}
	// Filters an admin saved with personal values in them: a marketer
	// sees the segment and the rule, and the values masked.
	a1, a2 := accessPeople[0], accessPeople[1]
	code, body := a.call(a.keys["admin"], "POST", "/v1/segments", fmt.Sprintf(`{"name":"by-phone","filter":{"any":[{"field":"phone","op":"eq","value":%q},{"field":"email","op":"in","value":[%q]}]}}`, a1.phone, a2.email))
	var saved struct{ ID string }
	if code != http.StatusCreated || json.Unmarshal(body, &saved) != nil {
		t.Fatalf("POST /v1/segments as admin: %d %s", code, body)
	}
	if code, body := a.call(a.keys["admin"], "POST", "/v1/tags", fmt.Sprintf(`{"name":"by-name","filter":{"field":"name","op":"matches","value":%q}}`, a2.name)); code != http.StatusCreated {
		t.Fatalf("POST /v1/tags as admin: %d %s", code, body)
	}
	for _, path := range []string{"/v1/segments", "/v1/segments/" + saved.ID, "/v1/tags", "/v1/tags/by-name"} {
		code, body := a.call(m, "GET", path, "")
		leaks("GET "+path, code, body)
		if !strings.Contains(string(body), "+86138****5678") && !strings.Contains(string(body), "欧***") {
			t.Errorf("GET %s as marketer: %s, want the saved filter's values masked", path, body)
		}
	}
	if _, body := a.call(a.keys["admin"], "GET", "/v1/segments/"+saved.ID, ""); !strings.Contains(string(body), a1.phone) {
		t.Errorf("GET the segment as admin: %s, want its filter in clear", body)
	}
	// A Kafka export asked for by a marketer is masked as it is written.
	topic := a.cfg.Topic("access-audience")
	code, body = a.call(m, "POST", "/v1/exports", `{"filter":{"all":[]},"format":"ndjson","fields":["name","phone","email","identities"],"destination":{"type":"kafka","topic":"`+topic+`"}}`)
	var kjob struct{ ID string }
	if code != http.StatusAccepted || json.Unmarshal(body, &kjob) != nil {
		t.Fatalf("POST /v1/exports to Kafka as marketer: %d %s", code, body)
	}
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		code, body := a.call(m, "GET", "/v1/exports/"+kjob.ID, "")
		return code == 200 && strings.Contains(string(body), `"done"`), string(body)
	})
	records := a.env.ReadTopic(t, topic)
	if len(records) != len(accessPeople) {
		t.Errorf("the Kafka export wrote %d records, want %d", len(records), len(accessPeople))
	}
	for _, r := range records {
		leaks("a Kafka export record", 200, r.Value)
		if !strings.Contains(string(r.Value), "****") {
			t.Errorf("a Kafka export record with no masked phone: %s", r.Value)
		}
	}
	// What is masked still shows its shape.
	code, body = a.call(m, "GET", "/v1/customers/a2", "")
	for _, want := range []string{`"name":"欧***"`, `"phone":"+86139****4321"`, `"email":"o***@example.org"`} {
		if code != 200 || !strings.Contains(string(body), want) {
			t.Errorf("the 360 view of a2 as marketer: %d %s, want %s in it", code, body, want)
		}
	}
	// Filtering on a masked field: is_set only.
	for _, f := range []string{
		`{"field":"phone","op":"eq","value":"+8613812345678"}`,
		`{"all":[{"field":"city","op":"eq","value":"北京"},{"field":"email","op":"starts_with","value":"z"}]}`,
		`{"field":"name","op":"matches","value":"张"}`,
	} {
		for _, path := range []string{"/v1/customers/search", "/v1/customers/count", "/v1/filters/preview", "/v1/filters/translate", "/v1/segments", "/v1/exports"} {
			body := `{"filter":` + f + `}`
			if path == "/v1/segments" {
				body = `{"name":"bisect","filter":` + f + `}`
			}
			code, raw := a.call(m, "POST", path, body)
			if code != http.StatusForbidden || !strings.Contains(string(raw), `"forbidden_field"`) || !strings.Contains(string(raw), `"path":"`) {
				t.Errorf("POST %s %s as marketer: %d %s, want 403 forbidden_field with a path", path, f, code, raw)
			}
		}
	}
	if code, raw := a.call(m, "POST", "/v1/customers/search", `{"filter":{"all":[]},"sort":[{"field":"phone","order":"asc"}]}`); code != http.StatusForbidden || !strings.Contains(string(raw), `"sort[0].field"`) {
		t.Errorf("a search sorted by phone as marketer: %d %s, want 403 forbidden_field at sort[0].field", code, raw)
	}
	// Looking a customer up by a masked identity would confirm whose it is.
	for _, q := range []string{"type=phone&value=" + url.QueryEscape(accessPeople[0].phone), "type=email&value=" + url.QueryEscape(accessPeople[0].email)} {
		if code, raw := a.call(m, "GET", "/v1/customers/lookup?"+q, ""); code != http.StatusForbidden || !strings.Contains(string(raw), `"forbidden_field"`) || !strings.Contains(string(raw), `"path":"type"`) || !strings.Contains(string(raw), "cannot be looked up by it") {
			t.Errorf("GET /v1/customers/lookup?%s as marketer: %d %s, want 403 forbidden_field at type, saying it cannot be looked up by it", q, code, raw)
		}
	}
	if code, raw := a.call(m, "GET", "/v1/fields/phone/values?q=138", ""); code != http.StatusForbidden {
		t.Errorf("values of phone narrowed by q as marketer: %d %s, want 403", code, raw)
	}
	// An export job: the file is masked as it is written.
	code, body = a.call(m, "POST", "/v1/exports", `{"filter":{"field":"email","op":"is_set"},"format":"csv","fields":["name","phone","email"]}`)
	var job struct{ ID string }
	if code != http.StatusAccepted || json.Unmarshal(body, &job) != nil {
		t.Fatalf("POST /v1/exports as marketer: %d %s", code, body)
	}
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		code, body := a.call(m, "GET", "/v1/exports/"+job.ID, "")
		return code == 200 && strings.Contains(string(body), `"done"`), string(body)
	})
	code, body = a.call(m, "GET", "/v1/exports/"+job.ID+"/download", "")
	leaks("the export job's file", code, body)
	if !strings.Contains(string(body), "欧***") {
		t.Errorf("the export job's file has no masked name: %s", body)
	}
	// An admin's job (its filter names a phone, its file is in clear) is
	// the admin's: absent to a marketer, in the list and by id.
	code, body = a.call(a.keys["admin"], "POST", "/v1/exports", fmt.Sprintf(`{"filter":{"not":{"field":"phone","op":"eq","value":%q}},"format":"ndjson"}`, a1.phone))
	if code != http.StatusAccepted || json.Unmarshal(body, &job) != nil {
		t.Fatalf("POST /v1/exports as admin: %d %s", code, body)
	}
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		code, body := a.call(a.keys["admin"], "GET", "/v1/exports/"+job.ID, "")
		return code == 200 && strings.Contains(string(body), `"done"`), string(body)
	})
	code, body = a.call(m, "GET", "/v1/exports", "")
	leaks("GET /v1/exports as marketer", code, body)
	if strings.Contains(string(body), job.ID) || !strings.Contains(string(body), kjob.ID) {
		t.Errorf("GET /v1/exports as marketer: %s, want the marketer's job %s and not the admin's %s", body, kjob.ID, job.ID)
	}
	for _, r := range []struct{ method, path string }{
		{"GET", "/v1/exports/" + job.ID}, {"GET", "/v1/exports/" + job.ID + "/download"}, {"DELETE", "/v1/exports/" + job.ID},
	} {
		if code, body := a.call(m, r.method, r.path, ""); code != http.StatusNotFound || strings.Contains(string(body), a1.phone) {
			t.Errorf("%s %s (an admin's job) as marketer: %d %.300s, want 404", r.method, r.path, code, body)
		}
	}
	if _, body := a.call(a.keys["admin"], "GET", "/v1/exports", ""); !strings.Contains(string(body), job.ID) || !strings.Contains(string(body), kjob.ID) {
		t.Errorf("GET /v1/exports as admin: %.500s, want every caller's jobs", body)
	}
}

// TestASalespersonSeesTheirOwnAndUnownedCustomersOnly: alice sees a1
// (no owner), a2 and a4 (hers), never a3 (bob's), in search, count, the
// search box, 360 and lookup; by key and by OIDC token alike.
func aSalespersonSeesTheirOwnAndUnownedCustomersOnly(t *testing.T, a *accessTest) {
	tokens := map[string]string{
		"API key": a.keys["sales"],
		"OIDC":    a.is.token(t, a.is.srv.URL, "cdp-test", "alice", "sales", time.Now().Add(time.Hour)),
	}
	for how, tok := range tokens {
		code, body := a.call(tok, "POST", "/v1/customers/search", `{"filter":{"all":[]},"size":100}`)
		var res struct {
			Total     int
			Customers []struct {
				CustomerID string `json:"customer_id"`
			}
		}
		_ = json.Unmarshal(body, &res)
		var ids []string
		for _, c := range res.Customers {
			ids = append(ids, c.CustomerID)
		}
		if code != 200 || res.Total != 3 || strings.Join(ids, ",") != "a1,a2,a4" {
			t.Errorf("%s: search: %d total %d %v, want a1,a2,a4", how, code, res.Total, ids)
		}
		if code, body := a.call(tok, "POST", "/v1/customers/count", `{"filter":{"field":"city","op":"eq","value":"北京"}}`); code != 200 || string(body) != `{"count":3}` {
			t.Errorf("%s: count: %d %s, want 3", how, code, body)
		}
		// The search box: Emily (bob's) is not found, 张三丰 is.
		if code, body := a.call(tok, "GET", "/v1/customers?q=Emily", ""); code != 200 || !strings.Contains(string(body), `"total":0`) {
			t.Errorf("%s: search box for bob's customer: %d %s, want nothing", how, code, body)
		}
		if code, body := a.call(tok, "GET", "/v1/customers?q="+url.QueryEscape("张三丰"), ""); code != 200 || !strings.Contains(string(body), `"a1"`) {
			t.Errorf("%s: search box for an unowned customer: %d %s, want a1", how, code, body)
		}
		for _, c := range []struct {
			path string
			want int
		}{
			{"/v1/customers/a2", 200}, {"/v1/customers/a3", 404}, {"/v1/customers/a1", 200},
			{"/v1/customers/lookup?type=phone&value=13711112222", 404}, {"/v1/customers/lookup?type=phone&value=13633334444", 200},
		} {
			if code, body := a.call(tok, "GET", c.path, ""); code != c.want {
				t.Errorf("%s: GET %s: %d %.200s, want %d", how, c.path, code, body, c.want)
			}
		}
	}
}

// TestTheAuditTrailRecordsWhoDidWhatWithWhichAnswer: views, exports, key
// changes and refusals each leave a record with actor, role and status;
// only an admin reads them.
func theAuditTrailRecordsWhoDidWhatWithWhichAnswer(t *testing.T, a *accessTest) {
	admin, m := a.keys["admin"], a.keys["marketer"]
	a.call(m, "GET", "/v1/customers/a1", "")
	a.call(m, "GET", "/v1/keys", "")
	a.call("cdpk_0000000000000000_nope", "GET", "/v1/fields", "")
	code, body := a.call(admin, "POST", "/v1/keys", `{"name":"audited","role":"service"}`)
	var k struct{ ID string }
	if code != 201 || json.Unmarshal(body, &k) != nil {
		t.Fatalf("POST /v1/keys: %d %s", code, body)
	}
	type rec struct {
		Actor, Role, Action, Target, IP string
		Status                          int
	}
	want := []rec{
		{Actor: "key:m1", Role: "marketer", Action: "customer.view", Target: "a1", Status: 200},
		{Actor: "key:m1", Role: "marketer", Action: "auth.denied", Target: "GET /v1/keys", Status: 403},
		{Action: "auth.denied", Target: "GET /v1/fields", Status: 401},
		{Actor: "key:test-admin", Role: "admin", Action: "key.create", Target: k.ID, Status: 201},
	}
	harness.Eventually(t, 20*time.Second, func() (bool, string) {
		code, body := a.call(admin, "GET", "/v1/audit?size=1000", "")
		var res struct{ Records []rec }
		if code != 200 || json.Unmarshal(body, &res) != nil {
			return false, fmt.Sprintf("GET /v1/audit: %d %.300s", code, body)
		}
	next:
		for _, w := range want {
			for _, r := range res.Records {
				r.IP = ""
				if r == w {
					continue next
				}
			}
			return false, fmt.Sprintf("no record %+v among %d", w, len(res.Records))
		}
		return true, ""
	})
	code, body = a.call(admin, "GET", "/v1/audit?action=key.create&actor=key:test-admin", "")
	if code != 200 || !strings.Contains(string(body), k.ID) || strings.Contains(string(body), "customer.view") {
		t.Errorf("GET /v1/audit filtered: %d %.400s", code, body)
	}
	if code, _ := a.call(m, "GET", "/v1/audit", ""); code != http.StatusForbidden {
		t.Errorf("GET /v1/audit as marketer: %d, want 403", code)
	}
}

// aKeyOverItsRateGets429WithRetryAfter: a second API over the same
// deployment whose roles file gives marketers 1 request a second.
func aKeyOverItsRateGets429WithRetryAfter(t *testing.T, a *accessTest) {
	cfg := *a.cfg
	cfg.Roles = access.DefaultRoles()
	r := cfg.Roles["marketer"]
	r.RatePerSecond, r.Burst = 1, 2
	cfg.Roles["marketer"] = r
	srv := harness.ServeAccess(t, &cfg)
	var limited *http.Response
	for i := 0; i < 4 && limited == nil; i++ {
		req, _ := http.NewRequest("GET", srv.URL+"/v1/fields", nil)
		req.Header.Set("Authorization", "Bearer "+a.keys["marketer"])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			limited = resp
		}
	}
	if limited == nil || limited.Header.Get("Retry-After") == "" {
		t.Fatalf("4 requests at once over a limit of 1/s with a burst of 2: no 429 with Retry-After (%v)", limited)
	}
	// Another key has its own budget.
	if code, body := (&accessTest{t: t, srv: srv}).call(a.keys["admin"], "GET", "/v1/fields", ""); code != 200 {
		t.Errorf("an admin beside a limited marketer: %d %.200s", code, body)
	}
}

// anExportWhoseAuditRecordCannotBeWrittenFails: an API whose audit index
// is missing refuses exports and key changes with a 503, makes no key
// and revokes none.
func anExportWhoseAuditRecordCannotBeWrittenFails(t *testing.T, a *accessTest) {
	trail := audit.New(audit.Config{Index: a.cfg.IndexPrefix + "-no-such-audit"}, a.st, harness.Logger())
	t.Cleanup(trail.Close)
	srv := harness.ServeAccess(t, a.cfg, api.WithAudit(trail))
	b := &accessTest{t: t, srv: srv}
	for _, r := range []struct{ method, path, body string }{
		{"POST", "/v1/exports", `{"filter":{"all":[]},"format":"ndjson"}`},
		{"GET", "/v1/segments/" + a.segment + "/export?format=ndjson", ""},
		{"POST", "/v1/keys", `{"name":"unaudited","role":"admin"}`},
		{"DELETE", "/v1/keys/" + a.keyID("service"), ""},
	} {
		code, body := b.call(a.keys["admin"], r.method, r.path, r.body)
		if code != http.StatusServiceUnavailable || !strings.Contains(string(body), "audit_unavailable") || strings.Contains(string(body), "cdpk_") {
			t.Errorf("%s %s with the audit trail down: %d %.300s, want 503 audit_unavailable and nothing else", r.method, r.path, code, body)
		}
	}
	if code, body := a.call(a.keys["admin"], "GET", "/v1/keys", ""); code != 200 || strings.Contains(string(body), `"unaudited"`) {
		t.Errorf("the keys after a refused POST /v1/keys: %d %.500s, want no key named unaudited", code, body)
	}
	if code, body := a.call(a.keys["service"], "GET", "/v1/customers/a1", ""); code != 200 {
		t.Errorf("the service key after a refused revocation: %d %.200s, want it still valid", code, body)
	}
}

// keyID is the id of the key of role (its token is cdpk_<id>_<secret>).
func (a *accessTest) keyID(role string) string {
	id, _, _ := strings.Cut(strings.TrimPrefix(a.keys[role], "cdpk_"), "_")
	return id
}

// TestAccess runs the access tests over one shared API and dataset (one
// setup for all: the dataset is small, the setup is not free).
func TestAccess(t *testing.T) {
	a := setupAccess(t)
	t.Run("EveryRouteAnswersEachCallerAsItsRoleAllows", func(t *testing.T) { a.t = t; everyRouteAnswersEachCallerAsItsRoleAllows(t, a) })
	t.Run("AMarketerSeesNoPersonalValueInClearAnywhere", func(t *testing.T) { a.t = t; aMarketerSeesNoPersonalValueInClearAnywhere(t, a) })
	t.Run("ASalespersonSeesTheirOwnAndUnownedCustomersOnly", func(t *testing.T) { a.t = t; aSalespersonSeesTheirOwnAndUnownedCustomersOnly(t, a) })
	t.Run("AKeyOverItsRateGets429WithRetryAfter", func(t *testing.T) { a.t = t; aKeyOverItsRateGets429WithRetryAfter(t, a) })
	t.Run("AnExportWhoseAuditRecordCannotBeWrittenFails", func(t *testing.T) { a.t = t; anExportWhoseAuditRecordCannotBeWrittenFails(t, a) })
	t.Run("TheAuditTrailRecordsWhoDidWhatWithWhichAnswer", func(t *testing.T) { a.t = t; theAuditTrailRecordsWhoDidWhatWithWhichAnswer(t, a) })
	t.Run("TheAuditTrailHoldsOneRecordPerAuditedCallOfTheseTests", func(t *testing.T) {
		a.t = t
		theAuditTrailHoldsOneRecordPerAuditedCallOfTheseTests(t, a)
	})
}
