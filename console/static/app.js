// The console's shell: login, navigation (hash routes), the language
// switch and the pages other than the builder (builder.js).
import {h, toast, saveBlob, highlighted, debounce} from './ui.js';
import {t, lang, setLang, label} from './i18n.js';
import * as api from './api.js';
import {builderPage} from './builder.js';
import * as oidc from './oidc.js';

const main = document.getElementById('main');
const routes = [
  ['builder', '#/builder'], ['segments', '#/segments'], ['tags', '#/tags'], ['exports', '#/exports'], ['search', '#/search'],
];
let stop = () => {}; // what the current page must stop (polling) when left

function nav(active) {
  const n = document.getElementById('nav');
  const logged = !!api.key.get();
  n.replaceChildren(...(logged ? routes.map(([k, href]) => h('a', {href, class: k === active ? 'active' : null, id: 'nav-' + k}, t(k))) : []));
  const out = document.getElementById('logout');
  out.hidden = !logged;
  out.textContent = t('logout');
  document.getElementById('lang').textContent = lang === 'zh' ? 'EN' : '中文';
}

async function route(keep) {
  stop();
  stop = () => {};
  const [path, query] = location.hash.slice(1).split('?');
  const parts = (path || '/').split('/').filter(Boolean);
  const params = new URLSearchParams(query || '');
  const page = parts[0] || 'builder';
  if (!api.key.get() && page !== 'login') { location.hash = '#/login'; return; }
  nav(page === 'customer' ? 'search' : page);
  main.dataset.page = page;
  // data-ready names the page once it is drawn (empty while it loads).
  main.dataset.ready = '';
  const my = ++routed;
  try {
    switch (page) {
    case 'login': await loginPage(); break;
    case 'builder': await builderPage(main, params, keep === true); break;
    case 'segments': await segmentsPage(); break;
    case 'tags': await tagsPage(); break;
    case 'exports': await exportsPage(); break;
    case 'search': searchPage(params.get('q') || ''); break;
    case 'customer': await customerPage(decodeURIComponent(parts[1] || '')); break;
    default: location.hash = '#/builder'; return;
    }
  } catch (e) {
    // A page left meanwhile (a 401 sends to the login page before its
    // error body is read) does not draw over the one shown now.
    if (my === routed) main.replaceChildren(h('p', {class: 'error'}, e.message));
  }
  if (my === routed) main.dataset.ready = page;
}
let routed = 0;

// loginError is shown on the login page once (a failed SSO login): the
// reason's code (data-reason, for the tests) and its text.
let loginError = null;

async function loginPage() {
  const inp = h('input', {id: 'api-key', type: 'password', autocomplete: 'off', placeholder: t('apiKey'), required: true});
  const msg = h('p', {class: 'error', role: 'alert', id: 'login-error'});
  const why = loginError || (api.ended ? {code: api.ended, text: t(api.ended === 'expired' ? 'sessionExpired' : 'sessionRejected')} : null);
  if (why) { msg.textContent = why.text; msg.dataset.reason = why.code; }
  loginError = null;
  const form = h('form', {class: 'login', onsubmit: async (e) => {
    e.preventDefault();
    const k = inp.value.trim();
    if (!k) return;
    api.key.set(k);
    try {
      await api.raw('GET', '/v1/fields?probe=1');
      location.hash = '#/builder';
    } catch (err) {
      api.key.clear();
      msg.textContent = err.status === 401 ? t('badKey') : err.message;
    }
  }}, h('h1', {}, t('login')), h('p', {class: 'muted'}, t('loginHint')), inp, h('button', {type: 'submit', id: 'login', class: 'primary'}, t('login')), msg);
  main.replaceChildren(form);
  inp.focus();
  // Through the issuer, when the server names one.
  const {oidc: sso} = await oidc.config();
  if (!sso) return;
  const btn = h('button', {type: 'button', id: 'sso-login', onclick: async () => {
    btn.disabled = true;
    try {
      await oidc.start('#/builder');
    } catch (err) {
      btn.disabled = false;
      msg.textContent = t('ssoFailed') + ' ' + err.message;
      msg.dataset.reason = 'ssoFailed';
    }
  }}, t('ssoLogin'));
  form.append(h('div', {class: 'sso'}, h('p', {class: 'muted'}, t('ssoHint')), btn));
}

