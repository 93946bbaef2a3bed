package authz

import (
	"encoding/json"
	"testing"
)

func principalOf(t *testing.T, u User, teams ...Team) *Principal {
	t.Helper()
	rec := &PrincipalRecord{}
	rec.User, _ = json.Marshal(u)
	for _, tm := range teams {
		b, _ := json.Marshal(tm)
		rec.Teams = append(rec.Teams, b)
	}
	p, err := BuildPrincipal(rec)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRolePermissionTable(t *testing.T) {
	cases := []struct {
		role Role
		has  []string
		not  []string
	}{
		{RoleSuperadmin, []string{"workspaces.manage", "users.manage", "anything.at.all"}, nil},
		{RoleAdmin, []string{"users.manage", "keys.reveal", "rules.manage"}, []string{"workspaces.manage"}},
		{RoleEditor, []string{"users.read", "records.add"}, []string{"workspaces.manage", "users.manage", "users.manage.basic", "users.register", "keys.manage", "keys.reveal", "teams.manage"}},
		{RoleOperator, []string{"flows.read", "flows.run", "schedules.read", "schedules.run", "stats.read"}, []string{"users.read", "rules.manage"}},
		{RoleViewer, []string{"flows.read", "schedules.read", "stats.read"}, []string{"flows.run"}},
		{RoleAPIUser, []string{"listeners.invoke", "messages.read.own"}, []string{"messages.read", "users.read"}},
		{RoleAPIBasic, []string{"events.read.own", "events.write.own", "events.delete.own", "processed.read.own", "messages.read.own"}, []string{"events.read"}},
		{RoleAPIRegistration, []string{"users.register"}, []string{"users.manage", "users.read"}},
		{RoleAPIBusiness, []string{"events.read", "events.write", "events.delete", "processed.read", "users.manage.basic"}, []string{"users.manage"}},
	}
	for _, c := range cases {
		p := principalOf(t, User{ID: "usr_1", Workspace: "w", Role: c.role, Status: StatusActive})
		for _, perm := range c.has {
			if !p.HasPermission(perm) {
				t.Errorf("%s lacks %s", c.role, perm)
			}
		}
		for _, perm := range c.not {
			if p.HasPermission(perm) {
				t.Errorf("%s holds %s", c.role, perm)
			}
		}
	}
}

func TestRoleWithin(t *testing.T) {
	admin := principalOf(t, User{ID: "usr_a", Workspace: "w", Role: RoleAdmin})
	super := principalOf(t, User{ID: "usr_s", Workspace: "w", Role: RoleSuperadmin})
	editor := principalOf(t, User{ID: "usr_e", Workspace: "w", Role: RoleEditor})
	for _, r := range RoleNames {
		if !roleWithin(super, r) {
			t.Errorf("superadmin cannot give %s", r)
		}
	}
	if roleWithin(admin, RoleSuperadmin) {
		t.Error("admin may give superadmin")
	}
	for _, r := range []Role{RoleAdmin, RoleEditor, RoleViewer, RoleAPIUser, RoleAPIBusiness, RoleAPIRegistration} {
		if !roleWithin(admin, r) {
			t.Errorf("admin cannot give %s", r)
		}
	}
	if roleWithin(editor, RoleAdmin) {
		t.Error("editor may give admin")
	}
	// workspaces.manage is workspace-scoped: holding it explicitly does not
	// make an admin a superadmin's equal.
	adminPlus := principalOf(t, User{ID: "usr_b", Workspace: "w", Role: RoleAdmin, Permissions: []string{"workspaces.manage"}})
	if roleWithin(adminPlus, RoleSuperadmin) {
		t.Error("admin with workspaces.manage may give superadmin")
	}
}

func TestPrincipalRightsAndOwner(t *testing.T) {
	u := User{ID: "usr_1", Username: "Alice", Workspace: "w", Role: RoleAPIBasic, Status: StatusActive,
		Grants: []Grant{{Resource: "device:d1", Rights: []string{"read"}}}}
	team := Team{ID: "team_1", Permissions: []string{"rules.manage"}, Grants: []Grant{{Resource: "device:*", Rights: []string{"control"}}}}
	p := principalOf(t, u)
	if !p.HasRight("device:d1", "read") || p.HasRight("device:d1", "control") || p.HasRight("device:d2", "read") {
		t.Fatal("specific grant wrong")
	}
	pt := principalOf(t, u, team)
	if !pt.HasRight("device:d2", "control") || !pt.HasRight("device:*", "control") || pt.HasRight("device:*", "read") {
		t.Fatal("team wildcard grant wrong")
	}
	if !pt.HasPermission("rules.manage") || p.HasPermission("rules.manage") {
		t.Fatal("team permission wrong")
	}
	if !p.AllowsOwned("events.write", "events.write.own", "alice") || !p.AllowsOwned("events.write", "events.write.own", "usr_1") {
		t.Fatal("own data refused")
	}
	if p.AllowsOwned("events.write", "events.write.own", "bob") || p.AllowsOwned("events.write", "events.write.own", "") {
		t.Fatal("other's data allowed")
	}
	admin := principalOf(t, User{ID: "usr_2", Workspace: "w", Role: RoleAdmin})
	if !admin.HasRight("project:p1", "records.erase") {
		t.Fatal("* role lacks a right")
	}
}
