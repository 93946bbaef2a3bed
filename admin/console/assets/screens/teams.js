// Administration → Members → Teams: the list with Create team, and a
// team's page: rename, permissions, grants, team-wide access to all
// devices (a grant on device:*), members, delete.

import { h, replace, announce } from '../dom.js';
import { api, path, listAll } from '../api.js';
import { t, timeEl } from '../i18n.js';
import { openDialog, confirmDialog, alertBox, errorText } from '../dialog.js';
import { field, input, table, permissionsPicker, grantsEditor, devicesIn, formValue, roleLabel } from '../widgets.js';
import { href, go } from '../app.js';
import { tabBar } from './tabs.js';

function teamFields(c, tm, teams) {
  const name = input({ name: 'name', required: true, maxlength: 200, autocomplete: 'off', value: tm ? tm.name : '', autofocus: !tm });
  const perms = permissionsPicker(c, tm ? tm.permissions : []);
  const grants = grantsEditor(c, tm ? tm.grants : [], {
    allDevices: true,
    knownDevices: devicesIn(c.grants, ...teams.map((x) => x.grants)),
  });
  return {
    nodes: [field(t('teams.name'), name), perms, grants],
    read: (form) => ({ name: formValue(form, 'name'), permissions: perms.values(), grants: grants.values() }),
  };
}

function allDevices(tm) {
  const g = (tm.grants || []).find((x) => x.resource === 'device:*');
  return g ? g.rights.join(', ') : '—';
}

export async function render(ctx) {
  const { main, caller: c, ws } = ctx;
  const teams = await listAll(path('workspaces', ws, 'teams'));
  const create = async () => {
    const f = teamFields(c, null, teams);
    const tm = await openDialog({
      title: t('teams.create_title'),
      wide: true,
      submit: t('teams.create'),
      body: f.nodes,
      onSubmit: (form) => {
        const v = f.read(form);
        const body = { name: v.name };
        if (v.permissions.length) body.permissions = v.permissions;
        if (v.grants.length) body.grants = v.grants;
        return api('POST', path('workspaces', ws, 'teams'), { body });
      },
    });
    if (tm && tm.id) {
      announce(t('teams.created', { name: tm.name }));
      go(href(ws, 'teams', tm.id));
    }
  };
  const rows = teams.map((tm) => h('tr', { 'data-team': tm.name },
    h('th', { scope: 'row' }, h('a', { href: href(ws, 'teams', tm.id) }, tm.name)),
    h('td', null, String((tm.members || []).length)),
    h('td', null, (tm.permissions || []).join(', ')),
    h('td', null, allDevices(tm)),
    h('td', null, timeEl(tm.created_at))));
  replace(main,
    tabBar(c, ws, 'teams'),
    h('div', { class: 'titlebar' }, h('h1', null, t('teams.title')),
      c.mayManageTeams ? h('button', { type: 'button', class: 'primary', onclick: create }, t('teams.create')) : null),
    rows.length ? table(t('teams.title'), [t('teams.name'), t('teams.members'), t('perm.legend'), t('grants.all_devices'), t('users.created')], rows)
      : h('p', { class: 'empty' }, t('teams.none')));
}

