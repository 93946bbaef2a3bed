// Package password hashes and checks passwords: argon2id hashes in PHC
// string form (the parameters travel with each hash, so they can be
// raised and old hashes upgraded on the next sign-in), a bounded pool that
// every hash runs in, and the password policy (SPEC §6, after NIST SP
// 800-63B). It knows nothing of users, stores or Caddy.
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

	"golang.org/x/crypto/argon2"
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
// are refused with ErrBusy at once. So a flood of sign-ins costs at most
// Workers cores and never starves the rest of the process.
type Hasher struct {
	params Params
	slots  chan struct{} // one token per running hash
	queue  chan struct{} // one token per waiting caller
	dummy  string        // a hash of nothing anyone knows (see VerifyDummy)
	once   sync.Once
}

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
	return &Hasher{params: p, slots: make(chan struct{}, w), queue: make(chan struct{}, q)}, nil
}

// Params returns the parameters new hashes get.
func (h *Hasher) Params() Params { return h.params }

// run runs fn in the pool.
func (h *Hasher) run(ctx context.Context, fn func()) error {
	select {
	case h.queue <- struct{}{}:
	default:
		return ErrBusy
	}
	defer func() { <-h.queue }()
	select {
	case h.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-h.slots }()
	fn()
	return nil
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
	if err := h.run(ctx, func() { key = argon2.IDKey([]byte(pw), salt[:], p.Time, p.Memory, p.Threads, keyLen) }); err != nil {
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
	if err := h.run(ctx, func() {
		key = argon2.IDKey([]byte(pw), d.salt, d.p.Time, d.p.Memory, d.p.Threads, uint32(len(d.key)))
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
