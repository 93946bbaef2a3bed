// Package throttle counts failed attempts — a bad API key from one client
// address, a wrong password for one identity — and says when a key (the
// address, the identity) has failed too often, so that further attempts are
// refused (429 with Retry-After) until it has waited.
//
// It knows nothing of HTTP or Caddy: callers pick the keys and map a
// refusal to their answer.
//
// # Policy
//
// A key is blocked once Limit failures fall within one Window (a sliding
// window, estimated from two fixed buckets as rate limiters do: the current
// bucket's count plus the previous one's, weighted by how much of it still
// lies in the window). A block lasts Backoff after the latest failure, and
// doubles with each failure beyond Limit, up to MaxBackoff (at most the
// Window): an attempt made after the block ended that fails again is
// blocked twice as long. A block is a function of the count and the time
// of the latest failure alone, so every instance of a fleet that knows the
// same counts reaches the same verdict.
// A refused attempt is not a failure unless the caller records it with
// Fail (the gateway does: a client that ignores Retry-After waits longer).
//
// # Two ways to use it
//
// A caller that must stay off any network round trip (the gateway, which
// consults the throttle only when a key failed, so a valid key never pays
// for it) records failures with Fail and answers 429 when the verdict says
// the key was already blocked:
//
//	v, _ := byAddress.Fail(ctx, addr)
//	if v.Refused {
//		// 429, Retry-After: v.RetryAfter
//	}
//
// A caller that may wait for a round trip (sign-in, where a password must
// not even be checked while its identity is blocked) asks first, and
// records the outcome:
//
//	if v, _ := byAddress.Check(ctx, addr); v.Refused { /* 429 */ }
//	if v, _ := byIdentity.Check(ctx, id); v.Refused { /* 429 */ }
//	// Count the attempt before checking the password, so that attempts
//	// in parallel cannot all pass the checks above.
//	v, _ := byIdentity.Fail(ctx, id)
//	if v.Refused { /* 429: the limit was reached meanwhile */ }
//	if passwordOK {
//		byIdentity.Clear(ctx, id) // a success clears the identity's count
//	} else if checkFailed {
//		byIdentity.Undo(ctx, id, v.At) // no outcome: take the count back
//	}
//
// (sign-in: New(Policy{Limit: 5, Window: 15 * time.Minute, ...}) per
// identity, Limit 50 per address).
//
// # A fleet
//
// With Options.Shared (the Redis store meets the interface), the counts are
// the fleet's. With Options.SyncEvery > 0 every call stays in process and a
// background loop exchanges the counts with Shared every SyncEvery: it
// sends the failures this instance counted since the last exchange and
// learns the fleet's totals of those keys, so a key blocked anywhere is
// blocked on an instance within one interval of failing there; Shared
// being down only makes the counts local until it is back.
// With SyncEvery == 0 every call is one round trip to Shared, and the
// counts are exact across the fleet; when Shared fails, the call falls back
// to this process's counts and returns the error beside its verdict.
//
// Memory is bounded: at most Options.MaxKeys keys are tracked in process
// (the entries that matter least — expired, else the oldest seen by a
// random probe — make room), so a flood of addresses cannot exhaust it.
package throttle

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"net/netip"
	"sync"
	"time"
)

// Policy says when a key is blocked and for how long.
type Policy struct {
	// Limit is the number of failures within Window after which a key is
	// blocked. Required (> 0).
	Limit int64
	// Window is the sliding window failures are counted in. Required.
	Window time.Duration
	// Backoff is how long the first block lasts, from the failure that
	// caused it; each further failure doubles it. Default: 1s.
	Backoff time.Duration
	// MaxBackoff caps a block; it is at most Window. Default: Window.
	MaxBackoff time.Duration
}

// Verdict is what the throttle says about one key.
type Verdict struct {
	// Refused is true when the key is blocked: for Check, now; for Fail,
	// already when the failure came in (the attempt itself is to be
	// refused).
	Refused bool
	// RetryAfter is how long the key stays blocked from now, in whole
	// seconds rounded up (0 when it is not blocked). After Fail it counts
	// the failure just recorded.
	RetryAfter time.Duration
	// Failures is the estimated number of failures in the window.
	Failures int64
	// At is when Fail counted the failure (for Undo).
	At time.Time
}

