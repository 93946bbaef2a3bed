package authz

import (
	"encoding/json"
	"reflect"
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
	id := string(appendAccessID(nil, &principalUser{Workspace: "acme", Role: RoleAPIUser, Grants: []Grant{{Resource: "device:only-e", Rights: []string{"read"}}}}, nil))
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

// The record scanner reads the records the stores hold as encoding/json
// does, or leaves them to it.
func TestRecordScanMatchesJSON(t *testing.T) {
	exp := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	users := []*User{
		{ID: "usr_1", Workspace: "acme", Username: "station", Kind: KindAPI, Role: RoleAPIUser, Status: StatusActive, CreatedAt: exp, UpdatedAt: exp, Version: 3},
		{ID: "usr_2", Workspace: "acme", Username: "Zoë", Kind: KindMember, Role: RoleAdmin, Status: StatusInactive, Email: "z@example.com", PrivateNote: "a \"quoted\"\nnote", Permissions: []string{"x.read"}, Teams: []string{"tm_1", "tm_2"}},
		{ID: "usr_3", Workspace: "acme", Username: "dev", Kind: KindAPI, Role: RoleAPIBasic, Status: StatusActive, Grants: []Grant{{Resource: "device:d1", Rights: []string{"read"}}}},
	}
	for _, u := range users {
		b, err := json.Marshal(newUserRecord(u))
		if err != nil {
			t.Fatal(err)
		}
		checkUserScan(t, b)
	}
	keys := []*Key{
		{ID: "key_1", Name: "ci", CreatedAt: exp},
		{ID: "key_2", Name: "ci \"2\"", CreatedAt: exp, LastUsedAt: &exp, ExpiresAt: &exp, RevokesAt: &exp, IssuedAt: 5, SigningKeyID: "sk_1"},
	}
	for _, k := range keys {
		b, err := json.Marshal(newKeyRecord(k))
		if err != nil {
			t.Fatal(err)
		}
		checkKeyScan(t, b)
	}
	// The usual records take the fast path.
	var u principalUser
	if b, _ := json.Marshal(newUserRecord(users[0])); !u.scan(b) {
		t.Errorf("%s: not read by the scanner", b)
	}
	var k principalKey
	if b, _ := json.Marshal(newKeyRecord(keys[1])); !k.scan(b) {
		t.Errorf("%s: not read by the scanner", b)
	}
}

func checkUserScan(t *testing.T, b []byte) {
	t.Helper()
	var fast, slow principalUser
	if !fast.scan(b) {
		return
	}
	if err := json.Unmarshal(b, &slow); err != nil {
		t.Fatalf("%q: scanned, but encoding/json says %v", b, err)
	}
	if slow.Grants != nil && len(slow.Grants) == 0 {
		slow.Grants = nil
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("%q: scanned %+v, encoding/json %+v", b, fast, slow)
	}
}

func checkKeyScan(t *testing.T, b []byte) {
	t.Helper()
	var fast, slow principalKey
	if !fast.scan(b) {
		return
	}
	if err := json.Unmarshal(b, &slow); err != nil {
		t.Fatalf("%q: scanned, but encoding/json says %v", b, err)
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("%q: scanned %+v, encoding/json %+v", b, fast, slow)
	}
}

func FuzzRecordScan(f *testing.F) {
	f.Add([]byte(`{"id":"usr_1","workspace":"acme","username":"s","kind":"api","role":"api_user","status":"active","teams":["tm_1"],"c":12,"v":2}`))
	f.Add([]byte(`{"id":"key_1","n":"ci","c":1,"l":2,"expires_at":"2030-01-02T03:04:05Z","i":5,"s":"sk_1"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkUserScan(t, b)
		checkKeyScan(t, b)
	})
}

func TestUserRecordTeams(t *testing.T) {
	for _, tc := range []struct {
		u    User
		want []string
	}{
		{User{ID: "usr_1", Workspace: "acme", Username: "a", Teams: []string{"tm_1", "tm_2"}}, []string{"tm_1", "tm_2"}},
		{User{ID: "usr_2", Workspace: "acme", Username: "b \"quoted\"", Grants: []Grant{{Resource: "device:d1", Rights: []string{"read"}}}, Teams: []string{"tm_3"}}, []string{"tm_3"}},
		{User{ID: "usr_3", Workspace: "acme", Username: "c"}, nil},
	} {
		b, err := json.Marshal(newUserRecord(&tc.u))
		if err != nil {
			t.Fatal(err)
		}
		got, err := UserRecordTeams(b)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: teams %v, %v; want %v", b, got, err, tc.want)
		}
	}
	if _, err := UserRecordTeams([]byte(`{"teams":`)); err == nil {
		t.Error("a broken record gives no error")
	}
}
