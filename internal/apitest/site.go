package apitest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The challenges the gateway and the admin API send.
const (
	ChallengeInvalid = `Bearer realm="apiusers", error="invalid_token"`
	ChallengeScope   = `Bearer realm="apiusers", error="insufficient_scope"`
)

// Site is a client of a Caddy site that serves the admin API under
// /admin and gateway routes.
type Site struct {
	// Base is the site's URL, such as http://localhost:8080.
	Base string
	// Client sends the requests. Default: a client with a 10s timeout.
	Client *http.Client
	// Root is a superadmin's key, which MkWorkspace and Usernames use.
	Root string
	// Upstream is the upstream of the site's gateway routes, which WantOK
	// and WantDenied look at.
	Upstream *Upstream
}

var defaultClient = &http.Client{Timeout: 10 * time.Second}

// Do sends a request to the site with the headers h. body is sent as it
// is when it is a string or []byte, else JSON-encoded; nil (or "") sends
// none. A body is labelled application/json unless h says otherwise. It
// returns the response with its body read.
func (s *Site) Do(tb testing.TB, method, path string, h http.Header, body any) (*http.Response, []byte) {
	tb.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		if b == "" {
			body = nil
			break
		}
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			tb.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, s.Base+path, rd)
	if err != nil {
		tb.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	c := s.Client
	if c == nil {
		c = defaultClient
	}
	res, err := c.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		tb.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return res, b
}

// Bearer is the header that carries key ("" for none).
func Bearer(key string) http.Header {
	if key == "" {
		return http.Header{}
	}
	return http.Header{"Authorization": {"Bearer " + key}}
}

// Call sends a request with key as a Bearer token.
func (s *Site) Call(tb testing.TB, method, path, key string, body any) (*http.Response, []byte) {
	tb.Helper()
	return s.Do(tb, method, path, Bearer(key), body)
}

// Send calls path with key and a raw body ("" for none), and returns the
// status and the body of the answer.
func (s *Site) Send(tb testing.TB, key, method, path, body string) (int, []byte) {
	tb.Helper()
	res, b := s.Call(tb, method, path, key, body)
	return res.StatusCode, b
}

var marks atomic.Int64

// Mark returns a value no other request of the test binary carries.
func Mark() string { return "m" + strconv.FormatInt(marks.Add(1), 10) }

// Gateway calls a gateway route with key as a Bearer token and a fresh
// MarkHeader, which it returns too.
func (s *Site) Gateway(tb testing.TB, path, key string) (*http.Response, []byte, string) {
	tb.Helper()
	m := Mark()
	h := Bearer(key)
	h.Set(MarkHeader, m)
	res, body := s.Do(tb, http.MethodGet, path, h, nil)
	return res, body, m
}

// API calls the admin API (path below /admin) with key as a Bearer token.
func (s *Site) API(tb testing.TB, method, path, key string, body any) (*http.Response, []byte) {
	tb.Helper()
	return s.Call(tb, method, "/admin"+path, key, body)
}

// Admin calls the admin API with key and wants status; it returns the
// answer's body.
func (s *Site) Admin(tb testing.TB, key, method, path string, body any, status int) []byte {
	tb.Helper()
	res, b := s.API(tb, method, path, key, body)
	if res.StatusCode != status {
		tb.Fatalf("admin %s %s: %d %s, want %d", method, path, res.StatusCode, b, status)
	}
	return b
}

// WantOK checks a gateway answer that the upstream served, as username:
// 200 "hello <username>", and the request marked m seen upstream.
func (s *Site) WantOK(tb testing.TB, what string, res *http.Response, body []byte, m, username string) {
	tb.Helper()
	if res.StatusCode != http.StatusOK || string(body) != "hello "+username {
		tb.Fatalf("%s: %d %q, want 200 %q", what, res.StatusCode, body, "hello "+username)
	}
	if s.Upstream.ByMark(m) == nil {
		tb.Fatalf("%s: the upstream did not see the request", what)
	}
}

