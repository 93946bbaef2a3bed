package authz

import (
	"context"
	"crypto/sha256"
	"errors"
	"time"

	"github.com/apiusers/apiusers/authz/throttle"
)

// Sign-in throttling, with authz/throttle: after
// IdentityFailures failures for one identity (an email, or a workspace and
// username, in canonical form) within FailureWindow, further attempts for
// it are refused with 429 until a wait has passed since the last failure,
// one second doubled with each failure beyond the limit; one client
// address gets the same after AddressFailures. A refused attempt checks no
// password and counts nothing, so waiting always helps; a success clears
// the identity's count. When the store meets throttle.Shared (Redis), the
// counts are the fleet's, read and written with one round trip each, so
// every instance refuses alike.
const (
	IdentityFailures = 5
	AddressFailures  = 50
	FailureWindow    = 15 * time.Minute
)

// ErrThrottled means too many failed sign-ins: retry later (429).
var ErrThrottled = errors.New("too many failed sign-ins")

// ThrottledError is a refused attempt and how long to wait.
type ThrottledError struct {
	RetryAfter time.Duration
	// What failed too often ("authentications from this address");
	// "": sign-in attempts.
	What string
}

func (e *ThrottledError) Error() string {
	if e.What != "" {
		return "too many failed " + e.What + ": retry later"
	}
	return "too many failed sign-in attempts: retry later"
}
func (e *ThrottledError) Unwrap() error { return ErrThrottled }

// signInThrottle is the pair of limiters sign-in uses.
type signInThrottle struct {
	identity, address *throttle.Limiter
}

func newSignInThrottle(st Store, now func() time.Time) (*signInThrottle, error) {
	shared, _ := st.(throttle.Shared)
	mk := func(limit int64, scope string) (*throttle.Limiter, error) {
		o := throttle.Options{Now: now}
		if shared != nil {
			o.Shared, o.Scope = shared, scope
		}
		return throttle.New(throttle.Policy{Limit: limit, Window: FailureWindow}, o)
	}
	id, err := mk(IdentityFailures, "signin.identity")
	if err != nil {
		return nil, err
	}
	addr, err := mk(AddressFailures, "signin.address")
	if err != nil {
		id.Close()
		return nil, err
	}
	return &signInThrottle{identity: id, address: addr}, nil
}

func (t *signInThrottle) close() {
	t.identity.Close()
	t.address.Close()
}

// throttle refuses a sign-in attempt for identity from addr while either
// is blocked; the address is asked first (it is what a flood of
// identities shares). (When the shared counts cannot be read, the
// process's own decide: the store is then unreachable and the attempt
// fails anyway.)
func (s *Service) throttle(ctx context.Context, identity, addr string) error {
	var wait time.Duration
	refused := false
	if addr != "" {
		a, _ := s.signIns.address.Check(ctx, addr)
		refused, wait = a.Refused, a.RetryAfter
	}
	if !refused {
		v, _ := s.signIns.identity.Check(ctx, identityKey(identity))
		refused = v.Refused
		wait = max(wait, v.RetryAfter)
	}
	if refused {
		return &ThrottledError{RetryAfter: max(wait, time.Second)}
	}
	return nil
}

// identityKey is the throttle's key of an identity: the SHA-256 of its
// canonical form, so that every key takes 32 bytes whatever was typed.
func identityKey(identity string) string {
	sum := sha256.Sum256([]byte(identity))
	return string(sum[:])
}

// failed counts a failed attempt for identity from addr.
func (s *Service) failed(ctx context.Context, identity, addr string) {
	_, _ = s.signIns.identity.Fail(ctx, identityKey(identity))
	if addr != "" {
		_, _ = s.signIns.address.Fail(ctx, addr)
	}
}

// succeeded clears identity's failures.
func (s *Service) succeeded(ctx context.Context, identity string) {
	_ = s.signIns.identity.Clear(ctx, identityKey(identity))
}
