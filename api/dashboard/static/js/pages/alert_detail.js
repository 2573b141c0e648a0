// alert detail: the event with its evidence, a chart of the readings around it, the site's
// facts, the claim / handle / feedback / close forms and the timeline of the chain.

import { h, clear } from '../dom.js';
import { t, tOr, fmtTime, fmtNum } from '../i18n.js';
import { api, optional, withToken, telemetry } from '../api.js';
import { subscribe } from '../events.js';
import { lineChart } from '../chart.js';
import { isClip, clipView } from '../clips.js';
import { severityChip, stateChip, typeLabel, facts, errorBox, loading, toast, field, select } from '../ui.js';
import { severityOf, alertState, siteOf, deviceOf, deviceLabel, occurredAt, department, supervisionItem, pick, eventType, messageText, messageOriginal, timeline, telemetryPoints, OUTCOMES } from '../model.js';

// Which forms each state offers, in the order of the chain 认领 → 处办 → 反馈 → 办结
// (events: handle may be recorded more than once before the feedback).
const NEXT = {
  opened: ['claim'],
  claimed: ['handle'],
  handled: ['handle', 'feedback'],
  fed_back: ['close'],
  closed: [],
};

// stepLabel names a step in the past tense: by the state it led to (已认领), else by its
// action or event type.
function stepLabel(ty, state) {
  if (ty === 'open' || ty === 'opened' || ty === 'alert.opened') return t('action.open');
  if (['recur', 'recover', 'raise', 'escalate'].includes(ty)) return t(`action.${ty}`);
  if (state && state !== 'opened') return tOr(`alert_state.${state}`, state);
  return tOr(`type.${ty}`, tOr(`action.${ty}`, ty));
}

