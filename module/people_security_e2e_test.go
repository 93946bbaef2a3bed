package module

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiusers/apiusers/internal/apitest"
)

// The security review of the people work (accounts, invitations,
// passwords, sign-in, sessions), finding by finding, through the
// in-process Caddy on the file store and on Redis. No mailer: answers
// carry the links, as they do for an admin without mail.

const secPassword = "glacier orbit lantern 42 mosaic"

// px drives the admin API of one e2e Caddy as keys and people.
type px struct {
	*e2e
	t *testing.T
}

// req is one admin API call: as key (Bearer) or cookie (the console
// session), with an Origin when given.
type req struct {
	key, cookie, origin string
	header              http.Header
}

func (x px) do(r req, method, path string, body any) (*http.Response, []byte) {
	x.t.Helper()
	h := http.Header{}
	for k, v := range r.header {
		h[k] = v
	}
	if r.key != "" {
		h.Set("Authorization", "Bearer "+r.key)
	}
	if r.cookie != "" {
		h.Set("Cookie", "apiusers_session="+r.cookie)
	}
	if r.origin != "" {
		h.Set("Origin", r.origin)
	}
	s := x.Site
	s.Client = plainClient // no cookie jar: a request carries the cookie it is given, or none
	return s.Do(x.t, method, "/admin"+path, h, body)
}

var plainClient = &http.Client{Timeout: 30 * time.Second}

