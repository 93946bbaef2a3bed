package audit_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/apiusers/apiusers/authz/audit"
	"github.com/apiusers/apiusers/authz/ids"
)

// FuzzDecode: the audit codec never panics on a stored record, and what
// it decodes encodes back to an entry that decodes the same.
func FuzzDecode(f *testing.F) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 555666777, time.UTC)
	id := ids.NewestFirst("aud_", now)
	for _, e := range []audit.Entry{
		{ID: id, Time: now, Workspace: "acme", Actor: "usr_1", Action: "user.create", Target: "usr_2", Changes: map[string]audit.Change{
			"id": audit.Changed(nil, "usr_2"), "workspace": audit.Changed(nil, "acme"), "username": audit.Changed(nil, "sam"),
		}},
		{ID: id, Time: now, Workspace: "acme", Actor: "a", Action: "custom", Target: "t", Changes: map[string]audit.Change{
			"weird": {Old: json.RawMessage(`{"a":[1,2]}`), New: json.RawMessage(`"x"`)},
		}},
		{ID: id, Time: time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), Workspace: "acme"},
	} {
		raw, err := audit.Encode(&e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0})
	f.Fuzz(func(t *testing.T, raw []byte) {
		var e audit.Entry
		if audit.Decode("acme", id, raw, &e) != nil {
			return
		}
		again, err := audit.Encode(&e)
		if err != nil {
			return // a decoded time that cannot be written again (out of range)
		}
		var e2 audit.Entry
		if err := audit.Decode("acme", id, again, &e2); err != nil {
			t.Fatalf("re-encoded entry %q does not decode: %v", again, err)
		}
		a, _ := json.Marshal(e)
		b, _ := json.Marshal(e2)
		if string(a) != string(b) {
			t.Fatalf("round trip:\n %s\n %s", a, b)
		}
	})
}
