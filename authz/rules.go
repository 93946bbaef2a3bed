package authz

import "errors"

// Who may manage whom. Every check here reads the actor's
// effective permissions and the target's effective rights; none touches the
// store (subjectOf reads the target's teams inside the caller's
// transaction).
//
// The rule: an actor manages only users whose effective rights (role, own
// permissions and grants, and those of its teams) it holds itself, because
// managing a user includes minting, regenerating and revealing its keys,
// and a key acts with its user's rights. A superadmin's power over every
// workspace counts above anything workspace-scoped: only a superadmin
// gives, or touches a holder of, the superadmin role. Nobody changes its
// own role.

// rolePerms holds each role's compiled permission set.
var rolePerms = func() map[Role]*permSet {
	m := make(map[Role]*permSet, len(roles))
	for r := range roles {
		ps := newPermSet()
		ps.addRole(r)
		m[r] = &ps
	}
	return m
}()

// roleWithin reports whether role r is not above the actor: the actor holds
// every permission r gives, and a role acting in every workspace
// (superadmin) is within only an actor that acts in every workspace too,
// whatever workspace-scoped permissions (such as workspaces.manage) the
// actor holds.
func roleWithin(actor *Principal, r Role) bool {
	d, ok := roles[r]
	if !ok || (d.everywhere && !actor.Everywhere) {
		return false
	}
	return actor.perms.coversSet(rolePerms[r])
}

// authority is the kind of power an actor has over users of a workspace.
type authority int

const (
	authNone     authority = iota
	authRegister           // users.register: creates api_basic users, enables and disables them
	authBasic              // users.manage.basic: manages api_basic users
	authManage             // users.manage: manages users whose effective rights it holds
)

func authorityOf(actor *Principal) authority {
	switch {
	case actor.HasPermission(PermUsersManage):
		return authManage
	case actor.HasPermission(PermUsersManageBasic):
		return authBasic
	case actor.HasPermission(PermUsersRegister):
		return authRegister
	}
	return authNone
}

// subject is a user as the rules weigh it: its record, and the rights it
// holds beyond its role (its own permissions and grants, and those of its
// teams).
type subject struct {
	*User
	extra *Principal
}

// teamMemo keeps the teams one transaction has read, by id (nil: missing).
type teamMemo map[string]*Team

