package admin

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apiusers/apiusers/authz"
)

func TestAudit(t *testing.T) {
	e := newTestEnv(t, Options{})
	var me authz.Me
	e.ok(req{method: "GET", path: "/me", key: e.root}, http.StatusOK, &me)
	rootID := me.User.ID

	u := e.createUser("alice", authz.RoleAPIUser)
	tm := e.createTeam(`{"name":"ops","permissions":["records.add"]}`)
	members := "/workspaces/ws/teams/" + tm.ID + "/members/" + u.ID
	e.ok(req{method: "PUT", path: members, key: e.root}, http.StatusNoContent, nil)
	e.ok(req{method: "PATCH", path: "/workspaces/ws/teams/" + tm.ID, key: e.root, body: `{"name":"operations"}`}, http.StatusOK, nil)
	e.ok(req{method: "DELETE", path: members, key: e.root}, http.StatusNoContent, nil)
	e.ok(req{method: "POST", path: "/workspaces/ws/users/" + u.ID + "/status", key: e.root, body: `{"status":"inactive"}`}, http.StatusOK, nil)

	var l list[authz.AuditEntry]
	e.ok(req{method: "GET", path: "/workspaces/ws/audit", key: e.root}, http.StatusOK, &l)

	// Newest first: the changes above appear in reverse order, before
	// anything the bootstrap wrote.
	want := []string{"user.status", "team.member.remove", "team.update", "team.member.add", "team.create", "user.create"}
	var actions []string
	for i, a := range l.Items {
		actions = append(actions, a.Action)
		if i > 0 && a.Time.After(l.Items[i-1].Time) {
			t.Errorf("entry %d (%s) is newer than entry %d", i, a.Time, i-1)
		}
		if a.Workspace != "ws" {
			t.Errorf("entry %s in workspace %q", a.ID, a.Workspace)
		}
	}
	at := 0
	for _, a := range actions {
		if at < len(want) && a == want[at] {
			at++
		}
	}
	if at != len(want) || actions[0] != want[0] {
		t.Fatalf("actions %v; want %v in this order, newest first", actions, want)
	}

	byAction := map[string]authz.AuditEntry{}
	for _, a := range l.Items {
		if _, ok := byAction[a.Action]; !ok {
			byAction[a.Action] = a
		}
	}
	if a := byAction["team.member.add"]; a.Actor != rootID || a.Target != tm.ID+"/"+u.ID {
		t.Errorf("team.member.add by %q on %q", a.Actor, a.Target)
	}
	if a := byAction["team.create"]; a.Target != tm.ID || string(a.Changes["name"].New) != `"ops"` {
		t.Errorf("team.create on %q, changes %v", a.Target, a.Changes)
	}
	if c := byAction["team.update"].Changes["name"]; string(c.Old) != `"ops"` || string(c.New) != `"operations"` {
		t.Errorf("team.update name change %s -> %s", c.Old, c.New)
	}
	if a := byAction["user.create"]; a.Target != u.ID {
		t.Errorf("user.create on %q", a.Target)
	}
	// changes is an object of {old, new} on the wire.
	w := e.ok(req{method: "GET", path: "/workspaces/ws/audit?limit=3", key: e.root}, http.StatusOK, nil)
	var raw struct {
		Items []struct {
			Action  string                                `json:"action"`
			Changes map[string]map[string]json.RawMessage `json:"changes"`
		} `json:"items"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	for _, it := range raw.Items {
		for field, c := range it.Changes {
			for k := range c {
				if k != "old" && k != "new" {
					t.Errorf("%s: change of %s has key %q", it.Action, field, k)
				}
			}
		}
	}

	// Pages of 2 list the same entries in the same order.
	var paged []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > len(l.Items) {
			t.Fatal("too many pages")
		}
		path := "/workspaces/ws/audit?limit=2"
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		var p list[authz.AuditEntry]
		e.ok(req{method: "GET", path: path, key: e.root}, http.StatusOK, &p)
		for _, a := range p.Items {
			paged = append(paged, a.ID)
		}
		if p.NextCursor == "" {
			break
		}
		cursor = p.NextCursor
	}
	var ids []string
	for _, a := range l.Items {
		ids = append(ids, a.ID)
	}
	if !slices.Equal(paged, ids) {
		t.Errorf("paged ids %v, want %v", paged, ids)
	}

	// audit.read: a viewer and an api_user are refused; an admin is not.
	viewer := e.createUser("vic", authz.RoleViewer)
	w = e.do(req{method: "GET", path: "/workspaces/ws/audit", key: viewer.Key})
	problemOf(t, w, 403)
	if w.Header().Get("WWW-Authenticate") != ChallengeInsufficientScope {
		t.Errorf("403 without the insufficient_scope challenge")
	}
	caller := e.createUser("bob", authz.RoleAPIUser)
	problemOf(t, e.do(req{method: "GET", path: "/workspaces/ws/audit", key: caller.Key}), 403)
	admin := e.createUser("ada", authz.RoleAdmin)
	e.ok(req{method: "GET", path: "/workspaces/ws/audit", key: admin.Key}, http.StatusOK, nil)
	problemOf(t, e.do(req{method: "GET", path: "/workspaces/ws/audit?limit=501", key: e.root}), 400)
}

// TestAuditFilters narrows the audit log by action (exact and by prefix),
// actor, target (either side of a membership) and time, and pages through
// a filtered log.
func TestAuditFilters(t *testing.T) {
	e := newTestEnv(t, Options{})
	var me authz.Me
	e.ok(req{method: "GET", path: "/me", key: e.root}, http.StatusOK, &me)
	admin := e.createUser("ada", authz.RoleAdmin)
	var adaMe authz.Me
	e.ok(req{method: "GET", path: "/me", key: admin.Key}, http.StatusOK, &adaMe)
	u := e.createUser("alice", authz.RoleAPIUser)
	tm := e.createTeam(`{"name":"ops"}`)
	e.ok(req{method: "PUT", path: "/workspaces/ws/teams/" + tm.ID + "/members/" + u.ID, key: admin.Key}, http.StatusNoContent, nil)
	e.ok(req{method: "POST", path: "/workspaces/ws/users/" + u.ID + "/keys", key: admin.Key, body: `{"name":"k2"}`}, http.StatusCreated, nil)
	var all list[authz.AuditEntry]
	e.ok(req{method: "GET", path: "/workspaces/ws/audit?limit=500", key: e.root}, http.StatusOK, &all)

	query := func(q string) []authz.AuditEntry {
		t.Helper()
		var l list[authz.AuditEntry]
		e.ok(req{method: "GET", path: "/workspaces/ws/audit?" + q, key: e.root}, http.StatusOK, &l)
		return l.Items
	}
	want := func(q string, keep func(a authz.AuditEntry) bool) {
		t.Helper()
		var exp []string
		for _, a := range all.Items {
			if keep(a) {
				exp = append(exp, a.ID)
			}
		}
		var got []string
		for _, a := range query(q) {
			got = append(got, a.ID)
		}
		if len(exp) == 0 || !slices.Equal(got, exp) {
			t.Errorf("%s: %v, want %v", q, got, exp)
		}
	}
	want("action=key.create", func(a authz.AuditEntry) bool { return a.Action == "key.create" })
	want("action=team.", func(a authz.AuditEntry) bool { return a.Action == "team.create" || a.Action == "team.member.add" })
	want("actor="+adaMe.User.ID, func(a authz.AuditEntry) bool { return a.Actor == adaMe.User.ID })
	want("target="+u.ID, func(a authz.AuditEntry) bool { return a.Target == u.ID || a.Target == tm.ID+"/"+u.ID })
	want("actor="+url.QueryEscape("system:bootstrap"), func(a authz.AuditEntry) bool { return a.Actor == "system:bootstrap" })
	mid := all.Items[len(all.Items)/2].Time
	want("since="+url.QueryEscape(mid.Format(time.RFC3339Nano)), func(a authz.AuditEntry) bool { return !a.Time.Before(mid) })
	want("until="+url.QueryEscape(mid.Format(time.RFC3339Nano)), func(a authz.AuditEntry) bool { return a.Time.Before(mid) })
	if got := query("action=team"); len(got) != 0 {
		t.Errorf("action=team (no dot) matched %d entries", len(got))
	}

	// A filtered log pages like an unfiltered one.
	var paged []string
	cursor := ""
	for pages := 0; pages < 20; pages++ {
		var l list[authz.AuditEntry]
		e.ok(req{method: "GET", path: "/workspaces/ws/audit?limit=1&target=" + u.ID + "&cursor=" + url.QueryEscape(cursor), key: e.root}, http.StatusOK, &l)
		for _, a := range l.Items {
			paged = append(paged, a.Action)
		}
		if cursor = l.NextCursor; cursor == "" {
			break
		}
	}
	if !slices.Equal(paged, []string{"team.member.add", "user.create"}) {
		t.Errorf("paging target=alice: %v", paged)
	}

	for _, q := range []string{"since=yesterday", "until=2020-01-01T00:00:00Z&since=2021-01-01T00:00:00Z", "action=" + strings.Repeat("a", 129)} {
		problemOf(t, e.do(req{method: "GET", path: "/workspaces/ws/audit?" + q, key: e.root}), 400)
	}
}
