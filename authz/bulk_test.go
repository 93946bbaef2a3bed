package authz_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/apiusers/apiusers/authz"
)

// CreateUsers creates each user as CreateUser does (records, key, audit),
// all or nothing, under the same rules.
func TestCreateUsers(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(t *testing.T) authz.Store) {
		e := newEnv(t, open(t))
		auditCount := func() int {
			t.Helper()
			entries, _, err := e.svc.ListAudit(e.ctx, e.root, "acme", authz.Page{Limit: 500})
			if err != nil {
				t.Fatal(err)
			}
			return len(entries)
		}
		users := func() int {
			t.Helper()
			us, _, err := e.svc.ListUsers(e.ctx, e.root, "acme", authz.UserFilter{}, authz.Page{Limit: 500})
			if err != nil {
				t.Fatal(err)
			}
			return len(us)
		}
		audit0, users0 := auditCount(), users()

		in := make([]authz.NewUser, 3)
		for i := range in {
			in[i] = authz.NewUser{Username: fmt.Sprintf("bulk-%d", i), Kind: authz.KindAPI, Role: authz.RoleAPIUser, IssueKey: i < 2}
		}
		created, err := e.svc.CreateUsers(e.ctx, e.root, "acme", in)
		if err != nil {
			t.Fatal(err)
		}
		if len(created) != 3 || created[2].Key != "" {
			t.Fatalf("created %d users, third key %q", len(created), created[2].Key)
		}
		for _, cu := range created[:2] {
			if p := e.auth(cu.Key); p.UserID != cu.ID || p.Username != cu.Username {
				t.Fatalf("key of %s authenticates %s", cu.Username, p.UserID)
			}
		}
		if n := auditCount() - audit0; n != 5 {
			t.Fatalf("%d audit entries, want 5 (3 user.create, 2 key.create)", n)
		}
		if n := users() - users0; n != 3 {
			t.Fatalf("%d users listed, want 3", n)
		}

		// All or nothing: a name taken, or given twice, fails the batch.
		for _, bad := range [][]authz.NewUser{
			{{Username: "fresh-1", Kind: authz.KindAPI, Role: authz.RoleAPIUser}, {Username: "BULK-0", Kind: authz.KindAPI, Role: authz.RoleAPIUser}},
			{{Username: "fresh-2", Kind: authz.KindAPI, Role: authz.RoleAPIUser}, {Username: "Fresh-2", Kind: authz.KindAPI, Role: authz.RoleAPIUser}},
		} {
			_, err := e.svc.CreateUsers(e.ctx, e.root, "acme", bad)
			wantErr(t, err, authz.ErrConflict)
		}
		if n := users() - users0; n != 3 {
			t.Fatalf("%d users after failed batches, want 3", n)
		}
		if n := auditCount() - audit0; n != 5 {
			t.Fatalf("%d audit entries after failed batches, want 5", n)
		}

		// The rules of CreateUser hold for each user.
		_, editor := e.user("acme", "ed", authz.KindMember, authz.RoleEditor)
		_, err = e.svc.CreateUsers(e.ctx, editor, "acme", []authz.NewUser{{Username: "x", Kind: authz.KindAPI, Role: authz.RoleAPIUser}})
		wantErr(t, err, authz.ErrForbidden)
		_, reg := e.user("acme", "reg", authz.KindAPI, authz.RoleAPIRegistration)
		_, err = e.svc.CreateUsers(e.ctx, reg, "acme", []authz.NewUser{
			{Username: "b1", Kind: authz.KindAPI, Role: authz.RoleAPIBasic},
			{Username: "u1", Kind: authz.KindAPI, Role: authz.RoleAPIUser},
		})
		if !errors.Is(err, authz.ErrForbidden) && !errors.Is(err, authz.ErrInvalid) {
			t.Fatalf("api_registration creating an api_user in bulk: %v", err)
		}
		_, err = e.svc.CreateUsers(e.ctx, e.root, "acme", make([]authz.NewUser, authz.MaxBulkUsers+1))
		wantErr(t, err, authz.ErrInvalid)
		_, err = e.svc.CreateUsers(e.ctx, e.root, "acme", []authz.NewUser{{Username: "t", Kind: authz.KindAPI, Role: authz.RoleAPIUser, Teams: []string{"team_x"}}})
		wantErr(t, err, authz.ErrInvalid)
	})
}
