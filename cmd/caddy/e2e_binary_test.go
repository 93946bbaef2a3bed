package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apiusers/apiusers/internal/apitest"
)

// The acceptance tests that need the built binary: `go build ./cmd/caddy`,
// its module list, the `caddy apiusers bootstrap` command, a restart of a
// real Caddy process on the embedded store, and bad Caddyfiles refused at
// load naming the file and line.

func TestE2EBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	t.Parallel()
	bin := caddyBin.Path(t)

	t.Run("list-modules", func(t *testing.T) {
		r := apitest.Run(t, bin, apitest.Env(t.TempDir()), 30*time.Second, "list-modules")
		if r.Code != 0 {
			t.Fatalf("list-modules: exit %d\n%s", r.Code, r.Stderr)
		}
		have := map[string]bool{}
		for _, l := range strings.Split(r.Stdout, "\n") {
			have[strings.TrimSpace(l)] = true
		}
		for _, id := range []string{"apiusers", "http.handlers.apiusers", "http.handlers.apiusers_admin", "http.handlers.reverse_proxy"} {
			if !have[id] {
				t.Errorf("list-modules does not list %s", id)
			}
		}
	})

	t.Run("bootstrap, store in use, restart", func(t *testing.T) {
		tmp := t.TempDir()
		dataDir := filepath.Join(tmp, "apiusers")
		env := apitest.Env(tmp, "APIUSERS_DATA="+dataDir)
		up := apitest.StartUpstream(t)
		adminPort, sitePort := apitest.FreePort(t), apitest.FreePort(t)
		site := "http://localhost:" + strconv.Itoa(sitePort)
		sc := &apitest.Site{Base: site}
		cfg := filepath.Join(tmp, "Caddyfile")
		cf := apitest.Example(t, "quickstart", adminPort, sitePort, up.Addr)
		if err := os.WriteFile(cfg, []byte(cf), 0o644); err != nil {
			t.Fatal(err)
		}
		bootstrapArgs := func(user string) []string {
			return []string{"apiusers", "bootstrap", "--config", cfg, "--adapter", "caddyfile", "--workspace", "acme", "--username", user}
		}

		// Bootstrap, Caddy stopped: the key alone on stdout.
		r := apitest.Run(t, bin, env, 30*time.Second, bootstrapArgs("root")...)
		if r.Code != 0 {
			t.Fatalf("bootstrap: exit %d\n%s", r.Code, r.Stderr)
		}
		root, ok := strings.CutSuffix(r.Stdout, "\n")
		if !ok || strings.ContainsAny(root, " \t\n") || strings.Count(root, ".") != 2 || !strings.HasPrefix(root, "eyJ") {
			t.Fatalf("stdout is not one key and a newline: %q", r.Stdout)
		}
		if !strings.Contains(r.Stderr, "created superadmin root") || strings.Contains(r.Stderr, root) {
			t.Errorf("stderr = %q", r.Stderr)
		}
		for _, f := range []string{"apiusers.db", "signing.key"} {
			if _, err := os.Stat(filepath.Join(dataDir, f)); err != nil {
				t.Errorf("the store's %s: %v", f, err)
			}
		}
		if fi, err := os.Stat(filepath.Join(dataDir, "signing.key")); err == nil && fi.Mode().Perm() != 0o600 {
			t.Errorf("signing.key mode %v, want 0600", fi.Mode().Perm())
		}

		p := apitest.Start(t, bin, env, site+"/api/hello", "--config", cfg, "--adapter", "caddyfile")
		res, body := sc.Call(t, http.MethodGet, "/admin/me", root, nil)
		if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"superadmin"`) {
			t.Fatalf("GET /admin/me with the bootstrap key: %d %s", res.StatusCode, body)
		}
		res, body = sc.Call(t, http.MethodPost, "/admin/workspaces/acme/users", root, map[string]any{
			"username": "station", "kind": "api", "role": "api_user", "issue_key": true,
		})
		var station struct {
			ID  string `json:"id"`
			Key string `json:"key"`
		}
		if res.StatusCode != http.StatusCreated || json.Unmarshal(body, &station) != nil || station.Key == "" {
			t.Fatalf("creating station: %d %s", res.StatusCode, body)
		}
		res, body = sc.Call(t, http.MethodGet, "/api/hello", station.Key, nil)
		if res.StatusCode != http.StatusOK || string(body) != "hello station" {
			t.Fatalf("calling with station's key: %d %s", res.StatusCode, body)
		}

		// Bootstrap while Caddy holds the file store: a clear error, fast.
		r = apitest.Run(t, bin, env, 30*time.Second, bootstrapArgs("root2")...)
		if r.Code == 0 {
			t.Fatalf("bootstrap succeeded while Caddy holds the store; stdout %q", r.Stdout)
		}
		if !strings.Contains(apitest.LogMessages(r.Stderr), "in use by another process") {
			t.Errorf("bootstrap's error does not say the store is in use: %q", r.Stderr)
		}
		if r.Stdout != "" {
			t.Errorf("bootstrap printed on stdout: %q", r.Stdout)
		}
		if r.Took > 15*time.Second {
			t.Errorf("bootstrap took %v to give up", r.Took)
		}
		t.Logf("bootstrap gave up after %v", r.Took.Round(time.Millisecond))
		// Validating and adapting open no store: they work meanwhile.
		for _, args := range [][]string{
			{"validate", "--config", cfg, "--adapter", "caddyfile"},
			{"adapt", "--config", cfg, "--adapter", "caddyfile", "--validate"},
		} {
			if r := apitest.Run(t, bin, env, 30*time.Second, args...); r.Code != 0 {
				t.Errorf("caddy %s while Caddy holds the store: exit %d\n%s", args[0], r.Code, r.Stderr)
			}
		}
		res, body = sc.Call(t, http.MethodGet, "/api/hello", station.Key, nil)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("Caddy after the refused bootstrap: %d %s", res.StatusCode, body)
		}

		// Stopped, the store is free again; started again on the same
		// data, every user and key is there.
		if !p.Stop(t) {
			t.FailNow()
		}
		r = apitest.Run(t, bin, env, 30*time.Second, bootstrapArgs("root2")...)
		if r.Code != 0 || strings.Count(r.Stdout, ".") != 2 {
			t.Fatalf("bootstrap with Caddy stopped: exit %d, stdout %q\n%s", r.Code, r.Stdout, r.Stderr)
		}
		root2 := strings.TrimSpace(r.Stdout)

		apitest.Start(t, bin, env, site+"/api/hello", "--config", cfg, "--adapter", "caddyfile")
		res, body = sc.Call(t, http.MethodGet, "/api/hello", station.Key, nil)
		if res.StatusCode != http.StatusOK || string(body) != "hello station" {
			t.Fatalf("station's key after the restart: %d %s", res.StatusCode, body)
		}
		for _, k := range []string{root, root2} {
			res, body = sc.Call(t, http.MethodGet, "/admin/me", k, nil)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("a superadmin key after the restart: %d %s", res.StatusCode, body)
			}
		}
		res, body = sc.Call(t, http.MethodGet, "/admin/workspaces/acme/users/"+station.ID, root, nil)
		if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"station"`) {
			t.Fatalf("station after the restart: %d %s", res.StatusCode, body)
		}
	})

	t.Run("bad Caddyfile", func(t *testing.T) {
		tmp := t.TempDir()
		env := apitest.Env(tmp)
		admin := fmt.Sprintf("\tadmin localhost:%d\n", apitest.FreePort(t))
		site := fmt.Sprintf("http://localhost:%d", apitest.FreePort(t))
		cases := []struct {
			name, cf, at, says string
		}{
			{
				name: "unknown subdirective",
				cf: "{\n" + admin + "\tapiusers {\n\t\tstore file " + filepath.Join(tmp, "data") + "\n\t}\n}\n\n" + site + " {\n" +
					"\thandle /api/* {\n\t\tapiusers {\n\t\t\trequire listeners.invoke\n\t\t\tfrobnicate yes\n\t\t}\n\t\trespond ok\n\t}\n}\n",
				at:   "frobnicate",
				says: `unknown apiusers subdirective "frobnicate"`,
			},
			{
				name: "redis without signing_key",
				cf: "{\n" + admin + "\tapiusers {\n\t\tcache_ttl 10s\n\t\tstore redis redis://127.0.0.1:6399/0\n\t}\n}\n\n" + site + " {\n" +
					"\tapiusers\n\trespond ok\n}\n",
				at:   "store redis",
				says: "signing_key",
			},
			{
				name: "unknown global option",
				cf:   "{\n" + admin + "\tapiusers {\n\t\tcolour blue\n\t}\n}\n\n" + site + " {\n\trespond ok\n}\n",
				at:   "colour",
				says: `"colour"`,
			},
			{
				name: "short signing_key",
				cf:   "{\n" + admin + "\tapiusers {\n\t\tsigning_key tooshort\n\t}\n}\n\n" + site + " {\n\trespond ok\n}\n",
				at:   "signing_key",
				says: "at least 32 bytes",
			},
			{
				name: "bad require",
				cf:   "{\n" + admin + "}\n\n" + site + " {\n\tapiusers {\n\t\trequire Not-A-Permission\n\t}\n\trespond ok\n}\n",
				at:   "require",
				says: "not a valid permission",
			},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				dir := t.TempDir()
				path := filepath.Join(dir, "Caddyfile")
				if err := os.WriteFile(path, []byte(c.cf), 0o644); err != nil {
					t.Fatal(err)
				}
				where := path + ":" + strconv.Itoa(apitest.LineOf(t, c.cf, c.at))
				for _, args := range [][]string{
					{"adapt", "--config", path},
					{"validate", "--config", path},
					{"run", "--config", path},
				} {
					r := apitest.Run(t, bin, env, 20*time.Second, args...)
					if r.Code == 0 {
						t.Errorf("caddy %s: succeeded\nstdout %s\nstderr %s", args[0], r.Stdout, r.Stderr)
						continue
					}
					msg := apitest.LogMessages(r.Stderr)
					if !strings.Contains(msg, where) || !strings.Contains(msg, c.says) {
						t.Errorf("caddy %s: the error does not say %q at %s:\n%s", args[0], c.says, where, msg)
					}
				}
			})
		}
	})
}
