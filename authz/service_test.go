package authz_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/filestore"
	"github.com/apiusers/apiusers/authz/redisstore"
	"github.com/apiusers/apiusers/authz/redisstore/redistest"
	"github.com/apiusers/apiusers/internal/apitest"
)

// The domain rules run against every store.
func forEachStore(t *testing.T, fn func(t *testing.T, open func(t *testing.T) authz.Store)) {
	t.Run("file", func(t *testing.T) {
		fn(t, func(t *testing.T) authz.Store {
			st, err := filestore.Open(filepath.Join(t.TempDir(), "apiusers.db"), filestore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		})
	})
	t.Run("redis", func(t *testing.T) {
		srv := redistest.Start(t)
		var n atomic.Int64
		fn(t, func(t *testing.T) authz.Store {
			st, err := redisstore.New(redisstore.Options{URL: srv.URL(), Prefix: "t" + string(rune('a'+n.Add(1)%26)) + time.Now().Format("150405.000000")})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		})
	})
}

type env struct {
	*apitest.Clock
	t    testing.TB
	svc  *authz.Service
	root *authz.Principal
	ctx  context.Context
}

func newEnv(t testing.TB, st authz.Store) *env { return newEnvWith(t, st, authz.PeopleConfig{}) }

// newEnvWith is newEnv with people settings.
func newEnvWith(t testing.TB, st authz.Store, people authz.PeopleConfig) *env {
	t.Helper()
	return newEnvConfig(t, st, func(c *authz.Config) { c.People = people })
}

// newEnvConfig is newEnv with what set changes in the service's Config.
func newEnvConfig(t testing.TB, st authz.Store, set func(*authz.Config)) *env {
	t.Helper()
	signer, err := authz.NewSigner(authz.SignerConfig{Secret: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	cache, err := authz.NewCache(authz.CacheConfig{TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cache.Close)
	e := &env{t: t, ctx: context.Background(), Clock: apitest.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))}
	cfg := authz.Config{Store: st, Signer: signer, Cache: cache, Now: e.Now}
	set(&cfg)
	e.svc, err = authz.NewService(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cu, err := e.svc.Bootstrap(e.ctx, "acme", "root")
	if err != nil {
		t.Fatal(err)
	}
	e.root = e.auth(cu.Key)
	return e
}

func (e *env) auth(key string) *authz.Principal {
	e.t.Helper()
	p, _, err := e.svc.Authenticate(e.ctx, key)
	if err != nil {
		e.t.Fatalf("authenticate: %v", err)
	}
	return p
}

// user creates a user with a key and returns the user and its principal.
func (e *env) user(ws, name string, kind authz.Kind, role authz.Role) (*authz.CreatedUser, *authz.Principal) {
	e.t.Helper()
	cu, err := e.svc.CreateUser(e.ctx, e.root, ws, authz.NewUser{Username: name, Kind: kind, Role: role, IssueKey: true})
	if err != nil {
		e.t.Fatalf("creating %s: %v", name, err)
	}
	return cu, e.auth(cu.Key)
}

func wantErr(t *testing.T, err, kind error) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("err = %v, want %v", err, kind)
	}
}

func TestServiceRules(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(t *testing.T) authz.Store) {
		e := newEnv(t, open(t))
		ctx := e.ctx
		_, editor := e.user("acme", "ed", authz.KindMember, authz.RoleEditor)
		_, admin := e.user("acme", "ad", authz.KindMember, authz.RoleAdmin)

		t.Run("editor cannot create users", func(t *testing.T) {
			_, err := e.svc.CreateUser(ctx, editor, "acme", authz.NewUser{Username: "x", Kind: authz.KindAPI, Role: authz.RoleAPIUser})
			wantErr(t, err, authz.ErrForbidden)
		})
		t.Run("admin cannot create a superadmin nor grant workspaces.manage", func(t *testing.T) {
			_, err := e.svc.CreateUser(ctx, admin, "acme", authz.NewUser{Username: "s2", Kind: authz.KindAPI, Role: authz.RoleSuperadmin})
			wantErr(t, err, authz.ErrForbidden)
			_, err = e.svc.CreateUser(ctx, admin, "acme", authz.NewUser{Username: "s3", Kind: authz.KindAPI, Role: authz.RoleViewer, Permissions: []string{"workspaces.manage"}})
			wantErr(t, err, authz.ErrForbidden)
			u, err := e.svc.CreateUser(ctx, admin, "acme", authz.NewUser{Username: "ok", Kind: authz.KindAPI, Role: authz.RoleAPIUser, Permissions: []string{"rules.manage"}})
			if err != nil || u.Role != authz.RoleAPIUser {
				t.Fatalf("admin creating api_user: %v", err)
			}
			// Nobody touches a superadmin but a superadmin.
			_, err = e.svc.SetStatus(ctx, admin, "acme", e.root.UserID, authz.StatusInactive)
			wantErr(t, err, authz.ErrForbidden)
		})
		t.Run("api_registration creates api_basic with a key and nothing else", func(t *testing.T) {
			_, reg := e.user("acme", "app", authz.KindAPI, authz.RoleAPIRegistration)
			cu, err := e.svc.CreateUser(ctx, reg, "acme", authz.NewUser{Username: "signup1", Kind: authz.KindAPI, Role: authz.RoleAPIBasic, IssueKey: true})
			if err != nil {
				t.Fatal(err)
			}
			if cu.Key == "" {
				t.Fatal("no key issued")
			}
			basic := e.auth(cu.Key)
			if basic.Role != authz.RoleAPIBasic {
				t.Fatal("wrong role")
			}
			_, err = e.svc.CreateUser(ctx, reg, "acme", authz.NewUser{Username: "signup2", Kind: authz.KindAPI, Role: authz.RoleAPIUser})
			wantErr(t, err, authz.ErrForbidden)
			_, err = e.svc.CreateUser(ctx, reg, "acme", authz.NewUser{Username: "signup3", Kind: authz.KindAPI, Role: authz.RoleAPIBasic, Permissions: []string{"events.read.own"}})
			wantErr(t, err, authz.ErrForbidden)
			_, err = e.svc.CreateKey(ctx, reg, "acme", cu.ID, authz.NewKey{Name: "more"})
			wantErr(t, err, authz.ErrForbidden)
			if _, err := e.svc.SetStatus(ctx, reg, "acme", cu.ID, authz.StatusInactive); err != nil {
				t.Fatalf("disable: %v", err)
			}
			if _, err := e.svc.SetStatus(ctx, reg, "acme", cu.ID, authz.StatusActive); err != nil {
				t.Fatalf("enable: %v", err)
			}
			_, err = e.svc.SetStatus(ctx, reg, "acme", cu.ID, authz.StatusTrash)
			wantErr(t, err, authz.ErrForbidden)
			_, err = e.svc.SetStatus(ctx, reg, "acme", editor.UserID, authz.StatusInactive)
			wantErr(t, err, authz.ErrForbidden)
		})
		t.Run("api_business updates api_basic but not api_user", func(t *testing.T) {
			_, biz := e.user("acme", "biz", authz.KindAPI, authz.RoleAPIBusiness)
			basicU, _ := e.user("acme", "b1", authz.KindAPI, authz.RoleAPIBasic)
			apiU, _ := e.user("acme", "l1", authz.KindAPI, authz.RoleAPIUser)
			org := "acme corp"
			if _, err := e.svc.UpdateUser(ctx, biz, "acme", basicU.ID, authz.UserPatch{Organization: &org}, nil); err != nil {
				t.Fatal(err)
			}
			_, err := e.svc.UpdateUser(ctx, biz, "acme", apiU.ID, authz.UserPatch{Organization: &org}, nil)
			wantErr(t, err, authz.ErrForbidden)
			role := authz.RoleAPIUser
			_, err = e.svc.UpdateUser(ctx, biz, "acme", basicU.ID, authz.UserPatch{Role: &role}, nil)
			wantErr(t, err, authz.ErrForbidden)
			perms := []string{"rules.manage"}
			_, err = e.svc.UpdateUser(ctx, biz, "acme", basicU.ID, authz.UserPatch{Permissions: &perms}, nil)
			wantErr(t, err, authz.ErrForbidden)
			if _, err := e.svc.CreateUser(ctx, biz, "acme", authz.NewUser{Username: "b2", Kind: authz.KindAPI, Role: authz.RoleAPIBasic}); err != nil {
				t.Fatal(err)
			}
			list, _, err := e.svc.ListUsers(ctx, biz, "acme", authz.UserFilter{}, authz.Page{})
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range list {
				if u.Role != authz.RoleAPIBasic {
					t.Fatalf("api_business sees %s (%s)", u.Username, u.Role)
				}
			}
		})
		t.Run("api_basic disables itself but nobody else", func(t *testing.T) {
			a, pa := e.user("acme", "selfa", authz.KindAPI, authz.RoleAPIBasic)
			b, _ := e.user("acme", "selfb", authz.KindAPI, authz.RoleAPIBasic)
			_, err := e.svc.SetStatus(ctx, pa, "acme", b.ID, authz.StatusInactive)
			wantErr(t, err, authz.ErrForbidden)
			_, err = e.svc.SetStatus(ctx, pa, "acme", a.ID, authz.StatusTrash)
			wantErr(t, err, authz.ErrForbidden)
			if _, err := e.svc.SetStatus(ctx, pa, "acme", a.ID, authz.StatusInactive); err != nil {
				t.Fatal(err)
			}
			_, _, err = e.svc.Authenticate(ctx, a.Key)
			wantErr(t, err, authz.ErrUnauthenticated)
		})
		t.Run("private_note for managers only", func(t *testing.T) {
			cu, err := e.svc.CreateUser(ctx, admin, "acme", authz.NewUser{Username: "noted", Kind: authz.KindAPI, Role: authz.RoleAPIUser, PrivateNote: "owes money", IssueKey: true})
			if err != nil {
				t.Fatal(err)
			}
			if cu.PrivateNote != "owes money" {
				t.Fatal("admin does not see the note on create")
			}
			u, _ := e.svc.GetUser(ctx, admin, "acme", cu.ID)
			if u.PrivateNote != "owes money" {
				t.Fatal("admin does not see the note")
			}
			self := e.auth(cu.Key)
			u, err = e.svc.GetUser(ctx, self, "acme", cu.ID)
			if err != nil || u.PrivateNote != "" {
				t.Fatalf("user sees its note: %v %q", err, u.PrivateNote)
			}
			me, _ := e.svc.Me(ctx, self)
			if me.User.PrivateNote != "" {
				t.Fatal("note in /me")
			}
			u, _ = e.svc.GetUser(ctx, editor, "acme", cu.ID)
			if u.PrivateNote != "" {
				t.Fatal("editor (cannot manage users) sees the note")
			}
		})
		t.Run("usernames", func(t *testing.T) {
			if _, err := e.svc.CreateWorkspace(ctx, e.root, authz.Workspace{ID: "other"}); err != nil {
				t.Fatal(err)
			}
			a, _ := e.user("acme", "Same", authz.KindAPI, authz.RoleAPIUser)
			b, _ := e.user("other", "Same", authz.KindAPI, authz.RoleAPIUser)
			if a.ID == b.ID {
				t.Fatal("one user for two workspaces")
			}
			_, err := e.svc.CreateUser(ctx, e.root, "acme", authz.NewUser{Username: "sAME", Kind: authz.KindAPI, Role: authz.RoleAPIUser})
			wantErr(t, err, authz.ErrConflict)
			org := "x"
			if _, err := e.svc.UpdateUser(ctx, e.root, "other", b.ID, authz.UserPatch{Organization: &org}, nil); err != nil {
				t.Fatal(err)
			}
			got, _ := e.svc.GetUser(ctx, e.root, "acme", a.ID)
			if got.Organization != "" {
				t.Fatal("changing one workspace's user changed the other")
			}
			// An admin of acme cannot touch other.
			_, err = e.svc.GetUser(ctx, admin, "other", b.ID)
			wantErr(t, err, authz.ErrForbidden)
		})
		t.Run("bad input stores nothing", func(t *testing.T) {
			before, _, _ := e.svc.ListUsers(ctx, e.root, "acme", authz.UserFilter{}, authz.Page{Limit: 500})
			bad := []authz.NewUser{
				{Username: "", Kind: authz.KindAPI, Role: authz.RoleAPIUser},
				{Username: "usr_x", Kind: authz.KindAPI, Role: authz.RoleAPIUser},
				{Username: "tz", Kind: authz.KindAPI, Role: authz.RoleAPIUser, Timezone: "Mars/Olympus"},
				{Username: "lang", Kind: authz.KindAPI, Role: authz.RoleAPIUser, Language: "not a tag!"},
				{Username: "role", Kind: authz.KindAPI, Role: "king"},
				{Username: "kind", Kind: "robot", Role: authz.RoleAPIUser},
				{Username: "memberapi", Kind: authz.KindMember, Role: authz.RoleAPIUser},
				{Username: "grant", Kind: authz.KindAPI, Role: authz.RoleAPIUser, Grants: []authz.Grant{{Resource: "nocolon", Rights: []string{"read"}}}},
				{Username: "team", Kind: authz.KindAPI, Role: authz.RoleAPIUser, Teams: []string{"team_missing"}},
			}
			for _, in := range bad {
				_, err := e.svc.CreateUser(ctx, e.root, "acme", in)
				wantErr(t, err, authz.ErrInvalid)
			}
			after, _, _ := e.svc.ListUsers(ctx, e.root, "acme", authz.UserFilter{}, authz.Page{Limit: 500})
			if len(after) != len(before) {
				t.Fatalf("%d users before, %d after", len(before), len(after))
			}
		})
	})
}

