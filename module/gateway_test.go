package module

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/filestore"
	"github.com/apiusers/apiusers/authz/limit"
	"github.com/apiusers/apiusers/authz/recorder"
	"github.com/apiusers/apiusers/authz/redisstore"
	"github.com/apiusers/apiusers/internal/apitest"
)

// testEnv is a service over a real file store in a temporary directory,
// with a controllable clock, a superadmin and an api_user in workspace acme.
type testEnv struct {
	*apitest.Clock
	t    *testing.T
	svc  *authz.Service
	root *authz.Principal

	rootKey string
	user    *authz.CreatedUser // api_user "station" in acme
	userKey string
}

const testSecret = "0123456789abcdef0123456789abcdef-test"

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	store, err := filestore.Open(t.TempDir()+"/apiusers.db", filestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	e := &testEnv{t: t, Clock: apitest.NewClock(time.Now())}
	e.svc = newTestService(t, store, e.Now)

	ctx := context.Background()
	created, err := e.svc.Bootstrap(ctx, "acme", "root")
	if err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	e.rootKey = created.Key
	e.root, _, err = e.svc.Authenticate(ctx, e.rootKey)
	if err != nil {
		t.Fatalf("authenticating root: %v", err)
	}
	e.user, e.userKey = e.createUser("acme", authz.NewUser{Username: "station", Kind: authz.KindAPI, Role: authz.RoleAPIUser})
	return e
}

