// Usernames for user ids, read once per page view (messages and the audit
// log name users by id).

import { api, path } from '../api.js';

export class Names {
  constructor(c, ws) {
    this.c = c;
    this.ws = ws;
    this.map = new Map([[c.id, c.user.username]]);
  }

  // resolve reads the usernames of ids not known yet (those the caller may
  // not read stay ids).
  async resolve(ids) {
    const todo = [...new Set(ids)].filter((id) => id && id.startsWith('usr_') && !this.map.has(id));
    await Promise.all(todo.map(async (id) => {
      try {
        const u = await api('GET', path('workspaces', this.ws, 'users', id));
        this.map.set(id, u.username);
      } catch {
        this.map.set(id, id);
      }
    }));
  }

  name(id) { return this.map.get(id) || id; }

  // idOf finds the id of username (exact, case-insensitive), or '' .
  async idOf(username) {
    const q = username.trim();
    if (!q) return '';
    if (q.startsWith('usr_')) return q;
    const page = await api('GET', path('workspaces', this.ws, 'users'), { query: { q, limit: 50 } });
    const u = page.items.find((x) => x.username.toLowerCase() === q.toLowerCase());
    if (u) this.map.set(u.id, u.username);
    return u ? u.id : null;
  }
}
