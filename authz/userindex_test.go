package authz_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/apiusers/apiusers/authz"
)

// listNames lists every page of f in ws (pages of limit) and returns the
// usernames in order; it fails on a page that repeats a user.
func (e *env) listNames(ws string, f authz.UserFilter, limit int) []string {
	e.t.Helper()
	var out []string
	seen := map[string]bool{}
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 1000 {
			e.t.Fatal("too many pages")
		}
		us, next, err := e.svc.ListUsers(e.ctx, e.root, ws, f, authz.Page{Limit: limit, Cursor: cursor})
		if err != nil {
			e.t.Fatalf("listing %+v: %v", f, err)
		}
		for _, u := range us {
			if seen[u.ID] {
				e.t.Fatalf("listing %+v: %s twice", f, u.Username)
			}
			seen[u.ID] = true
			out = append(out, u.Username)
		}
		if next == "" {
			return out
		}
		cursor = next
	}
}

// TestUserIndex: lists by kind and status and searches by prefix follow
// every change of a user (create, rename, new email, status, delete), page
// without repeating anyone, list a user whose username and email both
// match once, and refuse a cursor of another list.
func TestUserIndex(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(t *testing.T) authz.Store) {
		e := newEnv(t, open(t))
		ctx := e.ctx
		mk := func(name string, kind authz.Kind, email string) *authz.CreatedUser {
			t.Helper()
			role := authz.RoleAPIUser
			if kind == authz.KindMember {
				role = authz.RoleViewer
			}
			e.Advance(time.Millisecond) // ids in creation order
			cu, err := e.svc.CreateUser(ctx, e.root, "acme", authz.NewUser{Username: name, Kind: kind, Role: role, Email: email})
			if err != nil {
				t.Fatal(err)
			}
			return cu
		}
		ann := mk("ann", authz.KindAPI, "ann@example.com")
		mk("anna", authz.KindAPI, "")
		bob := mk("bob", authz.KindAPI, "annex@example.com")
		mk("Ärger", authz.KindAPI, "")
		mia := mk("mia", authz.KindMember, "mia@example.com")

		want := func(f authz.UserFilter, exp ...string) {
			t.Helper()
			for _, limit := range []int{1, 2, 50} {
				if got := e.listNames("acme", f, limit); !slices.Equal(got, exp) {
					t.Errorf("%+v (pages of %d): %q, want %q", f, limit, got, exp)
				}
			}
		}
		api, member := authz.KindAPI, authz.KindMember
		want(authz.UserFilter{Kind: api, Q: "ann"}, "ann", "anna", "bob")
		want(authz.UserFilter{Q: "ANN"}, "ann", "anna", "bob")
		want(authz.UserFilter{Kind: api, Q: "annex"}, "bob")
		want(authz.UserFilter{Q: "ärg"}, "Ärger")
		want(authz.UserFilter{Q: "nobody"})
		want(authz.UserFilter{Kind: member}, "mia")
		want(authz.UserFilter{Kind: member, Q: "ann"})
		want(authz.UserFilter{Kind: api, Status: authz.StatusActive}, "root", "ann", "anna", "bob", "Ärger")
		want(authz.UserFilter{Kind: api, Status: authz.StatusTrash})

		// A status change moves the user between the lists.
		if _, err := e.svc.SetStatus(ctx, e.root, "acme", bob.ID, authz.StatusTrash); err != nil {
			t.Fatal(err)
		}
		want(authz.UserFilter{Kind: api, Status: authz.StatusTrash}, "bob")
		want(authz.UserFilter{Kind: api, Status: authz.StatusActive}, "root", "ann", "anna", "Ärger")
		want(authz.UserFilter{Kind: api}, "root", "ann", "anna", "bob", "Ärger")
		want(authz.UserFilter{Kind: api, Status: authz.StatusTrash, Q: "ann"}, "bob")
		want(authz.UserFilter{Kind: api, Status: authz.StatusActive, Q: "ann"}, "ann", "anna")

		// A new username and a new email are found by the new ones only.
		name, mail := "zed", "zed@example.com"
		if _, err := e.svc.UpdateUser(ctx, e.root, "acme", ann.ID, authz.UserPatch{Username: &name, Email: &mail}, nil); err != nil {
			t.Fatal(err)
		}
		want(authz.UserFilter{Q: "ann"}, "anna", "bob")
		want(authz.UserFilter{Q: "zed"}, "zed")
		want(authz.UserFilter{Q: "zed@"}, "zed")
		// Other changes (a team) keep the user where it was.
		tm, err := e.svc.CreateTeam(ctx, e.root, "acme", authz.NewTeam{Name: "crew"})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.svc.AddMember(ctx, e.root, "acme", tm.ID, mia.ID); err != nil {
			t.Fatal(err)
		}
		want(authz.UserFilter{Kind: member, Team: tm.ID}, "mia")
		want(authz.UserFilter{Q: "mia"}, "mia")

		// Deleted users leave the index.
		if err := e.svc.DeleteUser(ctx, e.root, "acme", bob.ID, false); err != nil {
			t.Fatal(err)
		}
		want(authz.UserFilter{Kind: api, Status: authz.StatusTrash})
		want(authz.UserFilter{Q: "annex"})
		want(authz.UserFilter{Kind: api}, "root", "zed", "anna", "Ärger")

		// A cursor of one list is not one of another.
		_, next, err := e.svc.ListUsers(ctx, e.root, "acme", authz.UserFilter{Kind: api, Status: authz.StatusActive}, authz.Page{Limit: 1})
		if err != nil || next == "" {
			t.Fatalf("a first page: %q, %v", next, err)
		}
		_, _, err = e.svc.ListUsers(ctx, e.root, "acme", authz.UserFilter{Kind: member, Status: authz.StatusActive}, authz.Page{Limit: 1, Cursor: next})
		wantErr(t, err, authz.ErrInvalid)
		_, _, err = e.svc.ListUsers(ctx, e.root, "acme", authz.UserFilter{Q: "anna"}, authz.Page{Limit: 1, Cursor: next})
		wantErr(t, err, authz.ErrInvalid)
	})
}

