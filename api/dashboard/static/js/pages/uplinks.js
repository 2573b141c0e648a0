// uplinks: each uplink's delivery state (cursor, backlog, last error) and its dead letters —
// batches the receiver rejected, which are kept for a person to look at and re-send.

import { h, clear } from '../dom.js';
import { t, tOr, fmtTime, fmtAgo } from '../i18n.js';
import { api, list, optional } from '../api.js';
import { facts, errorBox, loading, notAvailable, table, toast, stateChip } from '../ui.js';

export function mount(main) {
  let disposed = false;
  const body = h('div', { class: 'uplinks' }, loading());
  main.append(h('div', { class: 'page-head' }, h('h1', {}, t('uplinks.title')), h('div', { class: 'spacer' }),
    h('button', { type: 'button', class: 'btn small', onclick: () => load() }, t('common.refresh'))), body);

  async function deadLetters(u) {
    const base = `uplinks/${encodeURIComponent(u.id || u.name)}`;
    if (Array.isArray(u.dead_letters)) return { items: u.dead_letters, base: `${base}/dead-letters` };
    for (const p of ['dead-letters', 'dead_letters', 'deadletters']) {
      const d = await optional(`${base}/${p}`).catch(() => null);
      if (d) return { items: list(d, 'dead_letters'), base: `${base}/${p}` };
    }
    return null;
  }

  // resend asks the uplink to deliver dead letters again: POST …/dead-letters/resend with
  // {"ids": […]}, or one at a time at …/dead-letters/{event_id}/resend.
  async function resend(base, ids) {
    try {
      await api(`${base}/resend`, { method: 'POST', body: { ids } });
    } catch (e) {
      if (![404, 405].includes(e.status)) throw e;
      for (const id of ids) await api(`${base}/${encodeURIComponent(id)}/resend`, { method: 'POST' });
    }
  }

  async function load() {
    let data;
    try { data = await optional('uplinks'); } catch (e) { if (!disposed) clear(body).append(errorBox(e)); return; }
    if (disposed) return;
    if (data === null) { clear(body).append(notAvailable(t('uplinks.title'))); return; }
    const ups = list(data, 'uplinks');
    if (!ups.length) { clear(body).append(h('p', { class: 'empty' }, t('uplinks.none'))); return; }
    const cards = await Promise.all(ups.map(async (u) => {
      const dl = await deadLetters(u);
      const st = String(u.state || u.status || (u.last_error && !(u.last_success && u.last_error_at && new Date(u.last_success) > new Date(u.last_error_at)) ? 'retrying' : 'ok')).toLowerCase();
      const n = (k, ...alts) => { for (const a of [k, ...alts]) if (u[a] !== undefined) return u[a]; return undefined; };
      return h('section', { class: 'card uplink', 'data-uplink': u.id || u.name },
        h('div', { class: 'uplink-head' }, h('h2', {}, u.name || u.id), u.kind ? h('span', { class: 'chip plain' }, u.kind) : null, stateChip('uplink_state', st)),
        facts([
          [t('uplinks.url'), h('span', { class: 'mono' }, u.url || u.base_url || '')],
          [t('uplinks.backlog'), String(n('backlog', 'pending', 'queued') ?? '—')],
          typeof u.lag_seconds === 'number' ? [t('uplinks.lag'), t('time.seconds', { n: Math.round(u.lag_seconds) })] : null,
          [t('uplinks.delivered'), String(n('delivered', 'delivered_total', 'accepted') ?? '—')],
          u.rejected !== undefined ? [t('uplinks.rejected'), String(u.rejected)] : null,
          u.attempts ? [t('uplinks.attempts'), String(u.attempts)] : null,
          [t('uplinks.cursor'), n('cursor', 'position')],
          [t('uplinks.last_delivery'), n('last_delivered_at', 'last_success', 'last_ok_at') ? `${fmtAgo(n('last_delivered_at', 'last_success', 'last_ok_at'))} (${fmtTime(n('last_delivered_at', 'last_success', 'last_ok_at'))})` : ''],
          [t('uplinks.last_error'), n('last_error', 'error') ? h('span', { class: 'reason' }, String(typeof u.last_error === 'object' ? u.last_error.message : n('last_error', 'error')),
            u.last_error_at ? h('small', { class: 'muted' }, ` (${fmtTime(u.last_error_at)})`) : null) : ''],
          u.next_retry_at ? [t('uplinks.next_retry'), fmtTime(u.next_retry_at)] : null,
        ]),
        h('h3', { class: 'dl-head' }, t('uplinks.dead_letters'), dl ? ` (${dl.items.length})` : typeof u.dead_letters === 'number' ? ` (${u.dead_letters})` : ''),
        dl && dl.items.some((x) => !x.resolved_at) ? h('button', { type: 'button', class: 'btn small resend-all', onclick: async (e) => {
          e.target.disabled = true;
          try { await resend(dl.base, dl.items.filter((x) => !x.resolved_at).map((x) => x.event_id || x.id)); toast(t('uplinks.resent'), 'ok'); load(); }
          catch (err) { toast(`${t('action.failed')}: ${err.message}`, 'error'); e.target.disabled = false; }
        } }, t('uplinks.resend_all')) : null,
        dl === null ? notAvailable(t('uplinks.dead_letters')) : table([
          { label: t('uplinks.event'), render: (x) => h('span', { class: 'mono' }, x.event_id || x.id || '') },
          { label: t('uplinks.type'), render: (x) => tOr(`type.${x.type || x.event?.type}`, x.type || x.event?.type || '') },
          { label: t('uplinks.reason'), class: 'wide', render: (x) => x.reason || '' },
          { label: t('uplinks.at'), render: (x) => fmtTime(x.at || x.rejected_at || x.created_at) },
          { label: '', render: (x) => x.resolved_at ? h('span', { class: 'muted' }, t('uplinks.resolved')) : h('button', { type: 'button', class: 'btn small', onclick: async (e) => {
            e.target.disabled = true;
            try {
              await resend(dl.base, [x.event_id || x.id]);
              toast(t('uplinks.resent'), 'ok'); load();
            } catch (err) { toast(`${t('action.failed')}: ${err.status === 404 ? t('common.not_available', { what: t('uplinks.resend') }) : err.message}`, 'error'); e.target.disabled = false; }
          } }, t('uplinks.resend')) },
        ], dl.items, { empty: t('uplinks.no_dead_letters') }));
    }));
    if (!disposed) clear(body).append(...cards);
  }

  const timer = setInterval(load, 15000);
  load();
  return () => { disposed = true; clearInterval(timer); };
}
