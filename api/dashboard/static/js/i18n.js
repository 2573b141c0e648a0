// i18n: every visible string goes through t(), keyed by a dotted name. Dictionaries are i18n/zh-CN.json (the
// default) and i18n/en.json; both are loaded at start so switching needs no reload.

const LANGS = ['zh-CN', 'en'];
const STORE_KEY = 'offsite.lang';
const dicts = {};
let lang = 'zh-CN';
const listeners = new Set();

export async function loadI18n() {
  const load = async (l) => {
    const res = await fetch(new URL(`../i18n/${l}.json`, import.meta.url));
    dicts[l] = res.ok ? await res.json() : {};
  };
  await Promise.all(LANGS.map(load));
  const saved = localStorage.getItem(STORE_KEY);
  setLang(LANGS.includes(saved) ? saved : 'zh-CN', false);
}

export function getLang() { return lang; }
export function langs() { return LANGS.slice(); }

export function setLang(l, notify = true) {
  if (!LANGS.includes(l)) return;
  lang = l;
  localStorage.setItem(STORE_KEY, l);
  document.documentElement.lang = l;
  document.title = t('app.title');
  if (notify) for (const fn of listeners) fn(l);
}

export function onLangChange(fn) { listeners.add(fn); return () => listeners.delete(fn); }

// t returns the string for key in the current language, with {name} placeholders filled from
// params. A key missing from the dictionary shows as itself so it is noticed.
export function t(key, params) {
  let s = dicts[lang]?.[key] ?? dicts['zh-CN']?.[key] ?? key;
  if (params) s = s.replace(/\{(\w+)\}/g, (m, k) => (params[k] ?? m));
  return s;
}

// tOr translates key when the dictionary has it, and otherwise shows fallback (used for codes
// that come from the server, such as event types, which may be newer than the dictionary).
export function tOr(key, fallback) {
  const s = dicts[lang]?.[key];
  return s ?? fallback ?? key;
}

export function locale() { return lang === 'en' ? 'en-GB' : 'zh-CN'; }

export function fmtTime(v, withSeconds = true) {
  const d = toDate(v);
  if (!d) return '—';
  return d.toLocaleString(locale(), {
    year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit',
    second: withSeconds ? '2-digit' : undefined, hour12: false,
  });
}

export function fmtAgo(v) {
  const d = toDate(v);
  if (!d) return t('common.never');
  const s = Math.round((Date.now() - d.getTime()) / 1000);
  if (s < 60) return t('time.seconds_ago', { n: Math.max(0, s) });
  if (s < 3600) return t('time.minutes_ago', { n: Math.floor(s / 60) });
  if (s < 86400) return t('time.hours_ago', { n: Math.floor(s / 3600) });
  return t('time.days_ago', { n: Math.floor(s / 86400) });
}

export function toDate(v) {
  if (v === undefined || v === null || v === '') return null;
  const d = typeof v === 'number' ? new Date(v) : new Date(String(v));
  return isNaN(d.getTime()) || d.getFullYear() < 1971 ? null : d;
}

export function fmtNum(v, digits = 1) {
  if (typeof v !== 'number' || !isFinite(v)) return '—';
  return v.toLocaleString(locale(), { maximumFractionDigits: digits });
}