// want calls and wants status; it decodes a JSON answer into out when
// given, and returns the response and body.
func (x px) want(r req, method, path string, body any, status int, out any) (*http.Response, []byte) {
	x.t.Helper()
	res, b := x.do(r, method, path, body)
	if res.StatusCode != status {
		x.t.Fatalf("%s %s: %d %s, want %d", method, path, res.StatusCode, b, status)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			x.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return res, b
}

// invitedMember is the answer of an invitation.
type invitedMember struct {
	ID        string `json:"id"`
	Account   string `json:"account"`
	Email     string `json:"email"`
	Status    string `json:"status"`
	AcceptURL string `json:"accept_url"`
}

// invite invites email into ws with role as key and wants 201.
func (x px) invite(key, ws, email, role string) invitedMember {
	x.t.Helper()
	var m invitedMember
	x.want(req{key: key}, "POST", "/workspaces/"+ws+"/invitations", map[string]any{"email": email, "role": role}, http.StatusCreated, &m)
	if m.Status != "invited" || m.AcceptURL == "" {
		x.t.Fatalf("invited %s: %+v", email, m)
	}
	return m
}

// linkToken is the token query parameter of a link.
func linkToken(t *testing.T, link string) string {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil || u.Query().Get("token") == "" {
		t.Fatalf("link %q has no token", link)
	}
	return u.Query().Get("token")
}

// accept accepts m's link with a password (a new person) and returns the
// session cookie.
func (x px) accept(m invitedMember, pw string) string {
	x.t.Helper()
	res, _ := x.want(req{}, "POST", "/invitations/accept", map[string]any{"token": linkToken(x.t, m.AcceptURL), "password": pw}, http.StatusOK, nil)
	return cookieOf(x.t, res)
}

// login signs a person in and returns the session cookie.
func (x px) login(email, pw string) string {
	x.t.Helper()
	res, _ := x.want(req{}, "POST", "/login", map[string]string{"email": email, "password": pw}, http.StatusOK, nil)
	return cookieOf(x.t, res)
}

func cookieOf(t *testing.T, res *http.Response) string {
	t.Helper()
	for _, c := range res.Cookies() {
		if c.Name == "apiusers_session" && c.Value != "" {
			return c.Value
		}
	}
	t.Fatalf("no session cookie in %v", res.Header["Set-Cookie"])
	return ""
}

// TestE2EPeopleSecurity: the findings of the people review that need no
// mailer, each a subtest with people of its own, on both stores.
func TestE2EPeopleSecurity(t *testing.T) {
	// Caddy trusts the loopback as a proxy (X-Forwarded-Proto, finding 10h).
	site := e2eSite{rewrite: func(t *testing.T, cf string) string {
		return strings.Replace(cf, "\tpersist_config off\n", "\tpersist_config off\n\tservers {\n\t\ttrusted_proxies static private_ranges\n\t}\n", 1)
	}}
	forEachStore(t, site, func(t *testing.T, e *e2e) {
		e.MkWorkspace(t, "beta")
		for _, tc := range []struct {
			name string
			fn   func(x px)
		}{
			{"NoCrossWorkspaceTakeover", secNoTakeover},
			{"SignInInputBounded", secSignInBounds},
			{"MembershipChangeEndsOnlyItself", secMembershipSessions},
			{"ParallelWrongPasswordsThrottled", secParallelSignIns},
			{"TrivialPasswordsRefused", secTrivialPasswords},
			{"OneCanonicalIdentity", secOneIdentity},
			{"PasswordNeedsKeysManage", secPasswordNeedsKeys},
			{"ConsoleSessionsBounded", secConsoleSessions},
			{"InvitingRevealsNoAccount", secInviteNoDisclosure},
			{"AccountNameChecked", secAccountName},
			{"ResetRequestsBounded", secResetFlood},
		} {
			t.Run(tc.name, func(t *testing.T) { tc.fn(px{e2e: e, t: t}) })
		}
	})
}

// secNoTakeover (finding 1): bob, admin of beta only, invites alice (a
// superadmin person of acme) into beta, cannot make the invitation
// active through trash, cannot reset her password (her account is also
// acme's), and his link of her invitation sets no password; an account
// not set up yet cannot be claimed through such a link either.
func secNoTakeover(x px) {
	t := x.t
	bob := x.MkUser(t, x.Root, "beta", "bob", "admin", nil)
	alice := x.invite(x.Root, "acme", "alice@example.com", "superadmin")
	x.accept(alice, secPassword)

	inv := x.invite(bob.Key, "beta", "alice@example.com", "viewer")
	path := "/workspaces/beta/users/" + inv.ID
	x.want(req{key: bob.Key}, "POST", path+"/status", map[string]string{"status": "active"}, http.StatusConflict, nil)
	x.want(req{key: bob.Key}, "POST", path+"/status", map[string]string{"status": "trash"}, http.StatusOK, nil)
	x.want(req{key: bob.Key}, "POST", path+"/status", map[string]string{"status": "inactive"}, http.StatusConflict, nil)
	var back invitedMember
	x.want(req{key: bob.Key}, "POST", path+"/status", map[string]string{"status": "active"}, http.StatusOK, &back)
	if back.Status != "invited" {
		t.Fatalf("an invitation restored from trash is %q, want invited", back.Status)
	}
	res, body := x.do(req{key: bob.Key}, "POST", path+"/password-reset", nil)
	apitest.WantProblem(t, "resetting a membership never accepted", res, body, http.StatusConflict)
	res, body = x.do(req{}, "POST", "/invitations/accept", map[string]any{"token": linkToken(t, inv.AcceptURL), "password": "bob's own passphrase 123"})
	apitest.WantProblem(t, "bob accepts alice's invitation", res, body, http.StatusUnauthorized)

	// Alice accepts beta herself; still bob may not reset her password.
	cookie := x.login("alice@example.com", secPassword)
	x.want(req{cookie: cookie}, "POST", "/invitations/accept", map[string]any{"token": linkToken(t, inv.AcceptURL)}, http.StatusOK, nil)
	res, body = x.do(req{key: bob.Key}, "POST", path+"/password-reset", nil)
	p := apitest.WantProblem(t, "bob resets alice", res, body, http.StatusForbidden)
	if strings.Contains(string(body), "reset_url") || strings.Contains(p.Detail, "acme") {
		t.Fatalf("the refusal says too much: %s", body)
	}
	x.login("alice@example.com", secPassword)
	var reset struct {
		ResetURL string `json:"reset_url"`
	}
	x.want(req{key: x.Root}, "POST", "/workspaces/acme/users/"+alice.ID+"/password-reset", nil, http.StatusAccepted, &reset)
	if reset.ResetURL == "" {
		t.Fatal("a superadmin's reset without a mailer carries no reset_url")
	}

	// Carol has not set up her account (acme's invitation is pending):
	// bob's invitation of her into beta cannot claim it.
	carol := x.invite(x.Root, "acme", "carol@example.com", "viewer")
	claim := x.invite(bob.Key, "beta", "carol@example.com", "viewer")
	res, body = x.do(req{}, "POST", "/invitations/accept", map[string]any{"token": linkToken(t, claim.AcceptURL), "password": "bob's own passphrase 123"})
	apitest.WantProblem(t, "bob claims carol's account", res, body, http.StatusConflict)
	x.want(req{}, "POST", "/login", map[string]string{"email": "carol@example.com", "password": "bob's own passphrase 123"}, http.StatusUnauthorized, nil)
	x.accept(carol, secPassword)
}

// secSignInBounds (finding 2): POST /login and the other public POSTs
// take small bodies only, and sign-in fields beyond what an account can
// have are refused before any Unicode work, with the field named.
func secSignInBounds(x px) {
	t := x.t
	// 1 MiB of U+FDFA (NFKC makes 18 characters of each) as the email.
	huge := `{"email":"` + strings.Repeat("\uFDFA", 1<<20/6) + `@example.com","password":"x"}`
	res, body := x.do(req{}, "POST", "/login", huge)
	apitest.WantProblem(t, "a 1 MiB sign-in", res, body, http.StatusRequestEntityTooLarge)
	for _, path := range []string{"/invitations/accept", "/password-reset", "/password-reset/confirm"} {
		res, body := x.do(req{}, "POST", path, `{"token":"`+strings.Repeat("a", 9<<10)+`"}`)
		apitest.WantProblem(t, "a 9 KiB body to "+path, res, body, http.StatusRequestEntityTooLarge)
	}
	for _, c := range []struct {
		field string
		body  map[string]string
	}{
		{"email", map[string]string{"email": strings.Repeat("\uFDFA", 2000) + "@example.com", "password": "x"}},
		{"email", map[string]string{"email": strings.Repeat("a", 243) + "@example.com", "password": "x"}},
		{"password", map[string]string{"email": "ana@example.com", "password": strings.Repeat("x", 1025)}},
		{"username", map[string]string{"workspace": "acme", "username": strings.Repeat("\uFDFA", 86), "password": "x"}},
		{"workspace", map[string]string{"workspace": strings.Repeat("w", 64), "username": "device", "password": "x"}},
	} {
		b, _ := json.Marshal(c.body)
		raw := strings.ReplaceAll(string(b), `\\uFDFA`, `\uFDFA`)
		res, body := x.do(req{}, "POST", "/login", raw)
		if p := apitest.WantProblem(t, "sign-in with a long "+c.field, res, body, http.StatusBadRequest); p.Field != c.field {
			t.Errorf("sign-in with a long %s: the problem names %q", c.field, p.Field)
		}
	}
}

// sessionList is GET …/sessions.
type sessionList struct {
	Items []struct {
		ID      string `json:"id"`
		Kind    string `json:"kind"`
		Current bool   `json:"current"`
	} `json:"items"`
}

// secMembershipSessions (finding 5): changing or deleting one membership
// ends what it authorised, never the person's console sessions in its
// other workspaces; listing or ending a person's console sessions needs
// power over every membership of the account; a workspace where the
// person is only invited sees nothing of the account in its audit log.
func secMembershipSessions(x px) {
	t := x.t
	bob := x.MkUser(t, x.Root, "beta", "bob2", "admin", nil)
	dave := x.invite(x.Root, "acme", "dave@example.com", "admin")
	cookie := x.accept(dave, secPassword)
	acme := req{cookie: cookie, origin: x.Base}

	// Bob invites dave into beta, trashes and deletes the invitation:
	// dave's console session lives on.
	inv := x.invite(bob.Key, "beta", "dave@example.com", "viewer")
	path := "/workspaces/beta/users/" + inv.ID
	x.want(req{key: bob.Key}, "POST", path+"/status", map[string]string{"status": "trash"}, http.StatusOK, nil)
	x.want(acme, "GET", "/me?workspace=acme", nil, http.StatusOK, nil)
	x.want(req{key: bob.Key}, "DELETE", path, nil, http.StatusNoContent, nil)
	x.want(acme, "GET", "/me?workspace=acme", nil, http.StatusOK, nil)

	// Dave accepts a beta membership; bob deactivates it: beta is closed
	// to dave's session, acme is not.
	inv = x.invite(bob.Key, "beta", "dave@example.com", "viewer")
	x.want(acme, "POST", "/invitations/accept", map[string]string{"token": linkToken(t, inv.AcceptURL)}, http.StatusOK, nil)
	x.want(acme, "GET", "/workspaces/beta/users/"+inv.ID, nil, http.StatusOK, nil)
	x.want(req{key: bob.Key}, "POST", "/workspaces/beta/users/"+inv.ID+"/status", map[string]string{"status": "inactive"}, http.StatusOK, nil)
	x.want(acme, "GET", "/workspaces/beta/users/"+inv.ID, nil, http.StatusForbidden, nil)
	x.want(acme, "GET", "/workspaces/acme/users/"+dave.ID, nil, http.StatusOK, nil)
	x.want(req{key: bob.Key}, "POST", "/workspaces/beta/users/"+inv.ID+"/status", map[string]string{"status": "active"}, http.StatusOK, nil)

	// Bob may neither list nor end dave's console sessions (dave is acme's
	// admin too); root may, and so may dave himself.
	sessions := "/workspaces/beta/users/" + inv.ID + "/sessions"
	res, body := x.do(req{key: bob.Key}, "GET", sessions, nil)
	apitest.WantProblem(t, "bob lists dave's sessions", res, body, http.StatusForbidden)
	var mine, all sessionList
	x.want(acme, "GET", "/workspaces/acme/users/"+dave.ID+"/sessions", nil, http.StatusOK, &mine)
	x.want(req{key: x.Root}, "GET", sessions, nil, http.StatusOK, &all)
	if len(mine.Items) != 1 || !mine.Items[0].Current || len(all.Items) != 1 || all.Items[0].ID != mine.Items[0].ID {
		t.Fatalf("dave's sessions: his own view %+v, root's %+v", mine, all)
	}
	res, body = x.do(req{key: bob.Key}, "DELETE", sessions+"/"+all.Items[0].ID, nil)
	apitest.WantProblem(t, "bob ends dave's session", res, body, http.StatusForbidden)
	x.want(acme, "GET", "/me", nil, http.StatusOK, nil)
	x.want(req{key: x.Root}, "DELETE", sessions+"/"+all.Items[0].ID, nil, http.StatusNoContent, nil)
	x.want(acme, "GET", "/me", nil, http.StatusUnauthorized, nil)

	// Erin is only invited into beta: beta's audit log learns nothing of
	// her account (her sign-in, her name, her password), acme's does.
	erin := x.invite(x.Root, "acme", "erin@example.com", "viewer")
	x.invite(bob.Key, "beta", "erin@example.com", "viewer")
	ec := req{cookie: x.accept(erin, secPassword), origin: x.Base}
	x.want(ec, "PATCH", "/me", map[string]string{"name": "Erin E"}, http.StatusOK, nil)
	x.want(ec, "POST", "/me/password", map[string]string{"current_password": secPassword, "new_password": "saffron quarry 88 nebula drift"}, http.StatusNoContent, nil)
	ec.cookie = x.login("erin@example.com", "saffron quarry 88 nebula drift")
	x.want(ec, "POST", "/logout", nil, http.StatusNoContent, nil)
	actions := func(key, ws, target string) map[string]bool {
		var a struct {
			Items []struct {
				Action string `json:"action"`
				Target string `json:"target"`
			} `json:"items"`
		}
		x.want(req{key: key}, "GET", "/workspaces/"+ws+"/audit?limit=500", nil, http.StatusOK, &a)
		seen := map[string]bool{}
		for _, e := range a.Items {
			if e.Target == target {
				seen[e.Action] = true
			}
		}
		return seen
	}
	var erinBeta struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
	}
	x.want(req{key: x.Root}, "GET", "/workspaces/beta/users?q=erin@", nil, http.StatusOK, &erinBeta)
	if len(erinBeta.Items) != 1 {
		t.Fatalf("erin in beta: %+v", erinBeta)
	}
	inAcme, inBeta := actions(x.Root, "acme", erin.ID), actions(x.Root, "beta", erinBeta.Items[0].ID)
	for _, a := range []string{"session.sign_in", "session.sign_out", "account.update", "password.change"} {
		if !inAcme[a] {
			t.Errorf("acme's audit log lacks erin's %s: %v", a, inAcme)
		}
		if inBeta[a] {
			t.Errorf("beta's audit log, where erin is only invited, has her %s", a)
		}
	}
}

