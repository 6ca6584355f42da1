package console_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"

	"cdp/access"
	"cdp/api"
	"cdp/demo"
	"cdp/testing/harness"
)

// ssoIssuer is an OIDC issuer of the test's own: discovery, JWKS, an
// authorization endpoint that approves at once (redirecting back with a
// code for its subject and role) and a token endpoint that checks the
// PKCE verifier and answers RS256 JWTs, callable from the console's
// origin (CORS).
type ssoIssuer struct {
	t        *testing.T
	key      *rsa.PrivateKey
	srv      *httptest.Server
	audience string

	mu       sync.Mutex
	console  string // the console's origin, set once it is served
	sub      string
	role     string
	life     time.Duration // of the tokens
	tamper   bool          // /authorize answers with another state
	audOf    string        // when set, the audience of every token
	codes    map[string]ssoGrant
	tokens   int // token requests answered with tokens
	refusals []string
}

type ssoGrant struct {
	challenge, redirect, nonce string
}

func newSSOIssuer(t *testing.T, audience, sub, role string) *ssoIssuer {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	is := &ssoIssuer{t: t, key: key, audience: audience, sub: sub, role: role, life: 10 * time.Minute, codes: map[string]ssoGrant{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		is.cors(w)
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": is.srv.URL, "jwks_uri": is.srv.URL + "/jwks",
			"authorization_endpoint": is.srv.URL + "/authorize", "token_endpoint": is.srv.URL + "/token",
			"response_types_supported": []string{"code"}, "code_challenge_methods_supported": []string{"S256"},
			"id_token_signing_alg_values_supported": []string{"RS256"}})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, _ *http.Request) {
		b64 := base64.RawURLEncoding.EncodeToString
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []any{map[string]string{
			"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
			"n": b64(key.N.Bytes()), "e": b64(big.NewInt(int64(key.E)).Bytes())}}})
	})
	mux.HandleFunc("GET /authorize", is.authorize)
	mux.HandleFunc("OPTIONS /token", func(w http.ResponseWriter, _ *http.Request) { is.cors(w); w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("POST /token", is.token)
	is.srv = httptest.NewServer(mux)
	t.Cleanup(is.srv.Close)
	return is
}

func (is *ssoIssuer) cors(w http.ResponseWriter) {
	is.mu.Lock()
	defer is.mu.Unlock()
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", is.console)
	h.Set("Access-Control-Allow-Methods", "GET, POST")
	h.Set("Access-Control-Allow-Headers", "Content-Type")
	h.Set("Vary", "Origin")
}

// refuse answers a request the issuer does not accept, and notes it for
// the test.
func (is *ssoIssuer) refuse(w http.ResponseWriter, status int, code, why string) {
	is.mu.Lock()
	is.refusals = append(is.refusals, why)
	is.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": why})
}

func (is *ssoIssuer) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	is.mu.Lock()
	redirect := is.console + "/console/"
	tamper := is.tamper
	is.mu.Unlock()
	switch {
	case q.Get("response_type") != "code":
		is.refuse(w, 400, "unsupported_response_type", "response_type "+q.Get("response_type"))
		return
	case q.Get("client_id") != is.audience:
		is.refuse(w, 400, "unauthorized_client", "client_id "+q.Get("client_id"))
		return
	case q.Get("redirect_uri") != redirect:
		is.refuse(w, 400, "invalid_request", "redirect_uri "+q.Get("redirect_uri")+", registered "+redirect)
		return
	case q.Get("code_challenge_method") != "S256" || len(q.Get("code_challenge")) != 43:
		is.refuse(w, 400, "invalid_request", "code_challenge "+q.Get("code_challenge_method")+" "+q.Get("code_challenge"))
		return
	case q.Get("state") == "" || !strings.Contains(" "+q.Get("scope")+" ", " openid "):
		is.refuse(w, 400, "invalid_request", "state or scope missing")
		return
	}
	code := rand.Text()
	is.mu.Lock()
	is.codes[code] = ssoGrant{challenge: q.Get("code_challenge"), redirect: redirect, nonce: q.Get("nonce")}
	is.mu.Unlock()
	state := q.Get("state")
	if tamper {
		state = strings.ToUpper(state[:1]) + "x" + state[1:]
	}
	back := url.Values{"code": {code}, "state": {state}, "iss": {is.srv.URL}}
	http.Redirect(w, r, redirect+"?"+back.Encode(), http.StatusFound)
}