// ssoReturn handles the issuer's redirect back to the console: it keeps
// the token once the API accepts it, and returns the route to open.
async function ssoReturn() {
  main.replaceChildren(h('p', {class: 'muted'}, t('ssoWorking')));
  try {
    const back = await oidc.finish();
    try {
      await api.raw('GET', '/v1/fields?probe=1');
    } catch (err) {
      throw Object.assign(new Error(err.status === 401 ? t('ssoRejected') : err.message), {code: err.status === 401 ? 'ssoRejected' : 'ssoFailed'});
    }
    history.replaceState(null, '', location.pathname + back);
  } catch (err) {
    api.key.clear();
    const code = err.code || 'ssoFailed';
    loginError = {code, text: code === 'ssoState' ? t('ssoState') : code === 'ssoRejected' ? err.message : t('ssoFailed') + ' ' + err.message};
    history.replaceState(null, '', location.pathname + '#/login');
  }
}

const when = (s) => (s ? new Date(s).toLocaleString(lang === 'zh' ? 'zh-CN' : 'en-GB') : '');
const day = (s) => (s ? new Date(s).toLocaleDateString(lang === 'zh' ? 'zh-CN' : 'en-GB') : '');

// exportFile streams an export into a file the browser saves.
async function exportFile(seg, format, bom) {
  const q = new URLSearchParams({format});
  if (bom) q.set('bom', 'true');
  try {
    const resp = await api.raw('GET', `/v1/segments/${encodeURIComponent(seg.id)}/export?${q}`);
    saveBlob(await resp.blob(), `${seg.id}.${format}`);
  } catch (e) { toast(e.message, true); }
}

// deleteButton asks once more in place (a second click within 5 s), not
// with a modal dialog: the keyboard stays where it was.
function deleteButton(run) {
  let armed;
  const b = h('button', {type: 'button', class: 'delete danger', onclick: () => {
    if (!armed) {
      b.textContent = t('confirmDel');
      b.classList.add('armed');
      armed = setTimeout(() => { armed = null; b.textContent = t('del'); b.classList.remove('armed'); }, 5000);
      return;
    }
    clearTimeout(armed);
    armed = null;
    run();
  }}, t('del'));
  return b;
}

async function segmentsPage() {
  const {segments} = await api.get('/v1/segments');
  const bom = h('input', {type: 'checkbox', id: 'bom'});
  const rows = segments.map((s) => {
    const size = h('td', {class: 'num size'}, '…');
    api.get('/v1/segments/' + encodeURIComponent(s.id)).then((x) => { size.textContent = (x.size ?? '').toLocaleString(); size.dataset.size = x.size; })
      .catch((e) => { size.textContent = '!'; size.title = e.message; });
    const msg = h('div', {class: 'error row-error', role: 'alert'});
    return h('tr', {dataset: {id: s.id}},
      h('td', {}, h('strong', {}, s.name), h('div', {class: 'muted'}, s.description || s.id), msg), size, h('td', {}, when(s.updated_at)),
      h('td', {class: 'actions'},
        h('a', {href: '#/builder?segment=' + encodeURIComponent(s.id), class: 'button edit'}, t('edit')),
        h('button', {type: 'button', class: 'export-csv', onclick: () => exportFile(s, 'csv', bom.checked)}, t('exportCSV')),
        h('button', {type: 'button', class: 'export-ndjson', onclick: () => exportFile(s, 'ndjson', false)}, t('exportND')),
        h('button', {type: 'button', class: 'export-job', onclick: async () => {
          try {
            await api.post('/v1/exports', {segment: s.id, format: 'csv'});
            location.hash = '#/exports';
          } catch (e) { msg.textContent = e.message; }
        }}, t('exportJob')),
        deleteButton(async () => {
          try { await api.del('/v1/segments/' + encodeURIComponent(s.id)); toast(t('deleted')); route(); } catch (e) { msg.textContent = e.message; }
        })));
  });
  main.replaceChildren(h('h1', {}, t('segments')),
    h('p', {}, h('label', {}, bom, ' ', t('bom'))),
    segments.length ? h('table', {class: 'grid', id: 'segments'},
      h('thead', {}, h('tr', {}, h('th', {}, t('name')), h('th', {}, t('size')), h('th', {}, t('updated')), h('th', {}, t('actions')))),
      h('tbody', {}, rows)) : h('p', {class: 'muted'}, t('noSegments')));
}