// secParallelSignIns (finding 6): 40 wrong passwords for one person sent
// at once get at most 5 answers of 401 (the identity's limit); the rest
// are 429 with Retry-After, none hashed; the right password then waits.
func secParallelSignIns(x px) {
	t := x.t
	fay := x.invite(x.Root, "acme", "fay@example.com", "viewer")
	x.accept(fay, secPassword)
	const n = 40
	codes := make(chan int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			b, _ := json.Marshal(map[string]string{"email": "fay@example.com", "password": "wrong guess number " + strconv.Itoa(i)})
			res, err := plainClient.Post(x.Base+"/admin/login", "application/json", bytes.NewReader(b))
			if err != nil {
				codes <- 0
				return
			}
			res.Body.Close()
			if res.StatusCode == http.StatusTooManyRequests && res.Header.Get("Retry-After") == "" {
				codes <- -1
				return
			}
			codes <- res.StatusCode
		}(i)
	}
	close(start)
	wg.Wait()
	close(codes)
	count := map[int]int{}
	for c := range codes {
		count[c]++
	}
	if count[http.StatusUnauthorized] > 5 || count[http.StatusUnauthorized]+count[http.StatusTooManyRequests] != n {
		t.Fatalf("%d wrong passwords at once: answers %v, want at most 5 of 401 and 429 (with Retry-After) for the rest", n, count)
	}
	x.want(req{}, "POST", "/login", map[string]string{"email": "fay@example.com", "password": secPassword}, http.StatusTooManyRequests, nil)
}