func newTestService(t *testing.T, store authz.Store, now func() time.Time) *authz.Service {
	t.Helper()
	signer, err := authz.NewSigner(authz.SignerConfig{Secret: []byte(testSecret)})
	if err != nil {
		t.Fatal(err)
	}
	cache, err := authz.NewCache(authz.CacheConfig{TTL: time.Minute, MaxPrincipals: 1000, MaxKeys: 1000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cache.Close)
	svc, err := authz.NewService(authz.Config{Store: store, Signer: signer, Cache: cache, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// createUser creates a user with a first key, as root.
func (e *testEnv) createUser(ws string, in authz.NewUser) (*authz.CreatedUser, string) {
	e.t.Helper()
	in.IssueKey = true
	u, err := e.svc.CreateUser(context.Background(), e.root, ws, in)
	if err != nil {
		e.t.Fatalf("creating user %s: %v", in.Username, err)
	}
	return u, u.Key
}

// gateway compiles g over the env's service, as Provision would.
func (e *testEnv) gateway(g *Gateway) *Gateway {
	e.t.Helper()
	return compiledGateway(e.t, g, e.svc)
}

func compiledGateway(t *testing.T, g *Gateway, svc *authz.Service) *Gateway {
	t.Helper()
	if err := g.compile(); err != nil {
		t.Fatalf("compiling gateway: %v", err)
	}
	g.app = appServing(svc, nil)
	g.retryAfter = []string{"7"}
	g.logger = zap.NewNop()
	return g
}

// appServing is an apiusers app serving with svc and rec, as one is once
// provisioned and started.
func appServing(svc *authz.Service, rec *recorder.Recorder) *App {
	a := &App{retryAfter: []string{"7"}, state: new(appState)}
	a.state.live.Store(&serving{svc: svc, rec: rec, limits: testEngine(svc.Store())})
	return a
}

// testEngines are the limit engines of the stores tests serve from, one
// per store (as the app's store pool keeps them).
var testEngines sync.Map // authz.Store -> *limit.Engine

func testEngine(st authz.Store) *limit.Engine {
	if e, ok := testEngines.Load(st); ok {
		return e.(*limit.Engine)
	}
	e, _ := testEngines.LoadOrStore(st, newLimitEngine(st, zap.NewNop()))
	return e.(*limit.Engine)
}

// result is what one call of the handler did.
type result struct {
	err      error
	status   int // of the HandlerError, 0 when the request went on
	header   http.Header
	upstream *http.Request // the request next saw; nil when next was not called
	repl     *caddy.Replacer
}

// serve calls g directly with a request prepared as Caddy would: a
// replacer and vars in its context.
func serve(t *testing.T, g *Gateway, r *http.Request) result {
	t.Helper()
	repl := caddyhttp.NewTestReplacer(r)
	*r = *r.WithContext(context.WithValue(r.Context(), caddyhttp.VarsCtxKey, map[string]any{}))
	w := httptest.NewRecorder()
	var res result
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		res.upstream = r
		return nil
	})
	res.err = g.ServeHTTP(w, r, next)
	res.header = w.Header()
	res.repl = repl
	var he caddyhttp.HandlerError
	if errors.As(res.err, &he) {
		res.status = he.StatusCode
	} else if res.err != nil {
		t.Fatalf("handler returned a non-HandlerError: %v", res.err)
	}
	return res
}

func bearer(key string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://example.com/api/hello?x=1", nil)
	if key != "" {
		r.Header.Set("Authorization", "Bearer "+key)
	}
	return r
}

func wantStatus(t *testing.T, res result, status int, key string) {
	t.Helper()
	if res.status != status {
		t.Fatalf("status = %d (err %v), want %d", res.status, res.err, status)
	}
	if res.upstream != nil {
		t.Fatal("next was called on a denied request")
	}
	msg := res.err.Error()
	if key != "" && strings.Contains(msg, key) {
		t.Fatalf("error message echoes the key: %q", msg)
	}
	if strings.Contains(msg, "\n") {
		t.Fatalf("error message is not one line: %q", msg)
	}
	switch status {
	case http.StatusUnauthorized:
		if got := res.header.Get("WWW-Authenticate"); got != `Bearer realm="apiusers", error="invalid_token"` {
			t.Fatalf("WWW-Authenticate = %q", got)
		}
	case http.StatusForbidden:
		if got := res.header.Get("WWW-Authenticate"); got != `Bearer realm="apiusers", error="insufficient_scope"` {
			t.Fatalf("WWW-Authenticate = %q", got)
		}
	case http.StatusServiceUnavailable:
		if got := res.header.Get("Retry-After"); got != "7" {
			t.Fatalf("Retry-After = %q, want 7", got)
		}
		if got := res.header.Get("WWW-Authenticate"); got != "" {
			t.Fatalf("WWW-Authenticate = %q on a 503", got)
		}
	}
}

func TestGatewayAllows(t *testing.T) {
	e := newTestEnv(t)
	g := e.gateway(&Gateway{Require: []Requirement{{Permission: "listeners.invoke"}}})

	r := bearer(e.userKey)
	r.Header.Set("X-Api-User-Id", "usr_spoofed")
	r.Header.Add("X-Api-User-Id", "usr_spoofed2")
	r.Header.Set("X-Api-Role", "superadmin")
	r.Header.Set("X-Api-Workspace", "evil")
	r.Header.Set("X-Api-User-Name", "evil")
	r.Header.Set("X-Api-Key-Id", "key_spoofed")
	r.Header.Set("X-Other", "kept")
	res := serve(t, g, r)
	if res.err != nil {
		t.Fatalf("denied: %v", res.err)
	}
	up := res.upstream
	if up == nil {
		t.Fatal("next was not called")
	}
	want := map[string]string{
		"X-Api-User-Id":   e.user.ID,
		"X-Api-User-Name": "station",
		"X-Api-Workspace": "acme",
		"X-Api-Role":      "api_user",
		"X-Api-Key-Id":    e.user.KeyID,
		"X-Other":         "kept",
	}
	for k, v := range want {
		if got := up.Header.Values(k); len(got) != 1 || got[0] != v {
			t.Errorf("upstream %s = %q, want [%q]", k, got, v)
		}
	}
	for _, k := range []string{"Authorization"} {
		if _, ok := up.Header[k]; ok {
			t.Errorf("upstream still has %s", k)
		}
	}
	places := map[string]string{
		"http.auth.user.id":        e.user.ID,
		"http.auth.user.username":  "station",
		"http.auth.user.workspace": "acme",
		"http.auth.user.role":      "api_user",
		"http.auth.user.key_id":    e.user.KeyID,
		"http.auth.user.teams":     "",
	}
	for k, v := range places {
		if got, _ := res.repl.GetString(k); got != v {
			t.Errorf("{%s} = %q, want %q", k, got, v)
		}
	}
}

// Two gateways in one request (nested routes, each with its own key
// source): the placeholders and headers describe the caller of the last
// one, whichever way the first one set them.
func TestGatewayTwiceInOneRequest(t *testing.T) {
	e := newTestEnv(t)
	second, secondKey := e.createUser("acme", authz.NewUser{Username: "second", Kind: authz.KindAPI, Role: authz.RoleAPIUser})
	g1 := e.gateway(&Gateway{})
	g2 := e.gateway(&Gateway{KeyFrom: []KeySource{{From: SourceHeader, Name: "X-Second-Key"}}})
	for _, withVars := range []bool{true, false} {
		r := bearer(e.userKey)
		r.Header.Set("X-Second-Key", secondKey)
		repl := caddyhttp.NewTestReplacer(r)
		if withVars {
			*r = *r.WithContext(context.WithValue(r.Context(), caddyhttp.VarsCtxKey, map[string]any{}))
		}
		var firstID string
		var upstream *http.Request
		err := g1.ServeHTTP(httptest.NewRecorder(), r, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			firstID, _ = repl.GetString("http.auth.user.id")
			return g2.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
				upstream = r
				return nil
			}))
		}))
		if err != nil || upstream == nil {
			t.Fatalf("vars %v: denied: %v", withVars, err)
		}
		if firstID != e.user.ID {
			t.Errorf("vars %v: {http.auth.user.id} after the first gateway = %q, want %q", withVars, firstID, e.user.ID)
		}
		for k, want := range map[string]string{"http.auth.user.id": second.ID, "http.auth.user.username": "second", "http.auth.user.key_id": second.KeyID} {
			if got, _ := repl.GetString(k); got != want {
				t.Errorf("vars %v: {%s} after both = %q, want %q", withVars, k, got, want)
			}
		}
		if got := upstream.Header.Get("X-Api-User-Id"); got != second.ID {
			t.Errorf("vars %v: upstream X-Api-User-Id = %q, want %q", withVars, got, second.ID)
		}
	}
}

