// Package apitest is the harness of apiusers' tests, and only of tests: a
// fake clock, free ports, polling, a recording upstream, a client for a
// site and its admin API, the Caddyfiles of tests, and Caddy processes
// (the built binary). It imports none of apiusers' packages, so that any
// of their tests may use it.
package apitest

import (
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Clock is a clock tests move by hand; Now is safe for concurrent use, so
// it can be a service's clock (authz.Config.Now) while a test advances it.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock that reads t until advanced.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock d ahead.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// ListenPort asks the kernel for a free loopback port. Another process may
// take it before the caller binds it.
func ListenPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// FreePort is ListenPort failing tb on error.
func FreePort(tb testing.TB) int {
	tb.Helper()
	p, err := ListenPort()
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// PollInterval is how often Poll asks.
const PollInterval = 10 * time.Millisecond

// Poll calls cond every PollInterval until it holds, and returns when it
// first held. It fails tb when within passes first, and stops at once when
// tb has failed meanwhile (in another goroutine).
func Poll(tb testing.TB, what string, within time.Duration, cond func() bool) time.Time {
	tb.Helper()
	deadline := time.Now().Add(within)
	for {
		if cond() {
			return time.Now()
		}
		if tb.Failed() {
			tb.FailNow()
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(PollInterval)
	}
}

// Root returns the repository's root directory: the nearest directory
// above the working directory (a test's package) that holds go.mod.
func Root(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("apitest: no go.mod above the working directory")
		}
		dir = parent
	}
}
