// The audience builder: a tree of conditions edited in place, turned into
// the filter language (CONTRACT §3) on every edit, previewed live
// (POST /v1/filters/preview, debounced) and saved as a segment or a tag
// rule. Every field, its type, label and operators come from GET /v1/fields.
import {h, combobox, debounce, toast} from './ui.js';
import {t, label, lang} from './i18n.js';
import * as api from './api.js';

let seq = 0;
const id = () => 'n' + (++seq);

// Node makers. Every node may carry not (its complement).
const cond = (field = '', op = '', value = undefined) => ({k: 'cond', id: id(), not: false, field, op, value});
const group = (op = 'all', items = []) => ({k: 'group', id: id(), not: false, op, items});
const order = (items = [cond()]) => ({k: 'order', id: id(), not: false, match: 'any', items});
const agg = () => ({k: 'agg', id: id(), not: false, fn: 'sum', field: 'orders.total_amount', op: 'gt', value: undefined, items: []});
const event = () => ({k: 'event', id: id(), not: false, name: '', within: '7d', op: 'gte', value: 1, items: []});
const segment = () => ({k: 'segment', id: id(), not: false, seg: ''});
const rawNode = (json = '{}') => ({k: 'raw', id: id(), not: false, json});

const noValue = new Set(['is_set', 'is_not_set']);
const listOps = new Set(['in', 'not_in', 'has_any', 'has_none', 'has_all']);
const rangeOps = new Set(['between', 'not_between']);
const windowOps = new Set(['in_last', 'not_in_last']);
const numberOps = ['gt', 'gte', 'lt', 'lte', 'eq', 'neq'];
const eventNames = ['view_product', 'add_to_cart', 'search', 'share', 'page', 'screen'];

// groupOf is where a field shows in the picker.
function groupOf(name) {
  if (name.startsWith('orders.items.')) return 'items';
  if (name.startsWith('orders.')) return 'orders';
  if (name.startsWith('properties.')) return 'events';
  if (name.startsWith('attrs.')) return 'attrs';
  return 'profile';
}
const scopes = {top: ['profile', 'orders', 'items', 'attrs'], orders: ['orders', 'items'], events: ['events']};

// defaultOp is the first operator a marketer most often wants.
function defaultOp(f) {
  const pref = {date: 'in_last', number: 'gt'}[f.type];
  return f.operators.includes(pref) ? pref : f.operators[0];
}

const join = (p, x) => (p ? p + '.' + x : x);

// toFilter turns the tree into a filter; incomplete conditions are left
// out. reg collects [path, node id] for every node, to place API errors.
export function toFilter(n, path = '', reg = []) {
  const inner = n.not ? join(path, 'not') : path;
  const f = body(n, inner, reg);
  if (f === null) return null;
  reg.push([inner, n.id]);
  if (n.not) reg.push([path, n.id]);
  return n.not ? {not: f} : f;
}

function kids(items, path, reg) {
  const out = [];
  for (const c of items) {
    const f = toFilter(c, `${path}[${out.length}]`, reg);
    if (f !== null) out.push(f);
  }
  return out;
}

function complete(v) {
  if (v === undefined || v === null || v === '') return false;
  if (Array.isArray(v)) return v.length > 0 && v.every((x) => x !== '' && x !== null && !Number.isNaN(x));
  return !Number.isNaN(v);
}

function body(n, path, reg) {
  switch (n.k) {
  case 'group': return {[n.op]: kids(n.items, join(path, n.op), reg)};
  case 'cond':
    if (!n.field || !n.op) return null;
    if (noValue.has(n.op)) return {field: n.field, op: n.op};
    if (!complete(n.value)) return null;
    return {field: n.field, op: n.op, value: n.value};
  case 'order': return {nested: 'orders', match: n.match, where: {all: kids(n.items, join(path, 'where.all'), reg)}};
  case 'agg': {
    if (!complete(n.value)) return null;
    const a = {path: 'orders', fn: n.fn};
    if (n.fn !== 'count') a.field = n.field;
    const w = kids(n.items, join(path, 'aggregate.where.all'), reg);
    if (w.length) a.where = {all: w};
    return {aggregate: a, op: n.op, value: n.value};
  }
  case 'event': {
    if (!n.name || !complete(n.value)) return null;
    const e = {event: n.name};
    const w = kids(n.items, join(path, 'where.all'), reg);
    if (w.length) e.where = {all: w};
    if (n.within) e.within = n.within;
    e.op = n.op;
    e.value = n.value;
    return e;
  }
  case 'segment': return n.seg ? {segment: n.seg} : null;
  case 'raw': try { return JSON.parse(n.json); } catch { return null; }
  }
  return null;
}

