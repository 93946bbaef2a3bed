package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/redisstore/redistest"
	"github.com/apiusers/apiusers/authz/storetest"
	"github.com/redis/go-redis/v9"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	var n atomic.Int64
	storetest.Run(t, func(t *testing.T) authz.Store {
		// A prefix per subtest keeps them apart on the shared server.
		return newStore(t, Options{URL: srv.URL(), Prefix: fmt.Sprintf("conf%d", n.Add(1))})
	})
}

func TestLedgerConformance(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	var n atomic.Int64
	storetest.RunLedger(t, func(t *testing.T) authz.Store {
		return newStore(t, Options{URL: srv.URL(), Prefix: fmt.Sprintf("ledger%d", n.Add(1))})
	})
}

func TestTouchConformance(t *testing.T) {
	srv := redistest.Start(t)
	var n atomic.Int64
	storetest.RunTouch(t, func(t *testing.T) authz.Store {
		return newStore(t, Options{URL: srv.URL(), Prefix: fmt.Sprintf("touch%d", n.Add(1))})
	})
}

func TestPeopleConformance(t *testing.T) {
	srv := redistest.Start(t)
	var n atomic.Int64
	storetest.RunPeople(t, func(t *testing.T) authz.Store {
		return newStore(t, Options{URL: srv.URL(), Prefix: fmt.Sprintf("people%d", n.Add(1))})
	})
}

func newStore(t testing.TB, opts Options) *Store {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

var (
	users = authz.Collection{Workspace: "acme", Name: authz.CollUsers}
	teams = authz.Collection{Workspace: "acme", Name: authz.CollTeams}
)

func mustUpdate(t testing.TB, s *Store, ws string, fn func(authz.Tx) error) {
	t.Helper()
	if err := s.Update(context.Background(), ws, fn); err != nil {
		t.Fatal(err)
	}
}

// seedPrincipal stores user usr_1 of acme with two keys and two teams.
func seedPrincipal(t testing.TB, s *Store) {
	t.Helper()
	u, _ := json.Marshal(authz.User{ID: "usr_1", Workspace: "acme", Username: "svc", Teams: []string{"tm_1", "tm_2"}})
	mustUpdate(t, s, "acme", func(tx authz.Tx) error {
		keys := authz.KeysCollection("acme", "usr_1")
		return errors.Join(
			tx.Put(users, "usr_1", u),
			tx.Put(keys, "key_1", []byte(`{"id":"key_1"}`)),
			tx.Put(keys, "key_2", []byte(`{"id":"key_2"}`)),
			tx.Put(teams, "tm_1", []byte(`{"id":"tm_1"}`)),
			tx.Put(teams, "tm_2", []byte(`{"id":"tm_2"}`)),
		)
	})
}

func TestKeyLayout(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := newStore(t, Options{URL: srv.URL(), Prefix: "p"})
	mustUpdate(t, s, "acme", func(tx authz.Tx) error {
		return errors.Join(
			tx.Put(users, "usr_1", []byte("u")),
			tx.Put(authz.KeysCollection("acme", "usr_1"), "key_1", []byte("k")),
		)
	})
	mustUpdate(t, s, "", func(tx authz.Tx) error {
		return tx.Put(authz.Collection{Name: authz.CollWorkspaces}, "acme", []byte("w"))
	})
	keys, err := s.Client().Keys(context.Background(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	want := []string{"p:{_}:r:workspaces", "p:{acme}:p:keys", "p:{acme}:r:users"}
	if !slices.Equal(keys, want) {
		t.Fatalf("keys\n got %q\nwant %q", keys, want)
	}
	c := s.Client()
	if typ := c.Type(context.Background(), "p:{acme}:r:users").Val(); typ != "zset" {
		t.Fatalf("r key has type %s", typ)
	}
	if typ := c.Type(context.Background(), "p:{acme}:p:keys").Val(); typ != "hash" {
		t.Fatalf("p key has type %s", typ)
	}
	// Record members: the id, a tag, the value.
	if ms := c.ZRange(context.Background(), "p:{acme}:r:users", 0, -1).Val(); !slices.Equal(ms, []string{"usr_1\x00u"}) {
		t.Fatalf("users members %q", ms)
	}
	// The keys of usr_1: one field, the packed collection.
	if f := c.HKeys(context.Background(), "p:{acme}:p:keys").Val(); !slices.Equal(f, []string{"usr_1"}) {
		t.Fatalf("packed keys fields %q", f)
	}
	// Names are a plain hash.
	mustUpdate(t, s, "acme", func(tx authz.Tx) error {
		return tx.Put(authz.Collection{Workspace: "acme", Name: authz.CollNames}, "alice", []byte("usr_1"))
	})
	if v := c.HGet(context.Background(), "p:{acme}:h:names", "alice").Val(); v != "usr_1" {
		t.Fatalf("names hash holds %q", v)
	}
	// A value starting with its own id, or id and workspace, does not
	// store them twice.
	mustUpdate(t, s, "acme", func(tx authz.Tx) error {
		return errors.Join(
			tx.Put(users, "usr_1", []byte(`{"id":"usr_1","workspace":"acme","n":1}`)),
			tx.Put(users, "usr_2", []byte(`{"id":"usr_2","n":2}`)),
			tx.Put(users, "usr_3", []byte(`{"id":"usr_3","workspace":"other"}`)),
		)
	})
	want = []string{"usr_1\x02,\"n\":1}", "usr_2\x01,\"n\":2}", "usr_3\x01,\"workspace\":\"other\"}"}
	if ms := c.ZRange(context.Background(), "p:{acme}:r:users", 0, -1).Val(); !slices.Equal(ms, want) {
		t.Fatalf("users members\n got %q\nwant %q", ms, want)
	}
}

// countHook records every command and pipeline the client sends.
type countHook struct {
	mu    sync.Mutex
	sent  []string // one entry per round trip: a command name or "pipeline"
	dials int
}

func (h *countHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		h.mu.Lock()
		h.dials++
		h.mu.Unlock()
		return next(ctx, network, addr)
	}
}

func (h *countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.mu.Lock()
		h.sent = append(h.sent, cmd.Name())
		h.mu.Unlock()
		return next(ctx, cmd)
	}
}

func (h *countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.mu.Lock()
		h.sent = append(h.sent, fmt.Sprintf("pipeline(%d)", len(cmds)))
		h.mu.Unlock()
		return next(ctx, cmds)
	}
}

