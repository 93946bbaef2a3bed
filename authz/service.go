package authz

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Service is the domain: it authenticates keys for the gateway and carries
// out admin operations with the who-may-manage-whom rules. It is safe for
// concurrent use.
type Service struct {
	store  Store
	signer *Signer
	cache  *Cache
	now    func() time.Time
	loads  singleflight.Group
	notify func(Change)

	touches     chan touch // last_used_at updates (see lastused.go)
	touchesDone chan struct{}
	touchMu     sync.RWMutex
	touchClosed bool
}

// Config configures a Service.
type Config struct {
	Store  Store
	Signer *Signer
	Cache  *Cache
	// Now is the clock. Default: time.Now.
	Now func() time.Time
	// Notify, when set, is called after every committed mutation with what
	// changed, after the local cache was invalidated (fleet-wide
	// invalidation hooks in here).
	Notify func(Change)
}

// Change says what a committed mutation touched, for cache invalidation.
type Change struct {
	// Origin names the instance that made the change, so it can skip its
	// own echo on a fleet-wide feed ("" when unknown).
	Origin    string
	Workspace string
	// Users whose principal changed. Empty with Workspace set means the whole
	// workspace.
	Users []string
}

// NewService makes a Service.
func NewService(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Signer == nil || cfg.Cache == nil {
		return nil, errors.New("service needs a store, a signer and a cache")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Service{store: cfg.Store, signer: cfg.Signer, cache: cfg.Cache, now: cfg.Now, notify: cfg.Notify}
	s.startTouches()
	return s, nil
}

// Signer returns the service's signer.
func (s *Service) Signer() *Signer { return s.signer }

// Cache returns the service's cache.
func (s *Service) Cache() *Cache { return s.cache }

// Store returns the service's store.
func (s *Service) Store() Store { return s.store }

// Errors of Authenticate. They are allocated once: the gateway's deny path
// does not allocate either.
var (
	ErrNoKey       = &Error{Kind: ErrUnauthenticated, Detail: "no API key"}
	ErrBadKey      = &Error{Kind: ErrUnauthenticated, Detail: "malformed API key"}
	ErrBadSig      = &Error{Kind: ErrUnauthenticated, Detail: "invalid API key signature"}
	ErrExpiredKey  = &Error{Kind: ErrUnauthenticated, Detail: "API key expired"}
	ErrRevokedKey  = &Error{Kind: ErrUnauthenticated, Detail: "unknown or revoked API key"}
	ErrInactive    = &Error{Kind: ErrUnauthenticated, Detail: "user is not active"}
	errUnavailable = &Error{Kind: ErrUnavailable, Detail: "authorization store unavailable"}
)

// Authenticate verifies key and returns the caller's principal and the key's
// claims. Errors wrap ErrUnauthenticated (401) or ErrUnavailable (503).
func (s *Service) Authenticate(ctx context.Context, key string) (*Principal, *Claims, error) {
	if key == "" {
		return nil, nil, ErrNoKey
	}
	v, ok := s.cache.verified(key)
	if !ok {
		cl, err := s.signer.Verify(key)
		if err != nil {
			if errors.Is(err, ErrKeyMalformed) {
				return nil, nil, ErrBadKey
			}
			return nil, nil, ErrBadSig
		}
		v = s.cache.setVerified(key, cl)
	}
	cl := &v.claims
	now := s.now()
	if cl.Expired(now) {
		return nil, nil, ErrExpiredKey
	}
	// The hot path: the key leads straight to its principal. Otherwise find
	// the principal (cache or store), check it, and link the key to it.
	p, ks, ok := s.cache.linked(v, now)
	if !ok {
		var epoch uint64
		var err error
		p, epoch, err = s.principal(ctx, cl.Workspace, cl.UserID, now)
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				return nil, nil, ErrRevokedKey
			}
			return nil, nil, err
		}
		if ks = p.keys[cl.KeyID]; ks == nil || p.Workspace != cl.Workspace {
			return nil, nil, ErrRevokedKey
		}
		if !p.Active() {
			return nil, nil, ErrInactive
		}
		s.cache.link(v, p, ks, epoch)
	}
	if !ks.liveAt(now) {
		return nil, nil, ErrRevokedKey
	}
	s.queueTouch(p, ks, cl, now)
	return p, cl, nil
}

// Principal returns the principal of user userID in ws, from the cache or
// with one store read (concurrent misses for one user share that read).
// Errors wrap ErrNotFound or ErrUnavailable.
func (s *Service) Principal(ctx context.Context, ws, userID string) (*Principal, error) {
	p, _, err := s.principal(ctx, ws, userID, s.now())
	return p, err
}

// noEpoch is an epoch no cache reaches: what principal returns with a
// principal that must not be linked to (a stale copy).
const noEpoch = ^uint64(0)

// loaded is the result of one store load: the principal and the cache
// epoch when the load started.
type loaded struct {
	p     *Principal
	start uint64
}

// principal returns the principal of userID, and the cache epoch as of
// which it is known to be current (see Cache.link).
//
// What it returns reflects every invalidation that happened before it was
// called: a load already in flight that began before one of them is not
// shared with this caller; it waits for a load of its own.
func (s *Service) principal(ctx context.Context, ws, userID string, now time.Time) (*Principal, uint64, error) {
	epoch := s.cache.begin()
	if p, ok := s.cache.principal(userID, now); ok {
		return p, epoch, nil
	}
	for {
		v, err, _ := s.loads.Do(userID, func() (any, error) {
			start := s.cache.begin()
			stamp := s.cache.stamp(ws, userID)
			loadedAt := s.now()
			rec, err := s.store.LoadPrincipal(context.WithoutCancel(ctx), ws, userID)
			if err != nil {
				return nil, err
			}
			p, err := BuildPrincipal(rec)
			if err != nil {
				return nil, Unavailable(err)
			}
			s.cache.store(p, start, loadedAt, stamp)
			return loaded{p, start}, nil
		})
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				return nil, 0, err
			}
			if p, ok := s.cache.stale(userID, now); ok {
				return p, noEpoch, nil
			}
			if errors.Is(err, ErrUnavailable) {
				return nil, 0, &Error{Kind: ErrUnavailable, Detail: errUnavailable.Detail}
			}
			return nil, 0, Unavailable(err)
		}
		l := v.(loaded)
		if l.start >= epoch {
			return l.p, l.start, nil
		}
		// The load began before something was invalidated. Go again: a
		// finished load has left the singleflight group, so the next Do
		// starts a load, or joins one, that began after this call did.
	}
}

// changed invalidates the local cache and tells the fleet.
func (s *Service) changed(c Change) {
	s.Apply(c)
	if s.notify != nil {
		s.notify(c)
	}
}

// Apply applies a change received from another instance to the local cache.
func (s *Service) Apply(c Change) {
	if len(c.Users) == 0 {
		s.cache.InvalidateWorkspace(c.Workspace)
	}
	for _, u := range c.Users {
		s.cache.InvalidateUser(u)
	}
}

var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// newID makes a time-ordered, random id with prefix ("usr_", "key_",
// "team_"): 48 bits of milliseconds then 80 random bits, so ids sort by
// creation time.
func newID(prefix string, now time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16)
	if _, err := rand.Read(b[6:]); err != nil {
		panic(fmt.Sprintf("reading random bytes: %v", err))
	}
	return prefix + idEncoding.EncodeToString(b[:])
}
