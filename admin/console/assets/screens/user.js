// An API user's page: its fields with Save API User; Move to Inactive /
// Activate; Move to Trash / Restore; Delete (only in Trash, with "erase
// messages"); its keys (Generate, Regenerate with a grace choice, Revoke,
// Show/Hide API key and Copy API key to the clipboard); a password; its
// sessions with End session.

import { h, replace, announce } from '../dom.js';
import { api, path, listAll, ApiError } from '../api.js';
import { t, timeEl } from '../i18n.js';
import { openDialog, confirmDialog, alertBox, errorText } from '../dialog.js';
import { field, input, select, roleLabel, statusBadge, table, checkbox, samePasswords } from '../widgets.js';
import { href, go } from '../app.js';
import { userFields, patchOf } from './userform.js';
import { tabBar } from './tabs.js';

// Keys just issued, by user id: shown once on the user's page, then
// forgotten when the page is left.
const fresh = new Map();

// rememberKey keeps a key just issued for user id, to show it once.
export function rememberKey(id, issued) {
  if (!fresh.has(id)) fresh.set(id, []);
  fresh.get(id).push(issued);
}

// copyText puts text on the clipboard and says "Copied" to screen readers.
export async function copyText(text, fallbackInput) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    if (!fallbackInput) throw new Error(t('keys.copy_failed'));
    const type = fallbackInput.type;
    fallbackInput.type = 'text';
    fallbackInput.select();
    const ok = document.execCommand('copy');
    fallbackInput.type = type;
    if (!ok) throw new Error(t('keys.copy_failed'));
  }
  announce(t('keys.copied'));
}

// keyBox shows a key (masked until Show API key) with Show/Hide and Copy.
export function keyBox(key, label) {
  const out = input({ type: 'password', readonly: true, value: key, class: 'key', autocomplete: 'off', spellcheck: 'false' });
  const show = h('button', { type: 'button', 'aria-pressed': 'false' }, t('keys.show'));
  show.addEventListener('click', () => {
    const visible = out.type === 'password';
    out.type = visible ? 'text' : 'password';
    show.textContent = visible ? t('keys.hide') : t('keys.show');
    show.setAttribute('aria-pressed', String(visible));
  });
  const copy = h('button', { type: 'button', class: 'copy' }, t('keys.copy'));
  copy.addEventListener('click', () => copyText(key, out).catch((e) => announce(e.message)));
  return h('div', { class: 'keybox' }, field(label, out), h('div', { class: 'inline' }, show, copy));
}

