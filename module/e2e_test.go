package module

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/apiusers/apiusers/authz/redisstore/redistest"
	"github.com/apiusers/apiusers/internal/apitest"
)

// The harness of the end-to-end tests that drive Caddy in process
// (caddytest): one type, e2e, for every scenario. The tests that run the
// built binary use apitest's processes instead.

// Stores an end-to-end test runs on.
const (
	storeFile  = "file"
	storeRedis = "redis"
)

// e2eSigningKey is the signing_key of the tests on Redis.
const e2eSigningKey = "e2e-signing-key-0123456789abcdef0123456789"

// persistentRedis are the redis-server options of a Redis whose data
// outlives a stop and restart, every write on disk before it is answered.
var persistentRedis = []string{"--appendonly", "yes", "--appendfsync", "always"}

// e2eSite says what an end-to-end test's Caddy serves.
type e2eSite struct {
	// example is a folder of caddyfile-examples to serve, with its own
	// upstream site replaced by the test's upstream. Without one, the
	// Caddyfile is an apitest.Caddyfile of top and routes, in which
	// UPSTREAM stands for the upstream's address.
	example     string
	top, routes string
	// global is a fragment of further global options; apiusers are lines
	// added to the apiusers global block, after the store's.
	global   string
	apiusers []string
	// store is storeFile (the default) or storeRedis: a redis-server of
	// the test's own, started with redisArgs. An example's `store file`
	// line is replaced for Redis.
	store     string
	redisArgs []string
	// rewrite, when set, edits the Caddyfile last (to point an example's
	// mail option at the test's SMTP server, say).
	rewrite func(t *testing.T, cf string) string
	// beforeStart, when set, runs after the store was bootstrapped and
	// before Caddy holds it (to bootstrap a person too, say).
	beforeStart func(e *e2e)
}

// e2e is a Caddy running in process with the test's configuration: its
// site (apitest.Site: the site's URL, a superadmin root's key, the
// upstream), the store bootstrapped with root in workspace acme by the
// bootstrap command's code before Caddy holds it. There is one Caddy per
// test binary, so these tests never run in parallel with each other; the
// scenarios of one Caddy may, as subtests with users of their own.
type e2e struct {
	apitest.Site
	t         *testing.T
	tester    *caddytest.Tester
	adminPort int
	dataDir   string            // the file store's directory
	store     string            // storeFile or storeRedis
	redis     *redistest.Server // nil on the file store
	cf        string            // the Caddyfile loaded
	cfgPath   string            // where it is written
	secret    []byte            // the signing secret
}

// The in-process Caddy is started once per test binary, on one admin port.
var (
	e2eAdminPortOnce sync.Once
	e2eAdminPort     int
)

// e2eTempDirs skips end-to-end tests in -short mode, points Caddy's data
// and config directories into a temporary directory, and returns that
// directory and the apiusers data directory inside it.
func e2eTempDirs(t *testing.T) (tmp, dataDir string) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	tmp = t.TempDir()
	t.Setenv("XDG_DATA_HOME", filepath.Join(tmp, "xdg-data"))
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(tmp, "xdg-config"))
	return tmp, filepath.Join(tmp, "apiusers")
}

// exStoreLine is an example's store option, replaced for Redis.
var exStoreLine = regexp.MustCompile(`(?m)^\t\tstore file .*$`)

// startE2E loads what s says into the in-process Caddy, after
// bootstrapping its store. Everything it starts is stopped when t ends.
func startE2E(t *testing.T, s e2eSite) *e2e {
	t.Helper()
	tmp, dataDir := e2eTempDirs(t)
	e2eAdminPortOnce.Do(func() { e2eAdminPort = apitest.FreePort(t) })
	sitePort := apitest.FreePort(t)
	e := &e2e{
		Site: apitest.Site{
			Base:     "http://localhost:" + strconv.Itoa(sitePort),
			Upstream: apitest.StartUpstream(t),
		},
		t:         t,
		adminPort: e2eAdminPort,
		dataDir:   dataDir,
		store:     s.store,
		// Unloading a configuration closes its principal cache, which can
		// take seconds on a loaded machine under -race: wait longer than
		// caddytest's default 5s.
		tester: caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{
			AdminPort: e2eAdminPort, LoadRequestTimeout: 30 * time.Second,
		}),
	}
	e.Client = e.tester.Client
	if e.store == "" {
		e.store = storeFile
	}
	storeLines := []string{"store file " + dataDir}
	switch e.store {
	case storeFile:
		t.Setenv("APIUSERS_DATA", dataDir)
	case storeRedis:
		e.redis = redistest.Start(t, s.redisArgs...)
		t.Setenv("REDIS_URL", e.redis.URL())
		t.Setenv("APIUSERS_SIGNING_KEY", e2eSigningKey)
		storeLines = []string{"store redis " + e.redis.URL(), "signing_key " + e2eSigningKey}
		e.secret = []byte(e2eSigningKey)
	default:
		t.Fatalf("unknown store %q", e.store)
	}
	if s.example != "" {
		e.cf = apitest.Example(t, s.example, e.adminPort, sitePort, e.Upstream.Addr)
		if e.store == storeRedis && exStoreLine.MatchString(e.cf) {
			e.cf = exStoreLine.ReplaceAllLiteralString(e.cf, "\t\tstore redis {env.REDIS_URL}\n\t\tsigning_key {env.APIUSERS_SIGNING_KEY}")
		}
	} else {
		e.cf = apitest.Caddyfile{
			AdminPort: e.adminPort, Global: s.global, Apiusers: append(storeLines, s.apiusers...), SitePort: sitePort,
			Top: s.top, Routes: strings.ReplaceAll(s.routes, "UPSTREAM", e.Upstream.Addr),
		}.String()
	}
	if s.rewrite != nil {
		e.cf = s.rewrite(t, e.cf)
	}
	e.cfgPath = filepath.Join(tmp, "Caddyfile")
	if err := os.WriteFile(e.cfgPath, []byte(e.cf), 0o644); err != nil {
		t.Fatal(err)
	}
	e.bootstrap()
	if s.beforeStart != nil {
		s.beforeStart(e)
	}
	if e.secret == nil {
		if b, err := os.ReadFile(filepath.Join(dataDir, secretFileName)); err == nil {
			e.secret = bytes.TrimSpace(b)
		}
	}
	e.tester.InitServer(e.cf, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	t.Cleanup(e.unload)
	return e
}

