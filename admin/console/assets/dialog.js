// Modal dialogs on the native <dialog> element: the rest of the page is
// inert while one is open, Tab and Shift+Tab stay inside it, Esc closes it,
// and the focus returns to the control that opened it.

import { h, uid, focusables, replace } from './dom.js';
import { t } from './i18n.js';
import { ApiError } from './api.js';

// errorText turns a failed API call into one line for the person.
export function errorText(err) {
  if (err instanceof ApiError) {
    switch (err.status) {
      case 0: return t('error.network');
      case 401: return t('error.unauthorized');
      case 403: return t('error.forbidden', { detail: err.message });
      case 404: return t('error.not_found');
      case 409: return t('error.conflict', { detail: err.message });
      case 410: return t('error.gone');
      case 412: return t('error.stale');
      case 429: return t('error.throttled', { seconds: err.retryAfter || 60 });
      case 503: return t('error.unavailable');
      default: return t('error.generic', { detail: err.message });
    }
  }
  return t('error.generic', { detail: String(err && err.message ? err.message : err) });
}

// alertBox is a role=alert area for errors; show(text) fills it.
export function alertBox() {
  const el = h('div', { class: 'alert', role: 'alert', hidden: true });
  el.show = (text) => {
    el.textContent = text || '';
    el.hidden = !text;
  };
  return el;
}

function trapTab(dlg, ev) {
  if (ev.key !== 'Tab') return;
  const items = focusables(dlg);
  if (items.length === 0) {
    ev.preventDefault();
    return;
  }
  const first = items[0];
  const last = items[items.length - 1];
  if (ev.shiftKey && (document.activeElement === first || !dlg.contains(document.activeElement))) {
    ev.preventDefault();
    last.focus();
  } else if (!ev.shiftKey && (document.activeElement === last || !dlg.contains(document.activeElement))) {
    ev.preventDefault();
    first.focus();
  }
}

// openDialog shows a modal form. body is a node (or a list of nodes);
// onSubmit(form) runs on submit and may throw (its error is shown in the
// dialog, which stays open) or return false to keep the dialog open. With
// no submit label the dialog only informs and has a Close button. It
// resolves to the value onSubmit returned, or undefined when dismissed.
export function openDialog({ title, body, submit, onSubmit, danger = false, cancel, wide = false }) {
  const opener = document.activeElement;
  const titleId = uid('dlg-title');
  const err = alertBox();
  const form = h('form', { class: 'dialog-form', novalidate: true });
  const actions = h('div', { class: 'dialog-actions' });
  const submitBtn = submit ? h('button', { type: 'submit', class: danger ? 'danger' : 'primary' }, submit) : null;
  const closeBtn = h('button', { type: 'button', class: submit ? '' : 'primary' }, cancel || (submit ? t('common.cancel') : t('common.close')));
  if (submitBtn) actions.append(submitBtn);
  actions.append(closeBtn);
  replace(form, h('h2', { id: titleId }, title), h('div', { class: 'dialog-body' }, body), err, actions);
  const dlg = h('dialog', { class: wide ? 'wide' : '', 'aria-labelledby': titleId }, form);
  document.body.append(dlg);

  return new Promise((resolve) => {
    let result;
    const close = () => {
      if (!dlg.open) return;
      dlg.close();
    };
    dlg.addEventListener('close', () => {
      dlg.remove();
      if (opener && opener.isConnected && typeof opener.focus === 'function') opener.focus();
      resolve(result);
    });
    dlg.addEventListener('cancel', (ev) => {
      ev.preventDefault(); // close ourselves, so the focus goes back too
      close();
    });
    dlg.addEventListener('keydown', (ev) => trapTab(dlg, ev));
    closeBtn.addEventListener('click', close);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      if (!onSubmit) {
        close();
        return;
      }
      if (!form.checkValidity()) {
        form.reportValidity();
        return;
      }
      err.show('');
      if (submitBtn) submitBtn.disabled = true;
      try {
        const r = await onSubmit(form);
        if (r === false) return;
        result = r === undefined ? true : r;
        close();
      } catch (e) {
        err.show(errorText(e));
      } finally {
        if (submitBtn) submitBtn.disabled = false;
      }
    });
    dlg.showModal();
    const first = form.querySelector('[autofocus]') || focusables(form.querySelector('.dialog-body'))[0] || focusables(form)[0];
    if (first) first.focus();
  });
}

// confirmDialog asks a yes/no question; it resolves to true for yes. extra
// nodes (such as a checkbox) may go under the text; onConfirm runs the
// action inside the dialog so that an error is shown there.
export function confirmDialog({ title, text, confirm, danger = false, extra, onConfirm }) {
  return openDialog({
    title,
    body: [h('p', null, text), extra || null],
    submit: confirm,
    danger,
    onSubmit: async (form) => {
      if (onConfirm) await onConfirm(form);
      return true;
    },
  }).then((v) => v === true);
}
