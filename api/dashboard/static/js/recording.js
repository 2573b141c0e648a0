// recording: 取证录像 on a wall tile — record the next N minutes of a camera with a reason,
// as evidence attached to an open alert of that camera or to a new manual event
// (POST /api/v1/cameras/{id}/recordings, docs/contracts.md §9), then show its state
// (GET …/recordings) while the dialog is open. At a centre, a site gateway's camera is recorded
// by that gateway (the centre forwards the request); the dialog says which gateway records.
// A gateway without the API says so.

import { h, clear } from './dom.js';
import { t, tOr, fmtTime } from './i18n.js';
import { api, list, optional } from './api.js';
import { field, select, toast } from './ui.js';

// DEFAULT_MAX_MINUTES applies when the gateway does not say its maximum (max_minutes).
const DEFAULT_MAX_MINUTES = 30;

export function openRecordingDialog(camId, camName) {
  const minutes = h('input', { type: 'number', min: 1, max: DEFAULT_MAX_MINUTES, step: 1, value: 5, id: 'rec-minutes', name: 'minutes' });
  const hint = h('small', { class: 'hint', id: 'rec-minutes-hint' }, t('rec.minutes_hint', { max: DEFAULT_MAX_MINUTES }));
  const reason = h('textarea', { rows: 2, id: 'rec-reason', name: 'reason', placeholder: t('rec.reason_placeholder') });
  const alertSel = select([['', t('rec.no_alert')]], '', { id: 'rec-alert', name: 'alert_id' });
  const status = h('div', { class: 'rec-status', id: 'rec-status', 'aria-live': 'polite' });
  const recorder = h('p', { class: 'hint rec-gateway', id: 'rec-gateway', hidden: true });
  const recent = h('ul', { class: 'rec-list', id: 'rec-list' });
  const recentHead = h('h4', {}, t('rec.recent'));
  const startBtn = h('button', { type: 'submit', class: 'btn primary', id: 'rec-start' }, t('rec.start'));
  const closeBtn = h('button', { type: 'button', class: 'btn', id: 'rec-close', onclick: () => dlg.close() }, t('rec.close'));
  const form = h('form', { class: 'rec-form', onsubmit: submit },
    h('h3', {}, t('rec.title', { camera: camName || camId })),
    recorder,
    field(t('rec.minutes'), minutes), hint,
    field(t('rec.reason'), reason),
    field(t('rec.alert'), alertSel),
    status,
    h('div', { class: 'rec-actions' }, startBtn, closeBtn),
    recentHead, recent);
  const dlg = h('dialog', { class: 'rec-dialog', id: 'rec-dialog', 'data-camera': camId }, form);
  let timer = 0;
  let unavailable = false;
  dlg.addEventListener('close', () => { clearInterval(timer); dlg.remove(); });
  document.body.append(dlg);
  dlg.showModal();

  // The camera's open alerts, to attach the recording to.
  optional('alerts?limit=500').then((data) => {
    const mine = list(data, 'alerts').filter((a) => (a.device_id === camId || a.source?.device?.id === camId) && a.state !== 'closed');
    for (const a of mine) alertSel.append(h('option', { value: a.id }, `${fmtTime(a.opened_at, false)} · ${a.message || tOr(`type.${a.type}`, a.type)}`));
  }).catch(() => {});
  refresh();

  async function refresh() {
    let data;
    try { data = await api(`cameras/${encodeURIComponent(camId)}/recordings`); } catch (e) {
      // A site gateway's camera seen at a centre that cannot forward to it (no address known).
      if (e.code === 'record_at_site') showUnavailable(t('rec.at_site'), e.message, true);
      else if ([404, 405, 501].includes(e.status) && !['camera_not_found'].includes(e.code)) showUnavailable();
      return;
    }
    showRecorder(data?.gateway);
    const max = Number(data?.max_minutes) || DEFAULT_MAX_MINUTES;
    minutes.max = String(max);
    hint.textContent = t('rec.minutes_hint', { max });
    const items = list(data, 'items');
    clear(recent).append(...(items.length ? items.slice(0, 5).map((r) => h('li', { class: `rec-item rec-${r.state}`, 'data-state': r.state },
      h('span', { class: `chip st-${r.state}` }, tOr(`rec.state.${r.state}`, r.state)),
      ` ${t('rec.until', { until: fmtTime(r.until) })}`,
      r.sha256 ? h('code', { class: 'sha256' }, ` ${r.sha256.slice(0, 16)}…`) : null)) : [h('li', { class: 'empty' }, t('rec.none'))]));
    if (!items.some((r) => r.state === 'recording')) { clearInterval(timer); timer = 0; }
  }

  // showRecorder names the gateway that records the camera (a site gateway's, at a centre).
  function showRecorder(gateway) {
    if (!gateway) return;
    recorder.hidden = false;
    recorder.dataset.gateway = gateway;
    recorder.textContent = t('rec.by_gateway', { gateway });
  }

  function showUnavailable(text = t('rec.unavailable'), detail = '', atSite = false) {
    unavailable = true;
    startBtn.disabled = true;
    recent.hidden = recentHead.hidden = true;
    clear(status).append(h('p', { class: 'alert-box muted', 'data-unavailable': '1', 'data-at-site': atSite ? '1' : null, title: detail || null }, text,
      detail ? h('small', { class: 'muted rec-detail' }, ` ${detail}`) : null));
  }

  async function submit(e) {
    e.preventDefault();
    if (unavailable) return;
    const n = Number(minutes.value);
    if (!reason.value.trim()) { clear(status).append(h('p', { class: 'alert-box error' }, t('rec.reason_required'))); reason.focus(); return; }
    if (!(n >= 1 && n <= Number(minutes.max))) { clear(status).append(h('p', { class: 'alert-box error' }, t('rec.minutes_hint', { max: minutes.max }))); return; }
    startBtn.disabled = true;
    const body = { minutes: n, reason: reason.value.trim() };
    if (alertSel.value) body.alert_id = alertSel.value;
    try {
      const r = await api(`cameras/${encodeURIComponent(camId)}/recordings`, { method: 'POST', body });
      showRecorder(r?.gateway);
      clear(status).append(h('p', { class: 'alert-box ok rec-started', 'data-recording': r?.id || '', 'data-gateway': r?.gateway || null },
        t('rec.started', { until: fmtTime(r?.until) })));
      toast(t('rec.started', { until: fmtTime(r?.until) }), 'ok');
      clearInterval(timer);
      timer = setInterval(refresh, 5000);
      refresh();
    } catch (err) {
      startBtn.disabled = false;
      if (err.status === 404 && !['camera_not_found', 'alert_not_found'].includes(err.code)) { showUnavailable(); return; }
      if (err.code === 'site_unreachable') {
        clear(status).append(h('p', { class: 'alert-box error', role: 'alert', 'data-site-unreachable': '1' }, t('rec.site_unreachable'),
          h('small', { class: 'muted rec-detail' }, ` ${err.message}`)));
        return;
      }
      clear(status).append(h('p', { class: 'alert-box error', role: 'alert' }, `${t('action.failed')}: ${err.message}`));
    }
  }
  return dlg;
}
