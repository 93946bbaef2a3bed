package module

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The acceptance tests that need the built binary: `go build ./cmd/caddy`,
// its module list, the `caddy apiusers bootstrap` command, a restart of a
// real Caddy process on the embedded store, and bad Caddyfiles refused at
// load naming the file and line.

// startBuild starts building ./cmd/caddy into a temporary directory of t,
// with the environment as it is now; the function it returns waits for the
// build and returns the binary's path.
func startBuild(t *testing.T) func() string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build ./cmd/caddy: %v", err)
	}
	exe := filepath.Join(t.TempDir(), "caddy")
	cmd := exec.Command(goBin, "build", "-o", exe, "./cmd/caddy")
	cmd.Dir = ".." // the module root
	cmd.Env = os.Environ()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("go build ./cmd/caddy: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var waited bool
	var buildErr error
	wait := func() error {
		if !waited {
			buildErr, waited = <-done, true
		}
		return buildErr
	}
	t.Cleanup(func() { _ = wait() }) // never leave it writing into TempDir
	return func() string {
		t.Helper()
		if err := wait(); err != nil {
			t.Fatalf("go build ./cmd/caddy: %v\n%s", err, out.String())
		}
		t.Logf("go build ./cmd/caddy finished %v after it started", time.Since(start).Round(time.Millisecond))
		return exe
	}
}

// binEnv is the environment of a Caddy process of a test: its data and
// config directories, and HOME, inside dir.
func binEnv(dir string, extra ...string) []string {
	env := append(os.Environ(),
		"HOME="+dir,
		"XDG_DATA_HOME="+filepath.Join(dir, "xdg-data"),
		"XDG_CONFIG_HOME="+filepath.Join(dir, "xdg-config"),
	)
	return append(env, extra...)
}

// binResult is the outcome of a command that ran to its end.
type binResult struct {
	stdout, stderr string
	code           int
	took           time.Duration
}

// runBin runs the binary to its end (killed after timeout).
func runBin(t *testing.T, bin string, env []string, timeout time.Duration, args ...string) binResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := binResult{stdout: stdout.String(), stderr: stderr.String(), took: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("caddy %s: still running after %v\nstderr: %s", strings.Join(args, " "), timeout, r.stderr)
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("caddy %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// caddyProc is a `caddy run` process.
type caddyProc struct {
	cmd  *exec.Cmd
	log  string // its stdout and stderr
	done chan struct{}
	err  error // of Wait, once done is closed
}

// startBin runs `caddy run` with args until stop or the end of t, and
// waits until url answers.
func startBin(t *testing.T, bin string, env []string, url string, args ...string) *caddyProc {
	t.Helper()
	logf, err := os.CreateTemp(t.TempDir(), "caddy-*.log")
	if err != nil {
		t.Fatal(err)
	}
	p := &caddyProc{cmd: exec.Command(bin, append([]string{"run"}, args...)...), log: logf.Name(), done: make(chan struct{})}
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("caddy log:\n%s", p.logs())
		}
	})
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-p.done:
			t.Fatalf("caddy run exited: %v\n%s", p.err, p.logs())
		default:
		}
		if res, err := client.Get(url); err == nil {
			res.Body.Close()
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("caddy run: %s does not answer\n%s", url, p.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop interrupts Caddy and waits for it to exit (killing it after 10s).
// It reports whether Caddy exited by itself.
func (p *caddyProc) stop(t *testing.T) bool {
	t.Helper()
	select {
	case <-p.done:
		return true
	default:
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
		return true
	case <-time.After(10 * time.Second):
		t.Errorf("caddy did not stop within 10s of an interrupt: killed")
		_ = p.cmd.Process.Kill()
		<-p.done
		return false
	}
}

func (p *caddyProc) logs() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// binCall makes a request to a Caddy process; body is JSON-encoded.
func binCall(t *testing.T, method, url, key string, body any) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, b
}

// logMessages returns the messages of Caddy's JSON log lines in out, one
// a line (other lines as they are): what a user reads.
func logMessages(out string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var entry struct {
			Msg string `json:"msg"`
		}
		if json.Unmarshal([]byte(l), &entry) == nil && entry.Msg != "" {
			l = entry.Msg
		}
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}

// lineOf returns the 1-based line of the first line of text containing s.
func lineOf(t *testing.T, text, s string) int {
	t.Helper()
	for i, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			return i + 1
		}
	}
	t.Fatalf("%q not in the Caddyfile", s)
	return 0
}