async function tagsPage() {
  const {tags} = await api.get('/v1/tags');
  const rows = tags.map((tg) => {
    const size = h('td', {class: 'num'}, '…');
    api.post('/v1/customers/count', {filter: {field: 'tags', op: 'has_any', value: [tg.name]}})
      .then((x) => { size.textContent = x.count.toLocaleString(); }).catch(() => { size.textContent = '!'; });
    const msg = h('div', {class: 'error', role: 'alert'});
    return h('tr', {dataset: {name: tg.name}}, h('td', {}, h('strong', {}, tg.name), h('div', {class: 'muted'}, tg.description || ''), msg), size, h('td', {}, when(tg.updated_at)),
      h('td', {class: 'actions'},
        h('a', {href: '#/builder?tag=' + encodeURIComponent(tg.name), class: 'button'}, t('edit')),
        deleteButton(async () => {
          try { await api.del('/v1/tags/' + encodeURIComponent(tg.name)); toast(t('deleted')); route(); } catch (e) { msg.textContent = e.message; }
        })));
  });
  main.replaceChildren(h('h1', {}, t('tags')), tags.length ? h('table', {class: 'grid', id: 'tags'},
    h('thead', {}, h('tr', {}, h('th', {}, t('name')), h('th', {}, t('size')), h('th', {}, t('updated')), h('th', {}, t('actions')))),
    h('tbody', {}, rows)) : h('p', {class: 'muted'}, t('noSegments')));
}

async function exportsPage() {
  const body = h('tbody');
  const draw = async () => {
    const {exports} = await api.get('/v1/exports');
    body.replaceChildren(...exports.map((x) => {
      const pct = x.total ? Math.round(100 * x.exported / x.total) : (x.status === 'done' ? 100 : 0);
      return h('tr', {dataset: {id: x.id, status: x.status}},
        h('td', {}, x.id), h('td', {}, x.segment || (x.filter ? 'filter' : '')), h('td', {class: 'status'}, x.status, x.error ? h('div', {class: 'error'}, x.error) : null),
        h('td', {}, h('progress', {max: 100, value: pct}), ` ${x.exported ?? 0} / ${x.total ?? '?'}`), h('td', {}, when(x.created_at)),
        h('td', {class: 'actions'},
          x.status === 'done' ? h('button', {type: 'button', onclick: async () => {
            try { const r = await api.raw('GET', `/v1/exports/${x.id}/download`); saveBlob(await r.blob(), `${x.id}.${x.format || 'csv'}`); } catch (e) { toast(e.message, true); }
          }}, t('download')) : null,
          (x.status === 'running' || x.status === 'queued') ? h('button', {type: 'button', onclick: async () => {
            try { await api.del('/v1/exports/' + x.id); draw(); } catch (e) { toast(e.message, true); }
          }}, t('cancel')) : null));
    }));
  };
  await draw();
  const timer = setInterval(() => draw().catch(() => {}), 1000);
  stop = () => clearInterval(timer);
  main.replaceChildren(h('h1', {}, t('exports')), h('table', {class: 'grid', id: 'exports'},
    h('thead', {}, h('tr', {}, ['ID', t('target'), t('status'), t('progress'), t('created'), t('actions')].map((x) => h('th', {}, x)))), body));
}

