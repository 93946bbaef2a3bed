package limit

import (
	"context"
	"hash/maphash"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// wallet spends credits on this instance from what the ledger granted it.
// Each account it spends from has a holding here: what the ledger granted,
// what went back, what is left to spend (avail). A request spends from
// avail under the account's lock, without the ledger; the Engine's loop
// settles with the ledger off the request path: it asks for more before
// avail runs out (prefetch), reports spending, returns what an idle
// account holds. Only a request that finds too little left waits for a
// settlement (the first one of an account, or a burst beyond the lease).
type wallet struct {
	ledger   Ledger
	instance string
	cfg      *EngineConfig
	kick     func()

	shards [walletShards]walletShard

	qmu   sync.Mutex
	queue []*account // accounts to settle soon
}

const walletShards = 32

// walletShard maps the hash of an account's id to its accounts (a chain,
// for the rare hash two share).
type walletShard struct {
	mu sync.RWMutex
	m  map[uint64]*account
	_  [40]byte
}

// account is this instance's holding of one credit account.
type account struct {
	mu     sync.Mutex
	c      Credits // the setting spent from
	holder string  // the name of this holder at the ledger
	dead   bool    // forgotten by the wallet: look it up again

	// The holding's epoch: a.c.Serial and period. A new setting or period
	// starts a new holding.
	period, periodEnd int64
	granted, returned int64 // totals of the holding
	avail             int64 // granted, neither spent nor returned

	// What the last settlement said.
	balance  int64 // the ledger's balance (unleased credits)
	settled  int64 // when (Unix ns); 0: never in this holding
	spentAt  int64 // the last spend
	spentNew int64 // spent since the last settlement
	want     int64 // the holding the last settlement aimed at

	// A settlement of the previous setting still to send: what it held
	// goes back.
	final *Settlement

	exhausted bool  // the ledger had nothing left to grant
	down      bool  // the last settlement failed
	retryAt   int64 // while exhausted or down: when to ask the ledger again

	queued   bool
	inflight chan struct{} // closed when the running settlement is applied
	waiting  int64         // the credits requests wait for a settlement to spend

	next *account // another account whose id hashes alike

	wallet *wallet
	id, ws string // c.ID and c.Workspace, never written again (a Memo reads them unlocked)
}

var (
	accountSeed = maphash.MakeSeed()
	holderSeq   atomic.Uint64
)

func newWallet(ledger Ledger, instance string, cfg *EngineConfig, kick func()) *wallet {
	w := &wallet{ledger: ledger, instance: instance, cfg: cfg, kick: kick}
	for i := range w.shards {
		w.shards[i].m = make(map[uint64]*account)
	}
	return w
}

func (w *wallet) account(c *Credits, now int64) *account {
	h := maphash.String(accountSeed, c.ID)
	sh := &w.shards[h%walletShards]
	sh.mu.RLock()
	a := sh.m[h]
	for a != nil && (a.c.ID != c.ID || a.c.Workspace != c.Workspace) {
		a = a.next
	}
	sh.mu.RUnlock()
	if a != nil {
		return a
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	first := sh.m[h]
	for a = first; a != nil; a = a.next {
		if a.c.ID == c.ID && a.c.Workspace == c.Workspace {
			return a
		}
	}
	// Each account object is a holder of its own at the ledger: one
	// forgotten and made again starts from nothing there too.
	a = &account{c: *c, holder: w.instance + "." + strconv.FormatUint(holderSeq.Add(1), 36), next: first}
	a.c.Workspace, a.c.ID = strings.Clone(c.Workspace), strings.Clone(c.ID)
	a.wallet, a.id, a.ws = w, a.c.ID, a.c.Workspace
	a.startPeriod(c.Refill.Period(now))
	sh.m[h] = a
	return a
}

// remember returns the account of c, and remembers it in m (when not nil).
func (w *wallet) remember(m *Memo, c *Credits, now int64) *account {
	a := w.account(c, now)
	if m != nil {
		m.account.Store(a)
	}
	return a
}

// QuotaDecision is the outcome of Engine.Spend.
type QuotaDecision struct {
	// Allowed reports whether the credits were spent.
	Allowed bool
	// Unavailable reports, when not allowed, that the ledger could not be
	// reached and what this instance held was not enough: answer 503.
	Unavailable bool
	// Limit is what a period grants (the refill amount), or the credits
	// as set when they do not refill.
	Limit int64
	// Remaining is what is left as far as this instance knows: what it
	// holds and the ledger's balance at the last settlement.
	Remaining int64
	// Reset is how long until the next refill (0 without one).
	Reset time.Duration
	// RetryAfter is, when not allowed, when to try again: the next refill
	// when the credits are spent (0 without a refill), a few seconds when
	// the ledger is unreachable.
	RetryAfter time.Duration
}

// spend spends cost credits of c at now.
func (w *wallet) spend(ctx context.Context, m *Memo, c *Credits, cost, now int64) QuotaDecision {
	var a *account
	if m != nil {
		if ma := m.account.Load(); ma != nil && ma.wallet == w && ma.id == c.ID && ma.ws == c.Workspace {
			a = ma
		}
	}
	if a == nil {
		a = w.remember(m, c, now)
	}
	a.mu.Lock()
	for a.dead {
		a.mu.Unlock()
		a = w.remember(m, c, now)
		a.mu.Lock()
	}
	var waitStart time.Time // when this request first found too little
	arrived := now
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			// The request's clock goes on while it waits: a lease sized
			// at its arrival, before the settlement it waited for, would
			// see no pace and ask for a first lease again.
			now = arrived + int64(time.Since(waitStart))
		}
		w.adopt(a, c, now)
		if a.avail >= cost {
			a.avail -= cost
			a.spentAt = now
			a.spentNew += cost
			// Ask for more before it runs out; and when it has run out,
			// report at once (what remains shows right).
			low := a.avail < a.lowWater() && !a.exhausted && !a.down
			if (low || a.avail == 0) && !a.queued && a.inflight == nil {
				w.enqueue(a)
			}
			d := a.decision(now, true)
			a.mu.Unlock()
			return d
		}
		if attempt == 0 {
			waitStart = time.Now()
		}
		// After a settlement since it came, a request that still finds
		// too little while the ledger has nothing left to grant is
		// refused: the credits are spent (or held by other instances).
		spentOut := attempt > 0 && a.settled > 0 && a.balance <= 0 && !a.down
		// One that waited its turn long enough (or whose client left)
		// gives up without knowing the credits are spent (others of a
		// burst took each lease it waited for): unavailable, not "no
		// credits".
		gaveUp := attempt >= maxSpendAttempts || ctx.Err() != nil ||
			attempt > 0 && time.Since(waitStart) >= w.cfg.SettleTimeout
		if w.ledger == nil || spentOut || gaveUp || ((a.exhausted || a.down) && now < a.retryAt) {
			if spentOut && !a.exhausted {
				// What a holds is too little for this request: the next
				// like it is refused without asking until Recheck.
				a.exhausted, a.retryAt = true, min(now+int64(w.cfg.Recheck), a.periodEnd)
			}
			if a.spentNew > 0 && (a.exhausted || spentOut) && !a.queued && a.inflight == nil {
				w.enqueue(a) // report what was spent, so what remains shows right
			}
			d := a.decision(now, false)
			d.Unavailable = w.ledger == nil || (a.down || gaveUp) && !a.exhausted && !spentOut
			a.mu.Unlock()
			return d
		}
		// Not enough here: settle now, or wait for the settlement running.
		a.waiting += cost
		if ch := a.inflight; ch != nil {
			a.mu.Unlock()
			t := time.NewTimer(w.cfg.SettleTimeout)
			select {
			case <-ch:
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
			a.mu.Lock()
			a.waiting -= cost
			continue
		}
		batch := w.build(a, now, cost)
		a.mu.Unlock()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.cfg.SettleTimeout)
		err := w.ledger.Settle(sctx, batch)
		cancel()
		a.mu.Lock()
		a.waiting -= cost
		_ = err // a settlement not done says it
		w.apply(a, batch, now)
	}
}

