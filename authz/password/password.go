// Package password hashes and checks passwords: argon2id hashes in PHC
// string form (the parameters travel with each hash, so they can be
// raised and old hashes upgraded on the next sign-in), a bounded pool that
// every hash runs in, and the password policy (after NIST SP 800-63B). It knows nothing of users, stores or Caddy.
package password

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apiusers/apiusers/authz/password/internal/argon2"
)

// Params are argon2id's cost parameters.
type Params struct {
	// Memory in KiB. Default: 19456 (19 MiB, OWASP's minimum for argon2id).
	Memory uint32
	// Time is the number of passes. Default: 2 (OWASP's minimum with 19 MiB).
	Time uint32
	// Threads is the parallelism. Default: 1.
	Threads uint8
}

// DefaultParams are the parameters new hashes get: OWASP's recommended
// minimum for argon2id (m=19 MiB, t=2, p=1), which costs a few tens of
// milliseconds on one core.
var DefaultParams = Params{Memory: 19 * 1024, Time: 2, Threads: 1}

// MinParams is the floor: a Hasher refuses weaker parameters.
var MinParams = DefaultParams

const (
	saltLen = 16
	keyLen  = 32
)

// ErrBusy is returned when the pool's queue is full: the caller should
// answer 503 with Retry-After rather than wait.
var ErrBusy = errors.New("password hashing is busy")

// ErrMalformed is returned by Verify for a stored hash it cannot read.
var ErrMalformed = errors.New("malformed password hash")

// Hasher hashes and verifies passwords in a fixed pool: at most Workers
// hashes run at once, at most Queue callers wait for one, and any more
// are refused with ErrBusy at once. On top of that, hashing spends CPU
// time from a bucket: it may take Burst of CPU time at once, refilled at
// Budget of the machine's CPUs; when the bucket is empty the next hash
// waits for it. A caller waits at most MaxWait in all, for a worker and
// for the budget: when its hash could not start by then it is refused
// with ErrBusy (at once when the budget alone would take longer).
//
// A hash runs wholly on one OS thread, and the bucket is charged that
// thread's CPU time, user and system (on Linux; elsewhere the wall time).
// Each worker keeps its hash memory (Params.Memory) between hashes and
// drops it after a minute without one, so that hashing makes no garbage of
// its size for the collector to chase. So a burst of sign-ins runs at full
// speed, and a sustained flood costs the rest of the process (the gateway)
// about Budget of the machine in hashing.
type Hasher struct {
	params   Params
	slots    chan *worker  // the idle workers; a running hash holds one
	queue    chan struct{} // one token per waiting caller
	keepIdle time.Duration // how long an idle worker keeps its memory
	dummy    string        // a hash of nothing anyone knows (see VerifyDummy)
	once     sync.Once
	burst    time.Duration // the bucket's size
	maxWait  time.Duration

	mu     sync.Mutex
	budget float64       // Config.Budget
	rate   float64       // CPU seconds the bucket gains per second
	avail  time.Duration // CPU time in the bucket as of at (may be negative: owed)
	at     time.Time
	now    func() time.Time
}

// worker is one place in the pool: the argon2 memory of the hash it runs,
// kept between hashes and dropped after keepIdle without one (a timer
// that owns mu while it drops it).
type worker struct {
	mu   sync.Mutex
	buf  argon2.Buffer
	idle *time.Timer
}

// keepIdle is how long a worker keeps its memory after its last hash.
const keepIdle = time.Minute

// Config configures a Hasher.
type Config struct {
	// Params of new hashes. Default: DefaultParams; weaker ones than
	// MinParams are refused.
	Params Params
	// Workers is how many hashes may run at once. Default: half the
	// CPUs, at least one.
	Workers int
	// Queue is how many callers may wait for a worker. Default: 64.
	Queue int
	// Budget is the share of the machine's CPUs that hashing may take on
	// average, MinBudget <= Budget <= 1 (else the default). Default: 0.025 (on 2 CPUs, two or three
	// sign-ins a second once Burst is spent): low, because a sustained
	// flood of wrong sign-ins takes Budget of the machine from the rest of
	// the process, on top of what receiving and answering the flood's
	// requests costs (see the README's People section).
	Budget float64
	// Burst is how much CPU time hashing may take at once before Budget
	// holds it back. Default: 1s (about fifty sign-ins at once).
	Burst time.Duration
	// MaxWait is the longest a hash waits to start, for a worker and for
	// the budget together; beyond, ErrBusy. Default: 5s.
	MaxWait time.Duration
}