// render draws the page of user ctx.parts[1] in ctx.ws.
export async function render(ctx) {
  const { main, caller: c, ws } = ctx;
  const id = ctx.parts[1];
  const [u, teams] = await Promise.all([
    api('GET', path('workspaces', ws, 'users', id)),
    c.mayReadTeams ? listAll(path('workspaces', ws, 'teams')) : Promise.resolve([]),
  ]);
  const tabName = u.kind === 'member' ? 'members' : 'users';
  const box = alertBox();

  // Lifecycle.
  const life = [];
  const setStatus = (s, label) => h('button', {
    type: 'button',
    onclick: async () => {
      box.show('');
      try {
        await api('POST', path('workspaces', ws, 'users', id, 'status'), { body: { status: s } });
        announce(t('users.status_changed', { status: t(`status.${s}`) }));
        await render(ctx);
      } catch (e) {
        box.show(errorText(e));
      }
    },
  }, label);
  if (u.status === 'active' && c.may(u, 'status.inactive')) life.push(setStatus('inactive', t('users.move_inactive')));
  if (u.status === 'inactive' && c.may(u, 'status.active')) life.push(setStatus('active', t('users.activate')));
  if (u.status !== 'trash' && c.may(u, 'status.trash')) life.push(setStatus('trash', t('users.move_trash')));
  if (u.status === 'trash' && c.may(u, 'status.inactive')) life.push(setStatus('inactive', t('users.restore')));
  if (u.status === 'trash' && c.may(u, 'delete')) {
    life.push(h('button', { type: 'button', class: 'danger', onclick: () => deleteUser(ctx, u) }, t('users.delete')));
  }

  // Fields.
  let details;
  if (c.may(u, 'update')) {
    const f = userFields(c, { u, kind: u.kind, teams });
    const form = h('form', { class: 'stack', novalidate: true, 'aria-labelledby': 'profile-h' },
      h('h2', { id: 'profile-h' }, t('users.profile')), f.nodes,
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, t('users.save'))));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      if (!form.checkValidity()) { form.reportValidity(); return; }
      box.show('');
      const v = f.read(form);
      try {
        const patch = patchOf(u, v);
        let cur = u;
        if (Object.keys(patch).length) cur = await api('PATCH', path('workspaces', ws, 'users', id), { body: patch, version: u.version });
        for (const tid of v.teams.filter((x) => !u.teams.includes(x))) {
          await api('PUT', path('workspaces', ws, 'teams', tid, 'members', id));
        }
        for (const tid of u.teams.filter((x) => !v.teams.includes(x))) {
          await api('DELETE', path('workspaces', ws, 'teams', tid, 'members', id));
        }
        announce(t('users.saved', { name: cur.username }));
        await render(ctx);
      } catch (e) {
        box.show(errorText(e));
      }
    });
    details = form;
  } else {
    details = readOnly(u, teams);
  }

  const parts = [
    tabBar(c, ws, tabName),
    h('p', { class: 'crumbs' }, h('a', { href: href(ws, tabName) }, tabName === 'users' ? t('users.title') : t('members.title'))),
    h('div', { class: 'titlebar' }, h('h1', null, u.username), statusBadge(u.status)),
    life.length ? h('div', { class: 'actions lifecycle', role: 'group', 'aria-label': t('users.lifecycle') }, life) : null,
    box,
  ];
  // Keys first: using them is what an API user's page is visited for most.
  const keys = c.may(u, 'keys') && u.kind === 'api' ? await keysSection(ctx, u) : null;
  replace(main, ...parts, keys, details);
  if (u.kind === 'api' && c.may(u, 'password')) main.append(passwordSection(ctx, u));
  if (c.may(u, 'sessions')) {
    const s = await sessionsSection(ctx, u);
    if (s) main.append(s);
  }
}

function readOnly(u, teams) {
  const name = new Map(teams.map((tm) => [tm.id, tm.name]));
  const row = (k, v) => [h('dt', null, k), h('dd', null, v || '—')];
  return h('section', { 'aria-labelledby': 'profile-h' }, h('h2', { id: 'profile-h' }, t('users.profile')),
    h('dl', { class: 'details' },
      row(t('users.role'), roleLabel(u.role)),
      row(t('users.email'), u.email),
      row(t('users.organization'), u.organization),
      row(t('users.language'), u.language),
      row(t('users.timezone'), u.timezone),
      row(t('users.teams'), (u.teams || []).map((x) => name.get(x) || x).join(', ')),
      row(t('perm.legend'), (u.permissions || []).join(', ')),
      row(t('grants.title'), (u.grants || []).map((g) => `${g.resource}: ${g.rights.join(', ')}`).join('; ')),
      row(t('users.created'), timeEl(u.created_at)),
      row(t('users.updated'), timeEl(u.updated_at))));
}

async function deleteUser(ctx, u) {
  const { ws } = ctx;
  const erase = checkbox(t('users.erase_messages'), { name: 'erase' });
  const ok = await confirmDialog({
    title: t('users.delete_title', { name: u.username }),
    text: t('users.delete_text'),
    confirm: t('users.delete'),
    danger: true,
    extra: erase,
    onConfirm: (form) => api('DELETE', path('workspaces', ws, 'users', u.id), {
      query: { erase: form.elements.namedItem('erase').checked ? 'true' : '' },
    }),
  });
  if (ok) {
    announce(t('users.deleted', { name: u.username }));
    go(href(ws, u.kind === 'member' ? 'members' : 'users') + '?status=trash');
  }
}

// Grace choices of Regenerate: how long the old key keeps working.
const GRACES = [['', 'keys.grace_now'], ['1h', 'keys.grace_1h'], ['24h', 'keys.grace_24h'], ['168h', 'keys.grace_7d']];

