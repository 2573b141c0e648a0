// events: one EventSource per logged-in tab on /api/v1/events/stream. Pages subscribe to it;
// it also keeps the nav badge (new major/critical alerts not yet seen) and plays the beep.

import { session, api } from './api.js';
import { beep } from './audio.js';
import { severityOf, eventType } from './model.js';

const TYPES = ['sensor.threshold', 'sensor.silent', 'device.offline', 'device.online', 'video.signal_lost',
  'video.tamper', 'video.staff_absent', 'video.crowding', 'video.motion', 'alert.opened', 'alert.claimed',
  'alert.handled', 'alert.fed_back', 'alert.closed', 'alert.escalated', 'event', 'alert'];

let es = null;
let lastId = '';
let retry = 1000;
let retryTimer = 0;
let status = 'idle';
const subscribers = new Set();
const statusListeners = new Set();
const seen = new Set();
let unseen = 0;
const badgeListeners = new Set();

export function subscribe(fn) { subscribers.add(fn); return () => subscribers.delete(fn); }
export function onStatus(fn) { statusListeners.add(fn); fn(status); return () => statusListeners.delete(fn); }
export function onBadge(fn) { badgeListeners.add(fn); fn(unseen); return () => badgeListeners.delete(fn); }
export function clearBadge() { unseen = 0; for (const fn of badgeListeners) fn(0); }
export function streamStatus() { return status; }

function setStatus(s) { status = s; for (const fn of statusListeners) fn(s); }

export function startEvents() {
  stopEvents();
  if (!session.token) return;
  const u = new URL('/api/v1/events/stream', location.origin);
  u.searchParams.set('token', session.token);
  // A fresh EventSource cannot send Last-Event-ID as a header; the query parameter carries it.
  if (lastId) u.searchParams.set('last_event_id', lastId);
  setStatus('connecting');
  es = new EventSource(u.pathname + u.search);
  const handler = (m) => onMessage(m);
  es.onmessage = handler;
  // Named SSE events (event: alert.opened) do not reach onmessage.
  for (const ty of TYPES) es.addEventListener(ty, handler);
  es.onopen = () => { retry = 1000; setStatus('live'); };
  es.onerror = () => {
    if (!es) return;
    if (es.readyState === EventSource.CLOSED) {
      // The server refused (401, 404, 5xx): EventSource will not retry by itself. An expired
      // session shows here first; asking who we are sends a 401 to the login page.
      setStatus('offline');
      api('auth/me').catch(() => {});
      const wait = retry;
      retry = Math.min(retry * 2, 30000);
      es.close();
      es = null;
      retryTimer = setTimeout(startEvents, wait);
    } else setStatus('connecting');
  };
}

export function stopEvents() {
  clearTimeout(retryTimer);
  if (es) { es.close(); es = null; }
  setStatus('idle');
}

let lastOpenedAt = 0;

function announce(ev) {
  unseen++;
  for (const fn of badgeListeners) fn(unseen);
  beep(severityOf(ev));
}

function onMessage(m) {
  if (m.lastEventId) lastId = m.lastEventId;
  let ev;
  try { ev = JSON.parse(m.data); } catch { return; }
  if (!ev || typeof ev !== 'object') return;
  if (!ev.type && m.type && m.type !== 'message') ev.type = m.type;
  const key = ev.id || m.lastEventId;
  if (key) {
    if (seen.has(key)) return;
    seen.add(key);
    if (seen.size > 2000) seen.delete(seen.values().next().value);
  }
  const ty = eventType(ev);
  if (ty === 'alert.opened') lastOpenedAt = Date.now();
  if (isNewSeriousAlert(ev)) {
    if (ty === 'alert.opened') announce(ev);
    else {
      // The triggering event comes just before its alert.opened on gateways that emit both;
      // announce it only when no alert.opened follows, so one alert beeps once.
      const seenAt = Date.now();
      setTimeout(() => { if (lastOpenedAt < seenAt) announce(ev); }, 1500);
    }
  }
  for (const fn of subscribers) { try { fn(ev); } catch (e) { console.error(e); } }
}

// A new alert is announced by alert.opened; gateways that do not emit the lifecycle events
// announce it with the triggering event itself in state "active".
function isNewSeriousAlert(ev) {
  const sev = severityOf(ev);
  if (sev !== 'major' && sev !== 'critical') return false;
  const ty = eventType(ev);
  if (ty === 'alert.opened') return true;
  if (ty.startsWith('alert.') || ty === 'device.online') return false;
  return (ev.state || 'active') === 'active';
}
