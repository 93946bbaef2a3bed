package authz_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/filestore"
	"github.com/apiusers/apiusers/authz/password"
)

// TestRehashOnSignIn: a password hashed with older parameters is hashed
// again with the raised ones at the next successful sign-in, and still
// works.
func TestRehashOnSignIn(t *testing.T) {
	st, err := filestore.Open(filepath.Join(t.TempDir(), "apiusers.db"), filestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	const pw = "glacier orbit lantern 42 mosaic"
	e := newEnv(t, st)
	u, err := e.svc.CreateUser(e.ctx, e.root, "acme", authz.NewUser{Username: "station", Kind: authz.KindAPI, Role: authz.RoleAPIUser, Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	stored := func() string {
		t.Helper()
		var phc string
		err := st.View(e.ctx, "acme", func(tx authz.Tx) error {
			b, err := tx.Get(authz.Collection{Workspace: "acme", Name: authz.CollPasswords}, u.ID)
			phc = string(b)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return phc
	}
	if !strings.Contains(stored(), "$m=19456,t=2,p=1$") {
		t.Fatalf("stored hash %.40q…, want the default parameters", stored())
	}
	raised, err := password.New(password.Config{Params: password.Params{Memory: 19 * 1024, Time: 3, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	e.svc.Close()
	signer, _ := authz.NewSigner(authz.SignerConfig{Secret: []byte("0123456789abcdef0123456789abcdef")})
	cache, _ := authz.NewCache(authz.CacheConfig{})
	t.Cleanup(cache.Close)
	svc2, err := authz.NewService(authz.Config{Store: st, Signer: signer, Cache: cache, People: authz.PeopleConfig{Hasher: raised}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc2.Close)
	if _, err := svc2.SignInUser(e.ctx, "acme", "station", pw, ""); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stored(), "$m=19456,t=3,p=1$") {
		t.Fatalf("after a sign-in the stored hash is %.40q…, want t=3", stored())
	}
	if _, err := svc2.SignInUser(e.ctx, "acme", "station", pw, ""); err != nil {
		t.Fatalf("the rehashed password: %v", err)
	}
}
