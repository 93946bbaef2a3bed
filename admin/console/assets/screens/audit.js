// Administration → Audit log: every admin change (time, actor, action,
// target, what changed), filterable by action, actor, target and time.

import { h, replace } from '../dom.js';
import { api, path } from '../api.js';
import { t, has, timeEl, localToISO, timeZone } from '../i18n.js';
import { alertBox, errorText } from '../dialog.js';
import { field, input, select, table, Pager } from '../widgets.js';
import { CATALOG } from '../rights.js';
import { Names } from './names.js';

function actionLabel(a) { return has(`action.${a}`) ? t(`action.${a}`) : a; }

function changes(e) {
  const ch = e.changes || {};
  const keys = Object.keys(ch);
  if (!keys.length) return '';
  return h('details', null, h('summary', null, t('audit.fields', { fields: keys.join(', ') })),
    h('dl', { class: 'changes' }, keys.map((k) => [
      h('dt', null, k),
      h('dd', null, `${ch[k].old === undefined ? '—' : JSON.stringify(ch[k].old)} → ${ch[k].new === undefined ? '—' : JSON.stringify(ch[k].new)}`),
    ])));
}

export async function render(ctx) {
  const { main, caller: c, ws } = ctx;
  const names = new Names(c, ws);
  const action = select([{ value: '', label: t('common.all') }, ...CATALOG.audit_actions.map((a) => ({ value: a, label: actionLabel(a) }))], '', { name: 'action' });
  const actor = input({ name: 'actor', autocomplete: 'off' });
  const target = input({ name: 'target', autocomplete: 'off' });
  const since = input({ type: 'datetime-local', name: 'since' });
  const until = input({ type: 'datetime-local', name: 'until' });
  const box = alertBox();
  const body = h('div', { class: 'list-body' });
  const filter = {};
  const pager = new Pager(() => load());
  const form = h('form', { class: 'filters', novalidate: true, 'aria-label': t('audit.filter') },
    field(t('audit.action'), action), field(t('audit.actor'), actor), field(t('audit.target'), target, t('audit.target_hint')),
    field(t('messages.since'), since, t('messages.zone_hint', { zone: timeZone() })), field(t('messages.until'), until),
    h('div', { class: 'field' }, h('button', { type: 'submit' }, t('common.apply'))));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    box.show('');
    try {
      let actorId = '';
      if (actor.value.trim()) {
        actorId = actor.value.trim().includes(':') ? actor.value.trim() : await names.idOf(actor.value);
        if (actorId === null) {
          box.show(t('messages.no_such_user', { name: actor.value.trim() }));
          return;
        }
      }
      let targetId = target.value.trim();
      if (targetId && !/^[a-z]+_/.test(targetId)) {
        const id = await names.idOf(targetId);
        if (id) targetId = id;
      }
      Object.assign(filter, { action: action.value, actor: actorId, target: targetId, since: localToISO(since.value), until: localToISO(until.value) });
      pager.reset();
      await load();
    } catch (e) {
      box.show(errorText(e));
    }
  });

  async function load() {
    const page = await api('GET', path('workspaces', ws, 'audit'), { query: { ...filter, cursor: pager.cursor, limit: 50 } });
    pager.next = page.next_cursor || '';
    await names.resolve(page.items.flatMap((e) => [e.actor, ...e.target.split('/')]));
    const rows = page.items.map((e) => h('tr', null,
      h('td', null, timeEl(e.time)),
      h('td', null, e.actor === 'system:bootstrap' ? t('audit.bootstrap') : names.name(e.actor)),
      h('th', { scope: 'row' }, actionLabel(e.action)),
      h('td', null, e.target.split('/').map((x) => names.name(x)).join(' / ')),
      h('td', null, changes(e))));
    replace(body,
      rows.length ? table(t('audit.title'), [t('audit.time'), t('audit.actor'), t('audit.action'), t('audit.target'), t('audit.changes')], rows)
        : h('p', { class: 'empty' }, t('audit.none')),
      pager.render());
  }

  replace(main, h('div', { class: 'titlebar' }, h('h1', null, t('audit.title'))), form, box, body);
  await load();
}
