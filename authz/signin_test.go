package authz_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/apiusers/apiusers/authz"
)

// TestSignInBounds: sign-in input beyond what any account could have is
// refused before any work (400, the field named), and the throttle keys
// an identity by the SHA-256 of its canonical form, not by what was typed.
func TestSignInBounds(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(t *testing.T) authz.Store) {
		e := newEnv(t, open(t))
		field := func(what string, err error, want string) {
			t.Helper()
			var ae *authz.Error
			if !errors.As(err, &ae) || !errors.Is(err, authz.ErrInvalid) || ae.Field != want {
				t.Fatalf("%s: %v, want a 400 on %s", what, err, want)
			}
		}
		_, err := e.svc.SignInAccount(e.ctx, strings.Repeat("a", 243)+"@example.com", "whatever", "192.0.2.1")
		field("a 255-byte email", err, "email")
		_, err = e.svc.SignInAccount(e.ctx, strings.Repeat("\uFDFA", 2000)+"@example.com", "whatever", "192.0.2.1")
		field("an email of 2000 U+FDFA", err, "email")
		_, err = e.svc.SignInAccount(e.ctx, "ana@example.com", strings.Repeat("x", 1025), "192.0.2.1")
		field("a 1025-byte password", err, "password")
		_, err = e.svc.SignInUser(e.ctx, strings.Repeat("w", 64), "device", "whatever", "192.0.2.1")
		field("a 64-character workspace", err, "workspace")
		_, err = e.svc.SignInUser(e.ctx, "acme", strings.Repeat("\uFDFA", 86), "whatever", "192.0.2.1")
		field("a 258-byte username", err, "username")

		_, err = e.svc.SignInAccount(e.ctx, "Someone@Example.com", "not the password at all", "192.0.2.1")
		wantErr(t, err, authz.ErrUnauthenticated)
		if n := e.svc.IdentityFailures(e.ctx, authz.IdentityKey("e:someone@example.com")); n != 1 {
			t.Fatalf("failures under the identity's digest: %d, want 1", n)
		}
		if n := e.svc.IdentityFailures(e.ctx, "e:someone@example.com"); n != 0 {
			t.Fatalf("failures under the identity as typed: %d, want 0", n)
		}
		// An IPv6 client counts by its /64: the next address of it is
		// the same client.
		_, err = e.svc.SignInAccount(e.ctx, "someone@example.com", "not the password at all", "2001:db8:1:2::1")
		wantErr(t, err, authz.ErrUnauthenticated)
		_, err = e.svc.SignInAccount(e.ctx, "someone@example.com", "not the password at all", "2001:db8:1:2::2")
		wantErr(t, err, authz.ErrUnauthenticated)
		if n := e.svc.AddressFailures(e.ctx, "2001:db8:1:2::/64"); n != 2 {
			t.Fatalf("failures of the /64: %d, want 2", n)
		}
		if k := authz.IdentityKey("e:" + strings.Repeat("a", 243) + "@example.com"); len(k) != 32 {
			t.Fatalf("an identity key takes %d bytes", len(k))
		}
	})
}
