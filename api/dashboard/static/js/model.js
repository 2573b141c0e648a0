// model: readers for the API's objects that tolerate missing or differently nested fields,
// because the backend grows while the dashboard is used.

import { tOr, getLang } from './i18n.js';

export const SEVERITIES = ['critical', 'major', 'minor', 'info'];
export const ALERT_STATES = ['opened', 'claimed', 'handled', 'fed_back', 'closed'];
export const OUTCOMES = ['rectify_ordered', 'case_filed', 'false_alarm', 'rectified', 'other'];
export const MAINT_KINDS = ['install', 'inspect', 'repair', 'replace', 'firmware', 'note'];

export function eventType(e) { return String(e?.type || e?.event?.type || ''); }
export function severityOf(e) {
  const s = String(e?.severity || e?.event?.severity || e?.alert?.severity || 'info').toLowerCase();
  return SEVERITIES.includes(s) ? s : 'info';
}

// alertEvent is the event an alert was opened for.
export function alertEvent(a) { return a?.source || a?.event || a?.events?.[0] || a?.trigger || {}; }
export function pick(a, ...names) {
  const e = alertEvent(a);
  for (const n of names) {
    const v = a?.[n] ?? e?.[n];
    if (v !== undefined && v !== null && v !== '') return v;
  }
  return undefined;
}
export function alertState(a) {
  const s = String(a?.state || a?.status || 'opened').toLowerCase();
  return ['active', 'new', 'open'].includes(s) ? 'opened' : s === 'feedback' ? 'fed_back' : s;
}
export function siteOf(x) {
  const s = pick(x, 'site');
  if (s && typeof s === 'object') return s;
  return { id: pick(x, 'site_id') || (typeof s === 'string' ? s : ''), name: pick(x, 'site_name') || '' };
}
export function deviceOf(x) {
  const d = pick(x, 'device');
  if (d && typeof d === 'object') return d;
  return { id: pick(x, 'device_id') || (typeof d === 'string' ? d : '') };
}
// deviceLabel names a device as people do, the id second: "进水口 (cam-env-1)".
export function deviceLabel(x) {
  const d = deviceOf(x);
  if (!d.id) return '';
  return d.name && d.name !== d.id ? `${d.name} (${d.id})` : d.id;
}
export function occurredAt(a) { return pick(a, 'occurred_at', 'opened_at', 'created_at', 'at', 'time'); }
export function department(a) { return pick(a, 'department') || siteOf(a).department || ''; }
export function supervisionItem(a) {
  const v = pick(a, 'supervision_item', 'supervision_items') || siteOf(a).supervision_items;
  return Array.isArray(v) ? v.join(', ') : (v || '');
}

// timeline: the events of an alert's chain, oldest first.
export function timeline(a) {
  const raw = a?.steps || a?.timeline || a?.history || a?.events || a?.actions || [];
  const items = Array.isArray(raw) ? raw.slice() : [];
  const at = (x) => new Date(x.at || x.occurred_at || x.time || x.created_at || 0).getTime();
  items.sort((x, y) => at(x) - at(y));
  return items;
}

// Device health: "online", "stalled", "offline" or "unknown". camStatus is a camera of
// GET /cameras ({id, name, status: {state, reason}}) or its status.
export function deviceState(d, camStatus) {
  const cands = [camStatus?.status?.state, camStatus?.state, d?.status?.state, d?.presence?.state, d?.health?.state,
    typeof d?.status === 'string' ? d.status : undefined, d?.state,
    typeof d?.online === 'boolean' ? (d.online ? 'online' : 'offline') : undefined];
  for (const c of cands) {
    if (!c) continue;
    const s = String(c).toLowerCase();
    if (s === 'online' || s === 'ok' || s === 'up') return 'online';
    if (s === 'stalled' || s === 'stale' || s === 'silent' || s === 'degraded' || s === 'connecting') return 'stalled';
    if (s === 'offline' || s === 'down' || s === 'lost') return 'offline';
    if (s === 'idle') return 'idle';
  }
  return 'unknown';
}
// deviceReason is why a device is in its state, in the interface language: a camera's
// reason_code and a sensor's reason_zh are translated; the raw reason only as a last resort.
export function deviceReason(d, camStatus) {
  const code = camStatus?.reason_code;
  if (code) return tOr(`player.reason.${code}`, code);
  const zh = d?.presence?.reason_zh || d?.status?.reason_zh;
  if (zh && getLang() === 'zh-CN') return zh;
  if (camStatus?.status?.state === 'online') return '';
  return camStatus?.status?.reason || camStatus?.reason || camStatus?.problem?.message || d?.status?.reason || d?.presence?.reason || d?.reason || '';
}
export function lastSeen(d, camStatus) {
  return d?.last_seen || d?.status?.last_seen || d?.presence?.last_seen || d?.presence?.since || d?.last_seen_at || camStatus?.status?.since || camStatus?.since;
}

