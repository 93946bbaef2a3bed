// Form pieces shared by the screens: labelled fields, checkbox groups, the
// pickers for workspace permissions, device permissions, project
// privileges and teams, a pager over cursors, and small display helpers.

import { h, uid } from './dom.js';
import { t, has, LANGUAGES, timeZones } from './i18n.js';
import { CATALOG } from './rights.js';

// samePasswords reports whether the new password p1 and its repetition p2
// agree; when they do not, it says so at p2 (the browser's own bubble).
export function samePasswords(p1, p2) {
  if (p1.value === p2.value) return true;
  p2.setCustomValidity(t('password.mismatch'));
  p2.reportValidity();
  p2.setCustomValidity('');
  return false;
}

// field is a labelled control: <div class=field><label>…</label>control</div>.
export function field(label, control, hint) {
  if (!control.id) control.id = uid('f');
  const hintEl = hint ? h('p', { class: 'hint', id: uid('hint') }, hint) : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: 'field' }, h('label', { for: control.id }, label), control, hintEl);
}

// input is a text input; opts are its attributes.
export function input(opts = {}) {
  return h('input', { type: 'text', ...opts });
}

// select is a <select> of [{value, label}] with value selected.
export function select(options, value, attrs = {}) {
  return h('select', attrs, options.map((o) => h('option', { value: o.value, selected: o.value === value }, o.label)));
}

// checkbox is a labelled checkbox.
export function checkbox(label, attrs = {}) {
  const box = h('input', { type: 'checkbox', id: uid('cb'), ...attrs });
  return h('div', { class: 'check' }, box, h('label', { for: box.id }, label));
}

// roleLabel is a role's name in the current language.
export function roleLabel(r) { return has(`role.${r}`) ? t(`role.${r}`) : r; }

// statusLabel is a status's name in the current language.
export function statusLabel(s) { return has(`status.${s}`) ? t(`status.${s}`) : s; }

// statusBadge shows a status.
export function statusBadge(s) { return h('span', { class: `badge status-${s}` }, statusLabel(s)); }

// languageSelect chooses a language ('' = not set unless required).
export function languageSelect(value, { required = false } = {}) {
  const opts = LANGUAGES.map((l) => ({ value: l.tag, label: l.name }));
  if (!required) opts.unshift({ value: '', label: t('common.not_set') });
  if (value && !opts.some((o) => o.value === value)) opts.push({ value, label: value });
  return select(opts, value || '', { name: 'language' });
}

// zoneSelect chooses an IANA time zone ('' = not set unless required).
export function zoneSelect(value, { required = false } = {}) {
  const opts = timeZones().map((z) => ({ value: z, label: z }));
  if (!required) opts.unshift({ value: '', label: t('common.not_set') });
  if (value && !opts.some((o) => o.value === value)) opts.push({ value, label: value });
  return select(opts, value || '', { name: 'timezone' });
}

// permLabel is the label of a permission: its description and its name.
function permLabel(p) {
  return has(`perm.${p}`) ? `${t(`perm.${p}`)} (${p})` : p;
}

// permissionsPicker is the Workspace Permissions fieldset: a checkbox per
// permission the caller may grant, plus those the user already holds
// (which stay even when the caller could not grant them: the API checks
// only what is added), and a field to add any other permission name.
export function permissionsPicker(caller, selected = [], legend = t('perm.legend')) {
  const chosen = new Set(selected);
  const list = h('div', { class: 'checks' });
  const known = [...CATALOG.permissions];
  for (const p of selected) if (!known.includes(p)) known.push(p);
  const boxes = new Map();
  const addBox = (p) => {
    if (boxes.has(p)) return boxes.get(p);
    const grantable = caller.mayGrantPermission(p);
    if (!grantable && !chosen.has(p)) return null;
    const row = checkbox(permLabel(p), { value: p, checked: chosen.has(p), disabled: !grantable });
    boxes.set(p, row.querySelector('input'));
    list.append(row);
    return boxes.get(p);
  };
  known.forEach(addBox);
  const other = input({ name: 'other-permission', autocomplete: 'off', pattern: '[a-z][a-z0-9_.:\\-]{0,127}' });
  const addBtn = h('button', {
    type: 'button',
    onclick: () => {
      const p = other.value.trim();
      if (!p) return;
      const box = addBox(p);
      if (box) {
        box.checked = true;
        other.value = '';
      } else {
        other.setCustomValidity(t('perm.not_grantable'));
        other.reportValidity();
        other.setCustomValidity('');
      }
    },
  }, t('perm.add'));
  const el = h('fieldset', { class: 'picker' }, h('legend', null, legend), list,
    h('div', { class: 'inline' }, field(t('perm.other'), other), addBtn));
  el.values = () => [...boxes].filter(([, b]) => b.checked).map(([p]) => p);
  if (boxes.size === 0) list.append(h('p', { class: 'muted' }, t('perm.none_grantable')));
  return el;
}

