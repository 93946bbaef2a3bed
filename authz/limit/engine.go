package limit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"
)

// EngineConfig configures an Engine. Zero fields take their defaults.
type EngineConfig struct {
	// Tallier shares rate-limit counts with the other instances of a
	// fleet. Nil: counts are this process's alone.
	Tallier Tallier
	// Ledger keeps credit balances. Nil: spending credits is answered
	// unavailable.
	Ledger Ledger
	// Instance names this instance at the ledger. Default: random.
	Instance string

	// SyncEvery is how often counts are exchanged with the fleet and due
	// settlements made. Default: 100ms.
	SyncEvery time.Duration
	// LeaseFor is how long a lease should last at an account's recent
	// pace of spending. Default: 1s.
	LeaseFor time.Duration
	// FirstLease is the first lease asked for an account. Default: 16.
	FirstLease int64
	// MaxLease bounds a lease. Default: 100,000.
	MaxLease int64
	// ReportEvery is how often an account that spends reports to the
	// ledger even when it holds enough. Default: 1s.
	ReportEvery time.Duration
	// IdleReturn is how long an account must go unspent before what it
	// holds goes back to the ledger. Default: 10s.
	IdleReturn time.Duration
	// Recheck is how long an account the ledger had nothing left for is
	// answered "no credits" before the ledger is asked again (another
	// instance may have returned some). Default: 1s.
	Recheck time.Duration
	// DownRetry is how long, after the ledger or the fleet could not be
	// reached, before they are tried again; requests that need the ledger
	// meanwhile are answered unavailable. Default: 500ms.
	DownRetry time.Duration
	// SettleTimeout bounds one exchange with the ledger or the fleet.
	// Default: 1s.
	SettleTimeout time.Duration
	// SweepEvery is how often windows and accounts nobody used for a
	// while are forgotten. Default: 10s.
	SweepEvery time.Duration
	// Now is the clock of the background work. Default: time.Now.
	Now func() time.Time
	// OnError, when set, is told when exchanges with the fleet or the
	// ledger start failing (what is "counts" or "credits") and, with a nil
	// error, when they work again.
	OnError func(what string, err error)
}

func (c *EngineConfig) defaults() {
	if c.Instance == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		c.Instance = hex.EncodeToString(b[:])
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.SyncEvery, 100*time.Millisecond)
	def(&c.LeaseFor, time.Second)
	def(&c.ReportEvery, time.Second)
	def(&c.IdleReturn, 10*time.Second)
	def(&c.Recheck, time.Second)
	def(&c.DownRetry, 500*time.Millisecond)
	def(&c.SettleTimeout, time.Second)
	def(&c.SweepEvery, 10*time.Second)
	if c.FirstLease <= 0 {
		c.FirstLease = 16
	}
	if c.MaxLease <= 0 {
		c.MaxLease = 100_000
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

func (c *EngineConfig) nowNS() int64 { return c.Now().UnixNano() }

// Engine is one instance's rate limiting and credit spending: the
// limiters of its routes, the credits it holds, and the loop that
// exchanges both with the fleet off the request path. It is safe for
// concurrent use.
type Engine struct {
	cfg    EngineConfig
	wallet *wallet

	mu       sync.Mutex
	limiters map[string]*limiterRef

	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	closed  sync.Once
	crashed bool // stopped without giving back (tests)

	// Loop state (the loop goroutine only).
	countsRetryAt, creditsRetryAt int64
	countsDown, creditsDown       bool
	lastScan, lastSweep           int64
}

type limiterRef struct {
	l    *Limiter
	refs int
}

// NewEngine makes an Engine and starts its loop; Close stops it. It does
// not touch the Tallier or the Ledger until there is something to send.
func NewEngine(cfg EngineConfig) *Engine {
	cfg.defaults()
	e := &Engine{
		cfg:      cfg,
		limiters: map[string]*limiterRef{},
		kick:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	e.wallet = newWallet(cfg.Ledger, cfg.Instance, &e.cfg, e.poke)
	go e.loop()
	return e
}

// Instance is the name this instance goes by at the ledger.
func (e *Engine) Instance() string { return e.cfg.Instance }

// Shared reports whether rate-limit counts are shared with a fleet.
func (e *Engine) Shared() bool { return e.cfg.Tallier != nil }

// Limiter returns the limiter named id, making it on first use; each call
// must be matched by one of Release. The name must be the same on every
// instance of a fleet for the same route and line (the fleet counts under
// it), and differ between routes that must count apart.
func (e *Engine) Limiter(id string) *Limiter {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.limiters[id]
	if r == nil {
		r = &limiterRef{l: newLimiter(id, e.cfg.Tallier != nil)}
		e.limiters[id] = r
	}
	r.refs++
	return r.l
}

// Release lets go of a limiter taken with Limiter; the last release
// forgets it. A configuration reload takes the new limiters before it
// releases the old, so counts survive it.
func (e *Engine) Release(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r := e.limiters[id]; r != nil {
		if r.refs--; r.refs <= 0 {
			delete(e.limiters, id)
		}
	}
}

// Spend spends cost credits of c at now (Unix nanoseconds). It answers
// from what this instance holds; only when that is not enough does it
// wait for the ledger (at most SettleTimeout).
func (e *Engine) Spend(ctx context.Context, c *Credits, cost, now int64) QuotaDecision {
	return e.wallet.spend(ctx, nil, c, cost, now)
}

// SpendMemo is Spend, looking in m first for the account of c (and
// remembering it there). m should belong to the caller c is the credits
// of.
func (e *Engine) SpendMemo(ctx context.Context, m *Memo, c *Credits, cost, now int64) QuotaDecision {
	return e.wallet.spend(ctx, m, c, cost, now)
}

// Close stops the loop and gives back the credits this instance holds
// (within SettleTimeout). Calls after the first do nothing.
func (e *Engine) Close() {
	e.closed.Do(func() {
		close(e.stop)
		<-e.done
	})
}

// crash stops the loop as a crash would: nothing is given back (for tests
// of what a crashed instance costs).
func (e *Engine) crash() {
	e.closed.Do(func() {
		e.crashed = true
		close(e.stop)
		<-e.done
	})
}

func (e *Engine) poke() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// The loop's clock is the fleet's: every instance reports its counts at
// the same moments, whole multiples of SyncEvery since 1970 (as far as the
// instances' clocks agree), and reads the fleet's totals half an interval
// later, when all have reported. So an instance's view of the fleet is
// the same as every other's, as of the last report, and what it does not
// see is only what came since, which each instance accounts for by its
// share of the fleet's demand (see window).
func (e *Engine) loop() {
	defer close(e.done)
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	var reports []*Tally
	for {
		now := e.cfg.nowNS()
		every := int64(e.cfg.SyncEvery)
		half := every / 2
		next := (now/every + 1) * every // the next report
		read := next - every + half     // the read after the last one
		report := true
		if read > now || len(reports) > 0 {
			// The read of the last reports is made even when its time
			// has passed (a slow Tallier, or a settlement of credits, took
			// it), before the next report: skipped, no instance would
			// see the others' counts.
			next, report = max(read, now), false
		}
		timer.Reset(time.Duration(next - now))
		select {
		case <-e.stop:
			if !e.crashed {
				e.settleCredits(e.cfg.nowNS(), true)
			}
			return
		case <-e.kick:
			e.settleCredits(e.cfg.nowNS(), false)
			continue
		case <-timer.C:
		}
		now = e.cfg.nowNS()
		if report {
			reports = e.reportCounts(now)
			continue
		}
		e.readCounts(reports, now)
		reports = nil
		e.settleCredits(now, false)
		if now-e.lastSweep >= int64(e.cfg.SweepEvery) {
			e.lastSweep = now
			e.sweep(now)
		}
	}
}

func (e *Engine) snapshot() []*Limiter {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]*Limiter, 0, len(e.limiters))
	for _, r := range e.limiters {
		out = append(out, r.l)
	}
	return out
}