func (is *ssoIssuer) token(w http.ResponseWriter, r *http.Request) {
	is.cors(w)
	if err := r.ParseForm(); err != nil {
		is.refuse(w, 400, "invalid_request", err.Error())
		return
	}
	f := r.PostForm
	is.mu.Lock()
	g, ok := is.codes[f.Get("code")]
	delete(is.codes, f.Get("code")) // a code is good once
	sub, role, life, aud := is.sub, is.role, is.life, is.audOf
	is.mu.Unlock()
	sum := sha256.Sum256([]byte(f.Get("code_verifier")))
	switch {
	case f.Get("grant_type") != "authorization_code":
		is.refuse(w, 400, "unsupported_grant_type", "grant_type "+f.Get("grant_type"))
		return
	case !ok:
		is.refuse(w, 400, "invalid_grant", "unknown or used code")
		return
	case f.Get("client_id") != is.audience || f.Get("redirect_uri") != g.redirect:
		is.refuse(w, 400, "invalid_grant", "client_id or redirect_uri differ from the authorization request's")
		return
	case base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge:
		is.refuse(w, 400, "invalid_grant", "the code_verifier does not match the code_challenge")
		return
	}
	if aud == "" {
		aud = is.audience
	}
	exp := time.Now().Add(life)
	mint := func(claims jwt.MapClaims) string {
		claims["iss"], claims["sub"], claims["cdp_role"], claims["exp"], claims["iat"] = is.srv.URL, sub, role, exp.Unix(), time.Now().Unix()
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
		tok.Header["kid"] = "k1"
		s, err := tok.SignedString(is.key)
		if err != nil {
			panic(err)
		}
		return s
	}
	is.mu.Lock()
	is.tokens++
	is.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{"token_type": "Bearer", "expires_in": int(life.Seconds()),
		"access_token": mint(jwt.MapClaims{"aud": aud}), "id_token": mint(jwt.MapClaims{"aud": aud, "nonce": g.nonce})})
}

func (is *ssoIssuer) set(f func(is *ssoIssuer)) {
	is.mu.Lock()
	defer is.mu.Unlock()
	f(is)
}

func (is *ssoIssuer) counts() (tokens int, refusals []string) {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.tokens, append([]string(nil), is.refusals...)
}

// ssoReason waits for the login page to show a reason (its data-reason).
func ssoReason(reason string) chromedp.Action[chromedp.Void] {
	return chromedp.WaitReady(chromedp.CSS(fmt.Sprintf(`#main[data-ready="login"] #login-error[data-reason=%q]`, reason)))
}

