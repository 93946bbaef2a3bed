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
	// resetAddr counts self-service reset requests per client address,
	// resetAccount the reset mails each account was sent.
	resetAddr, resetAccount *throttle.Limiter
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
	t := &signInThrottle{identity: id, address: addr}
	if t.resetAddr, err = mkp(shared, now, throttle.Policy{Limit: ResetsPerAddress, Window: FailureWindow}, "reset.address"); err != nil {
		t.close()
		return nil, err
	}
	if t.resetAccount, err = mkp(shared, now, throttle.Policy{Limit: ResetsPerAccount, Window: time.Hour, Backoff: time.Hour}, "reset.account"); err != nil {
		t.close()
		return nil, err
	}
	return t, nil
}

// Self-service reset bounds: one client address may ask ResetsPerAddress
// times within FailureWindow (then 429), and one account gets at most
// ResetsPerAccount self-service reset mails an hour (more asks are
// answered alike and send nothing), beside resetMinInterval.
const (
	ResetsPerAddress = 10
	ResetsPerAccount = 3
)

func mkp(shared throttle.Shared, now func() time.Time, p throttle.Policy, scope string) (*throttle.Limiter, error) {
	o := throttle.Options{Now: now}
	if shared != nil {
		o.Shared, o.Scope = shared, scope
	}
	return throttle.New(p, o)
}

func (t *signInThrottle) close() {
	for _, l := range []*throttle.Limiter{t.identity, t.address, t.resetAddr, t.resetAccount} {
		if l != nil {
			l.Close()
		}
	}
}

// throttle refuses a sign-in attempt for identity from addr while either
// is blocked; the address is asked first (it is what a flood of
// identities shares). (When the shared counts cannot be read, the
// process's own decide: the store is then unreachable and the attempt
// fails anyway.)
func (s *Service) throttle(ctx context.Context, identity, addr string) error {
	addr = throttle.AddrKey(addr)
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

// attempt is a sign-in attempt counted as failed before its password is
// checked (see begin), until it ends: failed keeps the counts, succeeded
// clears the identity's and takes back the address's, and end, deferred,
// takes both back for an attempt that ended neither way (an error).
type attempt struct {
	s              *Service
	identity, addr string
	idAt, addrAt   time.Time
	decided        bool
}

// begin starts a sign-in attempt for identity from addr: refused (429,
// nothing counted) while either is blocked; else counted as a failure at
// once, before any password is hashed, so that attempts made in parallel
// cannot all pass a check made before any of them failed (on Redis the
// count is increased before it is read, in one step). One that finds the
// limit reached by those in parallel with it is refused too, and stays
// counted.
func (s *Service) begin(ctx context.Context, identity, addr string) (*attempt, error) {
	if err := s.throttle(ctx, identity, addr); err != nil {
		return nil, err
	}
	addr = throttle.AddrKey(addr)
	a := &attempt{s: s, identity: identityKey(identity), addr: addr}
	var wait time.Duration
	if addr != "" {
		v, _ := s.signIns.address.Fail(ctx, addr)
		a.addrAt = v.At
		if v.Refused {
			a.decided = true
			return nil, &ThrottledError{RetryAfter: max(v.RetryAfter, time.Second)}
		}
	}
	v, _ := s.signIns.identity.Fail(ctx, a.identity)
	a.idAt = v.At
	if v.Refused {
		wait = v.RetryAfter
		if addr != "" {
			_ = s.signIns.address.Undo(ctx, addr, a.addrAt)
		}
		a.decided = true
		return nil, &ThrottledError{RetryAfter: max(wait, time.Second)}
	}
	return a, nil
}

// failed ends a with a wrong password (or an identity that may not sign
// in): the counts stay.
func (a *attempt) failed() { a.decided = true }

// succeeded ends a with the right password: the identity's failures are
// cleared, and the address's count of a is taken back.
func (a *attempt) succeeded(ctx context.Context) {
	a.decided = true
	_ = a.s.signIns.identity.Clear(ctx, a.identity)
	if a.addr != "" {
		_ = a.s.signIns.address.Undo(ctx, a.addr, a.addrAt)
	}
}

// end takes back the counts of an attempt that neither failed nor
// succeeded (the store or the hashing pool failed): deferred after begin.
func (a *attempt) end(ctx context.Context) {
	if a.decided {
		return
	}
	a.decided = true
	_ = a.s.signIns.identity.Undo(ctx, a.identity, a.idAt)
	if a.addr != "" {
		_ = a.s.signIns.address.Undo(ctx, a.addr, a.addrAt)
	}
}

// succeeded clears identity's failures.
func (s *Service) succeeded(ctx context.Context, identity string) {
	_ = s.signIns.identity.Clear(ctx, identityKey(identity))
}
