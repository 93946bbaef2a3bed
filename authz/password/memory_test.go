package password

import (
	"context"
	"runtime"
	"testing"
	"time"
)

// TestHashKeepsMemory: after its first hash a worker keeps its memory, so
// the next hashes and verifications allocate far less than their 19 MiB;
// a stored hash with more memory than the Hasher's is verified (in memory
// of its own) and does not grow the kept memory.
func TestHashKeepsMemory(t *testing.T) {
	h, err := New(Config{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	phc, err := h.Hash(ctx, "correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 3 {
		if ok, _, err := h.Verify(ctx, "correct horse battery staple", phc); err != nil || !ok {
			t.Fatalf("verify: ok=%v err=%v", ok, err)
		}
		if _, err := h.Hash(ctx, "another passphrase here"); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / 6; per > 64<<10 {
		t.Fatalf("a hash with the memory kept allocates %d bytes", per)
	}

	bigger, err := New(Config{Params: Params{Memory: 24 * 1024, Time: 2, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	big, err := bigger.Hash(ctx, "a passphrase of the past")
	if err != nil {
		t.Fatal(err)
	}
	if ok, rehash, err := h.Verify(ctx, "a passphrase of the past", big); err != nil || !ok || !rehash {
		t.Fatalf("a 24 MiB hash under 19 MiB parameters: ok=%v rehash=%v err=%v", ok, rehash, err)
	}
	w := <-h.slots
	size := w.buf.Size()
	h.slots <- w
	if size != h.params.Memory {
		t.Fatalf("the worker keeps %d KiB, want %d", size, h.params.Memory)
	}
}

// TestIdleWorkerDropsMemory: a worker without a hash for keepIdle drops
// its memory, and hashes as before after that.
func TestIdleWorkerDropsMemory(t *testing.T) {
	h, err := New(Config{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	h.keepIdle = 10 * time.Millisecond
	ctx := context.Background()
	phc, err := h.Hash(ctx, "correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	size := func() uint32 {
		w := <-h.slots
		defer func() { h.slots <- w }()
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.buf.Size()
	}
	deadline := time.Now().Add(10 * time.Second)
	for size() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("an idle worker still holds its memory")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if ok, _, err := h.Verify(ctx, "correct horse battery staple", phc); err != nil || !ok {
		t.Fatalf("verify after the memory was dropped: ok=%v err=%v", ok, err)
	}
}
