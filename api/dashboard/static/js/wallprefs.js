// wallprefs: the video wall's layout kept at the gateway per user
// (GET/PUT /api/v1/auth/me/preferences/wall), so it follows the user to any machine and is
// restored on login; localStorage stays the first guess while the gateway answers.

import { api, optional } from './api.js';

const LAYOUTS = [1, 4, 9, 16];

// validLayout returns a clean {layout, tiles} or null.
export function validLayout(v) {
  if (!v || !LAYOUTS.includes(v.layout) || !Array.isArray(v.tiles)) return null;
  return { layout: v.layout, tiles: v.tiles.slice(0, 16).map((x) => (typeof x === 'string' ? x : '')) };
}

// fetchLayout is the layout kept at the gateway, or null (none kept, or an older gateway).
export async function fetchLayout() {
  try { return validLayout(await optional('auth/me/preferences/wall')); } catch { return null; }
}

let timer = 0;
let pending = null;

// storeLayout keeps the layout at the gateway, a moment after the last change.
export function storeLayout(state) {
  pending = validLayout(state);
  clearTimeout(timer);
  timer = setTimeout(flushLayout, 600);
}

// flushLayout sends a pending change now (leaving the wall).
export function flushLayout() {
  clearTimeout(timer);
  if (!pending) return;
  const body = pending;
  pending = null;
  // Not saved (gateway away, session ended): keep it for the next change or leaving the wall,
  // unless a newer layout is already waiting; this browser keeps it in localStorage meanwhile.
  api('auth/me/preferences/wall', { method: 'PUT', body, keepalive: true }).catch(() => { if (!pending) pending = body; });
}