// bootstrap bootstraps the store, before Caddy holds it, with the
// command's code path, and keeps root's key in e.
func (a *e2e) bootstrap() {
	a.t.Helper()
	var stdout, stderr bytes.Buffer
	if _, err := bootstrap(&stdout, &stderr, a.cfgPath, "caddyfile", "acme", "root"); err != nil {
		a.t.Fatalf("bootstrap: %v\n%s", err, stderr.String())
	}
	a.Root = strings.TrimSpace(stdout.String())
}

// unload replaces the config with an empty one: frees the ports and the
// store.
func (a *e2e) unload() {
	// Idle keep-alive connections would hold up the servers' shutdown.
	a.tester.Client.CloseIdleConnections()
	a.tester.InitServer(apitest.Empty(a.adminPort), "caddyfile")
}

// forEachStore runs fn against the Caddy of s on the file store and on
// Redis.
func forEachStore(t *testing.T, s e2eSite, fn func(t *testing.T, e *e2e)) {
	for _, store := range []string{storeFile, storeRedis} {
		t.Run(store, func(t *testing.T) {
			s.store = store
			fn(t, startE2E(t, s))
		})
	}
}

func TestE2EQuickstart(t *testing.T) {
	e := startE2E(t, e2eSite{example: "quickstart"})
	exerciseGateway(t, e)
}

func TestE2ERedis(t *testing.T) {
	// Persistent, so that the data outlives the restart below.
	e := startE2E(t, e2eSite{example: "redis", store: storeRedis, redisArgs: persistentRedis})
	srv := e.redis
	station := exerciseGateway(t, e)

	// The store goes away. A caller whose principal is cached still passes
	// (within cache_ttl); one whose principal is not gets 503, never 401.
	_, body := e.Do(t, http.MethodPost, "/admin/workspaces/acme/users", apitest.Bearer(e.Root), map[string]any{
		"username": "fresh", "kind": "api", "role": "api_user", "issue_key": true,
	})
	var fresh struct {
		Key string `json:"key"`
	}
	if err := json.Unmarshal(body, &fresh); err != nil || fresh.Key == "" {
		t.Fatalf("creating fresh: %v %s", err, body)
	}
	if res, body := e.Do(t, http.MethodGet, "/api/hello", apitest.Bearer(station), nil); res.StatusCode != http.StatusOK {
		t.Fatalf("warming station: %d %s", res.StatusCode, body)
	}
	srv.Stop()
	res, body := e.Do(t, http.MethodGet, "/api/hello", apitest.Bearer(fresh.Key), nil)
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("uncached principal, store down: %d %s", res.StatusCode, body)
	}
	if res.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	if strings.Contains(string(body), srv.Addr) {
		t.Errorf("503 body names the store: %q", body)
	}
	if res, body := e.Do(t, http.MethodGet, "/api/hello", apitest.Bearer(station), nil); res.StatusCode != http.StatusOK {
		t.Fatalf("cached principal, store down: %d %s", res.StatusCode, body)
	}
	srv.Restart()
	if res, body := e.Do(t, http.MethodGet, "/api/hello", apitest.Bearer(fresh.Key), nil); res.StatusCode != http.StatusOK {
		t.Fatalf("store back: %d %s", res.StatusCode, body)
	}
}

