// gateways: the site gateways enrolled below this centre (docs/contracts.md §7) and their
// health — state, last contact, delivery lag, inventory revision, refused requests. Admins
// enrol one (the secret is shown once, with the uplink the site needs), disable or enable it,
// rotate its secret and remove it. The list refreshes every 10 s.

import { h, clear } from '../dom.js';
import { t, fmtTime, fmtAgo } from '../i18n.js';
import { api, list, optional, session } from '../api.js';
import { table, select, errorBox, loading, notAvailable, toast, stateChip, field } from '../ui.js';

const REFRESH_MS = 10000;
const ID_RE = /^[^\s/]{1,64}$/;

// copyText puts text on the clipboard; outside a secure context (a centre on plain http at a
// LAN address) navigator.clipboard is missing, so it falls back to a selected textarea.
async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    try { await navigator.clipboard.writeText(text); return true; } catch { /* fall back */ }
  }
  const ta = h('textarea', { class: 'visually-hidden', readonly: true }, text);
  document.body.append(ta);
  ta.select();
  let ok = false;
  try { ok = document.execCommand('copy'); } catch { ok = false; }
  ta.remove();
  return ok;
}

function copyButton(text, id) {
  return h('button', { type: 'button', class: 'btn small', id, onclick: async () => {
    const ok = await copyText(text);
    toast(ok ? t('gateways.copied') : t('gateways.copy_failed'), ok ? 'ok' : 'error');
  } }, t('gateways.copy'));
}

// uplinkSnippet is the configuration the site gateway needs to report here.
export function uplinkSnippet(secret) {
  return `uplinks:\n  - name: centre\n    kind: centre\n    url: ${location.origin}\n    secret: ${secret}\n`;
}

