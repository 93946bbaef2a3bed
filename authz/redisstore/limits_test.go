package redisstore

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/apiusers/apiusers/authz/limit"
	"github.com/apiusers/apiusers/authz/redisstore/redistest"
)

func TestTally(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := newStore(t, Options{URL: srv.URL(), Prefix: "tally"})
	ctx := context.Background()
	const head = 1_000_000
	a := &limit.Tally{Name: "r|usr_1|10/1000000000", Head: head, TTL: time.Second, Demand: 5}
	a.Add[10], a.Add[9] = 3, 1 // slots head and head-1
	b := &limit.Tally{Name: a.Name, Head: head, TTL: time.Second, Demand: 2}
	b.Add[10] = 2
	if err := s.Tally(ctx, []*limit.Tally{a, b}); err != nil {
		t.Fatal(err)
	}
	if !a.Done || !b.Done || b.Totals[10] != 5 || b.Totals[9] != 1 || b.DemandTotal != 7 {
		t.Fatalf("tallies: %+v / %+v", a, b)
	}
	// A read adds nothing, and the window moves on: slot head-1 leaves it
	// when the head is 11 slots later.
	r := &limit.Tally{Name: a.Name, Head: head + 10, TTL: time.Second}
	if err := s.Tally(ctx, []*limit.Tally{r}); err != nil {
		t.Fatal(err)
	}
	if r.Totals[0] != 5 || r.DemandTotal != 7 {
		t.Fatalf("read: %+v", r)
	}
	w := &limit.Tally{Name: a.Name, Head: head + 10, TTL: time.Second, Demand: 1}
	if err := s.Tally(ctx, []*limit.Tally{w}); err != nil {
		t.Fatal(err)
	}
	fields, err := s.client.HKeys(ctx, s.counterKey(a.Name)).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(fields) != 2 { // "d" and the slot head
		t.Errorf("fields %v: slots that left the window stay", fields)
	}
	if ttl := s.client.PTTL(ctx, s.counterKey(a.Name)).Val(); ttl <= 0 || ttl > time.Second {
		t.Errorf("counter TTL %s, want at most the window and a slot", ttl)
	}
	// Unreachable: an error, nothing done.
	srv.Stop()
	x := &limit.Tally{Name: a.Name, Head: head, TTL: time.Second, Demand: 1}
	if err := s.Tally(ctx, []*limit.Tally{x}); err == nil || x.Done {
		t.Errorf("Redis down: err %v, done %v", err, x.Done)
	}
}

// TestCreditsThroughRestart: 1,000 credits spent by three engines over one
// Redis as fast as they go, with Redis killed (SIGKILL) for 300ms and
// started again in the middle (append-only file, fsync always): exactly
// 1,000, never more.
func TestCreditsThroughRestart(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	var engines []*limit.Engine
	for range 3 {
		s := newStore(t, Options{URL: srv.URL(), Prefix: "credits"})
		e := limit.NewEngine(limit.EngineConfig{Ledger: s, Tallier: s, SyncEvery: 20 * time.Millisecond,
			Recheck: 20 * time.Millisecond, DownRetry: 20 * time.Millisecond, ReportEvery: 100 * time.Millisecond})
		t.Cleanup(e.Close)
		engines = append(engines, e)
	}
	c := &limit.Credits{Workspace: "acme", ID: "key_1", Serial: 1, Set: 1000, SetAt: time.Now().UnixNano()}
	var spent, unavailable atomic.Int64
	var restarted atomic.Bool
	var wg sync.WaitGroup
	for _, e := range engines {
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				denied := 0
				for denied < 300 {
					d := e.Spend(context.Background(), c, 1, time.Now().UnixNano())
					switch {
					case d.Allowed:
						if n := spent.Add(1); n == 400 && restarted.CompareAndSwap(false, true) {
							go func() {
								srv.Kill()
								time.Sleep(300 * time.Millisecond)
								srv.Restart()
							}()
						}
						denied = 0
						time.Sleep(50 * time.Microsecond)
					case d.Unavailable:
						unavailable.Add(1)
						time.Sleep(time.Millisecond)
					default:
						denied++
						time.Sleep(time.Millisecond)
					}
				}
			}()
		}
	}
	wg.Wait()
	if got := spent.Load(); got != 1000 {
		t.Errorf("spent %d through a Redis restart, want exactly 1000 (%d answers unavailable)", got, unavailable.Load())
	}
	t.Logf("spent %d; %d answers unavailable while Redis restarted", spent.Load(), unavailable.Load())
}

// slowTallier is a Store's Tallier answering after delay, as a Redis
// across a network, or a busy one, does.
type slowTallier struct {
	*Store
	delay time.Duration
}

func (s slowTallier) Tally(ctx context.Context, batch []*limit.Tally) error {
	time.Sleep(s.delay)
	return s.Store.Tally(ctx, batch)
}

