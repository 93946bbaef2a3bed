package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/filestore"
)

// testEnv is an admin Handler over a real service on a file store, with a
// bootstrapped superadmin in workspace "ws".
type testEnv struct {
	t    testing.TB
	h    *Handler
	svc  *authz.Service
	root string // the superadmin's key
}

var testSecret = []byte("0123456789abcdef0123456789abcdef")

func newService(t testing.TB, st authz.Store) *authz.Service {
	t.Helper()
	signer, err := authz.NewSigner(authz.SignerConfig{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	cache, err := authz.NewCache(authz.CacheConfig{MaxPrincipals: 1000, MaxKeys: 1000})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := authz.NewService(authz.Config{Store: st, Signer: signer, Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

func openStore(t testing.TB) authz.Store {
	t.Helper()
	st, err := filestore.Open(filepath.Join(t.TempDir(), "apiusers.db"), filestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newTestEnv(t testing.TB, opts Options) *testEnv {
	t.Helper()
	return newTestEnvOn(t, openStore(t), opts)
}

func newTestEnvOn(t testing.TB, st authz.Store, opts Options) *testEnv {
	t.Helper()
	svc := newService(t, st)
	root, err := svc.Bootstrap(context.Background(), "ws", "root")
	if err != nil {
		t.Fatal(err)
	}
	return &testEnv{t: t, h: New(svc, opts), svc: svc, root: root.Key}
}

// req is one request to the handler.
type req struct {
	method, path, key, body string
	header                  http.Header
}

// do serves r and checks what every answer must carry.
func (e *testEnv) do(r req) *httptest.ResponseRecorder {
	e.t.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	hr := httptest.NewRequest(r.method, r.path, body)
	if r.body != "" {
		hr.Header.Set("Content-Type", "application/json")
	}
	for k, vs := range r.header {
		hr.Header[k] = vs
	}
	if r.key != "" {
		hr.Header.Set("Authorization", "Bearer "+r.key)
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, hr)
	if got := w.Header().Get("Cache-Control"); got != "no-store" {
		e.t.Errorf("%s %s: Cache-Control = %q, want no-store", r.method, r.path, got)
	}
	return w
}

// ok serves r, wants status, and decodes the JSON answer into v (when not nil).
func (e *testEnv) ok(r req, status int, v any) *httptest.ResponseRecorder {
	e.t.Helper()
	w := e.do(r)
	if w.Code != status {
		e.t.Fatalf("%s %s: status %d, want %d; body %s", r.method, r.path, w.Code, status, w.Body)
	}
	if v != nil {
		if ct := w.Header().Get("Content-Type"); ct != "application/json" {
			e.t.Fatalf("%s %s: Content-Type %q", r.method, r.path, ct)
		}
		if err := json.Unmarshal(w.Body.Bytes(), v); err != nil {
			e.t.Fatalf("%s %s: decoding answer: %v; body %s", r.method, r.path, err, w.Body)
		}
	}
	return w
}

// problemOf checks that w is a problem answer with status and returns it.
func problemOf(t *testing.T, w *httptest.ResponseRecorder, status int) problem {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status %d, want %d; body %s", w.Code, status, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json", ct)
	}
	dec := json.NewDecoder(bytes.NewReader(w.Body.Bytes()))
	dec.DisallowUnknownFields()
	var p problem
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("decoding problem: %v; body %s", err, w.Body)
	}
	if p.Type != "about:blank" || p.Status != status || p.Title != http.StatusText(status) || p.Detail == "" {
		t.Fatalf("problem %+v does not match status %d", p, status)
	}
	return p
}

// createUser creates a user in ws and returns it with its key (issue_key).
func (e *testEnv) createUser(username string, role authz.Role) authz.CreatedUser {
	e.t.Helper()
	var u authz.CreatedUser
	e.ok(req{method: "POST", path: "/workspaces/ws/users", key: e.root,
		body: `{"username":"` + username + `","kind":"api","role":"` + string(role) + `","issue_key":true}`}, http.StatusCreated, &u)
	if u.Key == "" {
		e.t.Fatalf("created user %s has no key", username)
	}
	return u
}

func (e *testEnv) userCount() int {
	e.t.Helper()
	var l list[authz.User]
	e.ok(req{method: "GET", path: "/workspaces/ws/users?limit=500", key: e.root}, http.StatusOK, &l)
	return len(l.Items)
}

func TestProblems(t *testing.T) {
	e := newTestEnv(t, Options{})
	viewer := e.createUser("viewer", authz.RoleViewer)
	e.createUser("taken", authz.RoleAPIUser)
	var target authz.User
	w := e.ok(req{method: "GET", path: "/workspaces/ws/users/" + viewer.ID, key: e.root}, http.StatusOK, &target)
	current := w.Header().Get("ETag")

	valid := `{"username":"fresh","kind":"api","role":"api_user"}`
	tests := []struct {
		name   string
		req    req
		status int
		field  string
		header map[string]string
	}{
		{name: "malformed JSON", req: req{method: "POST", path: "/workspaces/ws/users", key: e.root, body: `{"username":`}, status: 400},
		{name: "syntax error", req: req{method: "POST", path: "/workspaces/ws/users", key: e.root, body: `{"username" "x"}`}, status: 400},
		{name: "unknown field", req: req{method: "POST", path: "/workspaces/ws/users", key: e.root,
			body: `{"username":"fresh","kind":"api","role":"api_user","bogus":1}`}, status: 400, field: "bogus"},
		{name: "trailing data", req: req{method: "POST", path: "/workspaces/ws/users", key: e.root, body: valid + `{}`}, status: 400},
		{name: "wrong type", req: req{method: "POST", path: "/workspaces/ws/users", key: e.root,
			body: `{"username":5,"kind":"api","role":"api_user"}`}, status: 400, field: "username"},
		{name: "not an object", req: req{method: "POST", path: "/workspaces/ws/users", key: e.root, body: `[1]`}, status: 400},
		{name: "empty body", req: req{method: "POST", path: "/workspaces/ws/users", key: e.root}, status: 400},
		{name: "domain rule", req: req{method: "POST", path: "/workspaces/ws/users", key: e.root,
			body: `{"username":"usr_x","kind":"api","role":"api_user"}`}, status: 400, field: "username"},
		{name: "bad status value", req: req{method: "POST", path: "/workspaces/ws/users/" + viewer.ID + "/status", key: e.root,
			body: `{"status":"gone"}`}, status: 400, field: "status"},
		{name: "bad grace", req: req{method: "POST", path: "/workspaces/ws/users/" + viewer.ID + "/keys/" + viewer.KeyID + "/regenerate", key: e.root,
			body: `{"grace":"tomorrow"}`}, status: 400, field: "grace"},
		{name: "bad erase", req: req{method: "DELETE", path: "/workspaces/ws/users/" + viewer.ID + "?erase=maybe", key: e.root}, status: 400, field: "erase"},
		{name: "too large", req: req{method: "POST", path: "/workspaces/ws/users", key: e.root,
			body: `{"username":"` + strings.Repeat("a", 2<<20) + `"}`}, status: 413},
		{name: "wrong content type", req: req{method: "POST", path: "/workspaces/ws/users", key: e.root, body: valid,
			header: http.Header{"Content-Type": {"text/plain"}}}, status: 415, field: "Content-Type"},
		{name: "no key", req: req{method: "GET", path: "/me"}, status: 401,
			header: map[string]string{"WWW-Authenticate": ChallengeInvalidToken}},
		{name: "bad key", req: req{method: "GET", path: "/me", key: "not.a.key"}, status: 401,
			header: map[string]string{"WWW-Authenticate": ChallengeInvalidToken}},
		{name: "tampered key", req: req{method: "GET", path: "/me", key: e.root + "x"}, status: 401,
			header: map[string]string{"WWW-Authenticate": ChallengeInvalidToken}},
		{name: "unknown route without key", req: req{method: "GET", path: "/nope"}, status: 401},
		{name: "forbidden", req: req{method: "POST", path: "/workspaces", key: viewer.Key, body: `{"id":"other"}`}, status: 403,
			header: map[string]string{"WWW-Authenticate": ChallengeInsufficientScope}},
		{name: "unknown user", req: req{method: "GET", path: "/workspaces/ws/users/usr_nobody", key: e.root}, status: 404},
		{name: "unknown route", req: req{method: "GET", path: "/nope", key: e.root}, status: 404},
		{name: "unclean path", req: req{method: "GET", path: "/workspaces//ws", key: e.root}, status: 404},
		{name: "dot segment", req: req{method: "GET", path: "/workspaces/ws/users/../users", key: e.root}, status: 404},
		{name: "trailing slash", req: req{method: "GET", path: "/workspaces/", key: e.root}, status: 404},
		{name: "unclean path without key", req: req{method: "GET", path: "//me"}, status: 401},
		{name: "unknown sub-route", req: req{method: "GET", path: "/workspaces/ws/things", key: e.root}, status: 404},
		{name: "wrong method", req: req{method: "PUT", path: "/me", key: e.root}, status: 405,
			header: map[string]string{"Allow": "GET, HEAD, PATCH"}},
		{name: "wrong method on key", req: req{method: "PUT", path: "/workspaces/ws/users/" + viewer.ID + "/keys/" + viewer.KeyID, key: e.root}, status: 405,
			header: map[string]string{"Allow": "GET, HEAD, PATCH, DELETE"}},
		{name: "duplicate username", req: req{method: "POST", path: "/workspaces/ws/users", key: e.root,
			body: `{"username":"TAKEN","kind":"api","role":"api_user"}`}, status: 409},
		{name: "delete outside trash", req: req{method: "DELETE", path: "/workspaces/ws/users/" + viewer.ID, key: e.root}, status: 409},
		{name: "stale If-Match", req: req{method: "PATCH", path: "/workspaces/ws/users/" + viewer.ID, key: e.root, body: `{"organization":"x"}`,
			header: http.Header{"If-Match": {etag(target.Version + 7)}}}, status: 412, field: ""},
		{name: "weak If-Match", req: req{method: "PATCH", path: "/workspaces/ws/users/" + viewer.ID, key: e.root, body: `{"organization":"x"}`,
			header: http.Header{"If-Match": {"W/" + current}}}, status: 412, field: "If-Match"},
		{name: "stale If-Match list", req: req{method: "PATCH", path: "/workspaces/ws/users/" + viewer.ID, key: e.root, body: `{"organization":"x"}`,
			header: http.Header{"If-Match": {`"998", "999"`}}}, status: 412, field: "If-Match"},
		{name: "malformed If-Match", req: req{method: "PATCH", path: "/workspaces/ws/users/" + viewer.ID, key: e.root, body: `{"organization":"x"}`,
			header: http.Header{"If-Match": {"3"}}}, status: 400, field: "If-Match"},
		{name: "limit zero", req: req{method: "GET", path: "/workspaces/ws/users?limit=0", key: e.root}, status: 400, field: "limit"},
		{name: "limit not a number", req: req{method: "GET", path: "/workspaces/ws/users?limit=ten", key: e.root}, status: 400, field: "limit"},
		{name: "limit too large", req: req{method: "GET", path: "/workspaces?limit=501", key: e.root}, status: 400, field: "limit"},
		{name: "limit twice", req: req{method: "GET", path: "/workspaces/ws/users?limit=1&limit=2", key: e.root}, status: 400, field: "limit"},
		{name: "bad cursor", req: req{method: "GET", path: "/workspaces/ws/users?cursor=%25%25", key: e.root}, status: 400, field: "cursor"},
		{name: "bad key cursor", req: req{method: "GET", path: "/workspaces/ws/users/" + viewer.ID + "/keys?cursor=zz", key: e.root}, status: 400, field: "cursor"},
		{name: "bad kind filter", req: req{method: "GET", path: "/workspaces/ws/users?kind=robot", key: e.root}, status: 400, field: "kind"},
		{name: "bad role filter", req: req{method: "GET", path: "/workspaces/ws/users?role=king", key: e.root}, status: 400, field: "role"},
		{name: "bad status filter", req: req{method: "GET", path: "/workspaces/ws/users?status=gone", key: e.root}, status: 400, field: "status"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.userCount()
			w := e.do(tt.req)
			p := problemOf(t, w, tt.status)
			if tt.field != "" && p.Field != tt.field {
				t.Errorf("field %q, want %q", p.Field, tt.field)
			}
			for k, v := range tt.header {
				if got := w.Header().Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
			if tt.status == 401 && w.Header().Get("WWW-Authenticate") != ChallengeInvalidToken {
				t.Errorf("401 without the invalid_token challenge")
			}
			for _, k := range []string{e.root, viewer.Key} {
				if strings.Contains(w.Body.String(), k) {
					t.Errorf("problem echoes a key: %s", w.Body)
				}
			}
			if w.Header().Get("ETag") != "" || w.Header().Get("Location") != "" {
				t.Errorf("problem carries ETag or Location")
			}
			if after := e.userCount(); after != before {
				t.Errorf("users: %d before, %d after a failed request", before, after)
			}
		})
	}
}

// downStore is a store whose backend cannot be reached.
type downStore struct{}

var errDial = errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")

func (downStore) View(context.Context, string, func(authz.Tx) error) error {
	return authz.Unavailable(errDial)
}
func (downStore) Update(context.Context, string, func(authz.Tx) error) error {
	return authz.Unavailable(errDial)
}
func (downStore) LoadPrincipal(context.Context, string, string) (*authz.PrincipalRecord, error) {
	return nil, authz.Unavailable(errDial)
}
func (downStore) Close() error { return nil }

// flakyStore is a working store that can be made unreachable (down) or
// broken (View and Update fail with an unexpected error).
type flakyStore struct {
	authz.Store
	down, broken atomic.Bool
}

var errBroken = errors.New("disk on fire")

func (s *flakyStore) fault() error {
	switch {
	case s.down.Load():
		return authz.Unavailable(errDial)
	case s.broken.Load():
		return errBroken
	}
	return nil
}

func (s *flakyStore) View(ctx context.Context, ws string, fn func(authz.Tx) error) error {
	if err := s.fault(); err != nil {
		return err
	}
	return s.Store.View(ctx, ws, fn)
}

func (s *flakyStore) Update(ctx context.Context, ws string, fn func(authz.Tx) error) error {
	if err := s.fault(); err != nil {
		return err
	}
	return s.Store.Update(ctx, ws, fn)
}

func (s *flakyStore) LoadPrincipal(ctx context.Context, ws, id string) (*authz.PrincipalRecord, error) {
	if s.down.Load() {
		return nil, authz.Unavailable(errDial)
	}
	return s.Store.LoadPrincipal(ctx, ws, id)
}

func TestUnavailable(t *testing.T) {
	t.Run("authenticating", func(t *testing.T) {
		svc := newService(t, downStore{})
		key, err := svc.Signer().Sign(authz.Claims{UserID: "usr_x", Workspace: "ws", KeyID: "key_x", IssuedAt: time.Now().Unix()}, "")
		if err != nil {
			t.Fatal(err)
		}
		e := &testEnv{t: t, h: New(svc, Options{RetryAfter: 1500 * time.Millisecond}), svc: svc}
		w := e.do(req{method: "GET", path: "/me", key: key})
		p := problemOf(t, w, 503)
		if got := w.Header().Get("Retry-After"); got != "2" {
			t.Errorf("Retry-After %q, want 2 (1.5s rounded up)", got)
		}
		if strings.Contains(p.Detail, "6379") || strings.Contains(w.Body.String(), key) {
			t.Errorf("503 leaks its cause or the key: %s", w.Body)
		}
	})
	t.Run("during an operation", func(t *testing.T) {
		st := &flakyStore{Store: openStore(t)}
		e := newTestEnvOn(t, st, Options{})
		e.ok(req{method: "GET", path: "/me", key: e.root}, http.StatusOK, nil)
		st.down.Store(true)
		// Whether the principal is still cached or not, the answer is 503.
		for _, r := range []req{
			{method: "GET", path: "/workspaces/ws/users", key: e.root},
			{method: "POST", path: "/workspaces/ws/users", key: e.root, body: `{"username":"x","kind":"api","role":"api_user"}`},
		} {
			w := e.do(r)
			problemOf(t, w, 503)
			if got := w.Header().Get("Retry-After"); got != "5" {
				t.Errorf("Retry-After %q, want 5", got)
			}
		}
		st.down.Store(false)
		e.ok(req{method: "GET", path: "/workspaces/ws/users", key: e.root}, http.StatusOK, nil)
	})
}

func TestPagination(t *testing.T) {
	e := newTestEnv(t, Options{})
	want := map[string]bool{}
	for i := range 7 {
		u := e.createUser("page-"+string(rune('a'+i)), authz.RoleAPIUser)
		want[u.ID] = true
	}
	seen := map[string]bool{}
	cursor, pages := "", 0
	for {
		q := url.Values{"limit": {"3"}, "q": {"page-"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var l list[authz.User]
		e.ok(req{method: "GET", path: "/workspaces/ws/users?" + q.Encode(), key: e.root}, http.StatusOK, &l)
		pages++
		if pages > 3 {
			t.Fatal("more than 3 pages")
		}
		if len(l.Items) > 3 {
			t.Fatalf("page of %d items, limit 3", len(l.Items))
		}
		for _, u := range l.Items {
			if seen[u.ID] {
				t.Errorf("user %s listed twice", u.ID)
			}
			seen[u.ID] = true
		}
		if l.NextCursor == "" {
			break
		}
		cursor = l.NextCursor
	}
	if pages != 3 || len(seen) != 7 {
		t.Fatalf("%d pages, %d users; want 3 pages, 7 users", pages, len(seen))
	}
	for id := range want {
		if !seen[id] {
			t.Errorf("user %s never listed", id)
		}
	}

	// The last page has no next_cursor at all, and an empty list is [].
	w := e.ok(req{method: "GET", path: "/workspaces/ws/users?q=nobody", key: e.root}, http.StatusOK, nil)
	if got := strings.TrimSpace(w.Body.String()); got != `{"items":[]}` {
		t.Errorf("empty list = %s", got)
	}

	// Key lists page the same way.
	u := e.createUser("keyholder", authz.RoleAPIUser)
	for range 4 {
		e.ok(req{method: "POST", path: "/workspaces/ws/users/" + u.ID + "/keys", key: e.root, body: `{"name":"k"}`}, http.StatusCreated, nil)
	}
	seen, cursor, pages = map[string]bool{}, "", 0
	for {
		path := "/workspaces/ws/users/" + u.ID + "/keys?limit=2"
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		var l list[authz.Key]
		e.ok(req{method: "GET", path: path, key: e.root}, http.StatusOK, &l)
		pages++
		for _, k := range l.Items {
			if seen[k.ID] {
				t.Errorf("key %s listed twice", k.ID)
			}
			seen[k.ID] = true
		}
		if l.NextCursor == "" || pages > 5 {
			break
		}
		cursor = l.NextCursor
	}
	if pages != 3 || len(seen) != 5 {
		t.Errorf("%d key pages, %d keys; want 3 pages, 5 keys", pages, len(seen))
	}
}

func TestUserLifecycle(t *testing.T) {
	e := newTestEnv(t, Options{})

	// Create: 201, Location, ETag of the version.
	var u authz.CreatedUser
	w := e.ok(req{method: "POST", path: "/workspaces/ws/users", key: e.root,
		body: `{"username":"alice","kind":"api","role":"api_user","email":"alice@example.com"}`}, http.StatusCreated, &u)
	if u.Key != "" {
		t.Errorf("a key was issued without issue_key")
	}
	loc := w.Header().Get("Location")
	self := resolve(t, "/workspaces/ws/users", loc)
	if self != "/workspaces/ws/users/"+u.ID {
		t.Fatalf("Location %q resolves to %q", loc, self)
	}
	if got := w.Header().Get("ETag"); got != etag(u.Version) {
		t.Errorf("ETag %q, version %d", got, u.Version)
	}

	// Read at the Location.
	var got authz.User
	w = e.ok(req{method: "GET", path: self, key: e.root}, http.StatusOK, &got)
	tag := w.Header().Get("ETag")
	if got.ID != u.ID || tag != etag(got.Version) {
		t.Fatalf("GET %s: id %s, ETag %q, version %d", self, got.ID, tag, got.Version)
	}

	// PATCH with the current ETag, then the old one is stale.
	var patched authz.User
	w = e.ok(req{method: "PATCH", path: self, key: e.root, body: `{"organization":"acme"}`,
		header: http.Header{"If-Match": {tag}}}, http.StatusOK, &patched)
	if patched.Organization != "acme" || patched.Version == got.Version || w.Header().Get("ETag") != etag(patched.Version) {
		t.Fatalf("patched %+v, ETag %q", patched, w.Header().Get("ETag"))
	}
	problemOf(t, e.do(req{method: "PATCH", path: self, key: e.root, body: `{"organization":"other"}`,
		header: http.Header{"If-Match": {tag}}}), 412)
	// A list naming the current version, "*" and no header all pass.
	e.ok(req{method: "PATCH", path: self, key: e.root, body: `{"organization":"b"}`,
		header: http.Header{"If-Match": {tag + `, ` + etag(patched.Version)}}}, http.StatusOK, &patched)
	e.ok(req{method: "PATCH", path: self, key: e.root, body: `{"organization":"c"}`,
		header: http.Header{"If-Match": {"*"}}}, http.StatusOK, nil)
	e.ok(req{method: "PATCH", path: self, key: e.root, body: `{"organization":"d"}`,
		header: http.Header{"Content-Type": {"application/json; charset=utf-8"}}}, http.StatusOK, &patched)
	if patched.Organization != "d" {
		t.Errorf("organization %q after the last PATCH", patched.Organization)
	}

	// Filters.
	var l list[authz.User]
	e.ok(req{method: "GET", path: "/workspaces/ws/users?role=api_user&kind=api&status=active&q=ALI", key: e.root}, http.StatusOK, &l)
	if len(l.Items) != 1 || l.Items[0].ID != u.ID {
		t.Errorf("filtered list %+v", l.Items)
	}

	// Status, then delete from trash.
	var st authz.User
	w = e.ok(req{method: "POST", path: self + "/status", key: e.root, body: `{"status":"trash"}`}, http.StatusOK, &st)
	if st.Status != authz.StatusTrash || w.Header().Get("ETag") != etag(st.Version) {
		t.Errorf("status %s, ETag %q, version %d", st.Status, w.Header().Get("ETag"), st.Version)
	}
	w = e.ok(req{method: "DELETE", path: self + "?erase=true", key: e.root}, http.StatusNoContent, nil)
	if w.Body.Len() != 0 {
		t.Errorf("204 with a body: %s", w.Body)
	}
	problemOf(t, e.do(req{method: "GET", path: self, key: e.root}), 404)
}

// resolve resolves a Location against the request path it answered.
func resolve(t *testing.T, base, loc string) string {
	t.Helper()
	if loc == "" {
		t.Fatal("no Location")
	}
	b, _ := url.Parse(base)
	l, err := url.Parse(loc)
	if err != nil {
		t.Fatalf("Location %q: %v", loc, err)
	}
	return b.ResolveReference(l).Path
}

func TestKeys(t *testing.T) {
	e := newTestEnv(t, Options{})
	u := e.createUser("bob", authz.RoleAPIUser)
	keys := "/workspaces/ws/users/" + u.ID + "/keys"

	// Create: 201 with the key and a Location under keys.
	var k authz.IssuedKey
	w := e.ok(req{method: "POST", path: keys, key: e.root, body: `{"name":"ci"}`}, http.StatusCreated, &k)
	if k.Secret == "" || k.Name != "ci" {
		t.Fatalf("issued key %+v", k.Key)
	}
	if got := resolve(t, keys, w.Header().Get("Location")); got != keys+"/"+k.ID {
		t.Errorf("Location resolves to %s", got)
	}
	e.ok(req{method: "GET", path: "/me", header: http.Header{"X-Api-Key": {k.Secret}}}, http.StatusOK, nil)

	// List shows metadata only.
	w = e.ok(req{method: "GET", path: keys, key: e.root}, http.StatusOK, nil)
	if strings.Contains(w.Body.String(), k.Secret) || strings.Contains(w.Body.String(), `"key"`) {
		t.Errorf("key list shows a key: %s", w.Body)
	}

	// Reveal: 200, the same key.
	var rev authz.IssuedKey
	e.ok(req{method: "POST", path: keys + "/" + k.ID + "/reveal", key: e.root}, http.StatusOK, &rev)
	if rev.Secret != k.Secret {
		t.Errorf("revealed key differs from the issued one")
	}

	// Regenerate with a grace period: both keys work.
	var k2 authz.IssuedKey
	w = e.ok(req{method: "POST", path: keys + "/" + k.ID + "/regenerate", key: e.root, body: `{"grace":"24h"}`}, http.StatusCreated, &k2)
	if k2.Secret == "" || k2.ID == k.ID {
		t.Fatalf("regenerated key %+v", k2.Key)
	}
	if got := resolve(t, keys+"/"+k.ID+"/regenerate", w.Header().Get("Location")); got != keys+"/"+k2.ID {
		t.Errorf("Location resolves to %s", got)
	}
	e.ok(req{method: "GET", path: "/me", key: k.Secret}, http.StatusOK, nil)
	e.ok(req{method: "GET", path: "/me", key: k2.Secret}, http.StatusOK, nil)

	// Regenerate with an empty body: the old key dies at once.
	var k3 authz.IssuedKey
	e.ok(req{method: "POST", path: keys + "/" + k2.ID + "/regenerate", key: e.root}, http.StatusCreated, &k3)
	problemOf(t, e.do(req{method: "GET", path: "/me", key: k2.Secret}), 401)
	e.ok(req{method: "GET", path: "/me", key: k3.Secret}, http.StatusOK, nil)

	// Revoke: 204, and the key no longer works.
	e.ok(req{method: "DELETE", path: keys + "/" + k3.ID, key: e.root}, http.StatusNoContent, nil)
	problemOf(t, e.do(req{method: "GET", path: "/me", key: k3.Secret}), 401)
	problemOf(t, e.do(req{method: "DELETE", path: keys + "/key_nothere", key: e.root}), 404)
}

func TestMe(t *testing.T) {
	e := newTestEnv(t, Options{})
	u := e.createUser("carol", authz.RoleAPIBasic)
	var me authz.Me
	w := e.ok(req{method: "GET", path: "/me", key: u.Key}, http.StatusOK, &me)
	if me.User.ID != u.ID || w.Header().Get("ETag") != etag(me.User.Version) {
		t.Fatalf("me %+v, ETag %q", me.User, w.Header().Get("ETag"))
	}
	tag := w.Header().Get("ETag")

	var got authz.User
	w = e.ok(req{method: "PATCH", path: "/me", key: u.Key, body: `{"timezone":"Europe/Paris"}`,
		header: http.Header{"If-Match": {tag}}}, http.StatusOK, &got)
	if got.Timezone != "Europe/Paris" || w.Header().Get("ETag") != etag(got.Version) {
		t.Fatalf("patched %+v", got)
	}
	problemOf(t, e.do(req{method: "PATCH", path: "/me", key: u.Key, body: `{"language":"fr"}`,
		header: http.Header{"If-Match": {tag}}}), 412)
	p := problemOf(t, e.do(req{method: "PATCH", path: "/me", key: u.Key, body: `{"role":"admin"}`}), 400)
	if p.Field != "role" {
		t.Errorf("field %q, want role", p.Field)
	}
	e.ok(req{method: "PATCH", path: "/me", key: u.Key, body: `{"language":"fr"}`}, http.StatusOK, &got)
	if got.Language != "fr" {
		t.Errorf("language %q", got.Language)
	}
}

func TestWorkspaces(t *testing.T) {
	e := newTestEnv(t, Options{})
	var ws authz.Workspace
	w := e.ok(req{method: "POST", path: "/workspaces", key: e.root, body: `{"id":"acme","name":"Acme"}`}, http.StatusCreated, &ws)
	if ws.ID != "acme" || ws.Name != "Acme" {
		t.Fatalf("workspace %+v", ws)
	}
	loc := resolve(t, "/workspaces", w.Header().Get("Location"))
	if loc != "/workspaces/acme" {
		t.Errorf("Location resolves to %s", loc)
	}
	w = e.ok(req{method: "GET", path: loc, key: e.root}, http.StatusOK, &ws)
	if tag := w.Header().Get("ETag"); !strings.HasPrefix(tag, `"`) || len(tag) < 3 {
		t.Errorf("workspace ETag %q", tag)
	}
	problemOf(t, e.do(req{method: "POST", path: "/workspaces", key: e.root, body: `{"id":"acme"}`}), 409)
	problemOf(t, e.do(req{method: "POST", path: "/workspaces", key: e.root, body: `{"id":"acme","created_at":"2020-01-01T00:00:00Z"}`}), 400)

	var l list[authz.Workspace]
	e.ok(req{method: "GET", path: "/workspaces?limit=1", key: e.root}, http.StatusOK, &l)
	if len(l.Items) != 1 || l.NextCursor == "" {
		t.Fatalf("first page %+v", l)
	}
	var l2 list[authz.Workspace]
	e.ok(req{method: "GET", path: "/workspaces?limit=1&cursor=" + url.QueryEscape(l.NextCursor), key: e.root}, http.StatusOK, &l2)
	if len(l2.Items) != 1 || l2.NextCursor != "" || l2.Items[0].ID == l.Items[0].ID {
		t.Fatalf("pages %+v then %+v", l, l2)
	}
}

func TestKeySources(t *testing.T) {
	e := newTestEnv(t, Options{KeySources: []KeySource{HeaderKey("X-Custom-Key")}})
	e.ok(req{method: "GET", path: "/me", header: http.Header{"X-Custom-Key": {e.root}}}, http.StatusOK, nil)
	problemOf(t, e.do(req{method: "GET", path: "/me", key: e.root}), 401)

	d := newTestEnv(t, Options{})
	d.ok(req{method: "GET", path: "/me", header: http.Header{"Authorization": {"bearer " + d.root}}}, http.StatusOK, nil)
	d.ok(req{method: "GET", path: "/me", header: http.Header{"X-Api-Key": {d.root}}}, http.StatusOK, nil)
	// A non-Bearer Authorization does not hide X-API-Key.
	d.ok(req{method: "GET", path: "/me", header: http.Header{"Authorization": {"Basic Zm9vOmJhcg=="}, "X-Api-Key": {d.root}}}, http.StatusOK, nil)
}

func TestRelativeRef(t *testing.T) {
	for _, tt := range []struct{ from, to string }{
		{"/workspaces", "/workspaces/acme"},
		{"/workspaces/ws/users", "/workspaces/ws/users/usr_1"},
		{"/workspaces/ws/users/usr_1/keys", "/workspaces/ws/users/usr_1/keys/key_2"},
		{"/workspaces/ws/users/usr_1/keys/key_1/regenerate", "/workspaces/ws/users/usr_1/keys/key_2"},
		{"/me", "/workspaces/ws"},
		{"/a/b/c", "/x:y"},
	} {
		for _, mount := range []string{"", "/admin", "/deep/mount"} {
			ref := relativeRef(tt.from, tt.to)
			if got := resolve(t, mount+tt.from, ref); got != mount+tt.to {
				t.Errorf("relativeRef(%q, %q) = %q resolves under %q to %q", tt.from, tt.to, ref, mount, got)
			}
		}
	}
}

func TestInternalError(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	st := &flakyStore{Store: openStore(t)}
	e := newTestEnvOn(t, st, Options{Logger: zap.New(core)})
	st.broken.Store(true)
	w := e.do(req{method: "GET", path: "/workspaces/ws/users", key: e.root})
	p := problemOf(t, w, 500)
	if p.Detail != detailInternal || strings.Contains(w.Body.String(), errBroken.Error()) {
		t.Errorf("500 tells its cause: %s", w.Body)
	}
	entries := logs.All()
	if len(entries) != 1 || entries[0].Level != zap.ErrorLevel {
		t.Fatalf("logged %+v, want one error", entries)
	}
	logged, _ := json.Marshal(entries[0].ContextMap())
	if !strings.Contains(string(logged), errBroken.Error()) || strings.Contains(string(logged), e.root) {
		t.Errorf("log entry %s: want the cause and no key", logged)
	}
}

func TestBodyLimits(t *testing.T) {
	e := newTestEnv(t, Options{})
	// Without a Content-Length, the limit applies while reading.
	r := httptest.NewRequest("POST", "/workspaces/ws/users",
		io.MultiReader(strings.NewReader(`{"username":"`), strings.NewReader(strings.Repeat("a", 2<<20)), strings.NewReader(`"}`)))
	r.ContentLength = -1
	r.Header.Set("Authorization", "Bearer "+e.root)
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	problemOf(t, w, 413)

	// Just under the limit is read (and then judged by the service).
	body := `{"username":"x","kind":"api","role":"api_user","private_note":"` + strings.Repeat("a", MaxBodyBytes-100) + `"}`
	w = e.do(req{method: "POST", path: "/workspaces/ws/users", key: e.root, body: body})
	if w.Code == 413 {
		t.Errorf("a body under 1 MiB was refused as too large")
	}

	// A body on a route that takes an optional one may be empty or {}.
	u := e.createUser("dan", authz.RoleAPIUser)
	e.ok(req{method: "POST", path: "/workspaces/ws/users/" + u.ID + "/keys/" + u.KeyID + "/regenerate", key: e.root, body: `{}`}, http.StatusCreated, nil)
}

func TestHead(t *testing.T) {
	e := newTestEnv(t, Options{})
	w := e.ok(req{method: "HEAD", path: "/me", key: e.root}, http.StatusOK, nil)
	if w.Header().Get("ETag") == "" {
		t.Errorf("HEAD /me without ETag")
	}
}
