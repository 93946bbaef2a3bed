package module

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/redisstore/redistest"
	"github.com/apiusers/apiusers/internal/apitest"
)

// Two instances over one Redis, each with its own store client and cache
// (as two Caddy processes have): a change made through A reaches B's cache
// through the invalidation feed, long before cache_ttl.
func TestFleetInvalidationReachesOtherInstance(t *testing.T) {
	srv := redistest.Start(t, "--appendonly", "yes")
	s := &settings{
		storeType: StoreRedis, url: srv.URL(), prefix: "fleet",
		secret: []byte("0123456789abcdef0123456789abcdef"), algorithm: "HS256",
		cacheTTL: time.Hour,
	}
	// Each instance gets a store client, a cache and a feed of its own, as
	// openBackend makes them (bypassing the process-wide store pool, which
	// two Caddy processes do not share).
	open := func() *backend {
		st, err := s.openStore()
		if err != nil {
			t.Fatal(err)
		}
		fl := newFleet(st.(invalidationFeed), zap.NewNop())
		svc, cache, err := s.newService(st, fl.notify)
		if err != nil {
			t.Fatal(err)
		}
		fl.start(svc.Apply, cache.InvalidateAll)
		t.Cleanup(func() { fl.stop(); cache.Close(); st.Close() })
		return &backend{cache: cache, svc: svc, fleet: fl}
	}
	a, b := open(), open()
	ctx := context.Background()
	root, err := a.svc.Bootstrap(ctx, "acme", "root")
	if err != nil {
		t.Fatal(err)
	}
	rootP, _, err := a.svc.Authenticate(ctx, root.Key)
	if err != nil {
		t.Fatal(err)
	}
	u, err := a.svc.CreateUser(ctx, rootP, "acme", authz.NewUser{Username: "svc", Kind: authz.KindAPI, Role: authz.RoleAPIUser, IssueKey: true})
	if err != nil {
		t.Fatal(err)
	}
	denied := func(key string) func() bool {
		return func() bool {
			_, _, err := b.svc.Authenticate(ctx, key)
			return errors.Is(err, authz.ErrUnauthenticated)
		}
	}
	// B caches the principal; cache_ttl is an hour, so only the feed can
	// tell B about changes.
	if _, _, err := b.svc.Authenticate(ctx, u.Key); err != nil {
		t.Fatal(err)
	}
	b.cache.Wait()
	k, err := a.svc.CreateKey(ctx, rootP, "acme", u.ID, authz.NewKey{Name: "second"})
	if err != nil {
		t.Fatal(err)
	}
	// A new key is news too: B's cached principal did not list it.
	apitest.Poll(t, "new key", time.Second, func() bool { return !denied(k.Secret)() })
	b.cache.Wait()
	if err := a.svc.RevokeKey(ctx, rootP, "acme", u.ID, k.ID); err != nil {
		t.Fatal(err)
	}
	apitest.Poll(t, "revoke", time.Second, denied(k.Secret))

	if _, err := a.svc.SetStatus(ctx, rootP, "acme", u.ID, authz.StatusInactive); err != nil {
		t.Fatal(err)
	}
	apitest.Poll(t, "deactivate", time.Second, denied(u.Key))
	if _, err := a.svc.SetStatus(ctx, rootP, "acme", u.ID, authz.StatusActive); err != nil {
		t.Fatal(err)
	}
	apitest.Poll(t, "reactivate", time.Second, func() bool { return !denied(u.Key)() })

	// A team change reaches members on B.
	team, err := a.svc.CreateTeam(ctx, rootP, "acme", authz.NewTeam{Name: "ops", Permissions: []string{"rules.manage"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.svc.AddMember(ctx, rootP, "acme", team.ID, u.ID); err != nil {
		t.Fatal(err)
	}
	has := func(perm string) func() bool {
		return func() bool {
			p, _, err := b.svc.Authenticate(ctx, u.Key)
			return err == nil && p.HasPermission(perm)
		}
	}
	apitest.Poll(t, "team join", time.Second, has("rules.manage"))
	b.cache.Wait()
	perms := []string{"records.add"}
	if _, err := a.svc.UpdateTeam(ctx, rootP, "acme", team.ID, authz.TeamPatch{Permissions: &perms}, nil); err != nil {
		t.Fatal(err)
	}
	apitest.Poll(t, "team change", time.Second, has("records.add"))

	// Messages lost while B's subscription is down: B flushes its cache when
	// the subscription comes back.
	b.cache.Wait()
	srv.Stop()
	srv.Restart()
	// A change published while B may not have resubscribed yet: B must end
	// up denying either through the message or through the resync flush.
	if err := func() error {
		deadline := time.Now().Add(5 * time.Second)
		for {
			_, err := a.svc.SetStatus(ctx, rootP, "acme", u.ID, authz.StatusInactive)
			if err == nil || time.Now().After(deadline) {
				return err
			}
			time.Sleep(20 * time.Millisecond)
		}
	}(); err != nil {
		t.Fatal(err)
	}
	apitest.Poll(t, "deactivate across a Redis restart", 5*time.Second, denied(u.Key))
}
