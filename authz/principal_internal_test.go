package authz

import (
	"runtime"
	"testing"
	"time"
)

func buildTestPrincipal(t *testing.T, user string, teams ...string) *Principal {
	t.Helper()
	rec := &PrincipalRecord{User: []byte(user), Keys: [][]byte{[]byte(`{"id":"key_1"}`)}}
	for _, tm := range teams {
		rec.Teams = append(rec.Teams, []byte(tm))
	}
	p, err := BuildPrincipal(rec)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Principals of the same workspace, role, teams and rights share one
// access; any difference in what they may do gives each its own.
func TestPrincipalsShareTheirAccess(t *testing.T) {
	a := buildTestPrincipal(t, `{"id":"usr_a","workspace":"acme","username":"a","kind":"api","role":"api_user","status":"active","permissions":["x.read","y.read"]}`)
	b := buildTestPrincipal(t, `{"id":"usr_b","workspace":"acme","username":"b","kind":"api","role":"api_user","status":"active","permissions":["y.read","x.read","x.read"]}`)
	if a.access != b.access {
		t.Error("two users of one role with the same permissions do not share their access")
	}
	if !b.HasPermission("x.read") || !b.HasPermission("listeners.invoke") || b.HasPermission("z.read") {
		t.Errorf("shared access answers wrongly: %v", b.Permissions())
	}
	for name, user := range map[string]string{
		"another workspace":  `{"id":"usr_c","workspace":"beta","username":"c","kind":"api","role":"api_user","status":"active","permissions":["x.read","y.read"]}`,
		"another role":       `{"id":"usr_c","workspace":"acme","username":"c","kind":"api","role":"api_basic","status":"active","permissions":["x.read","y.read"]}`,
		"another permission": `{"id":"usr_c","workspace":"acme","username":"c","kind":"api","role":"api_user","status":"active","permissions":["x.read"]}`,
		"a grant":            `{"id":"usr_c","workspace":"acme","username":"c","kind":"api","role":"api_user","status":"active","permissions":["x.read","y.read"],"grants":[{"resource":"device:d1","rights":["read"]}]}`,
		"a team":             `{"id":"usr_c","workspace":"acme","username":"c","kind":"api","role":"api_user","status":"active","permissions":["x.read","y.read"],"teams":["tm_1"]}`,
	} {
		if c := buildTestPrincipal(t, user); c.access == a.access {
			t.Errorf("a user with %s shares the access of another", name)
		}
	}
	// Team members share, until the team's rights differ.
	user := `{"id":"usr_d","workspace":"acme","username":"d","kind":"api","role":"api_user","status":"active","teams":["tm_1"]}`
	d1 := buildTestPrincipal(t, user, `{"grants":[{"resource":"device:d1","rights":["read"]}]}`)
	d2 := buildTestPrincipal(t, user, `{"grants":[{"resource":"device:d1","rights":["read"]}]}`)
	d3 := buildTestPrincipal(t, user, `{"grants":[{"resource":"device:d1","rights":["read","write"]}]}`)
	if d1.access != d2.access || d1.access == d3.access {
		t.Errorf("team members: shared %v (want true), after the team changed %v (want false)", d1.access == d2.access, d1.access == d3.access)
	}
	if d1.HasRight("device:d1", "write") || !d3.HasRight("device:d1", "write") {
		t.Error("the team's grants are not those of its members' access")
	}
	if len(d1.Teams) != 1 || d1.Teams[0] != "tm_1" || a.Workspace != "acme" || a.Role != RoleAPIUser {
		t.Errorf("shared values: teams %v, workspace %v, role %v", d1.Teams, a.Workspace, a.Role)
	}
}

// An access no principal uses any more leaves the intern table.
func TestUnusedAccessIsDropped(t *testing.T) {
	user := `{"id":"usr_e","workspace":"acme","username":"e","kind":"api","role":"api_user","status":"active","grants":[{"resource":"device:only-e","rights":["read"]}]}`
	p := buildTestPrincipal(t, user)
	id := accessID(&principalUser{Workspace: "acme", Role: RoleAPIUser, Grants: []Grant{{Resource: "device:only-e", Rights: []string{"read"}}}}, nil)
	held := func() bool {
		accesses.Lock()
		defer accesses.Unlock()
		_, ok := accesses.m[id]
		return ok
	}
	if !held() {
		t.Fatal("the access is not interned")
	}
	runtime.KeepAlive(p)
	for range 50 {
		runtime.GC()
		if !held() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the access of a collected principal stays in the intern table")
}
