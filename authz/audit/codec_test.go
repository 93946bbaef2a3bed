package audit_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/audit"
	"github.com/apiusers/apiusers/authz/ids"
)

// An entry's stored form gives back exactly the entry, and rejects a
// record cut short rather than misread it.
func TestEncodeDecode(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 555666777, time.UTC)
	u := authz.User{
		ID: ids.New("usr_", now), Workspace: "acme", Username: "svc", Kind: authz.KindAPI, Role: authz.RoleAPIUser, Status: authz.StatusActive,
		Permissions: []string{}, Grants: []authz.Grant{}, Teams: []string{}, CreatedAt: now, UpdatedAt: now, Version: 1,
	}
	created, err := audit.Diff(nil, &u)
	if err != nil {
		t.Fatal(err)
	}
	changed := u
	changed.Username, changed.Email, changed.Permissions = "svc2", "s@example.com", []string{"x.y"}
	updated, err := audit.Diff(&u, &changed)
	if err != nil {
		t.Fatal(err)
	}
	k := authz.Key{ID: ids.New("key_", now), UserID: u.ID, Name: "default"}
	entries := []audit.Entry{
		{ID: ids.NewestFirst("aud_", now), Time: now, Workspace: "acme", Actor: ids.New("usr_", now), Action: "user.create", Target: u.ID, Changes: created},
		{ID: ids.NewestFirst("aud_", now), Time: now, Workspace: "acme", Actor: "system:bootstrap", Action: "key.create", Target: k.ID, Changes: map[string]audit.Change{
			"user_id": audit.Changed(nil, k.UserID), "name": audit.Changed(nil, k.Name),
		}},
		{ID: ids.NewestFirst("aud_", now), Time: now, Workspace: "acme", Actor: u.ID, Action: "user.update", Target: u.ID, Changes: updated},
		{ID: ids.NewestFirst("aud_", now), Time: now, Workspace: "acme", Actor: u.ID, Action: "custom.action", Target: "team_1/" + u.ID},
		{ID: ids.NewestFirst("aud_", now), Time: now, Workspace: "acme", Actor: u.ID, Action: "user.delete", Target: u.ID, Changes: map[string]audit.Change{}},
		{ID: "aud_x", Time: now.Add(-48 * time.Hour), Workspace: "acme", Actor: "a", Action: "key.revoke", Target: "key_1", Changes: map[string]audit.Change{
			"name":   audit.Changed("k", nil),
			"weird":  {Old: json.RawMessage(`{"a": [1, 2]}`), New: json.RawMessage(`"usr_not-an-id"`)},
			"quoted": audit.Changed(nil, `a"b`),
			"id":     audit.Changed("key_1", "key_2"),
		}},
		{ID: "aud_y", Time: time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), Workspace: "acme", Actor: "", Action: "", Target: ""},
	}
	for _, e := range entries {
		raw, err := audit.Encode(&e)
		if err != nil {
			t.Fatal(err)
		}
		var got audit.Entry
		if err := audit.Decode("acme", e.ID, raw, &got); err != nil {
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
			var bad audit.Entry
			if err := audit.Decode("acme", e.ID, raw[:i], &bad); err == nil {
				t.Errorf("%s: a record cut to %d of %d bytes decoded", e.Action, i, len(raw))
			}
		}
	}
	// A user's creation, as the seed command makes it, stays small.
	raw, _ := audit.Encode(&entries[0])
	if len(raw) > 90 {
		t.Errorf("user.create takes %d bytes: %q", len(raw), raw)
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
