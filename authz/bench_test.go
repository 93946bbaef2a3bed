package authz_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/filestore"
)

func benchEnv(b *testing.B) (*authz.Service, *authz.Principal) {
	st, err := filestore.Open(filepath.Join(b.TempDir(), "b.db"), filestore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	signer, _ := authz.NewSigner(authz.SignerConfig{Secret: []byte("0123456789abcdef0123456789abcdef")})
	cache, _ := authz.NewCache(authz.CacheConfig{TTL: time.Hour})
	b.Cleanup(cache.Close)
	svc, err := authz.NewService(authz.Config{Store: st, Signer: signer, Cache: cache})
	if err != nil {
		b.Fatal(err)
	}
	cu, err := svc.Bootstrap(context.Background(), "acme", "root")
	if err != nil {
		b.Fatal(err)
	}
	root, _, err := svc.Authenticate(context.Background(), cu.Key)
	if err != nil {
		b.Fatal(err)
	}
	return svc, root
}

// warm authenticates until the key and principal are served from the cache.
func warm(b *testing.B, svc *authz.Service, key string) {
	for i := 0; i < 100; i++ {
		if _, _, err := svc.Authenticate(context.Background(), key); err != nil {
			b.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkAuthenticateCached: key verification and principal lookup, both
// cached (the gateway's hot path minus HTTP).
func BenchmarkAuthenticateCached(b *testing.B) {
	svc, root := benchEnv(b)
	ctx := context.Background()
	cu, err := svc.CreateUser(ctx, root, "acme", authz.NewUser{Username: "u", Kind: authz.KindAPI, Role: authz.RoleAPIUser, IssueKey: true})
	if err != nil {
		b.Fatal(err)
	}
	warm(b, svc, cu.Key)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p, _, err := svc.Authenticate(ctx, cu.Key)
		if err != nil || !p.HasPermission("listeners.invoke") {
			b.Fatal("refused")
		}
	}
}

// BenchmarkDecisionTeamsGrants: a user in 10 teams holding 1,000 grants,
// cached; one allow decision (authenticate + permission + resource right).
func BenchmarkDecisionTeamsGrants(b *testing.B) {
	svc, root := benchEnv(b)
	ctx := context.Background()
	cu, err := svc.CreateUser(ctx, root, "acme", authz.NewUser{Username: "u", Kind: authz.KindAPI, Role: authz.RoleAPIUser, IssueKey: true})
	if err != nil {
		b.Fatal(err)
	}
	for t := 0; t < 10; t++ {
		grants := make([]authz.Grant, 100)
		for g := range grants {
			grants[g] = authz.Grant{Resource: fmt.Sprintf("device:t%d-d%d", t, g), Rights: []string{"read", "control"}}
		}
		team, err := svc.CreateTeam(ctx, root, "acme", authz.NewTeam{Name: fmt.Sprintf("team%d", t), Permissions: []string{fmt.Sprintf("perm.%d", t)}, Grants: grants})
		if err != nil {
			b.Fatal(err)
		}
		if err := svc.AddMember(ctx, root, "acme", team.ID, cu.ID); err != nil {
			b.Fatal(err)
		}
	}
	warm(b, svc, cu.Key)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p, _, err := svc.Authenticate(ctx, cu.Key)
		if err != nil || !p.HasPermission("perm.9") || !p.HasRight("device:t9-d99", "control") || p.HasRight("device:zz", "read") {
			b.Fatal("wrong decision")
		}
	}
}

// BenchmarkAuthenticateMiss: what a cache miss costs in the plugin, on the
// file store, part by part. Each op is another seeded user's key seen for
// the first time; a fresh cache is swapped in (untimed) whenever the keys
// run out.
//
//   - verify: Signer.Verify (the key's signature and claims)
//   - load: the store's LoadPrincipal (one read transaction)
//   - build: BuildPrincipal (decoding the records, sharing access)
//   - authenticate: all of it through Service.Authenticate, with the
//     singleflight, cache admission and the link from key to principal
//     (the last_used_at write it queues runs off the request path, and is
//     not in this figure)
func BenchmarkAuthenticateMiss(b *testing.B) {
	const users = 2000
	dir := b.TempDir()
	st, err := filestore.Open(filepath.Join(dir, "b.db"), filestore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	signer, _ := authz.NewSigner(authz.SignerConfig{Secret: []byte("0123456789abcdef0123456789abcdef")})
	newSvc := func() *authz.Service {
		cache, _ := authz.NewCache(authz.CacheConfig{TTL: time.Hour})
		svc, err := authz.NewService(authz.Config{Store: st, Signer: signer, Cache: cache})
		if err != nil {
			b.Fatal(err)
		}
		return svc
	}
	ctx := context.Background()
	svc := newSvc()
	cu, err := svc.Bootstrap(ctx, "acme", "root")
	if err != nil {
		b.Fatal(err)
	}
	root, _, err := svc.Authenticate(ctx, cu.Key)
	if err != nil {
		b.Fatal(err)
	}
	in := make([]authz.NewUser, users)
	for i := range in {
		in[i] = authz.NewUser{Username: fmt.Sprintf("dev-%05d", i), Kind: authz.KindAPI, Role: authz.RoleAPIUser, IssueKey: true}
	}
	var created []*authz.CreatedUser
	for i := 0; i < users; i += 1000 {
		c, err := svc.CreateUsers(ctx, root, "acme", in[i:min(i+1000, users)])
		if err != nil {
			b.Fatal(err)
		}
		created = append(created, c...)
	}
	svc.Close()
	keys := make([]string, users)
	ids := make([]string, users)
	recs := make([]*authz.PrincipalRecord, users)
	for i, c := range created {
		keys[i], ids[i] = c.Key, c.ID
		if recs[i], err = st.LoadPrincipal(ctx, "acme", c.ID); err != nil {
			b.Fatal(err)
		}
	}

	b.Run("verify", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := signer.Verify(keys[i%users]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("load", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := st.LoadPrincipal(ctx, "acme", ids[i%users]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("build", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := authz.BuildPrincipal(recs[i%users]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("authenticate", func(b *testing.B) {
		svc := newSvc()
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if i%users == 0 && i > 0 {
				b.StopTimer()
				svc.Close()
				svc = newSvc()
				b.StartTimer()
			}
			if _, _, err := svc.Authenticate(ctx, keys[i%users]); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		svc.Close()
	})
}
