package throttle_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/redisstore"
	"github.com/apiusers/apiusers/authz/redisstore/redistest"
	"github.com/apiusers/apiusers/authz/throttle"
	"github.com/apiusers/apiusers/internal/apitest"
)

// newClock is the clock the limiters of a test share.
func newClock() *apitest.Clock { return apitest.NewClock(time.Date(2026, 3, 4, 5, 6, 0, 0, time.UTC)) }

// signIn is the sign-in policy for one identity.
var signIn = throttle.Policy{Limit: 5, Window: 15 * time.Minute, Backoff: time.Second}

func mustNew(t *testing.T, p throttle.Policy, o throttle.Options) *throttle.Limiter {
	t.Helper()
	l, err := throttle.New(p, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

func check(t *testing.T, l *throttle.Limiter, key string) throttle.Verdict {
	t.Helper()
	v, err := l.Check(context.Background(), key)
	if err != nil {
		t.Fatalf("Check(%s): %v", key, err)
	}
	return v
}

func fail(t *testing.T, l *throttle.Limiter, key string) throttle.Verdict {
	t.Helper()
	v, err := l.Fail(context.Background(), key)
	if err != nil {
		t.Fatalf("Fail(%s): %v", key, err)
	}
	return v
}

// testPolicy runs the policy's story on a limiter made by mk.
func testPolicy(t *testing.T, mk func(t *testing.T, c *apitest.Clock) *throttle.Limiter) {
	c := newClock()
	l := mk(t, c)
	for i := 1; i <= 4; i++ {
		if v := fail(t, l, "alice"); v.Refused || v.RetryAfter != 0 {
			t.Fatalf("failure %d: %+v, want neither refused nor blocked", i, v)
		}
	}
	// The fifth failure is answered as a failure; it blocks what follows.
	if v := fail(t, l, "alice"); v.Refused || v.RetryAfter != time.Second {
		t.Fatalf("failure 5: %+v, want not refused, blocked for 1s", v)
	}
	if v := check(t, l, "alice"); !v.Refused || v.RetryAfter != time.Second || v.Failures != 5 {
		t.Fatalf("after 5 failures: %+v, want refused for 1s", v)
	}
	if v := check(t, l, "bob"); v.Refused {
		t.Fatalf("another key: %+v", v)
	}
	// Once the block ends an attempt is allowed; failing doubles the block.
	c.Advance(time.Second)
	if v := check(t, l, "alice"); v.Refused {
		t.Fatalf("after the block: %+v", v)
	}
	if v := fail(t, l, "alice"); v.Refused || v.RetryAfter != 2*time.Second {
		t.Fatalf("failure 6: %+v, want not refused, blocked for 2s", v)
	}
	// A failure recorded while blocked is refused and doubles it again.
	if v := fail(t, l, "alice"); !v.Refused || v.RetryAfter != 4*time.Second {
		t.Fatalf("failure 7 while blocked: %+v, want refused, 4s", v)
	}
	c.Advance(1500 * time.Millisecond)
	if v := check(t, l, "alice"); !v.Refused || v.RetryAfter != 3*time.Second {
		t.Fatalf("1.5s into a 4s block: %+v, want Retry-After 3s (rounded up)", v)
	}
	// The window forgets: after two windows nothing is left.
	c.Advance(2 * signIn.Window)
	if v := check(t, l, "alice"); v.Refused || v.Failures != 0 {
		t.Fatalf("two windows later: %+v", v)
	}
	// A success clears the count.
	for range 5 {
		fail(t, l, "carol")
	}
	if err := l.Clear(context.Background(), "carol"); err != nil {
		t.Fatal(err)
	}
	if v := check(t, l, "carol"); v.Refused || v.Failures != 0 {
		t.Fatalf("after Clear: %+v", v)
	}
	if v := fail(t, l, "carol"); v.RetryAfter != 0 {
		t.Fatalf("the first failure after Clear blocks: %+v", v)
	}
}

func TestPolicyInProcess(t *testing.T) {
	testPolicy(t, func(t *testing.T, c *apitest.Clock) *throttle.Limiter {
		return mustNew(t, signIn, throttle.Options{Now: c.Now})
	})
}

func redisStore(t *testing.T, srv *redistest.Server, prefix string) *redisstore.Store {
	t.Helper()
	st, err := redisstore.New(redisstore.Options{URL: srv.URL(), Prefix: prefix, DialTimeout: 200 * time.Millisecond,
		ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestPolicyOnRedis(t *testing.T) {
	srv := redistest.Start(t)
	n := 0
	testPolicy(t, func(t *testing.T, c *apitest.Clock) *throttle.Limiter {
		n++
		return mustNew(t, signIn, throttle.Options{Now: c.Now, Shared: redisStore(t, srv, fmt.Sprint("p", n)), Scope: "signin.identity"})
	})
}

// TestFleetRoundTrips: without background exchange, two instances see one
// count at once, and a success on one clears it for both.
func TestFleetRoundTrips(t *testing.T) {
	srv := redistest.Start(t)
	c := newClock()
	st := redisStore(t, srv, "fleet")
	a := mustNew(t, signIn, throttle.Options{Now: c.Now, Shared: st, Scope: "signin.identity"})
	b := mustNew(t, signIn, throttle.Options{Now: c.Now, Shared: redisStore(t, srv, "fleet"), Scope: "signin.identity"})
	other := mustNew(t, signIn, throttle.Options{Now: c.Now, Shared: st, Scope: "signin.address"})
	for range 3 {
		fail(t, a, "dave@example.com")
	}
	fail(t, b, "dave@example.com")
	fail(t, b, "dave@example.com")
	for name, l := range map[string]*throttle.Limiter{"a": a, "b": b} {
		if v := check(t, l, "dave@example.com"); !v.Refused || v.Failures != 5 {
			t.Fatalf("instance %s: %+v, want refused after 5 failures on two instances", name, v)
		}
	}
	if v := check(t, other, "dave@example.com"); v.Refused || v.Failures != 0 {
		t.Fatalf("another scope shares the count: %+v", v)
	}
	if err := a.Clear(context.Background(), "dave@example.com"); err != nil {
		t.Fatal(err)
	}
	if v := check(t, b, "dave@example.com"); v.Refused || v.Failures != 0 {
		t.Fatalf("after a success on a: %+v on b", v)
	}
	// Redis keeps a digest of the key, never the key.
	keys, err := st.Client().Keys(context.Background(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if strings.Contains(k, "dave") {
			t.Fatalf("redis key %q holds the throttled key", k)
		}
	}

	// Redis down: the verdict comes from this process, with the error.
	fail(t, a, "erin")
	srv.Kill()
	v, err := a.Fail(context.Background(), "erin")
	if !errors.Is(err, authz.ErrUnavailable) {
		t.Fatalf("Fail with Redis down: %v, want ErrUnavailable", err)
	}
	if v.Failures != 1 {
		t.Fatalf("Fail with Redis down: %+v, want the local count", v)
	}
}

// TestFleetBackground: with background exchange every call stays in
// process, and one exchange on each instance makes the fleet's count
// everyone's.
func TestFleetBackground(t *testing.T) {
	srv := redistest.Start(t)
	c := newClock()
	gw := throttle.Policy{Limit: 10, Window: time.Minute, Backoff: time.Second}
	opts := func() throttle.Options {
		return throttle.Options{Now: c.Now, Shared: redisStore(t, srv, "bg"), Scope: "gateway.address", SyncEvery: time.Hour}
	}
	a, b := mustNew(t, gw, opts()), mustNew(t, gw, opts())
	for range 6 {
		fail(t, a, "192.0.2.7")
	}
	for range 4 {
		fail(t, b, "192.0.2.7")
	}
	if v := check(t, a, "192.0.2.7"); v.Refused {
		t.Fatalf("before any exchange a blocks on 6 of 10: %+v", v)
	}
	ctx := context.Background()
	for _, l := range []*throttle.Limiter{a, b} {
		if err := l.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if v := check(t, b, "192.0.2.7"); !v.Refused || v.Failures != 10 {
		t.Fatalf("b after the exchanges: %+v, want refused on the fleet's 10", v)
	}
	// An instance learns the fleet's count of a key with the exchange
	// after its next failure of that key, as does one that never saw it.
	fresh := mustNew(t, gw, opts())
	for name, l := range map[string]*throttle.Limiter{"a": a, "fresh": fresh} {
		if v := fail(t, l, "192.0.2.7"); v.Refused {
			t.Fatalf("%s, a failure before its exchange: %+v", name, v)
		}
		if err := l.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if v := check(t, l, "192.0.2.7"); !v.Refused || v.Failures < 11 {
			t.Fatalf("%s after its exchange: %+v, want refused on the fleet's count", name, v)
		}
	}

	// Redis down: counting goes on in process, the exchange fails, and what
	// it could not send is sent once Redis is back.
	srv.Stop()
	for range 3 {
		fail(t, b, "198.51.100.1")
	}
	if err := b.Sync(ctx); !errors.Is(err, authz.ErrUnavailable) {
		t.Fatalf("exchange with Redis down: %v", err)
	}
	srv.Restart()
	if err := b.Sync(ctx); err != nil {
		t.Fatalf("exchange after Redis came back: %v", err)
	}
	fail(t, a, "198.51.100.1")
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if v := check(t, a, "198.51.100.1"); v.Failures != 4 {
		t.Fatalf("a after b's delayed exchange: %+v, want 4 failures", v)
	}
}

// TestMemoryBounded: a flood of keys never holds more than MaxKeys.
func TestMemoryBounded(t *testing.T) {
	c := newClock()
	l := mustNew(t, throttle.Policy{Limit: 3, Window: time.Minute}, throttle.Options{Now: c.Now, MaxKeys: 640})
	for i := range 20000 {
		fail(t, l, fmt.Sprintf("10.0.%d.%d", i/256, i%256))
	}
	if n := l.Len(); n > 640 {
		t.Fatalf("%d keys tracked, want at most 640", n)
	}
	// A key that keeps failing is still blocked.
	for range 3 {
		fail(t, l, "203.0.113.9")
	}
	if v := check(t, l, "203.0.113.9"); !v.Refused {
		t.Fatalf("%+v", v)
	}
}

func TestPolicyErrors(t *testing.T) {
	for _, p := range []throttle.Policy{{}, {Limit: 1}, {Window: time.Second}} {
		if _, err := throttle.New(p, throttle.Options{}); err == nil {
			t.Errorf("New(%+v) accepted", p)
		}
	}
	srv := redistest.Start(t)
	if _, err := throttle.New(signIn, throttle.Options{Shared: redisStore(t, srv, "x")}); err == nil {
		t.Error("a shared limiter without a scope accepted")
	}
}

// TestUndo: a failure counted ahead of its outcome and taken back leaves
// the count as it was, in process and on Redis (never below zero).
func TestUndo(t *testing.T) {
	srv := redistest.Start(t)
	for name, shared := range map[string]throttle.Shared{"in process": nil, "redis": redisStore(t, srv, "undo")} {
		t.Run(name, func(t *testing.T) {
			c := newClock()
			o := throttle.Options{Now: c.Now}
			if shared != nil {
				o.Shared, o.Scope = shared, "signin.identity"
			}
			l := mustNew(t, signIn, o)
			ctx := context.Background()
			for i := 0; i < 4; i++ {
				fail(t, l, "k")
			}
			v := fail(t, l, "k")
			if v.Failures != 5 || v.At.IsZero() {
				t.Fatalf("the fifth failure: %+v", v)
			}
			if err := l.Undo(ctx, "k", v.At); err != nil {
				t.Fatal(err)
			}
			if v := check(t, l, "k"); v.Failures != 4 || v.Refused {
				t.Fatalf("after taking the fifth back: %+v", v)
			}
			if err := l.Undo(ctx, "never", c.Now()); err != nil {
				t.Fatal(err)
			}
			if v := check(t, l, "never"); v.Failures != 0 {
				t.Fatalf("a key never failed, taken back: %+v", v)
			}
		})
	}
}

// TestAddrKey: IPv6 addresses count by their /64, IPv4 ones (mapped too)
// by themselves.
func TestAddrKey(t *testing.T) {
	for in, want := range map[string]string{
		"2001:db8:1:2::1":         "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff:1:2:3": "2001:db8:1:2::/64",
		"2001:DB8:1:3::1":         "2001:db8:1:3::/64",
		"fe80::1%eth0":            "fe80::/64",
		"192.0.2.7":               "192.0.2.7",
		"::ffff:192.0.2.7":        "192.0.2.7",
		"not an address":          "not an address",
		"":                        "",
	} {
		if got := throttle.AddrKey(in); got != want {
			t.Errorf("AddrKey(%q) = %q, want %q", in, got, want)
		}
	}
}
