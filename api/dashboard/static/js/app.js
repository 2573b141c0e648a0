// app: the shell (header, navigation, language and theme switches) and the hash router.
// Routes: #/login, #/wall, #/alerts, #/alerts/ID, #/devices, #/devices/ID, #/sites, #/uplinks,
// #/gateways, #/users, #/audit (admins), #/account.

import { h, clear, svg } from './dom.js';
import { t, loadI18n, getLang, setLang, onLangChange } from './i18n.js';
import { api, session, onUnauthorized } from './api.js';
import { startEvents, stopEvents, onBadge, onStatus, clearBadge } from './events.js';
import { unlockAudio, isMuted, setMuted } from './audio.js';
import * as loginPage from './pages/login.js';
import * as wallPage from './pages/wall.js';
import * as alertsPage from './pages/alerts.js';
import * as alertDetailPage from './pages/alert_detail.js';
import * as devicesPage from './pages/devices.js';
import * as deviceDetailPage from './pages/device_detail.js';
import * as uplinksPage from './pages/uplinks.js';
import * as gatewaysPage from './pages/gateways.js';
import * as sitesPage from './pages/sites.js';
import { mayReadGateways } from './centre.js';
import * as usersPage from './pages/users.js';
import * as auditPage from './pages/audit.js';
import * as accountPage from './pages/account.js';

const THEME_KEY = 'offsite.theme';
const root = document.getElementById('app');
let cleanup = null;
let current = '';

const NAV = [
  { route: 'wall', key: 'nav.wall', icon: 'M3 4h8v7H3zM13 4h8v7h-8zM3 13h8v7H3zM13 13h8v7h-8z' },
  { route: 'alerts', key: 'nav.alerts', icon: 'M12 3a6 6 0 0 0-6 6v4l-2 3h16l-2-3V9a6 6 0 0 0-6-6zM10 19a2 2 0 0 0 4 0' },
  { route: 'devices', key: 'nav.devices', icon: 'M4 5h16v10H4zM8 19h8M12 15v4' },
  { route: 'sites', key: 'nav.sites', icon: 'M4 20V9l8-5 8 5v11M9 20v-6h6v6M3 20h18' },
  { route: 'uplinks', key: 'nav.uplinks', icon: 'M12 20V6M6 11l6-6 6 6M4 20h16' },
  // Site gateways below this centre: only for the roles that may list them (api/auth).
  { route: 'gateways', key: 'nav.gateways', icon: 'M12 3v6M5 15v-3h14v3M3 15h4v5H3zM10 15h4v5h-4zM17 15h4v5h-4z', allowed: mayReadGateways },
  { route: 'users', key: 'nav.users', icon: 'M9 11a4 4 0 1 0 0-8 4 4 0 0 0 0 8zM2 21a7 7 0 0 1 14 0M17 11a3 3 0 1 0 0-6M22 21a6 6 0 0 0-4-5.6', admin: true },
  { route: 'audit', key: 'nav.audit', icon: 'M6 3h9l4 4v14H6zM9 10h7M9 14h7M9 18h4', admin: true },
];

// landing is where a user starts: an officer on a phone goes to his alerts, not the wall.
function landing() {
  const phone = window.matchMedia('(max-width: 760px)').matches;
  return session.user?.role === 'officer' && phone ? 'alerts' : 'wall';
}

function icon(d) {
  return svg('svg', { viewBox: '0 0 24 24', width: 20, height: 20, 'aria-hidden': 'true', class: 'icon' },
    svg('path', { d, fill: 'none', stroke: 'currentColor', 'stroke-width': 1.8, 'stroke-linejoin': 'round', 'stroke-linecap': 'round' }));
}