func (h *countHook) take() (sent []string, dials int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	sent, dials = h.sent, h.dials
	h.sent, h.dials = nil, 0
	return sent, dials
}

// TestLoadPrincipalOneRoundTrip counts, with a client hook, what
// LoadPrincipal sends: one EVALSHA once the server knows the script. Right
// after a SCRIPT FLUSH (or a server restart) it costs EVALSHA, answered
// NOSCRIPT, then EVAL, which caches the script for the next call.
func TestLoadPrincipalOneRoundTrip(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := newStore(t, Options{URL: srv.URL()})
	seedPrincipal(t, s)
	ctx := context.Background()

	h := &countHook{}
	s.Client().AddHook(h)
	if err := s.Client().ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	h.take()

	// Cold: the server does not know the script.
	if _, err := s.LoadPrincipal(ctx, "acme", "usr_1"); err != nil {
		t.Fatal(err)
	}
	if sent, _ := h.take(); !slices.Equal(sent, []string{"evalsha", "eval"}) {
		t.Fatalf("cold LoadPrincipal sent %q, want [evalsha eval]", sent)
	}

	// Warm: exactly one command on a pooled connection.
	for range 3 {
		rec, err := s.LoadPrincipal(ctx, "acme", "usr_1")
		if err != nil {
			t.Fatal(err)
		}
		if len(rec.Keys) != 2 || len(rec.Teams) != 2 {
			t.Fatalf("LoadPrincipal got %d keys, %d teams; want 2, 2", len(rec.Keys), len(rec.Teams))
		}
		sent, dials := h.take()
		if !slices.Equal(sent, []string{"evalsha"}) || dials != 0 {
			t.Fatalf("warm LoadPrincipal sent %q with %d dials, want one evalsha and no dial", sent, dials)
		}
	}

	// A missing user costs one round trip too.
	if _, err := s.LoadPrincipal(ctx, "acme", "usr_none"); !errors.Is(err, authz.ErrNotFound) {
		t.Fatalf("missing user: %v, want ErrNotFound", err)
	}
	if sent, _ := h.take(); len(sent) != 1 {
		t.Fatalf("LoadPrincipal of a missing user sent %q, want one command", sent)
	}
}

