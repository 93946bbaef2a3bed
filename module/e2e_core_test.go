package module

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/golang-jwt/jwt/v5"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/redisstore/redistest"
)

// The acceptance suite of issue 2: one in-process Caddy per store (the
// embedded file store, then a real redis-server), configured with the
// quickstart's admin API and gateway plus routes that exercise workspace,
// roles and require, proxying to a recording upstream. The scenarios that
// share a Caddy run as parallel subtests, each with its own users, so the
// waits for expiry and grace overlap; what takes the store away (a reload,
// Redis stopped) runs alone afterwards.

// Values the gateway sends on its challenges.
const (
	accChallengeInvalid = `Bearer realm="apiusers", error="invalid_token"`
	accChallengeScope   = `Bearer realm="apiusers", error="insufficient_scope"`
)

// accSigningKey is the redis variant's signing_key.
const accSigningKey = "acceptance-signing-key-0123456789abcdef0123"

// acc is a running acceptance Caddy.
type acc struct {
	*e2e
	store   string // "file" or "redis"
	cf      string // the Caddyfile loaded
	cfgPath string // where it is written
	secret  []byte // the signing secret
	redis   *redistest.Server
	adminPt int
}

// accCaddyfile is the quickstart with the store given by storeLines and
// the test's ports and upstream, plus a route per gateway rule.
func accCaddyfile(storeLines string, adminPort, sitePort int, upstream string) string {
	return fmt.Sprintf(`{
	admin localhost:%d
	persist_config off
	apiusers {
		%s
	}
}

http://localhost:%d {
	handle_path /admin/* {
		apiusers_admin
	}

	# The quickstart's route.
	handle /api/* {
		apiusers {
			require listeners.invoke
		}
		reverse_proxy %[4]s
	}

	# Any active user with a live key.
	handle /any/* {
		apiusers
		reverse_proxy %[4]s
	}

	# Only workspace acme.
	handle /acme-only/* {
		apiusers {
			workspace acme
		}
		reverse_proxy %[4]s
	}

	# Only admins.
	handle /admins/* {
		apiusers {
			roles admin superadmin
		}
		reverse_proxy %[4]s
	}

	handle_errors {
		respond "{err.status_code} {err.message}"
	}
}
`, adminPort, storeLines, sitePort, upstream)
}

// startAcc starts the acceptance Caddy on store ("file" or "redis"),
// bootstrapped with superadmin root in workspace acme. Everything it starts
// is stopped when t ends.
func startAcc(t *testing.T, store string) *acc {
	t.Helper()
	tmp, dataDir := e2eTempDirs(t)

	up := &upstreamLog{}
	upstream := httptest.NewServer(up)
	t.Cleanup(upstream.Close)

	e2eAdminPortOnce.Do(func() { e2eAdminPort = freePort(t) })
	adminPort, sitePort := e2eAdminPort, freePort(t)
	a := &acc{
		e2e: &e2e{
			t:        t,
			base:     "http://localhost:" + strconv.Itoa(sitePort),
			dataDir:  dataDir,
			upstream: up,
			tester:   caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort}),
		},
		store:   store,
		adminPt: adminPort,
	}
	var storeLines string
	switch store {
	case "file":
		storeLines = "store file " + dataDir
	case "redis":
		// Persistent, so the data outlives a stop and restart.
		a.redis = redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
		storeLines = "store redis " + a.redis.URL() + "\n\t\tsigning_key " + accSigningKey
		a.secret = []byte(accSigningKey)
	default:
		t.Fatalf("unknown store %q", store)
	}
	a.cf = accCaddyfile(storeLines, adminPort, sitePort, strings.TrimPrefix(upstream.URL, "http://"))
	cfgPath := filepath.Join(tmp, "Caddyfile")
	if err := os.WriteFile(cfgPath, []byte(a.cf), 0o644); err != nil {
		t.Fatal(err)
	}
	a.cfgPath = cfgPath
	a.rootKey(cfgPath)
	if store == "file" {
		b, err := os.ReadFile(filepath.Join(dataDir, secretFileName))
		if err != nil {
			t.Fatalf("the file store's signing key: %v", err)
		}
		a.secret = bytes.TrimSpace(b)
	}
	a.tester.InitServer(a.cf, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	t.Cleanup(a.unload)
	return a
}

// unload replaces the config with an empty one: frees the ports and the
// store.
func (a *acc) unload() {
	// Idle keep-alive connections would hold up the servers' shutdown.
	a.tester.Client.CloseIdleConnections()
	a.tester.InitServer(fmt.Sprintf("{\n\tadmin localhost:%d\n\tpersist_config off\n}\n", a.adminPt), "caddyfile")
}

var accMarks atomic.Int64

// mark returns a value no other request carries, to find a request at the
// upstream among those of parallel subtests.
func accMark() string { return "m" + strconv.FormatInt(accMarks.Add(1), 10) }

// find returns the request the upstream received with X-Test-Mark m, or nil.
func (rc *upstreamLog) byMark(m string) *http.Request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, r := range rc.reqs {
		if r.Header.Get("X-Test-Mark") == m {
			return r
		}
	}
	return nil
}

// send makes a request to the site. body is sent as is when it is a string
// or []byte, else JSON-encoded; nil sends none.
func (a *acc) send(t *testing.T, method, path string, h http.Header, body any) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, a.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := a.tester.Client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return res, b
}

// admin calls the admin API (path below /admin) with key as a Bearer token.
func (a *acc) admin(t *testing.T, method, path, key string, body any) (*http.Response, []byte) {
	t.Helper()
	var h http.Header
	if key != "" {
		h = bearerHeader(key)
	}
	return a.send(t, method, "/admin"+path, h, body)
}

// gw calls a gateway route with key as a Bearer token and a fresh mark; it
// returns the mark too.
func (a *acc) gw(t *testing.T, path, key string) (*http.Response, []byte, string) {
	t.Helper()
	m := accMark()
	h := http.Header{"X-Test-Mark": {m}}
	if key != "" {
		h.Set("Authorization", "Bearer "+key)
	}
	res, body := a.send(t, http.MethodGet, path, h, nil)
	return res, body, m
}

// accUser is a user as the admin API returns it, with its first key.
type accUser struct {
	ID          string   `json:"id"`
	Workspace   string   `json:"workspace"`
	Username    string   `json:"username"`
	Kind        string   `json:"kind"`
	Role        string   `json:"role"`
	Status      string   `json:"status"`
	Email       string   `json:"email"`
	Timezone    string   `json:"timezone"`
	PrivateNote string   `json:"private_note"`
	Permissions []string `json:"permissions"`
	Version     int64    `json:"version"`
	Key         string   `json:"key"`
	KeyID       string   `json:"key_id"`
}

// accKey is a key as create, regenerate, reveal and list return it.
type accKey struct {
	ID        string     `json:"id"`
	UserID    string     `json:"user_id"`
	Name      string     `json:"name"`
	Key       string     `json:"key"`
	ExpiresAt *time.Time `json:"expires_at"`
	RevokesAt *time.Time `json:"revokes_at"`
}

type accProblem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Field  string `json:"field"`
}

// decodeAs checks the status and JSON Content-Type of an admin answer and
// decodes its body.
func accDecode[T any](t *testing.T, what string, res *http.Response, body []byte, status int) T {
	t.Helper()
	var v T
	if res.StatusCode != status {
		t.Fatalf("%s: status %d, want %d: %s", what, res.StatusCode, status, body)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s: Content-Type %q", what, ct)
	}
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("%s: %v: %s", what, err, body)
	}
	return v
}

// wantProblem checks an admin error answer: the status, an RFC 9457 body
// of type application/problem+json with the same status, and none of
// secrets in it.
func accWantProblem(t *testing.T, what string, res *http.Response, body []byte, status int, secrets ...string) accProblem {
	t.Helper()
	if res.StatusCode != status {
		t.Fatalf("%s: status %d, want %d: %s", what, res.StatusCode, status, body)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("%s: Content-Type %q, want application/problem+json", what, ct)
	}
	var p accProblem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("%s: problem body: %v: %s", what, err, body)
	}
	if p.Status != status || p.Title != http.StatusText(status) || p.Type == "" || p.Detail == "" {
		t.Errorf("%s: problem = %+v", what, p)
	}
	switch status {
	case http.StatusUnauthorized:
		if got := res.Header.Get("WWW-Authenticate"); got != accChallengeInvalid {
			t.Errorf("%s: WWW-Authenticate = %q", what, got)
		}
	case http.StatusForbidden:
		if got := res.Header.Get("WWW-Authenticate"); got != accChallengeScope {
			t.Errorf("%s: WWW-Authenticate = %q", what, got)
		}
	case http.StatusServiceUnavailable:
		if res.Header.Get("Retry-After") == "" {
			t.Errorf("%s: 503 without Retry-After", what)
		}
	}
	accNoSecrets(t, what, body, secrets...)
	return p
}