// TestLimitsSlowTallier: three engines over one Redis whose answers take
// longer than half a sync interval, a caller at far more than its rate
// spread over them: after the first window the fleet admits about the
// rate, not each instance the rate on its own (the read after each report
// was skipped when the report ended past the read's time, so no instance
// saw the others' counts: 300 in the 2 s measured).
func TestLimitsSlowTallier(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	const every, delay = 100 * time.Millisecond, 60 * time.Millisecond
	r := limit.Rate{Requests: 50, Per: time.Second}
	var admitted atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range 3 {
		s := newStore(t, Options{URL: srv.URL(), Prefix: "slow"})
		e := limit.NewEngine(limit.EngineConfig{Tallier: slowTallier{s, delay}, SyncEvery: every})
		t.Cleanup(e.Close)
		l := e.Limiter("route|0")
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < 3500*time.Millisecond {
				// The first window, before the fleet's counts are read,
				// may admit 3 × 50: count from when it has left.
				if l.Allow("usr_x", r, 1, time.Now().UnixNano()).Allowed && time.Since(start) >= 1500*time.Millisecond {
					admitted.Add(1)
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	if n := admitted.Load(); n > 180 {
		t.Errorf("admitted %d in 2 s at a rate of 50 per second, want about 100 (at most 180)", n)
	}
	t.Logf("admitted %d in 2 s", admitted.Load())
}

// TestTallyScriptFlushed: on a Redis Cluster, a node that lost its
// scripts (restarted, or a replica promoted) answers NOSCRIPT while the
// others run the batch's tallies; sending the batch again for it must not
// count the others' requests twice (each counter of a batch of 30, spread
// over the nodes, counts 2 after two tallies of 1).
func TestTallyScriptFlushed(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3)
	s := newStore(t, Options{Cluster: true, Addrs: c.Addrs(), Prefix: "flush"})
	ctx := context.Background()
	const head = 1_000_000
	batch := func() []*limit.Tally {
		var b []*limit.Tally
		for i := range 30 {
			x := &limit.Tally{Name: fmt.Sprintf("r|usr_%d|10/1000000000", i), Head: head, TTL: time.Minute, Demand: 1}
			x.Add[10] = 1
			b = append(b, x)
		}
		return b
	}
	if err := s.Tally(ctx, batch()); err != nil {
		t.Fatal(err)
	}
	node := redis.NewClient(&redis.Options{Addr: c.Nodes[1].Addr})
	defer node.Close()
	if err := node.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	b := batch()
	if err := s.Tally(ctx, b); err != nil {
		t.Fatal(err)
	}
	for _, x := range b {
		if !x.Done || x.Totals[10] != 2 || x.DemandTotal != 2 {
			t.Errorf("%s after two tallies of 1: done %v, count %d, demand %d; want 2 and 2", x.Name, x.Done, x.Totals[10], x.DemandTotal)
		}
	}
}

// TestDropCreditsExpires: a closed account expires limit.DropTTL after
// DropCredits, also after an instance with old records settled with it,
// and a newer setting that opens it again keeps it.
func TestDropCreditsExpires(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := newStore(t, Options{URL: srv.URL()})
	ctx := context.Background()
	now := time.Now().UnixNano()
	c := limit.Credits{Workspace: "acme", ID: "key_x", Serial: 1, Set: 10, SetAt: now}
	settle := func(c limit.Credits, want int64) *limit.Settlement {
		t.Helper()
		st := &limit.Settlement{Credits: c, Instance: "i1", Want: want, Now: now}
		if err := s.Settle(ctx, []*limit.Settlement{st}); err != nil || !st.Done {
			t.Fatalf("settle: %v %+v", err, st)
		}
		return st
	}
	ttl := func() time.Duration {
		t.Helper()
		d, err := s.Client().PTTL(ctx, s.creditsKey("acme", "key_x")).Result()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	settle(c, 4)
	if d := ttl(); d != -1 {
		t.Fatalf("a live account expires in %v", d)
	}
	if err := s.DropCredits(ctx, "acme", "key_x", "key_unseen"); err != nil {
		t.Fatal(err)
	}
	if d := ttl(); d <= limit.DropTTL-time.Minute || d > limit.DropTTL {
		t.Errorf("a closed account expires in %v, want about %v", d, limit.DropTTL)
	}
	if n, _ := s.Client().Exists(ctx, s.creditsKey("acme", "key_unseen")).Result(); n != 0 {
		t.Error("closing an account the ledger never saw wrote it")
	}
	if st := settle(c, 4); st.Granted != 4 || st.Balance != 0 {
		t.Errorf("the old setting on a closed account: %+v, want nothing more and 0", st)
	}
	if d := ttl(); d <= limit.DropTTL-time.Minute || d > limit.DropTTL {
		t.Errorf("after a settlement, the closed account expires in %v, want about %v", d, limit.DropTTL)
	}
	c.Serial++
	if st := settle(c, 4); st.Granted != 4 || st.Balance != 2 { // 10, less the 4 held before, less 4
		t.Errorf("a newer setting: %+v, want 4 granted, 2 left", st)
	}
	if d := ttl(); d != -1 {
		t.Errorf("the account opened again expires in %v", d)
	}
}