// TestUpdateRoundTrips documents what an Update sends: WATCH per collection
// read, the reads, then one MULTI/EXEC pipeline.
func TestUpdateRoundTrips(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := newStore(t, Options{URL: srv.URL()})
	seedPrincipal(t, s)
	ctx := context.Background()
	h := &countHook{}
	s.Client().AddHook(h)

	mustUpdate(t, s, "acme", func(tx authz.Tx) error {
		if _, err := tx.Get(users, "usr_1"); err != nil {
			return err
		}
		if _, err := tx.Get(users, "usr_1"); err != nil { // no second WATCH
			return err
		}
		return errors.Join(tx.Put(users, "usr_1", []byte("{}")), tx.Put(teams, "tm_3", []byte("{}")))
	})
	sent, _ := h.take()
	want := []string{"watch", "zrangebylex", "zrangebylex", "pipeline(6)"} // multi, zremrangebylex, zadd (x2), exec
	if !slices.Equal(sent, want) {
		t.Fatalf("Update sent %q, want %q", sent, want)
	}

	// A blind write watches nothing.
	mustUpdate(t, s, "acme", func(tx authz.Tx) error { return tx.Delete(teams, "tm_3") })
	if sent, _ := h.take(); !slices.Equal(sent, []string{"pipeline(3)"}) {
		t.Fatalf("blind Update sent %q, want one MULTI/EXEC pipeline", sent)
	}
	// A packed collection is written whole: a blind write to it watches
	// and reads it first (in one round trip, however many writes).
	mustUpdate(t, s, "acme", func(tx authz.Tx) error {
		keys := authz.KeysCollection("acme", "usr_1")
		return errors.Join(tx.Put(keys, "key_3", []byte("{}")), tx.Delete(keys, "key_1"))
	})
	if sent, _ := h.take(); !slices.Equal(sent, []string{"pipeline(2)", "pipeline(3)"}) {
		t.Fatalf("blind Update of a packed collection sent %q, want WATCH and HGET in one pipeline, then MULTI/EXEC", sent)
	}
	// When it was read already, it is neither watched nor read again.
	mustUpdate(t, s, "acme", func(tx authz.Tx) error {
		keys := authz.KeysCollection("acme", "usr_1")
		if _, err := tx.Get(keys, "key_3"); err != nil {
			return err
		}
		return tx.Delete(keys, "key_3")
	})
	if sent, _ := h.take(); !slices.Equal(sent, []string{"watch", "hget", "pipeline(3)"}) {
		t.Fatalf("Update of a packed collection it read sent %q", sent)
	}
	// A dropped one is written without reading.
	mustUpdate(t, s, "acme", func(tx authz.Tx) error {
		keys := authz.KeysCollection("acme", "usr_1")
		return errors.Join(tx.Drop(keys), tx.Put(keys, "key_4", []byte("{}")))
	})
	if sent, _ := h.take(); !slices.Equal(sent, []string{"pipeline(3)"}) {
		t.Fatalf("Update of a dropped packed collection sent %q", sent)
	}
	var got []authz.Entry
	_ = s.View(ctx, "acme", func(tx authz.Tx) error {
		var err error
		got, err = tx.Scan(authz.KeysCollection("acme", "usr_1"), "", "", 0)
		return err
	})
	if len(got) != 1 || got[0].ID != "key_4" {
		t.Fatalf("keys after drop and put: %v", got)
	}
	// fn failing sends no write.
	_ = s.Update(ctx, "acme", func(tx authz.Tx) error {
		_ = tx.Put(teams, "tm_4", []byte("{}"))
		return errors.New("no")
	})
	for _, c := range func() []string { s, _ := h.take(); return s }() {
		if strings.HasPrefix(c, "pipeline") || c == "exec" {
			t.Fatalf("failed Update sent %s", c)
		}
	}
}

