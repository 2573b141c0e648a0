// ui: shared pieces of the pages — chips, tables that turn into cards on a phone, toasts.

import { h } from './dom.js';
import { t, tOr } from './i18n.js';

export function severityChip(sev) {
  return h('span', { class: `chip sev-${sev}` }, t(`severity.${sev}`));
}

export function stateChip(prefix, state) {
  return h('span', { class: `chip st-${state}` }, tOr(`${prefix}.${state}`, state));
}

export function typeLabel(type) { return tOr(`type.${type}`, type || '—'); }

// table builds a table whose cells carry their column label, so CSS can show each row as a
// card on narrow screens.
export function table(columns, rows, { onRow, rowAttrs, empty } = {}) {
  if (!rows.length) return h('p', { class: 'empty' }, empty || t('common.empty'));
  const thead = h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.class }, c.label))));
  const tbody = h('tbody', {});
  for (const r of rows) {
    const attrs = Object.assign({}, rowAttrs ? rowAttrs(r) : {});
    if (onRow) {
      attrs.tabindex = '0';
      attrs.class = `${attrs.class || ''} clickable`;
      attrs.onclick = () => onRow(r);
      attrs.onkeydown = (e) => { if (e.key === 'Enter') onRow(r); };
    }
    tbody.append(h('tr', attrs, columns.map((c) => {
      const v = c.render(r);
      return h('td', { 'data-label': c.label, class: c.class }, v === undefined || v === '' ? '—' : v);
    })));
  }
  return h('div', { class: 'table-wrap' }, h('table', { class: 'data cards' }, thead, tbody));
}

export function field(label, control, hint) {
  const id = control.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  control.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, hint ? h('small', { class: 'hint' }, hint) : null);
}

export function select(options, value, attrs = {}) {
  return h('select', attrs, options.map(([v, label]) => h('option', { value: v, selected: v === value }, label)));
}

export function errorBox(e) {
  const msg = e?.message || String(e);
  const code = e?.code ? ` (${e.code})` : '';
  return h('div', { class: 'alert-box error', role: 'alert' }, `${t('common.error')}: ${msg}${code}`);
}

export function notAvailable(what) {
  return h('div', { class: 'alert-box muted', role: 'status', 'data-unavailable': '1' }, t('common.not_available', { what }));
}

export function loading() { return h('div', { class: 'loading', role: 'status' }, t('common.loading')); }

export function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter(Boolean).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v === undefined || v === null || v === '' ? '—' : v)]));
}

let toastBox = null;
export function toast(msg, kind = 'info') {
  if (!toastBox || !document.body.contains(toastBox)) {
    toastBox = h('div', { class: 'toasts', 'aria-live': 'polite' });
    document.body.append(toastBox);
  }
  const el = h('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, msg);
  toastBox.append(el);
  setTimeout(() => el.remove(), 5000);
}
