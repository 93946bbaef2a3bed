package password

import (
	"context"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestBudgetChargesTheHash: the bucket is charged what a hash costs the
// process, not a part of it: the CPU time of the whole process (every
// thread) during one hash is within a few milliseconds of the charge.
// (golang.org/x/crypto/argon2 ran the hash on another goroutine, so the
// hashing thread's own clock saw a twentieth of it.) The process's clock
// is getrusage's, which lags by up to a tick: a fifth is allowed.
func TestBudgetChargesTheHash(t *testing.T) {
	h, err := New(Config{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := h.Hash(ctx, "warm the worker's memory up"); err != nil {
		t.Fatal(err)
	}
	self := func() time.Duration {
		var ru unix.Rusage
		if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	clock := time.Unix(1e9, 0) // stopped: no refill while it runs
	h.mu.Lock()
	h.now = func() time.Time { return clock }
	h.at, h.avail = clock, time.Millisecond
	h.mu.Unlock()
	p0 := self()
	if _, err := h.Hash(ctx, "correct horse battery staple"); err != nil {
		t.Fatal(err)
	}
	process := self() - p0
	h.mu.Lock()
	charged := time.Millisecond - h.avail
	h.mu.Unlock()
	t.Logf("charged %v, process CPU %v", charged, process)
	if charged < process*8/10-2*time.Millisecond {
		t.Fatalf("a hash was charged %v of the %v of CPU the process spent on it", charged, process)
	}
}