func TestServiceKeysAndLifecycle(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(t *testing.T) authz.Store) {
		e := newEnv(t, open(t))
		ctx := e.ctx
		u, _ := e.user("acme", "svc", authz.KindAPI, authz.RoleAPIUser)
		unauth := func(key string) {
			t.Helper()
			_, _, err := e.svc.Authenticate(ctx, key)
			wantErr(t, err, authz.ErrUnauthenticated)
		}
		ok := func(key string) {
			t.Helper()
			if _, _, err := e.svc.Authenticate(ctx, key); err != nil {
				t.Fatalf("key refused: %v", err)
			}
		}
		t.Run("revoke", func(t *testing.T) {
			k, err := e.svc.CreateKey(ctx, e.root, "acme", u.ID, authz.NewKey{Name: "ci"})
			if err != nil {
				t.Fatal(err)
			}
			ok(k.Secret)
			if err := e.svc.RevokeKey(ctx, e.root, "acme", u.ID, k.ID); err != nil {
				t.Fatal(err)
			}
			unauth(k.Secret)
			ok(u.Key)
		})
		t.Run("regenerate", func(t *testing.T) {
			k, _ := e.svc.CreateKey(ctx, e.root, "acme", u.ID, authz.NewKey{Name: "rot"})
			n, err := e.svc.RegenerateKey(ctx, e.root, "acme", u.ID, k.ID, 0)
			if err != nil {
				t.Fatal(err)
			}
			unauth(k.Secret)
			ok(n.Secret)
			if n.Name != "rot" {
				t.Fatal("name not kept")
			}
			g, err := e.svc.RegenerateKey(ctx, e.root, "acme", u.ID, n.ID, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			ok(n.Secret)
			ok(g.Secret)
			e.Advance(time.Hour)
			unauth(n.Secret)
			ok(g.Secret)
		})
		t.Run("reveal", func(t *testing.T) {
			k, _ := e.svc.CreateKey(ctx, e.root, "acme", u.ID, authz.NewKey{Name: "rev"})
			r, err := e.svc.RevealKey(ctx, e.root, "acme", u.ID, k.ID)
			if err != nil {
				t.Fatal(err)
			}
			if r.Secret != k.Secret {
				t.Fatal("reveal differs from create")
			}
			_, admin := e.user("acme", "adm", authz.KindMember, authz.RoleAdmin)
			if _, err := e.svc.RevealKey(ctx, admin, "acme", u.ID, k.ID); err != nil {
				t.Fatalf("admin reveal: %v", err)
			}
			_, editor := e.user("acme", "edi", authz.KindMember, authz.RoleEditor)
			_, err = e.svc.RevealKey(ctx, editor, "acme", u.ID, k.ID)
			wantErr(t, err, authz.ErrForbidden)
		})
		t.Run("expiry", func(t *testing.T) {
			exp := e.Now().Add(time.Minute)
			k, err := e.svc.CreateKey(ctx, e.root, "acme", u.ID, authz.NewKey{Name: "short", ExpiresAt: &exp})
			if err != nil {
				t.Fatal(err)
			}
			ok(k.Secret)
			e.Advance(2 * time.Minute)
			unauth(k.Secret)
			past := e.Now().Add(-time.Second)
			_, err = e.svc.CreateKey(ctx, e.root, "acme", u.ID, authz.NewKey{Name: "past", ExpiresAt: &past})
			wantErr(t, err, authz.ErrInvalid)
		})
		t.Run("self reads own keys only", func(t *testing.T) {
			self := e.auth(u.Key)
			keys, err := e.svc.ListKeys(ctx, self, "acme", u.ID)
			if err != nil || len(keys) == 0 {
				t.Fatalf("own keys: %v", err)
			}
			_, err = e.svc.CreateKey(ctx, self, "acme", u.ID, authz.NewKey{Name: "mine"})
			wantErr(t, err, authz.ErrForbidden)
			_, err = e.svc.ListKeys(ctx, self, "acme", e.root.UserID)
			wantErr(t, err, authz.ErrForbidden)
		})
		t.Run("lifecycle", func(t *testing.T) {
			if _, err := e.svc.SetStatus(ctx, e.root, "acme", u.ID, authz.StatusInactive); err != nil {
				t.Fatal(err)
			}
			unauth(u.Key)
			e.svc.SetStatus(ctx, e.root, "acme", u.ID, authz.StatusActive)
			ok(u.Key)
			wantErr(t, e.svc.DeleteUser(ctx, e.root, "acme", u.ID, false), authz.ErrConflict)
			e.svc.SetStatus(ctx, e.root, "acme", u.ID, authz.StatusTrash)
			unauth(u.Key)
			e.svc.SetStatus(ctx, e.root, "acme", u.ID, authz.StatusActive)
			ok(u.Key)
			e.svc.SetStatus(ctx, e.root, "acme", u.ID, authz.StatusTrash)
			if err := e.svc.DeleteUser(ctx, e.root, "acme", u.ID, false); err != nil {
				t.Fatal(err)
			}
			unauth(u.Key)
			_, err := e.svc.GetUser(ctx, e.root, "acme", u.ID)
			wantErr(t, err, authz.ErrNotFound)
			// The name is free again.
			if _, err := e.svc.CreateUser(ctx, e.root, "acme", authz.NewUser{Username: "svc", Kind: authz.KindAPI, Role: authz.RoleAPIUser}); err != nil {
				t.Fatal(err)
			}
		})
		t.Run("if-match", func(t *testing.T) {
			v, _ := e.user("acme", "ver", authz.KindAPI, authz.RoleAPIUser)
			org := "a"
			stale := v.Version + 5
			_, err := e.svc.UpdateUser(ctx, e.root, "acme", v.ID, authz.UserPatch{Organization: &org}, &stale)
			wantErr(t, err, authz.ErrPrecondition)
			cur := v.Version
			got, err := e.svc.UpdateUser(ctx, e.root, "acme", v.ID, authz.UserPatch{Organization: &org}, &cur)
			if err != nil || got.Version != cur+1 {
				t.Fatalf("update: %v", err)
			}
		})
	})
}

