// The tab bar of Administration → Members: Members, API Users, Teams.

import { h } from '../dom.js';
import { t } from '../i18n.js';
import { href } from '../app.js';

export function tabBar(c, ws, active) {
  const tabs = [];
  if (c.mayReadUsers) tabs.push(['members', 'tabs.members'], ['users', 'tabs.api_users']);
  if (c.mayReadTeams) tabs.push(['teams', 'tabs.teams']);
  return h('nav', { class: 'tabs', 'aria-label': t('tabs.label') },
    h('ul', null, tabs.map(([id, key]) => h('li', null,
      h('a', { href: href(ws, id), 'aria-current': id === active ? 'page' : null }, t(key))))));
}