// noSecrets fails when body holds any of the keys, or the signature of one.
func accNoSecrets(t *testing.T, what string, body []byte, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if k == "" {
			continue
		}
		if bytes.Contains(body, []byte(k)) {
			t.Errorf("%s: the answer holds the key: %q", what, body)
			continue
		}
		if parts := strings.Split(k, "."); len(parts) == 3 && len(parts[2]) > 16 && bytes.Contains(body, []byte(parts[2])) {
			t.Errorf("%s: the answer holds the key's signature: %q", what, body)
		}
	}
}

// wantOK checks a gateway answer that the upstream served, as user.
func (a *acc) wantOK(t *testing.T, what string, res *http.Response, body []byte, m, username string) {
	t.Helper()
	if res.StatusCode != http.StatusOK || string(body) != "hello "+username {
		t.Fatalf("%s: %d %q, want 200 %q", what, res.StatusCode, body, "hello "+username)
	}
	if a.upstream.byMark(m) == nil {
		t.Fatalf("%s: the upstream did not see the request", what)
	}
}

// wantDenied checks a gateway refusal: the status, the challenge, a
// one-line body (through handle_errors) that holds none of keys, and the
// upstream never reached.
func (a *acc) wantDenied(t *testing.T, what string, res *http.Response, body []byte, m string, status int, keys ...string) {
	t.Helper()
	if res.StatusCode != status {
		t.Fatalf("%s: %d %q, want %d", what, res.StatusCode, body, status)
	}
	want := map[int]string{http.StatusUnauthorized: accChallengeInvalid, http.StatusForbidden: accChallengeScope}[status]
	if got := res.Header.Values("WWW-Authenticate"); want != "" && (len(got) != 1 || got[0] != want) {
		t.Errorf("%s: WWW-Authenticate = %q, want %q", what, got, want)
	}
	if !strings.HasPrefix(string(body), strconv.Itoa(status)+" ") || strings.ContainsAny(string(body), "\r\n") {
		t.Errorf("%s: body %q is not one line saying why", what, body)
	}
	accNoSecrets(t, what, body, keys...)
	if a.upstream.byMark(m) != nil {
		t.Errorf("%s: the upstream saw a refused request", what)
	}
}

// gwOK calls path with key and wants the upstream to serve username.
func (a *acc) gwOK(t *testing.T, what, path, key, username string) {
	t.Helper()
	res, body, m := a.gw(t, path, key)
	a.wantOK(t, what, res, body, m, username)
}

// gwDenied calls path with key and wants status.
func (a *acc) gwDenied(t *testing.T, what, path, key string, status int) string {
	t.Helper()
	res, body, m := a.gw(t, path, key)
	a.wantDenied(t, what, res, body, m, status, key)
	return string(body)
}

// mkWorkspace creates workspace id as root.
func (a *acc) mkWorkspace(t *testing.T, id string) {
	t.Helper()
	res, body := a.admin(t, http.MethodPost, "/workspaces", a.root, map[string]any{"id": id, "name": "Workspace " + id})
	ws := accDecode[struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}](t, "creating workspace "+id, res, body, http.StatusCreated)
	if ws.ID != id || ws.Name != "Workspace "+id {
		t.Fatalf("created workspace = %+v", ws)
	}
}

// mkUser creates an api user in ws as actor with its first key; extra adds
// fields to the request.
func (a *acc) mkUser(t *testing.T, actor, ws, username, role string, extra map[string]any) accUser {
	t.Helper()
	in := map[string]any{"username": username, "kind": "api", "role": role, "issue_key": true}
	for k, v := range extra {
		in[k] = v
	}
	res, body := a.admin(t, http.MethodPost, "/workspaces/"+ws+"/users", actor, in)
	u := accDecode[accUser](t, "creating "+username, res, body, http.StatusCreated)
	if u.ID == "" || u.Key == "" || u.KeyID == "" || u.Username != username || u.Role != role || u.Status != "active" {
		t.Fatalf("created %s = %s", username, body)
	}
	return u
}

// setStatus sets u's status as actor and wants 200.
func (a *acc) setStatus(t *testing.T, actor string, u accUser, status string) {
	t.Helper()
	res, body := a.admin(t, http.MethodPost, "/workspaces/"+u.Workspace+"/users/"+u.ID+"/status", actor, map[string]string{"status": status})
	got := accDecode[accUser](t, "setting "+u.Username+" "+status, res, body, http.StatusOK)
	if got.Status != status {
		t.Fatalf("status after setting %s: %s", status, body)
	}
}

// mkKey creates a key for u as actor.
func (a *acc) mkKey(t *testing.T, actor string, u accUser, in map[string]any) accKey {
	t.Helper()
	res, body := a.admin(t, http.MethodPost, "/workspaces/"+u.Workspace+"/users/"+u.ID+"/keys", actor, in)
	k := accDecode[accKey](t, "creating a key for "+u.Username, res, body, http.StatusCreated)
	if k.ID == "" || k.Key == "" || k.UserID != u.ID {
		t.Fatalf("created key = %s", body)
	}
	return k
}

// usernames lists the usernames of workspace ws, sorted.
func (a *acc) usernames(t *testing.T, ws string) []string {
	t.Helper()
	res, body := a.admin(t, http.MethodGet, "/workspaces/"+ws+"/users?limit=500", a.root, nil)
	l := accDecode[struct {
		Items []accUser `json:"items"`
	}](t, "listing users of "+ws, res, body, http.StatusOK)
	var names []string
	for _, u := range l.Items {
		names = append(names, u.Username)
	}
	slices.Sort(names)
	return names
}

