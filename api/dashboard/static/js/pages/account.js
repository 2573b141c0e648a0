// account: every user changes his own password (PUT /api/v1/users/{id}/password with the old
// one). changePasswordForm is also the first-login prompt of an account whose password was
// handed out (the auto-created admin).

import { h } from '../dom.js';
import { t } from '../i18n.js';
import { api, session } from '../api.js';
import { field, toast, facts } from '../ui.js';

export function changePasswordForm({ onDone, intro } = {}) {
  const old = h('input', { type: 'password', id: 'pw-old', autocomplete: 'current-password', required: true });
  const pw = h('input', { type: 'password', id: 'pw-new', autocomplete: 'new-password', required: true });
  const again = h('input', { type: 'password', id: 'pw-again', autocomplete: 'new-password', required: true });
  const msg = h('div', { class: 'form-error', role: 'alert' });
  return h('form', { class: 'card account-form', id: 'password-form', onsubmit: async (e) => {
    e.preventDefault();
    msg.textContent = '';
    if (pw.value !== again.value) { msg.textContent = t('account.mismatch'); return; }
    try {
      await api(`users/${encodeURIComponent(session.user?.id || '')}/password`, { method: 'PUT', body: { old_password: old.value, password: pw.value } });
      localStorage.setItem(`offsite.pw_changed.${session.user?.id}`, '1');
      toast(t('account.changed'), 'ok');
      old.value = ''; pw.value = ''; again.value = '';
      onDone?.();
    } catch (err) {
      msg.textContent = err.status === 401 || err.status === 403 ? t('account.wrong_old') : `${t('action.failed')}: ${err.message}`;
    }
  } },
  h('h2', {}, t('account.change_password')), intro ? h('p', { class: 'intro' }, intro) : null,
  field(t('account.old_password'), old), field(t('account.new_password'), pw, t('account.password_rules')), field(t('account.again'), again), msg,
  h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn primary', id: 'pw-save' }, t('account.save'))));
}

// mustChangePassword: the admin the gateway created at its first start (user "admin",
// "Administrator"), never changed since (created_at = updated_at), still has the password
// the gateway printed.
export function mustChangePassword(u) {
  if (!u || u.role !== 'admin' || u.username !== 'admin' || u.display_name !== 'Administrator' || !u.created_at) return false;
  if (localStorage.getItem(`offsite.pw_changed.${u.id}`)) return false;
  return u.created_at === u.updated_at;
}

export function mount(main) {
  const u = session.user || {};
  main.append(h('div', { class: 'page-head' }, h('h1', {}, t('account.title'))),
    mustChangePassword(u) ? h('div', { class: 'alert-box warn', role: 'alert', id: 'first-login' }, t('account.first_login_intro')) : null,
    h('section', { class: 'card' }, facts([
      [t('users.username'), u.username], [t('users.display_name'), u.display_name], [t('users.role'), u.role ? t(`role.${u.role}`) : ''],
      [t('users.departments'), (u.departments || []).join('、')], [t('users.regions'), (u.regions || []).join('、')],
    ])),
    changePasswordForm());
  return null;
}
