package redisstore

import (
	"context"
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

	"github.com/redis/go-redis/v9"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/redisstore/redistest"
	"github.com/apiusers/apiusers/authz/storetest"
)

// TestCluster runs the store over a Redis Cluster of three masters: the
// conformance suites, workspaces spread over the nodes, a client given one
// seed, and invalidations published on one node reaching a subscriber on
// another.
func TestCluster(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3)
	var n atomic.Int64
	open := func(t *testing.T) authz.Store {
		return newStore(t, Options{Cluster: true, Addrs: c.Addrs(), Prefix: fmt.Sprintf("cl%d", n.Add(1))})
	}
	t.Run("Conformance", func(t *testing.T) { storetest.Run(t, open) })
	t.Run("Messages", func(t *testing.T) { storetest.RunMessages(t, open) })
	t.Run("Touch", func(t *testing.T) { storetest.RunTouch(t, open) })

	t.Run("OneSeed", func(t *testing.T) {
		// One seed is enough: the client learns the other nodes from it,
		// and workspaces land on every node.
		s := newStore(t, Options{Cluster: true, Addrs: c.Addrs()[:1], Prefix: "seed"})
		ctx := context.Background()
		for i := range 30 {
			seedWorkspace(t, s, fmt.Sprintf("ws-%d", i))
		}
		cc := s.Client().(*redis.ClusterClient)
		var mu sync.Mutex
		perNode := map[string]int{}
		err := cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			keys, err := node.Keys(ctx, "seed:*").Result()
			mu.Lock()
			perNode[node.Options().Addr] = len(keys)
			mu.Unlock()
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(perNode) != 3 {
			t.Fatalf("keys on %d masters (%v), want 3", len(perNode), perNode)
		}
		for addr, k := range perNode {
			if k == 0 {
				t.Errorf("no workspace landed on %s: %v", addr, perNode)
			}
		}
		for i := range 30 {
			rec, err := s.LoadPrincipal(ctx, fmt.Sprintf("ws-%d", i), "usr_1")
			if err != nil || len(rec.Keys) != 1 {
				t.Fatalf("LoadPrincipal in ws-%d: %v, %+v", i, err, rec)
			}
		}
	})

	t.Run("PublishSubscribe", func(t *testing.T) {
		a := newStore(t, Options{Cluster: true, Addrs: c.Addrs()[:1], Prefix: "ps"})
		b := newStore(t, Options{Cluster: true, Addrs: c.Addrs()[2:], Prefix: "ps"})
		sub := subscribe(t, b)
		waitSubscribed(t, a, 1)
		publishReaches(t, a, sub)
		sub.expectNoResync(t)
	})
}

// seedWorkspace stores user usr_1 of ws with one key.
func seedWorkspace(t testing.TB, s *Store, ws string) {
	t.Helper()
	mustUpdate(t, s, ws, func(tx authz.Tx) error {
		return errors.Join(
			tx.Put(authz.Collection{Workspace: ws, Name: authz.CollUsers}, "usr_1", []byte(`{"id":"usr_1"}`)),
			tx.Put(authz.KeysCollection(ws, "usr_1"), "key_1", []byte(`{"id":"key_1"}`)),
		)
	})
}