// WantDenied checks a gateway refusal: the status, the challenge, a
// one-line body (through handle_errors) that holds none of keys, and the
// request marked m never upstream.
func (s *Site) WantDenied(tb testing.TB, what string, res *http.Response, body []byte, m string, status int, keys ...string) {
	tb.Helper()
	if res.StatusCode != status {
		tb.Fatalf("%s: %d %q, want %d", what, res.StatusCode, body, status)
	}
	want := map[int]string{http.StatusUnauthorized: ChallengeInvalid, http.StatusForbidden: ChallengeScope}[status]
	if got := res.Header.Values("WWW-Authenticate"); want != "" && (len(got) != 1 || got[0] != want) {
		tb.Errorf("%s: WWW-Authenticate = %q, want %q", what, got, want)
	}
	if !strings.HasPrefix(string(body), strconv.Itoa(status)+" ") || strings.ContainsAny(string(body), "\r\n") {
		tb.Errorf("%s: body %q is not one line saying why", what, body)
	}
	NoSecrets(tb, what, body, keys...)
	if s.Upstream.ByMark(m) != nil {
		tb.Errorf("%s: the upstream saw a refused request", what)
	}
}

// GatewayOK calls path with key and wants the upstream to serve username.
func (s *Site) GatewayOK(tb testing.TB, what, path, key, username string) {
	tb.Helper()
	res, body, m := s.Gateway(tb, path, key)
	s.WantOK(tb, what, res, body, m, username)
}

// GatewayDenied calls path with key, wants status, and returns the body.
func (s *Site) GatewayDenied(tb testing.TB, what, path, key string, status int) string {
	tb.Helper()
	res, body, m := s.Gateway(tb, path, key)
	s.WantDenied(tb, what, res, body, m, status, key)
	return string(body)
}

// Want calls a gateway route as u and wants status; a 200 (but to HEAD)
// must say "hello <u's username>", as the upstream does.
func (s *Site) Want(tb testing.TB, status int, u User, method, path string) {
	tb.Helper()
	res, body := s.Call(tb, method, path, u.Key, nil)
	if res.StatusCode != status {
		tb.Fatalf("%s %s %s: %d %s, want %d", u.Username, method, path, res.StatusCode, body, status)
	}
	if status == http.StatusOK && method != http.MethodHead && string(body) != "hello "+u.Username {
		tb.Fatalf("%s %s %s: body %q", u.Username, method, path, body)
	}
}

// MkWorkspace creates workspace id, named "Workspace <id>", as root.
func (s *Site) MkWorkspace(tb testing.TB, id string) {
	tb.Helper()
	res, body := s.API(tb, http.MethodPost, "/workspaces", s.Root, map[string]any{"id": id, "name": "Workspace " + id})
	ws := Decode[struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}](tb, "creating workspace "+id, res, body, http.StatusCreated)
	if ws.ID != id || ws.Name != "Workspace "+id {
		tb.Fatalf("created workspace = %+v", ws)
	}
}

// Usernames lists the usernames of workspace ws (up to 500), sorted, as
// root.
func (s *Site) Usernames(tb testing.TB, ws string) []string {
	tb.Helper()
	res, body := s.API(tb, http.MethodGet, "/workspaces/"+ws+"/users?limit=500", s.Root, nil)
	l := Decode[struct {
		Items []User `json:"items"`
	}](tb, "listing users of "+ws, res, body, http.StatusOK)
	var names []string
	for _, u := range l.Items {
		names = append(names, u.Username)
	}
	slices.Sort(names)
	return names
}

// User is a user as the admin API returns it, with its first key when it
// was created with one.
type User struct {
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

// Key is a key as create, regenerate, reveal and list return it.
type Key struct {
	ID        string     `json:"id"`
	UserID    string     `json:"user_id"`
	Name      string     `json:"name"`
	Key       string     `json:"key"`
	ExpiresAt *time.Time `json:"expires_at"`
	RevokesAt *time.Time `json:"revokes_at"`
}

// Problem is an RFC 9457 problem as the admin API answers errors.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Field  string `json:"field"`
}

// MkUser creates an API user with its first key in workspace ws, as
// actor; extra adds fields to the request. It wants 201 and the user as
// asked for (active, unless extra names another status).
func (s *Site) MkUser(tb testing.TB, actor, ws, username, role string, extra map[string]any) User {
	tb.Helper()
	in := map[string]any{"username": username, "kind": "api", "role": role, "issue_key": true}
	for k, v := range extra {
		in[k] = v
	}
	res, body := s.API(tb, http.MethodPost, "/workspaces/"+ws+"/users", actor, in)
	u := Decode[User](tb, "creating "+username, res, body, http.StatusCreated)
	status, _ := in["status"].(string)
	if status == "" {
		status = "active"
	}
	if u.ID == "" || u.Key == "" || u.KeyID == "" || u.Username != username || u.Role != role || u.Status != status {
		tb.Fatalf("created %s = %s", username, body)
	}
	return u
}