// DefaultBudget is Config.Budget's default; MinBudget the least SetBudget
// takes (at 0.1%, a spent burst of 1s takes about eight minutes to come
// back on 2 CPUs).
const (
	DefaultBudget = 0.025
	MinBudget     = 0.001
)

// SetBudget changes the share of the machine's CPUs hashing may take on
// average (Config.Budget), MinBudget <= budget <= 1, from now on; what the
// bucket holds stays.
func (h *Hasher) SetBudget(budget float64) error {
	if !(budget >= MinBudget && budget <= 1) {
		return fmt.Errorf("password hashing budget %v: want at least %v and at most 1", budget, MinBudget)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.refill()
	h.budget, h.rate = budget, budget*float64(runtime.GOMAXPROCS(0))
	return nil
}

// Budget returns the share of the machine's CPUs hashing may take on
// average.
func (h *Hasher) Budget() float64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.budget
}

// New makes a Hasher.
func New(cfg Config) (*Hasher, error) {
	p := cfg.Params
	if p == (Params{}) {
		p = DefaultParams
	}
	if p.Threads == 0 {
		p.Threads = 1
	}
	if p.Memory < MinParams.Memory || p.Time < MinParams.Time {
		return nil, fmt.Errorf("argon2id parameters m=%d,t=%d are below the minimum m=%d,t=%d",
			p.Memory, p.Time, MinParams.Memory, MinParams.Time)
	}
	w := cfg.Workers
	if w <= 0 {
		w = max(1, runtime.GOMAXPROCS(0)/2)
	}
	q := cfg.Queue
	if q <= 0 {
		q = 64
	}
	if cfg.Budget < MinBudget || cfg.Budget > 1 {
		cfg.Budget = DefaultBudget
	}
	if cfg.Burst <= 0 {
		cfg.Burst = time.Second
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 5 * time.Second
	}
	h := &Hasher{params: p, slots: make(chan *worker, w), queue: make(chan struct{}, q), keepIdle: keepIdle,
		budget: cfg.Budget, rate: cfg.Budget * float64(runtime.GOMAXPROCS(0)), burst: cfg.Burst, maxWait: cfg.MaxWait,
		avail: cfg.Burst, at: time.Now(), now: time.Now}
	for range w {
		h.slots <- new(worker)
	}
	return h, nil
}

// refill adds to the bucket what it gained since it was last filled.
// h.mu is held.
func (h *Hasher) refill() {
	now := h.now()
	h.avail = min(h.burst, h.avail+time.Duration(float64(now.Sub(h.at))*h.rate))
	h.at = now
}

