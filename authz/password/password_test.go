package password

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiusers/apiusers/authz/password/internal/argon2"
)

func TestHashVerify(t *testing.T) {
	h, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	phc, err := h.Hash(ctx, "correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(phc, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("PHC string %q", phc)
	}
	if strings.Contains(phc, "correct horse") {
		t.Fatal("hash holds the password")
	}
	ok, rehash, err := h.Verify(ctx, "correct horse battery staple", phc)
	if err != nil || !ok || rehash {
		t.Fatalf("right password: ok=%v rehash=%v err=%v", ok, rehash, err)
	}
	ok, _, err = h.Verify(ctx, "correct horse battery stapl", phc)
	if err != nil || ok {
		t.Fatalf("wrong password: ok=%v err=%v", ok, err)
	}
	if phc2, _ := h.Hash(ctx, "correct horse battery staple"); phc2 == phc {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	if _, _, err := h.Verify(ctx, "x", "$argon2id$v=19$m=99999999,t=2,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5"); !errors.Is(err, ErrMalformed) {
		t.Fatalf("absurd memory: %v", err)
	}
	for _, bad := range []string{"", "plain", "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5", "$argon2id$v=19$m=19456,t=2$c2FsdHNhbHQ$a2V5"} {
		if _, _, err := h.Verify(ctx, "x", bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("Verify(%q) = %v, want ErrMalformed", bad, err)
		}
	}
}

func TestRehashWhenRaised(t *testing.T) {
	ctx := context.Background()
	old, _ := New(Config{})
	phc, err := old.Hash(ctx, "a long enough passphrase")
	if err != nil {
		t.Fatal(err)
	}
	raised, err := New(Config{Params: Params{Memory: 19 * 1024, Time: 3, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	ok, rehash, err := raised.Verify(ctx, "a long enough passphrase", phc)
	if err != nil || !ok || !rehash {
		t.Fatalf("old hash under raised params: ok=%v rehash=%v err=%v", ok, rehash, err)
	}
	if _, err := New(Config{Params: Params{Memory: 8 * 1024, Time: 2, Threads: 1}}); err == nil {
		t.Fatal("parameters below the OWASP minimum were accepted")
	}
}

func TestDummyFails(t *testing.T) {
	h, _ := New(Config{})
	if err := h.VerifyDummy(context.Background(), "anything at all"); err != nil {
		t.Fatal(err)
	}
}

// TestPoolBounded floods the pool: no more than Workers hashes run at
// once, and callers beyond the queue are refused at once with ErrBusy.
func TestPoolBounded(t *testing.T) {
	h, _ := New(Config{Workers: 1, Queue: 2})
	ctx := context.Background()
	release := make(chan struct{})
	started := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = h.run(ctx, func(*argon2.Buffer) { close(started); <-release })
	}()
	<-started
	wg.Add(1)
	go func() { defer wg.Done(); _ = h.run(ctx, func(*argon2.Buffer) {}) }() // waits: the queue's second place
	deadline := time.Now().Add(5 * time.Second)
	for len(h.queue) < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := h.run(ctx, func(*argon2.Buffer) { t.Error("ran beyond the queue") }); !errors.Is(err, ErrBusy) {
		t.Fatalf("third caller: %v, want ErrBusy", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	close(release)
	wg.Wait()
	_ = cctx
}

// TestPoolWaitBounded: a caller waits at most MaxWait for a worker too,
// not only for the budget: behind a hash that does not end it is refused
// with ErrBusy (not left waiting for as long as the queue takes).
func TestPoolWaitBounded(t *testing.T) {
	h, _ := New(Config{Workers: 1, Queue: 4, MaxWait: 20 * time.Millisecond})
	ctx := context.Background()
	release := make(chan struct{})
	started := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = h.run(ctx, func(*argon2.Buffer) { close(started); <-release })
	}()
	<-started
	err := h.run(ctx, func(*argon2.Buffer) { t.Error("ran while the only worker was busy") })
	close(release)
	<-done
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("waiting behind a busy worker: %v, want ErrBusy", err)
	}
	ran := false
	if err := h.run(ctx, func(*argon2.Buffer) { ran = true }); err != nil || !ran {
		t.Fatalf("with the worker free again: %v ran=%v", err, ran)
	}
}

func TestPolicy(t *testing.T) {
	for _, tc := range []struct {
		pw       string
		personal []string
		ok       bool
	}{
		{"short", nil, false},
		{"password1234", nil, false},
		{"aaaaaaaaaaaaaaaa", nil, false},
		{"123456789012", nil, false},
		{"qwertyuiopasdf", nil, false},
		{"ana.kovac@example.com", []string{"ana.kovac@example.com"}, false},
		{"Ana.Kovac@Example.com!", []string{"ana.kovac@example.com"}, false},
		{"anakovac-anakovac", []string{"anakovac"}, false},
		{strings.Repeat("x", 257), nil, false},
		{"\xff\xfe invalid utf8 text", nil, false},
		// Trivial in other scripts (the security review's list).
		{"аааааааааааа", nil, false},
		{"éééééééééééé", nil, false},
		{"ßßßßßßßßßßßß", nil, false},
		{strings.Repeat("日", 12), nil, false},
		{strings.Repeat("１", 12), nil, false},
		{"пароль123456", nil, false},
		{"парольпароль", nil, false},
		{"абвгдежзийкл", nil, false},
		{"１２３４５６７８９０１２", nil, false},
		{"Passwort2024!", nil, false},
		{"Contraseña.2024", nil, false},
		{"ЙЦУКЕНйцукен", nil, false},
		{"ababababababab", nil, false},
		{"Кот спит на крыше каждый день", nil, true},
		{"Żółw pije herbatę o północy 7", nil, true},
		{"correct horse battery staple", nil, true},
		{"Tr0ub4dor&3-glacier-Owl", nil, true},
		{"Zwölf Ängste über Brücken", nil, true},
		{"山川异域风月同天岂曰无衣与子同裳", nil, true},
		{strings.Repeat("river stone moss ", 15), nil, true},
	} {
		err := Check(tc.pw, tc.personal...)
		if (err == nil) != tc.ok {
			t.Errorf("Check(%.30q) = %v, want ok=%v", tc.pw, err, tc.ok)
		}
		var pe *PolicyError
		if err != nil && (!errors.As(err, &pe) || strings.Contains(err.Error(), tc.pw)) {
			t.Errorf("Check(%.30q): error %q is not a clean PolicyError", tc.pw, err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	// The whole machine: what is measured is a hash, not the budget.
	h, _ := New(Config{Budget: 1, Burst: time.Hour})
	ctx := context.Background()
	phc, _ := h.Hash(ctx, "correct horse battery staple")
	b.ResetTimer()
	for b.Loop() {
		if ok, _, _ := h.Verify(ctx, "correct horse battery staple", phc); !ok {
			b.Fatal("no match")
		}
	}
}

func BenchmarkCheck(b *testing.B) {
	for b.Loop() {
		_ = Check("correct horse battery staple", "ana@example.com", "ana")
	}
}

// TestBudgetHoldsBack: once the burst is spent, hashing waits for the
// budget, and a wait beyond MaxWait is refused at once.
func TestBudgetHoldsBack(t *testing.T) {
	h, _ := New(Config{Workers: 1, Budget: 0.01, Burst: time.Millisecond, MaxWait: time.Hour})
	ctx := context.Background()
	clock := time.Unix(1e9, 0)
	h.now = func() time.Time { return clock }
	h.at = clock
	h.avail = 0
	h.spend(50 * time.Millisecond) // owed: 50ms of CPU
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := h.run(cctx, func(*argon2.Buffer) { t.Error("ran while the budget was spent") }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("run with the budget spent: %v, want to wait", err)
	}
	h.maxWait = time.Millisecond
	if err := h.run(ctx, func(*argon2.Buffer) { t.Error("ran beyond MaxWait") }); !errors.Is(err, ErrBusy) {
		t.Fatalf("a wait beyond MaxWait: %v, want ErrBusy", err)
	}
	// Time refills it.
	clock = clock.Add(time.Hour)
	ran := false
	if err := h.run(ctx, func(*argon2.Buffer) { ran = true }); err != nil || !ran {
		t.Fatalf("after a refill: %v ran=%v", err, ran)
	}
}

// TestSetBudget: a changed budget refills the bucket at its rate from
// then on, and a budget out of range is refused and changes nothing.
func TestSetBudget(t *testing.T) {
	h, _ := New(Config{Workers: 1, Budget: 0.01, Burst: time.Hour, MaxWait: time.Millisecond})
	if b := h.Budget(); b != 0.01 {
		t.Fatalf("Budget() = %v, want 0.01", b)
	}
	clock := time.Unix(1e9, 0)
	h.now = func() time.Time { return clock }
	h.at, h.avail = clock, 0
	for _, bad := range []float64{0, -0.5, 1.5, 1e-12, MinBudget / 2} {
		if err := h.SetBudget(bad); err == nil {
			t.Errorf("SetBudget(%v) accepted", bad)
		}
	}
	if b := h.Budget(); b != 0.01 {
		t.Fatalf("a refused budget changed it to %v", b)
	}
	procs := float64(runtime.GOMAXPROCS(0))
	clock = clock.Add(time.Second) // at 0.01: 10ms a CPU
	if err := h.SetBudget(0.5); err != nil {
		t.Fatal(err)
	}
	near := func(a, b time.Duration) bool { return (a - b).Abs() < time.Microsecond }
	if want := time.Duration(0.01 * procs * float64(time.Second)); !near(h.avail, want) {
		t.Fatalf("the second before the change gained %v, want %v", h.avail, want)
	}
	clock = clock.Add(time.Second) // at 0.5: 500ms a CPU
	h.mu.Lock()
	h.refill()
	h.mu.Unlock()
	if want := time.Duration((0.01 + 0.5) * procs * float64(time.Second)); !near(h.avail, want) {
		t.Fatalf("after a second at the new budget the bucket holds %v, want %v", h.avail, want)
	}
	if b := h.Budget(); b != 0.5 {
		t.Fatalf("Budget() = %v, want 0.5", b)
	}
}

// TestPolicyOnBudget: the policy's estimate runs in the pool and on the
// CPU budget, as a hash does: with the budget spent it waits, and beyond
// MaxWait it is refused.
func TestPolicyOnBudget(t *testing.T) {
	h, _ := New(Config{Workers: 1, Budget: 0.01, Burst: time.Millisecond, MaxWait: time.Millisecond})
	clock := time.Unix(1e9, 0)
	h.now = func() time.Time { return clock }
	h.at = clock
	h.avail = 0
	h.spend(50 * time.Millisecond)
	if err := h.CheckPolicy(context.Background(), "correct horse battery staple"); !errors.Is(err, ErrBusy) {
		t.Fatalf("the policy with the budget spent: %v, want ErrBusy", err)
	}
	clock = clock.Add(time.Hour)
	var pe *PolicyError
	if err := h.CheckPolicy(context.Background(), "password1234"); !errors.As(err, &pe) {
		t.Fatalf("a weak password on a full budget: %v, want a PolicyError", err)
	}
	if err := h.CheckPolicy(context.Background(), "correct horse battery staple"); err != nil {
		t.Fatalf("a good one: %v", err)
	}
}
