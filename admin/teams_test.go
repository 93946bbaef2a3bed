package admin

import (
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/apiusers/apiusers/authz"
)

// createTeam creates a team in ws as the superadmin.
func (e *testEnv) createTeam(body string) authz.Team {
	e.t.Helper()
	var tm authz.Team
	e.ok(req{method: "POST", path: "/workspaces/ws/teams", key: e.root, body: body}, http.StatusCreated, &tm)
	return tm
}

// permissionsOf returns the effective permissions GET /me shows to key.
func (e *testEnv) permissionsOf(key string) []string {
	e.t.Helper()
	var me authz.Me
	e.ok(req{method: "GET", path: "/me", key: key}, http.StatusOK, &me)
	return me.Permissions
}

func TestTeamLifecycle(t *testing.T) {
	e := newTestEnv(t, Options{})
	teams := "/workspaces/ws/teams"

	// Create: 201, Location, ETag of the version.
	var tm authz.Team
	w := e.ok(req{method: "POST", path: teams, key: e.root,
		body: `{"name":"Ops","permissions":["records.add"],"grants":[{"resource":"device:*","rights":["read"]}]}`}, http.StatusCreated, &tm)
	if tm.Name != "Ops" || tm.Workspace != "ws" || !slices.Equal(tm.Permissions, []string{"records.add"}) ||
		len(tm.Grants) != 1 || tm.Grants[0].Resource != "device:*" || tm.Members == nil || len(tm.Members) != 0 {
		t.Fatalf("created team %+v", tm)
	}
	self := resolve(t, teams, w.Header().Get("Location"))
	if self != teams+"/"+tm.ID {
		t.Fatalf("Location resolves to %s", self)
	}
	if got := w.Header().Get("ETag"); got != etag(tm.Version) {
		t.Errorf("ETag %q, version %d", got, tm.Version)
	}

	// Read at the Location.
	var got authz.Team
	w = e.ok(req{method: "GET", path: self, key: e.root}, http.StatusOK, &got)
	tag := w.Header().Get("ETag")
	if got.ID != tm.ID || tag != etag(got.Version) {
		t.Fatalf("GET %s: id %s, ETag %q, version %d", self, got.ID, tag, got.Version)
	}

	// A name is unique per workspace, case-insensitively.
	problemOf(t, e.do(req{method: "POST", path: teams, key: e.root, body: `{"name":"OPS"}`}), 409)
	problemOf(t, e.do(req{method: "POST", path: teams, key: e.root, body: `{"name":"x","members":["usr_1"]}`}), 400)
	p := problemOf(t, e.do(req{method: "POST", path: teams, key: e.root, body: `{"name":""}`}), 400)
	if p.Field != "name" {
		t.Errorf("empty name: field %q, want name", p.Field)
	}

	// An editor has no teams.manage.
	editor := e.createUser("ed", authz.RoleEditor)
	w = e.do(req{method: "POST", path: teams, key: editor.Key, body: `{"name":"editors"}`})
	problemOf(t, w, 403)
	if w.Header().Get("WWW-Authenticate") != ChallengeInsufficientScope {
		t.Errorf("403 without the insufficient_scope challenge")
	}
	problemOf(t, e.do(req{method: "PATCH", path: self, key: editor.Key, body: `{"name":"mine"}`}), 403)
	problemOf(t, e.do(req{method: "DELETE", path: self, key: editor.Key}), 403)

	// PATCH with the current ETag, then the old one is stale.
	var patched authz.Team
	w = e.ok(req{method: "PATCH", path: self, key: e.root, body: `{"name":"Operations"}`,
		header: http.Header{"If-Match": {tag}}}, http.StatusOK, &patched)
	if patched.Name != "Operations" || patched.Version == got.Version || w.Header().Get("ETag") != etag(patched.Version) ||
		!slices.Equal(patched.Permissions, tm.Permissions) {
		t.Fatalf("patched %+v, ETag %q", patched, w.Header().Get("ETag"))
	}
	p = problemOf(t, e.do(req{method: "PATCH", path: self, key: e.root, body: `{"name":"Stale"}`,
		header: http.Header{"If-Match": {tag}}}), 412)
	if p.Field != "" && p.Field != "If-Match" {
		t.Errorf("412 field %q", p.Field)
	}
	problemOf(t, e.do(req{method: "PATCH", path: self, key: e.root, body: `{"name":"Stale"}`,
		header: http.Header{"If-Match": {`"998", "999"`}}}), 412)
	problemOf(t, e.do(req{method: "PATCH", path: self, key: e.root, body: `{"members":[]}`}), 400)
	e.ok(req{method: "GET", path: self, key: e.root}, http.StatusOK, &got)
	if got.Name != "Operations" {
		t.Errorf("name %q after refused PATCHes", got.Name)
	}

	// Renaming onto another team's name is a conflict.
	other := e.createTeam(`{"name":"Support"}`)
	problemOf(t, e.do(req{method: "PATCH", path: self, key: e.root, body: `{"name":"support"}`}), 409)

	// List, in pages.
	e.createTeam(`{"name":"Sales"}`)
	seen := map[string]bool{}
	cursor, pages := "", 0
	for {
		path := teams + "?limit=2"
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		var l list[authz.Team]
		e.ok(req{method: "GET", path: path, key: e.root}, http.StatusOK, &l)
		pages++
		for _, x := range l.Items {
			if seen[x.ID] {
				t.Errorf("team %s listed twice", x.ID)
			}
			seen[x.ID] = true
		}
		if l.NextCursor == "" || pages > 3 {
			break
		}
		cursor = l.NextCursor
	}
	if pages != 2 || len(seen) != 3 || !seen[tm.ID] || !seen[other.ID] {
		t.Errorf("%d pages, teams %v", pages, seen)
	}
	problemOf(t, e.do(req{method: "GET", path: teams + "?limit=0", key: e.root}), 400)

	// Unknown teams are 404.
	for _, r := range []req{
		{method: "GET", path: teams + "/team_nothere", key: e.root},
		{method: "PATCH", path: teams + "/team_nothere", key: e.root, body: `{"name":"x"}`},
		{method: "DELETE", path: teams + "/team_nothere", key: e.root},
		{method: "PUT", path: teams + "/team_nothere/members/" + editor.ID, key: e.root},
	} {
		problemOf(t, e.do(r), 404)
	}

	// Delete: 204 without a body, then 404.
	w = e.ok(req{method: "DELETE", path: self, key: e.root}, http.StatusNoContent, nil)
	if w.Body.Len() != 0 {
		t.Errorf("204 with a body: %s", w.Body)
	}
	problemOf(t, e.do(req{method: "GET", path: self, key: e.root}), 404)
	problemOf(t, e.do(req{method: "DELETE", path: self, key: e.root}), 404)
	// The name is free again.
	e.createTeam(`{"name":"ops"}`)
}

