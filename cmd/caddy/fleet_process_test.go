package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apiusers/apiusers/authz/redisstore/redistest"
	"github.com/apiusers/apiusers/internal/apitest"
)

// A fleet of two Caddy processes (the built binary) on one redis-server:
// a change made through A's admin API fails the affected key on B within
// 1 s of A's answer. B's cache_ttl is an hour, so only the invalidation
// feed (Redis pub/sub) can tell B in time.

// fleetProcSigningKey is the signing_key both instances share.
const fleetProcSigningKey = "fleet-process-signing-key-0123456789abcdef"

// fleetPropagation is what the product promises: a revoked key,
// a deactivated user or a changed team fails on every instance within 1 s.
const fleetPropagation = time.Second

// fleetRoutes are one instance's routes: they need a workspace permission
// and a resource right, and are answered by Caddy itself (no upstream to
// run).
const fleetRoutes = `
	handle /api/* {
		apiusers {
			require listeners.invoke
		}
		respond "hello {http.auth.user.username}" 200
	}

	handle /ops/* {
		apiusers {
			require rules.manage
		}
		respond "ops {http.auth.user.username}" 200
	}

	handle /device/* {
		apiusers {
			require control on device:d1
		}
		respond "device {http.auth.user.username}" 200
	}
`

// fleetInstance is one running Caddy process of the fleet.
type fleetInstance struct {
	apitest.Site
	name string
}

func TestFleetProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	t.Parallel()
	bin := caddyBin.Path(t)

	srv := redistest.Start(t)
	// (No persistence: the last subtest stops Redis for good.)

	// Two instances, each with its own directories, ports and Caddyfile.
	start := func(name string, bootstrapRoot bool) (*fleetInstance, string) {
		tmp := t.TempDir()
		env := apitest.Env(tmp)
		adminPort, sitePort := apitest.FreePort(t), apitest.FreePort(t)
		site := "http://localhost:" + strconv.Itoa(sitePort)
		cfg := filepath.Join(tmp, "Caddyfile")
		cf := apitest.Caddyfile{
			AdminPort: adminPort, SitePort: sitePort, Routes: fleetRoutes,
			Apiusers: []string{"store redis " + srv.URL(), "signing_key " + fleetProcSigningKey, "cache_ttl 1h"},
		}
		if err := os.WriteFile(cfg, []byte(cf.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		var root string
		if bootstrapRoot {
			r := apitest.Run(t, bin, env, 30*time.Second, "apiusers", "bootstrap", "--config", cfg, "--adapter", "caddyfile", "--workspace", "acme", "--username", "root")
			if r.Code != 0 {
				t.Fatalf("bootstrap through %s's config: exit %d\n%s", name, r.Code, r.Stderr)
			}
			if root = strings.TrimSpace(r.Stdout); root == "" {
				t.Fatalf("bootstrap printed no key\n%s", r.Stderr)
			}
		}
		apitest.Start(t, bin, env, site+"/api/hello", "--config", cfg, "--adapter", "caddyfile")
		return &fleetInstance{Site: apitest.Site{Base: site}, name: name}, root
	}
	a, root := start("A", true)
	b, _ := start("B", false)

	// Both instances listen to the invalidation feed before B caches
	// anything (a message published before B subscribed would be lost).
	waitFeed(t, srv.Addr, 2)

	f := &fleetProc{a: a, b: b, root: root}
	t.Run("revoke key", func(t *testing.T) {
		u := f.mkUser(t, "revoked")
		f.warm(t, "/api/hello", u.Key)
		f.change(t, "/api/hello", u.Key, http.StatusUnauthorized, func() {
			f.adminA(t, http.MethodDelete, "/workspaces/acme/users/"+u.ID+"/keys/"+u.KeyID, nil, http.StatusNoContent, nil)
		})
	})

	t.Run("deactivate user", func(t *testing.T) {
		u := f.mkUser(t, "deactivated")
		f.warm(t, "/api/hello", u.Key)
		f.change(t, "/api/hello", u.Key, http.StatusUnauthorized, func() {
			f.adminA(t, http.MethodPost, "/workspaces/acme/users/"+u.ID+"/status", map[string]string{"status": "inactive"}, http.StatusOK, nil)
		})
	})

	t.Run("removed from team", func(t *testing.T) {
		u := f.mkUser(t, "operator")
		team := f.mkTeam(t, map[string]any{"name": "ops", "permissions": []string{"rules.manage"}})
		f.adminA(t, http.MethodPut, "/workspaces/acme/teams/"+team+"/members/"+u.ID, nil, http.StatusNoContent, nil)
		f.warm(t, "/ops/run", u.Key)
		f.change(t, "/ops/run", u.Key, http.StatusForbidden, func() {
			f.adminA(t, http.MethodDelete, "/workspaces/acme/teams/"+team+"/members/"+u.ID, nil, http.StatusNoContent, nil)
		})
		// The user itself is still fine.
		f.on(t, b, "/api/hello", u.Key, http.StatusOK)
	})

	t.Run("team grant withdrawn", func(t *testing.T) {
		u := f.mkUser(t, "controller")
		team := f.mkTeam(t, map[string]any{
			"name":   "cameras",
			"grants": []map[string]any{{"resource": "device:*", "rights": []string{"control"}}},
		})
		f.adminA(t, http.MethodPut, "/workspaces/acme/teams/"+team+"/members/"+u.ID, nil, http.StatusNoContent, nil)
		f.warm(t, "/device/d1", u.Key)
		f.change(t, "/device/d1", u.Key, http.StatusForbidden, func() {
			f.adminA(t, http.MethodPatch, "/workspaces/acme/teams/"+team, map[string]any{"grants": []any{}}, http.StatusOK, nil)
		})
	})

	// The control: what the subtests' warm-up did, caches the principal on
	// B, so that B admits the key without asking Redis (here, with Redis
	// gone, while a principal B never loaded gets 503). The refusals above
	// were therefore B's cache being invalidated, which only the feed
	// could do before cache_ttl.
	t.Run("warm-up caches on B", func(t *testing.T) {
		cached, uncached := f.mkUser(t, "cached"), f.mkUser(t, "uncached")
		f.warm(t, "/api/hello", cached.Key)
		srv.Stop()
		f.on(t, b, "/api/hello", cached.Key, http.StatusOK)
		f.on(t, b, "/api/hello", uncached.Key, http.StatusServiceUnavailable)
	})
}

// fleetProc drives the fleet of TestFleetProcesses.
type fleetProc struct {
	a, b *fleetInstance
	root string // the superadmin's key
}

// adminA calls A's admin API as root and wants status; it decodes the
// answer into out when out is not nil.
func (f *fleetProc) adminA(t *testing.T, method, path string, body any, status int, out any) {
	t.Helper()
	got := f.a.Admin(t, f.root, method, path, body, status)
	if out != nil {
		if err := json.Unmarshal(got, out); err != nil {
			t.Fatalf("%s %s on A: %v: %s", method, path, err, got)
		}
	}
}

// mkUser creates an api_user with a key through A.
func (f *fleetProc) mkUser(t *testing.T, username string) apitest.User {
	t.Helper()
	return f.a.MkUser(t, f.root, "acme", username, "api_user", nil)
}

// mkTeam creates a team through A and returns its id.
func (f *fleetProc) mkTeam(t *testing.T, in map[string]any) string {
	t.Helper()
	return f.a.MkTeam(t, f.root, "acme", in)
}

// on calls path on instance in with key and wants status.
func (f *fleetProc) on(t *testing.T, in *fleetInstance, path, key string, status int) {
	t.Helper()
	res, body := in.Call(t, http.MethodGet, path, key, nil)
	if res.StatusCode != status {
		t.Fatalf("%s %s: %d %q, want %d", in.name, path, res.StatusCode, body, status)
	}
}

// warm has B (and A) admit key on path, which caches its principal there.
func (f *fleetProc) warm(t *testing.T, path, key string) {
	t.Helper()
	for range 3 {
		f.on(t, f.b, path, key, http.StatusOK)
	}
	f.on(t, f.a, path, key, http.StatusOK)
}

// change makes a change through A (through), then polls B: a request B
// receives within 1 s of A's answer must be refused with status. A
// refuses at once (its own change), and B keeps refusing.
func (f *fleetProc) change(t *testing.T, path, key string, status int, through func()) {
	t.Helper()
	through()
	answered := time.Now()
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	for polls := 1; ; polls++ {
		sent := time.Now()
		if sent.Sub(answered) > fleetPropagation {
			t.Fatalf("B still admits the key %v after A answered (%d polls); its cache_ttl is 1h, so the invalidation did not reach it",
				sent.Sub(answered).Round(time.Millisecond), polls-1)
		}
		req, err := http.NewRequest(http.MethodGet, f.b.Base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+key)
		res, err := client.Do(req)
		if err != nil {
			t.Fatalf("B %s: %v", path, err)
		}
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		if res.StatusCode != status {
			t.Fatalf("B %s: %d, want 200 until it answers %d", path, res.StatusCode, status)
		}
		t.Logf("B refused with %d, %v after A answered (poll %d)", status, sent.Sub(answered).Round(time.Microsecond), polls)
		break
	}
	f.on(t, f.a, path, key, status)
	f.on(t, f.b, path, key, status)
}
