package admin

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/redisstore"
	"github.com/apiusers/apiusers/authz/redisstore/redistest"
)

// BenchmarkListUsers10k is the console's list of API users over a
// workspace of 10,000 of them, as the admin API serves it (server time:
// routing, authentication, the store, JSON): the first page, a page deep
// in the list (by cursor), a prefix search that finds ten users and one
// that finds none, the Active and Trash tabs (ten users in trash), and
// the Members tab (five members among the 10,000), on the file store and
// on a real redis-server. The target is at most 50 ms per
// request; the user index (authz/userindex.go) keeps each well below.
func BenchmarkListUsers10k(b *testing.B) {
	stores := []struct {
		name string
		open func(b *testing.B) authz.Store
	}{
		{"file", func(b *testing.B) authz.Store { return openStore(b) }},
		{"redis", func(b *testing.B) authz.Store {
			srv := redistest.Start(b)
			st, err := redisstore.New(redisstore.Options{URL: srv.URL()})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { st.Close() })
			return st
		}},
	}
	for _, s := range stores {
		b.Run(s.name, func(b *testing.B) {
			h, key, cursor := listFixture(b, s.open(b), 10000)
			for _, c := range []struct{ name, query string }{
				{"first-page", "kind=api&limit=50"},
				{"page-100", "kind=api&limit=50&cursor=" + url.QueryEscape(cursor)},
				{"prefix-10", "kind=api&limit=50&q=user-0123"},
				{"prefix-none", "kind=api&limit=50&q=nobody"},
				{"active-page", "kind=api&status=active&limit=50"},
				{"trash-page", "kind=api&status=trash&limit=50"},
				{"members-page", "kind=member&limit=50"},
			} {
				b.Run(c.name, func(b *testing.B) {
					r := httptest.NewRequest("GET", "/workspaces/ws/users?"+c.query, nil)
					r.Header.Set("Authorization", "Bearer "+key)
					b.ReportAllocs()
					for b.Loop() {
						w := httptest.NewRecorder()
						h.ServeHTTP(w, r)
						if w.Code != http.StatusOK {
							b.Fatalf("%s: %d %s", c.query, w.Code, w.Body)
						}
					}
				})
			}
		})
	}
}

// listFixture fills workspace ws of st with n API users (user-00000 …) and
// returns the admin handler, the superadmin's key and the cursor of the
// 100th page of 50.
func listFixture(b *testing.B, st authz.Store, n int) (*Handler, string, string) {
	b.Helper()
	svc := newService(b, st)
	ctx := context.Background()
	root, err := svc.Bootstrap(ctx, "ws", "root")
	if err != nil {
		b.Fatal(err)
	}
	p, _, err := svc.Authenticate(ctx, root.Key)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < n; i += authz.MaxBulkUsers {
		var batch []authz.NewUser
		for j := i; j < min(n, i+authz.MaxBulkUsers); j++ {
			batch = append(batch, authz.NewUser{Username: fmt.Sprintf("user-%05d", j), Kind: authz.KindAPI, Role: authz.RoleAPIUser, IssueKey: true})
		}
		if _, err := svc.CreateUsers(ctx, p, "ws", batch); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < 10; i++ {
		u, err := svc.CreateUser(ctx, p, "ws", authz.NewUser{Username: fmt.Sprintf("gone-%d", i), Kind: authz.KindAPI, Role: authz.RoleAPIUser, Status: authz.StatusTrash})
		if err != nil || u.Status != authz.StatusTrash {
			b.Fatal(err)
		}
	}
	for i := 0; i < 5; i++ {
		if _, err := svc.CreateUser(ctx, p, "ws", authz.NewUser{Username: fmt.Sprintf("person-%d", i), Kind: authz.KindMember, Role: authz.RoleViewer}); err != nil {
			b.Fatal(err)
		}
	}
	h := New(svc, Options{})
	cursor := ""
	for i := 0; i < 99; i++ {
		_, next, err := svc.ListUsers(ctx, p, "ws", authz.UserFilter{Kind: authz.KindAPI}, authz.Page{Limit: 50, Cursor: cursor})
		if err != nil || next == "" {
			b.Fatalf("page %d: %v", i, err)
		}
		cursor = next
	}
	return h, root.Key, cursor
}