async function keysSection(ctx, u) {
  const { caller: c, ws } = ctx;
  const sec = h('section', { class: 'keys', 'aria-labelledby': 'keys-h' });
  const box = alertBox();
  const draw = async () => {
    const list = await api('GET', path('workspaces', ws, 'users', u.id, 'keys'), { query: { limit: 500 } });
    const mayCreate = c.may(u, 'keys.create');
    const mayRegenerate = c.may(u, 'keys.regenerate');
    const mayRevoke = c.may(u, 'keys.revoke');
    const mayReveal = c.may(u, 'keys.reveal');
    const newKeys = (fresh.get(u.id) || []).map((k) => h('div', { class: 'newkey', role: 'region', 'aria-label': t('keys.new_title') },
      h('h3', null, t('keys.new_title')),
      h('p', { class: 'warning' }, t('keys.shown_once')),
      keyBox(k.key, t('keys.key_of', { name: k.name || k.id }))));
    fresh.delete(u.id);
    const rows = list.items.map((k) => {
      const revealArea = h('div', { class: 'revealed' });
      const acts = [];
      if (mayReveal) {
        let shown = null;
        const show = h('button', { type: 'button', 'aria-pressed': 'false', 'aria-label': `${t('keys.show')}: ${k.name}` }, t('keys.show'));
        const copy = h('button', { type: 'button', class: 'copy', 'aria-label': `${t('keys.copy')}: ${k.name}` }, t('keys.copy'));
        const reveal = async () => {
          if (shown) return shown;
          const r = await api('POST', path('workspaces', ws, 'users', u.id, 'keys', k.id, 'reveal'));
          shown = r.key;
          return shown;
        };
        show.addEventListener('click', async () => {
          box.show('');
          try {
            if (show.getAttribute('aria-pressed') === 'true') {
              revealArea.replaceChildren();
              show.textContent = t('keys.show');
              show.setAttribute('aria-label', `${t('keys.show')}: ${k.name}`);
              show.setAttribute('aria-pressed', 'false');
              return;
            }
            const key = await reveal();
            replace(revealArea, field(t('keys.key_of', { name: k.name }), input({ readonly: true, value: key, class: 'key', spellcheck: 'false' })));
            show.textContent = t('keys.hide');
            show.setAttribute('aria-label', `${t('keys.hide')}: ${k.name}`);
            show.setAttribute('aria-pressed', 'true');
          } catch (e) {
            box.show(errorText(e));
          }
        });
        copy.addEventListener('click', async () => {
          box.show('');
          try {
            await copyText(await reveal(), revealArea.querySelector('input'));
          } catch (e) {
            box.show(errorText(e));
          }
        });
        acts.push(show, copy);
      }
      if (mayRegenerate) acts.push(h('button', { type: 'button', 'aria-label': `${t('keys.regenerate')}: ${k.name}`, onclick: () => regenerate(k) }, t('keys.regenerate')));
      if (mayRevoke) acts.push(h('button', { type: 'button', class: 'danger', 'aria-label': `${t('keys.revoke')}: ${k.name}`, onclick: () => revoke(k) }, t('keys.revoke')));
      return h('tr', { 'data-key': k.id },
        h('th', { scope: 'row' }, k.name),
        h('td', null, timeEl(k.created_at)),
        h('td', null, timeEl(k.last_used_at)),
        h('td', null, k.revokes_at ? [t('keys.revokes_at'), ' ', timeEl(k.revokes_at)] : (k.expires_at ? timeEl(k.expires_at) : t('keys.no_expiry'))),
        acts.length ? h('td', { class: 'row-actions' }, h('div', { class: 'inline' }, acts), revealArea) : null);
    });
    const headers = [t('keys.name'), t('keys.created'), t('keys.last_used'), t('keys.expires')];
    if (mayRegenerate || mayRevoke || mayReveal) headers.push(t('common.actions'));
    replace(sec,
      h('div', { class: 'titlebar' }, h('h2', { id: 'keys-h' }, t('keys.title')),
        mayCreate ? h('button', { type: 'button', class: 'primary', onclick: generate }, t('keys.generate')) : null),
      newKeys, box,
      rows.length ? table(t('keys.title'), headers, rows) : h('p', { class: 'empty' }, t('keys.none')));
    const first = sec.querySelector('.newkey .copy');
    if (first) first.focus();
  };
  const issued = async (k) => {
    rememberKey(u.id, { id: k.id, key: k.key, name: k.name });
    await draw();
  };
  async function generate() {
    const name = input({ name: 'name', required: true, maxlength: 100, value: 'default', autocomplete: 'off' });
    const exp = input({ type: 'date', name: 'expires' });
    const k = await openDialog({
      title: t('keys.generate_title'),
      submit: t('keys.generate'),
      body: [field(t('keys.name'), name), field(t('keys.expires_on'), exp, t('keys.expires_hint'))],
      onSubmit: () => {
        const body = { name: name.value.trim() };
        if (exp.value) body.expires_at = new Date(`${exp.value}T00:00:00Z`).toISOString().replace('.000Z', 'Z');
        return api('POST', path('workspaces', ws, 'users', u.id, 'keys'), { body });
      },
    });
    if (k && k.key) await issued(k);
  }
  async function regenerate(k) {
    const grace = select(GRACES.map(([v, key]) => ({ value: v, label: t(key) })), '', { name: 'grace' });
    const nk = await openDialog({
      title: t('keys.regenerate_title', { name: k.name }),
      submit: t('keys.regenerate'),
      body: [h('p', null, t('keys.regenerate_text')), field(t('keys.grace'), grace)],
      onSubmit: () => api('POST', path('workspaces', ws, 'users', u.id, 'keys', k.id, 'regenerate'), {
        body: grace.value ? { grace: grace.value } : {},
      }),
    });
    if (nk && nk.key) await issued(nk);
  }
  async function revoke(k) {
    const ok = await confirmDialog({
      title: t('keys.revoke_title', { name: k.name }),
      text: t('keys.revoke_text'),
      confirm: t('keys.revoke'),
      danger: true,
      onConfirm: () => api('DELETE', path('workspaces', ws, 'users', u.id, 'keys', k.id)),
    });
    if (ok) {
      announce(t('keys.revoked', { name: k.name }));
      await draw();
    }
  }
  await draw();
  return sec;
}