// take waits until the bucket holds CPU time, or refuses with ErrBusy
// when that would take longer than limit.
func (h *Hasher) take(ctx context.Context, limit time.Duration) error {
	h.mu.Lock()
	h.refill()
	var wait float64 // nanoseconds
	if h.avail <= 0 {
		wait = float64(-h.avail)/h.rate + float64(time.Millisecond)
	}
	h.mu.Unlock()
	if wait == 0 {
		return nil
	}
	if wait > float64(limit) {
		return ErrBusy
	}
	t := time.NewTimer(time.Duration(wait))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// spend takes d of CPU time out of the bucket.
func (h *Hasher) spend(d time.Duration) {
	h.mu.Lock()
	h.avail -= d
	h.mu.Unlock()
}

// Params returns the parameters new hashes get.
func (h *Hasher) Params() Params { return h.params }

// run runs fn in the pool, with the worker's memory for a hash of up to
// the Hasher's Params.Memory (for a larger one, fn gets nil and the hash
// allocates its own).
func (h *Hasher) run(ctx context.Context, fn func(buf *argon2.Buffer)) error {
	select {
	case h.queue <- struct{}{}:
	default:
		return ErrBusy
	}
	defer func() { <-h.queue }()
	start := time.Now()
	var w *worker
	select {
	case w = <-h.slots:
	default:
		t := time.NewTimer(h.maxWait)
		select {
		case w = <-h.slots:
			t.Stop()
		case <-t.C:
			return ErrBusy
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	defer func() { h.slots <- w }()
	if err := h.take(ctx, h.maxWait-time.Since(start)); err != nil {
		return err
	}
	if w.idle != nil {
		w.idle.Stop()
	}
	w.mu.Lock()
	h.spend(cpuTime(func() { fn(&w.buf) }))
	kept := w.buf.Size() > 0
	w.mu.Unlock()
	if kept {
		if w.idle == nil {
			w.idle = time.AfterFunc(h.keepIdle, w.release)
		} else {
			w.idle.Reset(h.keepIdle)
		}
	}
	return nil
}

// release drops the worker's memory (its idle timer's function).
func (w *worker) release() {
	w.mu.Lock()
	w.buf.Release()
	w.mu.Unlock()
}

// buffer is buf when a hash of memory KiB fits the Hasher's parameters,
// else nil: a stored hash with more memory than new ones get (parameters
// lowered since) is verified in memory of its own, not kept.
func (h *Hasher) buffer(buf *argon2.Buffer, memory uint32) *argon2.Buffer {
	if memory > h.params.Memory {
		return nil
	}
	return buf
}

// CheckPolicy runs Check in the pool, on the CPU budget, as a hash runs:
// the strength estimate costs up to tens of milliseconds for a long
// password, so a flood of candidate passwords is held back like a flood
// of sign-ins. It returns Check's *PolicyError, or ErrBusy (or the
// context's error) when the pool or the budget refuses.
func (h *Hasher) CheckPolicy(ctx context.Context, pw string, personal ...string) error {
	var perr error
	if err := h.run(ctx, func(*argon2.Buffer) { perr = Check(pw, personal...) }); err != nil {
		return err
	}
	return perr
}

// Hash returns the PHC string of an argon2id hash of pw with a fresh salt:
// $argon2id$v=19$m=<KiB>,t=<passes>,p=<threads>$<salt>$<hash>.
func (h *Hasher) Hash(ctx context.Context, pw string) (string, error) {
	var salt [saltLen]byte
	if _, err := rand.Read(salt[:]); err != nil {
		return "", fmt.Errorf("reading salt: %w", err)
	}
	var key []byte
	p := h.params
	if err := h.run(ctx, func(buf *argon2.Buffer) {
		key = argon2.IDKey(h.buffer(buf, p.Memory), []byte(pw), salt[:], p.Time, p.Memory, p.Threads, keyLen)
	}); err != nil {
		return "", err
	}
	return encode(p, salt[:], key), nil
}

func encode(p Params, salt, key []byte) string {
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key))
}

// decoded is a parsed PHC string.
type decoded struct {
	p         Params
	salt, key []byte
}

func decode(phc string) (decoded, error) {
	var d decoded
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return d, ErrMalformed
	}
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if !ok || err != nil || n == 0 {
			return d, ErrMalformed
		}
		switch k {
		case "m":
			d.p.Memory = uint32(n)
		case "t":
			d.p.Time = uint32(n)
		case "p":
			if n > 255 {
				return d, ErrMalformed
			}
			d.p.Threads = uint8(n)
		default:
			return d, ErrMalformed
		}
	}
	// Bounds against a stored hash that would make Verify run for ever.
	if d.p.Memory == 0 || d.p.Time == 0 || d.p.Threads == 0 || d.p.Memory > 4<<20 || d.p.Time > 100 {
		return d, ErrMalformed
	}
	var err error
	b64 := base64.RawStdEncoding
	if d.salt, err = b64.DecodeString(parts[4]); err != nil || len(d.salt) < 8 {
		return d, ErrMalformed
	}
	if d.key, err = b64.DecodeString(parts[5]); err != nil || len(d.key) < 16 || len(d.key) > 128 {
		return d, ErrMalformed
	}
	return d, nil
}

// Verify reports whether pw matches the PHC string phc (compared in
// constant time), and whether phc was made with other parameters than
// the Hasher's, so that the caller rehashes pw after a successful check.
func (h *Hasher) Verify(ctx context.Context, pw, phc string) (ok, rehash bool, err error) {
	d, err := decode(phc)
	if err != nil {
		return false, false, err
	}
	var key []byte
	if err := h.run(ctx, func(buf *argon2.Buffer) {
		key = argon2.IDKey(h.buffer(buf, d.p.Memory), []byte(pw), d.salt, d.p.Time, d.p.Memory, d.p.Threads, uint32(len(d.key)))
	}); err != nil {
		return false, false, err
	}
	if subtle.ConstantTimeCompare(key, d.key) != 1 {
		return false, false, nil
	}
	return true, d.p != h.params || len(d.salt) != saltLen || len(d.key) != keyLen, nil
}

// VerifyDummy costs what Verify costs and always fails: the caller runs it
// for an unknown identity, so that a wrong password and an unknown user
// answer in the same time.
func (h *Hasher) VerifyDummy(ctx context.Context, pw string) error {
	h.once.Do(func() {
		var salt, key [32]byte
		_, _ = rand.Read(salt[:saltLen])
		_, _ = rand.Read(key[:])
		h.dummy = encode(h.params, salt[:saltLen], key[:keyLen])
	})
	_, _, err := h.Verify(ctx, pw, h.dummy)
	return err
}