// TestConflictGivesUp makes every attempt lose a race and expects
// ErrConflict after the retry budget.
func TestConflictGivesUp(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := newStore(t, Options{URL: srv.URL()})
	other := newStore(t, Options{URL: srv.URL()})
	ctx := context.Background()
	attempts := 0
	err := s.Update(ctx, "acme", func(tx authz.Tx) error {
		attempts++
		if _, err := tx.Get(users, "usr_1"); err != nil && !errors.Is(err, authz.ErrNotFound) {
			return err
		}
		// Someone else writes the collection between our read and EXEC.
		mustUpdate(t, other, "acme", func(tx authz.Tx) error {
			return tx.Put(users, "usr_1", []byte(strconv.Itoa(attempts)))
		})
		return tx.Put(users, "usr_1", []byte("mine"))
	})
	if !errors.Is(err, authz.ErrConflict) {
		t.Fatalf("Update losing every race: %v, want ErrConflict", err)
	}
	if attempts != maxAttempts {
		t.Fatalf("fn ran %d times, want %d", attempts, maxAttempts)
	}
	var got []byte
	_ = s.View(ctx, "acme", func(tx authz.Tx) error { got, err = tx.Get(users, "usr_1"); return err })
	if string(got) != strconv.Itoa(maxAttempts) {
		t.Fatalf("stored %q, want the other writer's last value", got)
	}
}