// The placeholder provider is kept with the cached principal: after a
// change reloads the principal, the placeholders describe the new one.
func TestGatewayPlaceholdersFollowChanges(t *testing.T) {
	e := newTestEnv(t)
	g := e.gateway(&Gateway{})
	res := serve(t, g, bearer(e.userKey))
	if got, _ := res.repl.GetString("http.auth.user.username"); got != "station" {
		t.Fatalf("{http.auth.user.username} = %q, want station", got)
	}
	name, role := "station-2", authz.RoleAPIBusiness
	if _, err := e.svc.UpdateUser(context.Background(), e.root, "acme", e.user.ID, authz.UserPatch{Username: &name, Role: &role}, nil); err != nil {
		t.Fatal(err)
	}
	res = serve(t, g, bearer(e.userKey))
	if res.upstream == nil {
		t.Fatalf("denied: %v", res.err)
	}
	for k, want := range map[string]string{"http.auth.user.username": name, "http.auth.user.role": string(role), "http.auth.user.key_id": e.user.KeyID} {
		if got, _ := res.repl.GetString(k); got != want {
			t.Errorf("{%s} = %q after the change, want %q", k, got, want)
		}
	}
	if got := res.upstream.Header.Get("X-Api-User-Name"); got != name {
		t.Errorf("X-Api-User-Name = %q after the change, want %q", got, name)
	}
}

// A later handler that edits header values in place (request_header's
// replace form does) must not change what the next request sees.
func TestGatewayHeadersNotShared(t *testing.T) {
	e := newTestEnv(t)
	g := e.gateway(&Gateway{})
	res := serve(t, g, bearer(e.userKey))
	if res.upstream == nil {
		t.Fatalf("denied: %v", res.err)
	}
	for _, k := range []string{"X-Api-User-Id", "X-Api-User-Name", "X-Api-Workspace", "X-Api-Role", "X-Api-Key-Id"} {
		res.upstream.Header[k][0] = "edited"
	}
	res = serve(t, g, bearer(e.userKey))
	if res.upstream == nil {
		t.Fatalf("denied: %v", res.err)
	}
	if got := res.upstream.Header.Get("X-Api-Role"); got != "api_user" {
		t.Fatalf("X-Api-Role = %q after an earlier request edited its copy", got)
	}
	if got, _ := res.repl.GetString("http.auth.user.id"); got != e.user.ID {
		t.Fatalf("{http.auth.user.id} = %q", got)
	}
}