// mayManageID reports whether actor may manage user uid of workspace ws,
// read in tx; found is false when there is no such user (may is then
// false too). memo may be nil.
func mayManageID(tx Tx, actor *Principal, ws, uid string, memo teamMemo) (may, found bool, err error) {
	u, err := getUser(tx, ws, uid)
	if errors.Is(err, ErrNotFound) {
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	sj, err := subjectOf(tx, u, memo)
	if err != nil {
		return false, true, err
	}
	return mayManage(actor, sj), true, nil
}

// subjectOf returns u with its rights beyond its role, reading its teams in
// tx (missing teams give nothing). memo may be nil.
func subjectOf(tx Tx, u *User, memo teamMemo) (*subject, error) {
	extra := &Principal{access: &access{perms: newPermSet(), grants: map[string]rightSet{}, wild: map[string]rightSet{}}}
	extra.perms.add(u.Permissions)
	extra.addGrants(u.Grants)
	for _, tid := range u.Teams {
		t, seen := memo[tid]
		if !seen {
			switch tm, err := getTeamRecord(tx, u.Workspace, tid); {
			case err == nil:
				t = tm
			case !errors.Is(err, ErrNotFound):
				return nil, err
			}
			if memo != nil {
				memo[tid] = t
			}
		}
		if t != nil {
			extra.perms.add(t.Permissions)
			extra.addGrants(t.Grants)
		}
	}
	return &subject{User: u, extra: extra}, nil
}

// holdsExtra reports whether actor holds every permission and every right
// of every grant in extra (a permission or right covers its ".own" form).
func holdsExtra(actor, extra *Principal) bool {
	for p := range extra.perms.perms {
		if !actor.perms.covers(p) {
			return false
		}
	}
	for res, rs := range extra.grants {
		for r := range rs {
			if !actor.holdsRight(res, r) {
				return false
			}
		}
	}
	for typ, rs := range extra.wild {
		for r := range rs {
			if !actor.holdsRight(typ+":*", r) {
				return false
			}
		}
	}
	return true
}

// holdsRight is HasRight counting a right as covering its ".own" form.
func (p *Principal) holdsRight(resource, right string) bool {
	if p.HasRight(resource, right) {
		return true
	}
	base, ok := cutOwn(right)
	return ok && p.HasRight(resource, base)
}

// mayManage reports whether actor may change target (fields, role, status,
// deletion, keys): with users.manage, when the target's role is within the
// actor's and the actor holds everything the target holds beyond it; with
// users.manage.basic, when the target is an api_basic user (the role the
// table gives it to manage) and the actor holds everything the target holds
// beyond that role.
func mayManage(actor *Principal, target *subject) bool {
	if !actor.InWorkspace(target.Workspace) {
		return false
	}
	switch authorityOf(actor) {
	case authManage:
		return roleWithin(actor, target.Role) && holdsExtra(actor, target.extra)
	case authBasic:
		return target.Role == RoleAPIBasic && holdsExtra(actor, target.extra)
	}
	return false
}

// mayRead reports whether actor may read target's profile.
func mayRead(actor *Principal, target *subject) bool {
	if actor.UserID == target.ID {
		return true
	}
	if !actor.InWorkspace(target.Workspace) {
		return false
	}
	return actor.HasPermission(PermUsersRead) || mayManage(actor, target)
}

// mayManageKeys reports whether actor may list, create, regenerate and
// revoke target's keys.
func mayManageKeys(actor *Principal, target *subject) bool {
	if !mayManage(actor, target) {
		return false
	}
	return actor.HasPermission(PermKeysManage) || authorityOf(actor) == authBasic
}

// checkGrantable returns a 403 error unless the actor holds every permission
// and right it is about to give (only additions are checked: what the
// target held already, the actor holds too, or it could not manage it).
func checkGrantable(actor *Principal, auth authority, oldPerms, newPerms []string, oldGrants, newGrants []Grant) error {
	have := make(map[string]bool, len(oldPerms))
	for _, p := range oldPerms {
		have[p] = true
	}
	for _, p := range newPerms {
		if have[p] {
			continue
		}
		if auth != authManage && !rolePerms[RoleAPIBasic].covers(p) {
			return errf(ErrForbidden, "may not grant permission %q: beyond the api_basic role", p)
		}
		if !actor.perms.covers(p) {
			return errf(ErrForbidden, "may not grant permission %q: the caller does not hold it", p)
		}
	}
	had := make(map[string]map[string]bool, len(oldGrants))
	for _, g := range oldGrants {
		rs := make(map[string]bool, len(g.Rights))
		for _, r := range g.Rights {
			rs[r] = true
		}
		had[g.Resource] = rs
	}
	for _, g := range newGrants {
		for _, r := range g.Rights {
			if had[g.Resource][r] {
				continue
			}
			if auth != authManage && !actor.perms.all {
				return errf(ErrForbidden, "may not grant right %q on %s", r, g.Resource)
			}
			if !actor.holdsRight(g.Resource, r) {
				return errf(ErrForbidden, "may not grant right %q on %s: the caller does not hold it", r, g.Resource)
			}
		}
	}
	return nil
}

// checkRole validates role r for a user of kind k given by actor.
func checkRole(actor *Principal, auth authority, k Kind, r Role) error {
	d, ok := roles[r]
	if !ok {
		return fieldErr("role", "unknown role %q", r)
	}
	if d.apiOnly && k != KindAPI {
		return fieldErr("role", "role %s is only for users of kind api", r)
	}
	if auth != authManage && r != RoleAPIBasic {
		return errf(ErrForbidden, "may only give the api_basic role")
	}
	if !roleWithin(actor, r) && auth == authManage {
		if d.everywhere {
			return errf(ErrForbidden, "may not give role %s: only a superadmin gives it", r)
		}
		return errf(ErrForbidden, "may not give role %s: it is above the caller's", r)
	}
	return nil
}

func forbidden(format string, args ...any) error { return errf(ErrForbidden, format, args...) }