function searchPage(initial) {
  const inp = h('input', {id: 'search-box', type: 'search', placeholder: t('searchHint'), value: initial, autocomplete: 'off', 'aria-controls': 'search-results'});
  const list = h('ul', {id: 'search-results', class: 'results', role: 'listbox'});
  let items = [], active = -1, seq = 0;
  const open = (c) => { location.hash = '#/customer/' + encodeURIComponent(c.customer_id); };
  const draw = () => {
    list.replaceChildren(...items.map((c, i) => {
      const hl = c.highlight || {};
      const show = (k) => (hl[k] ? highlighted(hl[k]) : (c[k] || ''));
      return h('li', {class: i === active ? 'active' : null, role: 'option', dataset: {id: c.customer_id}, onclick: () => open(c)},
        h('strong', {}, show('name') || c.customer_id), ' ', h('span', {class: 'muted'}, show('phone')), ' ', h('span', {class: 'muted'}, show('email')),
        ' ', h('span', {class: 'muted'}, c.city || ''));
    }));
    if (!items.length && inp.value.trim()) list.append(h('li', {class: 'muted'}, t('noResults')));
  };
  const run = debounce(async () => {
    const q = inp.value.trim();
    const my = ++seq;
    if (!q) { items = []; draw(); return; }
    try {
      const r = await api.get('/v1/customers?size=10&q=' + encodeURIComponent(q));
      if (my !== seq) return;
      items = r.customers; active = items.length ? 0 : -1; draw();
      list.dataset.q = q;
    } catch (e) { list.replaceChildren(h('li', {class: 'error'}, e.message)); }
  }, 200);
  inp.addEventListener('input', run);
  inp.addEventListener('keydown', (e) => {
    if ((e.key === 'ArrowDown' || e.key === 'ArrowUp') && items.length) {
      e.preventDefault();
      active = (active + (e.key === 'ArrowDown' ? 1 : -1) + items.length) % items.length; draw();
    } else if (e.key === 'Enter' && items[active]) { e.preventDefault(); open(items[active]); }
  });
  main.replaceChildren(h('h1', {}, t('search')), inp, list);
  inp.focus();
  if (initial) run();
}