func TestTeamMembership(t *testing.T) {
	e := newTestEnv(t, Options{})
	tm := e.createTeam(`{"name":"recorders","permissions":["records.add"]}`)
	member := e.createUser("mia", authz.RoleAPIUser)
	members := "/workspaces/ws/teams/" + tm.ID + "/members/"

	if slices.Contains(e.permissionsOf(member.Key), "records.add") {
		t.Fatal("records.add before joining the team")
	}

	// PUT without a body: 204, and the member holds the team's permission.
	w := e.ok(req{method: "PUT", path: members + member.ID, key: e.root}, http.StatusNoContent, nil)
	if w.Body.Len() != 0 {
		t.Errorf("204 with a body: %s", w.Body)
	}
	if perms := e.permissionsOf(member.Key); !slices.Contains(perms, "records.add") {
		t.Errorf("member's permissions %v lack the team's records.add", perms)
	}
	var got authz.Team
	e.ok(req{method: "GET", path: "/workspaces/ws/teams/" + tm.ID, key: e.root}, http.StatusOK, &got)
	if !slices.Equal(got.Members, []string{member.ID}) {
		t.Errorf("team members %v", got.Members)
	}
	var u authz.User
	e.ok(req{method: "GET", path: "/workspaces/ws/users/" + member.ID, key: e.root}, http.StatusOK, &u)
	if !slices.Equal(u.Teams, []string{tm.ID}) {
		t.Errorf("user teams %v", u.Teams)
	}
	// The member may read its own team.
	e.ok(req{method: "GET", path: "/workspaces/ws/teams/" + tm.ID, key: member.Key}, http.StatusOK, nil)

	// PUT again, with {}: still 204, still one membership.
	e.ok(req{method: "PUT", path: members + member.ID, key: e.root, body: `{}`}, http.StatusNoContent, nil)
	e.ok(req{method: "GET", path: "/workspaces/ws/teams/" + tm.ID, key: e.root}, http.StatusOK, &got)
	if len(got.Members) != 1 {
		t.Errorf("team members %v after a second PUT", got.Members)
	}

	// Changing the team changes the member's rights at once.
	e.ok(req{method: "PATCH", path: "/workspaces/ws/teams/" + tm.ID, key: e.root, body: `{"permissions":["records.edit"]}`}, http.StatusOK, nil)
	if perms := e.permissionsOf(member.Key); slices.Contains(perms, "records.add") || !slices.Contains(perms, "records.edit") {
		t.Errorf("after the team PATCH, member's permissions %v", perms)
	}

	// A body with a field, an unknown user, and an editor are refused.
	p := problemOf(t, e.do(req{method: "PUT", path: members + member.ID, key: e.root, body: `{"role":"admin"}`}), 400)
	if p.Field != "role" {
		t.Errorf("field %q, want role", p.Field)
	}
	problemOf(t, e.do(req{method: "PUT", path: members + "usr_nobody", key: e.root}), 404)
	editor := e.createUser("ed", authz.RoleEditor)
	problemOf(t, e.do(req{method: "PUT", path: members + editor.ID, key: editor.Key}), 403)
	problemOf(t, e.do(req{method: "DELETE", path: members + member.ID, key: editor.Key}), 403)
	w = e.do(req{method: "GET", path: members + member.ID, key: e.root})
	problemOf(t, w, 405)
	if got := w.Header().Get("Allow"); got != "PUT, DELETE" {
		t.Errorf("Allow %q", got)
	}

	// DELETE: 204, and the permission is gone; again: still 204.
	e.ok(req{method: "DELETE", path: members + member.ID, key: e.root}, http.StatusNoContent, nil)
	if perms := e.permissionsOf(member.Key); slices.Contains(perms, "records.edit") {
		t.Errorf("after leaving, member's permissions %v still hold records.edit", perms)
	}
	e.ok(req{method: "DELETE", path: members + member.ID, key: e.root}, http.StatusNoContent, nil)
	e.ok(req{method: "GET", path: "/workspaces/ws/teams/" + tm.ID, key: e.root}, http.StatusOK, &got)
	if len(got.Members) != 0 {
		t.Errorf("team members %v after DELETE", got.Members)
	}
	problemOf(t, e.do(req{method: "GET", path: "/workspaces/ws/teams/" + tm.ID, key: member.Key}), 403)

	// Deleting a team takes its rights from its members.
	e.ok(req{method: "PUT", path: members + member.ID, key: e.root}, http.StatusNoContent, nil)
	if perms := e.permissionsOf(member.Key); !slices.Contains(perms, "records.edit") {
		t.Fatalf("member's permissions %v lack records.edit", perms)
	}
	e.ok(req{method: "DELETE", path: "/workspaces/ws/teams/" + tm.ID, key: e.root}, http.StatusNoContent, nil)
	if perms := e.permissionsOf(member.Key); slices.Contains(perms, "records.edit") {
		t.Errorf("after the team was deleted, member's permissions %v", perms)
	}
	e.ok(req{method: "GET", path: "/workspaces/ws/users/" + member.ID, key: e.root}, http.StatusOK, &u)
	if len(u.Teams) != 0 {
		t.Errorf("user teams %v after the team was deleted", u.Teams)
	}
}
