package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/redisstore"
	"github.com/apiusers/apiusers/authz/redisstore/redistest"
)

// eachStore runs fn on the file store and on a real redis-server.
func eachStore(t *testing.T, fn func(t *testing.T, st authz.Store)) {
	t.Run("file", func(t *testing.T) { fn(t, openStore(t)) })
	t.Run("redis", func(t *testing.T) {
		srv := redistest.Start(t)
		st, err := redisstore.New(redisstore.Options{URL: srv.URL()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		fn(t, st)
	})
}

// allowedUser is a user as the users endpoints answer it.
type allowedUser struct {
	ID      string   `json:"id"`
	Status  string   `json:"status"`
	Allowed []string `json:"allowed"`
}

// verbTrial is one verb tried against a fresh target: setup runs as root
// before the caller reads the target; ok is the status of success.
type verbTrial struct {
	verb  string
	setup func(e *testEnv, target authz.CreatedUser)
	ok    int
}

// TestAllowedMatchesTheAPI checks "allowed" against the API itself: for
// callers of every kind of authority and targets within and beyond their
// rights (a permission, a team's permission, the superadmin role), each
// verb the target's answer lists succeeds when tried, and each it does
// not list is a 403; every verb is seen both ways.
func TestAllowedMatchesTheAPI(t *testing.T) {
	eachStore(t, func(t *testing.T, st authz.Store) {
		e := newTestEnvOn(t, st, Options{})
		mk := func(username string, body string) authz.CreatedUser {
			t.Helper()
			var u authz.CreatedUser
			e.ok(req{method: "POST", path: "/workspaces/ws/users", key: e.root,
				body: `{"username":"` + username + `","kind":"api","issue_key":true,` + body + `}`}, http.StatusCreated, &u)
			return u
		}
		var empty, wsTeam authz.Team
		e.ok(req{method: "POST", path: "/workspaces/ws/teams", key: e.root, body: `{"name":"empty"}`}, http.StatusCreated, &empty)
		e.ok(req{method: "POST", path: "/workspaces/ws/teams", key: e.root, body: `{"name":"ws-managers","permissions":["workspaces.manage"]}`}, http.StatusCreated, &wsTeam)

		callers := map[string]string{
			"root":  e.root,
			"admin": mk("c-admin", `"role":"admin"`).Key,
			// An operator given the powers to manage users and their keys,
			// but not to reveal keys.
			"manager":  mk("c-mgr", `"role":"operator","permissions":["users.manage","users.read","keys.manage","teams.manage"]`).Key,
			"business": mk("c-business", `"role":"api_business"`).Key,
			"editor":   mk("c-editor", `"role":"editor"`).Key,
		}
		n := 0
		targets := map[string]func() authz.CreatedUser{
			"api_user": func() authz.CreatedUser { n++; return mk(fmt.Sprint("t-user-", n), `"role":"api_user"`) },
			"api_basic": func() authz.CreatedUser {
				n++
				return mk(fmt.Sprint("t-basic-", n), `"role":"api_basic"`)
			},
			"operator": func() authz.CreatedUser { n++; return mk(fmt.Sprint("t-op-", n), `"role":"operator"`) },
			// Beyond the manager: a permission it lacks.
			"operator with rules.manage": func() authz.CreatedUser {
				n++
				return mk(fmt.Sprint("t-op-rules-", n), `"role":"operator","permissions":["rules.manage"]`)
			},
			// Beyond an admin: a team that gives workspaces.manage.
			"api_user in a workspaces.manage team": func() authz.CreatedUser {
				n++
				u := mk(fmt.Sprint("t-team-", n), `"role":"api_user"`)
				e.ok(req{method: "PUT", path: "/workspaces/ws/teams/" + wsTeam.ID + "/members/" + u.ID, key: e.root}, http.StatusNoContent, nil)
				return u
			},
			"superadmin": func() authz.CreatedUser { n++; return mk(fmt.Sprint("t-super-", n), `"role":"superadmin"`) },
			"api_basic in trash": func() authz.CreatedUser {
				n++
				u := mk(fmt.Sprint("t-trash-", n), `"role":"api_basic"`)
				e.ok(req{method: "POST", path: "/workspaces/ws/users/" + u.ID + "/status", key: e.root, body: `{"status":"trash"}`}, http.StatusOK, nil)
				return u
			},
		}

		users := func(u authz.CreatedUser, rest ...string) string {
			return strings.Join(append([]string{"/workspaces/ws/users/" + u.ID}, rest...), "/")
		}
		trials := []verbTrial{
			{verb: authz.AllowUpdate, ok: http.StatusOK},
			{verb: authz.AllowRole, ok: http.StatusOK},
			{verb: authz.AllowLimits, ok: http.StatusOK},
			{verb: authz.AllowTeams, ok: http.StatusNoContent},
			{verb: authz.AllowStatusActive, ok: http.StatusOK},
			{verb: authz.AllowStatusInactive, ok: http.StatusOK},
			{verb: authz.AllowStatusTrash, ok: http.StatusOK},
			{verb: authz.AllowDelete, ok: http.StatusNoContent, setup: func(e *testEnv, u authz.CreatedUser) {
				e.ok(req{method: "POST", path: users(u, "status"), key: e.root, body: `{"status":"trash"}`}, http.StatusOK, nil)
			}},
			{verb: authz.AllowPassword, ok: http.StatusNoContent},
			{verb: authz.AllowSessions, ok: http.StatusOK},
			{verb: authz.AllowKeys, ok: http.StatusOK},
			{verb: authz.AllowKeysCreate, ok: http.StatusCreated},
			{verb: authz.AllowKeysRegenerate, ok: http.StatusCreated},
			{verb: authz.AllowKeysRevoke, ok: http.StatusNoContent},
			{verb: authz.AllowKeysReveal, ok: http.StatusOK},
			{verb: authz.AllowKeysLimits, ok: http.StatusOK},
		}
		request := func(verb string, u authz.CreatedUser) req {
			limit := `{"rate_limit":{"requests":1000,"per":"1m"}}`
			switch verb {
			case authz.AllowUpdate:
				return req{method: "PATCH", path: users(u), body: `{"organization":"changed"}`}
			case authz.AllowRole:
				return req{method: "PATCH", path: users(u), body: `{"role":"viewer"}`}
			case authz.AllowLimits:
				return req{method: "PATCH", path: users(u), body: limit}
			case authz.AllowTeams:
				return req{method: "PUT", path: "/workspaces/ws/teams/" + empty.ID + "/members/" + u.ID}
			case authz.AllowStatusActive, authz.AllowStatusInactive, authz.AllowStatusTrash:
				return req{method: "POST", path: users(u, "status"), body: `{"status":"` + strings.TrimPrefix(verb, "status.") + `"}`}
			case authz.AllowDelete:
				return req{method: "DELETE", path: users(u)}
			case authz.AllowPassword:
				return req{method: "PUT", path: users(u, "password"), body: `{"password":"glacier orbit lantern 42 mosaic"}`}
			case authz.AllowSessions:
				return req{method: "GET", path: users(u, "sessions")}
			case authz.AllowKeys:
				return req{method: "GET", path: users(u, "keys")}
			case authz.AllowKeysCreate:
				return req{method: "POST", path: users(u, "keys"), body: `{"name":"second"}`}
			case authz.AllowKeysRegenerate:
				return req{method: "POST", path: users(u, "keys", u.KeyID, "regenerate"), body: `{}`}
			case authz.AllowKeysRevoke:
				return req{method: "DELETE", path: users(u, "keys", u.KeyID)}
			case authz.AllowKeysReveal:
				return req{method: "POST", path: users(u, "keys", u.KeyID, "reveal")}
			case authz.AllowKeysLimits:
				return req{method: "PATCH", path: users(u, "keys", u.KeyID), body: limit}
			}
			t.Fatalf("no request for verb %s", verb)
			return req{}
		}

		seen := map[string][2]int{} // verb -> [allowed, refused]
		// trial creates a target, reads what caller (nil: the target
		// itself) may do with it, and tries the verb.
		trial := func(t *testing.T, who string, key string, tname string, tr verbTrial) {
			t.Helper()
			target := targets[tname]()
			if tr.setup != nil {
				tr.setup(e, target)
			}
			if key == "" {
				key = target.Key
			}
			w := e.do(req{method: "GET", path: users(target), key: key})
			if w.Code != http.StatusOK {
				return // a user the caller may not read: nothing to offer
			}
			var got allowedUser
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || got.Allowed == nil {
				t.Fatalf("GET %s: %v; allowed %v in %s", users(target), err, got.Allowed, w.Body)
			}
			r := request(tr.verb, target)
			r.key = key
			w = e.do(r)
			allowed := slices.Contains(got.Allowed, tr.verb)
			s := seen[tr.verb]
			switch {
			case allowed && w.Code != tr.ok:
				t.Errorf("%s on %s (%s): %q is allowed, but %s %s answers %d %s", who, tname, got.Status, tr.verb, r.method, r.path, w.Code, w.Body)
			case !allowed && w.Code != http.StatusForbidden:
				t.Errorf("%s on %s (%s): %q is not allowed (allowed: %v), but %s %s answers %d %s", who, tname, got.Status, tr.verb, got.Allowed, r.method, r.path, w.Code, w.Body)
			case allowed:
				s[0]++
			default:
				s[1]++
			}
			seen[tr.verb] = s
		}
		for _, who := range []string{"root", "admin", "manager", "business", "editor", "itself"} {
			t.Run(who, func(t *testing.T) {
				for tname := range targets {
					if who == "itself" && (tname == "api_basic in trash" || tname == "superadmin") {
						continue // a user in trash cannot call; a superadmin itself is root's case
					}
					for _, tr := range trials {
						if who == "itself" && tr.verb == authz.AllowDelete {
							continue // in trash, it cannot call any more
						}
						trial(t, who, callers[who], tname, tr)
					}
				}
			})
		}
		tried := []string{authz.AllowInvitation, authz.AllowPasswordReset} // a member's: TestAllowedForMembers
		for _, tr := range trials {
			tried = append(tried, tr.verb)
		}
		for _, v := range authz.AllowedVerbs() {
			if !slices.Contains(tried, v) {
				t.Errorf("verb %s is not tried", v)
			}
		}
		for _, tr := range trials {
			if s := seen[tr.verb]; s[0] == 0 || s[1] == 0 {
				t.Errorf("verb %s: allowed %d times, refused %d times: the trials must see both", tr.verb, s[0], s[1])
			}
		}

		// A registering caller reads no user, but the user it creates
		// comes with what it may do: enable and disable it.
		reg := mk("c-reg", `"role":"api_registration"`).Key
		var made allowedUser
		e.ok(req{method: "POST", path: "/workspaces/ws/users", key: reg,
			body: `{"username":"self-registered","kind":"api","role":"api_basic","issue_key":true}`}, http.StatusCreated, &made)
		if !slices.Equal(made.Allowed, []string{authz.AllowStatusActive, authz.AllowStatusInactive}) {
			t.Errorf("a registering caller's new user allows %v", made.Allowed)
		}
		e.ok(req{method: "POST", path: "/workspaces/ws/users/" + made.ID + "/status", key: reg, body: `{"status":"inactive"}`}, http.StatusOK, &made)
		if !slices.Equal(made.Allowed, []string{authz.AllowStatusActive, authz.AllowStatusInactive}) {
			t.Errorf("after disabling it: %v", made.Allowed)
		}
		problemOf(t, e.do(req{method: "POST", path: "/workspaces/ws/users/" + made.ID + "/status", key: reg, body: `{"status":"trash"}`}), http.StatusForbidden)
		e.ok(req{method: "POST", path: "/workspaces/ws/users/" + made.ID + "/status", key: e.root, body: `{"status":"trash"}`}, http.StatusOK, nil)
		problemOf(t, e.do(req{method: "POST", path: "/workspaces/ws/users/" + made.ID + "/status", key: reg, body: `{"status":"active"}`}), http.StatusForbidden)

		// Lists carry it too, per user, for every caller that may list.
		listsAllowedAsOne(t, e, callers)
	})
}

// listsAllowedAsOne checks, for each caller that may list the users of
// ws, that the list's "allowed" of every user is its own answer's (the
// list works it out from what it read, a user's answer reads it afresh).
func listsAllowedAsOne(t *testing.T, e *testEnv, callers map[string]string) {
	t.Helper()
	listed := 0
	for name, key := range callers {
		w := e.do(req{method: "GET", path: "/workspaces/ws/users?limit=500", key: key})
		if w.Code != http.StatusOK {
			continue
		}
		var l list[allowedUser]
		if err := json.Unmarshal(w.Body.Bytes(), &l); err != nil {
			t.Fatalf("%s's list: %v", name, err)
		}
		listed++
		for _, u := range l.Items {
			var one allowedUser
			e.ok(req{method: "GET", path: "/workspaces/ws/users/" + u.ID, key: key}, http.StatusOK, &one)
			if !slices.Equal(u.Allowed, one.Allowed) {
				t.Errorf("%s, user %s: the list allows %v, the user's own answer %v", name, u.ID, u.Allowed, one.Allowed)
			}
		}
	}
	if listed == 0 {
		t.Error("no caller could list the users")
	}
}

// TestAllowedForMembers checks the verbs of a person's membership: a new
// invitation while it is invited, a reset link and its sessions once it
// accepted, and that the latter two act on the person's account, so a
// workspace's admin is not offered them once the person is also a member
// of another workspace, while a superadmin is, and so is a person who is
// an admin of both.
func TestAllowedForMembers(t *testing.T) {
	eachStore(t, func(t *testing.T, st authz.Store) {
		e := newTestEnvOn(t, st, Options{Mount: func(*http.Request) string { return "/admin/" }})
		const pw = "glacier orbit lantern 42 mosaic"
		origin := http.Header{"Origin": {"http://example.com"}}
		mkKey := func(username, role string) string {
			var u authz.CreatedUser
			e.ok(req{method: "POST", path: "/workspaces/ws/users", key: e.root,
				body: `{"username":"` + username + `","kind":"api","role":"` + role + `","issue_key":true}`}, http.StatusCreated, &u)
			return u.Key
		}
		admin, editor := mkKey("admin", "admin"), mkKey("editor", "editor")
		type answer struct {
			allowedUser
			AcceptURL string `json:"accept_url"`
		}
		invite := func(ws, email, role string) answer {
			var a answer
			e.ok(req{method: "POST", path: "/workspaces/" + ws + "/invitations", key: e.root,
				body: `{"email":"` + email + `","role":"` + role + `"}`}, http.StatusCreated, &a)
			return a
		}
		// accept accepts an invitation, as the person signed in by cookie
		// when it has one, and returns the session cookie.
		accept := func(a answer, cookie string) string {
			t.Helper()
			token := strings.TrimPrefix(a.AcceptURL, "http://example.com/admin/accept?token=")
			body, _ := json.Marshal(map[string]string{"token": token, "password": pw})
			h := origin.Clone()
			if cookie != "" {
				h.Set("Cookie", SessionCookie+"="+cookie)
				body, _ = json.Marshal(map[string]string{"token": token})
			}
			w := e.ok(req{method: "POST", path: "/invitations/accept", body: string(body), header: h}, http.StatusOK, nil)
			for _, c := range w.Result().Cookies() {
				if c.Name == SessionCookie {
					return c.Value
				}
			}
			return cookie
		}
		// as is how one caller asks: a key, or a console session.
		type as struct {
			name, key, cookie string
		}
		call := func(who as, method, path, body string) *httptest.ResponseRecorder {
			h := origin.Clone()
			if who.cookie != "" {
				h.Set("Cookie", SessionCookie+"="+who.cookie)
			}
			return e.do(req{method: method, path: path, key: who.key, body: body, header: h})
		}
		allowedOf := func(who as, id string) []string {
			t.Helper()
			w := call(who, "GET", "/workspaces/ws/users/"+id, "")
			var u allowedUser
			if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &u) != nil || u.Allowed == nil {
				t.Fatalf("%s reading %s: %d %s", who.name, id, w.Code, w.Body)
			}
			return u.Allowed
		}
		// want checks that verb is allowed to who exactly when want says,
		// and that trying it then answers ok (else 403).
		want := func(who as, id, verb string, want bool, method, path string, ok int, body ...string) {
			t.Helper()
			got := allowedOf(who, id)
			if slices.Contains(got, verb) != want {
				t.Errorf("%s on %s: allowed %v, want %s there: %v", who.name, id, got, verb, want)
			}
			status := http.StatusForbidden
			if want {
				status = ok
			}
			if w := call(who, method, path, strings.Join(body, "")); w.Code != status {
				t.Errorf("%s on %s: %s %s answers %d, want %d: %s", who.name, id, method, path, w.Code, status, w.Body)
			}
		}
		root, adm, ed := as{"root", e.root, ""}, as{"admin", admin, ""}, as{"editor", editor, ""}

		pat := invite("ws", "pat@example.com", "viewer")
		if !slices.Contains(pat.Allowed, authz.AllowInvitation) || slices.Contains(pat.Allowed, authz.AllowPassword) {
			t.Errorf("the invitation's answer allows %v", pat.Allowed)
		}
		user := "/workspaces/ws/users/" + pat.ID
		want(adm, pat.ID, authz.AllowInvitation, true, "POST", user+"/invitation", http.StatusOK)
		want(ed, pat.ID, authz.AllowInvitation, false, "POST", user+"/invitation", 0)
		// Before it accepted, only a new invitation helps: no reset.
		if got := allowedOf(adm, pat.ID); slices.Contains(got, authz.AllowPasswordReset) {
			t.Errorf("an invited member allows a reset: %v", got)
		}
		problemOf(t, call(adm, "POST", user+"/password-reset", ""), http.StatusConflict)
		// The last link is the one that works.
		var again answer
		e.ok(req{method: "POST", path: user + "/invitation", key: e.root}, http.StatusOK, &again)
		patCookie := accept(again, "")
		patSelf := as{"pat", "", patCookie}

		want(adm, pat.ID, authz.AllowPasswordReset, true, "POST", user+"/password-reset", http.StatusAccepted)
		want(adm, pat.ID, authz.AllowSessions, true, "GET", user+"/sessions", http.StatusOK)
		want(ed, pat.ID, authz.AllowPasswordReset, false, "POST", user+"/password-reset", 0)
		want(ed, pat.ID, authz.AllowSessions, false, "GET", user+"/sessions", 0)
		want(patSelf, pat.ID, authz.AllowSessions, true, "GET", user+"/sessions", http.StatusOK)
		want(patSelf, pat.ID, authz.AllowPasswordReset, false, "POST", user+"/password-reset", 0)

		// Pat joins workspace beta too: its password and console sessions
		// act there as well, beyond the admin of ws.
		e.ok(req{method: "POST", path: "/workspaces", key: e.root, body: `{"id":"beta","name":"Beta"}`}, http.StatusCreated, nil)
		accept(invite("beta", "pat@example.com", "viewer"), patCookie)
		want(adm, pat.ID, authz.AllowPasswordReset, false, "POST", user+"/password-reset", 0)
		want(adm, pat.ID, authz.AllowSessions, false, "GET", user+"/sessions", 0)
		want(adm, pat.ID, authz.AllowUpdate, true, "PATCH", user, http.StatusOK, `{"organization":"Acme"}`)
		want(root, pat.ID, authz.AllowPasswordReset, true, "POST", user+"/password-reset", http.StatusAccepted)
		want(root, pat.ID, authz.AllowSessions, true, "GET", user+"/sessions", http.StatusOK)
		want(patSelf, pat.ID, authz.AllowSessions, true, "GET", user+"/sessions", http.StatusOK)

		// A person who is an admin of both workspaces manages both of pat's
		// memberships, so it is offered them.
		anaCookie := accept(invite("ws", "ana@example.com", "admin"), "")
		accept(invite("beta", "ana@example.com", "admin"), anaCookie)
		ana := as{"ana", "", anaCookie}
		want(ana, pat.ID, authz.AllowPasswordReset, true, "POST", user+"/password-reset", http.StatusAccepted)
		want(ana, pat.ID, authz.AllowSessions, true, "GET", user+"/sessions", http.StatusOK)

		// A list offers each caller what the user's own answer does (it
		// works the verbs out before it hides a membership's account).
		for _, who := range []as{root, adm, ed, patSelf, ana} {
			w := call(who, "GET", "/workspaces/ws/users?limit=500", "")
			var l list[allowedUser]
			if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &l) != nil {
				continue // who may not list
			}
			for _, u := range l.Items {
				if one := allowedOf(who, u.ID); !slices.Equal(u.Allowed, one) {
					t.Errorf("%s, user %s: the list allows %v, the user's own answer %v", who.name, u.ID, u.Allowed, one)
				}
			}
		}
	})
}

// TestAllowedDocumented: the OpenAPI document names every verb, in order.
func TestAllowedDocumented(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas struct {
				Allowed struct {
					Items struct {
						Enum []string `json:"enum"`
					} `json:"items"`
				} `json:"Allowed"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatal(err)
	}
	if got, want := doc.Components.Schemas.Allowed.Items.Enum, authz.AllowedVerbs(); !slices.Equal(got, want) {
		t.Errorf("openapi.json's verbs %q, want %q", got, want)
	}
}
