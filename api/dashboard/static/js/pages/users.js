// users: administrators manage accounts — create, role, departments and regions, disable,
// reset a password (GET/POST/PUT /api/v1/users, PUT /api/v1/users/{id}/password).

import { h, clear } from '../dom.js';
import { t, fmtTime } from '../i18n.js';
import { api, list } from '../api.js';
import { table, field, select, errorBox, loading, toast } from '../ui.js';

const ROLES = ['admin', 'maintainer', 'officer', 'viewer', 'service'];
const csv = (s) => String(s || '').split(/[,，\s]+/).map((x) => x.trim()).filter(Boolean);

export function mount(main) {
  let disposed = false;
  let users = [];
  const body = h('div', { class: 'users-body' }, loading());
  const panel = h('div', { class: 'user-panel' });
  main.append(h('div', { class: 'page-head' }, h('h1', {}, t('users.title')), h('div', { class: 'spacer' }),
    h('button', { type: 'button', class: 'btn small primary', id: 'user-new', onclick: () => edit(null) }, t('users.new'))), panel, body);

  function edit(u) {
    const isNew = !u;
    const username = h('input', { name: 'username', id: 'user-username', value: u?.username || '', disabled: !isNew, autocomplete: 'off' });
    const display = h('input', { name: 'display_name', id: 'user-display', value: u?.display_name || '' });
    const role = select(ROLES.map((r) => [r, t(`role.${r}`)]), u?.role || 'officer', { id: 'user-role', name: 'role' });
    const deps = h('input', { name: 'departments', id: 'user-departments', value: (u?.departments || []).join(', '), placeholder: t('users.departments_hint') });
    const regs = h('input', { name: 'regions', id: 'user-regions', value: (u?.regions || []).join(', '), placeholder: t('users.regions_hint') });
    const disabled = h('input', { type: 'checkbox', id: 'user-disabled', checked: !!u?.disabled });
    const pw = isNew ? h('input', { type: 'password', id: 'user-password', autocomplete: 'new-password', placeholder: t('users.password_generated') }) : null;
    const msg = h('div', { class: 'form-error', role: 'alert' });
    const form = h('form', { class: 'card user-form', id: 'user-form', onsubmit: async (e) => {
      e.preventDefault();
      msg.textContent = '';
      const req = { username: username.value.trim(), display_name: display.value.trim(), role: role.value,
        departments: csv(deps.value), regions: csv(regs.value), disabled: disabled.checked };
      try {
        if (isNew) {
          if (pw.value) req.password = pw.value;
          const res = await api('users', { method: 'POST', body: req });
          clear(panel);
          const generated = res?.generated_password || res?.password;
          if (generated) panel.append(shownPassword(res.username || req.username, generated));
          toast(t('users.created', { name: req.username }), 'ok');
        } else {
          await api(`users/${encodeURIComponent(u.id)}`, { method: 'PUT', body: req });
          clear(panel);
          toast(t('users.saved', { name: u.username }), 'ok');
        }
        load();
      } catch (err) { msg.textContent = `${t('action.failed')}: ${err.message}`; }
    } },
    h('h2', {}, isNew ? t('users.new') : t('users.edit', { name: u.username })),
    h('div', { class: 'form-grid' },
      field(t('users.username'), username), field(t('users.display_name'), display), field(t('users.role'), role),
      field(t('users.departments'), deps, t('users.departments_hint')), field(t('users.regions'), regs, t('users.regions_hint')),
      pw ? field(t('users.password'), pw, t('users.password_generated')) : null),
    h('label', { class: 'check' }, disabled, ' ', t('users.disabled')),
    msg,
    h('div', { class: 'form-actions' },
      h('button', { type: 'submit', class: 'btn primary', id: 'user-save' }, t('users.save')),
      h('button', { type: 'button', class: 'btn ghost', onclick: () => clear(panel) }, t('common.dismiss'))));
    clear(panel).append(form);
    (isNew ? username : display).focus();
  }

  function shownPassword(name, pw) {
    return h('div', { class: 'alert-box ok', role: 'status', id: 'user-shown-password' },
      t('users.password_once', { name }), ' ', h('code', { class: 'secret' }, pw));
  }

  async function resetPassword(u) {
    const pw = h('input', { type: 'password', id: 'reset-password', autocomplete: 'new-password', required: true });
    const msg = h('div', { class: 'form-error', role: 'alert' });
    clear(panel).append(h('form', { class: 'card user-form', id: 'reset-form', onsubmit: async (e) => {
      e.preventDefault();
      try {
        await api(`users/${encodeURIComponent(u.id)}/password`, { method: 'PUT', body: { password: pw.value } });
        clear(panel);
        toast(t('users.password_reset_done', { name: u.username }), 'ok');
      } catch (err) { msg.textContent = `${t('action.failed')}: ${err.message}`; }
    } }, h('h2', {}, t('users.reset_password_of', { name: u.username })), field(t('users.new_password'), pw, t('account.password_rules')), msg,
    h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn primary', id: 'reset-save' }, t('users.reset_password')),
      h('button', { type: 'button', class: 'btn ghost', onclick: () => clear(panel) }, t('common.dismiss')))));
    pw.focus();
  }

  async function toggle(u) {
    try {
      await api(`users/${encodeURIComponent(u.id)}`, { method: 'PUT', body: { username: u.username, display_name: u.display_name, role: u.role,
        departments: u.departments || [], regions: u.regions || [], disabled: !u.disabled } });
      load();
    } catch (err) { toast(`${t('action.failed')}: ${err.message}`, 'error'); }
  }

  function render() {
    const cols = [
      { label: t('users.username'), class: 'strong', render: (u) => u.username },
      { label: t('users.display_name'), render: (u) => u.display_name },
      { label: t('users.role'), render: (u) => t(`role.${u.role}`) },
      { label: t('users.departments'), render: (u) => (u.departments || []).join('、') },
      { label: t('users.regions'), render: (u) => (u.regions || []).join('、') },
      { label: t('users.status'), render: (u) => (u.disabled ? t('users.is_disabled') : u.locked_until ? t('users.is_locked', { until: fmtTime(u.locked_until) }) : t('users.is_enabled')) },
      { label: t('users.actions'), class: 'inline', render: (u) => h('span', { class: 'row-actions' },
        h('button', { type: 'button', class: 'btn small', 'data-action': 'edit', onclick: (e) => { e.stopPropagation(); edit(u); } }, t('users.edit_short')),
        h('button', { type: 'button', class: 'btn small', 'data-action': 'reset', onclick: (e) => { e.stopPropagation(); resetPassword(u); } }, t('users.reset_password')),
        h('button', { type: 'button', class: 'btn small', 'data-action': 'toggle', onclick: (e) => { e.stopPropagation(); toggle(u); } },
          u.disabled ? t('users.enable') : t('users.disable'))) },
    ];
    clear(body).append(table(cols, users, { empty: t('common.empty'), rowAttrs: (u) => ({ 'data-username': u.username, class: u.disabled ? 'disabled' : '' }) }));
  }

  async function load() {
    try {
      const data = await api('users');
      if (disposed) return;
      users = list(data, 'users');
      render();
    } catch (e) { if (!disposed) clear(body).append(errorBox(e)); }
  }
  load();
  return () => { disposed = true; };
}
