package module

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/filestore"
	"github.com/apiusers/apiusers/authz/password"
)

func TestResolveDefaults(t *testing.T) {
	data := t.TempDir()
	t.Setenv("XDG_DATA_HOME", data)
	a := new(App)
	s, err := a.resolve(caddy.NewReplacer())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.loadSecret(); err != nil {
		t.Fatal(err)
	}
	wantDir := filepath.Join(data, "caddy", "apiusers")
	if s.storeType != StoreFile || s.dir != wantDir {
		t.Fatalf("store = %s %s, want file %s", s.storeType, s.dir, wantDir)
	}
	if s.cacheTTL != 30*time.Second || s.algorithm != "HS256" || s.retryAfter[0] != "5" {
		t.Fatalf("defaults: ttl %v alg %s retry %v", s.cacheTTL, s.algorithm, s.retryAfter)
	}

	// The secret was made beside the data, private, and is kept.
	path := filepath.Join(wantDir, secretFileName)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("signing.key mode = %v, want 0600", fi.Mode().Perm())
	}
	if len(s.secret) != 64 {
		t.Fatalf("secret is %d bytes, want 64 hex characters", len(s.secret))
	}
	s2, err := new(App).resolve(caddy.NewReplacer())
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.loadSecret(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s.secret, s2.secret) {
		t.Fatal("the secret changed on the second start")
	}
	// The file's contents work verbatim as signing_key.
	onDisk, _ := os.ReadFile(path)
	s3, err := (&App{SigningKey: strings.TrimSpace(string(onDisk))}).resolve(caddy.NewReplacer())
	if err != nil {
		t.Fatal(err)
	}
	if err := s3.loadSecret(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s.secret, s3.secret) {
		t.Fatal("signing.key's contents do not give the same secret")
	}
}

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("TEST_APIUSERS_KEY", secret32+"-from-env")
	t.Setenv("TEST_APIUSERS_DIR", dir)
	s, err := (&App{
		Store:      &StoreConfig{Dir: "{env.TEST_APIUSERS_DIR}/sub"},
		SigningKey: "{env.TEST_APIUSERS_KEY}",
		RetryAfter: caddy.Duration(1500 * time.Millisecond),
	}).resolve(caddy.NewReplacer())
	if err != nil {
		t.Fatal(err)
	}
	if string(s.secret) != secret32+"-from-env" {
		t.Fatal("signing_key placeholder not expanded")
	}
	if s.dir != filepath.Join(dir, "sub") {
		t.Fatalf("dir = %s", s.dir)
	}
	if s.retryAfter[0] != "2" {
		t.Fatalf("Retry-After = %s, want 2 (rounded up)", s.retryAfter[0])
	}
	if err := s.loadSecret(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "sub", secretFileName)); !os.IsNotExist(err) {
		t.Fatal("a signing.key was written although signing_key is set")
	}

	s, err = (&App{Store: &StoreConfig{Type: StoreRedis, URL: "redis://localhost:1"}, SigningKey: secret32}).resolve(caddy.NewReplacer())
	if err != nil {
		t.Fatal(err)
	}
	if s.prefix != "apiusers" || s.storeID() != "redis\x00redis://localhost:1\x00apiusers" {
		t.Fatalf("redis settings: %+v", s)
	}
	if strings.Contains(s.poolKey(), secret32) {
		t.Fatal("the pool key holds the secret")
	}
}