// fromFilter is the tree of a saved filter; what the builder has no
// editor for stays as a JSON node.
export function fromFilter(f) {
  if (!f || typeof f !== 'object') return rawNode(JSON.stringify(f));
  const leaves = (w) => {
    const list = w === undefined ? [] : (w.all || (w.field ? [w] : null));
    if (!list || !list.every((x) => x.field)) return null;
    return list.map(fromFilter);
  };
  const keys = Object.keys(f);
  if (keys.length === 1 && (f.all || f.any)) return group(f.all ? 'all' : 'any', (f.all || f.any).map(fromFilter));
  if (keys.length === 1 && f.not) {
    const n = fromFilter(f.not);
    if (!n.not) { n.not = true; return n; }
    const g = group('all', [n]);
    g.not = true;
    return g;
  }
  if (f.field) return cond(f.field, f.op, f.value);
  if (f.segment) return Object.assign(segment(), {seg: f.segment});
  if (f.nested === 'orders') {
    const items = leaves(f.where);
    if (items) return Object.assign(order(items), {match: f.match || 'any'});
  }
  if (f.aggregate && f.aggregate.path === 'orders') {
    const items = leaves(f.aggregate.where);
    if (items) return Object.assign(agg(), {fn: f.aggregate.fn, field: f.aggregate.field || 'orders.total_amount', op: f.op, value: f.value, items});
  }
  if (f.event) {
    const items = leaves(f.where);
    if (items) return Object.assign(event(), {name: f.event, within: f.within || '', op: f.op || 'gte', value: f.value ?? 1, items});
  }
  return rawNode(JSON.stringify(f, null, 2));
}

// draft is the tree being edited, kept when the page is drawn again in
// the other language (keep), so a switch loses no work.
let draft = null;