// Add is one key's failures to add to the fleet's counts, in bucket Bucket
// (N may be 0 to only read the counts, and negative to take back failures
// counted before, which leaves Last as it is and no count below zero).
type Add struct {
	Key    string
	Bucket int64
	N      int64
}

// Counts are the fleet's counts of one key after an Add.
type Counts struct {
	// Current and Previous are the failures in the Add's bucket and in the
	// one before it, the Add included.
	Current, Previous int64
	// Last is the latest failure recorded before the Add (zero: none).
	Last time.Time
}

// Shared keeps the fleet's counts. Scope names the limiter whose keys
// they are (different limiters never share counts). Implementations keep
// a key's counts for at least ttl after its last failure, and need not
// store the key itself (the Redis store keeps a digest of it).
type Shared interface {
	// AddFailures applies adds and returns, in the same order, each key's
	// counts after its add, in one round trip.
	AddFailures(ctx context.Context, scope string, ttl time.Duration, adds []Add, now time.Time) ([]Counts, error)
	// ClearFailures forgets the counts of keys.
	ClearFailures(ctx context.Context, scope string, keys []string) error
}

// Options configures a Limiter beyond its Policy.
type Options struct {
	// Shared, when set, holds the fleet's counts. Default: none (this
	// process only).
	Shared Shared
	// Scope names this limiter's counts in Shared ("gateway.address",
	// "signin.identity"). Required with Shared.
	Scope string
	// SyncEvery, when > 0, keeps every call in process and exchanges
	// counts with Shared in the background at this interval; 0 makes each
	// call a round trip to Shared. Ignored without Shared. Default: 0.
	SyncEvery time.Duration
	// MaxKeys bounds the keys tracked in process. Default: 100,000.
	MaxKeys int
	// Now is the clock. Default: time.Now.
	Now func() time.Time
	// OnSyncError is told of each failed background exchange. Default:
	// ignored (the counts stay local until the next exchange works).
	OnSyncError func(error)
}