// secTrivialPasswords (finding 7): a person cannot set a password that is
// trivial in another script; a passphrase in any script is fine.
func secTrivialPasswords(x px) {
	t := x.t
	gus := x.invite(x.Root, "acme", "gus@example.com", "viewer")
	for _, pw := range []string{"аааааааааааа", "éééééééééééé", "ßßßßßßßßßßßß", strings.Repeat("日", 12),
		strings.Repeat("１", 12), "пароль123456", "парольпароль"} {
		res, body := x.do(req{}, "POST", "/invitations/accept", map[string]string{"token": linkToken(t, gus.AcceptURL), "password": pw})
		if p := apitest.WantProblem(t, "accepting with "+pw, res, body, http.StatusBadRequest); p.Field != "password" {
			t.Errorf("accepting with %q: the problem names %q", pw, p.Field)
		}
	}
	x.accept(gus, "Кот спит на крыше каждый день")
}

// secOneIdentity (finding 8): an API user signs in under any spelling of
// its name that the one canonical form takes for it, and failures under
// all of them count for one identity.
func secOneIdentity(x px) {
	t := x.t
	const pw = "copper meadow 19 lighthouse"
	x.want(req{key: x.Root}, "POST", "/workspaces/acme/users", map[string]any{"username": "\u13a0\u13f5-kiosk", "kind": "api", "role": "api_user", "password": pw}, http.StatusCreated, nil)
	x.want(req{}, "POST", "/login", map[string]string{"workspace": "acme", "username": "\uab70\u13fd-KIOSK", "password": pw}, http.StatusOK, nil)
	spellings := []string{"\u13a0\u13f5-kiosk", "\uab70\u13fd-kiosk", "\u13a0\u13fd-KIOSK"}
	for i := 0; i < 5; i++ {
		x.want(req{}, "POST", "/login", map[string]string{"workspace": "acme", "username": spellings[i%3], "password": "a wrong one " + strconv.Itoa(i)}, http.StatusUnauthorized, nil)
	}
	res, _ := x.want(req{}, "POST", "/login", map[string]string{"workspace": "acme", "username": spellings[2], "password": pw}, http.StatusTooManyRequests, nil)
	if res.Header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
}

