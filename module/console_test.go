package module

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// The console end to end: a real Caddy (in process) serves the admin API
// and the console at /admin/, a protected API route that records calls
// (/api/*, listeners.invoke) and device routes (/devices/<id>, rights read
// and control), proxying to a real upstream; a real headless Chromium
// drives the console.

// consoleEnv is a running console Caddy.
type consoleEnv struct {
	*e2e
	console   string // http://localhost:<port>/admin/
	accessLog string // Caddy's access log of the site
	adminPort int
}

func consoleCaddyfile(adminPort, sitePort int, dataDir, accessLog, upstream string) string {
	return fmt.Sprintf(`{
	admin localhost:%d
	persist_config off
	apiusers {
		store file %s
	}
}

http://localhost:%d {
	log {
		output file %s
	}

	handle_path /admin/* {
		apiusers_admin
	}

	handle /api/* {
		apiusers {
			require listeners.invoke
			record
		}
		reverse_proxy %[5]s
	}

	@device path_regexp dev ^/devices/([a-z0-9][a-z0-9_-]*)(/.*)?$
	handle @device {
		@read method GET HEAD
		apiusers @read {
			require read on device:{re.dev.1}
		}
		@control not method GET HEAD
		apiusers @control {
			require control on device:{re.dev.1}
		}
		reverse_proxy %[5]s
	}

	handle_errors {
		respond "{err.status_code} {err.message}"
	}
}
`, adminPort, dataDir, sitePort, accessLog, upstream)
}

// startConsole starts the console Caddy on the file store, bootstrapped
// with superadmin root in workspace acme.
func startConsole(t *testing.T) *consoleEnv {
	t.Helper()
	tmp, dataDir := e2eTempDirs(t)
	up := &upstreamLog{}
	upstream := httptest.NewServer(up)
	t.Cleanup(upstream.Close)

	e2eAdminPortOnce.Do(func() { e2eAdminPort = freePort(t) })
	adminPort, sitePort := e2eAdminPort, freePort(t)
	base := "http://localhost:" + strconv.Itoa(sitePort)
	c := &consoleEnv{
		e2e: &e2e{
			t:        t,
			base:     base,
			dataDir:  dataDir,
			upstream: up,
			tester:   caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort}),
		},
		console:   base + "/admin/",
		accessLog: filepath.Join(tmp, "access.log"),
		adminPort: adminPort,
	}
	cf := consoleCaddyfile(adminPort, sitePort, dataDir, c.accessLog, strings.TrimPrefix(upstream.URL, "http://"))
	cfgPath := filepath.Join(tmp, "Caddyfile")
	if err := os.WriteFile(cfgPath, []byte(cf), 0o644); err != nil {
		t.Fatal(err)
	}
	c.rootKey(cfgPath)
	c.tester.InitServer(cf, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	t.Cleanup(func() {
		c.tester.Client.CloseIdleConnections()
		c.tester.InitServer(fmt.Sprintf("{\n\tadmin localhost:%d\n\tpersist_config off\n}\n", adminPort), "caddyfile")
	})
	return c
}

// api calls the admin API with key and decodes a JSON answer into out (when
// not nil); it returns the status.
func (c *consoleEnv) api(t *testing.T, method, path, key string, body, out any) int {
	t.Helper()
	var h http.Header
	if key != "" {
		h = bearerHeader(key)
	}
	res, b := c.do(method, "/admin"+path, h, body)
	if out != nil && res.StatusCode < 300 && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return res.StatusCode
}

// mustAPI is api that fails the test unless the status is want.
func (c *consoleEnv) mustAPI(t *testing.T, want int, method, path, key string, body, out any) {
	t.Helper()
	var h http.Header
	if key != "" {
		h = bearerHeader(key)
	}
	res, b := c.do(method, "/admin"+path, h, body)
	if res.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, res.StatusCode, want, b)
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
}

// call calls a gateway route with key and returns the status.
func (c *consoleEnv) call(t *testing.T, method, path, key string) int {
	t.Helper()
	res, _ := c.do(method, path, bearerHeader(key), nil)
	return res.StatusCode
}

// mkUser creates a user in acme as root.
func (c *consoleEnv) mkUser(t *testing.T, body map[string]any) accUser {
	t.Helper()
	var u accUser
	c.mustAPI(t, http.StatusCreated, "POST", "/workspaces/acme/users", c.root, body, &u)
	return u
}

func TestConsoleBrowser(t *testing.T) {
	c := startConsole(t)
	b := startBrowser(t)

	t.Run("landing", func(t *testing.T) {
		tb := b.newTab(t, c.console, c.root)
		tb.open("")
		if h := tb.heading(); h != "API Users" {
			t.Fatalf("heading %q, want API Users", h)
		}
		tb.screenshot("api-users")
		tb.axe("API Users")
		tb.noErrors()
	})
}