function passwordSection(ctx, u) {
  const { ws } = ctx;
  const p1 = input({ type: 'password', name: 'password', autocomplete: 'new-password', required: true, minlength: 12, maxlength: 256 });
  const p2 = input({ type: 'password', name: 'password_again', autocomplete: 'new-password', required: true, minlength: 12, maxlength: 256 });
  const box = alertBox();
  const form = h('form', { class: 'stack', novalidate: true, 'aria-labelledby': 'pw-h' },
    h('h2', { id: 'pw-h' }, t('users.password_title')), h('p', { class: 'hint' }, t('users.password_hint')),
    h('div', { class: 'grid2' }, field(t('password.new'), p1, t('password.rule')), field(t('password.again'), p2)), box,
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, t('users.password_set'))));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!form.checkValidity()) { form.reportValidity(); return; }
    if (!samePasswords(p1, p2)) return;
    box.show('');
    try {
      await api('PUT', path('workspaces', ws, 'users', u.id, 'password'), { body: { password: p1.value } });
      p1.value = '';
      p2.value = '';
      announce(t('users.password_done'));
    } catch (e) {
      box.show(errorText(e));
    }
  });
  return form;
}

async function sessionsSection(ctx, u) {
  const { ws } = ctx;
  let list;
  try {
    list = await api('GET', path('workspaces', ws, 'users', u.id, 'sessions'), { query: { limit: 500 } });
  } catch (e) {
    if (e instanceof ApiError && (e.status === 404 || e.status === 405 || e.status === 403)) return null;
    throw e;
  }
  const sec = h('section', { 'aria-labelledby': 'ses-h' });
  const box = alertBox();
  const rows = list.items.map((s) => h('tr', { 'data-session': s.id },
    h('th', { scope: 'row' }, s.kind === 'console' ? t('sessions.console') : t('sessions.token'), s.current ? ` (${t('sessions.current')})` : ''),
    h('td', null, timeEl(s.created_at)),
    h('td', null, timeEl(s.last_used_at)),
    h('td', null, timeEl(s.expires_at)),
    h('td', null, h('button', {
      type: 'button',
      onclick: async () => {
        box.show('');
        try {
          await api('DELETE', path('workspaces', ws, 'users', u.id, 'sessions', s.id));
          announce(t('sessions.ended'));
          sec.replaceWith((await sessionsSection(ctx, u)) || h('div'));
        } catch (e) {
          box.show(errorText(e));
        }
      },
    }, t('sessions.end')))));
  replace(sec, h('h2', { id: 'ses-h' }, t('sessions.title')), box,
    rows.length ? table(t('sessions.title'), [t('sessions.kind'), t('sessions.created'), t('sessions.last_used'), t('sessions.expires'), t('common.actions')], rows)
      : h('p', { class: 'empty' }, t('sessions.none')));
  return sec;
}