// secPasswordNeedsKeys (finding 9): a password is a credential: a caller
// that manages users but not their keys can neither set one (PUT
// …/password) nor give one on create; with keys.manage it can.
func secPasswordNeedsKeys(x px) {
	t := x.t
	const pw = "copper meadow 19 lighthouse"
	helper := x.MkUser(t, x.Root, "acme", "user-helper", "editor", map[string]any{"permissions": []string{"users.manage"}})
	var dev struct {
		ID string `json:"id"`
	}
	x.want(req{key: helper.Key}, "POST", "/workspaces/acme/users", map[string]any{"username": "device-nine", "kind": "api", "role": "api_user"}, http.StatusCreated, &dev)
	res, body := x.do(req{key: helper.Key}, "PUT", "/workspaces/acme/users/"+dev.ID+"/password", map[string]string{"password": pw})
	apitest.WantProblem(t, "users.manage alone sets a password", res, body, http.StatusForbidden)
	res, body = x.do(req{key: helper.Key}, "POST", "/workspaces/acme/users", map[string]any{"username": "device-ten", "kind": "api", "role": "api_user", "password": pw})
	apitest.WantProblem(t, "users.manage alone creates a user with a password", res, body, http.StatusForbidden)
	x.want(req{}, "POST", "/login", map[string]string{"workspace": "acme", "username": "device-nine", "password": pw}, http.StatusUnauthorized, nil)

	keys := x.MkUser(t, x.Root, "acme", "key-helper", "editor", map[string]any{"permissions": []string{"users.manage", "keys.manage"}})
	x.want(req{key: keys.Key}, "PUT", "/workspaces/acme/users/"+dev.ID+"/password", map[string]string{"password": pw}, http.StatusNoContent, nil)
	x.want(req{}, "POST", "/login", map[string]string{"workspace": "acme", "username": "device-nine", "password": pw}, http.StatusOK, nil)
}