func TestGatewayKeySources(t *testing.T) {
	e := newTestEnv(t)
	key := e.userKey

	t.Run("x-api-key by default", func(t *testing.T) {
		g := e.gateway(&Gateway{})
		r := bearer("")
		r.Header.Set("X-API-Key", key)
		res := serve(t, g, r)
		if res.upstream == nil {
			t.Fatalf("denied: %v", res.err)
		}
		if v := res.upstream.Header.Get("X-API-Key"); v != "" {
			t.Fatalf("X-API-Key passed on: %q", v)
		}
	})
	t.Run("bearer wins over x-api-key", func(t *testing.T) {
		g := e.gateway(&Gateway{})
		r := bearer(key)
		r.Header.Set("X-API-Key", "garbage")
		if res := serve(t, g, r); res.upstream == nil {
			t.Fatalf("denied: %v", res.err)
		}
	})
	t.Run("another scheme is no key", func(t *testing.T) {
		g := e.gateway(&Gateway{})
		r := bearer("")
		r.Header.Set("Authorization", "Basic "+key)
		wantStatus(t, serve(t, g, r), http.StatusUnauthorized, key)
	})
	t.Run("keep_credentials", func(t *testing.T) {
		g := e.gateway(&Gateway{KeepCredentials: true})
		res := serve(t, g, bearer(key))
		if res.upstream == nil {
			t.Fatalf("denied: %v", res.err)
		}
		if got := res.upstream.Header.Get("Authorization"); got != "Bearer "+key {
			t.Fatalf("Authorization = %q, want it kept", got)
		}
	})
	t.Run("query", func(t *testing.T) {
		g := e.gateway(&Gateway{KeyFrom: []KeySource{{From: SourceQuery, Name: "api_key"}}})
		r := httptest.NewRequest(http.MethodGet, "http://example.com/api/x?a=1&api_key="+key+"&b=2", nil)
		res := serve(t, g, r)
		if res.upstream == nil {
			t.Fatalf("denied: %v", res.err)
		}
		if q := res.upstream.URL.RawQuery; q != "a=1&b=2" {
			t.Fatalf("query = %q, want a=1&b=2", q)
		}
		if strings.Contains(res.upstream.RequestURI, key) {
			t.Fatalf("RequestURI still holds the key")
		}
		// Bearer is not a source of this route.
		wantStatus(t, serve(t, g, bearer(key)), http.StatusUnauthorized, key)
	})
	t.Run("cookie", func(t *testing.T) {
		g := e.gateway(&Gateway{KeyFrom: []KeySource{{From: SourceCookie, Name: "apikey"}}})
		r := bearer("")
		r.Header.Set("Cookie", "a=1; apikey="+key+"; b=2")
		res := serve(t, g, r)
		if res.upstream == nil {
			t.Fatalf("denied: %v", res.err)
		}
		if c := res.upstream.Header.Get("Cookie"); c != "a=1; b=2" {
			t.Fatalf("Cookie = %q, want a=1; b=2", c)
		}
	})
	t.Run("custom header", func(t *testing.T) {
		g := e.gateway(&Gateway{KeyFrom: []KeySource{{From: SourceHeader, Name: "x-token"}}})
		r := bearer("")
		r.Header.Set("X-Token", key)
		res := serve(t, g, r)
		if res.upstream == nil {
			t.Fatalf("denied: %v", res.err)
		}
		if res.upstream.Header.Get("X-Token") != "" {
			t.Fatal("X-Token passed on")
		}
	})
}

