package authz

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apiusers/apiusers/authz/ids"
)

// The stored forms of users and keys must give back exactly what was
// stored, and must still build the principal (BuildPrincipal decodes them
// as User and Key).

func TestStoredUserRoundTrip(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 123456789, time.UTC)
	full := User{
		ID: ids.New("usr_", now), Workspace: "acme", Username: "Billing-Service", Email: "b@example.com",
		Kind: KindAPI, Role: RoleOperator, Status: StatusInactive, Organization: "Acme", Language: "de-CH",
		Timezone: "Europe/Zurich", PrivateNote: "note", Permissions: []string{"devices.read"},
		Grants: []Grant{{Resource: "device:*", Rights: []string{"read"}}}, Teams: []string{"team_1"},
		CreatedAt: now, UpdatedAt: now.Add(36 * time.Hour), Version: 7,
	}
	bare := User{
		ID: ids.New("usr_", now), Workspace: "acme", Username: "u", Kind: KindMember, Role: RoleViewer,
		Status: StatusActive, Permissions: []string{}, Grants: []Grant{}, Teams: []string{},
		CreatedAt: now, UpdatedAt: now, Version: 1,
	}
	odd := bare
	odd.ID = "usr_imported-1"                                               // not an ids.New id: no time to start from
	odd.CreatedAt = now.Add(-400 * 24 * time.Hour)                          // far from the id's (absent) time
	odd.UpdatedAt = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Hour) // beyond nanoseconds
	odd.Version = 0
	zero := User{ID: "usr_0", Permissions: []string{}, Grants: []Grant{}, Teams: []string{}, Version: 1}
	for _, u := range []User{full, bare, odd, zero} {
		raw, err := encodeRecord(&u)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(raw), IDHead(u.ID)+WorkspaceHead(u.Workspace)) {
			t.Errorf("stored user does not start with its id and workspace: %s", raw)
		}
		var got User
		if err := decodeRecord(usersOf(u.Workspace), u.ID, raw, &got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, u) {
			t.Errorf("user %s stored as %s\n got %+v\nwant %+v", u.ID, raw, got, u)
		}
		if a, b := mustJSON(t, got), mustJSON(t, u); a != b {
			t.Errorf("API JSON changed:\n got %s\nwant %s", a, b)
		}
		p, err := BuildPrincipal(&PrincipalRecord{User: raw})
		if err != nil {
			t.Fatal(err)
		}
		if p.UserID != u.ID || p.Workspace != u.Workspace || p.Username != u.Username || p.Kind != u.Kind ||
			p.Role != u.Role || p.Status != u.Status || !reflect.DeepEqual(p.Teams, append([]string(nil), u.Teams...)) {
			t.Errorf("principal from stored user %s: %+v", raw, p)
		}
	}
	// A fresh user costs little.
	raw, _ := encodeRecord(&bare)
	if n := len(raw) - len(IDHead(bare.ID)+WorkspaceHead("acme")); n > 80 {
		t.Errorf("a fresh user takes %d bytes besides id and workspace: %s", n, raw)
	}
	// Grants and permissions reach the principal.
	raw, _ = encodeRecord(&full)
	p, err := BuildPrincipal(&PrincipalRecord{User: raw})
	if err != nil {
		t.Fatal(err)
	}
	if !p.HasPermission("devices.read") || !p.HasRight("device:42", "read") || p.HasRight("device:42", "write") {
		t.Errorf("principal from %s lacks the user's permission or grant", raw)
	}
}

func TestStoredKeyRoundTrip(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 987654321, time.UTC)
	later, end := now.Add(90*time.Minute).Truncate(time.Second), now.Add(24*time.Hour).Truncate(time.Second)
	keys := []Key{
		{ID: ids.New("key_", now), UserID: "usr_1", Workspace: "acme", Name: "default", CreatedAt: now, IssuedAt: now.Unix(), SigningKeyID: "sk_1"},
		{
			ID: ids.New("key_", now), UserID: "usr_1", Workspace: "acme", Name: "ci", CreatedAt: now, LastUsedAt: &later,
			ExpiresAt: &end, RevokesAt: &later, IssuedAt: now.Unix() - 5, SigningKeyID: "sk_2",
		},
		{ID: "key_x", UserID: "usr_1", Workspace: "acme", Name: "n", CreatedAt: now, IssuedAt: 0},
		{ID: "key_y", UserID: "usr_1", Workspace: "acme"},
	}
	for _, k := range keys {
		c := KeysCollection(k.Workspace, k.UserID)
		raw, err := encodeRecord(&k)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(raw), IDHead(k.ID)) {
			t.Errorf("stored key does not start with its id: %s", raw)
		}
		var got Key
		if err := decodeRecord(c, k.ID, raw, &got); err != nil {
			t.Fatal(err)
		}
		if a, b := mustJSON(t, got), mustJSON(t, k); a != b {
			t.Errorf("key stored as %s\n got %s\nwant %s", raw, a, b)
		}
		p, err := BuildPrincipal(&PrincipalRecord{User: []byte(`{"id":"usr_1"}`), Keys: [][]byte{raw}})
		if err != nil {
			t.Fatal(err)
		}
		for _, at := range []time.Time{now, later, end} {
			if p.KeyLive(k.ID, at) != k.Live(at) {
				t.Errorf("key %s stored as %s: live at %s is %v in the principal, %v in the key", k.ID, raw, at, p.KeyLive(k.ID, at), k.Live(at))
			}
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Teams keep the record contract too: their value starts with their id and
// workspace.
func TestStoredTeamHead(t *testing.T) {
	tm := Team{ID: ids.New("team_", time.Now()), Workspace: "acme", Name: "ops", Permissions: []string{}, Grants: []Grant{}, Members: []string{}}
	raw, err := encodeRecord(&tm)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(raw), IDHead(tm.ID)+WorkspaceHead(tm.Workspace)) {
		t.Errorf("stored team does not start with its id and workspace: %s", raw)
	}
}