// maxSpendAttempts bounds how many settlements one request waits for or
// makes before it gives up (SettleTimeout bounds how long).
const maxSpendAttempts = 64

// adopt moves a onto the setting c names and the refill period of now.
func (w *wallet) adopt(a *account, c *Credits, now int64) {
	if c.Serial > a.c.Serial {
		// A new setting: what the old holding has goes back to the
		// ledger (a final settlement of the old epoch), and a new holding
		// starts.
		if a.granted > 0 && now < a.periodEnd {
			a.final = &Settlement{
				Credits: a.c, Instance: a.holder, Period: a.period,
				Spent: a.granted - a.returned - a.avail, Returned: a.returned + a.avail,
			}
		}
		ws, id := a.c.Workspace, a.c.ID
		a.c = *c
		a.c.Workspace, a.c.ID = ws, id
		a.startPeriod(c.Refill.Period(now))
		return
	}
	if now >= a.periodEnd {
		a.startPeriod(a.c.Refill.Period(now))
	}
}

// startPeriod starts an empty holding in period p of a's setting.
func (a *account) startPeriod(p int64) {
	a.period, a.periodEnd = p, a.c.Refill.End(p)
	a.granted, a.returned, a.avail = 0, 0, 0
	a.balance, a.settled, a.spentNew = 0, 0, 0
	a.exhausted, a.down, a.retryAt = false, false, 0
}