func TestResolveErrors(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	cases := []struct {
		app  App
		want string
	}{
		{App{Store: &StoreConfig{Type: StoreRedis, URL: "redis://localhost:6379"}}, "signing_key is required with the redis store"},
		{App{Store: &StoreConfig{Type: StoreRedis}, SigningKey: secret32}, "url is required"},
		{App{Store: &StoreConfig{Type: StoreRedis, URL: "http://x"}, SigningKey: secret32}, "must start with redis://"},
		{App{Store: &StoreConfig{Type: StoreRedis, URL: "redis://x", Prefix: "a{b}"}, SigningKey: secret32}, "prefix must not contain"},
		{App{Store: &StoreConfig{Type: StoreRedis, URL: "redis://x", Dir: "/x"}, SigningKey: secret32}, "dir applies to the file store only"},
		{App{Store: &StoreConfig{URL: "redis://x"}}, "apply to the redis store only"},
		{App{Store: &StoreConfig{Type: "sql"}}, `store type "sql"`},
		{App{SigningKey: "short"}, "at least 32 bytes"},
		{App{SigningKey: "{env.TEST_APIUSERS_UNSET}"}, "empty once placeholders are expanded"},
		{App{SigningAlgorithm: "RS256"}, "want HS256, HS384 or HS512"},
		{App{CacheTTL: -1}, "cache_ttl must not be negative"},
		{App{PasswordBudget: 1.5}, "password_budget 1.5: want a share of the CPUs from 0.001 to 1"},
		{App{PasswordBudget: -0.1}, "password_budget -0.1"},
		{App{PasswordBudget: 1e-12}, "password_budget 1e-12"},
	}
	for _, c := range cases {
		if _, err := c.app.resolve(caddy.NewReplacer()); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", jsonOf(t, c.app), err, c.want)
		}
	}
}

