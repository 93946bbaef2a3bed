package limit

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// t0 is a time in the middle of a slot of every window used here.
var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano() + int64(3*time.Millisecond)

const ms = int64(time.Millisecond)

func TestLimiterBurst(t *testing.T) {
	l := NewLimiter()
	r := Rate{Requests: 10, Per: time.Second}
	admitted := 0
	var last Decision
	for i := range 50 {
		d := l.Allow("usr_a", r, 1, t0+int64(i)*ms/10) // 50 requests within 5ms
		if d.Allowed {
			admitted++
		} else {
			last = d
		}
		if d.Limit != 10 {
			t.Fatalf("limit %d, want 10", d.Limit)
		}
	}
	if admitted != 10 {
		t.Fatalf("admitted %d of a burst of 50 at 10 per second, want 10", admitted)
	}
	if last.Remaining != 0 || last.RetryAfter <= 900*time.Millisecond || last.RetryAfter > 1100*time.Millisecond {
		t.Errorf("denied decision %+v: want remaining 0 and a retry in about a second (within a slot)", last)
	}
	// Another subject has its own window.
	if d := l.Allow("usr_b", r, 1, t0); !d.Allowed || d.Remaining != 9 {
		t.Errorf("another subject: %+v, want allowed with 9 remaining", d)
	}
	// When the retry time has passed, the request fits.
	at := t0 + 5*ms + int64(last.RetryAfter)
	if d := l.Allow("usr_a", r, 1, at); !d.Allowed {
		t.Errorf("after Retry-After (%s): %+v, want allowed", last.RetryAfter, d)
	}
}

func TestLimiterRemainingAndReset(t *testing.T) {
	l := NewLimiter()
	r := Rate{Requests: 5, Per: time.Second}
	d := l.Allow("k", r, 1, t0)
	if !d.Allowed || d.Remaining != 4 {
		t.Fatalf("first: %+v", d)
	}
	// The first request leaves the window a second later: one more
	// request fits then.
	if d.Reset <= 900*time.Millisecond || d.Reset > 1100*time.Millisecond {
		t.Errorf("reset %s, want about a second (within a slot)", d.Reset)
	}
	for range 4 {
		d = l.Allow("k", r, 1, t0)
	}
	if !d.Allowed || d.Remaining != 0 {
		t.Fatalf("fifth: %+v", d)
	}
	d = l.Allow("k", r, 1, t0)
	if d.Allowed {
		t.Fatalf("sixth allowed")
	}
	// Refunding an allowed decision gives its request back.
	ok := l.Allow("k2", r, 1, t0)
	l.Refund(ok.Ticket())
	if d := l.Allow("k2", r, 1, t0); d.Remaining != 4 {
		t.Errorf("after a refund: remaining %d, want 4", d.Remaining)
	}
}

// TestLimiterSteadyOverload drives a limiter at three times its rate for
// ten seconds from every phase of its slots: it admits the rate, within
// one slot's worth.
func TestLimiterSteadyOverload(t *testing.T) {
	r := Rate{Requests: 100, Per: time.Second}
	for phase := int64(0); phase < 100*ms; phase += 7 * ms {
		l := NewLimiter()
		start := t0 + phase
		admitted := 0
		const step = int64(time.Second) / 300
		for at := start; at < start+10*int64(time.Second); at += step {
			if l.Allow("u", r, 1, at).Allowed {
				admitted++
			}
		}
		if admitted < 990 || admitted > 1030 {
			t.Errorf("phase %dms: admitted %d in 10s at 300/s against 100/s, want 1000 within a slot", phase/ms, admitted)
		}
	}
}

// TestLimiterWindowBound checks the guarantee the package comment gives:
// in any Slots consecutive slots (one window) no more than the capacity
// is admitted, whatever the arrival pattern.
func TestLimiterWindowBound(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	r := Rate{Requests: 20, Per: time.Second, Burst: 30} // window 1.5s, slot 150ms
	l := NewLimiter()
	slot := int64(r.Window()) / Slots
	counts := map[int64]int{}
	at := t0
	for range 20000 {
		at += rng.Int64N(20 * ms)
		if rng.IntN(10) == 0 {
			at += rng.Int64N(int64(2 * time.Second))
		}
		n := 1 + rng.IntN(5)
		for range n {
			if l.Allow("u", r, 1, at).Allowed {
				counts[at/slot]++
			}
		}
	}
	for s := range counts {
		sum := 0
		for j := s; j < s+Slots; j++ {
			sum += counts[j]
		}
		if sum > int(r.Capacity()) {
			t.Fatalf("slots %d..%d admitted %d, capacity %d", s, s+Slots-1, sum, r.Capacity())
		}
	}
}