// MkTeam creates a team in workspace ws as actor and returns its id.
func (s *Site) MkTeam(tb testing.TB, actor, ws string, in map[string]any) string {
	tb.Helper()
	var team struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(s.Admin(tb, actor, http.MethodPost, "/workspaces/"+ws+"/teams", in, http.StatusCreated), &team); err != nil || team.ID == "" {
		tb.Fatalf("creating a team: %v", err)
	}
	return team.ID
}

// MkKey creates a key for u as actor.
func (s *Site) MkKey(tb testing.TB, actor string, u User, in map[string]any) Key {
	tb.Helper()
	res, body := s.API(tb, http.MethodPost, "/workspaces/"+u.Workspace+"/users/"+u.ID+"/keys", actor, in)
	k := Decode[Key](tb, "creating a key for "+u.Username, res, body, http.StatusCreated)
	if k.ID == "" || k.Key == "" || k.UserID != u.ID {
		tb.Fatalf("created key = %s", body)
	}
	return k
}

// SetStatus sets u's status as actor and wants 200.
func (s *Site) SetStatus(tb testing.TB, actor string, u User, status string) {
	tb.Helper()
	res, body := s.API(tb, http.MethodPost, "/workspaces/"+u.Workspace+"/users/"+u.ID+"/status", actor, map[string]string{"status": status})
	got := Decode[User](tb, "setting "+u.Username+" "+status, res, body, http.StatusOK)
	if got.Status != status {
		tb.Fatalf("status after setting %s: %s", status, body)
	}
}

// Grant is a grant as the admin API takes it.
func Grant(resource string, rights ...string) map[string]any {
	return map[string]any{"resource": resource, "rights": rights}
}

// Decode checks the status and the JSON Content-Type of an admin answer
// and decodes its body.
func Decode[T any](tb testing.TB, what string, res *http.Response, body []byte, status int) T {
	tb.Helper()
	var v T
	if res.StatusCode != status {
		tb.Fatalf("%s: status %d, want %d: %s", what, res.StatusCode, status, body)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		tb.Fatalf("%s: Content-Type %q", what, ct)
	}
	if err := json.Unmarshal(body, &v); err != nil {
		tb.Fatalf("%s: %v: %s", what, err, body)
	}
	return v
}

// WantProblem checks an admin error answer: the status, an RFC 9457 body
// of type application/problem+json with the same status, the challenge or
// Retry-After its status calls for, and none of secrets in it.
func WantProblem(tb testing.TB, what string, res *http.Response, body []byte, status int, secrets ...string) Problem {
	tb.Helper()
	if res.StatusCode != status {
		tb.Fatalf("%s: status %d, want %d: %s", what, res.StatusCode, status, body)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/problem+json" {
		tb.Errorf("%s: Content-Type %q, want application/problem+json", what, ct)
	}
	var p Problem
	if err := json.Unmarshal(body, &p); err != nil {
		tb.Fatalf("%s: problem body: %v: %s", what, err, body)
	}
	if p.Status != status || p.Title != http.StatusText(status) || p.Type == "" || p.Detail == "" {
		tb.Errorf("%s: problem = %+v", what, p)
	}
	switch status {
	case http.StatusUnauthorized:
		if got := res.Header.Get("WWW-Authenticate"); got != ChallengeInvalid {
			tb.Errorf("%s: WWW-Authenticate = %q", what, got)
		}
	case http.StatusForbidden:
		if got := res.Header.Get("WWW-Authenticate"); got != ChallengeScope {
			tb.Errorf("%s: WWW-Authenticate = %q", what, got)
		}
	case http.StatusServiceUnavailable:
		if res.Header.Get("Retry-After") == "" {
			tb.Errorf("%s: 503 without Retry-After", what)
		}
	}
	NoSecrets(tb, what, body, secrets...)
	return p
}

// NoSecrets fails tb when body holds any of the keys, or the signature of
// one.
func NoSecrets(tb testing.TB, what string, body []byte, keys ...string) {
	tb.Helper()
	for _, k := range keys {
		if k == "" {
			continue
		}
		if bytes.Contains(body, []byte(k)) {
			tb.Errorf("%s: the answer holds the key: %q", what, body)
			continue
		}
		if parts := strings.Split(k, "."); len(parts) == 3 && len(parts[2]) > 16 && bytes.Contains(body, []byte(parts[2])) {
			tb.Errorf("%s: the answer holds the key's signature: %q", what, body)
		}
	}
}
