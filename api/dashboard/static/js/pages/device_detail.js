// device detail: facts, health, a readings chart with a time range, the maintenance log.

import { h, clear } from '../dom.js';
import { t, tOr, fmtTime, fmtAgo } from '../i18n.js';
import { api, list, optional, telemetry, session } from '../api.js';
import { lineChart } from '../chart.js';
import { facts, errorBox, loading, toast, field, select, stateChip, table, notAvailable } from '../ui.js';
import { deviceState, deviceReason, lastSeen, firmwareProblem, telemetryPoints, MAINT_KINDS } from '../model.js';
import { gatewayNames, gatewayLabel, reasonText } from '../centre.js';

const RANGES = [['1h', 3600e3], ['6h', 6 * 3600e3], ['24h', 24 * 3600e3], ['7d', 7 * 24 * 3600e3]];

export function mount(main, { id }) {
  let disposed = false;
  let dev = null; let profile = null;
  const box = h('div', { class: 'detail' }, loading());
  main.append(h('div', { class: 'page-head' },
    h('a', { href: '#/devices', class: 'btn small ghost back' }, `← ${t('devices.back')}`), h('h1', {}, t('device.title'))), box);

  const metricSel = h('select', { id: 'metric' });
  const rangeSel = select([...RANGES.map(([k]) => [k, t(`range.${k}`)]), ['custom', t('range.custom')]], '6h', { id: 'range' });
  const fromIn = h('input', { type: 'datetime-local', id: 'range-from', hidden: true, 'aria-label': t('range.from') });
  const toIn = h('input', { type: 'datetime-local', id: 'range-to', hidden: true, 'aria-label': t('range.to') });
  const chartBox = h('div', { class: 'chart-box' });
  const maintBox = h('div', {});

  async function load() {
    try {
      dev = await api(`devices/${encodeURIComponent(id)}`);
      dev = dev?.device && !dev.id ? dev.device : dev;
    } catch (e) { if (!disposed) clear(box).append(errorBox(e)); return; }
    const [site, prof, cam, presence, latest] = await Promise.all([
      dev.site_id ? optional(`sites/${encodeURIComponent(dev.site_id)}`).catch(() => null) : null,
      dev.profile ? optional(`profiles/${encodeURIComponent(dev.profile)}`).catch(() => null) : null,
      dev.kind === 'camera' ? optional(`cameras/${encodeURIComponent(dev.id)}`).catch(() => null) : null,
      dev.kind !== 'camera' ? optional(`devices/${encodeURIComponent(dev.id)}/presence`).catch(() => null) : null,
      dev.kind !== 'camera' ? optional(`devices/${encodeURIComponent(dev.id)}/readings/latest`).catch(() => null) : null]);
    if (presence && !dev.presence) dev.presence = presence;
    const gwNames = dev.gateway ? await gatewayNames() : new Map();
    if (disposed) return;
    profile = prof;
    const camSt = cam?.status && typeof cam.status === 'object' ? cam.status : cam;
    const st = deviceState(dev, camSt);
    const fw = firmwareProblem(dev, profile);
    const metrics = (profile?.metrics || []).map((m) => [m.name, `${m.label || m.name}${m.unit ? ` (${m.unit})` : ''}`]);
    const known = [...(dev.metrics || dev.status?.metrics || []), ...list(latest, 'readings').map((r) => r.metric)];
    if (Array.isArray(known)) for (const m of known) if (!metrics.find((x) => x[0] === m)) metrics.push([m, m]);
    clear(metricSel).append(...metrics.map(([v, l]) => h('option', { value: v }, l)));

    clear(box).append(
      h('div', { class: 'card detail-head' }, h('div', { class: 'chips' }, stateChip('health', st), h('span', { class: 'chip plain' }, tOr(`kind.${dev.kind}`, dev.kind))),
        h('h2', {}, dev.name || dev.id), h('p', { class: 'muted mono' }, dev.id),
        deviceReason(dev, camSt) ? h('p', { class: 'reason' }, reasonText(deviceReason(dev, camSt))) : null),
      h('div', { class: 'detail-grid' },
        h('div', { class: 'col' },
          dev.kind === 'sensor' || metrics.length ? h('section', { class: 'card' }, h('h3', {}, t('device.readings')),
            h('div', { class: 'filters', style: dev.gateway ? { display: 'none' } : null }, h('label', { class: 'filter' }, h('span', {}, t('device.metric')), metricSel),
              h('label', { class: 'filter' }, h('span', {}, t('device.range')), rangeSel), fromIn, toIn,
              h('button', { type: 'button', class: 'btn small', onclick: loadChart }, t('common.refresh'))), chartBox) : null,
          h('section', { class: 'card' }, h('h3', {}, t('device.maintenance')), maintBox)),
        h('div', { class: 'col' },
          h('section', { class: 'card' }, h('h3', {}, t('device.facts')), facts([
            [t('devices.health'), tOr(`health.${st}`, st)],
            [t('devices.last_seen'), `${fmtAgo(lastSeen(dev, camSt))} (${fmtTime(lastSeen(dev, camSt))})`],
            [t('devices.firmware'), h('span', { class: fw ? 'fw-bad' : '' }, dev.firmware || t('devices.firmware_unknown'), fw ? ` ⚠ ${fw}` : '')],
            [t('devices.model'), [dev.vendor, dev.model].filter(Boolean).join(' ')],
            [t('device.profile'), profile?.name ? `${profile.name} (${dev.profile})` : dev.profile],
            [t('device.serial'), dev.serial],
            [t('device.installed_on'), dev.installed_on],
            dev.gateway ? [t('gateways.gateway'), gatewayLabel(dev, gwNames)] : null,
            [t('devices.site'), site ? h('span', {}, site.name, h('br'), h('small', { class: 'muted' }, `${t('site.uscc')} ${site.uscc || '—'} · ${t('site.region')} ${site.region_code || '—'} · ${site.department || ''}`)) : dev.site_id],
            camSt?.codec ? [t('device.codec'), `${camSt.codec}${camSt.width ? ` ${camSt.width}×${camSt.height}` : ''}`] : null,
          ])))));
    // A site gateway's device keeps its readings and maintenance log at its site; the centre
    // has its facts and live state only.
    if (dev.gateway) {
      const note = h('p', { class: 'muted', id: 'at-site-note' }, t('device.at_site', { gateway: gwNames.get(dev.gateway) || dev.gateway }));
      clear(chartBox).append(note);
      clear(maintBox).append(note.cloneNode(true));
      return;
    }
    if (metrics.length) loadChart();
    loadMaint();
  }

  function range() {
    if (rangeSel.value === 'custom') {
      const from = fromIn.value ? new Date(fromIn.value) : new Date(Date.now() - 6 * 3600e3);
      const to = toIn.value ? new Date(toIn.value) : new Date();
      return [from, to];
    }
    const ms = (RANGES.find(([k]) => k === rangeSel.value) || RANGES[1])[1];
    return [new Date(Date.now() - ms), new Date()];
  }

  async function loadChart() {
    const metric = metricSel.value;
    const [from, to] = range();
    const span = to - from;
    const step = span <= 3600e3 ? '30s' : span <= 6 * 3600e3 ? '2m' : span <= 24 * 3600e3 ? '10m' : '1h';
    clear(chartBox).append(loading());
    try {
      const data = await telemetry(id, { metric, from: from.toISOString(), to: to.toISOString(), step });
      if (disposed) return;
      const m = (profile?.metrics || []).find((x) => x.name === metric);
      clear(chartBox).append(lineChart({ points: telemetryPoints(data), unit: m?.unit || data?.unit || '', from, to, label: t('alert.readings_of', { metric }) }));
    } catch (e) { if (!disposed) clear(chartBox).append(e.status === 404 ? notAvailable(t('device.readings')) : errorBox(e)); }
  }
  metricSel.addEventListener('change', loadChart);
  rangeSel.addEventListener('change', () => { const c = rangeSel.value === 'custom'; fromIn.hidden = !c; toIn.hidden = !c; loadChart(); });
  fromIn.addEventListener('change', loadChart);
  toIn.addEventListener('change', loadChart);

  async function loadMaint() {
    let entries = [];
    try { entries = list(await api(`devices/${encodeURIComponent(id)}/maintenance`), 'entries'); } catch (e) { if (!disposed) clear(maintBox).append(errorBox(e)); return; }
    if (disposed) return;
    entries.sort((a, b) => new Date(b.at) - new Date(a.at));
    const kind = select(MAINT_KINDS.map((k) => [k, t(`maint.${k}`)]), 'inspect', { id: 'maint-kind' });
    const note = h('textarea', { id: 'maint-note', rows: 2, required: true });
    const canWrite = ['admin', 'maintainer'].includes(session.user?.role) || !session.user?.role;
    const form = canWrite ? h('form', { class: 'maint-form', onsubmit: async (e) => {
      e.preventDefault();
      if (!note.value.trim()) { note.focus(); return; }
      try {
        await api(`devices/${encodeURIComponent(id)}/maintenance`, { method: 'POST', body: { kind: kind.value, note: note.value.trim(), at: new Date().toISOString() } });
        toast(t('maint.added'), 'ok');
        loadMaint();
      } catch (err) { toast(`${t('action.failed')}: ${err.message}`, 'error'); }
    } }, h('h4', {}, t('maint.add')), field(t('maint.kind'), kind), field(t('maint.note'), note),
    h('button', { type: 'submit', class: 'btn primary' }, t('maint.submit'))) : null;
    clear(maintBox).append(table([
      { label: t('maint.at'), render: (m) => fmtTime(m.at) },
      { label: t('maint.kind'), render: (m) => tOr(`maint.${m.kind}`, m.kind) },
      { label: t('maint.actor'), render: (m) => m.actor },
      { label: t('maint.note'), class: 'wide', render: (m) => m.note },
    ], entries, { empty: t('maint.none') }), form || '');
  }

  load();
  return () => { disposed = true; };
}
