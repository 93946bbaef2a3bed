package limit

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// memLedger keeps accounts in memory with Apply, as the file store does
// in its database: the engine's side of credits, tested without a store.
type memLedger struct {
	mu    sync.Mutex
	accts map[string]*LedgerState
	fail  bool
	calls int
}

func (m *memLedger) Settle(_ context.Context, batch []*Settlement) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	if m.fail {
		return errDown
	}
	if m.accts == nil {
		m.accts = map[string]*LedgerState{}
	}
	for _, s := range batch {
		k := s.Workspace + "/" + s.ID
		m.accts[k] = Apply(m.accts[k], s)
	}
	return nil
}

func (m *memLedger) Balances(_ context.Context, accounts []Credits, now int64) ([]int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]int64, len(accounts))
	for i, c := range accounts {
		out[i] = Remaining(m.accts[c.Workspace+"/"+c.ID], c, now)
	}
	return out, nil
}

func (m *memLedger) DropCredits(_ context.Context, ws string, ids ...string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range ids {
		delete(m.accts, ws+"/"+id)
	}
	return nil
}

func TestApply(t *testing.T) {
	c := Credits{Workspace: "acme", ID: "key_1", Serial: 1, Set: 100, SetAt: t0}
	s := &Settlement{Credits: c, Instance: "a", Want: 30, Now: t0}
	st := Apply(nil, s)
	if !s.Done || !s.Fresh || s.Granted != 30 || s.Balance != 70 || s.Outstanding != 30 {
		t.Fatalf("first settlement: %+v", s)
	}
	// The same totals again (a lost reply, the call repeated) with no
	// want change nothing.
	s2 := &Settlement{Credits: c, Instance: "a", Now: t0}
	st = Apply(st, s2)
	if s2.Fresh || s2.Granted != 30 || s2.Balance != 70 {
		t.Fatalf("repeat: %+v", s2)
	}
	// b asks for more than is left.
	sb := &Settlement{Credits: c, Instance: "b", Want: 500, Now: t0}
	st = Apply(st, sb)
	if sb.Granted != 70 || sb.Balance != 0 {
		t.Fatalf("b: %+v", sb)
	}
	// a spent 10 and returns 20: they go back to the balance, once.
	for range 2 {
		sa := &Settlement{Credits: c, Instance: "a", Spent: 10, Returned: 20, Now: t0}
		st = Apply(st, sa)
		if sa.Balance != 20 || sa.Outstanding != 70 {
			t.Fatalf("a's return: %+v", sa)
		}
	}
	// A new setting of 50: b still holds 70 (unspent as far as the
	// ledger knows), so the balance is 50-70.
	c2 := c
	c2.Serial, c2.Set = 2, 50
	sn := &Settlement{Credits: c2, Instance: "a", Want: 10, Now: t0}
	st = Apply(st, sn)
	if sn.Balance != -20 || sn.Granted != 0 || !sn.Fresh {
		t.Fatalf("new setting: %+v", sn)
	}
	if r := Remaining(st, c2, t0); r != 50 {
		t.Errorf("remaining after the setting: %d, want 50", r)
	}
	// b, still on the old setting, spent 40 and gives back 30: the balance
	// has 10 to grant.
	sb2 := &Settlement{Credits: c, Instance: "b", Spent: 40, Returned: 30, Now: t0}
	st = Apply(st, sb2)
	if sb2.Balance != 10 || sb2.LedgerSerial != 2 {
		t.Fatalf("b's final settlement: %+v", sb2)
	}
	// Never more than the setting: spent since it (b's 40 were leased
	// before it) plus what can still be granted is 50.
	sa3 := &Settlement{Credits: c2, Instance: "a", Want: 100, Now: t0}
	st = Apply(st, sa3)
	if sa3.Granted != 10 || sa3.Balance != 0 {
		t.Fatalf("a on the new setting: %+v", sa3)
	}
	_ = st
}

