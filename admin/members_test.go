package admin

import (
	"net/http"
	"strings"
	"testing"

	"github.com/apiusers/apiusers/authz"
)

// TestBodyMembers: a body is read one way only. A member given twice or in
// another letter case than its field, and a text field holding a control
// or an invisible character, are 400s that change nothing.
func TestBodyMembers(t *testing.T) {
	e := newTestEnv(t, Options{})
	target := e.createUser("target", authz.RoleAPIUser)
	team := `{"name":"ops"}`
	var tm authz.Team
	e.ok(req{method: "POST", path: "/workspaces/ws/teams", key: e.root, body: team}, http.StatusCreated, &tm)
	users := "/workspaces/ws/users"
	self := users + "/" + target.ID
	deep := strings.Repeat(`{"a":`, 40) + "1" + strings.Repeat("}", 40)
	for _, c := range []struct {
		name, method, path, body, field string
	}{
		{"duplicate member", "POST", users, `{"username":"dup","kind":"api","role":"api_user","role":"admin"}`, "role"},
		{"duplicate member in a grant", "POST", users,
			`{"username":"dup2","kind":"api","role":"api_user","grants":[{"resource":"device:a","resource":"device:b","rights":["read"]}]}`, "grants[0].resource"},
		{"member in another case", "POST", users, `{"Username":"case","kind":"api","role":"api_user"}`, "Username"},
		{"member in another case, nested", "POST", users,
			`{"username":"case2","kind":"api","role":"api_user","grants":[{"Resource":"device:a","rights":["read"]}]}`, "grants[0].Resource"},
		{"both spellings", "POST", users, `{"username":"case3","kind":"api","role":"api_user","ROLE":"admin"}`, "ROLE"},
		{"duplicate in a patch", "PATCH", self, `{"organization":"a","organization":"b"}`, "organization"},
		{"case in a patch", "PATCH", self, `{"Role":"admin"}`, "Role"},
		{"case in /me", "PATCH", "/me", `{"Email":"x@example.com"}`, "Email"},
		{"case in a status change", "POST", self + "/status", `{"Status":"trash"}`, "Status"},
		{"case in a team", "PATCH", "/workspaces/ws/teams/" + tm.ID, `{"Name":"x"}`, "Name"},
		{"case in a key", "POST", self + "/keys", `{"Name":"k"}`, "Name"},
		{"case in a workspace", "POST", "/workspaces", `{"ID":"w2"}`, "ID"},
		{"nested too deep", "PATCH", self, `{"organization":` + deep + `}`, ""},
		{"NUL in a name", "POST", users, `{"username":"nul\u0000","kind":"api","role":"api_user"}`, "username"},
		{"bidi override in the organization", "PATCH", self, `{"organization":"evil\u202ecorp"}`, "organization"},
		{"escape in a private note", "PATCH", self, `{"private_note":"bell\u0007"}`, "private_note"},
		{"zero width in a team name", "POST", "/workspaces/ws/teams", `{"name":"o\u200bps"}`, "name"},
		{"control in a key name", "POST", self + "/keys", `{"name":"ci\u001b[31m"}`, "name"},
		{"control in a workspace name", "POST", "/workspaces", `{"id":"w3","name":"W\u0000"}`, "name"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := e.userCount()
			var u authz.User
			e.ok(req{method: "GET", path: self, key: e.root}, http.StatusOK, &u)
			w := e.do(req{method: c.method, path: c.path, key: e.root, body: c.body})
			p := problemOf(t, w, http.StatusBadRequest)
			if c.field != "" && p.Field != c.field {
				t.Errorf("field %q, want %q (%s)", p.Field, c.field, p.Detail)
			}
			if after := e.userCount(); after != before {
				t.Errorf("%d users before, %d after", before, after)
			}
			var again authz.User
			e.ok(req{method: "GET", path: self, key: e.root}, http.StatusOK, &again)
			if again.Version != u.Version {
				t.Errorf("the user changed: version %d -> %d", u.Version, again.Version)
			}
		})
	}
	// The same bodies, spelled right, are fine.
	e.ok(req{method: "POST", path: users, key: e.root,
		body: `{"username":"fine","kind":"api","role":"api_user","grants":[{"resource":"device:a","rights":["read"]}]}`}, http.StatusCreated, nil)
	e.ok(req{method: "PATCH", path: self, key: e.root, body: `{"private_note":"two\n\tlines"}`}, http.StatusOK, nil)
}