async function customerPage(cid) {
  const [fields, segs] = await Promise.all([api.fields(), api.get('/v1/segments').catch(() => ({segments: []}))]);
  const segName = new Map(segs.segments.map((s) => [s.id, s.name]));
  const fieldLabel = (name) => { const f = fields.find((x) => x.name === name); return f ? label(f.label, name) : name; };
  // shown is a value as the catalog names it (gender female → 女).
  const shown = (name, v) => {
    const c = fields.find((x) => x.name === name)?.candidates?.find((x) => x.value === v);
    return c ? label(c.label, v) : v;
  };
  const box = h('div', {id: 'c360', class: 'c360'});
  let last = '';
  const load = async () => {
    const [c, hist] = await Promise.all([api.get('/v1/customers/' + encodeURIComponent(cid)),
      api.get(`/v1/customers/${encodeURIComponent(cid)}/identity-history`).catch(() => ({history: []}))]);
    const text = JSON.stringify([c, hist]);
    if (text === last) return;
    last = text;
    box.replaceChildren(render(c, hist.history || []));
    box.dataset.customer = c.customer_id;
    box.dataset.orders = (c.orders || []).length;
  };
  const render = (c, hist) => {
    const prof = ['name', 'phone', 'email', 'gender', 'birthday', 'city', 'member_level', 'store_id', 'owner_id', 'registered_at', 'customer_id'];
    const m = c.metrics || {};
    const attrs = Object.entries(c.attrs || {});
    return h('div', {class: 'cards'},
      h('section', {class: 'card profile'}, h('h2', {id: 'c360-name'}, c.name || c.customer_id),
        h('dl', {}, prof.map((k) => [h('dt', {}, fieldLabel(k)), h('dd', {class: 'f-' + k}, /_at$/.test(k) ? day(c[k]) : (shown(k, c[k]) ?? '—'))])),
        attrs.length ? h('dl', {class: 'attrs'}, attrs.map(([k, v]) => [h('dt', {}, fieldLabel('attrs.' + k)), h('dd', {}, typeof v === 'object' ? JSON.stringify(v) : String(v))])) : null,
        c.merged_ids?.length ? h('p', {class: 'muted'}, 'merged: ' + c.merged_ids.join(', ')) : null),
      h('section', {class: 'card'}, h('h3', {}, t('metrics')),
        h('dl', {}, ['order_count', 'total_spend', 'first_order_at', 'last_order_at', 'last_seen_at'].map((k) =>
          [h('dt', {}, t('m.' + k)), h('dd', {class: 'm-' + k}, /_at$/.test(k) ? when(m[k]) : (m[k] ?? '—'))]))),
      h('section', {class: 'card'}, h('h3', {}, t('tagsAndSegments')),
        h('div', {class: 'chips tags'}, (c.tags || []).map((x) => h('span', {class: 'chip'}, x))),
        h('div', {class: 'chips segs'}, (c.segments || []).map((x) => h('a', {class: 'chip seg', href: '#/builder?segment=' + encodeURIComponent(x)}, segName.get(x) || x)))),
      h('section', {class: 'card'}, h('h3', {}, t('identities')),
        h('table', {class: 'grid'}, h('tbody', {}, (c.identities || []).map((i) => h('tr', {}, h('td', {}, i.type), h('td', {class: 'id-value'}, i.value)))))),
      h('section', {class: 'card wide'}, h('h3', {}, t('orders'), ` (${(c.orders || []).length})`),
        h('table', {class: 'grid orders'}, h('thead', {}, h('tr', {}, ['order_no', 'status', 'total_amount', 'created_at', 'store_id'].map((k) => h('th', {}, fieldLabel('orders.' + k))), h('th', {}, t('items')))),
          h('tbody', {}, [...(c.orders || [])].sort((a, b) => String(b.created_at).localeCompare(String(a.created_at))).map((o) => h('tr', {dataset: {order: o.order_id}},
            h('td', {}, o.order_no || o.order_id), h('td', {}, h('span', {class: 'status s-' + o.status}, shown('orders.status', o.status))), h('td', {class: 'num'}, o.total_amount),
            h('td', {}, when(o.created_at)), h('td', {}, o.store_id || ''),
            h('td', {}, (o.items || []).map((it) => h('div', {class: 'item'}, `${it.product_name || ''} · ${it.sku} · ${it.category || ''} × ${it.quantity} @ ${it.price}`)))))))),
      h('section', {class: 'card'}, h('h3', {}, t('events')),
        h('ol', {class: 'timeline'}, (c.recent_events || []).map((e) => h('li', {},
          h('time', {}, when(e.timestamp)), ' ', h('strong', {}, e.event || e.type), ' ',
          h('span', {class: 'muted'}, Object.entries(e.properties || {}).map(([k, v]) => `${k}=${v}`).join(' ')))))),
      h('section', {class: 'card'}, h('h3', {}, t('idHistory')),
        hist.length ? h('ol', {class: 'timeline'}, hist.map((x) => h('li', {}, h('time', {}, when(x.at)), ' ', h('strong', {}, x.action), ' ',
          h('span', {class: 'muted'}, (x.customer_ids || []).join(', '), ' ', (x.identities || []).map((i) => i.type + ':' + i.value).join(', '))))) : h('p', {class: 'muted'}, t('none'))));
  };
  main.replaceChildren(h('p', {class: 'muted live'}, '● ', t('live')), box);
  await load();
  const timer = setInterval(() => load().catch(() => {}), 2000);
  stop = () => clearInterval(timer);
}

document.getElementById('lang').addEventListener('click', () => { setLang(lang === 'zh' ? 'en' : 'zh'); route(true); });
document.getElementById('logout').addEventListener('click', () => { api.key.clear(); location.hash = '#/login'; });
window.addEventListener('hashchange', () => route());
setLang(lang);
if (oidc.pending()) ssoReturn().then(() => route());
else route();
