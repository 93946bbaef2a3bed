package module

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/apiusers/apiusers/authz/redisstore/redistest"
)

// e2e drives a real Caddy, in process (caddytest), configured with the
// quickstart example: free ports, a temporary data directory, and an
// httptest server as the upstream of the protected route.
type e2e struct {
	t        *testing.T
	tester   *caddytest.Tester
	base     string // http://localhost:<port>
	dataDir  string
	upstream *upstreamLog
	root     string // the bootstrapped superadmin's key
}

// upstreamLog is an upstream that remembers the requests it received.
type upstreamLog struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func (rc *upstreamLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	rc.reqs = append(rc.reqs, r.Clone(r.Context()))
	rc.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintf(w, "hello %s", r.Header.Get("X-Api-User-Name"))
}

func (rc *upstreamLog) last(t *testing.T) *http.Request {
	t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.reqs) == 0 {
		t.Fatal("the upstream saw no request")
	}
	return rc.reqs[len(rc.reqs)-1]
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// exampleCaddyfile returns an example Caddyfile rewired for a test: the
// given admin and site ports, the upstream at upstreamAddr (the example's
// own upstream site dropped). The store is configured by the environment
// (APIUSERS_DATA, REDIS_URL, APIUSERS_SIGNING_KEY).
func exampleCaddyfile(t *testing.T, example string, adminPort, sitePort int, upstreamAddr string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "caddyfile-examples", example, "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	cf := string(b)
	// Drop the example's own upstream site: the test brings a real one.
	if i := strings.Index(cf, "\nhttp://localhost:9081 {"); i > 0 {
		cf = cf[:i]
	} else {
		t.Fatalf("%s Caddyfile: upstream site not found", example)
	}
	replace := func(old, new string) {
		if !strings.Contains(cf, old) {
			t.Fatalf("%s Caddyfile: %q not found", example, old)
		}
		cf = strings.ReplaceAll(cf, old, new)
	}
	replace("{\n\tapiusers {", "{\n\tadmin localhost:"+strconv.Itoa(adminPort)+"\n\tpersist_config off\n\tapiusers {")
	replace("http://localhost:8080", "http://localhost:"+strconv.Itoa(sitePort))
	replace("reverse_proxy localhost:9081", "reverse_proxy "+upstreamAddr)
	return cf
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

// startE2E loads the example's Caddyfile into the in-process Caddy, after
// bootstrapping its store with the bootstrap command's code. Set the
// example's environment before calling it.
func startE2E(t *testing.T, example string) *e2e {
	t.Helper()
	tmp, dataDir := e2eTempDirs(t)
	t.Setenv("APIUSERS_DATA", dataDir)

	up := &upstreamLog{}
	upstream := httptest.NewServer(up)
	t.Cleanup(upstream.Close)

	e2eAdminPortOnce.Do(func() { e2eAdminPort = freePort(t) })
	adminPort, sitePort := e2eAdminPort, freePort(t)
	e := &e2e{
		t:        t,
		base:     "http://localhost:" + strconv.Itoa(sitePort),
		dataDir:  dataDir,
		upstream: up,
		tester:   caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort}),
	}
	cf := exampleCaddyfile(t, example, adminPort, sitePort, strings.TrimPrefix(upstream.URL, "http://"))
	cfgPath := filepath.Join(tmp, "Caddyfile")
	if err := os.WriteFile(cfgPath, []byte(cf), 0o644); err != nil {
		t.Fatal(err)
	}
	e.rootKey(cfgPath)
	e.tester.InitServer(cf, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	t.Cleanup(func() {
		// Unload the config: frees the ports and the store.
		e.tester.InitServer(fmt.Sprintf("{\n\tadmin localhost:%d\n\tpersist_config off\n}\n", adminPort), "caddyfile")
	})
	return e
}

// rootKey bootstraps the store, before Caddy holds it, with the command's
// code path, and keeps the key in e.
func (e *e2e) rootKey(cfgPath string) {
	e.t.Helper()
	var stdout, stderr bytes.Buffer
	if _, err := bootstrap(&stdout, &stderr, cfgPath, "caddyfile", "acme", "root"); err != nil {
		e.t.Fatalf("bootstrap: %v\n%s", err, stderr.String())
	}
	e.root = strings.TrimSpace(stdout.String())
}

// do sends a request and returns the response with its body read.
func (e *e2e) do(method, path string, header http.Header, body any) (*http.Response, []byte) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.base+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := e.tester.Client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return res, b
}

func bearerHeader(key string) http.Header { return http.Header{"Authorization": {"Bearer " + key}} }

func TestE2EQuickstart(t *testing.T) {
	e := startE2E(t, "quickstart")
	exerciseGateway(t, e)
}

