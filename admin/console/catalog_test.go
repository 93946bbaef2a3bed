package console

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/filestore"
)

// catalog is assets/catalog.json: what the console knows of the roles and
// permissions to offer only what a caller may use.
type catalog struct {
	Roles map[string]struct {
		Permissions []string `json:"permissions"`
		Except      []string `json:"except"`
		APIOnly     bool     `json:"api_only"`
		Everywhere  bool     `json:"everywhere"`
	} `json:"roles"`
	Permissions       []string `json:"permissions"`
	ProjectPrivileges []string `json:"project_privileges"`
	DeviceRights      []string `json:"device_rights"`
	AuditActions      []string `json:"audit_actions"`
}

func readCatalog(t *testing.T) catalog {
	t.Helper()
	b, err := files.ReadFile("assets/catalog.json")
	if err != nil {
		t.Fatal(err)
	}
	var c catalog
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("catalog.json: %v", err)
	}
	return c
}

// TestCatalogMatchesAuthz checks the catalog against the domain: every
// built-in role, in the same order, with the permissions GET /me shows for
// a user of that role, and whether members may hold it; every permission
// the admin API checks is offered.
func TestCatalogMatchesAuthz(t *testing.T) {
	cat := readCatalog(t)
	var names []string
	for _, r := range authz.RoleNames {
		names = append(names, string(r))
	}
	var got []string
	for r := range cat.Roles {
		got = append(got, r)
	}
	slices.Sort(got)
	want := slices.Clone(names)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("catalog roles %v, authz %v", got, want)
	}
	if order := rolesOrder(t); !slices.Equal(order, names) {
		t.Errorf("catalog role order %v, authz %v", order, names)
	}

	st, err := filestore.Open(filepath.Join(t.TempDir(), "db"), filestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	signer, err := authz.NewSigner(authz.SignerConfig{Secret: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	cache, err := authz.NewCache(authz.CacheConfig{MaxPrincipals: 100, MaxKeys: 100})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := authz.NewService(authz.Config{Store: st, Signer: signer, Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	ctx := context.Background()
	root, err := svc.Bootstrap(ctx, "ws", "root")
	if err != nil {
		t.Fatal(err)
	}
	rootP, _, err := svc.Authenticate(ctx, root.Key)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range authz.RoleNames {
		d := cat.Roles[string(r)]
		u, err := svc.CreateUser(ctx, rootP, "ws", authz.NewUser{Username: "u-" + string(r), Kind: authz.KindAPI, Role: r, IssueKey: true})
		if err != nil {
			t.Fatalf("creating a %s: %v", r, err)
		}
		p, _, err := svc.Authenticate(ctx, u.Key)
		if err != nil {
			t.Fatal(err)
		}
		me, err := svc.Me(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(me.Permissions, d.Permissions) || !slices.Equal(orNone(me.Except), orNone(d.Except)) {
			t.Errorf("%s: GET /me shows %v except %v, the catalog %v except %v", r, me.Permissions, me.Except, d.Permissions, d.Except)
		}
		_, err = svc.CreateUser(ctx, rootP, "ws", authz.NewUser{Username: "m-" + string(r), Kind: authz.KindMember, Role: r})
		if apiOnly := errors.Is(err, authz.ErrInvalid); apiOnly != d.APIOnly {
			t.Errorf("%s: a member may hold it: %v (%v); the catalog says api_only %v", r, err == nil, err, d.APIOnly)
		}
		if d.Everywhere != (r == authz.RoleSuperadmin) {
			t.Errorf("%s: everywhere %v", r, d.Everywhere)
		}
	}
	for _, p := range []string{
		authz.PermUsersRead, authz.PermUsersManage, authz.PermUsersManageBasic, authz.PermUsersRegister,
		authz.PermKeysManage, authz.PermKeysReveal, authz.PermTeamsManage, authz.PermAuditRead,
		authz.PermMessagesRead, authz.PermWorkspacesManage,
	} {
		if !slices.Contains(cat.Permissions, p) {
			t.Errorf("the catalog does not offer %s", p)
		}
	}
	for _, a := range []string{
		authz.ActionUserCreate, authz.ActionUserUpdate, authz.ActionUserStatus, authz.ActionUserDelete,
		authz.ActionKeyCreate, authz.ActionKeyRegenerate, authz.ActionKeyRevoke, authz.ActionKeyReveal,
		authz.ActionTeamCreate, authz.ActionTeamUpdate, authz.ActionTeamDelete, authz.ActionTeamMemberAdd,
		authz.ActionTeamMemberRemove, authz.ActionWorkspaceCreate,
		authz.ActionSignIn, authz.ActionSignOut, authz.ActionSessionEnd, authz.ActionInvitationSend,
		authz.ActionInvitationResend, authz.ActionInvitationAccept, authz.ActionPasswordSet,
		authz.ActionPasswordChange, authz.ActionPasswordResetSend, authz.ActionPasswordReset,
		authz.ActionAccountUpdate,
	} {
		if !slices.Contains(cat.AuditActions, a) {
			t.Errorf("the catalog does not list the audit action %s", a)
		}
	}
	if len(cat.ProjectPrivileges) != 10 {
		t.Errorf("%d project privileges, want ten", len(cat.ProjectPrivileges))
	}
}

func orNone(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// rolesOrder reads the role names in the order catalog.json lists them.
func rolesOrder(t *testing.T) []string {
	t.Helper()
	b, _ := files.ReadFile("assets/catalog.json")
	var raw struct {
		Roles json.RawMessage `json:"roles"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw.Roles))
	var out []string
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		switch v := tok.(type) {
		case json.Delim:
			if v == '{' || v == '[' {
				depth++
			} else {
				depth--
			}
		case string:
			if depth == 1 {
				out = append(out, v)
				// skip the value
				var skip json.RawMessage
				if err := dec.Decode(&skip); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return out
}