func TestApplyRefillAndWriteOff(t *testing.T) {
	hour := int64(time.Hour)
	c := Credits{Workspace: "acme", ID: "usr_1", Serial: 1, Set: 5, SetAt: t0, Refill: Refill{Amount: 8, Every: time.Hour}}
	p := c.Refill.Period(t0)
	s := &Settlement{Credits: c, Instance: "a", Period: p, Want: 5, Now: t0}
	st := Apply(nil, s)
	if s.Granted != 5 || s.Balance != 0 {
		t.Fatalf("first: %+v", s)
	}
	// An instance in the next period refills the account; a's holding of
	// the old period is void.
	sb := &Settlement{Credits: c, Instance: "b", Period: p + 1, Want: 3, Now: t0 + hour}
	st = Apply(st, sb)
	if sb.Granted != 3 || sb.Balance != 5 || sb.LedgerPeriod != p+1 {
		t.Fatalf("refill: %+v", sb)
	}
	// a, still in the old period, is told the new one and gets nothing.
	sa := &Settlement{Credits: c, Instance: "a", Period: p, Spent: 5, Want: 5, Now: t0 + hour}
	st = Apply(st, sa)
	if sa.Granted != 0 || sa.LedgerPeriod != p+1 || !sa.Fresh {
		t.Fatalf("a in the old period: %+v", sa)
	}
	if r := Remaining(st, c, t0+hour); r != 8 {
		t.Errorf("remaining: %d, want 8 (5 left, 3 held by b)", r)
	}
	if r := Remaining(st, c, t0+2*hour); r != 8 {
		t.Errorf("remaining in the next period: %d, want the refill's 8", r)
	}
	// b stops settling (crashed): after HoldTTL its 3 are written off.
	sc := &Settlement{Credits: c, Instance: "c", Period: p + 1, Now: t0 + hour + int64(HoldTTL) + 1}
	st = Apply(st, sc)
	if sc.Outstanding != 0 || sc.Balance != 5 {
		t.Fatalf("after b's write-off: %+v", sc)
	}
	if r := Remaining(st, c, t0+hour+int64(HoldTTL)+1); r != 5 {
		t.Errorf("remaining after the write-off: %d, want 5", r)
	}
}

// spendAll makes spenders goroutines per engine spend one credit at a
// time until their engine has said "no credits" many times in a row, and
// returns how many were spent through each engine.
func spendAll(engines []*Engine, c *Credits, spenders int, stop func(i int) bool) []int64 {
	counts := make([]atomic.Int64, len(engines))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, e := range engines {
		for range spenders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				denied := 0
				for denied < 200 && (stop == nil || !stop(i)) {
					d := e.Spend(context.Background(), c, 1, time.Now().UnixNano())
					switch {
					case d.Allowed:
						counts[i].Add(1)
						denied = 0
						time.Sleep(10 * time.Microsecond) // let the instances take turns
					default:
						denied++
						time.Sleep(200 * time.Microsecond)
					}
				}
			}()
		}
	}
	close(start)
	wg.Wait()
	out := make([]int64, len(engines))
	for i := range counts {
		out[i] = counts[i].Load()
	}
	return out
}

func fastEngine(l Ledger) EngineConfig {
	return EngineConfig{Ledger: l, SyncEvery: 5 * time.Millisecond, Recheck: 5 * time.Millisecond,
		DownRetry: 5 * time.Millisecond, ReportEvery: 20 * time.Millisecond}
}

// TestCreditsExact: 1,000 credits spent through three instances as fast
// as they go: exactly 1,000.
func TestCreditsExact(t *testing.T) {
	l := &memLedger{}
	var engines []*Engine
	for range 3 {
		e := NewEngine(fastEngine(l))
		t.Cleanup(e.Close)
		engines = append(engines, e)
	}
	c := &Credits{Workspace: "acme", ID: "key_1", Serial: 1, Set: 1000, SetAt: time.Now().UnixNano()}
	got := spendAll(engines, c, 4, nil)
	total := got[0] + got[1] + got[2]
	if total != 1000 {
		t.Errorf("spent %d (%v), want exactly 1000", total, got)
	}
	l.mu.Lock()
	t.Logf("spent %v, %d ledger calls", got, l.calls)
	l.mu.Unlock()
	r, _ := l.Balances(context.Background(), []Credits{*c}, time.Now().UnixNano())
	if r[0] != 0 {
		t.Errorf("the ledger says %d remain, want 0", r[0])
	}
}

