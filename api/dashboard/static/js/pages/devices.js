// devices: health overview (online / stalled / offline, last seen, firmware), CSV import with
// its row errors, and the export link.

import { h, clear, debounce } from '../dom.js';
import { t, tOr, fmtTime, fmtAgo } from '../i18n.js';
import { api, list, optional, withToken, session, eachLimited } from '../api.js';
import { table, select, errorBox, loading, toast, stateChip } from '../ui.js';
import { deviceState, deviceReason, lastSeen, firmwareProblem } from '../model.js';
import { gatewayNames, gatewayLabel, gatewayOptions, hasGateways, matchesGateway, gatewayOf, reasonText } from '../centre.js';

export function mount(main) {
  let devices = []; let sites = new Map(); let profiles = new Map(); let cams = new Map(); let gwNames = new Map();
  let disposed = false;
  const f = { kind: '', health: '', site: '', gateway: '', q: '' };
  const summary = h('div', { class: 'summary' });
  const body = h('div', {}, loading());
  const importBox = h('div', { class: 'import-result', id: 'import-result', 'aria-live': 'polite' });

  const kindSel = select([['', t('common.all')], ['camera', t('kind.camera')], ['sensor', t('kind.sensor')], ['gateway', t('kind.gateway')]], '', { id: 'dev-kind' });
  const healthSel = select([['', t('common.all')], ...['online', 'stalled', 'offline', 'unknown'].map((s) => [s, t(`health.${s}`)]), ['firmware', t('devices.firmware_flagged')]], '', { id: 'dev-health' });
  const siteSel = select([['', t('common.all')]], '', { id: 'dev-site' });
  // At a centre: which site gateway the devices came from (shown once any row has one).
  const gwSel = select([['', t('common.all')]], '', { id: 'dev-gateway' });
  const search = h('input', { type: 'search', id: 'dev-q', placeholder: t('devices.search') });
  const onF = () => { Object.assign(f, { kind: kindSel.value, health: healthSel.value, site: siteSel.value, gateway: gwSel.value, q: search.value.trim().toLowerCase() }); render(); };
  for (const el of [kindSel, healthSel, siteSel, gwSel]) el.addEventListener('change', onF);
  search.addEventListener('input', debounce(onF, 150));

  const fileInput = h('input', { type: 'file', accept: '.csv,text/csv', id: 'import-file', class: 'visually-hidden', onchange: () => doImport() });
  const canWrite = ['admin', 'maintainer'].includes(session.user?.role) || !session.user?.role;
  const lab = (text, el) => h('label', { class: 'filter' }, h('span', {}, text), el);
  const gwFilter = lab(t('gateways.gateway'), gwSel);
  gwFilter.hidden = true;
  main.append(
    h('div', { class: 'page-head' }, h('h1', {}, t('devices.title')), h('div', { class: 'spacer' }),
      canWrite ? h('label', { class: 'btn small', for: 'import-file', tabindex: '0', role: 'button',
        onkeydown: (e) => { if (e.key === 'Enter' || e.key === ' ') fileInput.click(); } }, t('devices.import')) : null, fileInput,
      canWrite ? h('a', { class: 'btn small', href: withToken('/api/v1/devices/export'), download: 'devices.csv', id: 'export-link' }, t('devices.export')) : null),
    importBox, summary,
    h('details', { class: 'filters-box', open: window.matchMedia('(min-width: 761px)').matches }, h('summary', {}, t('alerts.filters')),
      h('div', { class: 'filters', role: 'search' }, lab(t('devices.kind'), kindSel), lab(t('devices.health'), healthSel), lab(t('devices.site'), siteSel), gwFilter, lab(t('common.search'), search))),
    body);

  function health(d) { return deviceState(d, cams.get(d.id)); }
  function fw(d) { return firmwareProblem(d, profiles.get(d.profile)); }

  function render() {
    const n = { total: devices.length, online: 0, stalled: 0, offline: 0, firmware: 0 };
    for (const d of devices) { const s = health(d); if (n[s] !== undefined) n[s]++; if (fw(d)) n.firmware++; }
    clear(summary).append(...['total', 'online', 'stalled', 'offline', 'firmware'].map((k) =>
      h('button', { type: 'button', class: `stat stat-${k}`, onclick: () => { healthSel.value = k === 'total' ? '' : k; onF(); } },
        h('span', { class: 'stat-n' }, String(n[k])), h('span', { class: 'stat-l' }, t(`devices.stat_${k}`)))));
    const centre = hasGateways(devices);
    const rows = devices.filter((d) => (!f.kind || d.kind === f.kind) && (!f.site || d.site_id === f.site) && matchesGateway(d, f.gateway)
      && (!f.health || (f.health === 'firmware' ? !!fw(d) : health(d) === f.health))
      && (!f.q || `${d.id} ${d.name} ${d.model} ${d.vendor} ${d.serial}`.toLowerCase().includes(f.q)));
    const cols = [
      { label: t('devices.name'), class: 'full', render: (d) => h('span', {}, h('strong', {}, d.name || d.id), h('br'), h('small', { class: 'muted mono' }, d.id)) },
      { label: t('devices.kind'), class: 'inline', render: (d) => h('span', { class: 'chip plain' }, tOr(`kind.${d.kind}`, d.kind)) },
      { label: t('devices.site'), render: (d) => sites.get(d.site_id)?.name || d.site_id },
      centre ? { label: t('gateways.gateway'), render: (d) => gatewayLabel(d, gwNames) } : null,
      { label: t('devices.health'), render: (d) => { const r = reasonText(deviceReason(d, cams.get(d.id))); return h('span', {}, stateChip('health', health(d)), r ? h('small', { class: 'muted reason' }, ` ${r}`) : null); } },
      { label: t('devices.last_seen'), render: (d) => { const v = lastSeen(d, cams.get(d.id)); return h('time', { title: fmtTime(v) }, fmtAgo(v)); } },
      { label: t('devices.firmware'), render: (d) => { const p = fw(d); return h('span', { class: p ? 'fw-bad' : '' }, d.firmware || t('devices.firmware_unknown'), p ? h('span', { class: 'chip sev-major', title: p }, ` ⚠ ${t('devices.firmware_flag')}`) : null); } },
      { label: t('devices.model'), render: (d) => [d.vendor, d.model].filter(Boolean).join(' ') || d.profile },
    ].filter(Boolean);
    clear(body).append(table(cols, rows, { empty: t('devices.none'), onRow: (d) => { location.hash = `#/devices/${encodeURIComponent(d.id)}`; },
      rowAttrs: (d) => ({ 'data-id': d.id, 'data-health': health(d), 'data-gateway': gatewayOf(d) }) }));
  }

  async function load() {
    try {
      const [d, s, p, c, g] = await Promise.all([api('devices'), api('sites'), optional('profiles').catch(() => null), optional('cameras').catch(() => null), gatewayNames()]);
      if (disposed) return;
      devices = list(d, 'devices');
      sites = new Map(list(s, 'sites').map((x) => [x.id, x]));
      profiles = new Map(list(p, 'profiles').map((x) => [x.id, x]));
      cams = new Map(list(c, 'cameras').map((x) => [x.id, x]));
      gwNames = g;
      gwFilter.hidden = !hasGateways(devices);
      const curGw = gwSel.value;
      clear(gwSel).append(...gatewayOptions(devices, gwNames).map(([v, label]) => h('option', { value: v, selected: v === curGw }, label)));
      loadPresence();
      const cur = siteSel.value;
      clear(siteSel).append(h('option', { value: '' }, t('common.all')), ...[...sites.values()].map((x) => h('option', { value: x.id, selected: x.id === cur }, x.name || x.id)));
      render();
    } catch (e) { if (!disposed) clear(body).append(errorBox(e)); }
  }

  // The device list carries no health; the ingest API answers it per device.
  let presenceMissing = false;
  async function loadPresence() {
    if (presenceMissing) return;
    // A site gateway's devices carry their live state from there; the centre has no presence.
    const need = devices.filter((d) => d.kind !== 'camera' && !gatewayOf(d) && deviceState(d) === 'unknown' && !d.presence);
    if (!need.length) return;
    let changed = false; let ok = 0; let missing = 0;
    await eachLimited(need, 6, async (d) => {
      if (disposed || presenceMissing) return;
      const p = await optional(`devices/${encodeURIComponent(d.id)}/presence`).catch(() => null);
      if (p) { d.presence = p; changed = true; ok++; } else if (++missing >= 3 && !ok) presenceMissing = true;
    });
    if (changed && !disposed) render();
  }

  async function doImport() {
    const file = fileInput.files?.[0];
    if (!file) return;
    clear(importBox).append(loading());
    try {
      const text = await file.text();
      const res = await api('devices/import', { method: 'POST', body: text, headers: { 'Content-Type': 'text/csv' } });
      const nSites = res?.sites ?? res?.sites_imported ?? '';
      const nDev = res?.devices ?? res?.devices_imported ?? res?.imported ?? '';
      clear(importBox).append(h('div', { class: 'alert-box ok', role: 'status' }, t('devices.import_ok', { file: file.name, sites: Array.isArray(nSites) ? nSites.length : nSites, devices: Array.isArray(nDev) ? nDev.length : nDev })));
      toast(t('devices.import_ok_short'), 'ok');
      load();
    } catch (e) {
      const rows = e.rows || [];
      clear(importBox).append(h('div', { class: 'alert-box error', role: 'alert' }, `${t('devices.import_failed', { file: file.name })}: ${e.message}`,
        h('button', { type: 'button', class: 'btn ghost small dismiss', 'aria-label': t('common.dismiss'), onclick: () => clear(importBox) }, '✕')),
        rows.length ? table([
          { label: t('import.row'), render: (r) => String(r.row ?? '') },
          { label: t('import.column'), render: (r) => r.column || t('import.whole_row') },
          { label: t('import.reason'), class: 'wide', render: (r) => r.reason || '' },
        ], rows, {}) : '',
        e.body?.error?.truncated ? h('p', { class: 'muted' }, t('import.truncated')) : '');
    }
    fileInput.value = '';
  }

  const timer = setInterval(load, 30000);
  load();
  return () => { disposed = true; clearInterval(timer); };
}
