// login: username and password to a token (POST /api/v1/auth/login).

import { h } from '../dom.js';
import { t, getLang, setLang } from '../i18n.js';
import { api, session } from '../api.js';

export function mount(root, { onLoggedIn }) {
  const user = h('input', { id: 'login-username', name: 'username', autocomplete: 'username', required: true, autofocus: true });
  const pass = h('input', { id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const remember = h('input', { id: 'login-remember', type: 'checkbox' });
  const msg = h('div', { class: 'form-error', role: 'alert', 'aria-live': 'assertive' });
  const submit = h('button', { type: 'submit', class: 'btn primary block', id: 'login-submit' }, t('login.submit'));

  const form = h('form', { class: 'login-card', novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    msg.textContent = '';
    if (!user.value.trim() || !pass.value) { msg.textContent = t('login.missing'); return; }
    submit.disabled = true;
    submit.textContent = t('login.busy');
    try {
      const res = await api('auth/login', { method: 'POST', body: { username: user.value.trim(), password: pass.value }, noAuth: true });
      if (!res?.token) throw new Error(t('login.no_token'));
      session.save(res.token, res.user || { username: user.value.trim() }, remember.checked);
      onLoggedIn();
    } catch (err) {
      msg.textContent = err.status === 401 ? t('login.bad_credentials')
        : err.status === 429 ? t('login.locked') : `${t('login.failed')}: ${err.message}`;
      submit.disabled = false;
      submit.textContent = t('login.submit');
      pass.select();
    }
  } },
  h('div', { class: 'login-brand' }, h('img', { src: '/favicon.svg', alt: '', width: 44, height: 44 }),
    h('div', {}, h('h1', {}, t('app.title')), h('p', { class: 'muted' }, t('login.subtitle')))),
  h('div', { class: 'field' }, h('label', { for: 'login-username' }, t('login.username')), user),
  h('div', { class: 'field' }, h('label', { for: 'login-password' }, t('login.password')), pass),
  h('label', { class: 'check' }, remember, ' ', t('login.remember')),
  msg, submit,
  h('div', { class: 'login-foot' },
    h('button', { type: 'button', class: 'btn ghost small', id: 'lang-switch', onclick: () => setLang(getLang() === 'en' ? 'zh-CN' : 'en') },
      getLang() === 'en' ? '中文' : 'English'),
    h('span', { class: 'muted' }, t('login.offline_note'))));

  root.append(h('div', { class: 'login-page' }, form));
  setTimeout(() => user.focus(), 0);
  return null;
}