// TestCreditsOutage: with the ledger away an instance spends what it
// holds, then answers unavailable; when the ledger is back it goes on.
func TestCreditsOutage(t *testing.T) {
	l := &memLedger{}
	e := NewEngine(fastEngine(l))
	t.Cleanup(e.Close)
	c := &Credits{Workspace: "acme", ID: "key_2", Serial: 1, Set: 1000, SetAt: time.Now().UnixNano()}
	if d := e.Spend(context.Background(), c, 1, time.Now().UnixNano()); !d.Allowed {
		t.Fatalf("first spend: %+v", d)
	}
	l.mu.Lock()
	l.fail = true
	l.mu.Unlock()
	spent, unavailable := 0, 0
	for range 2000 {
		d := e.Spend(context.Background(), c, 1, time.Now().UnixNano())
		switch {
		case d.Allowed:
			spent++
		case d.Unavailable:
			unavailable++
		default:
			t.Fatalf("during the outage: %+v, want allowed or unavailable", d)
		}
	}
	if unavailable == 0 || spent > int(e.cfg.MaxLease) {
		t.Fatalf("outage: spent %d, unavailable %d: want the lease spent, then unavailable", spent, unavailable)
	}
	l.mu.Lock()
	l.fail = false
	l.mu.Unlock()
	deadline := time.Now().Add(2 * time.Second)
	for {
		if d := e.Spend(context.Background(), c, 1, time.Now().UnixNano()); d.Allowed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("spending did not resume after the ledger came back")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestCreditsCrash: an instance that stops without giving back what it
// holds costs the account that much, never more.
func TestCreditsCrash(t *testing.T) {
	l := &memLedger{}
	var engines []*Engine
	for range 3 {
		e := NewEngine(fastEngine(l))
		engines = append(engines, e)
	}
	t.Cleanup(func() { engines[1].Close(); engines[2].Close() })
	c := &Credits{Workspace: "acme", ID: "key_3", Serial: 1, Set: 1000, SetAt: time.Now().UnixNano()}
	var crashed atomic.Bool
	var held int64
	got := spendAll(engines, c, 2, func(i int) bool {
		if i != 0 {
			return false
		}
		if crashed.Load() {
			return true
		}
		a := engines[0].wallet.account(c, 0)
		a.mu.Lock()
		avail, spent := a.avail, a.granted-a.returned-a.avail
		a.mu.Unlock()
		if spent < 100 || avail == 0 || !crashed.CompareAndSwap(false, true) {
			return crashed.Load()
		}
		// Crash holding some: nothing more is spent through it, nothing
		// goes back.
		engines[0].crash()
		a.mu.Lock()
		held = a.avail
		a.mu.Unlock()
		return true
	})
	total := got[0] + got[1] + got[2]
	if total > 1000 || total < 1000-held || held == 0 || held > 250 {
		t.Errorf("spent %d (%v) with %d lost in the crashed instance, want 1000 less at most what it held, at most a quarter of the balance", total, got, held)
	}
	t.Logf("spent %d; the crashed instance held %d", total, held)
}

// TestCreditsRefill: credits that refill every second are restored at
// the boundary, and no more than the refill amount is spent per period.
func TestCreditsRefill(t *testing.T) {
	l := &memLedger{}
	clock := &fakeClock{t: t0}
	cfg := fastEngine(l)
	cfg.Now = clock.Now
	e := NewEngine(cfg)
	t.Cleanup(e.Close)
	c := &Credits{Workspace: "acme", ID: "usr_4", Serial: 1, Set: 3, SetAt: t0, Refill: Refill{Amount: 5, Every: time.Second}}
	spend := func(at int64) int {
		n := 0
		for range 20 {
			d := e.Spend(context.Background(), c, 1, at)
			if d.Allowed {
				n++
			} else if d.Unavailable {
				t.Fatalf("unavailable: %+v", d)
			}
		}
		return n
	}
	if n := spend(t0); n != 3 {
		t.Fatalf("first period: spent %d, want the 3 set", n)
	}
	d := e.Spend(context.Background(), c, 1, t0)
	if d.Allowed || d.RetryAfter <= 0 || d.RetryAfter > time.Second {
		t.Fatalf("spent out: %+v, want a retry at the next second", d)
	}
	next := (t0/int64(time.Second) + 1) * int64(time.Second)
	clock.set(next)
	if n := spend(next); n != 5 {
		t.Errorf("after the refill: spent %d, want 5", n)
	}
	clock.set(next + 3*int64(time.Second))
	if n := spend(next + 3*int64(time.Second)); n != 5 {
		t.Errorf("three periods later: spent %d, want 5 (nothing carries over)", n)
	}
}

// holdingEngine is an engine on l whose first lease of any credits is
// large enough that no other is asked for while a test or benchmark
// spends.
func holdingEngine(tb testing.TB, l Ledger) *Engine {
	cfg := fastEngine(l)
	cfg.FirstLease = 1 << 20
	e := NewEngine(cfg)
	tb.Cleanup(e.Close)
	return e
}

func TestSpendAllocs(t *testing.T) {
	e := holdingEngine(t, &memLedger{})
	c := &Credits{Workspace: "acme", ID: "key_5", Serial: 1, Set: 1 << 40, SetAt: t0}
	ctx := context.Background()
	now := time.Now().UnixNano()
	e.Spend(ctx, c, 1, now)
	n := testing.AllocsPerRun(1000, func() { e.Spend(ctx, c, 1, now) })
	if n != 0 {
		t.Errorf("Spend from a holding allocates %v times, want 0", n)
	}
}

func BenchmarkSpend(b *testing.B) {
	e := holdingEngine(b, &memLedger{})
	c := &Credits{Workspace: "acme", ID: "key_0123456789abcdefghjkmnpq", Serial: 1, Set: 1 << 50, SetAt: t0}
	ctx := context.Background()
	now := time.Now().UnixNano()
	e.Spend(ctx, c, 1, now)
	b.ReportAllocs()
	for b.Loop() {
		e.Spend(ctx, c, 1, now)
	}
}

// TestSpendMemo: spending through a Memo and without it spends from one
// account; other credits through the same Memo from their own; an account
// forgotten meanwhile is looked up again, not spent from.
func TestSpendMemo(t *testing.T) {
	l := &memLedger{}
	e := NewEngine(fastEngine(l))
	t.Cleanup(e.Close)
	ctx := context.Background()
	now := time.Now().UnixNano()
	c := &Credits{Workspace: "acme", ID: "key_1", Serial: 1, Set: 10, SetAt: now}
	other := &Credits{Workspace: "acme", ID: "key_2", Serial: 1, Set: 3, SetAt: now}
	var m Memo
	for i := range 5 {
		if q := e.SpendMemo(ctx, &m, c, 1, now); !q.Allowed {
			t.Fatalf("spend %d through the memo: %+v", i+1, q)
		}
		if q := e.Spend(ctx, c, 1, now); !q.Allowed {
			t.Fatalf("spend %d without it: %+v", i+1, q)
		}
	}
	if q := e.SpendMemo(ctx, &m, c, 1, now); q.Allowed {
		t.Errorf("the 11th credit of 10 through the memo: %+v", q)
	}
	if q := e.SpendMemo(ctx, &m, other, 3, now); !q.Allowed || q.Remaining != 0 {
		t.Errorf("other credits through the same memo: %+v, want 3 spent, 0 left", q)
	}

	// Two keys' credits in turn through one memo: looked up again, never
	// an allocation.
	big := holdingEngine(t, l)
	rich := &Credits{Workspace: "acme", ID: "key_3", Serial: 1, Set: 1 << 40, SetAt: now}
	richer := &Credits{Workspace: "acme", ID: "key_4", Serial: 1, Set: 1 << 40, SetAt: now}
	var m2 Memo
	big.SpendMemo(ctx, &m2, rich, 1, now)
	big.SpendMemo(ctx, &m2, richer, 1, now)
	if n := testing.AllocsPerRun(100, func() {
		big.SpendMemo(ctx, &m2, rich, 1, now)
		big.SpendMemo(ctx, &m2, richer, 1, now)
	}); n != 0 {
		t.Errorf("two credits in turn through one memo: %v allocations, want 0", n)
	}

	// The wallet forgets the account, as its sweep does.
	a := m.account.Load()
	a.mu.Lock()
	a.dead = true
	a.mu.Unlock()
	w := e.wallet
	for i := range w.shards {
		sh := &w.shards[i]
		sh.mu.Lock()
		for h, first := range sh.m {
			if first == a {
				delete(sh.m, h)
			}
		}
		sh.mu.Unlock()
	}
	e.SpendMemo(ctx, &m, other, 1, now)
	if got := m.account.Load(); got == a {
		t.Errorf("a forgotten account was spent from through the memo")
	}
}

// BenchmarkSpendMemo is BenchmarkSpend through a Memo, as the gateway
// spends a caller's credits.
func BenchmarkSpendMemo(b *testing.B) {
	e := holdingEngine(b, &memLedger{})
	c := &Credits{Workspace: "acme", ID: "key_0123456789abcdefghjkmnpq", Serial: 1, Set: 1 << 50, SetAt: t0}
	ctx := context.Background()
	now := time.Now().UnixNano()
	var m Memo
	e.SpendMemo(ctx, &m, c, 1, now)
	b.ReportAllocs()
	for b.Loop() {
		e.SpendMemo(ctx, &m, c, 1, now)
	}
}

// slowLedger is memLedger answering after delay, as a store across a
// network does.
type slowLedger struct {
	memLedger
	delay time.Duration
}

func (s *slowLedger) Settle(ctx context.Context, batch []*Settlement) error {
	time.Sleep(s.delay)
	return s.memLedger.Settle(ctx, batch)
}

// TestCreditsBurst: a burst of concurrent requests on an account with
// plenty of credits is never refused, however slow the ledger: each lease
// is sized for the requests waiting for it, and a request that loses the
// race for one lease waits for the next with its clock going on (sized at
// its arrival time, the next lease saw no pace and was a first lease of
// 16 again; after two such losses a request was answered "no credits").
func TestCreditsBurst(t *testing.T) {
	t.Parallel()
	for _, delay := range []time.Duration{200 * time.Microsecond, time.Millisecond, 5 * time.Millisecond} {
		t.Run(delay.String(), func(t *testing.T) {
			t.Parallel()
			e := NewEngine(EngineConfig{Ledger: &slowLedger{delay: delay}})
			t.Cleanup(e.Close)
			c := &Credits{Workspace: "acme", ID: "key_1", Serial: 1, Set: 1 << 40, SetAt: time.Now().UnixNano()}
			var allowed, refused, away atomic.Int64
			var wg sync.WaitGroup
			start := make(chan struct{})
			deadline := time.Now().Add(300 * time.Millisecond)
			for range 128 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					for time.Now().Before(deadline) {
						switch d := e.Spend(context.Background(), c, 1, time.Now().UnixNano()); {
						case d.Allowed:
							allowed.Add(1)
						case d.Unavailable:
							away.Add(1)
						default:
							refused.Add(1)
						}
					}
				}()
			}
			close(start)
			wg.Wait()
			if refused.Load() != 0 || away.Load() != 0 {
				t.Errorf("of %d requests, %d were answered no credits and %d unavailable; want all allowed",
					allowed.Load()+refused.Load()+away.Load(), refused.Load(), away.Load())
			}
		})
	}
}