// secConsoleSessions (finding 10a, 10h): a person's console sessions are
// bounded (the oldest ends), signing in again ends the session the browser
// presented, and behind a trusted TLS-terminating proxy the cookie is
// Secure.
func secConsoleSessions(x px) {
	t := x.t
	hal := x.invite(x.Root, "acme", "hal@example.com", "viewer")
	first := x.accept(hal, secPassword)
	var cookies []string
	for i := 0; i < 10; i++ {
		cookies = append(cookies, x.login("hal@example.com", secPassword))
	}
	var list sessionList
	x.want(req{cookie: cookies[9]}, "GET", "/workspaces/acme/users/"+hal.ID+"/sessions", nil, http.StatusOK, &list)
	if len(list.Items) != 10 {
		t.Fatalf("after 11 sign-ins: %d console sessions, want 10", len(list.Items))
	}
	x.want(req{cookie: first}, "GET", "/me", nil, http.StatusUnauthorized, nil)
	x.want(req{cookie: cookies[0]}, "GET", "/me", nil, http.StatusOK, nil)

	// Signing in again with a cookie ends that session.
	res, _ := x.want(req{cookie: cookies[0], origin: x.Base}, "POST", "/login", map[string]string{"email": "hal@example.com", "password": secPassword}, http.StatusOK, nil)
	again := cookieOf(t, res)
	x.want(req{cookie: cookies[0]}, "GET", "/me", nil, http.StatusUnauthorized, nil)
	x.want(req{cookie: again}, "GET", "/me", nil, http.StatusOK, nil)
	for _, c := range res.Cookies() {
		if c.Name == "apiusers_session" && c.Secure {
			t.Fatal("a session cookie over plain HTTP is Secure")
		}
	}

	// Behind a trusted proxy that terminated TLS: Secure, and the
	// console's origin is the https one.
	res, _ = x.want(req{cookie: again, header: http.Header{"X-Forwarded-Proto": {"https"}}, origin: strings.Replace(x.Base, "http:", "https:", 1)},
		"POST", "/login", map[string]string{"email": "hal@example.com", "password": secPassword}, http.StatusOK, nil)
	secure := false
	for _, c := range res.Cookies() {
		secure = secure || (c.Name == "apiusers_session" && c.Secure)
	}
	if !secure {
		t.Fatalf("behind a TLS-terminating proxy the cookie is not Secure: %v", res.Header["Set-Cookie"])
	}
}