// Limiter is a failure throttle over keys. It is safe for concurrent use.
type Limiter struct {
	policy  Policy
	shared  Shared
	scope   string
	syncs   bool // background exchange (SyncEvery > 0)
	now     func() time.Time
	onErr   func(error)
	perShrd int // entries per shard
	ttl     time.Duration
	shards  [shardCount]shard
	seed    maphash.Seed

	clearMu sync.Mutex
	clears  []string // keys to clear in Shared at the next exchange

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

const shardCount = 64

type shard struct {
	mu sync.Mutex
	m  map[string]*entry
}

// entry is what this process knows of one key.
type entry struct {
	bucket    int64     // the bucket cur counts
	cur, prev int64     // failures in bucket and bucket-1 (the fleet's as last learned, plus local ones since)
	last      time.Time // latest failure
	pend      int64     // local failures of pendBucket not yet sent to Shared
	pendB     int64
	pendOld   int64 // local failures of pendB-1 not yet sent (a bucket rolled before an exchange)
}

// New makes a Limiter. Close it to stop its background exchange.
func New(p Policy, o Options) (*Limiter, error) {
	if p.Limit <= 0 || p.Window <= 0 {
		return nil, errors.New("throttle: policy needs a limit and a window")
	}
	if p.Backoff <= 0 {
		p.Backoff = time.Second
	}
	if p.MaxBackoff <= 0 || p.MaxBackoff > p.Window {
		p.MaxBackoff = p.Window
	}
	if p.Backoff > p.MaxBackoff {
		p.Backoff = p.MaxBackoff
	}
	if o.Shared != nil && o.Scope == "" {
		return nil, errors.New("throttle: a shared limiter needs a scope")
	}
	if o.MaxKeys <= 0 {
		o.MaxKeys = 100_000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.OnSyncError == nil {
		o.OnSyncError = func(error) {}
	}
	l := &Limiter{
		policy: p, shared: o.Shared, scope: o.Scope, now: o.Now, onErr: o.OnSyncError,
		syncs:   o.Shared != nil && o.SyncEvery > 0,
		perShrd: max(1, o.MaxKeys/shardCount),
		// A key matters while its failures are in the window (a block
		// never lasts longer).
		ttl:  2 * p.Window,
		seed: maphash.MakeSeed(),
	}
	for i := range l.shards {
		l.shards[i].m = map[string]*entry{}
	}
	if l.syncs {
		l.stop, l.done = make(chan struct{}), make(chan struct{})
		go l.loop(o.SyncEvery)
	}
	return l, nil
}

// Policy returns the limiter's policy, defaults filled in.
func (l *Limiter) Policy() Policy { return l.policy }

// Close stops the background exchange (a last one is not made). Calls
// after Close keep working in process.
func (l *Limiter) Close() {
	l.once.Do(func() {
		if l.stop != nil {
			close(l.stop)
			<-l.done
		}
	})
}

func (l *Limiter) bucketOf(t time.Time) int64 { return t.UnixNano() / int64(l.policy.Window) }

// estimate is the sliding-window count of e at now (its buckets rolled).
func (l *Limiter) estimate(e *entry, now time.Time) int64 {
	start := time.Unix(0, e.bucket*int64(l.policy.Window))
	frac := float64(now.Sub(start)) / float64(l.policy.Window)
	if frac < 0 {
		frac = 0
	} else if frac > 1 {
		frac = 1
	}
	return e.cur + int64(math.Ceil(float64(e.prev)*(1-frac)))
}

// roll moves e's buckets to the one holding now.
func (l *Limiter) roll(e *entry, now time.Time) {
	b := l.bucketOf(now)
	switch {
	case b == e.bucket:
	case b == e.bucket+1:
		e.prev, e.cur, e.bucket = e.cur, 0, b
	case b > e.bucket:
		e.prev, e.cur, e.bucket = 0, 0, b
	}
}

// until returns when e's block ends as of now (zero: not blocked): Backoff
// after its latest failure once its count reaches Limit, doubled for each
// failure beyond, at most MaxBackoff.
func (l *Limiter) until(e *entry, now time.Time) time.Time {
	n := l.estimate(e, now)
	if n < l.policy.Limit || e.last.IsZero() {
		return time.Time{}
	}
	d := l.policy.Backoff
	for k := n - l.policy.Limit; k > 0 && d < l.policy.MaxBackoff; k-- {
		d *= 2
	}
	return e.last.Add(min(d, l.policy.MaxBackoff))
}

// blocked reports whether e is blocked at now.
func (l *Limiter) blocked(e *entry, now time.Time) bool { return now.Before(l.until(e, now)) }

func (l *Limiter) verdict(e *entry, now time.Time, refused bool) Verdict {
	v := Verdict{Refused: refused, Failures: l.estimate(e, now)}
	if u := l.until(e, now); now.Before(u) {
		v.RetryAfter = roundUp(u.Sub(now))
	}
	return v
}

// roundUp rounds d up to whole seconds, at least one.
func roundUp(d time.Duration) time.Duration {
	s := (d + time.Second - 1) / time.Second
	return max(s, 1) * time.Second
}

func (l *Limiter) shardOf(key string) *shard {
	return &l.shards[maphash.String(l.seed, key)%shardCount]
}

// Check reports whether key is blocked now. It records nothing. Without
// background exchange and with Shared, it reads the fleet's counts (one
// round trip); the error is Shared's, the verdict then from this process.
func (l *Limiter) Check(ctx context.Context, key string) (Verdict, error) {
	if l.shared != nil && !l.syncs {
		return l.roundTrip(ctx, key, 0)
	}
	return l.checkLocal(key, l.now()), nil
}

func (l *Limiter) checkLocal(key string, now time.Time) Verdict {
	sh := l.shardOf(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.m[key]
	if e == nil {
		return Verdict{}
	}
	l.roll(e, now)
	return l.verdict(e, now, l.blocked(e, now))
}

// Fail records one failure of key and returns the verdict: Refused when
// key was already blocked as the failure came in, RetryAfter counting the
// failure. Without background exchange and with Shared it is one round
// trip; the error is Shared's, the failure then counted in this process.
func (l *Limiter) Fail(ctx context.Context, key string) (Verdict, error) {
	if l.shared != nil && !l.syncs {
		return l.roundTrip(ctx, key, 1)
	}
	now := l.now()
	v, _ := l.failLocal(key, now, l.syncs)
	v.At = now
	return v, nil
}

// Undo takes back one failure of key that Fail counted at at (its
// Verdict.At): a caller that counts an attempt as failed before its
// outcome is known — so that parallel attempts cannot all pass a check
// made before any of them failed — undoes it when the attempt did not
// fail after all. The time of the latest failure stays.
func (l *Limiter) Undo(ctx context.Context, key string, at time.Time) error {
	b := l.bucketOf(at)
	sh := l.shardOf(key)
	sh.mu.Lock()
	if e := sh.m[key]; e != nil {
		l.roll(e, l.now())
		switch {
		case e.bucket == b && e.cur > 0:
			e.cur--
		case e.bucket == b+1 && e.prev > 0:
			e.prev--
		}
		switch {
		case e.pend > 0 && e.pendB == b:
			e.pend--
		case e.pendOld > 0 && e.pendB == b+1:
			e.pendOld--
		}
	}
	sh.mu.Unlock()
	if l.shared == nil || l.syncs {
		return nil
	}
	_, err := l.shared.AddFailures(ctx, l.scope, l.ttl, []Add{{Key: key, Bucket: b, N: -1}}, l.now())
	return err
}

// failLocal counts a failure of key at now in process; pend says whether
// it is still to be sent to Shared.
func (l *Limiter) failLocal(key string, now time.Time, pend bool) (Verdict, *entry) {
	sh := l.shardOf(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.get(l, key, now)
	l.roll(e, now)
	refused := l.blocked(e, now)
	e.cur++
	if pend {
		if e.pend > 0 && e.pendB != e.bucket {
			e.pendOld, e.pend = e.pend, 0
		}
		e.pendB = e.bucket
		e.pend++
	}
	if now.After(e.last) {
		e.last = now
	}
	return l.verdict(e, now, refused), e
}

// get returns key's entry, making room for it if the shard is full.
func (sh *shard) get(l *Limiter, key string, now time.Time) *entry {
	if e := sh.m[key]; e != nil {
		return e
	}
	if len(sh.m) >= l.perShrd {
		sh.evict(l, now)
	}
	e := &entry{bucket: l.bucketOf(now)}
	sh.m[key] = e
	return e
}

// evict drops expired entries, or else the stalest of a few random ones
// (map order is random), keeping any with unsent counts when it can.
func (sh *shard) evict(l *Limiter, now time.Time) {
	var victim string
	var oldest time.Time
	probed := 0
	for k, e := range sh.m {
		if l.expired(e, now) {
			delete(sh.m, k)
			return
		}
		if victim == "" || (e.pend == 0 && e.last.Before(oldest)) {
			victim, oldest = k, e.last
		}
		if probed++; probed >= 8 {
			break
		}
	}
	delete(sh.m, victim)
}

func (l *Limiter) expired(e *entry, now time.Time) bool {
	return e.pend == 0 && e.pendOld == 0 && now.Sub(e.last) >= 2*l.policy.Window
}

// Clear forgets key's failures (a success). Without background exchange
// and with Shared it is one round trip; with it, the fleet forgets at the
// next exchange.
func (l *Limiter) Clear(ctx context.Context, key string) error {
	sh := l.shardOf(key)
	sh.mu.Lock()
	delete(sh.m, key)
	sh.mu.Unlock()
	switch {
	case l.shared == nil:
		return nil
	case l.syncs:
		l.clearMu.Lock()
		l.clears = append(l.clears, key)
		l.clearMu.Unlock()
		return nil
	}
	return l.shared.ClearFailures(ctx, l.scope, []string{key})
}

// roundTrip adds n failures of key to the fleet's counts and returns the
// verdict from them; on a Shared error it counts in process instead.
func (l *Limiter) roundTrip(ctx context.Context, key string, n int64) (Verdict, error) {
	now := l.now()
	b := l.bucketOf(now)
	counts, err := l.shared.AddFailures(ctx, l.scope, l.ttl, []Add{{Key: key, Bucket: b, N: n}}, now)
	if err == nil && len(counts) != 1 {
		err = fmt.Errorf("throttle: shared store answered %d counts for 1 key", len(counts))
	}
	if err != nil {
		if n == 0 {
			return l.checkLocal(key, now), err
		}
		v, _ := l.failLocal(key, now, false)
		v.At = now
		return v, err
	}
	c := counts[0]
	// Before the add: refused or not; after it: how long.
	before := &entry{bucket: b, cur: c.Current - n, prev: c.Previous, last: c.Last}
	after := &entry{bucket: b, cur: c.Current, prev: c.Previous, last: c.Last}
	if n > 0 && now.After(after.last) {
		after.last = now
	}
	v := l.verdict(after, now, l.blocked(before, now))
	v.At = now
	return v, nil
}

// loop exchanges counts with Shared every interval until Close.
func (l *Limiter) loop(every time.Duration) {
	defer close(l.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), every+time.Second)
			if err := l.Sync(ctx); err != nil {
				l.onErr(err)
			}
			cancel()
		}
	}
}

// pending is one key's counts taken for an exchange.
type pending struct {
	key string
	e   *entry
	add []Add
}

// Sync makes one exchange with Shared now: it sends the failures counted
// here since the last one and learns the fleet's counts of those keys (the
// background loop calls it; tests may too). Failures it could not send are
// kept for the next exchange.
func (l *Limiter) Sync(ctx context.Context) error {
	if l.shared == nil {
		return nil
	}
	l.clearMu.Lock()
	clears := l.clears
	l.clears = nil
	l.clearMu.Unlock()
	var errs []error
	if len(clears) > 0 {
		if err := l.shared.ClearFailures(ctx, l.scope, clears); err != nil {
			errs = append(errs, err)
		}
	}
	now := l.now()
	var batch []pending
	var adds []Add
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		for k, e := range sh.m {
			if l.expired(e, now) {
				delete(sh.m, k)
				continue
			}
			if e.pend == 0 && e.pendOld == 0 {
				continue
			}
			p := pending{key: k, e: e}
			if e.pendOld > 0 {
				p.add = append(p.add, Add{Key: k, Bucket: e.pendB - 1, N: e.pendOld})
			}
			if e.pend > 0 {
				p.add = append(p.add, Add{Key: k, Bucket: e.pendB, N: e.pend})
			}
			e.pend, e.pendOld = 0, 0
			batch = append(batch, p)
			adds = append(adds, p.add...)
		}
		sh.mu.Unlock()
	}
	if len(adds) == 0 {
		return errors.Join(errs...)
	}
	counts, err := l.shared.AddFailures(ctx, l.scope, l.ttl, adds, now)
	if err == nil && len(counts) != len(adds) {
		err = fmt.Errorf("throttle: shared store answered %d counts for %d keys", len(counts), len(adds))
	}
	if err != nil {
		// Keep the counts for the next exchange.
		for _, p := range batch {
			sh := l.shardOf(p.key)
			sh.mu.Lock()
			for _, a := range p.add {
				switch a.Bucket {
				case p.e.pendB:
					p.e.pend += a.N
				default:
					p.e.pendOld += a.N
				}
			}
			sh.mu.Unlock()
		}
		return errors.Join(append(errs, err)...)
	}
	i := 0
	for _, p := range batch {
		c := counts[i+len(p.add)-1] // the latest bucket's answer
		b := p.add[len(p.add)-1].Bucket
		i += len(p.add)
		sh := l.shardOf(p.key)
		sh.mu.Lock()
		e := p.e
		now := l.now()
		l.roll(e, now)
		switch e.bucket {
		case b:
			// The fleet's counts, plus what this process counted since
			// it sent its own.
			unsent := e.pend
			if e.pendB != b {
				unsent = 0
			}
			e.cur = max(e.cur, c.Current+unsent)
			e.prev = max(e.prev, c.Previous)
		case b + 1:
			e.prev = max(e.prev, c.Current)
		}
		if c.Last.After(e.last) {
			e.last = c.Last
		}
		sh.mu.Unlock()
	}
	return errors.Join(errs...)
}

// Len returns the number of keys tracked in process.
func (l *Limiter) Len() int {
	n := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

// AddrKey is the key a client address counts under: an IPv6 address by
// its /64 (one host, or one customer of a provider, usually holds a whole
// /64, and walking it costs nothing), an IPv4 address (also one mapped in
// IPv6) as it is; anything else as it is written.
func AddrKey(addr string) string {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	a = a.Unmap()
	if a.Is6() {
		return netip.PrefixFrom(a.WithZone(""), 64).Masked().String()
	}
	return a.String()
}
