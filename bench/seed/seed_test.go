package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/redisstore/redistest"
	"github.com/apiusers/apiusers/internal/apitest"
	"github.com/apiusers/apiusers/module"
)

// bootstrapRoot creates workspace acme and superadmin root in the store
// cfg names, as `caddy apiusers bootstrap` does, and returns root's key.
func bootstrapRoot(t *testing.T, cfg string) string {
	t.Helper()
	svc, closeSvc, err := module.OpenService(cfg, "caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	defer closeSvc()
	created, err := svc.Bootstrap(context.Background(), "acme", "root")
	if err != nil {
		t.Fatal(err)
	}
	return created.Key
}

// readKeys returns the lines of the keys file at path.
func readKeys(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var keys []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		keys = append(keys, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return keys
}

// checkSeeded asserts that there are n keys and that each authenticates as
// a distinct active api_user of ws named <prefix>-<number>.
func checkSeeded(t *testing.T, cfg, ws, prefix string, keys []string, n int) {
	t.Helper()
	if len(keys) != n {
		t.Fatalf("%d keys written, want %d", len(keys), n)
	}
	svc, closeSvc, err := module.OpenService(cfg, "caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	defer closeSvc()
	ctx := context.Background()
	users := make(map[string]bool)
	for _, key := range keys {
		p, _, err := svc.Authenticate(ctx, key)
		if err != nil {
			t.Fatalf("a seeded key does not authenticate: %v", err)
		}
		if p.Workspace != ws || p.Role != authz.RoleAPIUser || !p.HasPermission("listeners.invoke") {
			t.Fatalf("principal = %+v", p)
		}
		if !strings.HasPrefix(p.Username, prefix+"-") {
			t.Fatalf("username %q does not start with %s-", p.Username, prefix)
		}
		if users[p.Username] {
			t.Fatalf("two keys of %s", p.Username)
		}
		users[p.Username] = true
	}
}

func TestSeedFileStore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := apitest.WriteCaddyfile(t, "{\n\tapiusers {\n\t\tstore file "+dir+"\n\t}\n}\n")
	keysOut := filepath.Join(t.TempDir(), "keys.txt")
	var stdout, stderr bytes.Buffer
	const n = 300
	code, err := seed(context.Background(), &stdout, &stderr, seedOptions{
		config: cfg, adapter: "caddyfile", workspace: "acme", users: n, prefix: "load", keysOut: keysOut, workers: 8,
		batch: 7, // 300 = 42 batches of 7 and one of 6
	})
	if err != nil || code != 0 {
		t.Fatalf("seed: %d %v (stderr %s)", code, err, stderr.String())
	}
	if stdout.Len() != 0 {
		t.Fatalf("stdout = %q, want nothing (the keys go to --keys-out)", stdout.String())
	}
	if !strings.Contains(stderr.String(), "seeded 300 users") {
		t.Fatalf("stderr = %q", stderr.String())
	}
	if fi, err := os.Stat(keysOut); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("keys file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	keys := readKeys(t, keysOut)
	checkSeeded(t, cfg, "acme", "load", keys, n)

	// A second run with the same prefix says what to do instead.
	stderr.Reset()
	_, err = seed(context.Background(), &stdout, &stderr, seedOptions{
		config: cfg, adapter: "caddyfile", workspace: "acme", users: 1, prefix: "load", keysOut: keysOut,
	})
	if err == nil || !strings.Contains(err.Error(), "--root-key") {
		t.Fatalf("second seed with the same prefix: %v", err)
	}
}

func TestSeedRootKeyStdout(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := apitest.WriteCaddyfile(t, "{\n\tapiusers {\n\t\tstore file "+dir+"\n\t}\n}\n")
	var stdout, stderr bytes.Buffer
	rootKey := bootstrapRoot(t, cfg)
	// The root key's superadmin creates a second workspace on the way.
	code, err := seed(context.Background(), &stdout, &stderr, seedOptions{
		config: cfg, adapter: "caddyfile", workspace: "beta", users: 20, prefix: "s", rootKey: rootKey, workers: 3,
	})
	if err != nil || code != 0 {
		t.Fatalf("seed: %d %v (stderr %s)", code, err, stderr.String())
	}
	keys := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	checkSeeded(t, cfg, "beta", "s", keys, 20)

	// The root key still works: only a bootstrapped seeder loses its key.
	svc, closeSvc, err := module.OpenService(cfg, "caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	defer closeSvc()
	root, _, err := svc.Authenticate(context.Background(), rootKey)
	if err != nil {
		t.Fatalf("root key after seeding: %v", err)
	}
	users, _, err := svc.ListUsers(context.Background(), root, "beta", authz.UserFilter{}, authz.Page{Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range users {
		names = append(names, u.Username)
	}
	slices.Sort(names)
	if len(names) != 20 || names[0] != "s-01" || names[19] != "s-20" {
		t.Fatalf("users of beta: %v, want s-01 … s-20", names)
	}
}

func TestSeedSeederKeyRevoked(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := apitest.WriteCaddyfile(t, "{\n\tapiusers {\n\t\tstore file "+dir+"\n\t}\n}\n")
	var stdout, stderr bytes.Buffer
	rootKey := bootstrapRoot(t, cfg)
	if _, err := seed(context.Background(), &stdout, &stderr, seedOptions{
		config: cfg, adapter: "caddyfile", workspace: "acme", users: 5, prefix: "x",
	}); err != nil {
		t.Fatal(err)
	}
	svc, closeSvc, err := module.OpenService(cfg, "caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	defer closeSvc()
	ctx := context.Background()
	root, _, err := svc.Authenticate(ctx, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	seeders, _, err := svc.ListUsers(ctx, root, "acme", authz.UserFilter{Q: "x-seeder"}, authz.Page{Limit: 10})
	if err != nil || len(seeders) != 1 || seeders[0].Role != authz.RoleSuperadmin {
		t.Fatalf("seeder: %v %+v", err, seeders)
	}
	keys, err := svc.ListKeys(ctx, root, "acme", seeders[0].ID)
	if err != nil || len(keys) != 0 {
		t.Fatalf("the seeder keeps keys %+v (%v)", keys, err)
	}
}

// TestSeedRedis seeds through many workers racing on one workspace, which
// the Redis store resolves optimistically.
func TestSeedRedis(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	cfg := apitest.WriteCaddyfile(t, "{\n\tapiusers {\n\t\tstore redis "+srv.URL()+"\n\t\tsigning_key 0123456789abcdef0123456789abcdef\n\t}\n}\n")
	keysOut := filepath.Join(t.TempDir(), "keys.txt")
	var stdout, stderr bytes.Buffer
	const n = 300
	code, err := seed(context.Background(), &stdout, &stderr, seedOptions{
		config: cfg, adapter: "caddyfile", workspace: "acme", users: n, prefix: "r", keysOut: keysOut, workers: 16,
	})
	if err != nil || code != 0 {
		t.Fatalf("seed: %d %v (stderr %s)", code, err, stderr.String())
	}
	checkSeeded(t, cfg, "acme", "r", readKeys(t, keysOut), n)
}

func TestSeedUsage(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	for _, c := range []struct {
		o    seedOptions
		want string
	}{
		{seedOptions{workspace: "acme", users: 1, prefix: "p"}, "--config"},
		{seedOptions{config: "C", users: 1, prefix: "p"}, "--workspace"},
		{seedOptions{config: "C", workspace: "acme", prefix: "p"}, "--users"},
		{seedOptions{config: "C", workspace: "acme", users: 1}, "--prefix"},
	} {
		if _, err := seed(context.Background(), &stdout, &stderr, c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err = %v, want it to name %s", c.o, err, c.want)
		}
	}
}