// grantNothing is a ledger that answers every settlement without granting
// anything, though it says credits are left: a request can never get
// what it waits for.
type grantNothing struct{ calls atomic.Int64 }

func (g *grantNothing) Settle(_ context.Context, batch []*Settlement) error {
	g.calls.Add(1)
	for _, s := range batch {
		s.Granted, s.Balance, s.LedgerSerial, s.LedgerPeriod, s.Done = 0, 1000, s.Serial, s.Period, true
	}
	return nil
}

func (g *grantNothing) Balances(_ context.Context, accounts []Credits, _ int64) ([]int64, error) {
	return make([]int64, len(accounts)), nil
}

func (g *grantNothing) DropCredits(context.Context, string, ...string) error { return nil }

// TestSpendGivesUp: a request that cannot get credits from a ledger that
// says some are left stops after a bounded number of settlements and is
// answered unavailable (503), not "no credits" (429): it does not know
// the credits are spent.
func TestSpendGivesUp(t *testing.T) {
	t.Parallel()
	l := &grantNothing{}
	e := NewEngine(EngineConfig{Ledger: l, SyncEvery: time.Hour})
	t.Cleanup(e.Close)
	c := &Credits{Workspace: "acme", ID: "key_1", Serial: 1, Set: 1000, SetAt: time.Now().UnixNano()}
	d := e.Spend(context.Background(), c, 1, time.Now().UnixNano())
	if d.Allowed || !d.Unavailable {
		t.Errorf("Spend = %+v, want unavailable", d)
	}
	if n := l.calls.Load(); n < 2 || n > maxSpendAttempts+1 {
		t.Errorf("%d settlements for one request, want 2 to %d", n, maxSpendAttempts+1)
	}

	// A request whose client has left settles nothing more.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	before := l.calls.Load()
	if d := e.Spend(ctx, c, 1, time.Now().UnixNano()); d.Allowed || !d.Unavailable {
		t.Errorf("Spend (cancelled) = %+v, want unavailable", d)
	}
	if n := l.calls.Load() - before; n != 0 {
		t.Errorf("a cancelled request made %d settlements, want none", n)
	}
}

