package authz

import "context"

// Internals the external tests of this package look at.

// IdentityKey is identityKey: the throttle's key of an identity.
var IdentityKey = identityKey

// IdentityFailures returns the sign-in throttle's count of failures under
// key (as the throttle keys them).
func (s *Service) IdentityFailures(ctx context.Context, key string) int64 {
	v, _ := s.signIns.identity.Check(ctx, key)
	return v.Failures
}

// AddressFailures returns the sign-in throttle's count of failures under
// the address key key.
func (s *Service) AddressFailures(ctx context.Context, key string) int64 {
	v, _ := s.signIns.address.Check(ctx, key)
	return v.Failures
}