export function mount(main) {
  const isAdmin = session.user?.role === 'admin';
  let disposed = false;
  let gateways = [];
  let loaded = false;
  // pending: gateway id → 'remove' | 'rotate' while the admin is asked to confirm.
  const pending = new Map();
  // Refusal details a person opened stay open across the 10 s refreshes.
  const openRefusals = new Set();
  const body = h('div', { class: 'gateways-body' }, loading());
  const secretBox = h('div', { id: 'gw-secret-box', 'aria-live': 'polite' });
  const formBox = h('div', { id: 'gw-enrol-box' });
  const count = h('span', { class: 'muted', id: 'gw-count' });

  main.append(
    h('div', { class: 'page-head' }, h('h1', {}, t('gateways.title')), count, h('div', { class: 'spacer' }),
      isAdmin ? h('button', { type: 'button', class: 'btn small primary', id: 'gw-enrol-open', onclick: () => toggleForm(true) }, t('gateways.enrol')) : null,
      h('button', { type: 'button', class: 'btn small', id: 'gw-refresh', onclick: () => load() }, t('common.refresh'))),
    secretBox, formBox, body);

  // showSecret shows a gateway's secret once, with the uplink the site puts in its
  // configuration. Nothing keeps it: after "saved" or leaving the page it is gone.
  function showSecret(g, secret, rotated) {
    const snippet = uplinkSnippet(secret);
    clear(secretBox).append(h('section', { class: 'card gw-secret', role: 'status' },
      h('h2', {}, rotated ? t('gateways.secret_rotated_title', { id: g.id }) : t('gateways.secret_title', { id: g.id })),
      h('p', { class: 'reason' }, t('gateways.secret_once')),
      h('div', { class: 'gw-secret-row' }, h('code', { class: 'mono gw-secret-value', id: 'gw-secret' }, secret), copyButton(secret, 'gw-copy-secret')),
      h('p', {}, t('gateways.snippet_intro')),
      h('pre', { class: 'mono gw-snippet', id: 'gw-snippet' }, snippet),
      h('div', { class: 'gw-secret-row' }, copyButton(snippet, 'gw-copy-snippet')),
      h('p', {}, t('gateways.snippet_gateway_id', { id: g.id })),
      h('pre', { class: 'mono gw-snippet' }, `gateway_id: ${g.id}\n`),
      h('button', { type: 'button', class: 'btn small primary', id: 'gw-secret-done', onclick: () => clear(secretBox) }, t('gateways.secret_saved'))));
    secretBox.scrollIntoView?.({ block: 'nearest' });
  }

  function toggleForm(open) {
    clear(formBox);
    if (!open) return;
    const id = h('input', { id: 'gw-id', required: true, maxlength: 64, placeholder: '410702-gw-01', autocomplete: 'off' });
    const name = h('input', { id: 'gw-name', maxlength: 200, placeholder: t('gateways.name_example'), autocomplete: 'off' });
    const url = h('input', { id: 'gw-url', type: 'url', placeholder: 'http://10.0.3.7:8080', autocomplete: 'off' });
    const alg = select([['', t('gateways.alg_any')], ['hmac-sm3', 'HMAC-SM3'], ['hmac-sha256', 'HMAC-SHA256']], '', { id: 'gw-alg' });
    const msg = h('div', { class: 'form-error', role: 'alert', id: 'gw-enrol-error' });
    const submit = h('button', { type: 'submit', class: 'btn primary small', id: 'gw-enrol-submit' }, t('gateways.enrol_submit'));
    formBox.append(h('form', { class: 'card gw-enrol', novalidate: true, onsubmit: async (e) => {
      e.preventDefault();
      msg.textContent = '';
      const gid = id.value.trim();
      if (!ID_RE.test(gid)) { msg.textContent = t('gateways.id_invalid'); id.focus(); return; }
      submit.disabled = true;
      try {
        const res = await api('gateways', { method: 'POST', body: { id: gid, name: name.value.trim(), base_url: url.value.trim(), alg: alg.value } });
        toggleForm(false);
        showSecret(res || { id: gid }, res?.secret || '', false);
        toast(t('gateways.enrolled', { id: gid }), 'ok');
        load();
      } catch (err) {
        msg.textContent = `${t('action.failed')}: ${err.message}`;
        submit.disabled = false;
      }
    } },
    h('h2', {}, t('gateways.enrol_title')),
    h('p', { class: 'muted' }, t('gateways.enrol_help')),
    h('div', { class: 'gw-form-grid' },
      field(t('gateways.id'), id, t('gateways.id_hint')),
      field(t('gateways.name'), name),
      field(t('gateways.base_url'), url, t('gateways.base_url_hint')),
      field(t('gateways.alg'), alg)),
    msg,
    h('div', { class: 'gw-secret-row' }, submit,
      h('button', { type: 'button', class: 'btn small ghost', id: 'gw-enrol-cancel', onclick: () => toggleForm(false) }, t('gateways.cancel')))));
    id.focus();
  }

  async function act(g, what) {
    pending.delete(g.id);
    const path = `gateways/${encodeURIComponent(g.id)}`;
    try {
      if (what === 'toggle') {
        await api(path, { method: 'PUT', body: { name: g.name, base_url: g.base_url || '', alg: g.alg || '', disabled: !g.disabled } });
        toast(g.disabled ? t('gateways.enabled_ok', { id: g.id }) : t('gateways.disabled_ok', { id: g.id }), 'ok');
      } else if (what === 'rotate') {
        const res = await api(`${path}/secret`, { method: 'POST' });
        showSecret(res || g, res?.secret || '', true);
      } else if (what === 'remove') {
        await api(path, { method: 'DELETE' });
        toast(t('gateways.removed', { id: g.id }), 'ok');
      }
    } catch (err) {
      toast(`${t('action.failed')}: ${err.message}`, 'error');
    }
    load();
  }

  function actions(g) {
    const ask = pending.get(g.id);
    if (ask) {
      return h('div', { class: 'gw-actions gw-confirm', role: 'group' },
        h('span', { class: 'reason' }, ask === 'remove' ? t('gateways.confirm_remove', { id: g.id }) : t('gateways.confirm_rotate', { id: g.id })),
        h('button', { type: 'button', class: 'btn small primary gw-confirm-yes', onclick: () => act(g, ask) },
          ask === 'remove' ? t('gateways.remove') : t('gateways.rotate')),
        h('button', { type: 'button', class: 'btn small ghost gw-confirm-no', onclick: () => { pending.delete(g.id); render(); } }, t('gateways.cancel')));
    }
    return h('div', { class: 'gw-actions', role: 'group' },
      h('button', { type: 'button', class: 'btn small gw-toggle', onclick: () => act(g, 'toggle') }, g.disabled ? t('gateways.enable') : t('gateways.disable')),
      h('button', { type: 'button', class: 'btn small gw-rotate', onclick: () => { pending.set(g.id, 'rotate'); render(); } }, t('gateways.rotate')),
      h('button', { type: 'button', class: 'btn small gw-remove', onclick: () => { pending.set(g.id, 'remove'); render(); } }, t('gateways.remove')));
  }

  function refusals(g) {
    const n = Number(g.refused || 0);
    if (!n) return '0';
    return h('details', { class: 'gw-refused', open: openRefusals.has(g.id),
      ontoggle: (e) => { if (e.target.open) openRefusals.add(g.id); else openRefusals.delete(g.id); } },
      h('summary', { title: g.last_refusal || '' }, h('span', { class: 'chip sev-major' }, String(n))),
      h('div', { class: 'reason' }, g.last_refusal || ''),
      g.last_refusal_at ? h('small', { class: 'muted' }, `${fmtTime(g.last_refusal_at)} (${fmtAgo(g.last_refusal_at)})`) : null);
  }

  function intro() {
    return h('section', { class: 'card gw-intro', id: 'gw-intro' },
      h('h2', {}, t('gateways.none')),
      h('p', {}, t('gateways.intro')),
      h('p', {}, isAdmin ? t('gateways.intro_admin') : t('gateways.intro_other')),
      h('pre', { class: 'mono gw-snippet' }, 'offsite gateways add --config /etc/offsite/offsite.yml --id 410702-gw-01 --name 红旗区政务服务中心网关 --url http://10.0.3.7:8080'));
  }

  function render() {
    if (disposed || !loaded) return;
    count.textContent = gateways.length ? t('gateways.count', {
      n: gateways.length, online: gateways.filter((g) => g.state === 'online' && !g.disabled).length }) : '';
    if (!gateways.length) { clear(body).append(intro()); return; }
    const cols = [
      { label: t('gateways.gateway'), class: 'full', render: (g) => h('span', {}, h('strong', {}, g.name || g.id), h('br'), h('small', { class: 'muted mono' }, g.id),
        g.disabled ? h('span', { class: 'chip st-paused gw-disabled' }, ` ${t('gateways.disabled')}`) : null) },
      { label: t('gateways.state'), render: (g) => h('span', { title: g.state_since ? t('gateways.since', { at: fmtTime(g.state_since) }) : '' }, stateChip('gw_state', g.state || 'unknown')) },
      { label: t('gateways.last_seen'), render: (g) => h('span', {}, h('time', { title: fmtTime(g.last_seen) }, fmtAgo(g.last_seen)),
        g.last_addr ? h('small', { class: 'muted mono' }, h('br'), g.last_addr) : null) },
      { label: t('gateways.lag'), render: (g) => h('span', { class: Number(g.lag_events) > 0 ? 'reason' : '', title: t('gateways.lag_hint') }, String(g.lag_events ?? 0)) },
      { label: t('gateways.inventory'), render: (g) => h('span', { title: g.inventory_at ? fmtTime(g.inventory_at) : '' }, g.inventory_revision ? `#${g.inventory_revision}` : '—') },
      { label: t('gateways.sites'), render: (g) => String(g.sites ?? 0) },
      { label: t('gateways.devices'), render: (g) => h('span', { class: 'gw-devices' }, String(g.devices ?? 0)) },
      { label: t('gateways.events'), render: (g) => String(g.events_received ?? 0) },
      { label: t('gateways.version'), render: (g) => g.version ? h('span', { class: 'mono' }, g.version) : '' },
      { label: t('gateways.refused'), render: refusals },
    ];
    if (isAdmin) cols.push({ label: t('gateways.actions'), class: 'wide', render: actions });
    clear(body).append(table(cols, gateways, { rowAttrs: (g) => ({ 'data-gateway': g.id, 'data-state': g.state || 'unknown', class: g.disabled ? 'gw-row-disabled' : '' }) }));
  }

  async function load() {
    let data;
    try { data = await optional('gateways'); } catch (e) { if (!disposed) clear(body).append(errorBox(e)); return; }
    if (disposed) return;
    if (data === null) { clear(body).append(notAvailable(t('gateways.title'))); return; }
    gateways = list(data, 'gateways').sort((a, b) => String(a.id).localeCompare(String(b.id)));
    for (const id of [...pending.keys()]) if (!gateways.some((g) => g.id === id)) pending.delete(id);
    loaded = true;
    render();
  }

  const timer = setInterval(load, REFRESH_MS);
  load();
  return () => { disposed = true; clearInterval(timer); };
}