func TestAMarketerLogsInThroughTheOIDCIssuerSeesPhonesMaskedAndATamperedStateIsRefused(t *testing.T) {
	chromium(t)
	customers := 300
	if v, err := strconv.Atoi(os.Getenv("CDP_CONSOLE_SSO_CUSTOMERS")); err == nil && v > 0 {
		customers = v // the demo's 10,000 to measure the console's load on it
	}
	e := harness.Services(t)
	cfg := e.Config(t)
	is := newSSOIssuer(t, "cdp-console-test", "mia@example.com", "marketer")
	// The console's client id is left to default to the audience.
	cfg.OIDCIssuer, cfg.OIDCAudience, cfg.OIDCClientID = is.srv.URL, is.audience, ""
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := e.Producer(t).SendMessages(demo.Messages(demo.Config{Customers: customers, Seed: 7, Now: time.Now()}, cfg.Topic)); err != nil {
		t.Fatal(err)
	}
	e.StartIndexer(t, cfg)
	e.Bootstrap(t, cfg)
	o, err := access.NewOIDC(context.Background(), access.OIDCConfig{Issuer: cfg.OIDCIssuer, Audience: cfg.OIDCAudience})
	if err != nil {
		t.Fatal(err)
	}
	srv := harness.ServeAccess(t, cfg, api.WithOIDC(o))
	is.set(func(is *ssoIssuer) { is.console = srv.URL })
	admin := &client{t: t, base: srv.URL, key: harness.AdminKey(t, cfg)}
	harness.Eventually(t, 3*time.Minute, func() (bool, string) {
		n := admin.count(map[string]any{"all": []any{}})
		return n == int64(customers), fmt.Sprintf("%d of %d customers indexed", n, customers)
	})
	t.Logf("%d customers indexed in %s", customers, time.Since(start).Round(time.Millisecond))
	phones, who := clearPhones(t, admin)
	whoPhone := phones[0]

	// Log in through the issuer: the console comes back logged in, the
	// code gone from the address bar.
	s := newSession(t, srv.URL, &client{t: t, base: srv.URL})
	defer s.pageErrors() // on a failure too
	s.run("open the login page", chromedp.Navigate(srv.URL+"/console/"), visible(`#sso-login`))
	if got := s.text(`#sso-login`); got != "Log in with SSO" {
		t.Errorf("the SSO button reads %q", got)
	}
	s.run("log in with SSO", click(`#sso-login`), visible(`#main[data-ready="builder"] #root`))
	if tokens, refusals := is.counts(); tokens != 1 || len(refusals) != 0 {
		t.Fatalf("the issuer answered %d token requests and refused %q", tokens, refusals)
	}
	if q := s.js(`location.search`); q != "" {
		t.Errorf("the code stays in the address bar: %q", q)
	}
	// The token kept is the issuer's, and the API takes it as the marketer.
	token := s.js(`sessionStorage.getItem('cdp.key')`)
	if st := (&client{t: t, base: srv.URL, key: token}).do(http.MethodGet, "/v1/fields", nil, nil); st != http.StatusOK || strings.Count(token, ".") != 2 {
		t.Fatalf("the console keeps %q, which the API answers %d", token, st)
	}
	if st := (&client{t: t, base: srv.URL, key: token}).do(http.MethodGet, "/v1/keys", nil, nil); st != http.StatusForbidden {
		t.Errorf("the console's token lists keys (HTTP %d): it is not the marketer's", st)
	}

	// Every phone of the preview's sample and of a 360 page is masked.
	s.run("the preview's sample", visible(`#preview-count[data-state="ready"]`), visible(`#preview-sample td`))
	// The console's first load after the redirect back, on this dataset
	// (measured, not asserted): the page's load event, and the arrival of
	// the first count.
	load := s.js(`(() => { const n = performance.getEntriesByType('navigation')[0]; return Math.round(n.loadEventEnd - n.startTime); })()`)
	count := s.js(`(() => { const r = performance.getEntriesByType('resource').find((r) => r.name.includes('/v1/filters/preview')); return r ? Math.round(r.responseEnd) : 'none'; })()`)
	t.Logf("console first load on %d customers: load event at %s ms, first count answered at %s ms after navigation start", customers, load, count)
	noClearPhone(t, "the marketer's sample", s.text(`#preview-sample`), phones)
	s.run("open a 360 page", chromedp.Navigate(srv.URL+"/console/#/customer/"+url.PathEscape(who)),
		visible(fmt.Sprintf(`#c360[data-customer=%q] .f-phone`, who)))
	if got := s.text(`#c360 .f-phone`); !strings.Contains(got, "****") || strings.Contains(got, strings.TrimPrefix(whoPhone, "+86")) {
		t.Errorf("the marketer's 360 page shows the phone %q (in clear: %s)", got, whoPhone)
	}

	// A token the API rejects (here: its signature broken) returns to the
	// login page, and is dropped.
	s.js(`(() => { const k = sessionStorage.getItem('cdp.key'); sessionStorage.setItem('cdp.key', k.slice(0, -4) + (k.endsWith('AAAA') ? 'BBBB' : 'AAAA')); location.hash = '#/segments'; })()`)
	s.run("a rejected token returns to the login page", ssoReason("rejected"))
	if k := s.js(`sessionStorage.getItem('cdp.key')`); k != "null" {
		t.Errorf("the rejected token is kept: %q", k)
	}

	// A state other than the one sent is refused, before any exchange.
	tokensBefore, _ := is.counts()
	is.set(func(is *ssoIssuer) { is.tamper = true })
	s.run("log in with a tampered state", click(`#sso-login`), ssoReason("ssoState"))
	if tokens, _ := is.counts(); tokens != tokensBefore {
		t.Errorf("the console exchanged the code of a tampered state (%d token requests, %d before)", tokens, tokensBefore)
	}
	if k := s.js(`sessionStorage.getItem('cdp.key')`); k != "null" {
		t.Errorf("a token is kept after a tampered state: %q", k)
	}
	if msg := s.text(`#login-error`); !strings.Contains(msg, "state") {
		t.Errorf("the login page says %q", msg)
	}
	if q := s.js(`location.search`); q != "" {
		t.Errorf("the refused answer stays in the address bar: %q", q)
	}

	// Tokens for another audience are not kept: the API would refuse them.
	is.set(func(is *ssoIssuer) { is.tamper, is.audOf = false, "another-api" })
	s.run("log in with tokens for another audience", click(`#sso-login`), ssoReason("ssoToken"))
	if msg := s.text(`#login-error`); !strings.Contains(msg, "audience") {
		t.Errorf("the login page says %q", msg)
	}

	// An expired token returns to the login page on its own (before the
	// API's leeway), in Chinese too.
	is.set(func(is *ssoIssuer) { is.audOf, is.life = "", 12*time.Second })
	s.run("switch to Chinese", click(`#lang`), visible(`#main[data-ready="login"] #sso-login`))
	if got := s.text(`#sso-login`); got != "通过单点登录 (SSO) 登录" {
		t.Errorf("the Chinese SSO button reads %q", got)
	}
	s.run("log in with a short-lived token", click(`#sso-login`), visible(`#nav-builder`))
	s.run("the token expires", ssoReason("expired"))
	if k := s.js(`sessionStorage.getItem('cdp.key')`); k != "null" {
		t.Errorf("the expired token is kept: %q", k)
	}
	if tokens, refusals := is.counts(); tokens != 3 || len(refusals) != 0 {
		t.Errorf("the issuer answered %d token requests (want 3) and refused %q", tokens, refusals)
	}
}