// Apps over the same store share it across reloads; the last Cleanup
// closes it.
func TestAppSharesStore(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	provision := func(a *App) *App {
		t.Helper()
		if err := a.Provision(ctx); err != nil {
			t.Fatalf("provision: %v", err)
		}
		if err := a.Validate(); err != nil {
			t.Fatal(err)
		}
		if err := a.Start(); err != nil {
			t.Fatalf("start: %v", err)
		}
		return a
	}
	lock := caddy.Duration(200 * time.Millisecond)
	oldApp := provision(&App{Store: &StoreConfig{Dir: dir, LockTimeout: lock}})
	same := provision(&App{Store: &StoreConfig{Dir: dir, LockTimeout: lock}})
	if serviceOf(t, oldApp) != serviceOf(t, same) {
		t.Fatal("an identical config did not share the service")
	}
	start := time.Now()
	other := provision(&App{Store: &StoreConfig{Dir: dir, LockTimeout: lock}, CacheTTL: caddy.Duration(time.Minute)})
	if time.Since(start) >= time.Duration(lock) {
		t.Fatal("a new cache over the same store waited for the file lock")
	}
	if serviceOf(t, other) == serviceOf(t, oldApp) || serviceOf(t, other).Store() != serviceOf(t, oldApp).Store() {
		t.Fatal("a changed cache_ttl should make a new service over the same store")
	}

	for _, a := range []*App{oldApp, same, other} {
		if err := a.Cleanup(); err != nil {
			t.Fatal(err)
		}
	}
	// Everything is released: the database opens at once.
	st, err := filestore.Open(filepath.Join(dir, dbFileName), filestore.Options{LockTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("store still held after cleanup: %v", err)
	}
	st.Close()
}

func TestAppProvisionErrors(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	a := &App{Store: &StoreConfig{Type: StoreRedis, URL: "redis://127.0.0.1:1"}}
	if err := a.Provision(ctx); err == nil || !strings.Contains(err.Error(), "signing_key is required") {
		t.Fatalf("err = %v", err)
	}
	if err := a.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if err := a.Validate(); err == nil {
		t.Fatal("an unprovisioned app validated")
	}

	// Redis is not dialled at provision: an unreachable server is fine.
	start := time.Now()
	r := &App{Store: &StoreConfig{Type: StoreRedis, URL: "redis://127.0.0.1:1", DialTimeout: caddy.Duration(5 * time.Second)}, SigningKey: secret32}
	if err := r.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > time.Second {
		t.Fatal("provision dialled redis")
	}
	if err := r.Cleanup(); err != nil {
		t.Fatal(err)
	}
}

// serviceOf is the service app serves with, its store opened.
func serviceOf(t *testing.T, app *App) *authz.Service {
	t.Helper()
	svc, err := app.Service()
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// `caddy validate` (and `caddy adapt --validate`) provision a
// configuration without starting it: they work while another Caddy holds
// the file store, and leave no signing key behind.
func TestValidateWhileStoreHeld(t *testing.T) {
	dir := t.TempDir()
	held, err := filestore.Open(filepath.Join(dir, dbFileName), filestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	cf := `{
	admin off
	apiusers {
		store file ` + dir + ` {
			lock_timeout 3s
		}
	}
}
http://localhost:8080 {
	handle_path /admin/* {
		apiusers_admin
	}
	apiusers {
		require listeners.invoke
		record
	}
	respond ok
}
`
	cfgJSON, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cf), nil)
	if err != nil {
		t.Fatal(err)
	}
	var cfg caddy.Config
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := caddy.Validate(&cfg); err != nil {
		t.Fatalf("validate: %v", err)
	}
	if d := time.Since(start); d >= 3*time.Second {
		t.Fatalf("validate took %s: it waited for the file lock", d)
	}
	if _, err := os.Stat(filepath.Join(dir, secretFileName)); !os.IsNotExist(err) {
		t.Fatalf("validate wrote a signing key (%v)", err)
	}
	// Starting is what needs the store: the same config cannot, and says so.
	app := &App{Store: &StoreConfig{Dir: dir, LockTimeout: caddy.Duration(100 * time.Millisecond)}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := app.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer app.Cleanup()
	if err := app.Start(); err == nil || !strings.Contains(err.Error(), "opening file store") {
		t.Fatalf("start with the store held: err = %v", err)
	}
}

// password_budget sets the process's password hashing budget when its
// configuration starts; a configuration without it puts the default back.
func TestPasswordBudgetOption(t *testing.T) {
	e := startE2E(t, e2eSite{apiusers: []string{"password_budget 10%"}, routes: "\trespond 204\n"})
	if b := sharedHasher().Budget(); b != 0.1 {
		t.Fatalf("with password_budget 10%%, the hasher's budget is %v", b)
	}
	e.unload()
	startE2E(t, e2eSite{routes: "\trespond 204\n"})
	if b := sharedHasher().Budget(); b != password.DefaultBudget {
		t.Fatalf("without password_budget, the hasher's budget stays %v", b)
	}
}

// TestPasswordBudgetHandBack: the budget in force is the one of the
// configuration that started last and still runs. A reload whose start
// fails after the apiusers app started (Caddy stops it again) leaves the
// running configuration's budget, and a reload that works leaves the new
// one's when the old configuration stops. Not parallel: the hasher is the
// process's.
func TestPasswordBudgetHandBack(t *testing.T) {
	running, failed, next := &App{}, &App{}, &App{}
	t.Cleanup(func() {
		for _, a := range []*App{running, failed, next} {
			a.giveBackBudget()
		}
	})
	want := func(when string, share float64) {
		t.Helper()
		if b := sharedHasher().Budget(); b != share {
			t.Errorf("%s: the budget is %v, want %v", when, b, share)
		}
	}
	if err := running.takeBudget(0.05); err != nil {
		t.Fatal(err)
	}
	if err := failed.takeBudget(0.5); err != nil {
		t.Fatal(err)
	}
	want("the new configuration started", 0.5)
	failed.giveBackBudget()
	want("its start failed and it stopped", 0.05)

	if err := next.takeBudget(0.2); err != nil {
		t.Fatal(err)
	}
	running.giveBackBudget()
	want("a reload that worked", 0.2)
	if err := running.takeBudget(2); err == nil {
		t.Error("a budget of 200% was taken")
	}
	want("after a budget refused", 0.2)
	budgets.mu.Lock()
	n := 0
	for _, b := range budgets.running {
		if b.app == running || b.app == failed {
			n++
		}
	}
	budgets.mu.Unlock()
	if n != 0 {
		t.Errorf("%d stopped Apps are still held", n)
	}
}