// TestSpendStaleSetting: while an instance's records name an older
// setting than the ledger knows (another instance saw the new one first),
// the ledger grants it nothing; a request that needs more than it holds
// is answered unavailable after one settlement, and the requests after
// it without settling again until DownRetry has passed, not each after
// 64 settlements. Once the records catch up, requests are served.
func TestSpendStaleSetting(t *testing.T) {
	t.Parallel()
	l := &memLedger{}
	now := time.Now().UnixNano()
	newer := NewEngine(EngineConfig{Ledger: l, SyncEvery: time.Hour})
	t.Cleanup(newer.Close)
	c2 := &Credits{Workspace: "acme", ID: "key_1", Serial: 2, Set: 1000, SetAt: now}
	if d := newer.Spend(context.Background(), c2, 1, now); !d.Allowed {
		t.Fatalf("spend on the new setting: %+v", d)
	}
	e := NewEngine(EngineConfig{Ledger: l, SyncEvery: time.Hour, DownRetry: time.Hour})
	t.Cleanup(e.Close)
	c1 := &Credits{Workspace: "acme", ID: "key_1", Serial: 1, Set: 1000, SetAt: now - int64(time.Minute)}
	calls := func() int {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.calls
	}
	before := calls()
	for i := range 3 {
		d := e.Spend(context.Background(), c1, 1, time.Now().UnixNano())
		if d.Allowed || !d.Unavailable || d.RetryAfter <= 0 {
			t.Errorf("request %d on the old setting: %+v, want unavailable with a Retry-After", i+1, d)
		}
	}
	if n := calls() - before; n != 1 {
		t.Errorf("three requests on the old setting made %d ledger calls, want 1", n)
	}
	if d := e.Spend(context.Background(), c2, 1, time.Now().UnixNano()); !d.Allowed {
		t.Errorf("once the records name the new setting: %+v, want allowed", d)
	}
}

