// Login through the OIDC issuer, when the server names one in config.json:
// OAuth 2.0 Authorization Code with PKCE (S256) as a public client. The
// console asks only its own origin and the issuer (discovery and the token
// endpoint); the content security policy allows no other.
import * as api from './api.js';

// The asymmetric algorithms the API accepts (access/oidc.go).
const algorithms = ['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512', 'PS256', 'EdDSA'];
const pendingKey = 'cdp.oidc';

let configP;
// config is the server's {oidc: {issuer, client_id, audience}} (oidc null:
// API keys only).
export function config() {
  configP ||= fetch('config.json', {cache: 'no-store'}).then((r) => (r.ok ? r.json() : {oidc: null})).catch(() => ({oidc: null}));
  return configP;
}

const originOf = (u) => new URL(u).origin;

// discover reads the issuer's discovery document: its issuer must be the
// configured one, and its endpoints on the issuer's origin.
async function discover(issuer) {
  const resp = await fetch(issuer.replace(/\/$/, '') + '/.well-known/openid-configuration');
  if (!resp.ok) throw new Error('discovery: HTTP ' + resp.status);
  const d = await resp.json();
  if (d.issuer !== issuer) throw new Error(`discovery names the issuer ${d.issuer}, not ${issuer}`);
  for (const k of ['authorization_endpoint', 'token_endpoint']) {
    if (!d[k] || originOf(d[k]) !== originOf(issuer)) throw new Error(`discovery: ${k} ${d[k] || '(none)'} is not on the issuer's origin`);
  }
  return d;
}

const b64url = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
const random = (n) => b64url(crypto.getRandomValues(new Uint8Array(n)));
// redirectURI is the console's own address, without query or fragment.
const redirectURI = () => new URL('./', location.href).href;

// start sends the browser to the issuer's authorization endpoint; back is
// the route to open once logged in.
export async function start(back) {
  const {oidc} = await config();
  if (!oidc) throw new Error('no OIDC issuer is configured');
  if (!crypto.subtle) throw new Error('PKCE needs a secure context (https or localhost)');
  const d = await discover(oidc.issuer);
  const verifier = random(32); // 43 characters, RFC 7636 §4.1
  const state = random(16);
  const nonce = random(16);
  const challenge = b64url(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier)));
  const redirect = redirectURI();
  sessionStorage.setItem(pendingKey, JSON.stringify({state, verifier, nonce, redirect, back, at: Date.now()}));
  const q = new URLSearchParams({response_type: 'code', client_id: oidc.client_id, redirect_uri: redirect, scope: 'openid',
    state, nonce, code_challenge: challenge, code_challenge_method: 'S256'});
  const u = new URL(d.authorization_endpoint);
  for (const [k, v] of q) u.searchParams.set(k, v);
  location.assign(u.href);
}

// claimsOf decodes a JWT's header and claims (their signature is the
// API's to verify), or null when it is not a JWT.
function claimsOf(jwt) {
  const parts = String(jwt || '').split('.');
  if (parts.length !== 3) return null;
  try {
    const dec = (s) => JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0))));
    return {header: dec(parts[0]), claims: dec(parts[1])};
  } catch { return null; }
}

// usable is why the API would refuse the token ('' if it would not):
// issuer, audience, expiry, algorithm, sub and cdp_role, and the nonce of
// an ID token.
function usable(tok, oidc, nonce, isID) {
  const j = claimsOf(tok);
  if (!j) return 'not a JWT';
  const c = j.claims;
  const aud = Array.isArray(c.aud) ? c.aud : [c.aud];
  if (!algorithms.includes(j.header.alg)) return 'algorithm ' + j.header.alg;
  if (c.iss !== oidc.issuer) return 'issuer ' + c.iss;
  if (!aud.includes(oidc.audience)) return 'audience ' + aud.join(' ');
  if (typeof c.exp !== 'number' || c.exp * 1000 <= Date.now()) return 'expired';
  if (!c.sub || !c.cdp_role) return 'no sub or cdp_role';
  if (isID && c.nonce !== nonce) return 'nonce';
  return '';
}

// pending is whether the page is the issuer's redirect back to the console.
export function pending() {
  const q = new URLSearchParams(location.search);
  return q.has('state') && (q.has('code') || q.has('error'));
}

// finish handles the redirect back: it checks the state, exchanges the
// code with the verifier at the token endpoint and keeps the token the
// API accepts (the access token if it is one, else the ID token). It
// returns the route to open; it throws, leaving no token, on any failure.
export async function finish() {
  const q = new URLSearchParams(location.search);
  const saved = JSON.parse(sessionStorage.getItem(pendingKey) || 'null');
  sessionStorage.removeItem(pendingKey); // a state is good for one answer
  // The code leaves the address bar (and the history) at once.
  history.replaceState(null, '', location.pathname + '#/login');
  if (!saved || !q.get('state') || q.get('state') !== saved.state || Date.now() - saved.at > 10 * 60 * 1000) {
    const e = new Error('state'); e.code = 'ssoState'; throw e;
  }
  const {oidc} = await config();
  if (!oidc) throw new Error('no OIDC issuer is configured');
  if (q.has('iss') && q.get('iss') !== oidc.issuer) throw new Error('the answer names the issuer ' + q.get('iss')); // RFC 9207
  if (q.has('error')) throw new Error(q.get('error_description') || q.get('error'));
  const d = await discover(oidc.issuer);
  const resp = await fetch(d.token_endpoint, {method: 'POST', headers: {'Content-Type': 'application/x-www-form-urlencoded'},
    body: new URLSearchParams({grant_type: 'authorization_code', code: q.get('code'), redirect_uri: saved.redirect,
      client_id: oidc.client_id, code_verifier: saved.verifier})});
  let body = {};
  try { body = await resp.json(); } catch { /* not JSON */ }
  if (!resp.ok) throw new Error('token: ' + (body.error_description || body.error || 'HTTP ' + resp.status));
  const why = [];
  for (const [name, isID] of [['access_token', false], ['id_token', true]]) {
    const r = body[name] ? usable(body[name], oidc, saved.nonce, isID) : 'none';
    if (!r) {
      api.key.set(body[name], claimsOf(body[name]).claims.exp);
      return saved.back || '#/builder';
    }
    why.push(`${name}: ${r}`);
  }
  const e = new Error(why.join('; ')); e.code = 'ssoToken'; throw e;
}