// firmwareProblem tells why a device's firmware is flagged, or "" when it is fine: a version
// the device's profile lists as bad, an empty version, or a flag the server set.
export function firmwareProblem(d, profile) {
  const fc = d?.firmware_check;
  if (fc && typeof fc === 'object') return fc.status === 'bad' ? (fc.reason || 'bad') : '';
  const fs = d?.firmware_status;
  if (fs && typeof fs === 'object' && fs.ok === false) return fs.reason || 'flagged';
  if (typeof fs === 'string' && !['ok', 'current', 'supported', ''].includes(fs)) return fs;
  const bad = profile?.firmware?.bad || [];
  const glob = (g) => new RegExp(`^${String(g).replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`);
  const hit = d?.firmware ? bad.find((b) => glob(b.version).test(d.firmware)) : null;
  if (hit) return hit.reason || 'bad';
  return '';
}

export function telemetryPoints(data) {
  const raw = Array.isArray(data) ? data : data?.points || data?.values || data?.data || data?.series?.[0]?.points || [];
  const out = [];
  for (const p of raw) {
    let t; let v;
    if (Array.isArray(p)) { [t, v] = p; } else { t = p.t ?? p.ts ?? p.time ?? p.at; v = p.v ?? p.value ?? p.mean ?? p.avg; }
    const d = typeof t === 'number' ? new Date(t < 1e12 ? t * 1000 : t) : new Date(t);
    // flags: HJ 212 data flags other than N in the step (M maintenance, C calibration, …)
    const flags = typeof p.flags === 'string' ? p.flags : (typeof p.flag === 'string' && p.flag !== 'N' ? p.flag : '');
    if (!isNaN(d.getTime()) && typeof v === 'number' && isFinite(v)) out.push({ t: d, v, flags });
  }
  out.sort((a, b) => a.t - b.t);
  return out;
}

// messageText is an alert's or event's message in the interface language. Gateways write the
// message in Chinese (the language of the people who act on it); with the English switch the
// sentence is rebuilt from what the event carries — its type, device and reading — and the
// original stays available to the caller (see messageOriginal).
export function messageText(a) {
  const zh = pick(a, 'message') || '';
  const type = eventType(a) || String(pick(a, 'type') || '');
  if (getLang() === 'zh-CN' || !type) return zh;
  const dev = pick(a, 'device') || {};
  const devName = typeof dev === 'object' ? (dev.name || dev.id || '') : String(dev);
  const r = pick(a, 'reading');
  let text = tOr(`type.${type}`, type);
  if (devName) text += `: ${devName}`;
  if (r && r.metric) {
    const unit = r.unit ? ` ${r.unit}` : '';
    text += ` (${r.metric} ${r.value}${unit}`;
    if (r.limit !== undefined && r.limit !== null) text += `, ${tOr('alerts.limit_word', 'limit')} ${r.limit}${unit}`;
    text += ')';
  }
  return text;
}

// messageOriginal is the gateway's own sentence when messageText rebuilt it, else ''.
export function messageOriginal(a) {
  const zh = pick(a, 'message') || '';
  return zh && messageText(a) !== zh ? zh : '';
}