func TestE2ERedis(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	// Persistent, so that the data outlives the restart below.
	srv := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	t.Setenv("REDIS_URL", srv.URL())
	t.Setenv("APIUSERS_SIGNING_KEY", "e2e-signing-key-0123456789abcdef0123456789")
	e := startE2E(t, "redis")
	station := exerciseGateway(t, e)

	// The store goes away. A caller whose principal is cached still passes
	// (within cache_ttl); one whose principal is not gets 503, never 401.
	_, body := e.do(http.MethodPost, "/admin/workspaces/acme/users", bearerHeader(e.root), map[string]any{
		"username": "fresh", "kind": "api", "role": "api_user", "issue_key": true,
	})
	var fresh struct {
		Key string `json:"key"`
	}
	if err := json.Unmarshal(body, &fresh); err != nil || fresh.Key == "" {
		t.Fatalf("creating fresh: %v %s", err, body)
	}
	if res, body := e.do(http.MethodGet, "/api/hello", bearerHeader(station), nil); res.StatusCode != http.StatusOK {
		t.Fatalf("warming station: %d %s", res.StatusCode, body)
	}
	srv.Stop()
	res, body := e.do(http.MethodGet, "/api/hello", bearerHeader(fresh.Key), nil)
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("uncached principal, store down: %d %s", res.StatusCode, body)
	}
	if res.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	if strings.Contains(string(body), srv.Addr) {
		t.Errorf("503 body names the store: %q", body)
	}
	if res, body := e.do(http.MethodGet, "/api/hello", bearerHeader(station), nil); res.StatusCode != http.StatusOK {
		t.Fatalf("cached principal, store down: %d %s", res.StatusCode, body)
	}
	srv.Restart()
	if res, body := e.do(http.MethodGet, "/api/hello", bearerHeader(fresh.Key), nil); res.StatusCode != http.StatusOK {
		t.Fatalf("store back: %d %s", res.StatusCode, body)
	}
}

// exerciseGateway runs the gateway scenario every store must pass, and
// returns a live api_user key (the revoked one's sibling).
func exerciseGateway(t *testing.T, e *e2e) string {
	t.Helper()

	// The superadmin from bootstrap is known to the admin API.
	res, body := e.do(http.MethodGet, "/admin/me", bearerHeader(e.root), nil)
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"superadmin"`) {
		t.Fatalf("GET /admin/me: %d %s", res.StatusCode, body)
	}

	// An api_user with a key, over the admin API.
	res, body = e.do(http.MethodPost, "/admin/workspaces/acme/users", bearerHeader(e.root), map[string]any{
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
		up := e.upstream.last(t)
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
		h := bearerHeader(created.Key)
		h.Set("X-Api-User-Id", "usr_spoofed")
		res, body := e.do(http.MethodGet, "/api/hello", h, nil)
		if res.StatusCode != http.StatusOK || string(body) != "hello station" {
			t.Fatalf("%d %s", res.StatusCode, body)
		}
		wantUpstream(t)
		if up := e.upstream.last(t); up.Header.Get("Authorization") != "" {
			t.Error("upstream saw the Authorization header")
		}
	})
	t.Run("x-api-key", func(t *testing.T) {
		res, body := e.do(http.MethodGet, "/api/hello", http.Header{"X-Api-Key": {created.Key}}, nil)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%d %s", res.StatusCode, body)
		}
		wantUpstream(t)
		if up := e.upstream.last(t); up.Header.Get("X-Api-Key") != "" {
			t.Error("upstream saw the X-API-Key header")
		}
	})
	t.Run("no key", func(t *testing.T) {
		res, body := e.do(http.MethodGet, "/api/hello", nil, nil)
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
		res, body := e.do(http.MethodPost, "/admin/workspaces/acme/users", bearerHeader(e.root), map[string]any{
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
		res, body = e.do(http.MethodGet, "/api/hello", bearerHeader(v.Key), nil)
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
	res, body = e.do(http.MethodPost, "/admin/workspaces/acme/users/"+created.ID+"/keys", bearerHeader(e.root), map[string]any{"name": "second"})
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
		res, body := e.do(http.MethodDelete, "/admin/workspaces/acme/users/"+created.ID+"/keys/"+created.KeyID, bearerHeader(e.root), nil)
		if res.StatusCode != http.StatusNoContent {
			t.Fatalf("revoking: %d %s", res.StatusCode, body)
		}
		res, body = e.do(http.MethodGet, "/api/hello", bearerHeader(created.Key), nil)
		if res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("revoked key: %d %s", res.StatusCode, body)
		}
	})
	if res, body := e.do(http.MethodGet, "/api/hello", bearerHeader(second.Key), nil); res.StatusCode != http.StatusOK {
		t.Fatalf("the user's other key after a revoke: %d %s", res.StatusCode, body)
	}
	return second.Key
}
