package limit

import (
	"math"
	"math/bits"
	"sync"
	"time"
)

// Slots is how many slots a sliding window is cut into. The window's count
// is the sum of its slots, the oldest one weighted by how much of it is
// still inside the window: the estimate assumes the requests of that one
// slot came evenly, so it can be off by at most a tenth of the window's
// capacity (see the package comment).
const Slots = 10

// ring is how many slots a window keeps: the Slots-1 newest fully inside
// the window, the current one, and the oldest, partly inside.
const ring = Slots + 1

// window counts one subject's requests at one Rate. Its slots are a ring
// indexed by absolute slot number (Unix time / slot length) modulo ring.
type window struct {
	// What a request reads comes first, on as few cache lines as can be:
	// whose window it is (a Memo checks), its newest slot, share and all.
	owner   *Limiter
	rate    Rate
	subject string
	mu      sync.Mutex
	slotLen int64 // nanoseconds
	cap     int64
	head    int64   // absolute number of the newest slot
	headAt  int64   // when it starts: head × slotLen
	share   float64 // ≥ 1 (see known)
	total   int64   // the sum of all's slots

	// all holds the requests of every instance as this one knows them:
	// its own, and the fleet's as of the last sync. pending holds the own
	// requests not yet reported to the fleet (only when the limiter is
	// shared).
	all     [ring]uint32
	pending [ring]uint32

	// The fleet, for shared limiters. known holds each slot's fleet count
	// at the last sync. Between two syncs an instance does not see the
	// others' requests, so it counts its own as if each stood for
	// `share` requests of the fleet: share is the fleet's demand (requests
	// that came, admitted or not) over this instance's, as measured
	// between the last two syncs. Without that, every instance would take
	// all that frees up between two syncs for itself, and a fleet of n
	// would admit up to n times that; with it, each takes its part in
	// proportion to the requests it gets.
	known      [ring]uint32
	since      int64 // own requests counted since the last report
	demand     int64 // own requests that came (admitted or not) since then
	reported   int64 // own demand reported since the last read
	demandSeen int64 // the fleet's demand counter at the last read
	synced     bool  // read at least once
	readAt     int64 // when the last read was made

	queued bool   // in the limiter's dirty list
	name   string // fleet-wide name (shared limiters only)

	next *window // another window whose subject and rate hash alike
}

func newWindow(r Rate, now int64) *window {
	sl := int64(r.Window()) / Slots
	if sl < 1 {
		sl = 1
	}
	head := now / sl
	return &window{slotLen: sl, cap: r.Capacity(), head: head, headAt: head * sl, share: 1}
}

// ShareTTL is how long an instance keeps counting by the fleet's share
// it last read. When the fleet cannot be read for longer (the store is
// away), each instance limits on its own.
const ShareTTL = 2 * time.Second

// predicted is how many requests the other instances are expected to have
// counted since the view of the last read.
func (w *window) predicted(now int64) int64 {
	if w.share <= 1 || w.since == 0 || now-w.readAt > int64(ShareTTL) {
		return 0
	}
	return int64(math.Ceil(float64(w.since) * (w.share - 1)))
}

// shareAt is the share in force at now.
func (w *window) shareAt(now int64) float64 {
	if now-w.readAt > int64(ShareTTL) {
		return 1
	}
	return w.share
}

// advance makes slot c the newest, clearing the slots that left the
// window. A c older than the newest slot (a clock step back, or a caller
// whose now was read a little earlier) counts in the newest slot.
func (w *window) advance(c int64) {
	if c <= w.head {
		return
	}
	if c-w.head >= ring {
		w.all = [ring]uint32{}
		w.pending = [ring]uint32{}
		w.known = [ring]uint32{}
		w.total = 0
	} else {
		for s := w.head + 1; s <= c; s++ {
			w.total -= int64(w.all[s%ring])
			w.all[s%ring] = 0
			w.pending[s%ring] = 0
			w.known[s%ring] = 0
		}
	}
	w.head, w.headAt = c, c*w.slotLen
}

// used returns the window's count at now (slot c, offset off into it):
// the newest Slots slots in full, and the oldest weighted by the part of
// it still inside the window, rounded up.
func (w *window) used(off int64) int64 {
	n := w.all[(w.head+1)%ring] // the oldest slot: head-Slots
	sum := w.total - int64(n)
	if n != 0 {
		sum += int64(mulDivUp(uint64(n), uint64(w.slotLen-off), uint64(w.slotLen)))
	}
	return sum
}

// setSlot sets slot i of all to v, keeping total.
func (w *window) setSlot(i int64, v uint32) {
	w.total += int64(v) - int64(w.all[i])
	w.all[i] = v
}

