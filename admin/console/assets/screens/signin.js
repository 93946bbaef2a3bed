// Signing in, the "Forgot password?" form, accepting an invitation and
// setting a new password from a reset link. These screens stand alone
// (no workspace frame): nobody is signed in yet.

import { h, replace, announce } from '../dom.js';
import { api, ApiError } from '../api.js';
import { t, LANGUAGES, language, setLocale } from '../i18n.js';
import { alertBox, errorText } from '../dialog.js';
import { field, input, samePasswords } from '../widgets.js';

// standalone is the frame of a screen without navigation: the product
// name, a language switch and a card with the form.
function standalone(rootEl, title, ...content) {
  const langs = h('nav', { class: 'langs', 'aria-label': t('common.language') },
    LANGUAGES.map((l) => h('button', {
      type: 'button',
      class: 'link',
      lang: l.tag,
      'aria-pressed': l.tag === language() ? 'true' : 'false',
      onclick: async () => {
        await setLocale(l.tag);
        standalone.redraw?.();
      },
    }, l.name)));
  const main = h('main', { id: 'main', class: 'standalone', tabindex: '-1' },
    h('p', { class: 'brand' }, 'apiusers'), langs,
    h('div', { class: 'card' }, h('h1', null, title), content));
  replace(rootEl, main);
  document.title = `${title} – apiusers`;
  return main;
}

function passwordPair(required = true) {
  const p1 = input({ type: 'password', name: 'new_password', autocomplete: 'new-password', required, minlength: 12, maxlength: 256 });
  const p2 = input({ type: 'password', name: 'new_password_again', autocomplete: 'new-password', required, minlength: 12, maxlength: 256 });
  return {
    fields: [field(t('password.new'), p1, t('password.rule')), field(t('password.again'), p2)],
    check() { return samePasswords(p1, p2); },
    get value() { return p1.value; },
  };
}

// submitting disables the form's submit button while fn runs and shows
// its error in box.
async function submitting(form, box, fn) {
  const btn = form.querySelector('button[type=submit]');
  box.show('');
  btn.disabled = true;
  try {
    await fn();
  } catch (e) {
    box.show(e instanceof ApiError ? errorText(e) : e.message);
  } finally {
    btn.disabled = false;
  }
}

// renderSignIn shows the sign-in form (email, password, Forgot password?).
export function renderSignIn(rootEl, { onSignedIn, notice }) {
  const draw = () => {
    const email = input({ type: 'email', name: 'email', autocomplete: 'username', required: true, autofocus: true });
    const password = input({ type: 'password', name: 'password', autocomplete: 'current-password', required: true });
    const box = alertBox();
    const form = h('form', { class: 'stack', novalidate: true },
      field(t('signin.email'), email), field(t('signin.password'), password), box,
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, t('signin.submit')),
        h('a', { href: '#/forgot' }, t('signin.forgot'))));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      if (!form.checkValidity()) {
        form.reportValidity();
        return;
      }
      submitting(form, box, async () => {
        try {
          await api('POST', 'login', { body: { email: email.value.trim(), password: password.value }, quiet401: true });
        } catch (e) {
          if (e instanceof ApiError && e.status === 401) throw new Error(t('signin.wrong'));
          if (e instanceof ApiError && e.status === 429) throw new Error(t('error.throttled', { seconds: e.retryAfter || 60 }));
          throw e;
        }
        await onSignedIn();
      });
    });
    standalone(rootEl, t('signin.title'), notice ? h('p', { class: 'notice', role: 'status' }, notice) : null, form);
    email.focus();
  };
  standalone.redraw = draw;
  draw();
}

// renderForgot asks for the email a reset link goes to.
export function renderForgot(rootEl) {
  const draw = () => {
    const email = input({ type: 'email', name: 'email', autocomplete: 'username', required: true });
    const box = alertBox();
    const done = h('p', { class: 'notice', role: 'status' });
    const form = h('form', { class: 'stack', novalidate: true },
      h('p', null, t('forgot.intro')), field(t('signin.email'), email), box,
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, t('forgot.submit')),
        h('a', { href: '#/' }, t('forgot.back'))));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      if (!form.checkValidity()) {
        form.reportValidity();
        return;
      }
      submitting(form, box, async () => {
        await api('POST', 'password-reset', { body: { email: email.value.trim() }, quiet401: true });
        done.textContent = t('forgot.sent');
      });
    });
    standalone(rootEl, t('forgot.title'), form, done);
    email.focus();
  };
  standalone.redraw = draw;
  draw();
}

// renderAccept accepts an invitation: a new person sets a name and a
// password; a person who is signed in already just accepts.
export function renderAccept(rootEl, { token, signedIn, done }) {
  const draw = () => {
    const box = alertBox();
    if (!token) {
      box.show(t('error.gone'));
      standalone(rootEl, t('accept.title'), box);
      return;
    }
    const account = signedIn && signedIn.account;
    const name = input({ name: 'name', autocomplete: 'name', maxlength: 200 });
    const pw = passwordPair();
    const form = h('form', { class: 'stack', novalidate: true },
      account ? h('p', null, t('accept.signed_in', { email: account.email })) : [h('p', null, t('accept.intro')), field(t('profile.name'), name), pw.fields],
      box, h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, t('accept.submit'))));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      if (!account && (!form.checkValidity() || !pw.check())) {
        form.reportValidity();
        return;
      }
      submitting(form, box, async () => {
        const body = { token };
        if (!account) {
          if (name.value.trim()) body.name = name.value.trim();
          body.password = pw.value;
        }
        await api('POST', 'invitations/accept', { body, quiet401: true });
        announce(t('accept.done'));
        done();
      });
    });
    standalone(rootEl, t('accept.title'), form);
    (account ? form.querySelector('button') : name).focus();
  };
  standalone.redraw = draw;
  draw();
}

// renderReset sets a new password from a reset link.
export function renderReset(rootEl, { token, done }) {
  const draw = () => {
    const box = alertBox();
    if (!token) {
      box.show(t('error.gone'));
      standalone(rootEl, t('reset.title'), box);
      return;
    }
    const pw = passwordPair();
    const form = h('form', { class: 'stack', novalidate: true }, pw.fields, box,
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, t('reset.submit'))));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      if (!form.checkValidity() || !pw.check()) {
        form.reportValidity();
        return;
      }
      submitting(form, box, async () => {
        await api('POST', 'password-reset/confirm', { body: { token, new_password: pw.value }, quiet401: true });
        const ok = h('p', { class: 'notice', role: 'status' }, t('reset.done'));
        standalone(rootEl, t('reset.title'), ok, h('p', null, h('a', { href: '#/', onclick: (e2) => { e2.preventDefault(); done(); } }, t('reset.to_signin'))));
      });
    });
    standalone(rootEl, t('reset.title'), form);
    form.querySelector('input').focus();
  };
  standalone.redraw = draw;
  draw();
}
