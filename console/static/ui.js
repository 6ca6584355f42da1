// Small DOM helpers shared by the pages: element building, a keyboard
// combobox (the field picker and the value autocomplete), debouncing and
// file downloads from fetched bodies.

// h builds an element: h('div', {class: 'x', onclick: f}, child, 'text', …).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value') el.value = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function debounce(fn, ms) {
  let t;
  return (...a) => { clearTimeout(t); t = setTimeout(() => fn(...a), ms); };
}

export function toast(msg, bad) {
  const t = document.getElementById('toast');
  t.textContent = msg;
  t.className = bad ? 'show bad' : 'show';
  clearTimeout(toast.t);
  toast.t = setTimeout(() => { t.className = ''; }, 4000);
}

// highlighted renders a search highlight ("+86<em>1380</em>…") with the
// text escaped and only the <em> marks kept.
export function highlighted(s) {
  const span = document.createElement('span');
  const parts = String(s).split(/(<em>|<\/em>)/);
  let em = false;
  for (const p of parts) {
    if (p === '<em>') { em = true; continue; }
    if (p === '</em>') { em = false; continue; }
    if (p) span.append(em ? h('mark', {}, p) : document.createTextNode(p));
  }
  return span;
}

// saveBlob offers a fetched body as a file download.
export function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = h('a', {href: url, download: name});
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// combobox is a text input with a list of options below it: typing
// filters (or fetches) the options, ArrowUp/ArrowDown move, Enter or a
// click picks, Escape closes. options(q) returns (a promise of) a list of
// {value, label, group, note}; pick(option) is called with the choice.
// With free set, Enter on no highlighted option picks the typed text.
export function combobox({options, pick, placeholder, value, free, cls, name}) {
  const input = h('input', {type: 'text', class: 'combo-input', placeholder, value: value || '', autocomplete: 'off',
    role: 'combobox', 'aria-expanded': 'false', name});
  const list = h('ul', {class: 'combo-list', role: 'listbox', hidden: true});
  const box = h('span', {class: 'combo ' + (cls || '')}, input, list);
  let items = [], active = -1, seq = 0;
  const close = () => { list.hidden = true; input.setAttribute('aria-expanded', 'false'); active = -1; };
  const render = () => {
    list.replaceChildren();
    let group;
    items.forEach((o, i) => {
      if (o.group && o.group !== group) { group = o.group; list.append(h('li', {class: 'combo-group', role: 'presentation'}, group)); }
      list.append(h('li', {class: 'combo-opt' + (i === active ? ' active' : ''), role: 'option', dataset: {value: String(o.value)},
        'aria-selected': i === active ? 'true' : 'false',
        onmousedown: (e) => { e.preventDefault(); choose(o); }},
      h('span', {}, o.label), o.note ? h('small', {}, o.note) : null));
    });
    list.hidden = items.length === 0;
    input.setAttribute('aria-expanded', String(!list.hidden));
    const a = list.querySelector('.active');
    if (a) a.scrollIntoView({block: 'nearest'});
  };
  const refresh = async () => {
    const my = ++seq;
    const got = await options(input.value.trim());
    if (my !== seq) return;
    items = got || [];
    const q = input.value.trim().toLowerCase();
    active = items.findIndex((o) => String(o.value).toLowerCase() === q || String(o.label).toLowerCase() === q);
    if (active < 0) active = items.length ? 0 : -1;
    if (document.activeElement === input) render();
  };
  const choose = (o) => { input.value = o.text ?? o.label; close(); pick(o); };
  input.addEventListener('input', debounce(refresh, 120));
  input.addEventListener('focus', refresh);
  input.addEventListener('blur', () => setTimeout(close, 150));
  input.addEventListener('keydown', (e) => {
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      if (list.hidden) { refresh(); return; }
      active = (active + (e.key === 'ArrowDown' ? 1 : -1) + items.length) % items.length;
      render();
    } else if (e.key === 'Enter') {
      e.preventDefault();
      if (!list.hidden && active >= 0 && items[active]) choose(items[active]);
      else if (free && input.value.trim()) { close(); pick({value: input.value.trim(), label: input.value.trim()}); }
    } else if (e.key === 'Escape') close();
  });
  box.input = input;
  return box;
}
