// audit: the audit log (等级保护) for administrators, with filters by user, action and time
// (GET /api/v1/audit?actor=&action=&from=&to=&limit=).

import { h, clear } from '../dom.js';
import { t, fmtTime } from '../i18n.js';
import { api, list, qs } from '../api.js';
import { table, errorBox, loading } from '../ui.js';

const LIMIT = 500;

export function mount(main) {
  let disposed = false;
  const body = h('div', { class: 'audit-body' }, loading());
  const actor = h('input', { id: 'audit-actor', type: 'search', placeholder: t('audit.actor') });
  const action = h('input', { id: 'audit-action', type: 'search', placeholder: t('audit.action_hint') });
  const from = h('input', { id: 'audit-from', type: 'datetime-local' });
  const to = h('input', { id: 'audit-to', type: 'datetime-local' });
  const count = h('span', { class: 'muted', 'aria-live': 'polite', id: 'audit-count' });
  const lab = (text, el) => h('label', { class: 'filter' }, h('span', {}, text), el);
  const form = h('form', { class: 'filters', role: 'search', id: 'audit-filters', onsubmit: (e) => { e.preventDefault(); load(); } },
    lab(t('audit.actor'), actor), lab(t('audit.action'), action), lab(t('audit.from'), from), lab(t('audit.to'), to),
    h('button', { type: 'submit', class: 'btn small primary', id: 'audit-apply' }, t('audit.apply')));
  main.append(h('div', { class: 'page-head' }, h('h1', {}, t('audit.title')), count), h('div', { class: 'filters-box' }, form), body);

  const iso = (v) => (v ? new Date(v).toISOString() : '');

  async function load() {
    try {
      const data = await api(`audit${qs({ actor: actor.value.trim(), action: action.value.trim(), from: iso(from.value), to: iso(to.value), limit: LIMIT })}`);
      if (disposed) return;
      const rows = list(data, 'entries');
      // A list that stops at the limit says so.
      count.textContent = rows.length >= LIMIT ? t('audit.count_limited', { n: rows.length }) : t('alerts.count', { n: rows.length });
      clear(body).append(table([
        { label: t('audit.at'), render: (e) => fmtTime(e.at) },
        { label: t('audit.actor'), class: 'strong', render: (e) => e.actor },
        { label: t('users.role'), render: (e) => (e.role ? t(`role.${e.role}`) : '') },
        { label: t('audit.action'), render: (e) => e.action },
        { label: t('audit.target'), render: (e) => e.target },
        { label: t('audit.result'), render: (e) => h('span', { class: `chip plain result-${e.result}` }, e.result) },
        { label: t('audit.ip'), render: (e) => e.ip },
        { label: t('audit.detail'), class: 'wide', render: (e) => e.detail },
      ], rows, { empty: t('common.empty'), rowAttrs: (e) => ({ 'data-action': e.action, 'data-actor': e.actor }) }));
    } catch (e) { if (!disposed) clear(body).append(errorBox(e)); }
  }
  load();
  return () => { disposed = true; };
}
