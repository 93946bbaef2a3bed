// The fields of an API user, as the Add API User dialog and the API user's
// page show them: profile fields, role, teams, workspace permissions,
// device permissions, project privileges.

import { h } from '../dom.js';
import { t } from '../i18n.js';
import {
  field, input, select, roleLabel, languageSelect, zoneSelect,
  permissionsPicker, grantsEditor, teamsPicker, formValue, devicesIn,
} from '../widgets.js';

// userFields builds the form parts for user u (null for a new one) of
// kind, with the workspace's teams. It returns {nodes, read()}: read
// gives the body fields (every field, for create; the changed ones are
// worked out by the caller for a patch).
export function userFields(caller, { u = null, kind = 'api', teams = [] } = {}) {
  const roles = caller.grantableRoles(kind);
  const roleOpts = roles.map((r) => ({ value: r, label: roleLabel(r) }));
  if (u && !roles.includes(u.role)) roleOpts.unshift({ value: u.role, label: roleLabel(u.role) });
  const defRole = u ? u.role : (roles.includes('api_user') ? 'api_user' : roles[0]);
  const username = input({ name: 'username', required: true, maxlength: 64, autocomplete: 'off', value: u ? u.username : '', autofocus: !u });
  // Nobody changes its own role; the API says whose role the caller may change.
  const role = select(roleOpts, defRole, { name: 'role', required: true, disabled: !!u && !caller.may(u, 'role') });
  const email = input({ type: 'email', name: 'email', autocomplete: 'off', value: (u && u.email) || '' });
  const org = input({ name: 'organization', autocomplete: 'off', value: (u && u.organization) || '' });
  const lang = languageSelect(u && u.language);
  const tz = zoneSelect(u && u.timezone);
  const note = h('textarea', { name: 'private_note', rows: 3, value: (u && u.private_note) || '' });
  const perms = permissionsPicker(caller, u ? u.permissions : []);
  const known = devicesIn(caller.grants, ...teams.map((tm) => tm.grants), u && u.grants);
  const grants = grantsEditor(caller, u ? u.grants : [], { knownDevices: known });
  // Team membership needs teams.manage (and, for a user, the API's word
  // that the caller may change its teams); without it the teams are not
  // offered.
  const teamBox = caller.mayManageTeams && (!u || caller.may(u, 'teams')) ? teamsPicker(teams, u ? u.teams : [], t('users.teams_legend'), { mayAdd: (tm) => caller.mayGiveTeam(tm) }) : null;

  const nodes = [
    h('div', { class: 'grid2' },
      field(t('users.username'), username),
      field(t('users.role'), role),
      field(t('users.email'), email),
      field(t('users.organization'), org),
      field(t('users.language'), lang),
      field(t('users.timezone'), tz)),
    field(t('users.private_note'), note, t('users.private_note_hint')),
    teamBox, perms, grants,
  ];
  return {
    nodes,
    read(form) {
      return {
        username: formValue(form, 'username'),
        role: role.value,
        email: formValue(form, 'email'),
        organization: formValue(form, 'organization'),
        language: lang.value,
        timezone: tz.value,
        private_note: note.value,
        permissions: perms.values(),
        grants: grants.values(),
        teams: teamBox ? teamBox.values() : (u ? u.teams : []),
      };
    },
  };
}

function same(a, b) { return JSON.stringify(a) === JSON.stringify(b); }

// patchOf returns the fields of v that differ from user u.
export function patchOf(u, v) {
  const out = {};
  for (const k of ['username', 'role', 'email', 'organization', 'language', 'timezone', 'private_note']) {
    if ((u[k] || '') !== (v[k] || '')) out[k] = v[k];
  }
  const norm = (gs) => [...gs].map((g) => ({ resource: g.resource, rights: [...g.rights].sort() })).sort((a, b) => a.resource.localeCompare(b.resource));
  if (!same([...(u.permissions || [])].sort(), [...v.permissions].sort())) out.permissions = v.permissions;
  if (!same(norm(u.grants || []), norm(v.grants))) out.grants = v.grants;
  return out;
}