// rightLabel is the label of a right on a resource type.
function rightLabel(type, r) {
  const k = `${type === 'project' ? 'priv' : 'right'}.${r}`;
  return has(k) ? t(k) : r;
}

// resourceRights is a fieldset of checkboxes for the rights on one
// resource, with a Remove button. Rights the caller may not grant are
// shown only when already held (then disabled, so they stay).
function resourceRights(caller, resource, rights, held, onRemove, legendText) {
  const type = resource.split(':')[0];
  const all = [...rights];
  for (const r of held) if (!all.includes(r)) all.push(r);
  const boxes = [];
  const list = h('div', { class: 'checks' });
  for (const r of all) {
    const grantable = caller.mayGrantRight(resource, r);
    if (!grantable && !held.includes(r)) continue;
    const row = checkbox(rightLabel(type, r), { value: r, checked: held.includes(r), disabled: !grantable });
    boxes.push(row.querySelector('input'));
    list.append(row);
  }
  const fs = h('fieldset', { class: 'resource', 'data-resource': resource },
    h('legend', null, legendText || resource), list,
    onRemove ? h('button', { type: 'button', class: 'link', onclick: () => { fs.remove(); onRemove(resource); } },
      t('grants.remove', { resource })) : null);
  fs.grant = () => {
    const rs = boxes.filter((b) => b.checked).map((b) => b.value);
    return rs.length ? { resource, rights: rs } : null;
  };
  return fs;
}

// grantsEditor is the part of a form that edits grants: Device
// Permissions (a search field for a device, then checkboxes for its
// rights), project privileges (the ten per project) and, when
// asked for, team-wide access to all devices (a grant on device:*). Grants
// on other resource types are kept as they are. known lists device ids
// the search offers (devices named in grants the workspace already has);
// any other id can be added too.
export function grantsEditor(caller, grants = [], { knownDevices = [], allDevices = false } = {}) {
  const kept = grants.filter((g) => !g.resource.startsWith('device:') && !g.resource.startsWith('project:'));
  const byRes = new Map(grants.map((g) => [g.resource, g.rights]));
  const parts = [];

  let wildcard = null;
  if (allDevices) {
    wildcard = resourceRights(caller, 'device:*', CATALOG.device_rights, byRes.get('device:*') || [], null, t('grants.all_devices'));
    wildcard.classList.add('all-devices');
    parts.push(wildcard);
  }

  // Device Permissions.
  const devList = h('div', { class: 'resources' });
  const devices = new Map();
  const addDevice = (id, held = []) => {
    const res = `device:${id}`;
    if (devices.has(res)) {
      devices.get(res).querySelector('input:not([disabled])')?.focus();
      return;
    }
    const fs = resourceRights(caller, res, CATALOG.device_rights, held, (r) => devices.delete(r));
    devices.set(res, fs);
    devList.append(fs);
    return fs;
  };
  for (const g of grants) {
    if (g.resource.startsWith('device:') && g.resource !== 'device:*') addDevice(g.resource.slice(7), g.rights);
  }
  const search = h('input', { type: 'search', autocomplete: 'off', name: 'device-search', id: uid('dev') });
  const results = h('ul', { class: 'results', 'aria-live': 'polite' });
  const showResults = () => {
    const q = search.value.trim().toLowerCase();
    results.replaceChildren();
    if (!q) return;
    const matches = knownDevices.filter((d) => d.toLowerCase().startsWith(q) && !devices.has(`device:${d}`)).slice(0, 8);
    const exact = knownDevices.some((d) => d.toLowerCase() === q);
    const item = (id, label) => h('li', null, h('button', {
      type: 'button',
      onclick: () => {
        const fs = addDevice(id);
        search.value = '';
        results.replaceChildren();
        fs?.querySelector('input:not([disabled])')?.focus();
      },
    }, label));
    for (const d of matches) results.append(item(d, t('grants.add_device', { device: d })));
    const raw = search.value.trim();
    if (!exact && /^[^\s:]{1,200}$/.test(raw) && !devices.has(`device:${raw}`)) {
      results.append(item(raw, t('grants.add_new_device', { device: raw })));
    }
  };
  search.addEventListener('input', showResults);
  search.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter') {
      ev.preventDefault();
      results.querySelector('button')?.click();
    }
  });
  parts.push(h('fieldset', { class: 'picker devices' }, h('legend', null, t('grants.devices')),
    field(t('grants.search_device'), search, t('grants.search_hint')), results, devList));

  // Project privileges.
  const projList = h('div', { class: 'resources' });
  const projects = new Map();
  const addProject = (id, held = []) => {
    const res = `project:${id}`;
    if (projects.has(res)) return projects.get(res);
    const fs = resourceRights(caller, res, CATALOG.project_privileges, held, (r) => projects.delete(r));
    projects.set(res, fs);
    projList.append(fs);
    return fs;
  };
  for (const g of grants) if (g.resource.startsWith('project:')) addProject(g.resource.slice(8), g.rights);
  const projInput = input({ name: 'project', autocomplete: 'off' });
  const projBtn = h('button', {
    type: 'button',
    onclick: () => {
      const id = projInput.value.trim();
      if (!/^[^\s]{1,200}$/.test(id)) return;
      const fs = addProject(id);
      projInput.value = '';
      fs.querySelector('input:not([disabled])')?.focus();
    },
  }, t('grants.add_project'));
  parts.push(h('fieldset', { class: 'picker projects' }, h('legend', null, t('grants.projects')),
    h('div', { class: 'inline' }, field(t('grants.project_id'), projInput), projBtn), projList));

  if (kept.length) {
    parts.push(h('div', { class: 'kept' }, h('p', null, t('grants.other')),
      h('ul', null, kept.map((g) => h('li', null, `${g.resource}: ${g.rights.join(', ')}`)))));
  }

  const el = h('div', { class: 'grants' }, parts);
  el.values = () => {
    const out = [...kept];
    const push = (fs) => { const g = fs.grant(); if (g) out.push(g); };
    if (wildcard) push(wildcard);
    else if (byRes.has('device:*')) out.push({ resource: 'device:*', rights: byRes.get('device:*') });
    devices.forEach(push);
    projects.forEach(push);
    return out;
  };
  return el;
}

