// alerts: the live list of alerts with filters. New events arrive over SSE (events.js); the
// list reloads from GET /api/v1/alerts when one concerns alerts.

import { h, clear, debounce } from '../dom.js';
import { t, fmtTime, fmtAgo } from '../i18n.js';
import { api, list, qs } from '../api.js';
import { subscribe } from '../events.js';
import { severityChip, stateChip, typeLabel, table, select, errorBox, loading, notAvailable } from '../ui.js';
import { SEVERITIES, ALERT_STATES, severityOf, alertState, siteOf, deviceOf, deviceLabel, occurredAt, department, pick, eventType, messageText, messageOriginal } from '../model.js';

const FILTER_KEY = 'offsite.alerts.filter';

export function mount(main) {
  let f = { state: 'active', severity: '', type: '', site: '', q: '' };
  try { f = Object.assign(f, JSON.parse(sessionStorage.getItem(FILTER_KEY) || '{}')); } catch { /* defaults */ }
  let alerts = [];
  let more = false; // the server's list stopped at its limit
  let fresh = new Set();
  let disposed = false;
  let abort = null;

  const body = h('div', { class: 'alerts-body' }, loading());
  const count = h('span', { class: 'muted', 'aria-live': 'polite' });
  const stateSel = select([['active', t('alerts.filter_active')], ['', t('common.all')], ...ALERT_STATES.map((s) => [s, t(`alert_state.${s}`)])], f.state, { id: 'filter-state' });
  const sevSel = select([['', t('common.all')], ...SEVERITIES.map((s) => [s, t(`severity.${s}`)])], f.severity, { id: 'filter-severity' });
  const typeSel = select([['', t('common.all')]], f.type, { id: 'filter-type' });
  const siteSel = select([['', t('common.all')]], f.site, { id: 'filter-site' });
  const search = h('input', { type: 'search', id: 'filter-q', value: f.q, placeholder: t('alerts.search') });
  const onFilter = () => {
    f = { state: stateSel.value, severity: sevSel.value, type: typeSel.value, site: siteSel.value, q: search.value.trim() };
    sessionStorage.setItem(FILTER_KEY, JSON.stringify(f));
    if (f.state !== lastState) load(); else render();
  };
  let lastState = null;
  for (const el of [stateSel, sevSel, typeSel, siteSel]) el.addEventListener('change', onFilter);
  search.addEventListener('input', debounce(onFilter, 200));

  const lab = (text, el) => h('label', { class: 'filter' }, h('span', {}, text), el);
  main.append(
    h('div', { class: 'page-head' }, h('h1', {}, t('alerts.title')), count,
      h('div', { class: 'spacer' }), h('button', { type: 'button', class: 'btn small', onclick: () => load() }, t('common.refresh'))),
    h('details', { class: 'filters-box', open: window.matchMedia('(min-width: 761px)').matches },
      h('summary', {}, t('alerts.filters')),
      h('div', { class: 'filters', role: 'search' }, lab(t('alerts.state'), stateSel), lab(t('alerts.severity'), sevSel),
        lab(t('alerts.type'), typeSel), lab(t('alerts.site'), siteSel), lab(t('common.search'), search))),
    body);

  function fillOptions(sel, values, labelOf) {
    const cur = sel.value || (sel === typeSel ? f.type : f.site);
    clear(sel).append(h('option', { value: '' }, t('common.all')));
    for (const [v, l] of values) sel.append(h('option', { value: v, selected: v === cur }, labelOf ? labelOf(v, l) : l));
  }

  function matches(a) {
    if (f.severity && severityOf(a) !== f.severity) return false;
    if (f.type && eventType(a) !== f.type) return false;
    if (f.site && siteOf(a).id !== f.site) return false;
    if (f.state === 'active' && alertState(a) === 'closed') return false;
    if (f.state && f.state !== 'active' && alertState(a) !== f.state) return false;
    if (f.q) {
      const hay = `${pick(a, 'message') || ''} ${messageText(a)} ${siteOf(a).name || ''} ${deviceOf(a).name || ''} ${deviceOf(a).id || ''} ${department(a)} ${a.id}`.toLowerCase();
      if (!hay.includes(f.q.toLowerCase())) return false;
    }
    return true;
  }

  function render() {
    const types = new Map(); const sites = new Map();
    for (const a of alerts) { const ty = eventType(a); if (ty) types.set(ty, typeLabel(ty)); const s = siteOf(a); if (s.id) sites.set(s.id, s.name || s.id); }
    fillOptions(typeSel, [...types]);
    fillOptions(siteSel, [...sites]);
    const rows = alerts.filter(matches);
    count.textContent = more ? t('alerts.count_limited', { n: rows.length }) : t('alerts.count', { n: rows.length });
    const cols = [
      { label: t('alerts.severity'), class: 'inline', render: (a) => severityChip(severityOf(a)) },
      { label: t('alerts.type'), class: 'inline', render: (a) => typeLabel(eventType(a)) },
      { label: t('alerts.state'), class: 'inline', render: (a) => stateChip('alert_state', alertState(a)) },
      { label: t('alerts.message'), class: 'wide full strong', render: (a) => h('span', { title: messageOriginal(a) }, messageText(a),
        a.alarm_active === false && alertState(a) !== 'closed' ? h('span', { class: 'chip plain recovered', 'data-recovered': 'true' }, ` ${t('alerts.recovered')}`) : null) },
      { label: t('alerts.occurrences'), class: 'inline', render: (a) => h('span', { class: 'occurrences', 'data-occurrences': String(a.occurrences || 1) },
        (a.occurrences || 1) > 1 ? t('alerts.occurrences_n', { n: a.occurrences }) : '') },
      { label: t('alerts.device'), render: (a) => deviceLabel(a) },
      { label: t('alerts.site'), render: (a) => siteOf(a).name || siteOf(a).id },
      { label: t('alerts.department'), render: (a) => department(a) },
      { label: t('alerts.occurred'), render: (a) => h('time', { datetime: occurredAt(a) || '', title: fmtTime(occurredAt(a)) }, fmtAgo(occurredAt(a))) },
      { label: t('alerts.assignee'), render: (a) => a.claimed_by || a.assignee || a.owner || '' },
    ];
    clear(body).append(table(cols, rows, {
      empty: t('alerts.none'),
      onRow: (a) => { location.hash = `#/alerts/${encodeURIComponent(a.id)}`; },
      rowAttrs: (a) => ({ class: `alert-row sev-row-${severityOf(a)}${fresh.has(a.id) ? ' fresh' : ''}`, 'data-id': a.id,
        'data-department': department(a), 'data-severity': severityOf(a), 'data-state': alertState(a) }),
    }));
  }

  async function load() {
    abort?.abort();
    abort = new AbortController();
    lastState = f.state;
    try {
      // "active" is every state but closed; the server filter takes one state, so ask for all.
      const st = f.state === 'active' ? '' : f.state;
      const data = await api(`alerts${qs({ state: st, limit: 500 })}`, { signal: abort.signal });
      if (disposed) return;
      const before = new Set(alerts.map((a) => a.id));
      alerts = list(data, 'alerts');
      more = data?.more === true;
      alerts.sort((x, y) => new Date(occurredAt(y) || 0) - new Date(occurredAt(x) || 0));
      // Rows new since the last load flash once; the set holds only those, so it cannot grow.
      fresh = new Set(before.size ? alerts.filter((a) => !before.has(a.id)).map((a) => a.id) : []);
      render();
    } catch (e) {
      if (e.name === 'AbortError' || disposed) return;
      clear(body).append(e.status === 404 ? notAvailable(t('alerts.title')) : errorBox(e));
    }
  }

  const reload = debounce(load, 150);
  const unsub = subscribe((ev) => {
    const ty = eventType(ev);
    if (ty.startsWith('alert.') || ev.alert_id || ev.state === 'active' || ['major', 'critical', 'minor'].includes(ev.severity)) reload();
  });
  const tick = setInterval(() => { if (!document.hidden) render(); }, 30000);
  load();
  return () => { disposed = true; unsub(); reload.cancel(); clearInterval(tick); abort?.abort(); };
}
