package module

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/filestore"
	"github.com/apiusers/apiusers/internal/apitest"
)

func TestBootstrap(t *testing.T) {
	dir := t.TempDir()
	cfg := apitest.WriteCaddyfile(t, `{
	apiusers {
		store file `+dir+`
	}
}
http://localhost:8080 {
	apiusers
	respond ok
}
`)
	var stdout, stderr bytes.Buffer
	code, err := bootstrap(&stdout, &stderr, cfg, "caddyfile", "acme", "root")
	if err != nil || code != 0 {
		t.Fatalf("bootstrap: %d %v (stderr %s)", code, err, stderr.String())
	}
	key, ok := strings.CutSuffix(stdout.String(), "\n")
	if !ok || strings.ContainsAny(key, " \n") || strings.Count(key, ".") != 2 {
		t.Fatalf("stdout is not one key and a newline: %q", stdout.String())
	}
	if !strings.Contains(stderr.String(), "created superadmin root") {
		t.Fatalf("stderr = %q", stderr.String())
	}

	// The key works against the store the config names, with the secret
	// kept beside it.
	svc, closeSvc, err := OpenService(cfg, "caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	defer closeSvc()
	p, _, err := svc.Authenticate(context.Background(), key)
	if err != nil {
		t.Fatalf("the printed key does not authenticate: %v", err)
	}
	if p.Role != authz.RoleSuperadmin || p.Workspace != "acme" || p.Username != "root" {
		t.Fatalf("principal = %+v", p)
	}
}

func TestBootstrapStoreInUse(t *testing.T) {
	dir := t.TempDir()
	cfg := apitest.WriteCaddyfile(t, `{
	apiusers {
		store file `+dir+` {
			lock_timeout 300ms
		}
	}
}
`)
	held, err := filestore.Open(filepath.Join(dir, dbFileName), filestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()

	var stdout, stderr bytes.Buffer
	start := time.Now()
	code, err := bootstrap(&stdout, &stderr, cfg, "", "acme", "root")
	if err == nil || code == 0 {
		t.Fatal("bootstrap succeeded on a store another process holds")
	}
	if !strings.Contains(err.Error(), "in use") {
		t.Fatalf("error does not say the store is in use: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("bootstrap took %v", d)
	}
	if stdout.Len() != 0 {
		t.Fatalf("stdout = %q, want nothing", stdout.String())
	}
}

func TestBootstrapDefaults(t *testing.T) {
	data := t.TempDir()
	t.Setenv("XDG_DATA_HOME", data)
	cfg := apitest.WriteCaddyfile(t, "http://localhost:8080 {\n\trespond ok\n}\n")
	var stdout, stderr bytes.Buffer
	if _, err := bootstrap(&stdout, &stderr, cfg, "caddyfile", "acme", "root"); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{dbFileName, secretFileName} {
		if _, err := os.Stat(filepath.Join(data, "caddy", "apiusers", f)); err != nil {
			t.Errorf("default store: %v", err)
		}
	}
}

func TestBootstrapUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if _, err := bootstrap(&stdout, &stderr, "", "", "acme", "root"); err == nil || !strings.Contains(err.Error(), "--config") {
		t.Fatalf("err = %v", err)
	}
	if _, err := bootstrap(&stdout, &stderr, "Caddyfile", "", "", "root"); err == nil || !strings.Contains(err.Error(), "--workspace") {
		t.Fatalf("err = %v", err)
	}
	cfg := apitest.WriteCaddyfile(t, "{\n\tapiusers {\n\t\tstore redis redis://127.0.0.1:1\n\t}\n}\n")
	if _, err := bootstrap(&stdout, &stderr, cfg, "caddyfile", "acme", "root"); err == nil || !strings.Contains(err.Error(), "signing_key") {
		t.Fatalf("err = %v", err)
	}
}