// devicesIn lists the device ids named in grants (not device:*).
export function devicesIn(...grantLists) {
  const s = new Set();
  for (const gs of grantLists) {
    for (const g of gs || []) {
      if (g.resource.startsWith('device:') && g.resource !== 'device:*') s.add(g.resource.slice(7));
    }
  }
  return [...s].sort();
}

// teamsPicker is a fieldset of checkboxes, one per team; a team that
// mayAdd refuses is offered only when selected already (to leave it).
export function teamsPicker(teams, selected = [], legend = t('teams.pick_legend'), { disabled = false, mayAdd = () => true } = {}) {
  const boxes = [];
  const list = h('div', { class: 'checks' });
  for (const tm of teams) {
    if (!selected.includes(tm.id) && !mayAdd(tm)) continue;
    const row = checkbox(tm.name, { value: tm.id, checked: selected.includes(tm.id), disabled });
    boxes.push(row.querySelector('input'));
    list.append(row);
  }
  if (teams.length === 0) list.append(h('p', { class: 'muted' }, t('teams.none')));
  const el = h('fieldset', { class: 'picker' }, h('legend', null, legend), list);
  el.values = () => boxes.filter((b) => b.checked).map((b) => b.value);
  return el;
}

// pager moves through a cursor list: it keeps the cursors of the pages
// before, so Previous works too.
export class Pager {
  constructor(onChange) {
    this.stack = [''];
    this.next = '';
    this.onChange = onChange;
  }
  get cursor() { return this.stack[this.stack.length - 1]; }
  reset() { this.stack = ['']; this.next = ''; }
  render() {
    const prev = h('button', { type: 'button', disabled: this.stack.length <= 1, onclick: () => { this.stack.pop(); this.onChange(); } }, t('common.previous'));
    const next = h('button', { type: 'button', disabled: !this.next, onclick: () => { this.stack.push(this.next); this.onChange(); } }, t('common.next'));
    return h('nav', { class: 'pager', 'aria-label': t('common.pages') }, prev,
      h('span', null, t('common.page', { n: this.stack.length })), next);
  }
}

// table makes a table with a caption (visually hidden when asked) and
// header cells.
export function table(caption, headers, rows, { hideCaption = true } = {}) {
  return h('div', { class: 'table-wrap' }, h('table', null,
    h('caption', { class: hideCaption ? 'visually-hidden' : '' }, caption),
    h('thead', null, h('tr', null, headers.map((x) => h('th', { scope: 'col' }, x)))),
    h('tbody', null, rows)));
}

// formValue reads a named control's trimmed value from a form.
export function formValue(form, name) {
  const el = form.elements.namedItem(name);
  return el ? String(el.value).trim() : '';
}
