package authz

// Who may manage whom (SPEC §2). Every check here reads the actor's
// effective permissions; none touches the store.

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
// every permission r gives.
func roleWithin(actor *Principal, r Role) bool {
	rp, ok := rolePerms[r]
	return ok && actor.perms.coversSet(rp)
}

// authority is the kind of power an actor has over users of a workspace.
type authority int

const (
	authNone     authority = iota
	authRegister           // users.register: creates api_basic users, enables and disables them
	authBasic              // users.manage.basic: manages api_basic users
	authManage             // users.manage: manages users whose role is not above its own
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

// mayManage reports whether actor may change target (fields, role, status,
// deletion).
func mayManage(actor *Principal, target *User) bool {
	if !actor.InWorkspace(target.Workspace) {
		return false
	}
	switch authorityOf(actor) {
	case authManage:
		return roleWithin(actor, target.Role)
	case authBasic:
		return target.Role == RoleAPIBasic
	}
	return false
}

// mayRead reports whether actor may read target's profile.
func mayRead(actor *Principal, target *User) bool {
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
func mayManageKeys(actor *Principal, target *User) bool {
	if !mayManage(actor, target) {
		return false
	}
	return actor.HasPermission(PermKeysManage) || authorityOf(actor) == authBasic
}

// checkGrantable returns a 403 error unless the actor holds every permission
// and right it is about to give (only additions are checked, so an admin
// can edit a user who holds something the admin lacks without removing it).
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
			if !actor.HasRight(g.Resource, r) {
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
		return errf(ErrForbidden, "may not give role %s: it is above the caller's", r)
	}
	return nil
}

func forbidden(format string, args ...any) error { return errf(ErrForbidden, format, args...) }
