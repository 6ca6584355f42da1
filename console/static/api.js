// The API client: every call carries the token from sessionStorage (an
// API key, or the issuer's JWT with its expiry) as a bearer token; a 401,
// or the token's expiry, sends the user back to the login page.
let expiry;
// ended says why the last token was dropped ('' when the user logged out).
export let ended = '';
export const key = {
  get: () => {
    const exp = Number(sessionStorage.getItem('cdp.exp'));
    if (exp && Date.now() >= exp * 1000) key.clear('expired');
    return sessionStorage.getItem('cdp.key') || '';
  },
  // exp (seconds since the epoch) is a JWT's expiry; none for a key.
  set: (k, exp) => {
    sessionStorage.setItem('cdp.key', k);
    if (exp) sessionStorage.setItem('cdp.exp', String(exp)); else sessionStorage.removeItem('cdp.exp');
    ended = '';
    watch();
  },
  // Another key may have another role, which may see another catalog.
  clear: (why) => {
    if (why && sessionStorage.getItem('cdp.key')) ended = why;
    sessionStorage.removeItem('cdp.key');
    sessionStorage.removeItem('cdp.exp');
    clearTimeout(expiry);
    fieldsP = null;
  },
};

// watch returns to the login page when the token expires.
function watch() {
  clearTimeout(expiry);
  const exp = Number(sessionStorage.getItem('cdp.exp'));
  if (!exp) return;
  expiry = setTimeout(() => { key.clear('expired'); location.hash = '#/login'; }, Math.min(Math.max(0, exp * 1000 - Date.now()), 2 ** 31 - 1));
}
watch();

export class APIError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || ('HTTP ' + status));
    this.status = status;
    this.code = e.code;
    this.path = e.path;
  }
}

export async function raw(method, path, body, signal) {
  const headers = {Authorization: 'Bearer ' + key.get()};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const resp = await fetch(path, {method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body)});
  if (resp.status === 401 && !path.startsWith('/v1/fields?probe')) {
    key.clear('rejected');
    location.hash = '#/login';
  }
  if (!resp.ok) {
    let b = null;
    try { b = await resp.json(); } catch { /* not JSON */ }
    throw new APIError(resp.status, b);
  }
  return resp;
}

export async function call(method, path, body, signal) {
  const resp = await raw(method, path, body, signal);
  return resp.status === 204 ? null : resp.json();
}

export const get = (p, s) => call('GET', p, undefined, s);
export const post = (p, b, s) => call('POST', p, b, s);
export const put = (p, b) => call('PUT', p, b);
export const del = (p) => call('DELETE', p);

// fields caches the catalog for the page's life.
let fieldsP;
export function fields() {
  fieldsP ||= get('/v1/fields').then((r) => r.fields).catch((e) => { fieldsP = null; throw e; });
  return fieldsP;
}