function parseRoute() {
  const raw = (location.hash || '').replace(/^#\/?/, '') || (location.pathname.replace(/^\/+/, '') || '');
  const [path] = raw.split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  return { name: parts[0] || landing(), id: parts[1] || '' };
}

function applyTheme(theme) {
  document.documentElement.dataset.theme = theme === 'light' ? 'light' : 'dark';
}

function shell(active) {
  const user = session.user || {};
  const badge = h('span', { class: 'badge', hidden: true, 'aria-live': 'polite', id: 'alert-badge' });
  const live = h('span', { class: 'live-dot', title: '' });
  // Officers and viewers act on alerts; uplink delivery is the administrators' business.
  const hidden = ['officer', 'viewer'].includes(user.role) ? ['uplinks'] : [];
  const navLinks = NAV.filter((n) => !hidden.includes(n.route) && (!n.allowed || n.allowed(user.role)) && (!n.admin || user.role === 'admin')).map((n) => h('a', {
    href: `#/${n.route}`, class: `nav-link${active === n.route ? ' active' : ''}`,
    'aria-current': active === n.route ? 'page' : null, 'data-route': n.route,
  }, icon(n.icon), h('span', { class: 'nav-label' }, t(n.key)), n.route === 'alerts' ? badge : null));

  const langBtn = h('button', { type: 'button', class: 'btn ghost small', id: 'lang-switch', 'aria-label': t('header.language'),
    onclick: () => setLang(getLang() === 'en' ? 'zh-CN' : 'en') }, getLang() === 'en' ? '中文' : 'EN');
  const themeBtn = h('button', { type: 'button', class: 'btn ghost small', id: 'theme-switch',
    onclick: () => { const nt = document.documentElement.dataset.theme === 'light' ? 'dark' : 'light'; localStorage.setItem(THEME_KEY, nt); applyTheme(nt); render(); } },
  document.documentElement.dataset.theme === 'light' ? t('header.theme_dark') : t('header.theme_light'));
  const muteBtn = h('button', { type: 'button', class: 'btn ghost small', 'aria-pressed': String(isMuted()),
    onclick: () => { setMuted(!isMuted()); render(); } }, isMuted() ? t('header.sound_off') : t('header.sound_on'));
  const logout = h('button', { type: 'button', class: 'btn ghost small', id: 'logout', onclick: doLogout }, t('header.logout'));
  const who = h('a', { class: 'who', href: '#/account', id: 'account-link', title: t('account.title') },
    user.display_name || user.username || '', user.role ? h('small', {}, ` · ${t(`role.${user.role}`)}`) : null);

  const header = h('header', { class: 'topbar' },
    h('a', { class: 'brand', href: `#/${landing()}` }, h('img', { src: '/favicon.svg', alt: '', width: 26, height: 26 }), h('span', {}, t('app.title'))),
    h('nav', { class: 'mainnav', 'aria-label': t('nav.main') }, navLinks),
    h('div', { class: 'tools' }, live, who, muteBtn, themeBtn, langBtn, logout));
  const main = h('main', { id: 'main', class: `page page-${active}`, tabindex: '-1' });
  clear(root).append(h('a', { class: 'skip', href: '#main', onclick: (e) => { e.preventDefault(); main.focus(); } }, t('nav.skip')), header, main);

  onBadge((n) => { badge.hidden = n === 0; badge.textContent = n > 99 ? '99+' : String(n); badge.setAttribute('aria-label', t('alerts.badge', { n })); });
  onStatus((s) => { live.className = `live-dot ${s}`; live.title = t(`stream.${s}`); live.setAttribute('aria-label', t(`stream.${s}`)); });
  return main;
}

async function doLogout() {
  try { await api('auth/logout', { method: 'POST' }); } catch { /* the token is dropped anyway */ }
  session.clear();
  stopEvents();
  location.hash = '#/login';
}

export async function render() {
  const r = parseRoute();
  if (cleanup) { try { cleanup(); } catch (e) { console.error(e); } cleanup = null; }
  window.scrollTo(0, 0);
  if (r.name === 'login' || !session.token) {
    stopEvents();
    current = 'login';
    clear(root);
    cleanup = loginPage.mount(root, { onLoggedIn });
    return;
  }
  const pages = {
    wall: wallPage, alerts: r.id ? alertDetailPage : alertsPage, devices: r.id ? deviceDetailPage : devicesPage, sites: sitesPage, uplinks: uplinksPage,
    account: accountPage,
  };
  if (mayReadGateways(session.user?.role)) pages.gateways = gatewaysPage;
  if (session.user?.role === 'admin') Object.assign(pages, { users: usersPage, audit: auditPage });
  const page = pages[r.name] || pages[landing()];
  const active = pages[r.name] ? r.name : landing();
  current = active;
  if (active === 'alerts') clearBadge();
  const main = shell(active);
  cleanup = page.mount(main, { id: r.id }) || null;
  askPasswordChange(main, active);
}

// askPasswordChange asks the auto-created admin, still on the password the gateway printed at
// its first start, to choose his own: a banner on every page until he has (it does not block
// the page, so an emergency is never held up by it).
function askPasswordChange(main, active) {
  if (active === 'account' || !accountPage.mustChangePassword(session.user)) return;
  main.prepend(h('div', { class: 'alert-box warn first-login', role: 'alert', id: 'first-login' },
    h('strong', {}, t('account.first_login_title')), ' ', t('account.first_login_intro'), ' ',
    h('a', { class: 'btn small primary', href: '#/account', id: 'first-login-change' }, t('account.change_password'))));
}

function onLoggedIn() {
  unlockAudio();
  startEvents();
  const r = parseRoute();
  if (r.name === 'login') location.hash = `#/${landing()}`; else render();
}

async function boot() {
  applyTheme(localStorage.getItem(THEME_KEY) || 'dark');
  await loadI18n();
  onLangChange(() => render());
  onUnauthorized(() => {
    session.clear();
    stopEvents();
    if (current !== 'login') location.hash = '#/login';
  });
  window.addEventListener('offsite:unauthorized', () => { session.clear(); stopEvents(); location.hash = '#/login'; });
  document.addEventListener('pointerdown', unlockAudio, { passive: true });
  document.addEventListener('keydown', unlockAudio);
  window.addEventListener('hashchange', render);
  // Back from the back-forward cache the wall's players were stopped on pagehide: start over.
  window.addEventListener('pageshow', (e) => { if (e.persisted) render(); });
  if (session.token) {
    try {
      const me = await api('auth/me');
      session.setUser(me?.user || me);
      startEvents();
    } catch (e) {
      if (e.status === 401) session.clear();
    }
  }
  render();
}

boot();
