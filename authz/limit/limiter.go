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

// Limiter counts requests per subject (a key, a user, a workspace, an
// address) against Rates, each subject and rate in a sliding window of
// its own. One Limiter serves one rate_limit line of one route. It is safe
// for concurrent use; Allow does not allocate once the subject's window
// exists.
//
// A shared Limiter (one of an Engine with a Tallier) also remembers which
// of its counts the fleet has not heard of yet; the Engine reports them
// and brings back the fleet's, off the request path.
type Limiter struct {
	id     string
	shared bool
	shards [limiterShards]limiterShard

	qmu   sync.Mutex
	queue []*window // windows with counts to report
}

const limiterShards = 32

// limiterShard maps the hash of a subject and rate to its windows (a
// chain, for the rare hash shared by two).
type limiterShard struct {
	mu sync.RWMutex
	m  map[uint64]*window
	_  [40]byte // keep shards on their own cache lines
}

var subjectSeed = maphash.MakeSeed()

// subjectHash hashes subject and r with one pass over the string.
func subjectHash(subject string, r Rate) uint64 {
	h := maphash.String(subjectSeed, subject)
	return h ^ (uint64(r.Requests)*0x9e3779b97f4a7c15 + uint64(r.Per)*0xbf58476d1ce4e5b9 + uint64(r.Burst)*0x94d049bb133111eb)
}

// NewLimiter makes a Limiter that is not shared with a fleet. An Engine
// makes shared ones (Engine.Limiter).
func NewLimiter() *Limiter { return newLimiter("", false) }

func newLimiter(id string, shared bool) *Limiter {
	l := &Limiter{id: id, shared: shared}
	for i := range l.shards {
		l.shards[i].m = make(map[uint64]*window)
	}
	return l
}

// Allow counts cost requests of subject at rate r at now (Unix
// nanoseconds) when they fit in its window, and says so. r must be valid
// (Rate.Validate).
func (l *Limiter) Allow(subject string, r Rate, cost, now int64) Decision {
	return l.AllowMemo(nil, subject, r, cost, now)
}

// A Memo remembers the last windows a caller's requests were counted in,
// and the credit account it last spent from, so that its next requests
// skip looking them up. A caller (an API user) keeps one for every
// Limiter and Engine it meets; the zero Memo is empty, and a nil *Memo
// remembers nothing. It is safe for concurrent use.
type Memo struct {
	ws      [memoWindows]atomic.Pointer[window]
	account atomic.Pointer[account]
}

// memoWindows is how many windows a Memo remembers: a route's line by
// user and one by key, or two routes' lines by user.
const memoWindows = 2

// AllowMemo is Allow, looking in m first for the window (and remembering
// it there). m should belong to the caller subject stands for: the user
// by whom, or whose key, or whose workspace, the line counts.
func (l *Limiter) AllowMemo(m *Memo, subject string, r Rate, cost, now int64) (d Decision) {
	l.AllowMemoInto(&d, m, subject, r, cost, now)
	return d
}

// AllowMemoInto is AllowMemo writing the decision into *d, which is zero.
// (A Decision has too many fields for the compiler to keep it in
// registers: a caller that keeps one in place saves copying it whole
// after its fields were written one by one, which stalls the processor's
// store forwarding.)
func (l *Limiter) AllowMemoInto(d *Decision, m *Memo, subject string, r Rate, cost, now int64) {
	var w *window
	slot := 0 // where m remembers the window
	if m != nil {
		for i := range m.ws {
			c := m.ws[i].Load()
			if c != nil && c.owner == l && c.rate == r && c.subject == subject {
				w, slot = c, i
				break
			}
			if c == nil || c.owner != l {
				slot = i // a free one, or another limiter's
			}
		}
	}
	for {
		if w == nil {
			w = l.window(subject, r, now)
			if m != nil {
				m.ws[slot].Store(w)
			}
		}
		w.mu.Lock()
		if w.cap < 0 { // swept (see sweep): look it up again
			w.mu.Unlock()
			w = nil
			continue
		}
		w.allow(d, now, cost, l.shared)
		// A window in use, admitting or not, is kept in step with the
		// fleet: an instance that denies must learn when the others'
		// requests leave the window, not only what it admits.
		if l.shared && !w.queued {
			w.queued = true
			l.qmu.Lock()
			l.queue = append(l.queue, w)
			l.qmu.Unlock()
		}
		w.mu.Unlock()
		return
	}
}

// Refund takes back the requests an allowing Decision counted (when a
// later check of the same request denies it), given its Ticket.
func (l *Limiter) Refund(t Ticket) {
	if t.w == nil {
		return
	}
	t.w.mu.Lock()
	t.w.refund(t.slot, t.cost)
	t.w.mu.Unlock()
}

func (l *Limiter) window(subject string, r Rate, now int64) *window {
	h := subjectHash(subject, r)
	sh := &l.shards[h%limiterShards]
	sh.mu.RLock()
	w := sh.m[h]
	for w != nil && (w.subject != subject || w.rate != r) {
		w = w.next
	}
	sh.mu.RUnlock()
	if w != nil {
		return w
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	first := sh.m[h]
	for w = first; w != nil; w = w.next {
		if w.subject == subject && w.rate == r {
			return w
		}
	}
	w = newWindow(r, now)
	w.owner, w.subject, w.rate, w.next = l, strings.Clone(subject), r, first
	if l.shared {
		w.name = l.id + "|" + w.subject + "|" + strconv.FormatInt(w.cap, 10) + "/" + strconv.FormatInt(int64(r.Window()), 10)
	}
	sh.m[h] = w
	return w
}

// sweep forgets the windows whose every slot expired by now, and returns
// how many windows it keeps.
func (l *Limiter) sweep(now int64) int {
	kept := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		for h, first := range sh.m {
			var keep *window
			for w := first; w != nil; {
				next := w.next
				w.mu.Lock()
				if w.idle(now) && !w.queued {
					w.cap = -1 // tells a racing Allow to look again
				} else {
					w.next = keep
					keep = w
					kept++
				}
				w.mu.Unlock()
				w = next
			}
			if keep == nil {
				delete(sh.m, h)
			} else {
				sh.m[h] = keep
			}
		}
		sh.mu.Unlock()
	}
	return kept
}