// wait returns how long it takes, with no new requests, for the count
// used (at offset off into the newest slot) to drop by free.
func (w *window) wait(used, free, off int64) time.Duration {
	if free <= 0 {
		return 0
	}
	target := used - free
	if target < 0 {
		target = 0
	}
	// During the rest of the newest slot the oldest slot fades out; in
	// each later slot the next oldest does. Work in slot units, exactly
	// enough in float64 for a wait.
	sl := float64(w.slotLen)
	oldN := float64(w.all[(w.head+1)%ring])
	real := float64(used)
	if oldN != 0 {
		real = real - math.Ceil(oldN*float64(w.slotLen-off)/sl) + oldN*float64(w.slotLen-off)/sl
	}
	need := real - float64(target)
	// Segment 0: the oldest slot, (slotLen-off)/slotLen of it left.
	if oldN != 0 {
		left := oldN * float64(w.slotLen-off) / sl
		if need <= left {
			return ceilDuration(need / oldN * sl)
		}
		need -= left
	}
	elapsed := float64(w.slotLen - off)
	for m := int64(1); m <= Slots; m++ {
		n := float64(w.all[(w.head+1+m)%ring])
		if n != 0 {
			if need <= n {
				return ceilDuration(elapsed + need/n*sl)
			}
			need -= n
		}
		elapsed += sl
	}
	return ceilDuration(elapsed)
}

// nextFree returns when the oldest slot holding requests will have left
// the window, at offset off into the newest: by then at least one more
// request fits. (It is what Decision.Reset says of an admitted request:
// cheaper than wait, and never early.)
func (w *window) nextFree(off int64) time.Duration {
	until := w.slotLen - off
	for m := int64(0); m < ring; m++ {
		if w.all[(w.head+1+m)%ring] != 0 {
			return time.Duration(until)
		}
		until += w.slotLen
	}
	return 0
}

func ceilDuration(ns float64) time.Duration {
	if ns >= float64(math.MaxInt64) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(math.Ceil(ns))
}

// mulDivUp returns ⌈a×b/d⌉ for b ≤ d.
func mulDivUp(a, b, d uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	if hi == 0 { // the usual case: one 64-bit division
		q := lo / d
		if lo%d != 0 {
			q++
		}
		return q
	}
	q, r := bits.Div64(hi, lo, d)
	if r != 0 {
		q++
	}
	return q
}

// allow admits cost more requests at now when they fit, counts them, and
// says so in *d, which is zero (see Limiter.AllowMemoInto).
func (w *window) allow(d *Decision, now, cost int64, shared bool) {
	off := now - w.headAt
	if off >= w.slotLen { // a later slot: the only division
		w.advance(now / w.slotLen)
		off = now - w.headAt
	}
	if off < 0 || off >= w.slotLen {
		off = 0 // now was before head (see advance)
	}
	used := w.used(off) + w.predicted(now)
	if shared {
		w.demand++
	}
	d.Limit = w.cap
	if used+cost > w.cap {
		d.Remaining = max(0, w.cap-used)
		d.RetryAfter = w.wait(used, used+cost-w.cap, off)
		d.Reset = d.RetryAfter
		return
	}
	i := w.head % ring
	w.setSlot(i, addSat(w.all[i], cost))
	if shared {
		w.pending[i] = addSat(w.pending[i], cost)
		w.since += cost
		used += int64(math.Ceil(float64(cost) * (w.shareAt(now) - 1)))
	}
	used += cost
	d.Allowed = true
	d.Remaining = w.cap - used
	d.Reset = w.nextFree(off)
	d.ticket = Ticket{w, w.head, cost}
}

// refund takes back what allow counted for d, if its slot is still live.
func (w *window) refund(slot, cost int64) {
	if slot > w.head || slot <= w.head-ring {
		return
	}
	i := slot % ring
	w.setSlot(i, subSat(w.all[i], cost))
	w.pending[i] = subSat(w.pending[i], cost)
}

func addSat(v uint32, n int64) uint32 {
	s := int64(v) + n
	if s > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(s)
}

func subSat(v uint32, n int64) uint32 {
	if int64(v) <= n {
		return 0
	}
	return uint32(int64(v) - n)
}

// idle reports whether every slot of the window has expired by now.
func (w *window) idle(now int64) bool {
	return now/w.slotLen-w.head >= ring
}

// Decision is the outcome of Limiter.Allow.
type Decision struct {
	// Allowed reports whether the request fits; it was counted then.
	Allowed bool
	// Limit is the window's capacity (the policy's quota).
	Limit int64
	// Remaining is how many more requests fit now.
	Remaining int64
	// Reset is how long until one more request fits (0 when the window
	// is empty; when denied, RetryAfter).
	Reset time.Duration
	// RetryAfter is, when denied, how long until this request would fit.
	RetryAfter time.Duration

	ticket Ticket
}

// Ticket returns what Limiter.Refund needs to take back what d counted
// (nothing, when d did not allow).
func (d *Decision) Ticket() Ticket { return d.ticket }

// A Ticket names the requests an allowing Decision counted.
type Ticket struct {
	w          *window
	slot, cost int64
}