// claimsOf decodes the payload of a key without verifying it.
func accClaims(t *testing.T, key string) map[string]any {
	t.Helper()
	parts := strings.Split(key, ".")
	if len(parts) != 3 {
		t.Fatalf("key %q is not a JWT", key)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func accB64JSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// pollUntil calls f every 50ms until it returns true or the deadline
// passes; it returns when f first held.
func accPoll(t *testing.T, what string, within time.Duration, f func() bool) time.Time {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if f() {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestE2EAcceptance(t *testing.T) {
	for _, store := range []string{"file", "redis"} {
		t.Run(store, func(t *testing.T) {
			a := startAcc(t, store)
			var down downUsers
			if store == "redis" {
				down = a.prepareStoreDown(t)
			}
			// Scenarios that share the Caddy, each with its own users.
			t.Run("parallel", func(t *testing.T) {
				t.Run("flow", a.testFlow)
				t.Run("unauthorized", a.testUnauthorized)
				t.Run("expires_at", a.testExpiresAt)
				t.Run("forbidden", a.testForbidden)
				t.Run("lifecycle", a.testLifecycle)
				t.Run("keys", a.testKeys)
				t.Run("grace", a.testGrace)
				t.Run("rules", a.testRules)
				t.Run("bad_input", a.testBadInput)
			})
			// Scenarios that take the store away, alone.
			switch store {
			case "file":
				t.Run("restart", a.testRestart)
			case "redis":
				t.Run("store_down", func(t *testing.T) { a.testStoreDown(t, down) })
			}
		})
	}
}

// testFlow: bootstrap → workspace → api_user → key → calls with either
// header; the upstream learns who called, never the key, never a spoofed
// identity.
func (a *acc) testFlow(t *testing.T) {
	t.Parallel()
	// The bootstrapped superadmin.
	res, body := a.admin(t, http.MethodGet, "/me", a.root, nil)
	me := accDecode[struct {
		User accUser `json:"user"`
	}](t, "GET /me as root", res, body, http.StatusOK)
	if me.User.Role != "superadmin" || me.User.Username != "root" || me.User.Workspace != "acme" {
		t.Fatalf("root = %s", body)
	}

	a.mkWorkspace(t, "flow")
	res, body = a.admin(t, http.MethodGet, "/workspaces/flow", a.root, nil)
	accDecode[map[string]any](t, "GET the new workspace", res, body, http.StatusOK)

	// The api_user, then its key, in two steps.
	res, body = a.admin(t, http.MethodPost, "/workspaces/flow/users", a.root, map[string]any{
		"username": "station", "kind": "api", "role": "api_user",
	})
	u := accDecode[accUser](t, "creating station", res, body, http.StatusCreated)
	if u.Key != "" || u.Status != "active" || u.Workspace != "flow" || !strings.HasPrefix(u.ID, "usr_") {
		t.Fatalf("created station = %s", body)
	}
	k := a.mkKey(t, a.root, u, map[string]any{"name": "main"})

	wantUpstream := func(t *testing.T, m string) {
		t.Helper()
		up := a.upstream.byMark(m)
		if up == nil {
			t.Fatal("the upstream saw no request")
		}
		want := map[string]string{
			"X-Api-User-Id":   u.ID,
			"X-Api-User-Name": "station",
			"X-Api-Workspace": "flow",
			"X-Api-Role":      "api_user",
			"X-Api-Key-Id":    k.ID,
		}
		for h, v := range want {
			if got := up.Header.Values(h); len(got) != 1 || got[0] != v {
				t.Errorf("upstream %s = %q, want [%q]", h, got, v)
			}
		}
		for _, h := range []string{"Authorization", "X-Api-Key"} {
			if got := up.Header.Values(h); len(got) != 0 {
				t.Errorf("upstream saw %s: %q", h, got)
			}
		}
		for h, vs := range up.Header {
			for _, v := range vs {
				if strings.HasPrefix(v, "spoofed") || v == "superadmin" {
					t.Errorf("upstream saw a spoofed identity: %s: %q", h, v)
				}
				if strings.Contains(v, k.Key) || strings.Contains(v, strings.Split(k.Key, ".")[2]) {
					t.Errorf("upstream saw the key in %s", h)
				}
			}
		}
	}
	// The client claims to be someone else, in every identity header and
	// in several values.
	spoof := func(h http.Header) http.Header {
		for _, name := range []string{"X-Api-User-Id", "X-Api-User-Name", "X-Api-Workspace", "X-Api-Role", "X-Api-Key-Id"} {
			h[name] = []string{"spoofed", "spoofed-too"}
		}
		h.Set("x-api-role", "superadmin")
		// Spellings some upstreams (CGI, PHP, some proxies) read as the
		// same header.
		h["X_Api_User_Id"] = []string{"spoofed-underscore"}
		h["X.Api.Role"] = []string{"spoofed-dot"}
		return h
	}
	for _, c := range []struct {
		name string
		h    http.Header
	}{
		{"bearer", http.Header{"Authorization": {"Bearer " + k.Key}}},
		{"x-api-key", http.Header{"X-Api-Key": {k.Key}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := accMark()
			h := spoof(c.h)
			h.Set("X-Test-Mark", m)
			res, body := a.send(t, http.MethodGet, "/api/hello", h, nil)
			a.wantOK(t, c.name, res, body, m, "station")
			wantUpstream(t, m)
		})
	}

	// The key is shown in full at creation only: reading the user and its
	// keys does not show it.
	for _, p := range []string{"/workspaces/flow/users/" + u.ID, "/workspaces/flow/users/" + u.ID + "/keys", "/workspaces/flow/users"} {
		res, body := a.admin(t, http.MethodGet, p, a.root, nil)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", p, res.StatusCode, body)
		}
		accNoSecrets(t, "GET "+p, body, k.Key)
	}
	res, body = a.admin(t, http.MethodGet, "/workspaces/flow/users/"+u.ID+"/keys", a.root, nil)
	keys := accDecode[struct {
		Items []accKey `json:"items"`
	}](t, "listing keys", res, body, http.StatusOK)
	if len(keys.Items) != 1 || keys.Items[0].ID != k.ID || keys.Items[0].Name != "main" {
		t.Fatalf("keys = %s", body)
	}
}

// testUnauthorized: every way of not presenting a good key is a 401 with
// the invalid_token challenge, whose body never holds the key.
func (a *acc) testUnauthorized(t *testing.T) {
	t.Parallel()
	const ws = "acme"
	live := a.mkUser(t, a.root, ws, "unauth-live", "api_user", nil)
	a.gwOK(t, "the live key", "/api/x", live.Key, "unauth-live")

	parts := strings.Split(live.Key, ".")
	var hdr map[string]any
	if b, err := base64.RawURLEncoding.DecodeString(parts[0]); err != nil || json.Unmarshal(b, &hdr) != nil {
		t.Fatalf("key header: %v", err)
	}
	kid, _ := hdr["kid"].(string)
	if kid != authz.SigningKeyID(a.secret) {
		t.Fatalf("key kid %q, want the store secret's %q", kid, authz.SigningKeyID(a.secret))
	}
	cl := accClaims(t, live.Key)

	// The signature with one character changed in its middle.
	sig := []byte(parts[2])
	i := len(sig) / 2
	if sig[i] == 'A' {
		sig[i] = 'B'
	} else {
		sig[i] = 'A'
	}
	tamperedSig := parts[0] + "." + parts[1] + "." + string(sig)

	// Claims changed to the superadmin's, the signature kept.
	rootCl := accClaims(t, a.root)
	evil := map[string]any{}
	for k, v := range cl {
		evil[k] = v
	}
	evil["sub"] = rootCl["sub"]
	tamperedClaims := parts[0] + "." + accB64JSON(t, evil) + "." + parts[2]

	// The same claims under another secret: with its own kid, and with
	// the real kid.
	other, err := authz.NewSigner(authz.SignerConfig{Secret: []byte("another-secret-0123456789abcdef0123456789")})
	if err != nil {
		t.Fatal(err)
	}
	liveClaims := authz.Claims{
		UserID: cl["sub"].(string), Workspace: cl["ws"].(string), KeyID: cl["jti"].(string),
		IssuedAt: int64(cl["iat"].(float64)),
	}
	otherSecret, err := other.Sign(liveClaims, "")
	if err != nil {
		t.Fatal(err)
	}
	forge := func(method jwt.SigningMethod, secret []byte, claims jwt.MapClaims) string {
		tok := jwt.NewWithClaims(method, claims)
		tok.Header["kid"] = kid
		s, err := tok.SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	mapClaims := jwt.MapClaims{}
	for k, v := range cl {
		mapClaims[k] = v
	}
	otherSecretRealKid := forge(jwt.SigningMethodHS256, []byte("another-secret-0123456789abcdef0123456789"), mapClaims)
	// The right secret, another HMAC algorithm: the algorithm is pinned.
	algSwitch := forge(jwt.SigningMethodHS512, a.secret, mapClaims)
	// alg none, without a signature and with the real one.
	noneHdr := accB64JSON(t, map[string]any{"alg": "none", "typ": "JWT", "kid": kid})
	algNone := noneHdr + "." + parts[1] + "."
	algNoneSig := noneHdr + "." + parts[1] + "." + parts[2]

	// Signed with the store's own secret, with an exp in the past.
	signer, err := authz.NewSigner(authz.SignerConfig{Secret: a.secret})
	if err != nil {
		t.Fatal(err)
	}
	expiredCl := liveClaims
	expiredCl.ExpiresAt = time.Now().Add(-time.Minute).Unix()
	expired, err := signer.Sign(expiredCl, "")
	if err != nil {
		t.Fatal(err)
	}
	// The same secret, claims of a key that never was.
	unknownCl := liveClaims
	unknownCl.KeyID = "key_00000000000000000000000000"
	unknown, err := signer.Sign(unknownCl, "")
	if err != nil {
		t.Fatal(err)
	}

	// Keys of users that are not active, and a revoked key.
	revoked := a.mkUser(t, a.root, ws, "unauth-revoked", "api_user", nil)
	inactive := a.mkUser(t, a.root, ws, "unauth-inactive", "api_user", nil)
	trashed := a.mkUser(t, a.root, ws, "unauth-trashed", "api_user", nil)
	deleted := a.mkUser(t, a.root, ws, "unauth-deleted", "api_user", nil)
	for _, u := range []accUser{revoked, inactive, trashed, deleted} {
		a.gwOK(t, u.Username+" before", "/api/x", u.Key, u.Username) // cached now
	}
	res, body := a.admin(t, http.MethodDelete, "/workspaces/acme/users/"+revoked.ID+"/keys/"+revoked.KeyID, a.root, nil)
	if res.StatusCode != http.StatusNoContent {
		t.Fatalf("revoking: %d %s", res.StatusCode, body)
	}
	a.setStatus(t, a.root, inactive, "inactive")
	a.setStatus(t, a.root, trashed, "trash")
	a.setStatus(t, a.root, deleted, "trash")
	res, body = a.admin(t, http.MethodDelete, "/workspaces/acme/users/"+deleted.ID, a.root, nil)
	if res.StatusCode != http.StatusNoContent {
		t.Fatalf("deleting: %d %s", res.StatusCode, body)
	}

	// One answer for every invalid key (SPEC §3): only a missing and an
	// expired key say so, so a stolen key tells nothing of its account.
	const invalid = "401 invalid API key"
	cases := []struct {
		name, key, why string
	}{
		{"garbage", "not-a-key-" + strings.Repeat("x", 40), invalid},
		{"three garbage parts", "aaaa.bbbb.cccc", invalid},
		{"tampered signature", tamperedSig, invalid},
		{"tampered claims", tamperedClaims, invalid},
		{"another secret", otherSecret, invalid},
		{"another secret, real kid", otherSecretRealKid, invalid},
		{"alg HS512", algSwitch, invalid},
		{"alg none", algNone, invalid},
		{"alg none with signature", algNoneSig, invalid},
		{"expired", expired, "401 API key expired"},
		{"unknown key id", unknown, invalid},
		{"revoked", revoked.Key, invalid},
		{"inactive user", inactive.Key, invalid},
		{"trashed user", trashed.Key, invalid},
		{"deleted user", deleted.Key, invalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, path := range []string{"/api/x", "/any/x"} {
				got := a.gwDenied(t, c.name, path, c.key, http.StatusUnauthorized)
				if got != c.why {
					t.Errorf("%s: body %q, want %q", path, got, c.why)
				}
			}
			// The same key in X-API-Key.
			m := accMark()
			res, body := a.send(t, http.MethodGet, "/api/x", http.Header{"X-Api-Key": {c.key}, "X-Test-Mark": {m}}, nil)
			a.wantDenied(t, "X-API-Key", res, body, m, http.StatusUnauthorized, c.key)
			if string(body) != c.why {
				t.Errorf("X-API-Key: body %q, want %q", body, c.why)
			}
			// The admin API refuses it the same way.
			res, body = a.admin(t, http.MethodGet, "/me", c.key, nil)
			if p := accWantProblem(t, "GET /me", res, body, http.StatusUnauthorized, c.key); p.Detail != strings.TrimPrefix(c.why, "401 ") {
				t.Errorf("GET /me: detail %q, want %q", p.Detail, strings.TrimPrefix(c.why, "401 "))
			}
		})
	}
	t.Run("no key", func(t *testing.T) {
		for _, h := range []http.Header{
			{},
			{"Authorization": {"Bearer "}},
			{"Authorization": {"Basic dXNlcjpwYXNz"}},
			{"X-Api-Key": {""}},
		} {
			m := accMark()
			h.Set("X-Test-Mark", m)
			res, body := a.send(t, http.MethodGet, "/api/x", h, nil)
			a.wantDenied(t, fmt.Sprint(h), res, body, m, http.StatusUnauthorized)
			if string(body) != "401 no API key" {
				t.Errorf("%v: body %q", h, body)
			}
		}
		res, body := a.admin(t, http.MethodGet, "/me", "", nil)
		accWantProblem(t, "GET /me", res, body, http.StatusUnauthorized)
	})
	// The live key still works after all this.
	a.gwOK(t, "the live key after", "/api/x", live.Key, "unauth-live")
}

// testExpiresAt: a key made with expires_at works until then, and is a 401
// from then on.
func (a *acc) testExpiresAt(t *testing.T) {
	t.Parallel()
	u := a.mkUser(t, a.root, "acme", "expiring", "api_user", nil)
	// Two to three seconds ahead, on a whole second (the exp claim).
	at := time.Now().Add(2 * time.Second).Truncate(time.Second).Add(time.Second)
	k := a.mkKey(t, a.root, u, map[string]any{"name": "short", "expires_at": at.Format(time.RFC3339)})
	if k.ExpiresAt == nil || !k.ExpiresAt.Equal(at) {
		t.Fatalf("expires_at = %v, want %v", k.ExpiresAt, at)
	}
	if exp, _ := accClaims(t, k.Key)["exp"].(float64); int64(exp) != at.Unix() {
		t.Fatalf("exp claim = %v, want %d", exp, at.Unix())
	}
	a.gwOK(t, "before expiry", "/api/x", k.Key, "expiring")
	var body []byte
	expiredAt := accPoll(t, "the key expires", time.Until(at)+5*time.Second, func() bool {
		var res *http.Response
		var m string
		res, body, m = a.gw(t, "/api/x", k.Key)
		if res.StatusCode == http.StatusOK {
			return false
		}
		a.wantDenied(t, "expired", res, body, m, http.StatusUnauthorized, k.Key)
		return true
	})
	if expiredAt.Before(at) {
		t.Errorf("the key stopped working at %v, before its expires_at %v", expiredAt, at)
	}
	if string(body) != "401 API key expired" {
		t.Errorf("body = %q", body)
	}
	// The user's first key never expires.
	a.gwOK(t, "the other key", "/api/x", u.Key, "expiring")

	// An expiry in the past is refused.
	res, body := a.admin(t, http.MethodPost, "/workspaces/acme/users/"+u.ID+"/keys", a.root,
		map[string]any{"name": "past", "expires_at": time.Now().Add(-time.Hour).Format(time.RFC3339)})
	accWantProblem(t, "expires_at in the past", res, body, http.StatusBadRequest)
}

// testForbidden: authenticated callers the route does not admit get 403
// with the insufficient_scope challenge.
func (a *acc) testForbidden(t *testing.T) {
	t.Parallel()
	a.mkWorkspace(t, "elsewhere")
	outsider := a.mkUser(t, a.root, "elsewhere", "outsider", "api_user", nil)
	station := a.mkUser(t, a.root, "acme", "forbid-station", "api_user", nil)
	viewer := a.mkUser(t, a.root, "acme", "forbid-viewer", "viewer", nil)
	adm := a.mkUser(t, a.root, "acme", "forbid-admin", "admin", nil)

	t.Run("wrong workspace", func(t *testing.T) {
		got := a.gwDenied(t, "outsider on /acme-only", "/acme-only/x", outsider.Key, http.StatusForbidden)
		if got != "403 the API key's workspace may not use this route" {
			t.Errorf("body %q", got)
		}
		a.gwOK(t, "outsider on /api", "/api/x", outsider.Key, "outsider")
		a.gwOK(t, "acme's station on /acme-only", "/acme-only/x", station.Key, "forbid-station")
		a.gwOK(t, "the superadmin on /acme-only", "/acme-only/x", a.root, "root")
	})
	t.Run("role not listed", func(t *testing.T) {
		got := a.gwDenied(t, "api_user on /admins", "/admins/x", station.Key, http.StatusForbidden)
		if got != "403 the API user's role may not use this route" {
			t.Errorf("body %q", got)
		}
		a.gwDenied(t, "viewer on /admins", "/admins/x", viewer.Key, http.StatusForbidden)
		a.gwOK(t, "admin on /admins", "/admins/x", adm.Key, "forbid-admin")
	})
	t.Run("permission missing", func(t *testing.T) {
		got := a.gwDenied(t, "viewer on /api", "/api/x", viewer.Key, http.StatusForbidden)
		if got != "403 missing permission listeners.invoke" {
			t.Errorf("body %q", got)
		}
		a.gwOK(t, "viewer on /any", "/any/x", viewer.Key, "forbid-viewer")
		// Given the permission, the viewer passes on its very next request.
		res, body := a.admin(t, http.MethodPatch, "/workspaces/acme/users/"+viewer.ID, a.root,
			map[string]any{"permissions": []string{"listeners.invoke"}})
		accDecode[accUser](t, "granting listeners.invoke", res, body, http.StatusOK)
		a.gwOK(t, "viewer with listeners.invoke", "/api/x", viewer.Key, "forbid-viewer")
		// And taken away, it is refused again at once.
		res, body = a.admin(t, http.MethodPatch, "/workspaces/acme/users/"+viewer.ID, a.root,
			map[string]any{"permissions": []string{}})
		accDecode[accUser](t, "removing listeners.invoke", res, body, http.StatusOK)
		a.gwDenied(t, "viewer without listeners.invoke", "/api/x", viewer.Key, http.StatusForbidden)
	})
}

// testLifecycle: inactive → 401; active → 200; delete while active → 409;
// trash → 401; restore → 200; delete from trash → 401 for good.
func (a *acc) testLifecycle(t *testing.T) {
	t.Parallel()
	u := a.mkUser(t, a.root, "acme", "cycle", "api_user", nil)
	path := "/workspaces/acme/users/" + u.ID
	a.gwOK(t, "new user", "/api/x", u.Key, "cycle")

	a.setStatus(t, a.root, u, "inactive")
	a.gwDenied(t, "inactive", "/api/x", u.Key, http.StatusUnauthorized)
	a.setStatus(t, a.root, u, "active")
	a.gwOK(t, "active again", "/api/x", u.Key, "cycle")

	res, body := a.admin(t, http.MethodDelete, path, a.root, nil)
	accWantProblem(t, "DELETE an active user", res, body, http.StatusConflict)
	a.gwOK(t, "after the refused delete", "/api/x", u.Key, "cycle")

	a.setStatus(t, a.root, u, "trash")
	a.gwDenied(t, "trashed", "/api/x", u.Key, http.StatusUnauthorized)
	res, body = a.admin(t, http.MethodGet, path, a.root, nil)
	if got := accDecode[accUser](t, "GET trashed", res, body, http.StatusOK); got.Status != "trash" {
		t.Fatalf("trashed user = %s", body)
	}
	a.setStatus(t, a.root, u, "active")
	a.gwOK(t, "restored", "/api/x", u.Key, "cycle")

	a.setStatus(t, a.root, u, "trash")
	res, body = a.admin(t, http.MethodDelete, path, a.root, nil)
	if res.StatusCode != http.StatusNoContent || len(body) != 0 {
		t.Fatalf("DELETE from trash: %d %s", res.StatusCode, body)
	}
	a.gwDenied(t, "deleted", "/api/x", u.Key, http.StatusUnauthorized)
	res, body = a.admin(t, http.MethodGet, path, a.root, nil)
	accWantProblem(t, "GET deleted", res, body, http.StatusNotFound)
	res, body = a.admin(t, http.MethodGet, path+"/keys", a.root, nil)
	accWantProblem(t, "GET keys of deleted", res, body, http.StatusNotFound)
	if slices.Contains(a.usernames(t, "acme"), "cycle") {
		t.Fatal("the deleted user is still listed")
	}
	// The username is free again; the new user is another user, and the
	// old key does not come back to life with it.
	again := a.mkUser(t, a.root, "acme", "cycle", "api_user", nil)
	if again.ID == u.ID {
		t.Fatal("the new user has the deleted one's id")
	}
	a.gwDenied(t, "the deleted user's key", "/api/x", u.Key, http.StatusUnauthorized)
	a.gwOK(t, "the new user's key", "/api/x", again.Key, "cycle")
}

// testKeys: revoke, regenerate and reveal.
func (a *acc) testKeys(t *testing.T) {
	t.Parallel()
	u := a.mkUser(t, a.root, "acme", "keyholder", "api_user", nil)
	keysPath := "/workspaces/acme/users/" + u.ID + "/keys/"

	t.Run("revoke", func(t *testing.T) {
		k := a.mkKey(t, a.root, u, map[string]any{"name": "to-revoke"})
		a.gwOK(t, "before", "/api/x", k.Key, "keyholder") // cached
		res, body := a.admin(t, http.MethodDelete, keysPath+k.ID, a.root, nil)
		if res.StatusCode != http.StatusNoContent {
			t.Fatalf("revoking: %d %s", res.StatusCode, body)
		}
		got := a.gwDenied(t, "the very next request", "/api/x", k.Key, http.StatusUnauthorized)
		if got != "401 invalid API key" {
			t.Errorf("body %q", got)
		}
		a.gwOK(t, "the user's other key", "/api/x", u.Key, "keyholder")
		res, body = a.admin(t, http.MethodDelete, keysPath+k.ID, a.root, nil)
		accWantProblem(t, "revoking again", res, body, http.StatusNotFound)
	})
	t.Run("regenerate", func(t *testing.T) {
		old := a.mkKey(t, a.root, u, map[string]any{"name": "to-regenerate"})
		a.gwOK(t, "old before", "/api/x", old.Key, "keyholder")
		res, body := a.admin(t, http.MethodPost, keysPath+old.ID+"/regenerate", a.root, nil)
		nk := accDecode[accKey](t, "regenerating", res, body, http.StatusCreated)
		if nk.Key == "" || nk.ID == old.ID || nk.Key == old.Key {
			t.Fatalf("regenerated = %s", body)
		}
		a.gwDenied(t, "old after", "/api/x", old.Key, http.StatusUnauthorized)
		a.gwOK(t, "new", "/api/x", nk.Key, "keyholder")
		res, body = a.admin(t, http.MethodPost, keysPath+old.ID+"/regenerate", a.root, nil)
		accWantProblem(t, "regenerating a revoked key", res, body, http.StatusNotFound)
	})
	t.Run("reveal", func(t *testing.T) {
		k := a.mkKey(t, a.root, u, map[string]any{"name": "to-reveal"})
		res, body := a.admin(t, http.MethodPost, keysPath+k.ID+"/reveal", a.root, nil)
		rv := accDecode[accKey](t, "revealing", res, body, http.StatusOK)
		if rv.Key != k.Key || rv.ID != k.ID {
			t.Fatalf("revealed %q (id %s), created %q (id %s)", rv.Key, rv.ID, k.Key, k.ID)
		}
		// The first key, issued with the user, reveals the same too.
		res, body = a.admin(t, http.MethodPost, keysPath+u.KeyID+"/reveal", a.root, nil)
		if rv := accDecode[accKey](t, "revealing the first key", res, body, http.StatusOK); rv.Key != u.Key {
			t.Fatalf("revealed the first key as %q, created %q", rv.Key, u.Key)
		}
		// An editor may not reveal; the user itself neither.
		ed := a.mkUser(t, a.root, "acme", "key-editor", "editor", nil)
		res, body = a.admin(t, http.MethodPost, keysPath+k.ID+"/reveal", ed.Key, nil)
		accWantProblem(t, "reveal as editor", res, body, http.StatusForbidden, k.Key)
		res, body = a.admin(t, http.MethodPost, keysPath+k.ID+"/reveal", u.Key, nil)
		accWantProblem(t, "reveal as the user", res, body, http.StatusForbidden, k.Key)
		// A revoked key is not revealed again.
		res, body = a.admin(t, http.MethodDelete, keysPath+k.ID, a.root, nil)
		if res.StatusCode != http.StatusNoContent {
			t.Fatalf("revoking: %d %s", res.StatusCode, body)
		}
		res, body = a.admin(t, http.MethodPost, keysPath+k.ID+"/reveal", a.root, nil)
		accWantProblem(t, "revealing a revoked key", res, body, http.StatusNotFound, k.Key)
	})
}

// testGrace: a key regenerated with a grace period keeps working until it
// ends, beside the new one.
func (a *acc) testGrace(t *testing.T) {
	t.Parallel()
	u := a.mkUser(t, a.root, "acme", "graceful", "api_user", nil)
	a.gwOK(t, "old before", "/api/x", u.Key, "graceful")
	start := time.Now()
	res, body := a.admin(t, http.MethodPost, "/workspaces/acme/users/"+u.ID+"/keys/"+u.KeyID+"/regenerate", a.root,
		map[string]string{"grace": "3s"})
	nk := accDecode[accKey](t, "regenerating with grace", res, body, http.StatusCreated)
	if nk.Key == "" || nk.ID == u.KeyID {
		t.Fatalf("regenerated = %s", body)
	}
	a.gwOK(t, "old in the grace period", "/api/x", u.Key, "graceful")
	a.gwOK(t, "new in the grace period", "/api/x", nk.Key, "graceful")

	res, body = a.admin(t, http.MethodGet, "/workspaces/acme/users/"+u.ID+"/keys", a.root, nil)
	keys := accDecode[struct {
		Items []accKey `json:"items"`
	}](t, "listing keys", res, body, http.StatusOK)
	var oldMeta *accKey
	for i := range keys.Items {
		if keys.Items[i].ID == u.KeyID {
			oldMeta = &keys.Items[i]
		}
	}
	if oldMeta == nil || oldMeta.RevokesAt == nil || oldMeta.RevokesAt.Before(start.Add(3*time.Second-time.Second)) {
		t.Fatalf("the old key's metadata in the grace period: %s", body)
	}

	ended := accPoll(t, "the grace period ends", 8*time.Second, func() bool {
		res, body, m := a.gw(t, "/api/x", u.Key)
		if res.StatusCode == http.StatusOK {
			return false
		}
		a.wantDenied(t, "old after the grace period", res, body, m, http.StatusUnauthorized, u.Key)
		return true
	})
	if d := ended.Sub(start); d < 3*time.Second {
		t.Errorf("the old key stopped after %v, before the 3s grace period ended", d)
	}
	a.gwOK(t, "new after the grace period", "/api/x", nk.Key, "graceful")

	// A grace that is not a duration is a 400, and changes nothing.
	res, body = a.admin(t, http.MethodPost, "/workspaces/acme/users/"+u.ID+"/keys/"+nk.ID+"/regenerate", a.root,
		map[string]string{"grace": "soon"})
	accWantProblem(t, "bad grace", res, body, http.StatusBadRequest)
	a.gwOK(t, "new after a bad regenerate", "/api/x", nk.Key, "graceful")
}

// testRules: who may manage whom, over HTTP.
func (a *acc) testRules(t *testing.T) {
	t.Parallel()
	const ws = "rules"
	a.mkWorkspace(t, ws)
	users := "/workspaces/" + ws + "/users"

	t.Run("editor cannot manage users", func(t *testing.T) {
		t.Parallel()
		// The editor is "as admin, but cannot manage users": not even
		// api_basic ones, which api_business and api_registration manage.
		ed := a.mkUser(t, a.root, ws, "rule-editor", "editor", nil)
		basic := a.mkUser(t, a.root, ws, "editor-target", "api_basic", nil)
		// Each attempt on its own, so that every one that passes is told.
		for _, role := range []string{"api_user", "viewer", "api_basic"} {
			t.Run("create "+role, func(t *testing.T) {
				res, body := a.admin(t, http.MethodPost, users, ed.Key, map[string]any{"username": "by-editor-" + role, "kind": "api", "role": role})
				accWantProblem(t, "editor creates "+role, res, body, http.StatusForbidden, ed.Key)
			})
		}
		t.Run("update api_basic", func(t *testing.T) {
			res, body := a.admin(t, http.MethodPatch, users+"/"+basic.ID, ed.Key, map[string]any{"email": "edited@example.com"})
			accWantProblem(t, "editor updates an api_basic user", res, body, http.StatusForbidden)
		})
		t.Run("key for api_basic", func(t *testing.T) {
			res, body := a.admin(t, http.MethodPost, users+"/"+basic.ID+"/keys", ed.Key, map[string]any{"name": "by-editor"})
			accWantProblem(t, "editor makes a key for an api_basic user", res, body, http.StatusForbidden)
		})
		t.Run("disable api_basic", func(t *testing.T) {
			res, body := a.admin(t, http.MethodPost, users+"/"+basic.ID+"/status", ed.Key, map[string]string{"status": "inactive"})
			accWantProblem(t, "editor disables an api_basic user", res, body, http.StatusForbidden)
		})
		for _, name := range a.usernames(t, ws) {
			if strings.HasPrefix(name, "by-editor-") {
				t.Errorf("refused user %s was stored", name)
			}
		}
		a.gwOK(t, "the api_basic user", "/any/x", basic.Key, "editor-target")
	})
	t.Run("admin limits", func(t *testing.T) {
		t.Parallel()
		adm := a.mkUser(t, a.root, ws, "rule-admin", "admin", nil)
		res, body := a.admin(t, http.MethodPost, users, adm.Key, map[string]any{"username": "by-admin-super", "kind": "api", "role": "superadmin"})
		accWantProblem(t, "admin creates a superadmin", res, body, http.StatusForbidden)
		res, body = a.admin(t, http.MethodPost, users, adm.Key, map[string]any{
			"username": "by-admin-wsm", "kind": "api", "role": "api_user", "permissions": []string{"workspaces.manage"},
		})
		accWantProblem(t, "admin grants workspaces.manage", res, body, http.StatusForbidden)
		// Nor on an existing user, nor by promoting one.
		target := a.mkUser(t, adm.Key, ws, "by-admin-ok", "api_user", nil)
		res, body = a.admin(t, http.MethodPatch, users+"/"+target.ID, adm.Key, map[string]any{"permissions": []string{"workspaces.manage"}})
		accWantProblem(t, "admin grants workspaces.manage by PATCH", res, body, http.StatusForbidden)
		res, body = a.admin(t, http.MethodPatch, users+"/"+target.ID, adm.Key, map[string]any{"role": "superadmin"})
		accWantProblem(t, "admin promotes to superadmin", res, body, http.StatusForbidden)
		res, body = a.admin(t, http.MethodPost, "/workspaces", adm.Key, map[string]any{"id": "by-admin"})
		accWantProblem(t, "admin creates a workspace", res, body, http.StatusForbidden)
		names := a.usernames(t, ws)
		if slices.Contains(names, "by-admin-super") || slices.Contains(names, "by-admin-wsm") {
			t.Fatalf("a refused user was stored: %v", names)
		}
		res, body = a.admin(t, http.MethodGet, users+"/"+target.ID, a.root, nil)
		if got := accDecode[accUser](t, "GET the target", res, body, http.StatusOK); got.Role != "api_user" || len(got.Permissions) != 0 {
			t.Fatalf("the target changed: %s", body)
		}
		a.gwOK(t, "the admin's user", "/api/x", target.Key, "by-admin-ok")
	})
	t.Run("api_registration", func(t *testing.T) {
		t.Parallel()
		reg := a.mkUser(t, a.root, ws, "rule-registrar", "api_registration", nil)
		b := a.mkUser(t, reg.Key, ws, "registered-basic", "api_basic", nil)
		// The key works: at the admin API and at the gateway.
		res, body := a.admin(t, http.MethodGet, "/me", b.Key, nil)
		me := accDecode[struct {
			User accUser `json:"user"`
		}](t, "GET /me as the registered user", res, body, http.StatusOK)
		if me.User.ID != b.ID || me.User.Role != "api_basic" {
			t.Fatalf("me = %s", body)
		}
		a.gwOK(t, "the registered user's key", "/any/x", b.Key, "registered-basic")

		for _, role := range []string{"api_user", "api_business", "admin"} {
			res, body = a.admin(t, http.MethodPost, users, reg.Key, map[string]any{"username": "reg-" + role, "kind": "api", "role": role, "issue_key": true})
			accWantProblem(t, "registrar creates "+role, res, body, http.StatusForbidden)
		}
		res, body = a.admin(t, http.MethodPost, users, reg.Key, map[string]any{
			"username": "reg-perms", "kind": "api", "role": "api_basic", "permissions": []string{"events.write"},
		})
		accWantProblem(t, "registrar grants a permission", res, body, http.StatusForbidden)
		res, body = a.admin(t, http.MethodPost, users+"/"+b.ID+"/keys", reg.Key, map[string]any{"name": "more"})
		accWantProblem(t, "registrar makes another key", res, body, http.StatusForbidden)
		res, body = a.admin(t, http.MethodPost, users+"/"+b.ID+"/keys/"+b.KeyID+"/regenerate", reg.Key, nil)
		accWantProblem(t, "registrar regenerates the key", res, body, http.StatusForbidden)
		res, body = a.admin(t, http.MethodPost, users+"/"+b.ID+"/keys/"+b.KeyID+"/reveal", reg.Key, nil)
		accWantProblem(t, "registrar reveals the key", res, body, http.StatusForbidden, b.Key)
		names := a.usernames(t, ws)
		for _, n := range []string{"reg-api_user", "reg-api_business", "reg-admin", "reg-perms"} {
			if slices.Contains(names, n) {
				t.Errorf("refused user %s was stored", n)
			}
		}
		res, body = a.admin(t, http.MethodGet, users+"/"+b.ID+"/keys", a.root, nil)
		keys := accDecode[struct {
			Items []accKey `json:"items"`
		}](t, "the registered user's keys", res, body, http.StatusOK)
		if len(keys.Items) != 1 {
			t.Fatalf("registered user's keys = %s", body)
		}
	})
	t.Run("api_business", func(t *testing.T) {
		t.Parallel()
		biz := a.mkUser(t, a.root, ws, "rule-business", "api_business", nil)
		basic := a.mkUser(t, a.root, ws, "biz-basic", "api_basic", nil)
		plain := a.mkUser(t, a.root, ws, "biz-api-user", "api_user", nil)
		res, body := a.admin(t, http.MethodPatch, users+"/"+basic.ID, biz.Key, map[string]any{"email": "basic@example.com", "organization": "Acme Devices"})
		if got := accDecode[accUser](t, "business updates api_basic", res, body, http.StatusOK); got.Email != "basic@example.com" {
			t.Fatalf("updated = %s", body)
		}
		res, body = a.admin(t, http.MethodPatch, users+"/"+plain.ID, biz.Key, map[string]any{"email": "plain@example.com"})
		accWantProblem(t, "business updates api_user", res, body, http.StatusForbidden)
		res, body = a.admin(t, http.MethodGet, users+"/"+plain.ID, a.root, nil)
		if got := accDecode[accUser](t, "GET the api_user", res, body, http.StatusOK); got.Email != "" {
			t.Fatalf("the api_user changed: %s", body)
		}
		// It also disables and enables api_basic users, not others.
		a.setStatus(t, biz.Key, basic, "inactive")
		a.gwDenied(t, "disabled by business", "/any/x", basic.Key, http.StatusUnauthorized)
		a.setStatus(t, biz.Key, basic, "active")
		a.gwOK(t, "enabled by business", "/any/x", basic.Key, "biz-basic")
		res, body = a.admin(t, http.MethodPost, users+"/"+plain.ID+"/status", biz.Key, map[string]string{"status": "inactive"})
		accWantProblem(t, "business disables api_user", res, body, http.StatusForbidden)
		a.gwOK(t, "the api_user", "/api/x", plain.Key, "biz-api-user")
	})
	t.Run("api_basic self", func(t *testing.T) {
		t.Parallel()
		me := a.mkUser(t, a.root, ws, "self-basic", "api_basic", nil)
		other := a.mkUser(t, a.root, ws, "other-basic", "api_basic", nil)
		res, body := a.admin(t, http.MethodPost, users+"/"+other.ID+"/status", me.Key, map[string]string{"status": "inactive"})
		accWantProblem(t, "api_basic disables another", res, body, http.StatusForbidden)
		a.gwOK(t, "the other is still active", "/any/x", other.Key, "other-basic")
		res, body = a.admin(t, http.MethodPatch, users+"/"+me.ID, me.Key, map[string]any{"role": "api_business"})
		accWantProblem(t, "api_basic promotes itself", res, body, http.StatusForbidden)
		res, body = a.admin(t, http.MethodPost, users+"/"+me.ID+"/status", me.Key, map[string]string{"status": "trash"})
		accWantProblem(t, "api_basic trashes itself", res, body, http.StatusForbidden)
		// It may update its own profile.
		res, body = a.admin(t, http.MethodPatch, "/me", me.Key, map[string]any{"email": "self@example.com", "timezone": "Europe/Paris"})
		if got := accDecode[accUser](t, "PATCH /me", res, body, http.StatusOK); got.Email != "self@example.com" {
			t.Fatalf("PATCH /me = %s", body)
		}
		a.setStatus(t, me.Key, me, "inactive")
		a.gwDenied(t, "after disabling itself", "/any/x", me.Key, http.StatusUnauthorized)
		res, body = a.admin(t, http.MethodGet, "/me", me.Key, nil)
		accWantProblem(t, "GET /me after disabling itself", res, body, http.StatusUnauthorized, me.Key)
	})
	t.Run("private note", func(t *testing.T) {
		t.Parallel()
		const note = "owes us 3 invoices"
		adm := a.mkUser(t, a.root, ws, "note-admin", "admin", nil)
		u := a.mkUser(t, a.root, ws, "noted", "api_user", map[string]any{"private_note": note})
		for who, key := range map[string]string{"root": a.root, "admin": adm.Key} {
			res, body := a.admin(t, http.MethodGet, users+"/"+u.ID, key, nil)
			if got := accDecode[accUser](t, "GET as "+who, res, body, http.StatusOK); got.PrivateNote != note {
				t.Errorf("GET as %s: private_note missing: %s", who, body)
			}
		}
		res, body := a.admin(t, http.MethodGet, users+"?q=noted", adm.Key, nil)
		if res.StatusCode != http.StatusOK || !strings.Contains(string(body), note) {
			t.Errorf("list as admin: %d %s", res.StatusCode, body)
		}
		res, body = a.admin(t, http.MethodGet, "/me", u.Key, nil)
		if res.StatusCode != http.StatusOK || strings.Contains(string(body), note) || strings.Contains(string(body), "private_note") {
			t.Errorf("GET /me as the user shows the note: %d %s", res.StatusCode, body)
		}
		res, body = a.admin(t, http.MethodGet, users+"/"+u.ID, u.Key, nil)
		if res.StatusCode != http.StatusOK || strings.Contains(string(body), note) || strings.Contains(string(body), "private_note") {
			t.Errorf("GET the user as itself shows the note: %d %s", res.StatusCode, body)
		}
		res, body = a.admin(t, http.MethodPatch, "/me", u.Key, map[string]any{"language": "fr-CA"})
		if res.StatusCode != http.StatusOK || strings.Contains(string(body), note) {
			t.Errorf("PATCH /me answer shows the note: %d %s", res.StatusCode, body)
		}
		res, body = a.admin(t, http.MethodPatch, "/me", u.Key, map[string]any{"private_note": "mine"})
		accWantProblem(t, "the user sets its note", res, body, http.StatusBadRequest)
	})
	t.Run("same username in two workspaces", func(t *testing.T) {
		t.Parallel()
		a.mkWorkspace(t, "twin-ws")
		one := a.mkUser(t, a.root, ws, "twin", "api_user", nil)
		two := a.mkUser(t, a.root, "twin-ws", "twin", "api_user", nil)
		if one.ID == two.ID {
			t.Fatal("the same user in two workspaces")
		}
		a.setStatus(t, a.root, one, "inactive")
		a.gwDenied(t, "twin in rules, inactive", "/api/x", one.Key, http.StatusUnauthorized)
		a.gwOK(t, "twin in twin-ws", "/api/x", two.Key, "twin")
		res, body := a.admin(t, http.MethodGet, "/workspaces/twin-ws/users/"+two.ID, a.root, nil)
		if got := accDecode[accUser](t, "GET the other twin", res, body, http.StatusOK); got.Status != "active" || got.Workspace != "twin-ws" {
			t.Fatalf("the other twin = %s", body)
		}
		// One's key does not reach the other's workspace by its id.
		res, body = a.admin(t, http.MethodGet, "/workspaces/twin-ws/users/"+one.ID, a.root, nil)
		accWantProblem(t, "one's id in the other workspace", res, body, http.StatusNotFound)
	})
	t.Run("usernames unique case-insensitively", func(t *testing.T) {
		t.Parallel()
		a.mkUser(t, a.root, ws, "CaseUser", "api_user", nil)
		for _, name := range []string{"caseuser", "CASEUSER", "CaseUser"} {
			res, body := a.admin(t, http.MethodPost, users, a.root, map[string]any{"username": name, "kind": "api", "role": "api_user", "issue_key": true})
			accWantProblem(t, "creating "+name, res, body, http.StatusConflict)
		}
		n := 0
		for _, name := range a.usernames(t, ws) {
			if strings.EqualFold(name, "caseuser") {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%d users named caseuser", n)
		}
		// Renaming onto a taken name is refused too.
		other := a.mkUser(t, a.root, ws, "case-other", "api_user", nil)
		res, body := a.admin(t, http.MethodPatch, users+"/"+other.ID, a.root, map[string]any{"username": "CASEuser"})
		accWantProblem(t, "renaming onto a taken name", res, body, http.StatusConflict)
	})
}

// testBadInput: malformed requests are 400 or 413 problems and store
// nothing.
func (a *acc) testBadInput(t *testing.T) {
	t.Parallel()
	const ws = "bad-input"
	a.mkWorkspace(t, ws)
	victim := a.mkUser(t, a.root, ws, "victim", "api_user", nil)
	users := "/workspaces/" + ws + "/users"
	before := a.usernames(t, ws)
	res, body := a.admin(t, http.MethodGet, users+"/"+victim.ID, a.root, nil)
	victimBefore := accDecode[accUser](t, "GET victim", res, body, http.StatusOK)

	big := `{"username":"big","kind":"api","role":"api_user","private_note":"` + strings.Repeat("a", 2<<20) + `"}`
	cases := []struct {
		name, method, path string
		body               any
		status             int
		field              string
	}{
		{"malformed JSON", http.MethodPost, users, `{"username": "broken", "kind": "api",`, 400, ""},
		{"not an object", http.MethodPost, users, `["username", "broken"]`, 400, ""},
		{"trailing data", http.MethodPost, users, `{"username":"trail","kind":"api","role":"api_user"} {}`, 400, ""},
		{"unknown field", http.MethodPost, users, map[string]any{"username": "unknown", "kind": "api", "role": "api_user", "colour": "red"}, 400, "colour"},
		{"wrong type", http.MethodPost, users, map[string]any{"username": 42, "kind": "api", "role": "api_user"}, 400, "username"},
		{"2 MiB body", http.MethodPost, users, big, 413, ""},
		{"bad username (space)", http.MethodPost, users, map[string]any{"username": "has space", "kind": "api", "role": "api_user"}, 400, "username"},
		{"bad username (usr_)", http.MethodPost, users, map[string]any{"username": "usr_fake", "kind": "api", "role": "api_user"}, 400, "username"},
		{"bad username (empty)", http.MethodPost, users, map[string]any{"username": "", "kind": "api", "role": "api_user"}, 400, "username"},
		{"bad username (65 chars)", http.MethodPost, users, map[string]any{"username": strings.Repeat("u", 65), "kind": "api", "role": "api_user"}, 400, "username"},
		{"bad timezone", http.MethodPost, users, map[string]any{"username": "tz", "kind": "api", "role": "api_user", "timezone": "Mars/Olympus_Mons"}, 400, "timezone"},
		{"unknown role", http.MethodPost, users, map[string]any{"username": "wizard", "kind": "api", "role": "wizard"}, 400, "role"},
		{"bad kind", http.MethodPost, users, map[string]any{"username": "robot", "kind": "robot", "role": "api_user"}, 400, "kind"},
		{"empty body", http.MethodPost, users, "", 400, ""},
		{"PATCH unknown field", http.MethodPatch, users + "/" + victim.ID, map[string]any{"nickname": "v"}, 400, "nickname"},
		{"PATCH bad timezone", http.MethodPatch, users + "/" + victim.ID, map[string]any{"timezone": "Nowhere/Town"}, 400, "timezone"},
		{"PATCH bad username", http.MethodPatch, users + "/" + victim.ID, map[string]any{"username": "usr_victim"}, 400, "username"},
		{"PATCH 2 MiB body", http.MethodPatch, users + "/" + victim.ID, `{"private_note":"` + strings.Repeat("b", 2<<20) + `"}`, 413, ""},
		{"bad status", http.MethodPost, users + "/" + victim.ID + "/status", map[string]any{"status": "sleeping"}, 400, "status"},
		{"bad workspace id", http.MethodPost, "/workspaces", map[string]any{"id": "Bad_WS"}, 400, "id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, body := a.admin(t, c.method, c.path, a.root, c.body)
			p := accWantProblem(t, c.name, res, body, c.status)
			if c.field != "" && p.Field != c.field {
				t.Errorf("field = %q, want %q (%s)", p.Field, c.field, body)
			}
		})
	}
	t.Run("2 MiB chunked body", func(t *testing.T) {
		// No Content-Length: the limit holds while reading.
		req, err := http.NewRequest(http.MethodPost, a.base+"/admin"+users, io.MultiReader(strings.NewReader(big)))
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = -1
		req.Header.Set("Authorization", "Bearer "+a.root)
		req.Header.Set("Content-Type", "application/json")
		res, err := a.tester.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		accWantProblem(t, "chunked", res, body, http.StatusRequestEntityTooLarge)
	})
	t.Run("nothing stored", func(t *testing.T) {
		if after := a.usernames(t, ws); !slices.Equal(before, after) {
			t.Fatalf("users before %v, after %v", before, after)
		}
		res, body := a.admin(t, http.MethodGet, users+"/"+victim.ID, a.root, nil)
		after := accDecode[accUser](t, "GET victim", res, body, http.StatusOK)
		if after.Version != victimBefore.Version || after.Timezone != "" || after.Username != "victim" || after.Status != "active" || after.PrivateNote != "" {
			t.Fatalf("victim changed: %s", body)
		}
		res, body = a.admin(t, http.MethodGet, "/workspaces/bad_ws", a.root, nil)
		if res.StatusCode == http.StatusOK {
			t.Fatalf("the bad workspace exists: %s", body)
		}
	})
}

// testRestart: with the embedded store, users and keys survive Caddy
// stopping (the config unloaded, the store closed) and starting again.
func (a *acc) testRestart(t *testing.T) {
	u := a.mkUser(t, a.root, "acme", "survivor", "api_user", map[string]any{"private_note": "kept"})
	k := a.mkKey(t, a.root, u, map[string]any{"name": "second"})
	a.gwOK(t, "before", "/api/x", k.Key, "survivor")

	a.unload()
	if t.Failed() {
		t.FailNow()
	}
	// The site is down, and the database closed: the bootstrap command
	// opens it at once (it would wait for the lock and fail otherwise).
	if _, err := a.tester.Client.Get(a.base + "/api/x"); err == nil {
		t.Fatal("the site still answers with the config unloaded")
	}
	var stdout, stderr bytes.Buffer
	if _, err := bootstrap(&stdout, &stderr, a.cfgPath, "caddyfile", "acme", "root2"); err != nil {
		t.Fatalf("bootstrap with the config unloaded: %v\n%s", err, stderr.String())
	}
	root2 := strings.TrimSpace(stdout.String())

	a.tester.InitServer(a.cf, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	a.gwOK(t, "the second key after", "/api/x", k.Key, "survivor")
	a.gwOK(t, "the first key after", "/api/x", u.Key, "survivor")
	res, body := a.admin(t, http.MethodGet, "/workspaces/acme/users/"+u.ID, a.root, nil)
	if got := accDecode[accUser](t, "GET survivor", res, body, http.StatusOK); got.PrivateNote != "kept" || got.Status != "active" {
		t.Fatalf("survivor = %s", body)
	}
	res, body = a.admin(t, http.MethodGet, "/me", root2, nil)
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"root2"`) {
		t.Fatalf("the superadmin bootstrapped while Caddy was stopped: %d %s", res.StatusCode, body)
	}
}

// downUsers are the users of testStoreDown.
type downUsers struct{ cached, uncached accUser }

// prepareStoreDown makes the users of testStoreDown ahead of time. An
// instance hears its own changes back from Redis pub/sub some time after
// it made them, and drops the user's cached principal then: made right
// before Redis stops, the principal warmed up could be dropped again just
// before the test needs it cached.
func (a *acc) prepareStoreDown(t *testing.T) downUsers {
	t.Helper()
	return downUsers{
		cached:   a.mkUser(t, a.root, "acme", "down-cached", "api_user", nil),
		uncached: a.mkUser(t, a.root, "acme", "down-uncached", "api_user", nil),
	}
}

// testStoreDown: Redis stopped, a cached principal still passes, an
// uncached one is a 503 with Retry-After, admin writes are 503 problems;
// Redis back, everything works again without touching Caddy.
func (a *acc) testStoreDown(t *testing.T, d downUsers) {
	cached, uncached := d.cached, d.uncached
	a.gwOK(t, "warming the cache", "/api/x", cached.Key, "down-cached")

	a.redis.Stop()
	a.gwOK(t, "cached principal, store down", "/api/x", cached.Key, "down-cached")

	res, body, m := a.gw(t, "/api/x", uncached.Key)
	a.wantDenied(t, "uncached principal, store down", res, body, m, http.StatusServiceUnavailable, uncached.Key)
	if got := res.Header.Get("Retry-After"); got == "" {
		t.Error("503 without Retry-After")
	} else if n, err := strconv.Atoi(got); err != nil || n <= 0 {
		t.Errorf("Retry-After = %q", got)
	}
	if res.Header.Get("WWW-Authenticate") != "" {
		t.Errorf("503 with WWW-Authenticate %q", res.Header.Get("WWW-Authenticate"))
	}
	if strings.Contains(string(body), a.redis.Addr) || string(body) != "503 authorization store unavailable" {
		t.Errorf("503 body = %q", body)
	}

	res, body = a.admin(t, http.MethodPost, "/workspaces/acme/users", a.root, map[string]any{"username": "down-new", "kind": "api", "role": "api_user"})
	accWantProblem(t, "admin write, store down", res, body, http.StatusServiceUnavailable, a.root)
	if strings.Contains(string(body), a.redis.Addr) {
		t.Errorf("problem names the store: %s", body)
	}
	res, body = a.admin(t, http.MethodPost, "/workspaces/acme/users/"+cached.ID+"/status", a.root, map[string]string{"status": "inactive"})
	accWantProblem(t, "status change, store down", res, body, http.StatusServiceUnavailable, a.root)
	res, body = a.admin(t, http.MethodGet, "/me", uncached.Key, nil)
	accWantProblem(t, "admin call by an uncached principal, store down", res, body, http.StatusServiceUnavailable, uncached.Key)

	a.redis.Restart()
	accPoll(t, "the uncached principal passes once Redis is back", 10*time.Second, func() bool {
		res, _, _ := a.gw(t, "/api/x", uncached.Key)
		return res.StatusCode == http.StatusOK
	})
	a.gwOK(t, "uncached principal, store back", "/api/x", uncached.Key, "down-uncached")
	a.gwOK(t, "cached principal, store back", "/api/x", cached.Key, "down-cached")
	created := a.mkUser(t, a.root, "acme", "down-new", "api_user", nil)
	a.gwOK(t, "a user created once the store is back", "/api/x", created.Key, "down-new")
	// The refused status change did not happen.
	res, body = a.admin(t, http.MethodGet, "/workspaces/acme/users/"+cached.ID, a.root, nil)
	if got := accDecode[accUser](t, "GET the cached user", res, body, http.StatusOK); got.Status != "active" {
		t.Fatalf("cached user = %s", body)
	}
}