func TestLimiterSweep(t *testing.T) {
	l := NewLimiter()
	r := Rate{Requests: 1, Per: time.Second}
	l.Allow("a", r, 1, t0)
	l.Allow("b", r, 1, t0+int64(time.Second))
	if kept := l.sweep(t0 + int64(2*time.Second)); kept != 1 {
		t.Fatalf("kept %d windows, want 1 (b's is not expired yet)", kept)
	}
	// a's window is gone and a counts from nothing.
	if d := l.Allow("a", r, 1, t0+int64(2*time.Second)); !d.Allowed {
		t.Fatalf("a after sweep: %+v", d)
	}
}

func TestLimiterAllocs(t *testing.T) {
	l := NewLimiter()
	r := Rate{Requests: 1 << 20, Per: time.Second}
	now := t0
	l.Allow("usr_0123456789", r, 1, now)
	n := testing.AllocsPerRun(1000, func() {
		now += 1000
		l.Allow("usr_0123456789", r, 1, now)
	})
	if n != 0 {
		t.Errorf("Allow allocates %v times per call, want 0", n)
	}
}

// memTally is the fleet's shared counts in memory: what the Redis store
// does with a hash per counter, for testing the engine's side of it.
type memTally struct {
	mu     sync.Mutex
	counts map[string]map[int64]int64
	fail   bool
	calls  int
}

func (m *memTally) Tally(_ context.Context, batch []*Tally) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	if m.fail {
		return errDown
	}
	if m.counts == nil {
		m.counts = map[string]map[int64]int64{}
	}
	for _, t := range batch {
		c := m.counts[t.Name]
		if c == nil {
			c = map[int64]int64{}
			m.counts[t.Name] = c
		}
		for s := range ring {
			slot := t.Head - Slots + int64(s)
			c[slot] += int64(t.Add[s])
			t.Totals[s] = c[slot]
		}
		c[-1] += t.Demand
		t.DemandTotal = c[-1]
		t.Done = true
	}
	return nil
}

type downError struct{}

func (downError) Error() string { return "down" }

var errDown error = downError{}

// runFleet drives n engines on one shared tally at three times a rate of
// 100 per second for ten seconds, the requests spread over the instances
// by split, each engine reporting at every sync and reading half an
// interval later (shifted by its clock's skew), as the engines' loops do.
// It returns how many requests the fleet admitted.
func runFleet(t *testing.T, split []int, skew []int64, syncEvery time.Duration) int {
	t.Helper()
	tally := &memTally{}
	clock := &fakeClock{t: t0}
	n := len(split)
	engines := make([]*Engine, n)
	limiters := make([]*Limiter, n)
	for i := range n {
		engines[i] = NewEngine(EngineConfig{Tallier: tally, Now: clock.Now, SyncEvery: time.Hour})
		t.Cleanup(engines[i].Close)
		limiters[i] = engines[i].Limiter("route|0")
	}
	total := 0
	for _, x := range split {
		total += x
	}
	rng := rand.New(rand.NewPCG(7, 8))
	r := Rate{Requests: 100, Per: time.Second}
	admitted := 0
	step := int64(time.Second) / 300
	sync := int64(syncEvery)
	nextReport := make([]int64, n)
	nextRead := make([]int64, n)
	reports := make([][]*Tally, n)
	for i := range n {
		nextReport[i] = t0 + sync + skew[i]*ms
		nextRead[i] = nextReport[i] + sync/2
	}
	for at := t0; at < t0+10*int64(time.Second); at += step {
		k := rng.IntN(total)
		i := 0
		for k >= split[i] {
			k -= split[i]
			i++
		}
		if limiters[i].Allow("usr_x", r, 1, at).Allowed {
			admitted++
		}
		for j := range n {
			if at >= nextReport[j] {
				reports[j] = engines[j].reportCounts(at)
				nextReport[j] += sync
			}
			if at >= nextRead[j] {
				engines[j].readCounts(reports[j], at)
				nextRead[j] += sync
			}
		}
	}
	return admitted
}