// Builder is the page: the tree on the left, the preview on the right.
export async function builderPage(main, params, keep) {
  const fields = (await api.fields()).filter((f) => f.type !== 'nested');
  const byName = new Map(fields.map((f) => [f.name, f]));
  let segments = [];
  const loadSegments = () => api.get('/v1/segments').then((r) => { segments = r.segments; }).catch(() => {});
  await loadSegments();

  let root = group('all');
  let editing = null; // {kind: 'segment'|'tag', id, name}
  if (params.get('segment')) {
    const s = await api.get('/v1/segments/' + encodeURIComponent(params.get('segment')));
    root = fromFilter(s.filter);
    editing = {kind: 'segment', id: s.id, name: s.name, description: s.description};
  } else if (params.get('tag')) {
    const tg = await api.get('/v1/tags/' + encodeURIComponent(params.get('tag')));
    root = fromFilter(tg.filter);
    editing = {kind: 'tag', id: tg.name, name: tg.name, description: tg.description};
  }
  if (root.k !== 'group') root = group('all', [root]);
  root.root = true;
  if (keep && draft && draft.key === params.toString()) ({root, editing} = draft);
  draft = {key: params.toString(), root, editing};

  const tree = h('div', {id: 'tree', class: 'tree'});
  const count = h('div', {id: 'preview-count', class: 'count', dataset: {state: 'idle'}}, '–');
  const sample = h('div', {id: 'preview-sample'});
  const dsl = h('pre', {id: 'preview-dsl'});
  const filterView = h('pre', {id: 'preview-filter'});
  const errors = new Map(); // node id -> message
  let focusAfter = null;

  const find = (n, nid, parent = null) => {
    if (n.id === nid) return {n, parent};
    for (const c of n.items || []) { const r = find(c, nid, n); if (r) return r; }
    return null;
  };

  const changed = () => { errors.clear(); clearErrors(); schedule(); };
  const rerender = () => {
    tree.replaceChildren(renderNode(root, 'top'));
    if (focusAfter) {
      const el = tree.querySelector(focusAfter);
      focusAfter = null;
      if (el) el.focus();
    }
    showErrors();
  };
  const structural = () => { rerender(); changed(); };

  function clearErrors() { tree.querySelectorAll('.node-error').forEach((e) => { e.textContent = ''; e.hidden = true; }); }
  function showErrors() {
    for (const [nid, msg] of errors) {
      const el = tree.querySelector(`[data-id="${nid}"] > .node-row > .node-error, [data-id="${nid}"] > .node-error`);
      if (el) { el.textContent = msg; el.hidden = false; }
    }
  }

  // ---- preview
  let ctl;
  const preview = async () => {
    const reg = [];
    const filter = toFilter(root, '', reg) || {all: []};
    const text = JSON.stringify(filter);
    filterView.textContent = JSON.stringify(filter, null, 2);
    if (ctl) ctl.abort();
    ctl = new AbortController();
    count.dataset.state = 'loading';
    count.classList.add('loading');
    try {
      const r = await api.post('/v1/filters/preview', {filter, sample: 10}, ctl.signal);
      count.textContent = r.count.toLocaleString();
      count.dataset.count = r.count;
      count.dataset.filter = text;
      count.dataset.state = 'ready';
      // The first answer of a page load: how long until a marketer sees a number.
      window.cdpFirstPreview ??= performance.now();
      dsl.textContent = JSON.stringify(r.query, null, 2);
      sample.replaceChildren(sampleTable(r.sample));
    } catch (e) {
      if (e.name === 'AbortError') return;
      count.dataset.state = 'error';
      count.dataset.filter = text;
      count.textContent = '!';
      sample.replaceChildren(h('p', {class: 'error'}, e.message));
      // Place the message at the condition its path names: the longest
      // registered path that the error path starts with.
      if (e.path !== undefined) {
        let best = null;
        for (const [p, nid] of reg) {
          const hit = p === '' || e.path === p || e.path.startsWith(p + '.') || e.path.startsWith(p + '[');
          if (hit && (!best || p.length >= best[0].length)) best = [p, nid];
        }
        if (best) { errors.set(best[1], e.message); showErrors(); }
      }
    } finally {
      count.classList.remove('loading');
    }
  };
  const schedule = debounce(preview, 350);

  // ---- rendering
  function fieldPicker(n, scope) {
    const allowed = new Set(scopes[scope]);
    const f = byName.get(n.field);
    const box = combobox({
      cls: 'field-pick', placeholder: t('pickField'), value: f ? label(f.label, f.name) : n.field, name: n.field,
      options: (q) => {
        q = q.toLowerCase();
        const hit = (x) => !q || x.name.toLowerCase().includes(q) || label(x.label, '').toLowerCase().includes(q) ||
          (x.label?.zh || '').includes(q) || (x.label?.en || '').toLowerCase().includes(q);
        const out = fields.filter((x) => allowed.has(groupOf(x.name)) && x.operators.length && hit(x))
          .map((x) => ({value: x.name, label: label(x.label, x.name), note: x.name + ' · ' + x.type, group: t('groups.' + groupOf(x.name))}));
        const order = scopes[scope];
        return out.sort((a, b) => order.indexOf(groupOf(a.value)) - order.indexOf(groupOf(b.value)));
      },
      pick: (o) => {
        if (o.value === n.field) return;
        const nf = byName.get(o.value);
        if (!nf) return;
        n.field = nf.name;
        n.op = defaultOp(nf);
        n.value = undefined;
        focusAfter = `[data-id="${n.id}"] .val`;
        structural();
      },
    });
    // The hover hint: the field's path, type and whether it is a list.
    if (f) box.input.title = `${f.name} · ${f.type}${f.list ? ' · list' : ''}${f.nested ? ' · ' + f.nested : ''}`;
    return box;
  }

  function opSelect(n, ops) {
    const sel = h('select', {class: 'op', 'aria-label': 'operator', title: t('ops.' + n.op)[1] || '',
      onchange: () => {
        const was = n.op;
        n.op = sel.value;
        const kind = (o) => (noValue.has(o) ? 'none' : listOps.has(o) ? 'list' : rangeOps.has(o) ? 'range' : windowOps.has(o) ? 'window' : 'one');
        if (kind(was) !== kind(n.op)) n.value = undefined;
        focusAfter = `[data-id="${n.id}"] .val`;
        structural();
      }},
    ops.map((o) => h('option', {value: o, selected: o === n.op, title: t('ops.' + o)[1]}, t('ops.' + o)[0] || o)));
    return sel;
  }

  function windowEditor(get, set, nid, allowEmpty) {
    const m = /^(\d+)([dh])$/.exec(get() || '');
    const num = h('input', {type: 'number', min: 1, class: 'val num', value: m ? m[1] : '', placeholder: 'N', 'aria-label': 'N'});
    const unit = h('select', {class: 'unit', 'aria-label': 'unit'},
      h('option', {value: 'd', selected: !m || m[2] === 'd'}, t('days')), h('option', {value: 'h', selected: m && m[2] === 'h'}, t('hours')));
    const upd = () => { set(num.value ? num.value + unit.value : (allowEmpty ? '' : undefined)); changed(); };
    num.addEventListener('input', upd);
    unit.addEventListener('change', upd);
    return h('span', {class: 'window'}, t('lastN'), ' ', num, unit);
  }

  function valueEditor(n, f) {
    const op = n.op;
    if (noValue.has(op)) return null;
    const isNum = f.type === 'number';
    const conv = (s) => (isNum ? (s === '' ? NaN : Number(s)) : s);
    if (windowOps.has(op)) return windowEditor(() => n.value, (v) => { n.value = v; }, n.id);
    if (rangeOps.has(op)) {
      const type = isNum ? 'number' : f.type === 'date' ? 'date' : 'text';
      const v = Array.isArray(n.value) ? n.value : ['', ''];
      const a = h('input', {type, class: 'val', value: v[0] ?? '', 'aria-label': t('from')});
      const b = h('input', {type, class: 'val2', value: v[1] ?? '', 'aria-label': t('to')});
      const upd = () => { n.value = (a.value === '' || b.value === '') ? undefined : [conv(a.value), conv(b.value)]; changed(); };
      a.addEventListener('input', upd); b.addEventListener('input', upd);
      return h('span', {class: 'range'}, a, ' – ', b);
    }
    if (listOps.has(op)) {
      const inp = h('input', {type: 'text', class: 'val', placeholder: t('values'), value: Array.isArray(n.value) ? n.value.join(', ') : ''});
      inp.addEventListener('input', () => {
        const parts = inp.value.split(/[,，]/).map((s) => s.trim()).filter(Boolean).map(conv);
        n.value = parts.length ? parts : undefined;
        changed();
      });
      return inp;
    }
    if (isNum) {
      const inp = h('input', {type: 'number', class: 'val', value: n.value ?? '', placeholder: t('value')});
      inp.addEventListener('input', () => { n.value = inp.value === '' ? undefined : Number(inp.value); changed(); });
      return inp;
    }
    if (f.type === 'date') {
      const inp = h('input', {type: 'date', class: 'val', value: n.value ?? ''});
      inp.addEventListener('input', () => { n.value = inp.value || undefined; changed(); });
      return inp;
    }
    if (f.type === 'boolean') {
      const sel = h('select', {class: 'val'}, h('option', {value: ''}, '—'),
        h('option', {value: 'true', selected: n.value === true}, 'true'), h('option', {value: 'false', selected: n.value === false}, 'false'));
      sel.addEventListener('change', () => { n.value = sel.value === '' ? undefined : sel.value === 'true'; changed(); });
      return sel;
    }
    if (f.type === 'text') {
      const inp = h('input', {type: 'text', class: 'val', value: n.value ?? '', placeholder: t('value')});
      inp.addEventListener('input', () => { n.value = inp.value.trim() || undefined; changed(); });
      return inp;
    }
    // keyword and keyword arrays: candidate values by name.
    const cand = f.candidates || [];
    const shown = cand.find((c) => c.value === n.value);
    const box = combobox({
      cls: 'value-pick', free: true, placeholder: t('value'), value: shown ? label(shown.label, shown.value) : (n.value ?? ''),
      options: async (q) => {
        if (cand.length) {
          const ql = q.toLowerCase();
          return cand.filter((c) => !q || String(c.value).toLowerCase().includes(ql) || label(c.label, '').toLowerCase().includes(ql) || (c.label?.zh || '').includes(q))
            .map((c) => ({value: c.value, label: label(c.label, c.value), note: c.value}));
        }
        try {
          const r = await api.get(`/v1/fields/${encodeURIComponent(f.name)}/values?size=20&q=${encodeURIComponent(q)}`);
          return r.values.map((v) => ({value: v.value, label: v.label ? label(v.label, String(v.value)) : String(v.value), note: v.count !== undefined ? String(v.count) : ''}));
        } catch { return []; }
      },
      pick: (o) => { n.value = o.value; changed(); },
    });
    box.input.classList.add('val');
    // What is typed counts at once (the preview follows it); a candidate's
    // label stands for its value.
    const typed = () => {
      const text = box.input.value.trim();
      const c = cand.find((x) => label(x.label, x.value) === text || x.value === text);
      const v = c ? c.value : (text || undefined);
      if (v !== n.value) { n.value = v; changed(); }
    };
    box.input.addEventListener('input', typed);
    box.input.addEventListener('change', typed);
    return box;
  }

  function notToggle(n) {
    return h('button', {type: 'button', class: 'not-toggle' + (n.not ? ' on' : ''), 'aria-pressed': String(n.not), title: t('not'),
      onclick: () => { n.not = !n.not; structural(); }}, t('not'));
  }

  function removeBtn(n) {
    return h('button', {type: 'button', class: 'remove', title: t('remove'), 'aria-label': t('remove'),
      onclick: () => {
        const r = find(root, n.id);
        if (r && r.parent) { r.parent.items = r.parent.items.filter((c) => c !== n); structural(); }
      }}, '×');
  }

  const errorSlot = () => h('div', {class: 'node-error', role: 'alert', hidden: true});

  function condRow(n, scope) {
    const f = byName.get(n.field);
    const parts = [notToggle(n), fieldPicker(n, scope)];
    if (f) {
      parts.push(opSelect(n, f.operators));
      parts.push(h('span', {class: 'hint', title: t('ops.' + n.op)[1]}, 'ⓘ'));
      parts.push(valueEditor(n, f));
    } else if (n.field) {
      parts.push(h('span', {class: 'error'}, 'unknown field ' + n.field));
    }
    return h('div', {class: 'node node-cond', dataset: {id: n.id}},
      h('div', {class: 'node-row'}, parts, removeBtn(n)),
      f ? h('div', {class: 'op-hint'}, t('ops.' + n.op)[1] || '') : null,
      errorSlot());
  }

  function adder(n, kind, text, make, scope) {
    return h('button', {type: 'button', class: 'add add-' + kind, onclick: () => {
      const c = make();
      n.items.push(c);
      const target = c.k === 'cond' ? c : (c.items && c.items[0]) || c;
      focusAfter = c.k === 'segment' ? `[data-id="${c.id}"] .seg-pick input` : c.k === 'event' ? `[data-id="${c.id}"] .event-name input` :
        `[data-id="${target.id}"] .field-pick input`;
      if (c.k === 'agg') focusAfter = `[data-id="${c.id}"] .val`;
      if (c.k === 'raw') focusAfter = `[data-id="${c.id}"] textarea`;
      structural();
    }}, text);
  }

  function condList(n, scope) {
    return h('div', {class: 'children'}, n.items.map((c) => renderNode(c, scope)));
  }

  function renderNode(n, scope) {
    switch (n.k) {
    case 'cond': return condRow(n, scope);
    case 'group': {
      const sel = h('select', {class: 'group-op', 'aria-label': 'group', onchange: () => { n.op = sel.value; structural(); }},
        h('option', {value: 'all', selected: n.op === 'all'}, t('all')), h('option', {value: 'any', selected: n.op === 'any'}, t('any')));
      return h('div', {class: 'node node-group' + (n.root ? ' root' : ''), id: n.root ? 'root' : null, dataset: {id: n.id}},
        h('div', {class: 'node-row'}, notToggle(n), sel, n.root ? null : removeBtn(n)),
        errorSlot(),
        h('div', {class: 'children'}, n.items.map((c) => renderNode(c, scope))),
        h('div', {class: 'group-actions'},
          adder(n, 'cond', t('addCond'), () => cond()),
          adder(n, 'group', t('addGroup'), () => group(n.op === 'all' ? 'any' : 'all', [cond()])),
          scope === 'top' ? [
            adder(n, 'order', t('addOrder'), () => order()),
            adder(n, 'agg', t('addAgg'), () => agg()),
            adder(n, 'event', t('addEvent'), () => event()),
            adder(n, 'segment', t('addSegment'), () => segment()),
            adder(n, 'raw', t('addRaw'), () => rawNode()),
          ] : null));
    }
    case 'order': {
      const sel = h('select', {class: 'match', 'aria-label': 'match', onchange: () => { n.match = sel.value; changed(); }},
        ['any', 'none', 'all'].map((m) => h('option', {value: m, selected: n.match === m}, t('order' + m[0].toUpperCase() + m.slice(1)))));
      return h('div', {class: 'node node-order', dataset: {id: n.id}},
        h('div', {class: 'node-row'}, notToggle(n), h('span', {class: 'kind'}, t('groups.orders')), sel, removeBtn(n)),
        errorSlot(), condList(n, 'orders'),
        h('div', {class: 'group-actions'}, adder(n, 'cond', t('addCond'), () => cond())));
    }
    case 'agg': {
      const nums = fields.filter((f) => f.type === 'number' && groupOf(f.name) !== 'profile' && scopes.orders.includes(groupOf(f.name)));
      const fn = h('select', {class: 'fn', 'aria-label': 'function', onchange: () => { n.fn = fn.value; structural(); }},
        ['count', 'sum', 'avg', 'min', 'max'].map((x) => h('option', {value: x, selected: n.fn === x}, t('fn.' + x))));
      const fld = h('select', {class: 'agg-field', 'aria-label': 'field', hidden: n.fn === 'count', onchange: () => { n.field = fld.value; changed(); }},
        nums.map((f) => h('option', {value: f.name, selected: n.field === f.name}, label(f.label, f.name))));
      const op = h('select', {class: 'op', 'aria-label': 'operator', onchange: () => { n.op = op.value; changed(); }},
        numberOps.map((o) => h('option', {value: o, selected: n.op === o, title: t('ops.' + o)[1]}, t('ops.' + o)[0])));
      const val = h('input', {type: 'number', class: 'val', value: n.value ?? '', placeholder: t('value')});
      val.addEventListener('input', () => { n.value = val.value === '' ? undefined : Number(val.value); changed(); });
      return h('div', {class: 'node node-agg', dataset: {id: n.id}},
        h('div', {class: 'node-row'}, notToggle(n), fn, fld, op, val, removeBtn(n)),
        h('div', {class: 'op-hint'}, t('aggOver')), errorSlot(), condList(n, 'orders'),
        h('div', {class: 'group-actions'}, adder(n, 'cond', t('addCond'), () => cond())));
    }
    case 'event': {
      const name = combobox({cls: 'event-name', free: true, placeholder: t('eventName'), value: n.name,
        options: (q) => eventNames.filter((e) => e.includes(q.toLowerCase())).map((e) => ({value: e, label: e})),
        pick: (o) => { n.name = o.value; changed(); }});
      for (const ev of ['input', 'change']) {
        name.input.addEventListener(ev, () => { if (name.input.value.trim() !== n.name) { n.name = name.input.value.trim(); changed(); } });
      }
      const op = h('select', {class: 'op', 'aria-label': 'operator', onchange: () => { n.op = op.value; changed(); }},
        numberOps.map((o) => h('option', {value: o, selected: n.op === o}, t('ops.' + o)[0])));
      const val = h('input', {type: 'number', min: 0, class: 'times', value: n.value ?? '', 'aria-label': t('times')});
      val.addEventListener('input', () => { n.value = val.value === '' ? undefined : Number(val.value); changed(); });
      return h('div', {class: 'node node-event', dataset: {id: n.id}},
        h('div', {class: 'node-row'}, notToggle(n), h('span', {class: 'kind'}, t('event')), name,
          windowEditor(() => n.within, (v) => { n.within = v; }, n.id, true), op, val, t('times'), removeBtn(n)),
        h('div', {class: 'op-hint'}, t('eventWhere')), errorSlot(), condList(n, 'events'),
        h('div', {class: 'group-actions'}, adder(n, 'cond', t('addCond'), () => cond())));
    }
    case 'segment': {
      const cur = segments.find((s) => s.id === n.seg);
      const box = combobox({cls: 'seg-pick', placeholder: t('pickSegment'), value: cur ? cur.name : n.seg,
        options: (q) => segments.filter((s) => !q || s.name.toLowerCase().includes(q.toLowerCase()) || s.id.includes(q))
          .filter((s) => !editing || editing.kind !== 'segment' || s.id !== editing.id)
          .map((s) => ({value: s.id, label: s.name, note: s.id})),
        pick: (o) => { n.seg = o.value; changed(); }});
      return h('div', {class: 'node node-segment', dataset: {id: n.id}},
        h('div', {class: 'node-row'}, notToggle(n), h('span', {class: 'kind'}, t('segment')), box, removeBtn(n)), errorSlot());
    }
    case 'raw': {
      const ta = h('textarea', {rows: 3, class: 'raw', spellcheck: 'false'}, n.json);
      ta.addEventListener('input', () => { n.json = ta.value; changed(); });
      return h('div', {class: 'node node-raw', dataset: {id: n.id}},
        h('div', {class: 'node-row'}, notToggle(n), h('span', {class: 'kind'}, 'JSON'), ta, removeBtn(n)), errorSlot());
    }
    }
    return h('div', {}, '?');
  }

  function sampleTable(docs) {
    if (!docs || !docs.length) return h('p', {class: 'muted'}, t('noResults'));
    return h('table', {class: 'grid'},
      h('thead', {}, h('tr', {}, ['name', 'phone', 'gender', 'city'].map((k) => h('th', {}, t('f.' + k))), h('th', {}, t('m.total_spend')))),
      h('tbody', {}, docs.map((d) => h('tr', {},
        h('td', {}, h('a', {href: '#/customer/' + encodeURIComponent(d.customer_id)}, d.name || d.customer_id)),
        h('td', {}, d.phone || ''), h('td', {}, d.gender || ''), h('td', {}, d.city || ''),
        h('td', {class: 'num'}, d.metrics?.total_spend ?? '')))));
  }

  // ---- saving
  const nameIn = h('input', {id: 'save-name', type: 'text', placeholder: t('saveName'), value: editing?.name || ''});
  const descIn = h('input', {id: 'save-desc', type: 'text', placeholder: t('description'), value: editing?.description || ''});
  const save = async (kind) => {
    const filter = toFilter(root) || {all: []};
    const name = nameIn.value.trim();
    try {
      if (kind === 'segment') {
        const b = {name, filter, description: descIn.value};
        if (editing?.kind === 'segment') await api.put('/v1/segments/' + encodeURIComponent(editing.id), b);
        else await api.post('/v1/segments', b);
        toast(t('saved'));
        location.hash = '#/segments';
      } else {
        const b = {name, filter, description: descIn.value};
        if (editing?.kind === 'tag') await api.put('/v1/tags/' + encodeURIComponent(editing.id), {filter, description: descIn.value});
        else await api.post('/v1/tags', b);
        toast(t('saved'));
        location.hash = '#/tags';
      }
    } catch (e) {
      toast(e.message, true);
      if (e.path !== undefined) { errors.clear(); preview(); }
    }
  };
  const segLabel = editing?.kind === 'segment' ? t('update') + ' · ' + editing.name : t('saveSegment');
  const tagLabel = editing?.kind === 'tag' ? t('update') + ' · ' + editing.name : t('saveTag');

  main.replaceChildren(h('div', {class: 'builder'},
    h('section', {class: 'left'}, h('h1', {}, t('builder')), tree,
      h('div', {class: 'savebar'}, nameIn, descIn,
        h('button', {id: 'save-segment', type: 'button', class: 'primary', onclick: () => save('segment')}, segLabel),
        h('button', {id: 'save-tag', type: 'button', onclick: () => save('tag')}, tagLabel),
        h('button', {id: 'export-filter', type: 'button', onclick: async () => {
          try {
            await api.post('/v1/exports', {filter: toFilter(root) || {all: []}, format: 'csv'});
            location.hash = '#/exports';
          } catch (e) { toast(e.message, true); }
        }}, t('exportJob')))),
    h('aside', {class: 'right'}, h('h2', {}, t('preview')), h('div', {class: 'muted'}, t('count')), count,
      h('h3', {}, t('sample')), sample,
      h('details', {}, h('summary', {}, t('showDSL')), h('h4', {}, 'filter'), filterView, h('h4', {}, 'OpenSearch'), dsl))));
  rerender();
  preview();
}