export async function renderTeam(ctx) {
  const { main, caller: c, ws } = ctx;
  const tid = ctx.parts[1];
  const [tm, teams] = await Promise.all([
    api('GET', path('workspaces', ws, 'teams', tid)),
    listAll(path('workspaces', ws, 'teams')),
  ]);
  const box = alertBox();
  const parts = [
    tabBar(c, ws, 'teams'),
    h('p', { class: 'crumbs' }, h('a', { href: href(ws, 'teams') }, t('teams.title'))),
    h('div', { class: 'titlebar' }, h('h1', null, tm.name),
      c.mayManageTeams ? h('button', {
        type: 'button',
        class: 'danger',
        onclick: async () => {
          const ok = await confirmDialog({
            title: t('teams.delete_title', { name: tm.name }),
            text: t('teams.delete_text'),
            confirm: t('teams.delete'),
            danger: true,
            onConfirm: () => api('DELETE', path('workspaces', ws, 'teams', tid)),
          });
          if (ok) {
            announce(t('teams.deleted', { name: tm.name }));
            go(href(ws, 'teams'));
          }
        },
      }, t('teams.delete')) : null),
    box,
  ];
  if (c.mayManageTeams) {
    const f = teamFields(c, tm, teams);
    const form = h('form', { class: 'stack', novalidate: true, 'aria-labelledby': 'team-h' },
      h('h2', { id: 'team-h' }, t('teams.settings')), f.nodes,
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, t('teams.save'))));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      if (!form.checkValidity()) { form.reportValidity(); return; }
      box.show('');
      try {
        const v = f.read(form);
        await api('PATCH', path('workspaces', ws, 'teams', tid), { body: v, version: tm.version });
        announce(t('teams.saved', { name: v.name }));
        await renderTeam(ctx);
      } catch (e) {
        box.show(errorText(e));
      }
    });
    parts.push(form);
  } else {
    parts.push(h('dl', { class: 'details' },
      h('dt', null, t('perm.legend')), h('dd', null, (tm.permissions || []).join(', ') || '—'),
      h('dt', null, t('grants.title')), h('dd', null, (tm.grants || []).map((g) => `${g.resource}: ${g.rights.join(', ')}`).join('; ') || '—')));
  }
  replace(main, ...parts);
  // A change of members is a change of the team (its version moves): the
  // settings form then saves against the new version.
  main.append(await membersSection(ctx, tm, async () => {
    const cur = await api('GET', path('workspaces', ws, 'teams', tid));
    tm.version = cur.version;
    tm.members = cur.members;
  }));
}

async function membersSection(ctx, tm, changed) {
  const { caller: c, ws } = ctx;
  const sec = h('section', { 'aria-labelledby': 'tm-members-h' });
  const box = alertBox();
  const draw = async () => {
    const members = c.mayReadUsers ? await listAll(path('workspaces', ws, 'users'), { team: tm.id }) : [];
    const may = c.mayManageTeams;
    const rows = members.map((u) => h('tr', { 'data-user': u.username },
      h('th', { scope: 'row' }, h('a', { href: href(ws, 'users', u.id) }, u.username)),
      h('td', null, roleLabel(u.role)),
      may && c.may(u, 'teams') ? h('td', null, h('button', {
        type: 'button',
        'aria-label': `${t('teams.remove_member')}: ${u.username}`,
        onclick: async () => {
          box.show('');
          try {
            await api('DELETE', path('workspaces', ws, 'teams', tm.id, 'members', u.id));
            await changed();
            announce(t('teams.member_removed', { name: u.username }));
            await draw();
          } catch (e) {
            box.show(errorText(e));
          }
        },
      }, t('teams.remove_member'))) : (may ? h('td') : null)));
    let adder = null;
    // Adding a member gives it the team's rights: only a caller holding
    // them all may (removing needs no more than managing the member).
    if (may && c.mayGiveTeam(tm)) {
      const q = input({ type: 'search', name: 'member-search', autocomplete: 'off' });
      const results = h('ul', { class: 'results', 'aria-live': 'polite' });
      let timer = 0;
      q.addEventListener('input', () => {
        clearTimeout(timer);
        timer = setTimeout(async () => {
          const s = q.value.trim();
          results.replaceChildren();
          if (!s) return;
          const page = await api('GET', path('workspaces', ws, 'users'), { query: { q: s, limit: 8 } });
          for (const u of page.items) {
            if (u.teams.includes(tm.id) || !c.may(u, 'teams')) continue;
            results.append(h('li', null, h('button', {
              type: 'button',
              onclick: async () => {
                box.show('');
                try {
                  await api('PUT', path('workspaces', ws, 'teams', tm.id, 'members', u.id));
                  await changed();
                  announce(t('teams.member_added', { name: u.username }));
                  await draw();
                  sec.querySelector('input[type=search]')?.focus();
                } catch (e) {
                  box.show(errorText(e));
                }
              },
            }, t('teams.add_member_named', { name: u.username }))));
          }
        }, 200);
      });
      adder = h('div', { class: 'adder' }, field(t('teams.add_member'), q, t('teams.add_member_hint')), results);
    }
    const headers = [t('users.username'), t('users.role')];
    if (may) headers.push(t('common.actions'));
    replace(sec, h('h2', { id: 'tm-members-h' }, t('teams.members')), box, adder,
      rows.length ? table(t('teams.members'), headers, rows) : h('p', { class: 'empty' }, t('teams.no_members')));
  };
  await draw();
  return sec;
}