// TestFleetCounts: three instances on one shared tally, at three times a
// rate of 100 per second, admit the rate within 5% (in fact within 2%),
// however the requests are spread and whatever the sync interval, with
// the instances' clocks a few milliseconds apart.
func TestFleetCounts(t *testing.T) {
	for _, split := range [][]int{{1, 1, 1}, {7, 2, 1}, {1, 0, 0}, {1, 0, 1}} {
		for _, every := range []time.Duration{50 * time.Millisecond, 100 * time.Millisecond} {
			got := runFleet(t, split, []int64{0, 4, 9}, every)
			if got < 980 || got > 1020 {
				t.Errorf("split %v, sync every %s: admitted %d, want 1000 within 2%%", split, every, got)
			}
		}
	}
}

// TestFleetOutage: without the tally each instance limits on its own, and
// what the instances counted meanwhile reaches the fleet when it is back.
func TestFleetOutage(t *testing.T) {
	tally := &memTally{}
	clock := &fakeClock{t: t0}
	var engines []*Engine
	var limiters []*Limiter
	for range 3 {
		e := NewEngine(EngineConfig{Tallier: tally, Now: clock.Now, SyncEvery: time.Hour})
		t.Cleanup(e.Close)
		engines = append(engines, e)
		limiters = append(limiters, e.Limiter("route|0"))
	}
	r := Rate{Requests: 100, Per: time.Second}
	// The fleet learns the instances share the caller's requests evenly.
	for i := range 30 {
		limiters[i%3].Allow("usr_x", r, 1, t0+int64(i)*ms)
	}
	syncFleet(engines, t0+40*ms)
	for i := range 30 {
		limiters[i%3].Allow("usr_x", r, 1, t0+50*ms+int64(i)*ms)
	}
	syncFleet(engines, t0+90*ms)

	tally.fail = true
	later := t0 + 90*ms + int64(ShareTTL) + ms
	for _, l := range limiters {
		n := 0
		for i := range 200 {
			if l.Allow("usr_x", r, 1, later+int64(i)*ms).Allowed {
				n++
			}
		}
		if n != 100 {
			t.Errorf("without the fleet, an instance admitted %d of 200 in 200ms, want 100", n)
		}
	}
	syncFleet(engines, later+300*ms) // fails; the counts are kept to report
	tally.fail = false
	syncFleet(engines, later+850*ms) // after DownRetry
	// The three instances' 300 requests reached the fleet: a fourth
	// instance now sees the window full.
	e4 := NewEngine(EngineConfig{Tallier: tally, Now: clock.Now, SyncEvery: time.Hour})
	t.Cleanup(e4.Close)
	l4 := e4.Limiter("route|0")
	at := later + 860*ms
	l4.Allow("usr_x", r, 1, at)
	syncFleet([]*Engine{e4}, at)
	if d := l4.Allow("usr_x", r, 1, at+ms); d.Allowed {
		t.Errorf("a fourth instance after the outage: %+v, want the fleet's counts to deny", d)
	}
}

// TestFleetBurstWorstCase measures the worst case the package comment
// states: a caller no instance has seen bursts on all of them at once,
// before any sync: each admits the whole capacity.
func TestFleetBurstWorstCase(t *testing.T) {
	tally := &memTally{}
	clock := &fakeClock{t: t0}
	r := Rate{Requests: 10, Per: time.Second}
	admitted := 0
	var engines []*Engine
	for range 3 {
		e := NewEngine(EngineConfig{Tallier: tally, Now: clock.Now, SyncEvery: time.Hour})
		t.Cleanup(e.Close)
		engines = append(engines, e)
		l := e.Limiter("route|0")
		for range 50 {
			if l.Allow("usr_new", r, 1, t0).Allowed {
				admitted++
			}
		}
	}
	if admitted != 30 {
		t.Errorf("burst on 3 instances before a sync: admitted %d, want 30 (3 × capacity)", admitted)
	}
	// After one sync every instance sees the window full.
	syncFleet(engines, t0+ms)
	for _, e := range engines {
		if d := e.Limiter("route|0").Allow("usr_new", r, 1, t0+2*ms); d.Allowed {
			t.Errorf("after the sync: %+v, want denied", d)
		}
		e.Release("route|0")
	}
}

