package authz

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The stored forms of users, keys and audit entries must give back exactly
// what was stored, and the stored users and keys must still build the
// principal (BuildPrincipal decodes them as User and Key).

func TestStoredUserRoundTrip(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 123456789, time.UTC)
	full := User{
		ID: newID("usr_", now), Workspace: "acme", Username: "Billing-Service", Email: "b@example.com",
		Kind: KindAPI, Role: RoleOperator, Status: StatusInactive, Organization: "Acme", Language: "de-CH",
		Timezone: "Europe/Zurich", PrivateNote: "note", Permissions: []string{"devices.read"},
		Grants: []Grant{{Resource: "device:*", Rights: []string{"read"}}}, Teams: []string{"team_1"},
		CreatedAt: now, UpdatedAt: now.Add(36 * time.Hour), Version: 7,
	}
	bare := User{
		ID: newID("usr_", now), Workspace: "acme", Username: "u", Kind: KindMember, Role: RoleViewer,
		Status: StatusActive, Permissions: []string{}, Grants: []Grant{}, Teams: []string{},
		CreatedAt: now, UpdatedAt: now, Version: 1,
	}
	odd := bare
	odd.ID = "usr_imported-1"                                               // not a newID id: no time to start from
	odd.CreatedAt = now.Add(-400 * 24 * time.Hour)                          // far from the id's (absent) time
	odd.UpdatedAt = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Hour) // beyond nanoseconds
	odd.Version = 0
	zero := User{ID: "usr_0", Permissions: []string{}, Grants: []Grant{}, Teams: []string{}, Version: 1}
	for _, u := range []User{full, bare, odd, zero} {
		raw, err := encodeRecord(&u)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(raw), `{"id":`+jsonString(u.ID)+`,"workspace":`+jsonString(u.Workspace)) {
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
	if n := len(raw) - len(`{"id":"`+bare.ID+`","workspace":"acme"`); n > 80 {
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
		{ID: newID("key_", now), UserID: "usr_1", Workspace: "acme", Name: "default", CreatedAt: now, IssuedAt: now.Unix(), SigningKeyID: "sk_1"},
		{
			ID: newID("key_", now), UserID: "usr_1", Workspace: "acme", Name: "ci", CreatedAt: now, LastUsedAt: &later,
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

func TestStoredAuditRoundTrip(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 555666777, time.UTC)
	u := User{
		ID: newID("usr_", now), Workspace: "acme", Username: "svc", Kind: KindAPI, Role: RoleAPIUser, Status: StatusActive,
		Permissions: []string{}, Grants: []Grant{}, Teams: []string{}, CreatedAt: now, UpdatedAt: now, Version: 1,
	}
	created, err := diff(nil, &u)
	if err != nil {
		t.Fatal(err)
	}
	changed := u
	changed.Username, changed.Email, changed.Permissions = "svc2", "s@example.com", []string{"x.y"}
	updated, err := diff(&u, &changed)
	if err != nil {
		t.Fatal(err)
	}
	k := Key{ID: newID("key_", now), UserID: u.ID, Name: "default"}
	entries := []AuditEntry{
		{ID: newestFirstID("aud_", now), Time: now, Workspace: "acme", Actor: newID("usr_", now), Action: ActionUserCreate, Target: u.ID, Changes: created},
		{ID: newestFirstID("aud_", now), Time: now, Workspace: "acme", Actor: actorBootstrap, Action: ActionKeyCreate, Target: k.ID, Changes: keyChanges(&k)},
		{ID: newestFirstID("aud_", now), Time: now, Workspace: "acme", Actor: u.ID, Action: ActionUserUpdate, Target: u.ID, Changes: updated},
		{ID: newestFirstID("aud_", now), Time: now, Workspace: "acme", Actor: u.ID, Action: "custom.action", Target: "team_1/" + u.ID},
		{ID: newestFirstID("aud_", now), Time: now, Workspace: "acme", Actor: u.ID, Action: ActionUserDelete, Target: u.ID, Changes: map[string]FieldChange{}},
		{ID: "aud_x", Time: now.Add(-48 * time.Hour), Workspace: "acme", Actor: "a", Action: ActionKeyRevoke, Target: "key_1", Changes: map[string]FieldChange{
			"name":   change("k", nil),
			"weird":  {Old: json.RawMessage(`{"a": [1, 2]}`), New: json.RawMessage(`"usr_not-an-id"`)},
			"quoted": change(nil, `a"b`),
			"id":     change("key_1", "key_2"),
		}},
		{ID: "aud_y", Time: time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), Workspace: "acme", Actor: "", Action: "", Target: ""},
	}
	for _, e := range entries {
		raw, err := encodeRecord(&e)
		if err != nil {
			t.Fatal(err)
		}
		var got AuditEntry
		if err := decodeRecord(Collection{Workspace: "acme", Name: CollAudit}, e.ID, raw, &got); err != nil {
			t.Fatalf("%s stored as %q: %v", e.Action, raw, err)
		}
		if len(e.Changes) == 0 {
			e.Changes = nil // as the JSON form has it: "changes" is omitted when empty
		}
		if a, b := mustJSON(t, got), mustJSON(t, e); a != b {
			t.Errorf("audit entry stored as %q\n got %s\nwant %s", raw, a, b)
		}
		if !got.Time.Equal(e.Time) {
			t.Errorf("time %s came back as %s", e.Time, got.Time)
		}
		// Truncated records are rejected, not misread.
		for i := range len(raw) {
			var bad AuditEntry
			if err := decodeRecord(Collection{Workspace: "acme", Name: CollAudit}, e.ID, raw[:i], &bad); err == nil {
				t.Errorf("%s: a record cut to %d of %d bytes decoded", e.Action, i, len(raw))
			}
		}
	}
	// A user's creation, as the seed command makes it, stays small.
	raw, _ := encodeRecord(&entries[0])
	if len(raw) > 90 {
		t.Errorf("user.create takes %d bytes: %q", len(raw), raw)
	}
	// Entries stored as JSON still read.
	old, _ := json.Marshal(entries[1])
	var got AuditEntry
	if err := decodeRecord(Collection{Workspace: "acme", Name: CollAudit}, entries[1].ID, old, &got); err != nil || mustJSON(t, got) != string(old) {
		t.Errorf("JSON audit entry read back as %s, %v", mustJSON(t, got), err)
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
