// What the caller may do, derived from GET /me (its role, its effective
// permissions and grants) with the rules of the admin API (SPEC §2), so
// that the console offers only the controls the caller may use. The API
// still decides every request.

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
    this.everywhere = !!(CATALOG.roles[this.role] && CATALOG.roles[this.role].everywhere);
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

  // inWorkspace reports whether the caller acts in workspace ws.
  inWorkspace(ws) { return this.everywhere || this.workspace === ws; }

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

  // mayManage reports whether the caller may change user u (fields, role,
  // status, deletion).
  mayManage(u) {
    if (!this.inWorkspace(u.workspace)) return false;
    switch (this.authority) {
      case 'manage': return this.roleWithin(u.role);
      case 'basic': return u.role === 'api_basic';
      default: return false;
    }
  }

  // mayManageKeys reports whether the caller may list, create, regenerate
  // and revoke the keys of u.
  mayManageKeys(u) {
    if (u.id === this.id) return true; // everyone reads its own key metadata
    return this.mayManage(u) && (this.has('keys.manage') || this.authority === 'basic');
  }

  // mayCreateKeys reports whether the caller may create, regenerate and
  // revoke keys of u (reading one's own key metadata is not managing it).
  mayChangeKeys(u) {
    return this.mayManage(u) && (this.has('keys.manage') || this.authority === 'basic');
  }

  // mayReveal reports whether the caller may show u's existing keys again.
  mayReveal(u) { return this.mayChangeKeys(u) && this.has('keys.reveal'); }

  // maySetStatus reports whether the caller may move u to status s.
  maySetStatus(u, s) {
    if (this.mayManage(u)) return true;
    if (this.authority === 'register' && u.role === 'api_basic') {
      return s !== 'trash' && u.status !== 'trash';
    }
    return u.id === this.id && this.role === 'api_basic' && s === 'inactive';
  }

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
