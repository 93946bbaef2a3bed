// Administration → Members → Members: the people of the workspace, with
// Invite member, and per member Edit, Send new invite, Reset password and
// Deactivate / Activate.

import { h, replace, announce } from '../dom.js';
import { api, path, listAll } from '../api.js';
import { t, timeEl } from '../i18n.js';
import { openDialog, alertBox, errorText } from '../dialog.js';
import { field, input, select, roleLabel, statusBadge, table, Pager, permissionsPicker, teamsPicker } from '../widgets.js';
import { href } from '../app.js';
import { tabBar } from './tabs.js';
import { copyText } from './user.js';

// linkDialog shows a one-time link that no mail carried (no mailer is
// configured), for the admin to pass on.
function linkDialog(title, text, url) {
  const out = input({ readonly: true, value: url, class: 'key', spellcheck: 'false' });
  const copy = h('button', { type: 'button', class: 'copy', onclick: () => copyText(url, out).catch((e) => announce(e.message)) }, t('members.copy_link'));
  return openDialog({ title, body: [h('p', null, text), field(t('members.link'), out), copy] });
}

export async function render(ctx) {
  const { main, caller: c, ws, query } = ctx;
  const state = { q: query.get('q') || '', status: query.get('status') || '' };
  const teams = c.mayReadTeams ? await listAll(path('workspaces', ws, 'teams')) : [];
  const teamName = new Map(teams.map((tm) => [tm.id, tm.name]));
  const box = alertBox();
  const body = h('div', { class: 'list-body' });
  const pager = new Pager(() => load());

  const search = input({ type: 'search', name: 'q', value: state.q, autocomplete: 'off', placeholder: t('users.search_placeholder') });
  const statusSel = select([
    { value: '', label: t('common.all') },
    ...['invited', 'active', 'inactive', 'trash'].map((s) => ({ value: s, label: t(`status.${s}`) })),
  ], state.status, { name: 'status' });
  let timer = 0;
  const update = () => { pager.reset(); load(); };
  search.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(() => { state.q = search.value.trim(); update(); }, 250); });
  statusSel.addEventListener('change', () => { state.status = statusSel.value; update(); });

  const act = async (fn) => {
    box.show('');
    try {
      await fn();
    } catch (e) {
      box.show(errorText(e));
    }
  };

  async function load() {
    const page = await api('GET', path('workspaces', ws, 'users'), {
      query: { kind: 'member', q: state.q, status: state.status, cursor: pager.cursor, limit: 50 },
    });
    pager.next = page.next_cursor || '';
    const rows = page.items.map((u) => {
      const acts = [];
      const who = u.email || u.username;
      if (c.may(u, 'update')) {
        acts.push(h('button', { type: 'button', 'aria-label': `${t('members.edit')}: ${who}`, onclick: () => edit(u) }, t('members.edit')));
      }
      // linkButton asks the API for a new link for u (an invitation or a
      // reset): mailed, or, without a mailer, shown to pass on.
      const linkButton = (label, endpoint, urlField, title, sent) => h('button', {
        type: 'button',
        'aria-label': `${t(label)}: ${who}`,
        onclick: () => act(async () => {
          const r = await api('POST', path('workspaces', ws, 'users', u.id, endpoint));
          if (r && r[urlField]) await linkDialog(t(title), t('members.no_mailer'), r[urlField]);
          else announce(t(sent, { email: who }));
        }),
      }, t(label));
      if (u.status === 'invited' && c.may(u, 'invitation')) {
        acts.push(linkButton('members.resend', 'invitation', 'accept_url', 'members.invite_link_title', 'members.invite_sent'));
      }
      if (u.status === 'active' && c.may(u, 'password_reset')) {
        acts.push(linkButton('members.reset', 'password-reset', 'reset_url', 'members.reset_link_title', 'members.reset_sent'));
      }
      const to = u.status === 'active' ? 'inactive' : 'active';
      if ((u.status === 'active' || u.status === 'inactive') && c.may(u, `status.${to}`)) {
        acts.push(h('button', {
          type: 'button',
          'aria-label': `${t(to === 'inactive' ? 'members.deactivate' : 'users.activate')}: ${who}`,
          onclick: () => act(async () => {
            await api('POST', path('workspaces', ws, 'users', u.id, 'status'), { body: { status: to } });
            announce(t('users.status_changed', { status: t(`status.${to}`) }));
            await load();
          }),
        }, t(to === 'inactive' ? 'members.deactivate' : 'users.activate')));
      }
      return h('tr', { 'data-user': u.username },
        h('th', { scope: 'row' }, h('a', { href: href(ws, 'users', u.id) }, who)),
        h('td', null, roleLabel(u.role)),
        h('td', null, statusBadge(u.status)),
        h('td', null, (u.teams || []).map((id) => teamName.get(id) || id).join(', ')),
        h('td', null, timeEl(u.created_at)),
        h('td', { class: 'row-actions' }, h('div', { class: 'inline' }, acts)));
    });
    replace(body,
      rows.length ? table(t('members.title'), [t('members.name'), t('users.role'), t('users.status'), t('users.teams'), t('users.created'), t('common.actions')], rows)
        : h('p', { class: 'empty' }, t('members.none')),
      pager.render());
  }

  async function edit(u) {
    const roles = c.grantableRoles('member');
    const opts = roles.map((r) => ({ value: r, label: roleLabel(r) }));
    if (!roles.includes(u.role)) opts.unshift({ value: u.role, label: roleLabel(u.role) });
    // Nobody changes its own role; the API says whose it may change.
    const role = select(opts, u.role, { name: 'role', disabled: !c.may(u, 'role') });
    const perms = permissionsPicker(c, u.permissions);
    const tp = c.mayManageTeams && c.may(u, 'teams') ? teamsPicker(teams, u.teams, t('teams.pick_legend'), { mayAdd: (tm) => c.mayGiveTeam(tm) }) : null;
    const ok = await openDialog({
      title: t('members.edit_title', { name: u.email || u.username }),
      wide: true,
      submit: t('common.save'),
      body: [field(t('users.role'), role), perms, tp],
      onSubmit: async () => {
        const patch = {};
        if (role.value !== u.role) patch.role = role.value;
        const ps = perms.values();
        if (JSON.stringify([...ps].sort()) !== JSON.stringify([...u.permissions].sort())) patch.permissions = ps;
        if (Object.keys(patch).length) await api('PATCH', path('workspaces', ws, 'users', u.id), { body: patch, version: u.version });
        if (tp) {
          const want = tp.values();
          for (const tid of want.filter((x) => !u.teams.includes(x))) await api('PUT', path('workspaces', ws, 'teams', tid, 'members', u.id));
          for (const tid of u.teams.filter((x) => !want.includes(x))) await api('DELETE', path('workspaces', ws, 'teams', tid, 'members', u.id));
        }
        return true;
      },
    });
    if (ok) {
      announce(t('users.saved', { name: u.email || u.username }));
      await load();
    }
  }

  async function invite() {
    const email = input({ type: 'email', name: 'email', required: true, autocomplete: 'off', autofocus: true });
    const roles = c.grantableRoles('member');
    const role = select(roles.map((r) => ({ value: r, label: roleLabel(r) })), roles.includes('viewer') ? 'viewer' : roles[roles.length - 1], { name: 'role' });
    const perms = permissionsPicker(c, []);
    const tp = c.mayManageTeams ? teamsPicker(teams, [], t('teams.pick_legend'), { mayAdd: (tm) => c.mayGiveTeam(tm) }) : null;
    const r = await openDialog({
      title: t('members.invite_title'),
      wide: true,
      submit: t('members.invite'),
      body: [h('div', { class: 'grid2' }, field(t('users.email'), email), field(t('users.role'), role)), perms, tp],
      onSubmit: () => {
        const b = { email: email.value.trim(), role: role.value };
        const ps = perms.values();
        if (ps.length) b.permissions = ps;
        if (tp && tp.values().length) b.teams = tp.values();
        return api('POST', path('workspaces', ws, 'invitations'), { body: b });
      },
    });
    if (!r || r === true) return;
    if (r.accept_url) await linkDialog(t('members.invite_link_title'), t('members.no_mailer'), r.accept_url);
    else announce(t('members.invite_sent', { email: r.email || email.value }));
    await load();
  }

  replace(main,
    tabBar(c, ws, 'members'),
    h('div', { class: 'titlebar' }, h('h1', null, t('members.title')),
      c.mayInvite ? h('button', { type: 'button', class: 'primary', onclick: invite }, t('members.invite')) : null),
    h('div', { class: 'filters' }, field(t('users.search'), search), field(t('users.status'), statusSel)),
    box, body);
  await load();
}