// exerciseGateway runs the gateway scenario every store must pass, and
// returns a live api_user key (the revoked one's sibling).
func exerciseGateway(t *testing.T, e *e2e) string {
	t.Helper()

	// The superadmin from bootstrap is known to the admin API.
	res, body := e.Do(t, http.MethodGet, "/admin/me", apitest.Bearer(e.Root), nil)
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"superadmin"`) {
		t.Fatalf("GET /admin/me: %d %s", res.StatusCode, body)
	}

	// An api_user with a key, over the admin API.
	res, body = e.Do(t, http.MethodPost, "/admin/workspaces/acme/users", apitest.Bearer(e.Root), map[string]any{
		"username": "station", "kind": "api", "role": "api_user", "issue_key": true,
	})
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("creating api_user: %d %s", res.StatusCode, body)
	}
	var created struct {
		ID    string `json:"id"`
		Key   string `json:"key"`
		KeyID string `json:"key_id"`
	}
	if err := json.Unmarshal(body, &created); err != nil || created.Key == "" {
		t.Fatalf("created user: %v %s", err, body)
	}

	wantUpstream := func(t *testing.T) {
		t.Helper()
		up := e.Upstream.Last(t)
		want := map[string]string{
			"X-Api-User-Id":   created.ID,
			"X-Api-User-Name": "station",
			"X-Api-Workspace": "acme",
			"X-Api-Role":      "api_user",
			"X-Api-Key-Id":    created.KeyID,
		}
		for k, v := range want {
			if got := up.Header.Values(k); len(got) != 1 || got[0] != v {
				t.Errorf("upstream %s = %q, want [%q]", k, got, v)
			}
		}
		for k, vs := range up.Header {
			for _, v := range vs {
				if strings.Contains(v, created.Key) {
					t.Errorf("upstream saw the key in %s", k)
				}
			}
		}
	}

	t.Run("bearer", func(t *testing.T) {
		h := apitest.Bearer(created.Key)
		h.Set("X-Api-User-Id", "usr_spoofed")
		res, body := e.Do(t, http.MethodGet, "/api/hello", h, nil)
		if res.StatusCode != http.StatusOK || string(body) != "hello station" {
			t.Fatalf("%d %s", res.StatusCode, body)
		}
		wantUpstream(t)
		if up := e.Upstream.Last(t); up.Header.Get("Authorization") != "" {
			t.Error("upstream saw the Authorization header")
		}
	})
	t.Run("x-api-key", func(t *testing.T) {
		res, body := e.Do(t, http.MethodGet, "/api/hello", http.Header{"X-Api-Key": {created.Key}}, nil)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%d %s", res.StatusCode, body)
		}
		wantUpstream(t)
		if up := e.Upstream.Last(t); up.Header.Get("X-Api-Key") != "" {
			t.Error("upstream saw the X-API-Key header")
		}
	})
	t.Run("no key", func(t *testing.T) {
		res, body := e.Do(t, http.MethodGet, "/api/hello", nil, nil)
		if res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%d %s", res.StatusCode, body)
		}
		if got := res.Header.Get("WWW-Authenticate"); got != `Bearer realm="apiusers", error="invalid_token"` {
			t.Errorf("WWW-Authenticate = %q", got)
		}
		if string(body) != "401 no API key" {
			t.Errorf("body = %q", body)
		}
	})
	t.Run("missing permission", func(t *testing.T) {
		res, body := e.Do(t, http.MethodPost, "/admin/workspaces/acme/users", apitest.Bearer(e.Root), map[string]any{
			"username": "viewer", "kind": "api", "role": "viewer", "issue_key": true,
		})
		if res.StatusCode != http.StatusCreated {
			t.Fatalf("creating viewer: %d %s", res.StatusCode, body)
		}
		var v struct {
			Key string `json:"key"`
		}
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatal(err)
		}
		res, body = e.Do(t, http.MethodGet, "/api/hello", apitest.Bearer(v.Key), nil)
		if res.StatusCode != http.StatusForbidden {
			t.Fatalf("%d %s", res.StatusCode, body)
		}
		if got := res.Header.Get("WWW-Authenticate"); got != `Bearer realm="apiusers", error="insufficient_scope"` {
			t.Errorf("WWW-Authenticate = %q", got)
		}
		if string(body) != "403 missing permission listeners.invoke" {
			t.Errorf("body = %q", body)
		}
	})
	// A second key of the same user, which stays live.
	res, body = e.Do(t, http.MethodPost, "/admin/workspaces/acme/users/"+created.ID+"/keys", apitest.Bearer(e.Root), map[string]any{"name": "second"})
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("creating a second key: %d %s", res.StatusCode, body)
	}
	var second struct {
		Key string `json:"key"`
	}
	if err := json.Unmarshal(body, &second); err != nil || second.Key == "" {
		t.Fatalf("second key: %v %s", err, body)
	}
	t.Run("revoked", func(t *testing.T) {
		res, body := e.Do(t, http.MethodDelete, "/admin/workspaces/acme/users/"+created.ID+"/keys/"+created.KeyID, apitest.Bearer(e.Root), nil)
		if res.StatusCode != http.StatusNoContent {
			t.Fatalf("revoking: %d %s", res.StatusCode, body)
		}
		res, body = e.Do(t, http.MethodGet, "/api/hello", apitest.Bearer(created.Key), nil)
		if res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("revoked key: %d %s", res.StatusCode, body)
		}
	})
	if res, body := e.Do(t, http.MethodGet, "/api/hello", apitest.Bearer(second.Key), nil); res.StatusCode != http.StatusOK {
		t.Fatalf("the user's other key after a revoke: %d %s", res.StatusCode, body)
	}
	return second.Key
}