export function mount(main, { id }) {
  let disposed = false;
  const box = h('div', { class: 'detail' }, loading());
  main.append(h('div', { class: 'page-head' },
    h('a', { href: '#/alerts', class: 'btn small ghost back' }, `← ${t('alerts.back')}`), h('h1', {}, t('alert.title'))), box);

  // load runs after an action and on every live event of this alert, so several can overlap;
  // only the newest may render, or a slow older answer would put a stale timeline back.
  let loads = 0;
  let sourceId = ''; // the alert's source event, which clips name in ref_event_id
  async function load() {
    const mine = ++loads;
    let a;
    try { a = await api(`alerts/${encodeURIComponent(id)}`); } catch (e) { if (!disposed && mine === loads) clear(box).append(errorBox(e)); return; }
    if (disposed || mine !== loads) return;
    a = a?.alert && !a.id ? Object.assign({}, a.alert, a) : a;
    let site = siteOf(a);
    if (site.id && (!site.uscc || !site.department)) {
      const full = await optional(`sites/${encodeURIComponent(site.id)}`).catch(() => null);
      if (full) site = Object.assign({}, full, site, { uscc: site.uscc || full.uscc, region_code: site.region_code || full.region_code, department: site.department || full.department });
    }
    const prof = deviceOf(a).profile;
    const profile = prof ? await optional(`profiles/${encodeURIComponent(prof)}`).catch(() => null) : null;
    if (disposed || mine !== loads) return;
    sourceId = a.event_id || a.source?.id || '';
    render(a, site, profile);
  }

  // ruleLabel names the rule as people know it: the profile's Chinese name and what the rule
  // watches ("可燃气体探测器 · 可燃气体浓度 ≥ 20 %LEL"), the rule id second.
  function ruleLabel(a, profile) {
    const id = pick(a, 'rule');
    if (!id) return pick(a, 'alarm_key');
    const r = (profile?.rules || []).find((x) => x.id === id);
    if (!r) return h('span', {}, typeLabel(eventType(a)), h('small', { class: 'muted' }, ` (${id})`));
    const m = (profile.metrics || []).find((x) => x.name === r.metric);
    const what = r.metric ? `${m?.label || r.metric} ${r.op || ''} ${r.value ?? ''} ${m?.unit || ''}`.trim() : typeLabel(eventType(a));
    return h('span', {}, `${profile.name || profile.id} · ${what}`, h('small', { class: 'muted' }, ` (${id})`));
  }

  function render(a, site, profile) {
    const ev = a.event || a;
    const st = alertState(a);
    const dev = deviceOf(a);
    const reading = pick(a, 'reading') || {};
    const sev = severityOf(a);

    const head = h('div', { class: `card detail-head sev-border-${sev}` },
      h('div', { class: 'chips' }, severityChip(sev), stateChip('alert_state', st), h('span', { class: 'chip plain' }, typeLabel(eventType(a)))),
      h('h2', { class: 'detail-title' }, [deviceLabel(a), site.name || site.id].filter(Boolean).join(' · ') || typeLabel(eventType(a))),
      h('p', { class: 'detail-message', title: messageOriginal(a) }, messageText(a) || typeLabel(eventType(a)),
        a.alarm_active === false && st !== 'closed' ? h('span', { class: 'chip plain recovered' }, ` ${t('alerts.recovered')}`) : null),
      h('p', { class: 'muted' }, `${fmtTime(occurredAt(a))} · ${site.name || site.id || ''}`));

    const eventFacts = facts([
      [t('alert.id'), a.id],
      [t('alert.occurred'), fmtTime(occurredAt(a))],
      [t('alert.type'), typeLabel(eventType(a))],
      [t('alert.occurrences'), String(a.occurrences || 1)],
      (a.occurrences || 1) > 1 ? [t('alert.first_at'), fmtTime(a.first_at)] : null,
      (a.occurrences || 1) > 1 ? [t('alert.last_at'), fmtTime(a.last_at)] : null,
      a.recovered_at ? [t('alert.recovered_at'), fmtTime(a.recovered_at)] : null,
      [t('alert.rule'), ruleLabel(a, profile)],
      [t('alert.device'), dev.id ? h('a', { href: `#/devices/${encodeURIComponent(dev.id)}` }, deviceLabel(a)) : ''],
      reading.metric ? [t('alert.reading'), `${reading.metric}: ${fmtNum(reading.value, 2)} ${reading.unit || ''}`] : null,
      typeof reading.limit === 'number' ? [t('alert.limit'), `${fmtNum(reading.limit, 2)} ${reading.unit || ''}`] : null,
      [t('alert.gateway'), pick(a, 'gateway_id')],
      pick(a, 'detail') ? [t('alert.detail'), h('code', { class: 'detail-text' }, pick(a, 'detail'))] : null,
      [t('alert.assignee'), a.claimed_by || a.assignee || a.owner],
      a.outcome ? [t('alert.outcome'), tOr(`outcome.${a.outcome}`, a.outcome)] : null,
    ]);
    const siteFacts = facts([
      [t('site.name'), site.name || site.id],
      [t('site.uscc'), site.uscc],
      [t('site.region'), site.region_code],
      [t('site.department'), department(a) || site.department],
      [t('site.supervision_item'), supervisionItem(a) || (site.supervision_items || []).join(', ')],
      [t('site.address'), site.address],
    ]);

    // clips (the API's evidence of the alert: its event's and every evidence.added of its
    // events), else the source event's evidence.
    const evidence = (Array.isArray(a.clips) ? a.clips : (pick(a, 'evidence') || [])).filter((x) => x && x.url);
    let nClip = 0, nPic = 0;
    const evBox = h('div', { class: 'evidence' }, evidence.length ? evidence.map((x) => {
      if (isClip(x)) return clipView(x, ++nClip);
      const src = withToken(x.url);
      const label = t('alert.evidence_n', { n: ++nPic });
      return h('a', { href: src, target: '_blank', rel: 'noopener' }, h('img', { src, alt: label, loading: 'lazy',
        onerror: (e) => { e.target.replaceWith(h('div', { class: 'empty' }, t('alert.evidence_missing'))); } }));
    }) : h('p', { class: 'empty' }, t('alert.no_evidence')));

    const chartBox = h('div', { class: 'chart-box' });
    if (dev.id && (reading.metric || dev.kind === 'sensor')) loadChart(chartBox, dev.id, reading, occurredAt(a));
    else chartBox.append(h('p', { class: 'empty' }, t('alert.no_readings')));

    const actions = h('div', { class: 'actions' });
    const forms = NEXT[st] ?? ['claim', 'handle', 'feedback', 'close'];
    if (!forms.length) actions.append(h('p', { class: 'muted' }, t('alert.closed_note')));
    for (const act of forms) actions.append(actionForm(a, act));

    const tl = timeline(a);
    const tlBox = h('ol', { class: 'timeline', id: 'alert-timeline' }, tl.length ? tl.map((x) => {
      const ty = x.type || x.action || x.kind || '';
      const note = x.note || x.message || x.comment || '';
      const outcome = x.outcome_label || x.outcome;
      return h('li', { class: `tl-item tl-${ty.replace(/\W/g, '_')}`, 'data-type': ty },
        h('div', { class: 'tl-when' }, fmtTime(x.at || x.occurred_at || x.time || x.created_at)),
        h('div', { class: 'tl-what' }, h('strong', {}, stepLabel(ty, x.state)),
          x.actor || x.user || x.by ? h('span', { class: 'muted' }, ` · ${x.actor || x.user || x.by}`) : null),
        outcome ? h('div', { class: 'tl-outcome' }, `${t('alert.outcome')}: ${tOr(`outcome.${outcome}`, outcome)}`) : null,
        note ? h('div', { class: 'tl-note' }, note) : null);
    }) : h('li', { class: 'empty' }, t('alert.no_timeline')));

    clear(box).append(head,
      h('div', { class: 'facts-row' },
        h('section', { class: 'card card-event' }, h('h3', {}, t('alert.event')), eventFacts),
        h('section', { class: 'card card-site' }, h('h3', {}, t('alert.site')), siteFacts)),
      h('div', { class: 'detail-grid' },
        h('div', { class: 'col' },
          h('section', { class: 'card card-evidence' }, h('h3', {}, t('alert.evidence')), evBox),
          h('section', { class: 'card card-chart' }, h('h3', {}, t('alert.readings')), chartBox)),
        h('div', { class: 'col' },
          h('section', { class: 'card card-actions' }, h('h3', {}, t('alert.actions')), actions),
          h('section', { class: 'card card-timeline' }, h('h3', {}, t('alert.timeline')), tlBox))));
    void ev;
  }

  function actionForm(a, act) {
    const note = h('textarea', { rows: 2, name: 'note', id: `note-${act}`, placeholder: t('alert.note_placeholder') });
    const outcome = act === 'feedback'
      ? select(OUTCOMES.map((o) => [o, t(`outcome.${o}`)]), 'rectify_ordered', { id: 'feedback-outcome', name: 'outcome' }) : null;
    const btn = h('button', { type: 'submit', class: `btn ${act === 'close' ? '' : 'primary'}`, id: `action-${act}` }, t(`action.${act}`));
    const form = h('form', { class: `action-form act-${act}`, 'data-action': act, onsubmit: async (e) => {
      e.preventDefault();
      btn.disabled = true;
      const body = { note: note.value.trim() };
      if (outcome) body.outcome = outcome.value;
      try {
        await api(`alerts/${encodeURIComponent(a.id)}/${act}`, { method: 'POST', body });
        toast(t('alert.done', { action: t(`action.${act}`) }), 'ok');
        await load();
      } catch (err) {
        toast(`${t('action.failed')}: ${err.message}`, 'error');
        btn.disabled = false;
      }
    } },
    h('h4', {}, t(`action.${act}_title`)),
    outcome ? field(t('alert.outcome'), outcome) : null,
    field(t('alert.note'), note), btn);
    return form;
  }

  async function loadChart(boxEl, devId, reading, at) {
    const center = new Date(at || Date.now());
    const from = new Date(center.getTime() - 30 * 60e3);
    const to = new Date(Math.min(Date.now(), center.getTime() + 30 * 60e3) + 60e3);
    boxEl.append(loading());
    try {
      const data = await telemetry(devId, { metric: reading.metric, from: from.toISOString(), to: to.toISOString(), step: '30s' });
      if (disposed) return;
      clear(boxEl).append(lineChart({ points: telemetryPoints(data), unit: reading.unit || data?.unit || '', limit: reading.limit, marker: center, from, to,
        highlight: typeof reading.value === 'number' && at ? { t: center, v: reading.value } : null,
        label: t('alert.readings_of', { metric: reading.metric || '' }) }));
    } catch (e) {
      if (!disposed) clear(boxEl).append(e.status === 404 ? h('p', { class: 'empty' }, t('alert.no_readings')) : errorBox(e));
    }
  }

  // A clip finished after the alert opened arrives as evidence.added naming its event.
  const unsub = subscribe((ev) => {
    if (ev.alert_id === id || ev.alert?.id === id || (eventType(ev).startsWith('alert.') && JSON.stringify(ev).includes(id))) load();
    else if (eventType(ev) === 'evidence.added' && sourceId && ev.ref_event_id === sourceId) load();
  });
  load();
  return () => { disposed = true; unsub(); };
}
