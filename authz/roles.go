package authz

// Role is one of the built-in roles.
type Role string

// The built-in roles.
const (
	RoleSuperadmin      Role = "superadmin"
	RoleAdmin           Role = "admin"
	RoleEditor          Role = "editor"
	RoleOperator        Role = "operator"
	RoleViewer          Role = "viewer"
	RoleAPIUser         Role = "api_user"
	RoleAPIBasic        Role = "api_basic"
	RoleAPIRegistration Role = "api_registration"
	RoleAPIBusiness     Role = "api_business"
)

// Permissions the admin API checks.
const (
	PermUsersRead        = "users.read"
	PermUsersManage      = "users.manage"
	PermUsersManageBasic = "users.manage.basic"
	PermUsersRegister    = "users.register"
	PermKeysManage       = "keys.manage"
	PermKeysReveal       = "keys.reveal"
	PermTeamsManage      = "teams.manage"
	PermAuditRead        = "audit.read"
	PermMessagesRead     = "messages.read"
	PermWorkspacesManage = "workspaces.manage"
)

// OwnSuffix marks a permission that holds only on the caller's own data.
const OwnSuffix = ".own"

// roleDef is a role's permission set. all means "every permission of the
// workspace and every right on every resource in it", minus except.
type roleDef struct {
	all    bool
	except []string
	perms  []string
	// apiOnly roles may only be held by users of kind api.
	apiOnly bool
	// everywhere: the role acts in every workspace (superadmin).
	everywhere bool
}

var roles = map[Role]roleDef{
	RoleSuperadmin: {all: true, everywhere: true},
	RoleAdmin:      {all: true, except: []string{PermWorkspacesManage}},
	// Editors cannot manage users of any kind: the basic and registration
	// powers are left out too.
	RoleEditor: {all: true, except: []string{
		PermWorkspacesManage, PermUsersManage, PermUsersManageBasic, PermUsersRegister,
		PermKeysManage, PermKeysReveal, PermTeamsManage,
	}},
	RoleOperator:        {perms: []string{"flows.read", "flows.run", "schedules.read", "schedules.run", "stats.read"}},
	RoleViewer:          {perms: []string{"flows.read", "schedules.read", "stats.read"}},
	RoleAPIUser:         {apiOnly: true, perms: []string{"listeners.invoke", "messages.read.own"}},
	RoleAPIBasic:        {apiOnly: true, perms: []string{"events.read.own", "events.write.own", "events.delete.own", "processed.read.own", "messages.read.own"}},
	RoleAPIRegistration: {apiOnly: true, perms: []string{PermUsersRegister}},
	RoleAPIBusiness:     {apiOnly: true, perms: []string{"events.read", "events.write", "events.delete", "processed.read", PermUsersManageBasic}},
}

// RoleNames lists the built-in roles, most powerful first.
var RoleNames = []Role{
	RoleSuperadmin, RoleAdmin, RoleEditor, RoleOperator, RoleViewer,
	RoleAPIUser, RoleAPIBasic, RoleAPIRegistration, RoleAPIBusiness,
}

// ValidRole reports whether r is a built-in role.
func ValidRole(r Role) bool {
	_, ok := roles[r]
	return ok
}

// permSet is a compiled set of permissions: either an explicit set, or
// "everything but except" plus explicit additions.
type permSet struct {
	all    bool
	except map[string]struct{}
	perms  map[string]struct{}
}

func newPermSet() permSet {
	return permSet{perms: map[string]struct{}{}}
}

func (s *permSet) addRole(r Role) {
	d, ok := roles[r]
	if !ok {
		return
	}
	if d.all {
		if !s.all {
			s.all = true
			s.except = make(map[string]struct{}, len(d.except))
			for _, p := range d.except {
				s.except[p] = struct{}{}
			}
		} else {
			// Union of two "all but" sets: only what both except stays out.
			keep := make(map[string]struct{})
			for _, p := range d.except {
				if _, ok := s.except[p]; ok {
					keep[p] = struct{}{}
				}
			}
			s.except = keep
		}
	}
	for _, p := range d.perms {
		s.perms[p] = struct{}{}
	}
}

func (s *permSet) add(perms []string) {
	for _, p := range perms {
		s.perms[p] = struct{}{}
	}
}

// has reports whether the exact permission p is in the set.
func (s *permSet) has(p string) bool {
	if _, ok := s.perms[p]; ok {
		return true
	}
	if s.all {
		_, out := s.except[p]
		return !out
	}
	return false
}

// covers reports whether holding the set is enough to hold p, counting a
// permission as covering its ".own" form.
func (s *permSet) covers(p string) bool {
	if s.has(p) {
		return true
	}
	if base, ok := cutOwn(p); ok {
		return s.has(base)
	}
	return false
}

func cutOwn(p string) (string, bool) {
	if len(p) > len(OwnSuffix) && p[len(p)-len(OwnSuffix):] == OwnSuffix {
		return p[:len(p)-len(OwnSuffix)], true
	}
	return "", false
}

// coversSet reports whether s holds everything other holds.
func (s *permSet) coversSet(other *permSet) bool {
	if other.all {
		if !s.all {
			return false
		}
		for p := range s.except {
			if _, ok := other.except[p]; !ok && !s.has(p) {
				return false
			}
		}
	}
	for p := range other.perms {
		if !s.covers(p) {
			return false
		}
	}
	return true
}

// list returns the set as sorted strings ("*" first when all).
func (s *permSet) list() []string {
	out := make([]string, 0, len(s.perms)+1)
	if s.all {
		out = append(out, "*")
	}
	for p := range s.perms {
		out = append(out, p)
	}
	sortStrings(out)
	return out
}