// lowWater is how little may be left before more is asked for.
func (a *account) lowWater() int64 { return max(1, a.want/2) }

func (a *account) decision(now int64, ok bool) QuotaDecision {
	d := QuotaDecision{Allowed: ok, Limit: a.c.Set, Remaining: a.avail + max(0, a.balance)}
	if !a.c.Refill.IsZero() {
		d.Limit = a.c.Refill.Amount
		d.Reset = time.Duration(a.periodEnd - now)
	}
	if !ok {
		switch {
		case a.down && !a.exhausted:
			d.RetryAfter = time.Duration(max(a.retryAt-now, int64(time.Second)))
		case !a.c.Refill.IsZero():
			d.RetryAfter = d.Reset
		}
	}
	return d
}

// build makes a's settlements (the final one of an old setting first,
// then the holding's) asking for at least need credits, and marks a
// settlement as running. a.mu is held.
func (w *wallet) build(a *account, now, need int64) []*Settlement {
	var batch []*Settlement
	if a.final != nil {
		a.final.Now = now
		batch = append(batch, a.final)
	}
	want := a.leaseSize(now, w.cfg, a.waiting)
	if need > a.avail && need-a.avail > want {
		want = need - a.avail
	}
	if a.exhausted && need == 0 {
		want = 1 // a recheck: has anything come back?
	}
	a.want = want + a.avail // the holding it aims at
	batch = append(batch, &Settlement{
		Credits: a.c, Instance: a.holder, Period: a.period,
		Spent: a.granted - a.returned - a.avail, Returned: a.returned, Want: want, Now: now,
	})
	a.inflight = make(chan struct{})
	return batch
}

// leaseSize is how much to ask for: enough to make what a holds last
// LeaseFor at its recent pace, and at least what requests wait for
// (waiting; at least 1, at most MaxLease), and, once
// the balance is known, to hold at most a quarter of it, so that leases
// shrink as credits run low and the last ones are spread among the
// instances that ask. It tops the holding up to that: what a holds never
// exceeds it.
func (a *account) leaseSize(now int64, cfg *EngineConfig, waiting int64) int64 {
	target := int64(cfg.FirstLease)
	if a.settled > 0 && now > a.settled {
		pace := float64(a.spentNew) / float64(now-a.settled) // credits per ns
		target = int64(pace*float64(cfg.LeaseFor)) + 1
		if target < a.want/2 {
			target = max(1, a.want/2) // shrink gently when the pace drops
		}
	}
	target = min(max(target, waiting, 1), cfg.MaxLease)
	if a.settled > 0 {
		target = min(target, max(1, a.balance/4))
	}
	return max(target-a.avail, 0)
}

