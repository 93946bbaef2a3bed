// Administration → Members → API Users: the list (username, role, status,
// teams, last used, created) with a prefix search, status and role
// filters and paging over cursors; Add API User opens the dialog.

import { h, replace } from '../dom.js';
import { api, path, listAll } from '../api.js';
import { t, timeEl } from '../i18n.js';
import { openDialog } from '../dialog.js';
import { ROLE_NAMES } from '../rights.js';
import { field, input, select, roleLabel, statusBadge, table, Pager, checkbox, samePasswords } from '../widgets.js';
import { href, go } from '../app.js';
import { userFields } from './userform.js';
import { tabBar } from './tabs.js';
import { rememberKey } from './user.js';

// render draws the API Users list of ctx.ws.
export async function render(ctx) {
  const { main, caller: c, ws, query } = ctx;
  const state = {
    q: query.get('q') || '',
    status: query.get('status') || 'active',
    role: query.get('role') || '',
  };
  const teams = c.mayReadTeams ? await listAll(path('workspaces', ws, 'teams')) : [];
  const teamName = new Map(teams.map((tm) => [tm.id, tm.name]));

  const addBtn = c.mayCreateUsers ? h('button', { type: 'button', class: 'primary', onclick: () => addUser(ctx, teams) }, t('users.add')) : null;
  const search = input({ type: 'search', name: 'q', value: state.q, autocomplete: 'off', placeholder: t('users.search_placeholder') });
  const statusGroup = h('div', { class: 'segmented', role: 'group', 'aria-labelledby': 'status-label' },
    ['active', 'inactive', 'trash', ''].map((s) => h('button', {
      type: 'button',
      'aria-pressed': state.status === s ? 'true' : 'false',
      'data-status': s || 'all',
      onclick: () => { state.status = s; update(); },
    }, s ? t(`status.${s}`) : t('common.all'))));
  const roleSel = select([{ value: '', label: t('users.all_roles') }, ...ROLE_NAMES.map((r) => ({ value: r, label: roleLabel(r) }))], state.role, { name: 'role' });
  const body = h('div', { class: 'list-body' });
  const pager = new Pager(() => load());

  const update = () => {
    const p = new URLSearchParams();
    if (state.q) p.set('q', state.q);
    if (state.status !== 'active') p.set('status', state.status || 'all');
    if (state.role) p.set('role', state.role);
    const qs = p.toString();
    window.history.replaceState(null, '', `${href(ws, 'users')}${qs ? `?${qs}` : ''}`);
    statusGroup.querySelectorAll('button').forEach((b) => b.setAttribute('aria-pressed', (b.dataset.status === (state.status || 'all')).toString()));
    pager.reset();
    load();
  };
  if (state.status === 'all') state.status = '';

  let timer = 0;
  search.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(() => { state.q = search.value.trim(); update(); }, 250);
  });
  search.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter') { clearTimeout(timer); state.q = search.value.trim(); update(); }
  });
  roleSel.addEventListener('change', () => { state.role = roleSel.value; update(); });

  let loadSeq = 0;
  async function load() {
    const seq = ++loadSeq;
    body.setAttribute('aria-busy', 'true');
    let page;
    try {
      page = await api('GET', path('workspaces', ws, 'users'), {
        query: { kind: 'api', q: state.q, status: state.status, role: state.role, cursor: pager.cursor, limit: 50 },
      });
    } finally {
      if (seq === loadSeq) body.removeAttribute('aria-busy');
    }
    if (seq !== loadSeq) return;
    pager.next = page.next_cursor || '';
    const rows = page.items.map((u) => {
      const last = h('td', { class: 'last-used' }, '…');
      const tr = h('tr', { 'data-user': u.username },
        h('th', { scope: 'row' }, h('a', { href: href(ws, 'users', u.id) }, u.username)),
        h('td', null, roleLabel(u.role)),
        h('td', null, statusBadge(u.status)),
        h('td', null, (u.teams || []).map((id) => teamName.get(id) || id).join(', ')),
        last,
        h('td', null, timeEl(u.created_at)));
      lastUsed(c, ws, u, last);
      return tr;
    });
    replace(body,
      rows.length ? table(t('users.title'), [t('users.username'), t('users.role'), t('users.status'), t('users.teams'), t('users.last_used'), t('users.created')], rows)
        : h('p', { class: 'empty' }, state.q ? t('users.none_found', { q: state.q }) : t('users.none')),
      pager.render());
  }

  replace(main,
    tabBar(c, ws, 'users'),
    h('div', { class: 'titlebar' }, h('h1', null, t('users.title')), addBtn),
    h('div', { class: 'filters' },
      field(t('users.search'), search),
      h('div', { class: 'field' }, h('span', { class: 'label', id: 'status-label' }, t('users.status')), statusGroup),
      field(t('users.role'), roleSel)),
    body);
  await load();
}

// lastUsed fills cell with the latest last_used_at of u's keys, when the
// caller may read them.
async function lastUsed(c, ws, u, cell) {
  if (!c.may(u, 'keys')) {
    replace(cell, h('span', { class: 'muted' }, '—'));
    return;
  }
  try {
    const keys = await api('GET', path('workspaces', ws, 'users', u.id, 'keys'), { query: { limit: 500 } });
    const times = keys.items.map((k) => k.last_used_at).filter(Boolean).sort();
    replace(cell, times.length ? timeEl(times[times.length - 1]) : h('span', { class: 'muted' }, t('common.never')));
  } catch {
    replace(cell, h('span', { class: 'muted' }, '—'));
  }
}

// addUser opens the Add API User dialog.
async function addUser(ctx, teams) {
  const { caller: c, ws } = ctx;
  const f = userFields(c, { kind: 'api', teams });
  const pw1 = input({ type: 'password', name: 'password', autocomplete: 'new-password', minlength: 12, maxlength: 256 });
  const pw2 = input({ type: 'password', name: 'password_again', autocomplete: 'new-password', minlength: 12, maxlength: 256 });
  const issue = checkbox(t('users.issue_key'), { name: 'issue_key', checked: true });
  const created = await openDialog({
    title: t('users.add_title'),
    wide: true,
    submit: t('users.add'),
    body: [
      ...f.nodes,
      h('fieldset', { class: 'picker' }, h('legend', null, t('users.password_legend')),
        h('p', { class: 'hint' }, t('users.password_hint')),
        h('div', { class: 'grid2' }, field(t('password.new'), pw1), field(t('password.again'), pw2))),
      issue,
    ],
    onSubmit: async (form) => {
      const v = f.read(form);
      if (!samePasswords(pw1, pw2)) return false;
      const body = { username: v.username, kind: 'api', role: v.role };
      for (const k of ['email', 'organization', 'language', 'timezone', 'private_note']) if (v[k]) body[k] = v[k];
      if (v.permissions.length) body.permissions = v.permissions;
      if (v.grants.length) body.grants = v.grants;
      if (v.teams.length) body.teams = v.teams;
      if (pw1.value) body.password = pw1.value;
      if (form.elements.namedItem('issue_key').checked) body.issue_key = true;
      return api('POST', path('workspaces', ws, 'users'), { body });
    },
  });
  if (!created || created === true) return;
  if (created.key) rememberKey(created.id, { id: created.key_id, key: created.key, name: 'default' });
  go(href(ws, 'users', created.id));
}

