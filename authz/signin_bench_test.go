package authz_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/filestore"
	"github.com/apiusers/apiusers/authz/password"
)

// BenchmarkSignIn measures POST /login's work for an API user and for a
// person on the file store: one argon2id verification at the default
// parameters, plus the session's write. Its p50 should be what the hash
// costs (target: ≤ 100 ms on the 2-vCPU machine).
func BenchmarkSignIn(b *testing.B) {
	st, err := filestore.Open(filepath.Join(b.TempDir(), "apiusers.db"), filestore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	// The whole machine for hashing: what is measured is a sign-in's cost,
	// not the CPU budget that holds a flood back.
	h, err := password.New(password.Config{Budget: 1, Burst: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	e := newEnvWith(b, st, authz.PeopleConfig{Hasher: h})
	const pw = "glacier orbit lantern 42 mosaic"
	if _, err := e.svc.CreateUser(e.ctx, e.root, "acme", authz.NewUser{Username: "station", Kind: authz.KindAPI, Role: authz.RoleAPIUser, Password: pw}); err != nil {
		b.Fatal(err)
	}
	inv, err := e.svc.Invite(e.ctx, e.root, "acme", authz.NewInvitation{Email: "ana@example.com", Role: authz.RoleViewer})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := e.svc.AcceptInvitation(e.ctx, inv.Token, "Ana", pw, nil); err != nil {
		b.Fatal(err)
	}
	b.Run("api_user", func(b *testing.B) {
		for b.Loop() {
			if _, err := e.svc.SignInUser(e.ctx, "acme", "station", pw, "192.0.2.1"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("person", func(b *testing.B) {
		for b.Loop() {
			if _, err := e.svc.SignInAccount(e.ctx, "ana@example.com", pw, "192.0.2.1"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("unknown", func(b *testing.B) {
		n := 0
		for b.Loop() {
			n++ // a new identity each time: the throttle never answers instead
			if _, err := e.svc.SignInAccount(e.ctx, fmt.Sprintf("nobody%d@example.com", n), pw, ""); !errors.Is(err, authz.ErrUnauthenticated) {
				b.Fatal(err)
			}
		}
	})
}