// TestUserIndexBackfill: a workspace whose users were written before the
// index existed (no index, no mark) is indexed on the first list, across
// several chunks, and lists and searches find everyone.
func TestUserIndexBackfill(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(t *testing.T) authz.Store) {
		st := open(t)
		e := newEnv(t, st)
		var in []authz.NewUser
		for i := 0; i < 1234; i++ {
			in = append(in, authz.NewUser{Username: fmt.Sprintf("old-%04d", i), Kind: authz.KindAPI, Role: authz.RoleAPIUser})
		}
		for i := 0; i < len(in); i += authz.MaxBulkUsers {
			if _, err := e.svc.CreateUsers(e.ctx, e.root, "acme", in[i:min(len(in), i+authz.MaxBulkUsers)]); err != nil {
				t.Fatal(err)
			}
		}
		// Take the index away, as in a store written by an older version.
		err := st.Update(e.ctx, "acme", func(tx authz.Tx) error {
			if err := tx.Drop(authz.Collection{Workspace: "acme", Name: authz.CollUserIndex}); err != nil {
				return err
			}
			return tx.Delete(authz.Collection{Workspace: "acme", Name: authz.CollMeta}, "userindex")
		})
		if err != nil {
			t.Fatal(err)
		}
		// A service that has not seen the workspace indexed.
		fresh := newEnvOn(t, st, e)
		got := fresh.listNames("acme", authz.UserFilter{Kind: authz.KindAPI, Status: authz.StatusActive}, 500)
		if len(got) != 1235 {
			t.Fatalf("after the backfill: %d active API users, want 1235", len(got))
		}
		if got := fresh.listNames("acme", authz.UserFilter{Q: "old-12"}, 50); len(got) != 34 || got[0] != "old-1200" {
			t.Errorf("old-12…: %d users, first %q", len(got), got)
		}
	})
}

// TestUserIndexBoundedRead: a search whose other filters match late reads
// at most a bounded part of the index per page; the pages in between are
// empty with a cursor, and following the cursors finds the user.
func TestUserIndexBoundedRead(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(t *testing.T) authz.Store) {
		e := newEnv(t, open(t))
		var in []authz.NewUser
		for i := 0; i < 4500; i++ {
			in = append(in, authz.NewUser{Username: fmt.Sprintf("u-%04d", i), Kind: authz.KindAPI, Role: authz.RoleAPIUser})
		}
		for i := 0; i < len(in); i += authz.MaxBulkUsers {
			if _, err := e.svc.CreateUsers(e.ctx, e.root, "acme", in[i:min(len(in), i+authz.MaxBulkUsers)]); err != nil {
				t.Fatal(err)
			}
		}
		last, err := e.svc.CreateUser(e.ctx, e.root, "acme", authz.NewUser{Username: "u-9999", Kind: authz.KindAPI, Role: authz.RoleAPIBasic})
		if err != nil {
			t.Fatal(err)
		}
		pages, cursor := 0, ""
		var found []string
		for {
			us, next, err := e.svc.ListUsers(e.ctx, e.root, "acme", authz.UserFilter{Q: "u-", Role: authz.RoleAPIBasic}, authz.Page{Limit: 50, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, u := range us {
				found = append(found, u.ID)
			}
			if next == "" {
				break
			}
			cursor = next
		}
		if !slices.Equal(found, []string{last.ID}) || pages != 3 {
			t.Errorf("found %v in %d pages, want the one api_basic user in 3 (2000 index entries a page)", found, pages)
		}
	})
}

// newEnvOn makes a second service over st (as another instance, or the
// same after a restart), acting as e's root.
func newEnvOn(t *testing.T, st authz.Store, e *env) *env {
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
	svc, err := authz.NewService(authz.Config{Store: st, Signer: signer, Cache: cache, Now: e.Now})
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, ctx: e.ctx, Clock: e.Clock, svc: svc, root: e.root}
}