func TestGatewayUnauthenticated(t *testing.T) {
	e := newTestEnv(t)
	g := e.gateway(&Gateway{})
	ctx := context.Background()

	t.Run("no key", func(t *testing.T) {
		wantStatus(t, serve(t, g, bearer("")), http.StatusUnauthorized, "")
	})
	t.Run("garbage", func(t *testing.T) {
		wantStatus(t, serve(t, g, bearer("not-a-key")), http.StatusUnauthorized, "not-a-key")
	})
	t.Run("bad signature", func(t *testing.T) {
		other, err := authz.NewSigner(authz.SignerConfig{Secret: []byte(strings.Repeat("x", 40))})
		if err != nil {
			t.Fatal(err)
		}
		forged, err := other.Sign(authz.Claims{UserID: e.user.ID, Workspace: "acme", KeyID: e.user.KeyID, IssuedAt: time.Now().Unix()}, "")
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, serve(t, g, bearer(forged)), http.StatusUnauthorized, forged)
	})
	t.Run("expired", func(t *testing.T) {
		exp := e.Now().Add(time.Hour)
		k, err := e.svc.CreateKey(ctx, e.root, "acme", e.user.ID, authz.NewKey{Name: "short", ExpiresAt: &exp})
		if err != nil {
			t.Fatal(err)
		}
		if res := serve(t, g, bearer(k.Secret)); res.upstream == nil {
			t.Fatalf("fresh key denied: %v", res.err)
		}
		e.Advance(2 * time.Hour)
		defer e.Advance(-2 * time.Hour)
		wantStatus(t, serve(t, g, bearer(k.Secret)), http.StatusUnauthorized, k.Secret)
	})
	t.Run("revoked", func(t *testing.T) {
		u, key := e.createUser("acme", authz.NewUser{Username: "revokee", Kind: authz.KindAPI, Role: authz.RoleAPIUser})
		if res := serve(t, g, bearer(key)); res.upstream == nil {
			t.Fatalf("denied before revoke: %v", res.err)
		}
		if err := e.svc.RevokeKey(ctx, e.root, "acme", u.ID, u.KeyID); err != nil {
			t.Fatal(err)
		}
		wantStatus(t, serve(t, g, bearer(key)), http.StatusUnauthorized, key)
	})
	t.Run("inactive", func(t *testing.T) {
		u, key := e.createUser("acme", authz.NewUser{Username: "sleeper", Kind: authz.KindAPI, Role: authz.RoleAPIUser})
		if res := serve(t, g, bearer(key)); res.upstream == nil {
			t.Fatalf("denied while active: %v", res.err)
		}
		if _, err := e.svc.SetStatus(ctx, e.root, "acme", u.ID, authz.StatusInactive); err != nil {
			t.Fatal(err)
		}
		wantStatus(t, serve(t, g, bearer(key)), http.StatusUnauthorized, key)
	})
}

