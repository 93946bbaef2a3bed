package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/apiusers/apiusers/authz/redisstore/redistest"
	"github.com/apiusers/apiusers/internal/apitest"
	"github.com/apiusers/apiusers/mail/mailtest"
)

// waitFeed waits until n instances listen to the invalidation feed of the
// Redis at addr.
func waitFeed(t *testing.T, addr string, n int64) {
	t.Helper()
	rc := redis.NewClient(&redis.Options{Addr: addr})
	defer rc.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := rc.PubSubNumSub(t.Context(), "apiusers:invalidate").Result()
		if err == nil && got["apiusers:invalidate"] == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscribers of the invalidation feed: %v %v, want %d", got, err, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// People through real Caddy processes (the built binary) with
// an access log on: on the file store (one instance), and on one Redis
// shared by two instances, where the fleet cases run (a throttle that
// holds on the other instance, sessions that end there within 1 s).

const peoplePassword = "glacier orbit lantern 42 mosaic"

// peopleRoutes are one instance's routes: a protected route that answers
// with the placeholders.
const peopleRoutes = `
	handle /api/* {
		apiusers {
			require listeners.invoke
		}
		respond "hello {http.auth.user.username} {http.auth.user.id} {http.auth.user.key_id} {http.request.header.X-Api-Key-Id}" 200
	}
`

// peopleCaddyfile is one instance: the admin API, peopleRoutes, the access
// log into logFile; store holds the store's lines (and the mail option's).
func peopleCaddyfile(adminPort, sitePort int, store, logFile string) string {
	return apitest.Caddyfile{
		AdminPort: adminPort, SitePort: sitePort,
		Apiusers: []string{store, "cache_ttl 1h", "invite_ttl 20s"},
		Top:      "\tlog {\n\t\toutput file " + logFile + "\n\t\tformat json\n\t}",
		Routes:   peopleRoutes,
	}.String()
}

// peopleSite is one running instance and what the test saw through it.
type peopleSite struct {
	name, site string
	log        string        // the access log file
	proc       *apitest.Proc // the Caddy process, whose own log is checked too
}

// peopleRun drives the instances of one store and remembers every answer
// body, for the no-secrets check at the end.
type peopleRun struct {
	t       *testing.T
	sites   []*peopleSite
	root    string
	mu      sync.Mutex
	answers []string
	secrets []string         // passwords, tokens and cookies the test made or got
	smtp    *mailtest.Server // the mail option's server, when it is set
	setup   string           // the link bootstrap --email printed
}

// mailed takes the next mail from the SMTP server, checks it is for to,
// and returns the one link in it to page (accept, reset).
func (p *peopleRun) mailed(to, page string) string {
	p.t.Helper()
	m := p.smtp.Next(p.t)
	if len(m.To) != 1 || !strings.EqualFold(m.To[0], to) {
		p.t.Fatalf("mail to %v, want %s", m.To, to)
	}
	msg := m.Parse(p.t)
	for _, l := range msg.Links() {
		if strings.Contains(l, "/admin/"+page+"?token=") {
			if !strings.Contains(msg.Text, l) {
				p.t.Fatalf("the text part lacks the link of the HTML part")
			}
			return l
		}
	}
	p.t.Fatalf("mail %q has no %s link: %v", msg.Subject, page, msg.Links())
	return ""
}

// linkOf returns the link of an invitation or a reset: from the mail when
// a mailer is set (the answer then carries none), else from the answer.
func (p *peopleRun) linkOf(answered, to, page string) string {
	p.t.Helper()
	if p.smtp == nil {
		return answered
	}
	if answered != "" {
		p.t.Fatalf("with a mailer, the answer carries the %s link for %s: %q", page, to, answered)
	}
	return p.mailed(to, page)
}

type call struct {
	method, path string
	key          string // Bearer
	cookie       string // apiusers_session
	origin       string
	body         any
}

func (p *peopleRun) do(s *peopleSite, c call) (*http.Response, []byte) {
	p.t.Helper()
	var rd io.Reader
	if c.body != nil {
		b, err := json.Marshal(c.body)
		if err != nil {
			p.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(c.method, s.site+c.path, rd)
	if err != nil {
		p.t.Fatal(err)
	}
	if c.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	if c.cookie != "" {
		req.Header.Set("Cookie", "apiusers_session="+c.cookie)
	}
	if c.origin != "" {
		req.Header.Set("Origin", c.origin)
	}
	res, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		p.t.Fatalf("%s %s on %s: %v", c.method, c.path, s.name, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.answers = append(p.answers, c.method+" "+c.path+" -> "+string(b))
	p.mu.Unlock()
	return res, b
}

// want calls and wants status; it decodes the answer into out when given.
func (p *peopleRun) want(s *peopleSite, c call, status int, out any) *http.Response {
	p.t.Helper()
	res, b := p.do(s, c)
	if res.StatusCode != status {
		p.t.Fatalf("%s %s on %s: %d, want %d: %s", c.method, c.path, s.name, res.StatusCode, status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			p.t.Fatalf("%s %s: %v: %s", c.method, c.path, err, b)
		}
	}
	return res
}

func (p *peopleRun) secret(s ...string) {
	p.mu.Lock()
	p.secrets = append(p.secrets, s...)
	p.mu.Unlock()
}

// sessionOf returns the console cookie a response set, checking its
// attributes.
func (p *peopleRun) sessionOf(res *http.Response) string {
	p.t.Helper()
	for _, c := range res.Cookies() {
		if c.Name != "apiusers_session" {
			continue
		}
		if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/admin/" || c.Value == "" {
			p.t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, Path=/admin/", c)
		}
		p.secret(c.Value)
		return c.Value
	}
	p.t.Fatalf("no session cookie in %v", res.Header["Set-Cookie"])
	return ""
}

// tokenOf returns the token query parameter of a link the API answered.
func (p *peopleRun) tokenOf(link, page string) string {
	p.t.Helper()
	u, err := url.Parse(link)
	if err != nil || !strings.HasSuffix(u.Path, "/admin/"+page) || u.Query().Get("token") == "" {
		p.t.Fatalf("link %q: want …/admin/%s?token=…", link, page)
	}
	tok := u.Query().Get("token")
	p.secret(tok)
	return tok
}

type member struct {
	ID        string `json:"id"`
	Account   string `json:"account"`
	Status    string `json:"status"`
	AcceptURL string `json:"accept_url"`
}

type signedIn struct {
	Account struct {
		ID          string `json:"id"`
		Email       string `json:"email"`
		HasPassword bool   `json:"has_password"`
	} `json:"account"`
	Memberships []struct {
		Workspace string `json:"workspace"`
		UserID    string `json:"user_id"`
		Status    string `json:"status"`
	} `json:"memberships"`
}

// invite invites email into ws through s as root.
func (p *peopleRun) invite(s *peopleSite, ws, email, role string) member {
	p.t.Helper()
	var m member
	p.want(s, call{method: "POST", path: "/admin/workspaces/" + ws + "/invitations", key: p.root,
		body: map[string]any{"email": email, "role": role}}, http.StatusCreated, &m)
	m.AcceptURL = p.linkOf(m.AcceptURL, email, "accept")
	if m.Status != "invited" || !strings.HasPrefix(m.Account, "acc_") || m.AcceptURL == "" {
		p.p("invited membership", m)
	}
	return m
}

func (p *peopleRun) p(what string, v any) {
	p.t.Helper()
	p.t.Fatalf("%s: %+v", what, v)
}

// accept accepts an invitation with a password and returns the cookie.
func (p *peopleRun) accept(s *peopleSite, m member, pw string) string {
	p.t.Helper()
	res := p.want(s, call{method: "POST", path: "/admin/invitations/accept",
		body: map[string]any{"token": p.tokenOf(m.AcceptURL, "accept"), "name": "Test Person", "password": pw}}, http.StatusOK, nil)
	return p.sessionOf(res)
}

func (p *peopleRun) login(s *peopleSite, email, pw string) string {
	p.t.Helper()
	res := p.want(s, call{method: "POST", path: "/admin/login", body: map[string]string{"email": email, "password": pw}}, http.StatusOK, nil)
	return p.sessionOf(res)
}

// startPeople builds nothing: it starts n instances of bin over store and
// bootstraps root through the first one's config.
func startPeople(t *testing.T, bin string, n int, store string, smtp *mailtest.Server) *peopleRun {
	t.Helper()
	p := &peopleRun{t: t, smtp: smtp}
	if smtp != nil {
		store += "\n\t\tmail " + smtp.URL() + " {\n\t\t\tfrom \"apiusers <noreply@example.com>\"\n\t\t}"
	}
	for i := 0; i < n; i++ {
		tmp := t.TempDir()
		e := apitest.Env(tmp)
		adminPort, sitePort := apitest.FreePort(t), apitest.FreePort(t)
		s := &peopleSite{name: string(rune('A' + i)), site: "http://localhost:" + strconv.Itoa(sitePort), log: filepath.Join(tmp, "access.log")}
		cfg := filepath.Join(tmp, "Caddyfile")
		if err := os.WriteFile(cfg, []byte(peopleCaddyfile(adminPort, sitePort, store, s.log)), 0o644); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			r := apitest.Run(t, bin, e, 30*time.Second, "apiusers", "bootstrap", "--config", cfg, "--adapter", "caddyfile", "--workspace", "acme", "--username", "root")
			if r.Code != 0 {
				t.Fatalf("bootstrap: exit %d\n%s", r.Code, r.Stderr)
			}
			p.root = strings.TrimSpace(r.Stdout)
			p.secret(p.root)
			r = apitest.Run(t, bin, e, 30*time.Second, "apiusers", "bootstrap", "--config", cfg, "--adapter", "caddyfile", "--workspace", "acme", "--email", "boss@example.com", "--console", s.site+"/admin/")
			if r.Code != 0 {
				t.Fatalf("bootstrap --email: exit %d\n%s", r.Code, r.Stderr)
			}
			p.setup = strings.TrimSpace(r.Stdout)
		}
		s.proc = apitest.Start(t, bin, e, s.site+"/api/hello", "--config", cfg, "--adapter", "caddyfile")
		p.sites = append(p.sites, s)
	}
	p.want(p.sites[0], call{method: "POST", path: "/admin/workspaces", key: p.root, body: map[string]string{"id": "beta", "name": "Beta"}}, http.StatusCreated, nil)
	return p
}

func TestE2EPeople(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	t.Parallel()
	bin := caddyBin.Path(t)

	t.Run("file", func(t *testing.T) {
		data := filepath.Join(t.TempDir(), "apiusers")
		p := startPeople(t, bin, 1, "store file "+data, mailtest.Start(t, mailtest.Options{}))
		exercisePeople(t, p)
	})
	t.Run("redis fleet", func(t *testing.T) {
		srv := redistest.Start(t)
		p := startPeople(t, bin, 2, "store redis "+srv.URL()+"\n\t\tsigning_key people-e2e-signing-key-0123456789abcdef", nil)
		waitFeed(t, srv.Addr, 2)
		exercisePeople(t, p)
	})
}

// exercisePeople runs the people scenarios on p's instances
// (the fleet checks on the second one when there is one).
func exercisePeople(t *testing.T, p *peopleRun) {
	a := p.sites[0]
	b := a
	if len(p.sites) > 1 {
		b = p.sites[1]
	}
	p.secret(peoplePassword)

	// The person bootstrap --email made sets its password with the link it
	// printed, and is a superadmin.
	res := p.want(a, call{method: "POST", path: "/admin/invitations/accept",
		body: map[string]any{"token": p.tokenOf(p.setup, "accept"), "name": "Boss", "password": peoplePassword}}, http.StatusOK, nil)
	var bossMe struct {
		User struct {
			Role string `json:"role"`
		} `json:"user"`
		Permissions []string `json:"permissions"`
	}
	p.want(a, call{method: "GET", path: "/admin/me", cookie: p.sessionOf(res)}, http.StatusOK, &bossMe)
	if bossMe.User.Role != "superadmin" {
		t.Fatalf("the bootstrapped person: %+v", bossMe)
	}

	// Invite -> link -> accept with a password -> signed in -> GET /me
	// lists the membership; a second workspace's invitation for the same
	// email joins the same account.
	ana := p.invite(a, "acme", "Ana@Example.com", "admin")
	cookie := p.accept(a, ana, peoplePassword)
	p.want(a, call{method: "POST", path: "/admin/logout", cookie: cookie}, http.StatusNoContent, nil)
	p.want(a, call{method: "GET", path: "/admin/me", cookie: cookie}, http.StatusUnauthorized, nil)
	cookie = p.login(b, "ana@example.com", peoplePassword)
	var me signedIn
	p.want(a, call{method: "GET", path: "/admin/me", cookie: cookie}, http.StatusOK, &me)
	if len(me.Memberships) != 1 || me.Memberships[0].Workspace != "acme" || me.Account.ID != ana.Account || !me.Account.HasPassword {
		t.Fatalf("GET /me: %+v", me)
	}
	ana2 := p.invite(a, "beta", "ana@EXAMPLE.com", "viewer")
	if ana2.Account != ana.Account {
		t.Fatalf("the second invitation made account %s, not %s", ana2.Account, ana.Account)
	}
	// Resend kills the old link.
	var again member
	p.want(a, call{method: "POST", path: "/admin/workspaces/beta/users/" + ana2.ID + "/invitation", key: p.root}, http.StatusOK, &again)
	again.AcceptURL = p.linkOf(again.AcceptURL, "ana@EXAMPLE.com", "accept")
	p.want(b, call{method: "POST", path: "/admin/invitations/accept", cookie: cookie, origin: b.site,
		body: map[string]any{"token": p.tokenOf(ana2.AcceptURL, "accept")}}, http.StatusGone, nil)
	p.want(b, call{method: "POST", path: "/admin/invitations/accept", cookie: cookie, origin: b.site,
		body: map[string]any{"token": p.tokenOf(again.AcceptURL, "accept")}}, http.StatusOK, &me)
	if len(me.Memberships) != 2 {
		t.Fatalf("after accepting beta: %+v", me)
	}
	p.want(a, call{method: "GET", path: "/admin/me?workspace=beta", cookie: cookie}, http.StatusOK, &me)

	// A cross-site mutation with the cookie is refused; from the
	// console's own origin it is allowed.
	p.want(a, call{method: "PATCH", path: "/admin/me", cookie: cookie, origin: "https://evil.example", body: map[string]string{"name": "Mallory"}}, http.StatusForbidden, nil)
	p.want(a, call{method: "PATCH", path: "/admin/me", cookie: cookie, origin: a.site, body: map[string]string{"name": "Ana K"}}, http.StatusOK, nil)

	// Wrong password, unknown email, invited or inactive member: the same
	// 401.
	cy := p.invite(a, "acme", "cy@example.com", "viewer") // never accepts
	dee := p.invite(a, "acme", "dee@example.com", "viewer")
	p.accept(a, dee, peoplePassword)
	p.want(a, call{method: "POST", path: "/admin/workspaces/acme/users/" + dee.ID + "/status", key: p.root, body: map[string]string{"status": "inactive"}}, http.StatusOK, nil)
	var bodies []string
	for _, c := range []map[string]string{
		{"email": "ana@example.com", "password": "not the right password"},
		{"email": "nobody@example.com", "password": peoplePassword},
		{"email": "cy@example.com", "password": peoplePassword},
		{"email": "dee@example.com", "password": peoplePassword},
	} {
		_, body := p.do(a, call{method: "POST", path: "/admin/login", body: c})
		bodies = append(bodies, string(body))
	}
	for _, bd := range bodies {
		if bd != bodies[0] || !strings.Contains(bd, `"status":401`) {
			t.Fatalf("failed sign-ins answer differently: %q", bodies)
		}
	}
	_ = cy

	// The sixth failure in a row: 429 with Retry-After, on the other
	// instance too; after the wait a correct password works.
	for i := 0; i < 4; i++ {
		p.want(a, call{method: "POST", path: "/admin/login", body: map[string]string{"email": "ana@example.com", "password": "wrong again " + strconv.Itoa(i)}}, http.StatusUnauthorized, nil)
	}
	res = p.want(b, call{method: "POST", path: "/admin/login", body: map[string]string{"email": "ana@example.com", "password": peoplePassword}}, http.StatusTooManyRequests, nil)
	wait, err := strconv.Atoi(res.Header.Get("Retry-After"))
	if err != nil || wait < 1 {
		t.Fatalf("429 Retry-After %q", res.Header.Get("Retry-After"))
	}
	time.Sleep(time.Duration(wait) * time.Second)
	cookieB := p.login(b, "ana@example.com", peoplePassword)

	// Password change: a wrong current password is a 403 and changes
	// nothing; the right one ends the other sessions, on the other
	// instance within 1 s.
	const next = "saffron quarry 88 nebula drift"
	p.secret(next)
	p.want(a, call{method: "POST", path: "/admin/me/password", cookie: cookie, body: map[string]string{"current_password": "a wrong current one", "new_password": next}}, http.StatusForbidden, nil)
	p.want(b, call{method: "GET", path: "/admin/me", cookie: cookieB}, http.StatusOK, nil)
	p.want(a, call{method: "POST", path: "/admin/me/password", cookie: cookie, body: map[string]string{"current_password": peoplePassword, "new_password": next}}, http.StatusNoContent, nil)
	changed := time.Now()
	for {
		res, _ := p.do(b, call{method: "GET", path: "/admin/me", cookie: cookieB})
		if res.StatusCode == http.StatusUnauthorized {
			break
		}
		if time.Since(changed) > time.Second {
			t.Fatalf("the other session still works %v after the change", time.Since(changed))
		}
	}
	p.want(a, call{method: "GET", path: "/admin/me", cookie: cookie}, http.StatusOK, nil)

	// Reset: self-service answers 202 for known and unknown emails; a
	// manager's link sets a new password once; the old one then fails.
	p.want(a, call{method: "POST", path: "/admin/password-reset", body: map[string]string{"email": "nobody@example.com"}}, http.StatusAccepted, nil)
	p.want(a, call{method: "POST", path: "/admin/password-reset", body: map[string]string{"email": "ana@example.com"}}, http.StatusAccepted, nil)
	if p.smtp != nil {
		// The self-service link works as the manager's does; the newer
		// one (below) replaces it.
		first := p.tokenOf(p.mailed("Ana@Example.com", "reset"), "reset")
		defer func() {
			p.want(a, call{method: "POST", path: "/admin/password-reset/confirm", body: map[string]string{"token": first, "new_password": "replaced link 77 never works"}}, http.StatusGone, nil)
		}()
	}
	var reset struct {
		ResetURL string `json:"reset_url"`
	}
	p.want(a, call{method: "POST", path: "/admin/workspaces/acme/users/" + ana.ID + "/password-reset", key: p.root}, http.StatusAccepted, &reset)
	tok := p.tokenOf(p.linkOf(reset.ResetURL, "Ana@Example.com", "reset"), "reset")
	const third = "tundra velvet compass 7 harbor"
	p.secret(third)
	p.want(b, call{method: "POST", path: "/admin/password-reset/confirm", body: map[string]string{"token": tok, "new_password": third}}, http.StatusNoContent, nil)
	p.want(a, call{method: "POST", path: "/admin/password-reset/confirm", body: map[string]string{"token": tok, "new_password": third + " x"}}, http.StatusGone, nil)
	p.want(a, call{method: "POST", path: "/admin/login", body: map[string]string{"email": "ana@example.com", "password": next}}, http.StatusUnauthorized, nil)
	p.want(a, call{method: "GET", path: "/admin/me", cookie: cookie}, http.StatusUnauthorized, nil)
	p.login(a, "ana@example.com", third)

	// An API user created with a password signs in with workspace,
	// username and password; its token passes the gateway; the same
	// username and password in another workspace is another user.
	var dev, devBeta struct {
		ID string `json:"id"`
	}
	devPw := "copper meadow 19 lighthouse"
	p.secret(devPw)
	p.want(a, call{method: "POST", path: "/admin/workspaces/acme/users", key: p.root,
		body: map[string]any{"username": "device", "kind": "api", "role": "api_user", "password": devPw}}, http.StatusCreated, &dev)
	p.want(a, call{method: "POST", path: "/admin/workspaces/beta/users", key: p.root,
		body: map[string]any{"username": "device", "kind": "api", "role": "api_user", "password": devPw}}, http.StatusCreated, &devBeta)
	var tokA, tokBeta struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	res = p.want(b, call{method: "POST", path: "/admin/login", body: map[string]string{"workspace": "acme", "username": "device", "password": devPw}}, http.StatusOK, &tokA)
	if len(res.Cookies()) != 0 || tokA.Token == "" || tokA.ExpiresAt.IsZero() {
		t.Fatalf("API user sign-in: cookies %v, %+v", res.Cookies(), tokA)
	}
	p.want(a, call{method: "POST", path: "/admin/login", body: map[string]string{"workspace": "beta", "username": "device", "password": devPw}}, http.StatusOK, &tokBeta)
	p.secret(tokA.Token, tokBeta.Token)
	for _, s := range p.sites {
		_, body := p.do(s, call{method: "GET", path: "/api/hello", key: tokA.Token})
		f := strings.Fields(string(body))
		if len(f) != 5 || f[1] != "device" || f[2] != dev.ID || !strings.HasPrefix(f[3], "ses_") || f[4] != f[3] {
			t.Fatalf("gateway on %s with a session token: %q", s.name, body)
		}
	}
	_, body := p.do(a, call{method: "GET", path: "/api/hello", key: tokBeta.Token})
	if !strings.Contains(string(body), devBeta.ID) || devBeta.ID == dev.ID {
		t.Fatalf("beta's device: %q", body)
	}
	var sessions struct {
		Items []struct {
			ID, Kind string
		} `json:"items"`
	}
	p.want(a, call{method: "GET", path: "/admin/workspaces/acme/users/" + dev.ID + "/sessions", key: p.root}, http.StatusOK, &sessions)
	if len(sessions.Items) != 1 || sessions.Items[0].Kind != "token" {
		t.Fatalf("sessions: %+v", sessions)
	}
	// Deactivation: 401 on every instance within 1 s.
	p.want(a, call{method: "POST", path: "/admin/workspaces/acme/users/" + dev.ID + "/status", key: p.root, body: map[string]string{"status": "inactive"}}, http.StatusOK, nil)
	deact := time.Now()
	for _, s := range p.sites {
		for {
			res, _ := p.do(s, call{method: "GET", path: "/api/hello", key: tokA.Token})
			if res.StatusCode == http.StatusUnauthorized {
				break
			}
			if time.Since(deact) > time.Second {
				t.Fatalf("%s admits the token %v after deactivation", s.name, time.Since(deact))
			}
		}
	}

	// The audit log lists sign-ins, invitations, resets and password
	// changes.
	var audit struct {
		Items []struct{ Action string } `json:"items"`
	}
	p.want(a, call{method: "GET", path: "/admin/workspaces/acme/audit?limit=500", key: p.root}, http.StatusOK, &audit)
	seen := map[string]bool{}
	for _, e := range audit.Items {
		seen[e.Action] = true
	}
	for _, want := range []string{"session.sign_in", "session.sign_out", "invitation.send", "invitation.accept", "password.change", "password.reset_send", "password.reset"} {
		if !seen[want] {
			t.Errorf("audit log lacks %s (has %v)", want, seen)
		}
	}

	// Expired: the invite_ttl of these instances is 20 s.
	cy.AcceptURL = ""
	p.want(a, call{method: "POST", path: "/admin/workspaces/acme/users/" + cy.ID + "/invitation", key: p.root}, http.StatusOK, &cy)
	cy.AcceptURL = p.linkOf(cy.AcceptURL, "cy@example.com", "accept")
	time.Sleep(21 * time.Second)
	p.want(a, call{method: "POST", path: "/admin/invitations/accept", body: map[string]any{"token": p.tokenOf(cy.AcceptURL, "accept"), "password": peoplePassword}}, http.StatusGone, nil)

	// Nothing of a password, a token or a hash in any answer (beyond the
	// answer that hands a token out), in the audit log or the access log.
	p.checkNoSecrets()
}

func (p *peopleRun) checkNoSecrets() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	var logs []string
	for _, s := range p.sites {
		b, err := os.ReadFile(s.log)
		if err != nil || len(b) == 0 {
			p.t.Fatalf("access log of %s: %v (%d bytes)", s.name, err, len(b))
		}
		// The access log, then the process's own log (the plugin's lines).
		logs = append(logs, string(b)+"\n"+s.proc.Logs())
	}
	// Without a mailer, Caddy says that no mail was sent.
	if p.smtp == nil && !strings.Contains(logs[0], "no invitation mail was sent") {
		p.t.Error("no log line says that no invitation mail was sent")
	}
	for _, sec := range p.secrets {
		if len(sec) < 8 {
			continue
		}
		for i, l := range logs {
			if strings.Contains(l, sec) {
				p.t.Errorf("the logs of %s hold a secret %.10q…", p.sites[i].name, sec)
			}
		}
		// A password never comes back; a token only in the answer that
		// issued it (the login, the invitation's accept_url).
		n := 0
		for _, a := range p.answers {
			if strings.Contains(a, sec) {
				n++
			}
		}
		console := strings.HasPrefix(sec, "ses_") && strings.Contains(sec, ".")
		if (strings.Contains(sec, " ") || console) && n > 0 {
			p.t.Errorf("a password or console session token %.10q… is in %d answers", sec, n)
		}
	}
	for _, a := range p.answers {
		if strings.Contains(a, "$argon2") {
			p.t.Errorf("an answer holds a hash: %.100s", a)
		}
	}
	for _, l := range logs {
		if strings.Contains(l, "$argon2") {
			p.t.Error("the access log holds a hash")
		}
	}
}
