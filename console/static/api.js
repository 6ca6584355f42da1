// The API client: every call carries the API key from sessionStorage as a
// bearer token; a 401 sends the user back to the login page.
export const key = {
  get: () => sessionStorage.getItem('cdp.key') || '',
  set: (k) => sessionStorage.setItem('cdp.key', k),
  // Another key may have another role, which may see another catalog.
  clear: () => { sessionStorage.removeItem('cdp.key'); fieldsP = null; },
};

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
    key.clear();
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
