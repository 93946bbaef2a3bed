// Administration → Messages: the API messages of the workspace (time,
// user, method, path, status, duration, bytes, client IP), filterable by
// user and time. A caller with only messages.read.own (an api_user) sees
// its own, and no user filter.

import { h, replace } from '../dom.js';
import { api, path } from '../api.js';
import { t, timeEl, localToISO, timeZone } from '../i18n.js';
import { alertBox, errorText } from '../dialog.js';
import { field, input, table, Pager } from '../widgets.js';
import { Names } from './names.js';

export async function render(ctx) {
  const { main, caller: c, ws } = ctx;
  const names = new Names(c, ws);
  const all = c.mayReadAllMessages;
  const userIn = all && c.mayReadUsers ? input({ name: 'user', autocomplete: 'off' }) : null;
  const since = input({ type: 'datetime-local', name: 'since' });
  const until = input({ type: 'datetime-local', name: 'until' });
  const box = alertBox();
  const body = h('div', { class: 'list-body' });
  const filter = { user: '', since: '', until: '' };
  const pager = new Pager(() => load());

  const form = h('form', { class: 'filters', novalidate: true, 'aria-label': t('messages.filter') },
    userIn ? field(t('messages.user'), userIn) : null,
    field(t('messages.since'), since, t('messages.zone_hint', { zone: timeZone() })),
    field(t('messages.until'), until),
    h('div', { class: 'field' }, h('button', { type: 'submit' }, t('common.apply'))));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    box.show('');
    try {
      let uid = '';
      if (userIn && userIn.value.trim()) {
        uid = await names.idOf(userIn.value);
        if (uid === null) {
          box.show(t('messages.no_such_user', { name: userIn.value.trim() }));
          return;
        }
      }
      filter.user = uid;
      filter.since = localToISO(since.value);
      filter.until = localToISO(until.value);
      pager.reset();
      await load();
    } catch (e) {
      box.show(errorText(e));
    }
  });

  async function load() {
    const page = await api('GET', path('workspaces', ws, 'messages'), {
      query: { user: filter.user, since: filter.since, until: filter.until, cursor: pager.cursor, limit: 50 },
    });
    pager.next = page.next_cursor || '';
    if (all) await names.resolve(page.items.map((m) => m.user_id));
    const rows = page.items.map((m) => h('tr', null,
      h('td', null, timeEl(m.time)),
      h('td', null, names.name(m.user_id)),
      h('td', null, m.method),
      h('th', { scope: 'row', class: 'path' }, m.path),
      h('td', null, String(m.status)),
      h('td', { class: 'num' }, `${Math.round(m.duration_ms * 10) / 10} ms`),
      h('td', { class: 'num' }, `${m.bytes_in} / ${m.bytes_out}`),
      h('td', null, m.client_ip)));
    replace(body,
      rows.length ? table(t('messages.title'), [t('messages.time'), t('messages.user'), t('messages.method'), t('messages.path'), t('messages.status'), t('messages.duration'), t('messages.bytes'), t('messages.client_ip')], rows)
        : h('p', { class: 'empty' }, t('messages.none')),
      pager.render());
  }

  replace(main, h('div', { class: 'titlebar' }, h('h1', null, t('messages.title'))),
    all ? null : h('p', { class: 'notice' }, t('messages.own_only')),
    form, box, body);
  await load();
}
