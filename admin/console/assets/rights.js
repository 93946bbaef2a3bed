// What the caller may do, so that the console offers only the controls
// the caller may use: with a user, what the API lists in the user's
// "allowed" (Caller.may); what depends on no target (screens, the roles,
// permissions and rights a dialog offers to give), derived from GET /me
// (its role, its effective permissions and grants) with the rules of the
// admin API ("Who may manage whom"). The API still decides every request.

const res = await fetch(new URL('catalog.json', import.meta.url));
if (!res.ok) throw new Error(`loading catalog: ${res.status}`);

// CATALOG holds the built-in roles (as GET /me shows their permissions),
// the permissions offered as checkboxes, the ten project privileges, the
// device rights and the audit actions.
export const CATALOG = await res.json();

// ROLE_NAMES lists the roles, most powerful first.
export const ROLE_NAMES = Object.keys(CATALOG.roles);

// Caller is the signed-in identity in one workspace.
export class Caller {
  constructor(me) {
    this.me = me;
    this.user = me.user;
    this.id = me.user.id;
    this.workspace = me.user.workspace;
    this.role = me.user.role;
    this.account = me.account || null;
    this.perms = new Set(me.permissions || []);
    this.all = this.perms.has('*');
    this.except = new Set(me.except || []);
    this.grants = me.grants || [];
  }

  // has reports whether the caller holds permission p exactly.
  has(p) {
    if (this.perms.has(p)) return true;
    return this.all && !this.except.has(p);
  }

  // covers reports whether holding the caller's permissions is enough to
  // hold p (a permission covers its ".own" form).
  covers(p) {
    if (this.has(p)) return true;
    return p.endsWith('.own') && this.has(p.slice(0, -4));
  }

  // hasRight reports whether the caller holds right on resource, through
  // a grant on it or on "type:*", or a role with "*".
  hasRight(resource, right) {
    if (this.all) return true;
    const type = resource.split(':')[0];
    return this.grants.some((g) => (g.resource === resource || g.resource === `${type}:*`) && g.rights.includes(right));
  }

  // roleWithin reports whether role r is not above the caller's.
  roleWithin(r) {
    const d = CATALOG.roles[r];
    if (!d) return false;
    if (d.permissions.includes('*')) {
      if (!this.all) return false;
      for (const e of this.except) {
        if (!d.except.includes(e) && !this.has(e)) return false;
      }
    }
    return d.permissions.filter((p) => p !== '*').every((p) => this.covers(p));
  }

  // authority is the caller's power over users: manage, basic, register
  // or none.
  get authority() {
    if (this.has('users.manage')) return 'manage';
    if (this.has('users.manage.basic')) return 'basic';
    if (this.has('users.register')) return 'register';
    return 'none';
  }

  // grantableRoles are the roles the caller may give a user of kind.
  grantableRoles(kind) {
    const a = this.authority;
    return ROLE_NAMES.filter((r) => {
      const d = CATALOG.roles[r];
      if (d.api_only && kind !== 'api') return false;
      if (a === 'manage') return this.roleWithin(r);
      return (a === 'basic' || a === 'register') && r === 'api_basic';
    });
  }

  // mayGrantPermission reports whether the caller may give permission p.
  mayGrantPermission(p) {
    if (this.authority !== 'manage') {
      if (!CATALOG.roles.api_basic.permissions.includes(p)) return false;
    }
    return this.covers(p);
  }

  // mayGrantRight reports whether the caller may give right on resource.
  mayGrantRight(resource, right) {
    if (this.authority !== 'manage' && !this.all) return false;
    return this.hasRight(resource, right);
  }

  // mayGiveTeam reports whether the caller may add users to team tm (with
  // teams.manage, and a user the API says it may change the teams of):
  // it holds every permission and right the team gives.
  mayGiveTeam(tm) {
    const holds = (res, r) => this.hasRight(res, r) || (r.endsWith('.own') && this.hasRight(res, r.slice(0, -4)));
    return (tm.permissions || []).every((p) => this.covers(p))
      && (tm.grants || []).every((g) => g.rights.every((r) => holds(g.resource, r)));
  }

  // may reports whether the caller may do verb with user u, as the API
  // said in u.allowed: the server decides it, per user, with the checks
  // its operations make (who may manage whom reaches into the user's own
  // and its teams' rights, which the console cannot weigh). A user
  // without the list allows nothing.
  may(u, verb) { return !!u && Array.isArray(u.allowed) && u.allowed.includes(verb); }

  // mayCreateUsers reports whether the caller may add users at all.
  get mayCreateUsers() { return this.authority !== 'none'; }

  get mayReadUsers() { return this.has('users.read') || this.authority === 'basic'; }
  get mayReadTeams() { return this.has('users.read') || this.has('teams.manage'); }
  get mayManageTeams() { return this.has('teams.manage'); }
  get mayInvite() { return this.authority === 'manage'; }
  get mayReadAudit() { return this.has('audit.read'); }
  get mayReadAllMessages() { return this.has('messages.read'); }
  get mayReadMessages() { return this.has('messages.read') || this.has('messages.read.own'); }
  get mayManageWorkspaces() { return this.has('workspaces.manage'); }
}