func TestNewDoesNotDial(t *testing.T) {
	t.Parallel()
	// Nothing listens on a port we just closed.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	start := time.Now()
	s := newStore(t, Options{URL: "redis://" + addr, DialTimeout: 200 * time.Millisecond})
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("New took %s", d)
	}
	_, err = s.LoadPrincipal(context.Background(), "acme", "usr_1")
	if !errors.Is(err, authz.ErrUnavailable) {
		t.Fatalf("LoadPrincipal without a server: %v, want ErrUnavailable", err)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{}, "empty url"},
		{Options{URL: "http://localhost:6379"}, "scheme must be redis or rediss"},
		{Options{URL: "redis://user:s3cret@localhost:6379/x"}, "invalid database number"},
		{Options{URL: "redis://localhost", Prefix: "a{b}"}, "must not contain"},
	} {
		_, err := New(tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v): %v, want an error saying %q", tc.opts, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("New error leaks the password: %v", err)
		}
	}
	s, err := New(Options{URL: "rediss://user:pw@example.com:6380/2"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	o := s.Client().(*redis.Client).Options()
	if o.TLSConfig == nil || o.DB != 2 || o.Username != "user" || o.Password != "pw" || o.Addr != "example.com:6380" {
		t.Fatalf("rediss url parsed to addr %s db %d user %q tls %v", o.Addr, o.DB, o.Username, o.TLSConfig != nil)
	}
	if o.DialTimeout != 2*time.Second || o.ReadTimeout != time.Second || o.WriteTimeout != time.Second {
		t.Fatalf("default timeouts %s/%s/%s, want 2s/1s/1s", o.DialTimeout, o.ReadTimeout, o.WriteTimeout)
	}
}

// TestOutage stops the server under a live store: every operation fails
// fast with ErrUnavailable, and after a restart the same store works again.
func TestOutage(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	s := newStore(t, Options{
		URL:         srv.URL(),
		DialTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond,
	})
	seedPrincipal(t, s)
	ctx := context.Background()
	if _, err := s.LoadPrincipal(ctx, "acme", "usr_1"); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	ops := map[string]func() error{
		"Get": func() error {
			return s.View(ctx, "acme", func(tx authz.Tx) error { _, err := tx.Get(users, "usr_1"); return err })
		},
		"Scan": func() error {
			return s.View(ctx, "acme", func(tx authz.Tx) error { _, err := tx.Scan(users, "", "", 10); return err })
		},
		"Update": func() error {
			return s.Update(ctx, "acme", func(tx authz.Tx) error {
				if _, err := tx.Get(users, "usr_1"); err != nil {
					return err
				}
				return tx.Put(users, "usr_2", []byte("x"))
			})
		},
		"BlindUpdate": func() error {
			return s.Update(ctx, "acme", func(tx authz.Tx) error { return tx.Put(users, "usr_2", []byte("x")) })
		},
		"LoadPrincipal": func() error { _, err := s.LoadPrincipal(ctx, "acme", "usr_1"); return err },
	}
	for name, op := range ops {
		start := time.Now()
		err := op()
		if !errors.Is(err, authz.ErrUnavailable) {
			t.Errorf("%s with the server down: %v, want ErrUnavailable", name, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s took %s to fail", name, d)
		}
	}

	srv.Restart()
	deadline := time.Now().Add(5 * time.Second)
	for {
		rec, err := s.LoadPrincipal(ctx, "acme", "usr_1")
		if err == nil {
			if len(rec.Keys) != 2 || len(rec.Teams) != 2 {
				t.Fatalf("after restart: %d keys, %d teams, want 2, 2", len(rec.Keys), len(rec.Teams))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("store did not recover within 5s of the restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	mustUpdate(t, s, "acme", func(tx authz.Tx) error { return tx.Put(users, "usr_3", []byte("after")) })
}

// TestMemoryPerUser measures what one API user with one key costs in Redis
// memory, with records shaped like the API's JSON: the user, its name index
// entry and its one-key keys collection (the domain stores a more compact
// form, and the audit entries of the creation besides: bench/run.sh
// measures that).
func TestMemoryPerUser(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("measures memory over many writes")
	}
	srv := redistest.Start(t)
	s := newStore(t, Options{URL: srv.URL()})
	ctx := context.Background()
	now := time.Date(2025, 5, 1, 12, 0, 0, 123456789, time.UTC)
	const n = 2000

	var userBytes, keyBytes int
	write := func(from, to int) {
		for i := from; i < to; i++ {
			uid := fmt.Sprintf("usr_01J9ZQ4XW8%014d", i)
			kid := fmt.Sprintf("key_01J9ZQ4XW8%014d", i)
			u, _ := json.Marshal(authz.User{
				ID: uid, Workspace: "acme", Username: fmt.Sprintf("billing-service-%d", i),
				Email: fmt.Sprintf("billing-%d@example.com", i), Kind: authz.KindAPI, Role: "editor",
				Status: authz.StatusActive, Permissions: []string{"devices.read"}, Grants: []authz.Grant{},
				Teams: []string{}, CreatedAt: now, UpdatedAt: now, Version: 1,
			})
			k, _ := json.Marshal(authz.Key{ID: kid, UserID: uid, Workspace: "acme", Name: "default",
				CreatedAt: now, IssuedAt: now.Unix(), SigningKeyID: "k1"})
			userBytes, keyBytes = len(u), len(k)
			mustUpdate(t, s, "acme", func(tx authz.Tx) error {
				return errors.Join(
					tx.Put(users, uid, u),
					tx.Put(authz.Collection{Workspace: "acme", Name: authz.CollNames}, fmt.Sprintf("billing-service-%d", i), []byte(uid)),
					tx.Put(authz.KeysCollection("acme", uid), kid, k),
				)
			})
		}
	}
	used := func() int {
		info := s.Client().Info(ctx, "memory").Val()
		for _, line := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
				n, _ := strconv.Atoi(v)
				return n
			}
		}
		t.Fatal("no used_memory in INFO")
		return 0
	}
	// Warm up past the small-encoding thresholds, then measure.
	write(0, 200)
	before := used()
	write(200, 200+n)
	per := (used() - before) / n
	t.Logf("redis memory per API user with one key: %d bytes (user JSON %d bytes, key JSON %d bytes)", per, userBytes, keyBytes)
	// Payload alone is userBytes+keyBytes (less the user's id and workspace,
	// stored once); the rest is the overhead of one sorted set member and
	// two hash fields. Guard against regressions in the layout.
	if limit := userBytes + keyBytes + 400; per > limit {
		t.Errorf("%d bytes per user, more than %d", per, limit)
	}
}

// TestConcurrentUpdatesAcrossStores increments one counter from two stores
// (two Caddy instances, in effect), which share no local lock: only WATCH
// and retries keep every increment.
func TestConcurrentUpdatesAcrossStores(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	stores := []*Store{newStore(t, Options{URL: srv.URL()}), newStore(t, Options{URL: srv.URL()})}
	counter := authz.Collection{Workspace: "acme", Name: "counters"}
	const workers, rounds = 10, 10
	var wg sync.WaitGroup
	var failed atomic.Int64
	for _, s := range stores {
		for range workers {
			wg.Go(func() {
				for range rounds {
					err := s.Update(context.Background(), "acme", func(tx authz.Tx) error {
						n := 0
						v, err := tx.Get(counter, "c")
						if err == nil {
							n, err = strconv.Atoi(string(v))
						}
						if err != nil && !errors.Is(err, authz.ErrNotFound) {
							return err
						}
						return tx.Put(counter, "c", []byte(strconv.Itoa(n+1)))
					})
					if err != nil {
						failed.Add(1)
						t.Errorf("Update: %v", err)
					}
				}
			})
		}
	}
	wg.Wait()
	var got []byte
	err := stores[0].View(context.Background(), "acme", func(tx authz.Tx) error {
		var err error
		got, err = tx.Get(counter, "c")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := strconv.Itoa(len(stores)*workers*rounds - int(failed.Load())); string(got) != want {
		t.Fatalf("counter = %s, want %s (lost updates)", got, want)
	}
	if failed.Load() > 0 {
		t.Fatalf("%d updates failed", failed.Load())
	}
}

// TestConformanceCluster runs the suite over a one-node Redis Cluster
// through a cluster client (Options.Cluster with one seed): Redis then
// rejects any script or transaction whose keys are not in one slot, which
// proves the hash-tag layout. TestCluster runs it over three masters.
func TestConformanceCluster(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, "--cluster-enabled", "yes")
	ctx := context.Background()
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer admin.Close()
	if err := admin.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", 0, 16383).Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(admin.ClusterInfo(ctx).Val(), "cluster_state:ok") {
		if time.Now().After(deadline) {
			t.Fatal("one-node cluster did not reach cluster_state:ok")
		}
		time.Sleep(20 * time.Millisecond)
	}
	var n atomic.Int64
	open := func(t *testing.T) authz.Store {
		s := newStore(t, Options{Cluster: true, Addrs: []string{srv.Addr}, Prefix: fmt.Sprintf("cl%d", n.Add(1))})
		if _, ok := s.Client().(*redis.ClusterClient); !ok {
			t.Fatalf("a cluster of one seed got a %T", s.Client())
		}
		return s
	}
	storetest.Run(t, open)
	t.Run("Messages", func(t *testing.T) { storetest.RunMessages(t, open) })
}

func TestMessagesConformance(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	var n atomic.Int64
	storetest.RunMessages(t, func(t *testing.T) authz.Store {
		return newStore(t, Options{URL: srv.URL(), Prefix: fmt.Sprintf("msg%d", n.Add(1))})
	})
}

// TestMessageKeysAgree checks the message key layout and that, after
// retention and erase, the hash and the zsets hold the same ids.
func TestMessageKeysAgree(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := newStore(t, Options{URL: srv.URL(), Prefix: "p"})
	ctx := context.Background()
	storetest.MessageChurn(t, s, "acme")

	keys, err := s.Client().Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	want := []string{"p:{acme}:m:all", "p:{acme}:m:data", "p:{acme}:m:u:usr_keep", "p:{acme}:m:u:usr_trim"}
	if !slices.Equal(keys, want) {
		t.Fatalf("keys\n got %q\nwant %q", keys, want)
	}
	data, err := s.Client().HKeys(ctx, "p:{acme}:m:data").Result()
	if err != nil {
		t.Fatal(err)
	}
	all := s.Client().ZRange(ctx, "p:{acme}:m:all", 0, -1).Val()
	var users []string
	for _, k := range want[2:] {
		users = append(users, s.Client().ZRange(ctx, k, 0, -1).Val()...)
	}
	slices.Sort(data)
	slices.Sort(users)
	if len(data) != 5 || !slices.Equal(data, all) || !slices.Equal(data, users) {
		t.Fatalf("message ids disagree:\n hash %q\n  all %q\nusers %q", data, all, users)
	}

	// Erasing everyone leaves no key.
	for _, u := range []string{"usr_keep", "usr_trim"} {
		if err := s.EraseMessages(ctx, "acme", u); err != nil {
			t.Fatal(err)
		}
	}
	if keys := s.Client().Keys(ctx, "*").Val(); len(keys) != 0 {
		t.Fatalf("keys left after erasing every user: %q", keys)
	}
}

// TestMessagesRoundTrips counts what the message operations send: one
// pipeline per batch, one EVALSHA per page.
func TestMessagesRoundTrips(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := newStore(t, Options{URL: srv.URL()})
	ctx := context.Background()
	h := &countHook{}
	s.Client().AddHook(h)

	now := time.Now()
	var batch []authz.Message
	for i := range 600 { // 3 users x 200, and one user over appendChunk
		user := []string{"usr_a", "usr_b", "usr_c"}[i%3]
		if i >= 300 {
			user = "usr_a"
		}
		batch = append(batch, authz.Message{ID: authz.NewMessageID(now), Workspace: "acme", UserID: user, Time: now})
	}
	if err := s.AppendMessages(ctx, batch, authz.Retention{MaxPerUser: 1000}); err != nil {
		t.Fatal(err)
	}
	// Cold: the pipeline is answered NOSCRIPT, the script is loaded, the
	// pipeline sent again.
	sent := withoutHandshakes(h)
	if want := []string{"pipeline(4)", "script", "pipeline(4)"}; !slices.Equal(sent, want) {
		t.Fatalf("cold AppendMessages sent %q, want %q", sent, want)
	}
	if err := s.AppendMessages(ctx, batch[:10], authz.Retention{MaxPerUser: 1000}); err != nil {
		t.Fatal(err)
	}
	if sent := withoutHandshakes(h); !slices.Equal(sent, []string{"pipeline(3)"}) {
		t.Fatalf("warm AppendMessages sent %q, want one pipeline", sent)
	}
	for range 2 {
		page, err := s.ListMessages(ctx, "acme", authz.MessageQuery{UserID: "usr_a", Limit: 50})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) != 50 {
			t.Fatalf("page of %d messages, want 50", len(page))
		}
	}
	if sent := withoutHandshakes(h); !slices.Equal(sent, []string{"evalsha", "eval", "evalsha"}) {
		t.Fatalf("two pages sent %q, want [evalsha eval evalsha]", sent)
	}
}

// withoutHandshakes takes what h recorded, leaving out the handshake of
// new connections (HELLO, then a pipeline of 2 setting the client up).
func withoutHandshakes(h *countHook) []string {
	sent, _ := h.take()
	var out []string
	for i := 0; i < len(sent); i++ {
		if sent[i] == "hello" {
			if i+1 < len(sent) && sent[i+1] == "pipeline(2)" {
				i++
			}
			continue
		}
		out = append(out, sent[i])
	}
	return out
}
