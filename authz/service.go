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
	cl, ok := s.cache.claims(key)
	if !ok {
		var err error
		cl, err = s.signer.Verify(key)
		if err != nil {
			if errors.Is(err, ErrKeyMalformed) {
				return nil, nil, ErrBadKey
			}
			return nil, nil, ErrBadSig
		}
		s.cache.setClaims(key, cl)
	}
	now := s.now()
	if cl.Expired(now) {
		return nil, nil, ErrExpiredKey
	}
	p, err := s.principal(ctx, cl.Workspace, cl.UserID, now)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, nil, ErrRevokedKey
		}
		return nil, nil, err
	}
	if p.Workspace != cl.Workspace || !p.KeyLive(cl.KeyID, now) {
		return nil, nil, ErrRevokedKey
	}
	if !p.Active() {
		return nil, nil, ErrInactive
	}
	s.queueTouch(p, cl, now)
	return p, cl, nil
}

// Principal returns the principal of user userID in ws, from the cache or
// with one store read (concurrent misses for one user share that read).
// Errors wrap ErrNotFound or ErrUnavailable.
func (s *Service) Principal(ctx context.Context, ws, userID string) (*Principal, error) {
	return s.principal(ctx, ws, userID, s.now())
}

func (s *Service) principal(ctx context.Context, ws, userID string, now time.Time) (*Principal, error) {
	if p, ok := s.cache.principal(userID, now); ok {
		return p, nil
	}
	v, err, _ := s.loads.Do(userID, func() (any, error) {
		start := s.cache.begin()
		stamp := s.cache.stamp(ws)
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
		return p, nil
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, err
		}
		if p, ok := s.cache.stale(userID, now); ok {
			return p, nil
		}
		if errors.Is(err, ErrUnavailable) {
			return nil, &Error{Kind: ErrUnavailable, Detail: errUnavailable.Detail}
		}
		return nil, Unavailable(err)
	}
	return v.(*Principal), nil
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
