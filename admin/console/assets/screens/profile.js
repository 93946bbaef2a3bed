// Profile: name, language and time zone (and email); Current Password,
// New Password, New Password Again.

import { h, replace, announce } from '../dom.js';
import { api } from '../api.js';
import { t, browserZone } from '../i18n.js';
import { alertBox, errorText } from '../dialog.js';
import { field, input, languageSelect, zoneSelect, samePasswords } from '../widgets.js';

export async function render({ main, caller: c, reload }) {
  const acc = c.account;
  const src = acc || c.user;
  const name = acc ? input({ name: 'name', autocomplete: 'name', maxlength: 200, value: acc.name || '' }) : null;
  const email = acc ? null : input({ type: 'email', name: 'email', autocomplete: 'email', value: c.user.email || '' });
  const lang = languageSelect(src.language || '', { required: true });
  const tz = zoneSelect(src.timezone || '', { required: false });
  const box = alertBox();
  const form = h('form', { class: 'stack', novalidate: true, 'aria-labelledby': 'prof-h' },
    h('h2', { id: 'prof-h' }, t('profile.settings')),
    acc ? h('p', null, t('profile.signed_in_as', { email: acc.email })) : h('p', null, t('profile.user', { name: c.user.username })),
    name ? field(t('profile.name'), name) : null,
    email ? field(t('users.email'), email) : null,
    field(t('profile.language'), lang),
    field(t('profile.timezone'), tz, t('profile.timezone_hint', { zone: browserZone() })),
    box,
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, t('profile.save'))));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!form.checkValidity()) { form.reportValidity(); return; }
    box.show('');
    const body = {};
    if (name && name.value.trim() !== (acc.name || '')) body.name = name.value.trim();
    if (email && email.value.trim() !== (c.user.email || '')) body.email = email.value.trim();
    if (lang.value !== (src.language || '')) body.language = lang.value;
    if (tz.value !== (src.timezone || '')) body.timezone = tz.value;
    try {
      if (Object.keys(body).length) await api('PATCH', 'me', { body });
      await reload();
      announce(t('profile.saved'));
    } catch (e) {
      box.show(errorText(e));
    }
  });

  const parts = [h('div', { class: 'titlebar' }, h('h1', null, t('profile.title'))), form];
  if (acc) parts.push(passwordForm());
  replace(main, ...parts);
}

function passwordForm() {
  const cur = input({ type: 'password', name: 'current_password', autocomplete: 'current-password', required: true });
  const p1 = input({ type: 'password', name: 'new_password', autocomplete: 'new-password', required: true, minlength: 12, maxlength: 256 });
  const p2 = input({ type: 'password', name: 'new_password_again', autocomplete: 'new-password', required: true, minlength: 12, maxlength: 256 });
  const box = alertBox();
  // A hidden username field lets password managers file the new password.
  const form = h('form', { class: 'stack', novalidate: true, 'aria-labelledby': 'pw-h' },
    h('h2', { id: 'pw-h' }, t('profile.password')),
    field(t('password.current'), cur), field(t('password.new'), p1, t('password.rule')), field(t('password.again'), p2), box,
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, t('profile.change_password'))));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!form.checkValidity()) { form.reportValidity(); return; }
    if (!samePasswords(p1, p2)) return;
    box.show('');
    try {
      await api('POST', 'me/password', { body: { current_password: cur.value, new_password: p1.value } });
      cur.value = '';
      p1.value = '';
      p2.value = '';
      announce(t('profile.password_changed'));
    } catch (e) {
      box.show(e.status === 403 ? t('password.wrong_current') : errorText(e));
    }
  });
  return form;
}