// eventually retries op for up to 5s while it fails with ErrUnavailable.
func eventually(t *testing.T, what string, op func() error) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := op()
		if err == nil {
			return
		}
		if !errors.Is(err, authz.ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// publishReaches publishes changes from a and expects sub to apply each.
func publishReaches(t *testing.T, a *Store, sub *subscriber) {
	t.Helper()
	for _, c := range []authz.Change{
		{Workspace: "acme", Users: []string{"usr_1", "usr_2"}},
		{Workspace: "other"},
	} {
		if err := a.Publish(context.Background(), c); err != nil {
			t.Fatal(err)
		}
		sub.expect(t, c, time.Second)
	}
}

// TestSentinel runs the store over a master and a replica that a sentinel
// watches: the conformance suites and invalidations, before and after a
// failover.
func TestSentinel(t *testing.T) {
	t.Parallel()
	set := redistest.StartSentinel(t)
	var n atomic.Int64
	opts := func(prefix string) Options {
		return Options{MasterName: redistest.MasterName, Addrs: set.SentinelAddrs(), Prefix: prefix}
	}
	open := func(t *testing.T) authz.Store {
		return newStore(t, opts(fmt.Sprintf("se%d", n.Add(1))))
	}
	t.Run("Conformance", func(t *testing.T) { storetest.Run(t, open) })
	t.Run("Messages", func(t *testing.T) { storetest.RunMessages(t, open) })
	t.Run("Touch", func(t *testing.T) { storetest.RunTouch(t, open) })

	t.Run("PublishSubscribe", func(t *testing.T) {
		a, b := newStore(t, opts("ps")), newStore(t, opts("ps"))
		sub := subscribe(t, b)
		waitSubscribed(t, a, 1)
		publishReaches(t, a, sub)

		// After a failover the client writes to the new master, and
		// changes still reach the subscriber: either on its connection
		// (the old master, now a replica, relays what the new one
		// publishes) or through a new subscription, which resyncs.
		seedWorkspace(t, a, "acme")
		set.Failover()
		// The client hears of the new master a moment later; until then
		// its writes reach the old one and are refused.
		eventually(t, "a write after the failover", func() error {
			return a.Update(context.Background(), "after", func(tx authz.Tx) error {
				return tx.Put(authz.Collection{Workspace: "after", Name: authz.CollUsers}, "usr_1", []byte("{}"))
			})
		})
		c := authz.Change{Workspace: "after"}
		deadline := time.Now().Add(5 * time.Second)
		for {
			if err := a.Publish(context.Background(), c); err != nil {
				t.Fatal(err)
			}
			select {
			case got := <-sub.changes:
				if got.Workspace != "after" {
					t.Fatalf("received %+v, want %+v", got, c)
				}
				return
			case <-sub.resyncs:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatal("no change nor resync within 5s of the failover")
			}
		}
	})
}

// TestSentinelFailoverKeepsAcknowledgedWrites writes from several
// goroutines while the sentinel fails the master over, and then finds
// every write that Update acknowledged on the new master. Writes that
// failed during the switch are not acknowledged, whether or not they
// landed. The store waits for one replica after each EXEC
// (WaitReplicas): Redis replication is asynchronous, so without it a
// write the old master acknowledged but had not yet sent to the replica
// is lost when the replica is promoted.
func TestSentinelFailoverKeepsAcknowledgedWrites(t *testing.T) {
	t.Parallel()
	set := redistest.StartSentinel(t, "--appendonly", "yes")
	s := newStore(t, Options{
		MasterName: redistest.MasterName, Addrs: set.SentinelAddrs(),
		WaitReplicas: 1, WaitTimeout: 300 * time.Millisecond,
		DialTimeout: 300 * time.Millisecond, ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond,
	})
	writes := authz.Collection{Workspace: "acme", Name: "writes"}
	counters := authz.Collection{Workspace: "acme", Name: "counters"}

	var (
		mu       sync.Mutex
		acked    = map[string]bool{} // ids of acknowledged writes
		ackedMax int                 // highest acknowledged counter value
		ackCount atomic.Int64
		failed   atomic.Int64
	)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				id := fmt.Sprintf("w%d-%06d", g, i)
				var wrote int
				err := s.Update(ctx, "acme", func(tx authz.Tx) error {
					// A read-modify-write (WATCHed) and a blind write.
					n := 0
					v, err := tx.Get(counters, "c")
					if err == nil {
						n, err = strconv.Atoi(string(v))
					}
					if err != nil && !errors.Is(err, authz.ErrNotFound) {
						return err
					}
					wrote = n + 1
					return errors.Join(tx.Put(counters, "c", []byte(strconv.Itoa(wrote))), tx.Put(writes, id, []byte(id)))
				})
				switch {
				case err == nil:
					mu.Lock()
					acked[id] = true
					ackedMax = max(ackedMax, wrote)
					mu.Unlock()
					ackCount.Add(1)
				case ctx.Err() != nil:
				case errors.Is(err, authz.ErrUnavailable) || errors.Is(err, authz.ErrConflict):
					failed.Add(1)
					time.Sleep(10 * time.Millisecond)
				default:
					t.Errorf("Update: %v (want success, ErrUnavailable or ErrConflict)", err)
					return
				}
			}
		})
	}
	waitCount := func(what string, n int64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for ackCount.Load() < n {
			if time.Now().After(deadline) {
				stop()
				wg.Wait()
				t.Fatalf("%s: %d writes acknowledged, want %d (%d failed)", what, ackCount.Load(), n, failed.Load())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitCount("before the failover", 100)
	before := ackCount.Load()
	start := time.Now()
	master := set.Failover()
	t.Logf("failover to %s took %s; %d writes acknowledged before it", master, time.Since(start), before)
	waitCount("after the failover", ackCount.Load()+100)
	stop()
	wg.Wait()

	// Read the new master directly, not through the sentinel.
	direct := newStore(t, Options{URL: "redis://" + master})
	var stored []authz.Entry
	var counter []byte
	err := direct.View(context.Background(), "acme", func(tx authz.Tx) error {
		var err error
		if stored, err = tx.Scan(writes, "", "", 0); err != nil {
			return err
		}
		counter, err = tx.Get(counters, "c")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	present := make(map[string]bool, len(stored))
	for _, e := range stored {
		present[e.ID] = true
	}
	var lost []string
	for id := range acked {
		if !present[id] {
			lost = append(lost, id)
		}
	}
	slices.Sort(lost)
	t.Logf("%d writes acknowledged, %d failed (%d of those landed anyway)", len(acked), failed.Load(), len(present)-len(acked))
	if len(lost) > 0 {
		t.Fatalf("%d acknowledged writes lost in the failover: %v", len(lost), lost)
	}
	if got, _ := strconv.Atoi(string(counter)); got < ackedMax {
		t.Fatalf("counter is %d after the failover, but %d was acknowledged", got, ackedMax)
	}
}

// TestSentinelWaitReplicas checks that an Update waits for the replicas it was
// told to: without a replica it fails with ErrUnavailable after
// WaitTimeout (the write stays on the master), with one it succeeds, and
// what it sends is one WAIT more than without.
func TestSentinelWaitReplicas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	put := func(s *Store, id string) error {
		return s.Update(ctx, "acme", func(tx authz.Tx) error { return tx.Put(users, id, []byte("{}")) })
	}

	alone := redistest.Start(t)
	s := newStore(t, Options{URL: alone.URL(), WaitReplicas: 1, WaitTimeout: 100 * time.Millisecond})
	start := time.Now()
	err := put(s, "usr_1")
	if !errors.Is(err, authz.ErrUnavailable) || !strings.Contains(err.Error(), "0 of 1 replicas") {
		t.Fatalf("Update without a replica: %v, want ErrUnavailable saying 0 of 1 replicas", err)
	}
	if d := time.Since(start); d < 100*time.Millisecond || d > 2*time.Second {
		t.Fatalf("Update without a replica failed after %s, want about WaitTimeout", d)
	}
	// A read-only Update writes nothing and waits for nothing.
	if err := s.Update(ctx, "acme", func(tx authz.Tx) error { _, err := tx.Get(users, "usr_1"); return err }); err != nil {
		t.Fatalf("read-only Update: %v", err)
	}

	set := redistest.StartSentinel(t)
	s = newStore(t, Options{URL: "redis://" + set.Master(), WaitReplicas: 1})
	h := &countHook{}
	s.Client().AddHook(h)
	if err := put(s, "usr_1"); err != nil {
		t.Fatal(err)
	}
	if sent := withoutHandshakes(h); !slices.Equal(sent, []string{"pipeline(4)", "wait"}) {
		t.Fatalf("Update with WaitReplicas sent %q, want [pipeline(4) wait]", sent)
	}
}

func TestNewClusterAndSentinel(t *testing.T) {
	t.Parallel()
	t.Run("cluster of one seed", func(t *testing.T) {
		s, err := New(Options{Cluster: true, Addrs: []string{"10.0.0.1:7000"}, Username: "app", Password: "pw", TLS: true})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		cc, ok := s.Client().(*redis.ClusterClient)
		if !ok {
			t.Fatalf("client is %T, want a cluster client", s.Client())
		}
		o := cc.Options()
		if !slices.Equal(o.Addrs, []string{"10.0.0.1:7000"}) || o.Username != "app" || o.Password != "pw" || o.TLSConfig == nil {
			t.Fatalf("cluster options: addrs %v user %q tls %v", o.Addrs, o.Username, o.TLSConfig != nil)
		}
		if o.DialTimeout != 2*time.Second || o.ReadTimeout != time.Second || o.WriteTimeout != time.Second {
			t.Fatalf("default timeouts %s/%s/%s, want 2s/1s/1s", o.DialTimeout, o.ReadTimeout, o.WriteTimeout)
		}
	})
	t.Run("sentinel", func(t *testing.T) {
		s, err := New(Options{MasterName: "mymaster", Addrs: []string{"10.0.0.1:26379", "10.0.0.2:26379"}, Password: "pw", DB: 3})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		c, ok := s.Client().(*redis.Client)
		if !ok {
			t.Fatalf("client is %T, want a (failover) client", s.Client())
		}
		if o := c.Options(); o.Addr != "FailoverClient" || o.DB != 3 || o.Password != "pw" || o.TLSConfig != nil {
			t.Fatalf("sentinel options: addr %q db %d tls %v", o.Addr, o.DB, o.TLSConfig != nil)
		}
	})
	t.Run("single server with separate credentials", func(t *testing.T) {
		s, err := New(Options{URL: "redis://example.com:6379/1", Username: "app", Password: "s3cret", TLS: true, WaitReplicas: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		o := s.Client().(*redis.Client).Options()
		if o.Username != "app" || o.Password != "s3cret" || o.TLSConfig == nil || o.DB != 1 {
			t.Fatalf("options: user %q db %d tls %v", o.Username, o.DB, o.TLSConfig != nil)
		}
		if s.waitReplicas != 1 || s.waitTimeout != time.Second {
			t.Fatalf("wait %d replicas for %s, want 1 for 1s", s.waitReplicas, s.waitTimeout)
		}
	})

	t.Run("rediss url keeps its tls settings", func(t *testing.T) {
		s, err := New(Options{URL: "rediss://example.com:6380?skip_verify=true", TLS: true})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if tc := s.Client().(*redis.Client).Options().TLSConfig; tc == nil || !tc.InsecureSkipVerify {
			t.Fatalf("tls config %+v, want the url's (skip_verify)", tc)
		}
	})

	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"nothing", Options{}, "empty url"},
		{"cluster and sentinel", Options{Cluster: true, MasterName: "m", Addrs: []string{"h:1"}}, "cluster and sentinel (master name) exclude each other"},
		{"cluster with url", Options{Cluster: true, URL: "redis://h:1", Addrs: []string{"h:1"}}, "a url names a single server"},
		{"sentinel with url", Options{MasterName: "m", URL: "redis://h:1"}, "a url names a single server"},
		{"cluster without seeds", Options{Cluster: true}, "cluster needs at least one seed address"},
		{"sentinel without sentinels", Options{MasterName: "m"}, "sentinel needs at least one sentinel address"},
		{"addresses alone", Options{Addrs: []string{"h:1", "h:2"}}, "addresses need cluster or a sentinel master name"},
		{"bad address", Options{Cluster: true, Addrs: []string{"h:1", "nohost"}}, `address "nohost": want host:port`},
		{"empty port", Options{MasterName: "m", Addrs: []string{"h:"}}, `address "h:": want host:port`},
		{"cluster db", Options{Cluster: true, Addrs: []string{"h:1"}, DB: 2}, "redis cluster has only database 0"},
		{"url db", Options{URL: "redis://h:1", DB: 2}, "database is given in the url path"},
		{"negative db", Options{MasterName: "m", Addrs: []string{"h:1"}, DB: -1}, "db -1 is negative"},
		{"sentinel password without sentinel", Options{URL: "redis://h:1", SentinelPassword: "x"}, "sentinel username and password need a sentinel master name"},
		{"credentials twice", Options{URL: "redis://u:s3cret@h:1", Password: "other"}, "credentials given both in the url and as username/password"},
		{"negative wait", Options{URL: "redis://h:1", WaitReplicas: -1}, "wait replicas -1 is negative"},
		{"negative wait timeout", Options{URL: "redis://h:1", WaitReplicas: 1, WaitTimeout: -time.Second}, "wait timeout is negative"},
		{"cluster prefix", Options{Cluster: true, Addrs: []string{"h:1"}, Prefix: "{x}"}, "must not contain"},
	} {
		_, err := New(tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New: %v, want an error saying %q", tc.name, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: New error leaks the password: %v", tc.name, err)
		}
	}
}

// TestNewClusterAndSentinelDoNotDial builds cluster and sentinel stores whose
// nodes do not exist: New returns at once, and operations fail fast with
// ErrUnavailable.
func TestNewClusterAndSentinelDoNotDial(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	for name, opts := range map[string]Options{
		"cluster":  {Cluster: true, Addrs: []string{addr}},
		"sentinel": {MasterName: "mymaster", Addrs: []string{addr}},
	} {
		t.Run(name, func(t *testing.T) {
			opts.DialTimeout = 200 * time.Millisecond
			start := time.Now()
			s := newStore(t, opts)
			if d := time.Since(start); d > 100*time.Millisecond {
				t.Fatalf("New took %s", d)
			}
			start = time.Now()
			_, err := s.LoadPrincipal(context.Background(), "acme", "usr_1")
			if !errors.Is(err, authz.ErrUnavailable) {
				t.Fatalf("LoadPrincipal without a server: %v, want ErrUnavailable", err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("LoadPrincipal took %s to fail", d)
			}
			err = s.Update(context.Background(), "acme", func(tx authz.Tx) error { return tx.Put(users, "usr_1", nil) })
			if !errors.Is(err, authz.ErrUnavailable) {
				t.Fatalf("Update without a server: %v, want ErrUnavailable", err)
			}
		})
	}
}
