package authz

import (
	"context"
	"errors"
	"time"
)

// Errors of Authenticate. They are allocated once: the gateway's deny path
// does not allocate either.
//
// A 401 tells the caller only what the key's rightful holder can act on:
// no key, an expired key, or an invalid one. Every other reason (malformed,
// a bad signature, a key not yet valid, an unknown or revoked key, a user
// that is not active) has the same Detail, so that a stolen key reveals
// nothing about its account; each is still its own value, and Reason tells
// them apart for the debug log.
var (
	ErrNoKey       = &Error{Kind: ErrUnauthenticated, Detail: "no API key"}
	ErrExpiredKey  = &Error{Kind: ErrUnauthenticated, Detail: "API key expired"}
	ErrBadKey      = invalidKey("malformed API key")
	ErrBadSig      = invalidKey("invalid API key signature")
	ErrNotYetValid = invalidKey("API key not yet valid (nbf)")
	ErrRevokedKey  = invalidKey("unknown or revoked API key")
	ErrInactive    = invalidKey("user is not active")
	errUnavailable = &Error{Kind: ErrUnavailable, Detail: "authorization store unavailable"}
)

// DetailInvalidKey is the one answer to every invalid key.
const DetailInvalidKey = "invalid API key"

func invalidKey(reason string) *Error {
	return &Error{Kind: ErrUnauthenticated, Detail: DetailInvalidKey, reason: reason}
}

// Authenticate verifies key and returns the caller's principal and the key's
// claims. Errors wrap ErrUnauthenticated (401) or ErrUnavailable (503).
func (s *Service) Authenticate(ctx context.Context, key string) (*Principal, *Claims, error) {
	return s.AuthenticateAt(ctx, key, s.now())
}

// Now reads the service's clock.
func (s *Service) Now() time.Time { return s.now() }

// AuthenticateAt is Authenticate at now, a time read from the service's
// clock (Now) by a caller that needs it too (the gateway's rate limits):
// the clock is read once per request.
func (s *Service) AuthenticateAt(ctx context.Context, key string, now time.Time) (*Principal, *Claims, error) {
	if key == "" {
		return nil, nil, ErrNoKey
	}
	v, ok := s.cache.verified(key)
	if !ok {
		return s.authenticateNew(ctx, key)
	}
	cl := &v.claims
	if cl.Expired(now) {
		return nil, nil, ErrExpiredKey
	}
	if cl.NotYetValid(now) {
		return nil, nil, ErrNotYetValid
	}
	// The hot path: the key leads straight to its principal. Otherwise find
	// the principal (cache or store), check it, and link the key to it.
	p, ks, ok := s.cache.linked(v, now)
	if !ok {
		var epoch uint64
		var err error
		if p, ks, epoch, err = s.admit(ctx, cl, now); err != nil {
			return nil, nil, err
		}
		s.cache.link(v, p, ks, epoch)
	}
	if !ks.liveAt(now) {
		return nil, nil, ErrRevokedKey
	}
	s.queueTouch(p, ks, cl, now)
	return p, cl, nil
}

// authenticateNew is Authenticate for a key that is not cached: it checks
// the signature and the principal, and caches the verified key only once
// its principal admitted it, with the principal's copies of the ids (so a
// cached key holds no strings of its own).
func (s *Service) authenticateNew(ctx context.Context, key string) (*Principal, *Claims, error) {
	cl, err := s.signer.Verify(key)
	if err != nil {
		if errors.Is(err, ErrKeyMalformed) {
			return nil, nil, ErrBadKey
		}
		return nil, nil, ErrBadSig
	}
	now := s.now()
	if cl.Expired(now) {
		return nil, nil, ErrExpiredKey
	}
	if cl.NotYetValid(now) {
		return nil, nil, ErrNotYetValid
	}
	p, ks, epoch, err := s.admit(ctx, cl, now)
	if err != nil {
		return nil, nil, err
	}
	if !ks.liveAt(now) {
		return nil, nil, ErrRevokedKey
	}
	cl.UserID, cl.Workspace, cl.KeyID = p.UserID, p.Workspace, ks.id
	v := s.cache.setVerified(key, cl)
	s.cache.link(v, p, ks, epoch)
	s.queueTouch(p, ks, &v.claims, now)
	return p, &v.claims, nil
}

// admit returns the principal of the key cl, the key's state in it and the
// cache epoch it is current as of, or why the key is refused.
func (s *Service) admit(ctx context.Context, cl *Claims, now time.Time) (*Principal, *keyState, uint64, error) {
	p, epoch, err := s.principal(ctx, cl.Workspace, cl.UserID, now)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, nil, 0, ErrRevokedKey
		}
		return nil, nil, 0, err
	}
	ks := p.key(cl.KeyID)
	if ks == nil || p.Workspace != cl.Workspace {
		return nil, nil, 0, ErrRevokedKey
	}
	if !p.Active() {
		return nil, nil, 0, ErrInactive
	}
	return p, ks, epoch, nil
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
			t0 := time.Now()
			rec, err := s.store.LoadPrincipal(context.WithoutCancel(ctx), ws, userID)
			if s.observeStore != nil {
				s.observeStore("load_principal", time.Since(t0))
			}
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