func TestGatewayForbidden(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	if _, err := e.svc.CreateWorkspace(ctx, e.root, authz.Workspace{ID: "globex"}); err != nil {
		t.Fatal(err)
	}
	admin, adminKey := e.createUser("acme", authz.NewUser{Username: "boss", Kind: authz.KindAPI, Role: authz.RoleAdmin})
	_ = admin
	basic, basicKey := e.createUser("acme", authz.NewUser{
		Username: "phone", Kind: authz.KindAPI, Role: authz.RoleAPIBasic,
		Grants: []authz.Grant{{Resource: "device:abc", Rights: []string{"read", "control.own"}}},
	})

	cases := []struct {
		name  string
		g     Gateway
		key   string
		path  string
		allow bool
	}{
		{"workspace matches", Gateway{Workspace: "acme"}, e.userKey, "/", true},
		{"workspace differs", Gateway{Workspace: "globex"}, e.userKey, "/", false},
		{"superadmin acts everywhere", Gateway{Workspace: "globex"}, e.rootKey, "/", true},
		{"role listed", Gateway{Roles: []string{"admin", "api_user"}}, e.userKey, "/", true},
		{"role not listed", Gateway{Roles: []string{"admin"}}, e.userKey, "/", false},
		{"superadmin not implied by roles", Gateway{Roles: []string{"admin"}}, e.rootKey, "/", false},
		{"permission held", Gateway{Require: []Requirement{{Permission: "listeners.invoke"}}}, e.userKey, "/", true},
		{"permission missing", Gateway{Require: []Requirement{{Permission: "users.manage"}}}, e.userKey, "/", false},
		{"every require must hold", Gateway{Require: []Requirement{{Permission: "listeners.invoke"}, {Permission: "stats.read"}}}, e.userKey, "/", false},
		{"admin holds any permission", Gateway{Require: []Requirement{{Permission: "rules.manage"}}}, adminKey, "/", true},
		{"right on resource", Gateway{Require: []Requirement{{Permission: "read", On: "device:abc"}}}, basicKey, "/", true},
		{"right on other resource", Gateway{Require: []Requirement{{Permission: "read", On: "device:xyz"}}}, basicKey, "/", false},
		{"right from placeholder", Gateway{Require: []Requirement{{Permission: "read", On: "device:{http.request.uri.query.dev}"}}}, basicKey, "/?dev=abc", true},
		{"right from placeholder, other", Gateway{Require: []Requirement{{Permission: "read", On: "device:{http.request.uri.query.dev}"}}}, basicKey, "/?dev=xyz", false},
		{"placeholder empty", Gateway{Require: []Requirement{{Permission: "read", On: "device:{http.request.uri.query.dev}"}}}, basicKey, "/", false},
		{"own permission, own data by username", Gateway{Require: []Requirement{{Permission: "events.write", Owner: "{http.request.uri.query.owner}"}}}, basicKey, "/?owner=phone", true},
		{"own permission, own data by id", Gateway{Require: []Requirement{{Permission: "events.write", Owner: "{http.request.uri.query.owner}"}}}, basicKey, "/?owner=" + basic.ID, true},
		{"own permission, other's data", Gateway{Require: []Requirement{{Permission: "events.write", Owner: "{http.request.uri.query.owner}"}}}, basicKey, "/?owner=someone", false},
		{"own permission, no owner", Gateway{Require: []Requirement{{Permission: "events.write", Owner: "{http.request.uri.query.owner}"}}}, basicKey, "/", false},
		{"full permission, any owner", Gateway{Require: []Requirement{{Permission: "events.write", Owner: "{http.request.uri.query.owner}"}}}, adminKey, "/?owner=someone", true},
		{"own right on resource, own data", Gateway{Require: []Requirement{{Permission: "control", On: "device:abc", Owner: "{http.request.uri.query.owner}"}}}, basicKey, "/?owner=phone", true},
		{"own right on resource, other's data", Gateway{Require: []Requirement{{Permission: "control", On: "device:abc", Owner: "{http.request.uri.query.owner}"}}}, basicKey, "/?owner=x", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := c.g
			gw := e.gateway(&g)
			r := httptest.NewRequest(http.MethodGet, "http://example.com"+c.path, nil)
			r.Header.Set("Authorization", "Bearer "+c.key)
			res := serve(t, gw, r)
			if c.allow {
				if res.upstream == nil {
					t.Fatalf("denied: %v", res.err)
				}
				return
			}
			wantStatus(t, res, http.StatusForbidden, c.key)
		})
	}
}

func TestGatewayStoreDown(t *testing.T) {
	// A Redis store pointed at a port nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	store, err := redisstore.New(redisstore.Options{URL: "redis://" + addr, DialTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	svc := newTestService(t, store, time.Now)
	key, err := svc.Signer().Sign(authz.Claims{
		UserID: "usr_0000000000000000000000000", Workspace: "acme", KeyID: "key_0000000000000000000000000",
		IssuedAt: time.Now().Unix(),
	}, "")
	if err != nil {
		t.Fatal(err)
	}
	g := compiledGateway(t, &Gateway{}, svc)
	res := serve(t, g, bearer(key))
	wantStatus(t, res, http.StatusServiceUnavailable, key)
	if strings.Contains(res.err.Error(), addr) {
		t.Fatalf("503 message names the store's address: %q", res.err)
	}
	// A bad key is still 401 while the store is down: it never reaches it.
	wantStatus(t, serve(t, g, bearer("x.y.z")), http.StatusUnauthorized, "")
}
