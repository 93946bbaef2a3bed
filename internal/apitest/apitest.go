// Package apitest is the harness of apiusers' tests, and only of tests: a
// fake clock, free ports, polling, a recording upstream, a client for a
// site and its admin API, the Caddyfiles of tests, and Caddy processes
// (the built binary). It imports none of apiusers' packages, so that any
// of their tests may use it.
package apitest

import (
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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

// ListenPort returns a loopback port that is free now, for a server the
// caller starts (a Caddy or redis-server process) to bind.
//
// It is not one the kernel would pick for port 0: those come from the
// ephemeral range, which every outgoing connection on the machine draws
// its source port from too, so one of them (a load test's thousands, a
// client's next connection) can take the port before the server binds it.
// Ports below that range are given to no connection; a port is drawn at
// random among them (so that test processes running at once rarely try
// the same), tried with a listen, and never handed out twice by one
// process. Where fewer than 1,000 ports lie between 10000 and the range,
// it falls back to the kernel's choice.
func ListenPort() (int, error) {
	lo, hi := belowEphemeral()
	for range 200 {
		if hi-lo < 1000 {
			break
		}
		p := lo + rand.IntN(hi-lo)
		if !handOut(p) {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue // in use
		}
		_ = l.Close()
		return p, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// handOut claims port p for this process, once.
func handOut(p int) bool {
	portsMu.Lock()
	defer portsMu.Unlock()
	if portsGiven[p] {
		return false
	}
	portsGiven[p] = true
	return true
}

// belowEphemeral returns the ports [lo, hi) ListenPort draws from: from
// 10000 (above the usual services' ports) to the start of the kernel's
// ephemeral range (ip_local_port_range; 32768 when it cannot be read).
func belowEphemeral() (lo, hi int) {
	lo, hi = 10000, 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				hi = n
			}
		}
	}
	return lo, hi
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