// secInviteNoDisclosure (finding 10c): inviting an address answers the
// same whether or not the person has an account elsewhere: the inviter's
// spelling, and no account id (only a superadmin sees those).
func secInviteNoDisclosure(x px) {
	t := x.t
	bob := x.MkUser(t, x.Root, "beta", "bob3", "admin", nil)
	ivy := x.invite(x.Root, "acme", "Ivy.Existing@Example.com", "viewer")
	x.accept(ivy, secPassword)
	if !strings.HasPrefix(ivy.Account, "acc_") {
		t.Fatalf("a superadmin's answer lacks the account: %+v", ivy)
	}
	for _, email := range []string{"ivy.existing@example.com", "nobody.yet@example.com"} {
		res, body := x.do(req{key: bob.Key}, "POST", "/workspaces/beta/invitations", map[string]string{"email": email, "role": "viewer"})
		var m map[string]any
		if res.StatusCode != http.StatusCreated || json.Unmarshal(body, &m) != nil {
			t.Fatalf("inviting %s: %d %s", email, res.StatusCode, body)
		}
		if _, ok := m["account"]; ok || m["email"] != email {
			t.Errorf("inviting %s tells: %s", email, body)
		}
		var got map[string]any
		x.want(req{key: bob.Key}, "GET", "/workspaces/beta/users/"+m["id"].(string), nil, http.StatusOK, &got)
		if _, ok := got["account"]; ok {
			t.Errorf("reading the membership of %s shows its account: %v", email, got)
		}
	}
}

// secAccountName (finding 10b): a person's name may hold no control or
// format character, neither set on accepting nor changed later.
func secAccountName(x px) {
	t := x.t
	jo := x.invite(x.Root, "acme", "jo@example.com", "viewer")
	for _, name := range []string{"Jo\u202egnirts", "J\u200bo"} {
		res, body := x.do(req{}, "POST", "/invitations/accept", `{"token":"`+linkToken(t, jo.AcceptURL)+`","name":"`+name+`","password":"`+secPassword+`"}`)
		if p := apitest.WantProblem(t, "accepting with name "+name, res, body, http.StatusBadRequest); p.Field != "name" {
			t.Errorf("accepting with name %s: the problem names %q", name, p.Field)
		}
	}
	c := req{cookie: x.accept(jo, secPassword), origin: x.Base}
	res, body := x.do(c, "PATCH", "/me", `{"name":"Jo\u2066x"}`)
	apitest.WantProblem(t, "renaming with an isolate", res, body, http.StatusBadRequest)
	x.want(c, "PATCH", "/me", map[string]string{"name": "Jo Ødegård"}, http.StatusOK, nil)
}

// secResetFlood (finding 10g): one client address may ask for 10
// self-service resets within 15 minutes, known emails or not; then 429.
func secResetFlood(x px) {
	t := x.t
	xff := http.Header{"X-Forwarded-For": {"2001:db8:77::1"}} // a client of its own, through the trusted proxy
	for i := 0; i < 10; i++ {
		x.want(req{header: xff}, "POST", "/password-reset", map[string]string{"email": "flood" + strconv.Itoa(i) + "@example.com"}, http.StatusAccepted, nil)
	}
	xff = http.Header{"X-Forwarded-For": {"2001:db8:77::2"}}
	res, body := x.do(req{header: xff}, "POST", "/password-reset", map[string]string{"email": "kim@example.com"})
	apitest.WantProblem(t, "the eleventh reset request", res, body, http.StatusTooManyRequests)
	if res.Header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
}