// TestSpendSpentOut: a request that needs more than the instance holds
// while the ledger has nothing left is refused as spent out (429) after
// one settlement, not held on until it gives up as unavailable; the next
// such requests are refused without a settlement each (until Recheck),
// while cheaper ones still spend what it holds.
func TestSpendSpentOut(t *testing.T) {
	t.Parallel()
	l := &memLedger{}
	e := NewEngine(EngineConfig{Ledger: l, SyncEvery: time.Hour, Recheck: time.Hour})
	t.Cleanup(e.Close)
	c := &Credits{Workspace: "acme", ID: "key_1", Serial: 1, Set: 12, SetAt: time.Now().UnixNano()}
	for i, want := range []bool{true, true, false, false, false, false, false} {
		d := e.Spend(context.Background(), c, 5, time.Now().UnixNano())
		if d.Allowed != want || d.Unavailable {
			t.Errorf("spend %d of 5 from 12: %+v, want allowed %v and not unavailable", i+1, d, want)
		}
	}
	l.mu.Lock()
	calls := l.calls
	l.mu.Unlock()
	if calls > 3 {
		t.Errorf("%d ledger calls for seven requests, want at most 3", calls)
	}
	for i := range 2 {
		if d := e.Spend(context.Background(), c, 1, time.Now().UnixNano()); !d.Allowed {
			t.Errorf("spend %d of 1 from the 2 held: %+v, want allowed", i+1, d)
		}
	}
}

// TestWalletKeepsWaited: an account a request waits on is not forgotten,
// even idle and holding nothing: between the settlement it waited for
// and taking the account's lock again, a request that found it forgotten
// would settle for a holding the wallet no longer knows (what it was
// granted would stay there, lost to the account after HoldTTL).
func TestWalletKeepsWaited(t *testing.T) {
	t.Parallel()
	e := NewEngine(EngineConfig{Ledger: &memLedger{}, SyncEvery: time.Hour})
	t.Cleanup(e.Close)
	w := e.wallet
	now := time.Now().UnixNano()
	c := &Credits{Workspace: "acme", ID: "key_1", Serial: 1, Set: 10, SetAt: now}
	a := w.account(c, now)
	a.mu.Lock()
	a.spentAt = now - int64(time.Hour)
	a.waiting = 1 // a request waited for a settlement, now applied
	a.mu.Unlock()
	w.due(now, true, false)
	a.mu.Lock()
	dead := a.dead
	a.mu.Unlock()
	if dead || w.account(c, now) != a {
		t.Error("an account a request waits on was forgotten")
	}
}