// Tally is one window's exchange with the fleet: the requests this
// instance counted since its last report, per slot, and the fleet's
// totals of the window's live slots. A Tally with nothing to add is a
// read.
type Tally struct {
	// Name identifies the counter across the fleet: the limiter, the
	// subject and the rate.
	Name string
	// Head is the number (Unix time / slot length) of the newest slot;
	// index i of Add and Totals is slot Head-Slots+i.
	Head int64
	// TTL is how long the fleet needs to keep these counts: the window
	// and one slot more.
	TTL time.Duration
	// Add holds this instance's requests not yet reported.
	Add [ring]uint32
	// Demand is how many requests came to this instance (admitted or not)
	// since its last report, to add to the fleet's demand counter.
	Demand int64

	// Set by the Tallier:

	// Totals is the fleet's count of each slot, Add included.
	Totals [ring]int64
	// DemandTotal is the fleet's demand counter, Demand included.
	DemandTotal int64
	// Done reports that the Tallier applied this Tally.
	Done bool

	w     *window
	owner *Limiter
	read  bool
	at    int64 // when a read was made
}

// Tallier shares request counts among the instances of a fleet (the Redis
// store). It is used off the request path.
type Tallier interface {
	// Tally adds each t.Add and t.Demand to the fleet's counts of t.Name,
	// sets t.Totals, t.DemandTotal and t.Done, for every t of batch, in as
	// few round trips as it can. An error may leave some of batch done.
	Tally(ctx context.Context, batch []*Tally) error
}

// takeTallies returns a Tally for every window with requests to report,
// and marks those requests reported.
func (l *Limiter) takeTallies(now int64, out []*Tally) []*Tally {
	l.qmu.Lock()
	q := l.queue
	l.queue = nil
	l.qmu.Unlock()
	for _, w := range q {
		w.mu.Lock()
		w.queued = false
		if w.cap < 0 {
			w.mu.Unlock()
			continue
		}
		w.advance(now / w.slotLen)
		t := &Tally{Name: w.name, Head: w.head, TTL: w.ttl(), w: w, Demand: w.demand}
		w.demand = 0
		for s := int64(0); s < ring; s++ {
			i := (w.head - Slots + s) % ring
			t.Add[s] = w.pending[i]
			w.pending[i] = 0
		}
		w.mu.Unlock()
		out = append(out, t)
	}
	return out
}

// readTally returns the read of the window a report was made for.
func readTally(rep *Tally, now int64) *Tally {
	w := rep.w
	w.mu.Lock()
	defer w.mu.Unlock()
	w.advance(now / w.slotLen)
	return &Tally{Name: w.name, Head: w.head, TTL: w.ttl(), w: w, read: true, at: now}
}

func (w *window) ttl() time.Duration { return time.Duration(w.slotLen * (ring + 1)) }

// settle applies the fleet's answer to t: its counts, and after a read
// the fleet's share of demand. A report the Tallier did not get to has
// its requests put back, to be reported again.
func (l *Limiter) settle(t *Tally) {
	w := t.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cap < 0 {
		return
	}
	if !t.Done {
		if t.read {
			return
		}
		requeue := false
		for s := int64(0); s < ring; s++ {
			slot := t.Head - Slots + s
			if t.Add[s] == 0 || slot > w.head || slot <= w.head-ring || slot < 0 {
				continue
			}
			i := slot % ring
			w.pending[i] = addSat(w.pending[i], int64(t.Add[s]))
			requeue = true
		}
		w.demand += t.Demand
		if (requeue || t.Demand > 0) && !w.queued {
			w.queued = true
			l.qmu.Lock()
			l.queue = append(l.queue, w)
			l.qmu.Unlock()
		}
		return
	}
	if !t.read {
		// Only a read is a consistent view of the fleet (see Engine).
		w.reported += t.Demand
		return
	}
	w.since = 0
	for s := int64(0); s < ring; s++ {
		slot := t.Head - Slots + s
		if slot > w.head || slot <= w.head-ring || slot < 0 {
			continue // left the window meanwhile
		}
		i := slot % ring
		w.known[i] = addSat(0, t.Totals[s])
		// What the fleet counted as of the report, and what this instance
		// counted since.
		w.setSlot(i, addSat(0, t.Totals[s]+int64(w.pending[i])))
		w.since += int64(w.pending[i])
	}
	// A read comes after every instance reported (see Engine): the
	// demand since the last read is the fleet's over one sync interval.
	if w.synced {
		others := max(0, t.DemandTotal-w.demandSeen-w.reported)
		if w.reported > 0 {
			w.share = float64(w.reported+others) / float64(w.reported)
		} else {
			// No requests here lately: count the first ones as a small
			// part of the fleet's.
			w.share = float64(1 + others)
		}
	}
	w.synced, w.demandSeen, w.reported, w.readAt = true, t.DemandTotal, 0, t.at
}