// syncFleet makes every engine report its counts at now, then read the
// fleet's, as the engines' loops do at each sync.
func syncFleet(engines []*Engine, now int64) {
	reports := make([][]*Tally, len(engines))
	for i, e := range engines {
		reports[i] = e.reportCounts(now)
	}
	for i, e := range engines {
		e.readCounts(reports[i], now)
	}
}

type fakeClock struct {
	mu sync.Mutex
	t  int64
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Unix(0, c.t)
}

func (c *fakeClock) set(t int64) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func BenchmarkLimiterAllow(b *testing.B) {
	l := NewLimiter()
	r := Rate{Requests: 1 << 20, Per: time.Second}
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		now += 1000
		l.Allow("usr_0123456789abcdefghjkmnpq", r, 1, now)
	}
}

// TestLimiterMemo: a Memo only saves the lookup. Requests counted through
// it and without it share one window; another rate, another subject or
// another limiter is a window of its own; a window swept meanwhile is
// replaced by a fresh one, not counted in.
func TestLimiterMemo(t *testing.T) {
	l, other := NewLimiter(), NewLimiter()
	r := Rate{Requests: 5, Per: time.Second}
	var m Memo
	for i := range 3 {
		d := l.AllowMemo(&m, "usr_a", r, 1, t0)
		if !d.Allowed || d.Remaining != int64(4-i) {
			t.Fatalf("request %d through the memo: %+v, want remaining %d", i+1, d, 4-i)
		}
	}
	if d := l.Allow("usr_a", r, 1, t0); d.Remaining != 1 {
		t.Fatalf("the same window without the memo: remaining %d, want 1", d.Remaining)
	}
	if d := l.AllowMemo(&m, "usr_a", Rate{Requests: 7, Per: time.Second}, 1, t0); d.Remaining != 6 {
		t.Errorf("another rate: remaining %d, want 6 (a window of its own)", d.Remaining)
	}
	if d := l.AllowMemo(&m, "usr_b", r, 1, t0); d.Remaining != 4 {
		t.Errorf("another subject: remaining %d, want 4", d.Remaining)
	}
	if d := other.AllowMemo(&m, "usr_a", r, 1, t0); d.Remaining != 4 {
		t.Errorf("another limiter: remaining %d, want 4", d.Remaining)
	}
	if d := l.AllowMemo(&m, "usr_a", r, 1, t0); !d.Allowed || d.Remaining != 0 {
		t.Errorf("back to the first window: %+v, want allowed with 0 remaining", d)
	}
	if d := l.AllowMemo(&m, "usr_a", r, 1, t0); d.Allowed {
		t.Errorf("past the limit through the memo: allowed")
	}

	// Long after, the window is swept; the memo still points at it.
	later := t0 + int64(time.Hour)
	if kept := l.sweep(later); kept != 0 {
		t.Fatalf("sweep kept %d windows, want 0", kept)
	}
	if d := l.AllowMemo(&m, "usr_a", r, 1, later); !d.Allowed || d.Remaining != 4 {
		t.Fatalf("after a sweep: %+v, want a fresh window (remaining 4)", d)
	}
	if d := l.Allow("usr_a", r, 1, later); d.Remaining != 3 {
		t.Errorf("after a sweep, without the memo: remaining %d, want 3 (the memo's new window is the limiter's)", d.Remaining)
	}
}

// TestLimiterMemoConcurrent: many requests of one caller through one Memo
// at once are all counted (run with -race).
func TestLimiterMemoConcurrent(t *testing.T) {
	l := NewLimiter()
	r := Rate{Requests: 1000, Per: time.Hour}
	var m Memo
	var wg sync.WaitGroup
	for range 10 { // 10 × 100: the limit
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				l.AllowMemo(&m, "usr_a", r, 1, t0)
			}
		}()
	}
	wg.Wait()
	if d := l.Allow("usr_a", r, 1, t0); d.Allowed {
		t.Errorf("the 1001st request was allowed: %+v", d)
	}
}

// BenchmarkLimiterAllowMemo is BenchmarkLimiterAllow through a Memo, as
// the gateway counts a caller's requests.
func BenchmarkLimiterAllowMemo(b *testing.B) {
	l := NewLimiter()
	r := Rate{Requests: 1 << 20, Per: time.Second}
	var m Memo
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		now += 1000
		l.AllowMemo(&m, "usr_0123456789abcdefghjkmnpq", r, 1, now)
	}
}
