// api: the one door to the gateway's HTTP API (docs/contracts.md §3). It keeps the session token,
// turns error bodies into ApiError, and sends the user back to the login page on any 401.

const TOKEN_KEY = 'offsite.token';
const USER_KEY = 'offsite.user';

export class ApiError extends Error {
  constructor(status, code, message, body) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code || '';
    this.body = body;
    this.rows = body?.error?.rows || [];
  }
}

const unauthorizedHandlers = new Set();
export function onUnauthorized(fn) { unauthorizedHandlers.add(fn); }

export const session = {
  get token() { return sessionStorage.getItem(TOKEN_KEY) || localStorage.getItem(TOKEN_KEY) || ''; },
  get user() {
    try { return JSON.parse(sessionStorage.getItem(USER_KEY) || localStorage.getItem(USER_KEY) || 'null'); }
    catch { return null; }
  },
  save(token, user, remember) {
    this.clear();
    const st = remember ? localStorage : sessionStorage;
    st.setItem(TOKEN_KEY, token);
    st.setItem(USER_KEY, JSON.stringify(user || {}));
  },
  setUser(user) {
    const st = localStorage.getItem(TOKEN_KEY) ? localStorage : sessionStorage;
    st.setItem(USER_KEY, JSON.stringify(user || {}));
  },
  clear() {
    for (const st of [sessionStorage, localStorage]) { st.removeItem(TOKEN_KEY); st.removeItem(USER_KEY); }
  },
};

// withToken appends ?token= for the places a browser cannot set a header (img, EventSource,
// download links).
export function withToken(url) {
  if (!url) return url;
  const u = new URL(url, location.origin);
  if (u.origin !== location.origin) return url;
  if (session.token) u.searchParams.set('token', session.token);
  return u.pathname + u.search;
}

// api calls path (relative to /api/v1 unless it starts with /) and returns parsed JSON, text
// for non-JSON answers, or null for 204.
export async function api(path, opts = {}) {
  const url = path.startsWith('/') ? path : `/api/v1/${path}`;
  const headers = Object.assign({ Accept: 'application/json' }, opts.headers || {});
  if (session.token && !opts.noAuth) headers.Authorization = `Bearer ${session.token}`;
  let body = opts.body;
  if (body !== undefined && typeof body !== 'string' && !(body instanceof Blob) && !(body instanceof FormData)) {
    body = JSON.stringify(body);
    headers['Content-Type'] = 'application/json';
  }
  let res;
  try {
    res = await fetch(url, { method: opts.method || 'GET', headers, body, signal: opts.signal, keepalive: opts.keepalive });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', e.message);
  }
  const ct = res.headers.get('Content-Type') || '';
  let data = null;
  if (res.status !== 204) {
    const text = await res.text();
    if (ct.includes('json') && text) { try { data = JSON.parse(text); } catch { data = text; } } else data = text;
  }
  if (!res.ok) {
    const err = data && typeof data === 'object' ? data.error || {} : {};
    const e = new ApiError(res.status, err.code, err.message || (typeof data === 'string' ? data.slice(0, 200) : ''), data);
    if (res.status === 401 && !opts.noAuth) for (const fn of unauthorizedHandlers) fn(e);
    throw e;
  }
  if (opts.withResponse) return { data, res };
  return data;
}

// list accepts the shapes a list endpoint may answer with: [..], {items:[..]}, {data:[..]},
// or {<name>: [..]}.
export function list(data, name) {
  if (Array.isArray(data)) return data;
  if (!data || typeof data !== 'object') return [];
  for (const k of [name, 'items', 'data', 'results', 'list']) {
    if (k && Array.isArray(data[k])) return data[k];
  }
  const arr = Object.values(data).find(Array.isArray);
  return arr || [];
}

// optional answers null instead of throwing when an endpoint does not exist (404/405/501), so
// pages can show "not available" for parts of the backend that are not there yet.
export async function optional(path, opts) {
  try { return await api(path, opts); }
  catch (e) {
    if ([404, 405, 501].includes(e.status)) return null;
    throw e;
  }
}

// telemetry reads a device's series: GET /devices/{id}/telemetry (docs/contracts.md §3), or the
// ingest API's /devices/{id}/readings/series where the gateway mounts only that.
export async function telemetry(id, params, opts) {
  const q = qs(params);
  try {
    return await api(`devices/${encodeURIComponent(id)}/telemetry${q}`, opts);
  } catch (e) {
    if (e.status !== 404 && e.status !== 405) throw e;
    return api(`devices/${encodeURIComponent(id)}/readings/series${q}`, opts);
  }
}

// eachLimited runs fn over items, at most n at a time.
export async function eachLimited(items, n, fn) {
  let i = 0;
  const worker = async () => { while (i < items.length) { const k = i++; await fn(items[k], k); } };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
}

export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') u.set(k, v);
  const s = u.toString();
  return s ? `?${s}` : '';
}