// countingStore counts principal loads of a real store.
type countingStore struct {
	authz.Store
	loads atomic.Int64
	gate  chan struct{}
}

func (c *countingStore) LoadPrincipal(ctx context.Context, ws, id string) (*authz.PrincipalRecord, error) {
	c.loads.Add(1)
	if c.gate != nil {
		<-c.gate
	}
	return c.Store.LoadPrincipal(ctx, ws, id)
}

func TestCacheCollapsesMissesAndSeesChanges(t *testing.T) {
	st, err := filestore.Open(filepath.Join(t.TempDir(), "a.db"), filestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cs := &countingStore{Store: st}
	e := newEnv(t, cs)
	u, _ := e.user("acme", "hot", authz.KindAPI, authz.RoleAPIUser)
	e.svc.Cache().InvalidateAll()
	cs.loads.Store(0)
	cs.gate = make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := e.svc.Authenticate(e.ctx, u.Key); err != nil {
				t.Error(err)
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	close(cs.gate)
	wg.Wait()
	if n := cs.loads.Load(); n != 1 {
		t.Fatalf("50 concurrent misses made %d store loads, want 1", n)
	}
	// A change through this instance is seen by the next request.
	if _, err := e.svc.SetStatus(e.ctx, e.root, "acme", u.ID, authz.StatusInactive); err != nil {
		t.Fatal(err)
	}
	_, _, err = e.svc.Authenticate(e.ctx, u.Key)
	wantErr(t, err, authz.ErrUnauthenticated)
}

// A verified key leads straight to its principal until anything is
// invalidated. While other goroutines keep authenticating the same key
// (making and using that link), every change made through the instance is
// seen by the first request that starts after the change returned, and a
// change to another user or workspace does not stop the key working.
func TestKeyLinkSeesEveryChange(t *testing.T) {
	st, err := filestore.Open(filepath.Join(t.TempDir(), "a.db"), filestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e := newEnv(t, st)
	u, _ := e.user("acme", "hot", authz.KindAPI, authz.RoleAPIUser)
	other, _ := e.user("acme", "other", authz.KindAPI, authz.RoleAPIUser)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
					_, _, _ = e.svc.Authenticate(e.ctx, u.Key)
				}
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	for i := range 50 {
		if _, err := e.svc.SetStatus(e.ctx, e.root, "acme", u.ID, authz.StatusInactive); err != nil {
			t.Fatal(err)
		}
		if _, _, err := e.svc.Authenticate(e.ctx, u.Key); !errors.Is(err, authz.ErrInactive) {
			t.Fatalf("round %d: after deactivation: %v, want ErrInactive", i, err)
		}
		if _, err := e.svc.SetStatus(e.ctx, e.root, "acme", u.ID, authz.StatusActive); err != nil {
			t.Fatal(err)
		}
		if _, _, err := e.svc.Authenticate(e.ctx, u.Key); err != nil {
			t.Fatalf("round %d: after reactivation: %v", i, err)
		}
		// Changes elsewhere move the epoch; the key keeps working.
		if _, err := e.svc.SetStatus(e.ctx, e.root, "acme", other.ID, authz.StatusInactive); err != nil {
			t.Fatal(err)
		}
		e.svc.Cache().InvalidateWorkspace("elsewhere")
		if _, _, err := e.svc.Authenticate(e.ctx, u.Key); err != nil {
			t.Fatalf("round %d: after a change to another user: %v", i, err)
		}
		if _, err := e.svc.SetStatus(e.ctx, e.root, "acme", other.ID, authz.StatusActive); err != nil {
			t.Fatal(err)
		}
	}
	// Workspace-wide and global invalidation reach a linked key too: the
	// user's record changed in the store behind the cache's back, so only
	// the invalidation can make the next request see it.
	e.auth(u.Key)
	if err := st.Update(e.ctx, "acme", func(tx authz.Tx) error {
		raw, err := tx.Get(authz.Collection{Workspace: "acme", Name: authz.CollUsers}, u.ID)
		if err != nil {
			return err
		}
		var rec map[string]any
		if err := json.Unmarshal(raw, &rec); err != nil {
			return err
		}
		rec["status"] = string(authz.StatusInactive)
		raw, err = json.Marshal(rec)
		if err != nil {
			return err
		}
		return tx.Put(authz.Collection{Workspace: "acme", Name: authz.CollUsers}, u.ID, raw)
	}); err != nil {
		t.Fatal(err)
	}
	e.auth(u.Key) // still cached: nobody was told
	e.svc.Cache().InvalidateWorkspace("acme")
	if _, _, err := e.svc.Authenticate(e.ctx, u.Key); !errors.Is(err, authz.ErrInactive) {
		t.Fatalf("after InvalidateWorkspace: %v, want ErrInactive", err)
	}
}

// failingStore fails principal loads while down is set, as an unreachable
// store does.
type failingStore struct {
	authz.Store
	down atomic.Bool
}

func (f *failingStore) LoadPrincipal(ctx context.Context, ws, id string) (*authz.PrincipalRecord, error) {
	if f.down.Load() {
		return nil, authz.Unavailable(errors.New("connection refused"))
	}
	return f.Store.LoadPrincipal(ctx, ws, id)
}

func TestStaleTTLServesOnlyThroughOutages(t *testing.T) {
	t.Parallel()
	st, err := filestore.Open(filepath.Join(t.TempDir(), "a.db"), filestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fs := &failingStore{Store: st}
	for _, stale := range []time.Duration{0, time.Minute} {
		signer, _ := authz.NewSigner(authz.SignerConfig{Secret: []byte("0123456789abcdef0123456789abcdef")})
		cache, _ := authz.NewCache(authz.CacheConfig{TTL: 10 * time.Second, StaleTTL: stale})
		defer cache.Close()
		e := &env{t: t, ctx: context.Background(), Clock: apitest.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))}
		e.svc, _ = authz.NewService(authz.Config{Store: fs, Signer: signer, Cache: cache, Now: e.Now})
		cu, err := e.svc.Bootstrap(e.ctx, "acme", "root"+stale.String())
		if err != nil {
			t.Fatal(err)
		}
		e.root = e.auth(cu.Key)
		u, _ := e.user("acme", "s"+stale.String(), authz.KindAPI, authz.RoleAPIUser)
		e.auth(u.Key)
		cache.Wait()
		fs.down.Store(true)
		e.Advance(5 * time.Second) // within cache_ttl: served from the cache
		if _, _, err := e.svc.Authenticate(e.ctx, u.Key); err != nil {
			t.Fatalf("stale=%s: cached principal refused during an outage: %v", stale, err)
		}
		e.Advance(10 * time.Second) // past cache_ttl
		_, _, err = e.svc.Authenticate(e.ctx, u.Key)
		if stale == 0 {
			wantErr(t, err, authz.ErrUnavailable)
		} else if err != nil {
			t.Fatalf("stale copy not served within stale_ttl: %v", err)
		}
		e.Advance(2 * time.Minute) // past cache_ttl + stale_ttl
		_, _, err = e.svc.Authenticate(e.ctx, u.Key)
		wantErr(t, err, authz.ErrUnavailable)
		fs.down.Store(false)
		if _, _, err := e.svc.Authenticate(e.ctx, u.Key); err != nil {
			t.Fatalf("not recovered: %v", err)
		}
		// An invalidated principal is never served stale: a revocation wins
		// over an outage.
		cache.Wait()
		if _, err := e.svc.SetStatus(e.ctx, e.root, "acme", u.ID, authz.StatusInactive); err != nil {
			t.Fatal(err)
		}
		fs.down.Store(true)
		_, _, err = e.svc.Authenticate(e.ctx, u.Key)
		wantErr(t, err, authz.ErrUnavailable)
		fs.down.Store(false)
	}
}

// noToucher hides a store's authz.Toucher: the Service writes last uses
// with Update instead.
type noToucher struct{ authz.Store }

// forEachToucher is forEachStore, and the file store hidden behind
// noToucher.
func forEachToucher(t *testing.T, fn func(t *testing.T, open func(t *testing.T) authz.Store)) {
	forEachStore(t, fn)
	t.Run("update", func(t *testing.T) {
		fn(t, func(t *testing.T) authz.Store {
			st, err := filestore.Open(filepath.Join(t.TempDir(), "apiusers.db"), filestore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return noToucher{st}
		})
	})
}

// credentialRecords lists the ids of every record in user's keys
// collection: its keys, session tokens and use records.
func credentialRecords(t *testing.T, st authz.Store, ws, user string) []string {
	t.Helper()
	var ids []string
	err := st.View(context.Background(), ws, func(tx authz.Tx) error {
		es, err := tx.Scan(authz.KeysCollection(ws, user), "", "", 0)
		for _, e := range es {
			ids = append(ids, e.ID)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func TestLastUsedAt(t *testing.T) {
	t.Parallel()
	forEachToucher(t, func(t *testing.T, open func(t *testing.T) authz.Store) {
		e := newEnv(t, open(t))
		t.Cleanup(e.svc.Close)
		u, _ := e.user("acme", "used", authz.KindAPI, authz.RoleAPIUser)
		keys, _ := e.svc.ListKeys(e.ctx, e.root, "acme", u.ID)
		if len(keys) != 1 || keys[0].LastUsedAt != nil {
			t.Fatalf("a fresh key has last_used_at: %+v", keys)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			keys, _ = e.svc.ListKeys(e.ctx, e.root, "acme", u.ID)
			if keys[0].LastUsedAt != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("last_used_at never set after the key was used")
			}
			time.Sleep(50 * time.Millisecond)
		}
		if !keys[0].LastUsedAt.Equal(e.Now().Truncate(time.Second)) {
			t.Fatalf("last_used_at = %v, want %v", keys[0].LastUsedAt, e.Now())
		}
		k, err := e.svc.GetKey(e.ctx, e.root, "acme", u.ID, keys[0].ID)
		if err != nil || k.LastUsedAt == nil || !k.LastUsedAt.Equal(*keys[0].LastUsedAt) {
			t.Fatalf("GetKey: %v, last_used_at %v, want %v", err, k, keys[0].LastUsedAt)
		}
		// Changing the key keeps its last use.
		k, err = e.svc.UpdateKey(e.ctx, e.root, "acme", u.ID, keys[0].ID, authz.KeyPatch{RateLimit: setRate(rl(5, "60s", 0))})
		if err != nil || k.LastUsedAt == nil || !k.LastUsedAt.Equal(*keys[0].LastUsedAt) {
			t.Fatalf("UpdateKey: %v, last_used_at %+v, want %v", err, k, keys[0].LastUsedAt)
		}
		// A revoked key is not brought back by a late touch, and leaves
		// nothing behind.
		if err := e.svc.RevokeKey(e.ctx, e.root, "acme", u.ID, keys[0].ID); err != nil {
			t.Fatal(err)
		}
		if got := credentialRecords(t, e.svc.Store(), "acme", u.ID); len(got) != 0 {
			t.Fatalf("records left by the revoked key: %v", got)
		}
		e.Advance(2 * time.Minute)
		e.svc.Authenticate(e.ctx, u.Key)
		e.svc.Close()
		keys, _ = e.svc.ListKeys(e.ctx, e.root, "acme", u.ID)
		if len(keys) != 0 {
			t.Fatalf("revoked key came back: %+v", keys)
		}
		if got := credentialRecords(t, e.svc.Store(), "acme", u.ID); len(got) != 0 {
			t.Fatalf("records left by a touch after the revocation: %v", got)
		}
	})
}

// An API user's session tokens show their last use as keys do, and an
// ended session leaves nothing behind.
func TestSessionLastUsedAt(t *testing.T) {
	t.Parallel()
	forEachToucher(t, func(t *testing.T, open func(t *testing.T) authz.Store) {
		e := newEnv(t, open(t))
		t.Cleanup(e.svc.Close)
		const pw = "glacier orbit lantern 42 mosaic"
		u, err := e.svc.CreateUser(e.ctx, e.root, "acme", authz.NewUser{Username: "device", Kind: authz.KindAPI, Role: authz.RoleAPIUser, Password: pw})
		if err != nil {
			t.Fatal(err)
		}
		tok, err := e.svc.SignInUser(e.ctx, "acme", "device", pw, "")
		if err != nil {
			t.Fatal(err)
		}
		session := func() authz.Session {
			ss, err := e.svc.ListSessions(e.ctx, e.root, nil, "acme", u.ID, "")
			if err != nil || len(ss) != 1 {
				t.Fatalf("ListSessions: %v %+v", err, ss)
			}
			return ss[0]
		}
		if s := session(); s.LastUsedAt != nil {
			t.Fatalf("an unused session has last_used_at %v", s.LastUsedAt)
		}
		e.Advance(10 * time.Second)
		actor, _, err := e.svc.Authenticate(e.ctx, tok.Token)
		if err != nil {
			t.Fatal(err)
		}
		want := e.Now().Truncate(time.Second)
		deadline := time.Now().Add(5 * time.Second)
		for s := session(); s.LastUsedAt == nil || !s.LastUsedAt.Equal(want); s = session() {
			if time.Now().After(deadline) {
				t.Fatalf("session last_used_at = %v, want %v", s.LastUsedAt, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err := e.svc.Logout(e.ctx, actor, nil, session().ID); err != nil {
			t.Fatal(err)
		}
		if got := credentialRecords(t, e.svc.Store(), "acme", u.ID); len(got) != 0 {
			t.Fatalf("records left by the ended session: %v", got)
		}
	})
}

// A principal loaded again (after an invalidation, a restart or on another
// instance) knows when its keys were last recorded as used: a use within a
// minute of that writes nothing, a use after it updates last_used_at.
func TestLastUsedAtNotRewrittenAfterReload(t *testing.T) {
	forEachToucher(t, func(t *testing.T, open func(t *testing.T) authz.Store) {
		e := newEnv(t, open(t))
		t.Cleanup(e.svc.Close)
		u, _ := e.user("acme", "reloaded", authz.KindAPI, authz.RoleAPIUser)
		lastUsed := func() *time.Time {
			keys, err := e.svc.ListKeys(e.ctx, e.root, "acme", u.ID)
			if err != nil || len(keys) != 1 {
				t.Fatalf("ListKeys: %v %v", keys, err)
			}
			return keys[0].LastUsedAt
		}
		waitFor := func(want time.Time) {
			deadline := time.Now().Add(5 * time.Second)
			for {
				if got := lastUsed(); got != nil && got.Equal(want) {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("last_used_at = %v, want %v", lastUsed(), want)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		first := e.Now().Truncate(time.Second)
		waitFor(first)

		// Reloaded 30 s later and used: nothing is written.
		e.Advance(30 * time.Second)
		e.svc.Apply(authz.Change{Workspace: "acme", Users: []string{u.ID}})
		e.auth(u.Key)
		time.Sleep(1500 * time.Millisecond) // longer than the writer gathers touches
		if got := lastUsed(); got == nil || !got.Equal(first) {
			t.Fatalf("a use 30 s after the recorded one rewrote last_used_at: %v, want %v", got, first)
		}
		// Used past the interval: written.
		e.Advance(31 * time.Second)
		e.svc.Apply(authz.Change{Workspace: "acme", Users: []string{u.ID}})
		e.auth(u.Key)
		waitFor(e.Now().Truncate(time.Second))
	})
}

// A key whose nbf lies ahead is refused on its first use (when it is not
// cached) as on later ones, and admitted once the time has come.
func TestKeyNotYetValid(t *testing.T) {
	st, err := filestore.Open(filepath.Join(t.TempDir(), "apiusers.db"), filestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := newEnv(t, st)
	u, _ := e.user("acme", "later", authz.KindAPI, authz.RoleAPIUser)
	cl, err := e.svc.Signer().Verify(u.Key)
	if err != nil {
		t.Fatal(err)
	}
	cl.NotBefore = e.Now().Add(time.Hour).Unix()
	later, err := e.svc.Signer().Sign(*cl, "")
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		_, _, err := e.svc.Authenticate(e.ctx, later)
		wantErr(t, err, authz.ErrNotYetValid)
	}
	e.Advance(time.Hour)
	e.auth(later)
}

// Keys written before use records existed hold their last use inside the
// key record ("l"): it still shows, counts for the touch interval after a
// reload, and a use record shows only when it is later.
func TestLastUsedAtOldLayout(t *testing.T) {
	forEachToucher(t, func(t *testing.T, open func(t *testing.T) authz.Store) {
		st := open(t)
		e := newEnv(t, st)
		t.Cleanup(e.svc.Close)
		u, _ := e.user("acme", "old", authz.KindAPI, authz.RoleAPIUser)
		lastUsed := func() time.Time {
			t.Helper()
			keys, err := e.svc.ListKeys(e.ctx, e.root, "acme", u.ID)
			if err != nil || len(keys) != 1 || keys[0].LastUsedAt == nil {
				t.Fatalf("ListKeys: %v %+v", err, keys)
			}
			k, err := e.svc.GetKey(e.ctx, e.root, "acme", u.ID, u.KeyID)
			if err != nil || k.LastUsedAt == nil || !k.LastUsedAt.Equal(*keys[0].LastUsedAt) {
				t.Fatalf("GetKey: %v %+v, ListKeys says %v", err, k, keys[0].LastUsedAt)
			}
			return *keys[0].LastUsedAt
		}
		first := e.Now().Truncate(time.Second)
		deadline := time.Now().Add(5 * time.Second)
		for {
			keys, _ := e.svc.ListKeys(e.ctx, e.root, "acme", u.ID)
			if len(keys) == 1 && keys[0].LastUsedAt != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("last_used_at never set")
			}
			time.Sleep(20 * time.Millisecond)
		}
		// Rewriting the key stores its last use in the key record; without
		// the use record, that is the layout of before.
		if _, err := e.svc.UpdateKey(e.ctx, e.root, "acme", u.ID, u.KeyID, authz.KeyPatch{RateLimit: setRate(rl(5, "60s", 0))}); err != nil {
			t.Fatal(err)
		}
		keys := authz.KeysCollection("acme", u.ID)
		err := st.Update(e.ctx, "acme", func(tx authz.Tx) error { return tx.Delete(keys, authz.UseID(u.KeyID)) })
		if err != nil {
			t.Fatal(err)
		}
		if got := credentialRecords(t, st, "acme", u.ID); len(got) != 1 || got[0] != u.KeyID {
			t.Fatalf("records = %v, want the key alone", got)
		}
		if got := lastUsed(); !got.Equal(first) {
			t.Fatalf("last_used_at from the key record = %v, want %v", got, first)
		}
		// Reloaded and used within the interval: nothing is written.
		e.Advance(30 * time.Second)
		e.svc.Apply(authz.Change{Workspace: "acme", Users: []string{u.ID}})
		e.auth(u.Key)
		time.Sleep(1500 * time.Millisecond)
		if got := credentialRecords(t, st, "acme", u.ID); len(got) != 1 {
			t.Fatalf("a use within the interval of the recorded one wrote %v", got)
		}
		// An earlier use recorded late (another instance's) does not move
		// it back; a later one moves it on.
		toucher := authz.TouchByUpdate(st)
		if tc, ok := st.(authz.Toucher); ok {
			toucher = tc
		}
		if err := toucher.Touch(e.ctx, []authz.Touch{{Workspace: "acme", User: u.ID, ID: u.KeyID, At: first.Unix() - 5}}); err != nil {
			t.Fatal(err)
		}
		if got := lastUsed(); !got.Equal(first) {
			t.Fatalf("last_used_at after an earlier use = %v, want %v", got, first)
		}
		if err := toucher.Touch(e.ctx, []authz.Touch{{Workspace: "acme", User: u.ID, ID: u.KeyID, At: first.Unix() + 7}}); err != nil {
			t.Fatal(err)
		}
		if got := lastUsed(); !got.Equal(first.Add(7 * time.Second)) {
			t.Fatalf("last_used_at after a later use = %v, want %v", got, first.Add(7*time.Second))
		}
	})
}