// reportCounts reports what every limiter counted since its last report
// to the fleet, and returns the reports made (for readCounts).
func (e *Engine) reportCounts(now int64) []*Tally {
	if e.cfg.Tallier == nil || now < e.countsRetryAt {
		return nil
	}
	var batch []*Tally
	owner := make([]*Limiter, 0, 8)
	for _, l := range e.snapshot() {
		n := len(batch)
		batch = l.takeTallies(now, batch)
		for range len(batch) - n {
			owner = append(owner, l)
		}
	}
	if len(batch) == 0 {
		return nil
	}
	err := e.tally(batch)
	done := batch[:0]
	for i, t := range batch {
		owner[i].settle(t)
		if t.Done {
			t.owner = owner[i]
			done = append(done, t)
		}
	}
	e.countsDown, e.countsRetryAt = e.report("counts", err, e.countsDown, now)
	return done
}

// readCounts reads the fleet's totals of the windows reports were made
// for.
func (e *Engine) readCounts(reports []*Tally, now int64) {
	if len(reports) == 0 {
		return
	}
	batch := make([]*Tally, len(reports))
	for i, r := range reports {
		batch[i] = readTally(r, now)
	}
	err := e.tally(batch)
	for i, t := range batch {
		reports[i].owner.settle(t)
	}
	e.countsDown, e.countsRetryAt = e.report("counts", err, e.countsDown, now)
}

func (e *Engine) tally(batch []*Tally) error {
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.SettleTimeout)
	defer cancel()
	return e.cfg.Tallier.Tally(ctx, batch)
}

// settleCredits makes the settlements that are due (all of them, giving
// back everything held, when closing).
func (e *Engine) settleCredits(now int64, closing bool) {
	if e.cfg.Ledger == nil {
		return
	}
	all := now-e.lastScan >= int64(e.cfg.ReportEvery)
	if all {
		e.lastScan = now
	}
	if !closing && now < e.creditsRetryAt && !all {
		return
	}
	accts, batches := e.wallet.due(now, all, closing)
	if len(accts) == 0 {
		return
	}
	var flat []*Settlement
	for _, b := range batches {
		flat = append(flat, b...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.SettleTimeout)
	err := e.cfg.Ledger.Settle(ctx, flat)
	cancel()
	e.wallet.settleDone(accts, batches, e.cfg.nowNS())
	e.creditsDown, e.creditsRetryAt = e.report("credits", err, e.creditsDown, now)
}

// report tells OnError about a change between working and failing, and
// returns the new state and when to try again.
func (e *Engine) report(what string, err error, wasDown bool, now int64) (bool, int64) {
	down := err != nil
	if down != wasDown && e.cfg.OnError != nil {
		e.cfg.OnError(what, err)
	}
	if down {
		return true, now + int64(e.cfg.DownRetry)
	}
	return false, 0
}

func (e *Engine) sweep(now int64) {
	for _, l := range e.snapshot() {
		l.sweep(now)
	}
}