// apply takes in what the ledger answered to batch (built by build), or
// the failure err. a.mu is held.
func (w *wallet) apply(a *account, batch []*Settlement, now int64) {
	ch := a.inflight
	a.inflight = nil
	defer close(ch)
	s := batch[len(batch)-1]
	if len(batch) > 1 && batch[0].Done && batch[0] == a.final {
		a.final = nil
	}
	if !s.Done {
		a.down = true
		a.retryAt = now + int64(w.cfg.DownRetry)
		return
	}
	a.down = false
	if s.Serial == a.c.Serial && s.LedgerSerial > a.c.Serial {
		// The ledger knows a newer setting than this instance's records:
		// it grants nothing until they catch up. Meanwhile a request that
		// needs more than a holds is answered unavailable, as with the
		// ledger down, and asks again after DownRetry.
		a.down, a.retryAt = true, now+int64(w.cfg.DownRetry)
		return
	}
	if s.Serial != a.c.Serial || s.Period != a.period || s.LedgerSerial != a.c.Serial {
		return // the holding moved on meanwhile, or the ledger knows a newer setting
	}
	if s.LedgerPeriod > a.period {
		a.startPeriod(s.LedgerPeriod) // this instance's clock is behind the fleet's
		return
	}
	spent := a.granted - a.returned - a.avail // spending went on during the call
	if s.Fresh && a.granted > 0 {
		// The ledger had no holding of ours: it was written off. What we
		// held is lost (counted as spent there); start over.
		a.granted, a.returned, a.avail = 0, 0, 0
		spent = 0
	}
	a.granted = s.Granted
	a.avail = max(0, a.granted-a.returned-spent)
	a.balance = s.Balance
	// What was spent after the settlement was made is still to report.
	a.settled, a.spentNew = now, max(0, spent-s.Spent)
	a.exhausted = s.Balance <= 0 && a.avail < a.lowWater()
	if a.exhausted {
		a.retryAt = min(now+int64(w.cfg.Recheck), a.periodEnd)
	}
}

func (w *wallet) enqueue(a *account) {
	a.queued = true
	w.qmu.Lock()
	w.queue = append(w.queue, a)
	w.qmu.Unlock()
	w.kick()
}

// due returns the settlements the loop should make at now: those of
// queued accounts, and of every account that spent since it last reported
// (every ReportEvery), went idle holding credits (IdleReturn), or is
// exhausted and due a recheck. It marks them running; settleDone applies
// the answers. all asks for a scan of every account (the loop does one
// every ReportEvery); close returns everything held.
func (w *wallet) due(now int64, all, closing bool) ([]*account, [][]*Settlement) {
	w.qmu.Lock()
	q := w.queue
	w.queue = nil
	w.qmu.Unlock()
	var accts []*account
	var batches [][]*Settlement
	take := func(a *account) {
		a.mu.Lock()
		defer a.mu.Unlock()
		a.queued = false
		if a.inflight != nil {
			return
		}
		w.adopt(a, &a.c, now)
		idle := now-a.spentAt >= int64(w.cfg.IdleReturn)
		switch {
		case closing || (idle && a.avail > 0):
			a.returned += a.avail
			a.avail = 0
			b := w.build(a, now, 0)
			b[len(b)-1].Want = 0
			a.want = 0
			accts, batches = append(accts, a), append(batches, b)
		case a.final != nil,
			a.avail < a.lowWater() && !a.exhausted && !(a.down && now < a.retryAt),
			a.exhausted && now >= a.retryAt,
			a.spentNew > 0 && (a.avail == 0 || a.exhausted) && !(a.down && now < a.retryAt),
			a.down && now >= a.retryAt,
			a.spentNew > 0 && now-a.settled >= int64(w.cfg.ReportEvery):
			accts, batches = append(accts, a), append(batches, w.build(a, now, 0))
		}
	}
	for _, a := range q {
		take(a)
	}
	if all || closing {
		var scan []*account
		for i := range w.shards {
			sh := &w.shards[i]
			sh.mu.Lock()
			for h, first := range sh.m {
				var keep *account
				for a := first; a != nil; {
					next := a.next
					a.mu.Lock()
					forget := !closing && a.avail == 0 && a.final == nil && a.inflight == nil && !a.queued &&
						a.waiting == 0 && a.spentNew == 0 && now-a.spentAt >= int64(w.cfg.IdleReturn)*4
					if forget {
						a.dead = true
					} else {
						a.next = keep
						keep = a
						scan = append(scan, a)
					}
					a.mu.Unlock()
					a = next
				}
				if keep == nil {
					delete(sh.m, h)
				} else {
					sh.m[h] = keep
				}
			}
			sh.mu.Unlock()
		}
		for _, a := range scan {
			take(a)
		}
	}
	return accts, batches
}

// settleDone applies the answers to what due returned.
func (w *wallet) settleDone(accts []*account, batches [][]*Settlement, now int64) {
	for i, a := range accts {
		a.mu.Lock()
		w.apply(a, batches[i], now)
		a.mu.Unlock()
	}
}