func TestE2EBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	// The build runs while the package's other tests do: this test waits
	// for them (t.Parallel), then for the build.
	build := startBuild(t)
	t.Parallel()
	bin := build()

	t.Run("list-modules", func(t *testing.T) {
		r := runBin(t, bin, binEnv(t.TempDir()), 30*time.Second, "list-modules")
		if r.code != 0 {
			t.Fatalf("list-modules: exit %d\n%s", r.code, r.stderr)
		}
		have := map[string]bool{}
		for _, l := range strings.Split(r.stdout, "\n") {
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
		env := binEnv(tmp, "APIUSERS_DATA="+dataDir)
		up := &upstreamLog{}
		upstream := httptest.NewServer(up)
		t.Cleanup(upstream.Close)
		adminPort, sitePort := freePort(t), freePort(t)
		site := "http://localhost:" + strconv.Itoa(sitePort)
		cfg := filepath.Join(tmp, "Caddyfile")
		cf := exampleCaddyfile(t, "quickstart", adminPort, sitePort, strings.TrimPrefix(upstream.URL, "http://"))
		if err := os.WriteFile(cfg, []byte(cf), 0o644); err != nil {
			t.Fatal(err)
		}
		bootstrapArgs := func(user string) []string {
			return []string{"apiusers", "bootstrap", "--config", cfg, "--adapter", "caddyfile", "--workspace", "acme", "--username", user}
		}

		// Bootstrap, Caddy stopped: the key alone on stdout.
		r := runBin(t, bin, env, 30*time.Second, bootstrapArgs("root")...)
		if r.code != 0 {
			t.Fatalf("bootstrap: exit %d\n%s", r.code, r.stderr)
		}
		root, ok := strings.CutSuffix(r.stdout, "\n")
		if !ok || strings.ContainsAny(root, " \t\n") || strings.Count(root, ".") != 2 || !strings.HasPrefix(root, "eyJ") {
			t.Fatalf("stdout is not one key and a newline: %q", r.stdout)
		}
		if !strings.Contains(r.stderr, "created superadmin root") || strings.Contains(r.stderr, root) {
			t.Errorf("stderr = %q", r.stderr)
		}
		for _, f := range []string{dbFileName, secretFileName} {
			if _, err := os.Stat(filepath.Join(dataDir, f)); err != nil {
				t.Errorf("the store's %s: %v", f, err)
			}
		}
		if fi, err := os.Stat(filepath.Join(dataDir, secretFileName)); err == nil && fi.Mode().Perm() != 0o600 {
			t.Errorf("signing.key mode %v, want 0600", fi.Mode().Perm())
		}

		p := startBin(t, bin, env, site+"/api/hello", "--config", cfg, "--adapter", "caddyfile")
		res, body := binCall(t, http.MethodGet, site+"/admin/me", root, nil)
		if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"superadmin"`) {
			t.Fatalf("GET /admin/me with the bootstrap key: %d %s", res.StatusCode, body)
		}
		res, body = binCall(t, http.MethodPost, site+"/admin/workspaces/acme/users", root, map[string]any{
			"username": "station", "kind": "api", "role": "api_user", "issue_key": true,
		})
		var station struct {
			ID  string `json:"id"`
			Key string `json:"key"`
		}
		if res.StatusCode != http.StatusCreated || json.Unmarshal(body, &station) != nil || station.Key == "" {
			t.Fatalf("creating station: %d %s", res.StatusCode, body)
		}
		res, body = binCall(t, http.MethodGet, site+"/api/hello", station.Key, nil)
		if res.StatusCode != http.StatusOK || string(body) != "hello station" {
			t.Fatalf("calling with station's key: %d %s", res.StatusCode, body)
		}

		// Bootstrap while Caddy holds the file store: a clear error, fast.
		r = runBin(t, bin, env, 30*time.Second, bootstrapArgs("root2")...)
		if r.code == 0 {
			t.Fatalf("bootstrap succeeded while Caddy holds the store; stdout %q", r.stdout)
		}
		if !strings.Contains(logMessages(r.stderr), "in use by another process") {
			t.Errorf("bootstrap's error does not say the store is in use: %q", r.stderr)
		}
		if r.stdout != "" {
			t.Errorf("bootstrap printed on stdout: %q", r.stdout)
		}
		if r.took > 15*time.Second {
			t.Errorf("bootstrap took %v to give up", r.took)
		}
		t.Logf("bootstrap gave up after %v", r.took.Round(time.Millisecond))
		// Validating and adapting open no store: they work meanwhile.
		for _, args := range [][]string{
			{"validate", "--config", cfg, "--adapter", "caddyfile"},
			{"adapt", "--config", cfg, "--adapter", "caddyfile", "--validate"},
		} {
			if r := runBin(t, bin, env, 30*time.Second, args...); r.code != 0 {
				t.Errorf("caddy %s while Caddy holds the store: exit %d\n%s", args[0], r.code, r.stderr)
			}
		}
		res, body = binCall(t, http.MethodGet, site+"/api/hello", station.Key, nil)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("Caddy after the refused bootstrap: %d %s", res.StatusCode, body)
		}

		// Stopped, the store is free again; started again on the same
		// data, every user and key is there.
		if !p.stop(t) {
			t.FailNow()
		}
		r = runBin(t, bin, env, 30*time.Second, bootstrapArgs("root2")...)
		if r.code != 0 || strings.Count(r.stdout, ".") != 2 {
			t.Fatalf("bootstrap with Caddy stopped: exit %d, stdout %q\n%s", r.code, r.stdout, r.stderr)
		}
		root2 := strings.TrimSpace(r.stdout)

		startBin(t, bin, env, site+"/api/hello", "--config", cfg, "--adapter", "caddyfile")
		res, body = binCall(t, http.MethodGet, site+"/api/hello", station.Key, nil)
		if res.StatusCode != http.StatusOK || string(body) != "hello station" {
			t.Fatalf("station's key after the restart: %d %s", res.StatusCode, body)
		}
		for _, k := range []string{root, root2} {
			res, body = binCall(t, http.MethodGet, site+"/admin/me", k, nil)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("a superadmin key after the restart: %d %s", res.StatusCode, body)
			}
		}
		res, body = binCall(t, http.MethodGet, site+"/admin/workspaces/acme/users/"+station.ID, root, nil)
		if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"station"`) {
			t.Fatalf("station after the restart: %d %s", res.StatusCode, body)
		}
	})

	t.Run("bad Caddyfile", func(t *testing.T) {
		tmp := t.TempDir()
		env := binEnv(tmp)
		admin := fmt.Sprintf("\tadmin localhost:%d\n", freePort(t))
		site := fmt.Sprintf("http://localhost:%d", freePort(t))
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
				where := path + ":" + strconv.Itoa(lineOf(t, c.cf, c.at))
				for _, args := range [][]string{
					{"adapt", "--config", path},
					{"validate", "--config", path},
					{"run", "--config", path},
				} {
					r := runBin(t, bin, env, 20*time.Second, args...)
					if r.code == 0 {
						t.Errorf("caddy %s: succeeded\nstdout %s\nstderr %s", args[0], r.stdout, r.stderr)
						continue
					}
					msg := logMessages(r.stderr)
					if !strings.Contains(msg, where) || !strings.Contains(msg, c.says) {
						t.Errorf("caddy %s: the error does not say %q at %s:\n%s", args[0], c.says, where, msg)
					}
				}
			})
		}
	})
}
