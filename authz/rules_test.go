package authz_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apiusers/apiusers/authz"
)

// mk creates a user as root with the given extras and a key, and returns it
// with its principal.
func (e *env) mk(name string, role authz.Role, perms []string, grants []authz.Grant) (*authz.CreatedUser, *authz.Principal) {
	e.t.Helper()
	kind := authz.KindAPI
	cu, err := e.svc.CreateUser(e.ctx, e.root, "acme", authz.NewUser{Username: name, Kind: kind, Role: role,
		Permissions: perms, Grants: grants, IssueKey: true, PrivateNote: "note of " + name})
	if err != nil {
		e.t.Fatalf("creating %s: %v", name, err)
	}
	return cu, e.auth(cu.Key)
}

// borrowing lists every way of acting through a user: whoever may do any
// of them could act with the target's rights.
func borrowing(t *testing.T, e *env, actor *authz.Principal, target *authz.CreatedUser) map[string]error {
	t.Helper()
	org := "changed"
	_, updErr := e.svc.UpdateUser(e.ctx, actor, "acme", target.ID, authz.UserPatch{Organization: &org}, nil)
	_, keyErr := e.svc.CreateKey(e.ctx, actor, "acme", target.ID, authz.NewKey{Name: "borrowed"})
	_, revErr := e.svc.RevealKey(e.ctx, actor, "acme", target.ID, target.KeyID)
	_, regErr := e.svc.RegenerateKey(e.ctx, actor, "acme", target.ID, target.KeyID, authz.MaxGrace)
	_, stErr := e.svc.SetStatus(e.ctx, actor, "acme", target.ID, authz.StatusInactive)
	return map[string]error{"update": updErr, "create key": keyErr, "reveal": revErr, "regenerate": regErr, "status": stErr}
}

func wantAllForbidden(t *testing.T, what string, errs map[string]error) {
	t.Helper()
	for op, err := range errs {
		if !errors.Is(err, authz.ErrForbidden) {
			t.Errorf("%s: %s = %v, want forbidden", what, op, err)
		}
	}
}

func TestNoPrivilegeBorrowing(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(t *testing.T) authz.Store) {
		e := newEnv(t, open(t))
		ctx := e.ctx
		// A manager below admin: an operator that was given the powers to
		// manage users and their keys.
		mgrPerms := []string{"users.manage", "users.read", "keys.manage", "keys.reveal", "teams.manage"}
		_, mgr := e.mk("mgr", authz.RoleOperator, mgrPerms, nil)

		t.Run("same role, more permissions", func(t *testing.T) {
			target, _ := e.mk("peer-perm", authz.RoleOperator, append(append([]string{}, mgrPerms...), "rules.manage"), nil)
			wantAllForbidden(t, "operator with rules.manage", borrowing(t, e, mgr, target))
			u, err := e.svc.GetUser(ctx, mgr, "acme", target.ID)
			if err != nil || u.PrivateNote != "" {
				t.Fatalf("a caller that may not manage the user reads its private_note: %v %q", err, u.PrivateNote)
			}
		})
		t.Run("lower role, more grants", func(t *testing.T) {
			target, _ := e.mk("low-grant", authz.RoleViewer, nil, []authz.Grant{{Resource: "device:d1", Rights: []string{"control"}}})
			wantAllForbidden(t, "viewer with a device grant", borrowing(t, e, mgr, target))
		})
		t.Run("lower role, rights through a team", func(t *testing.T) {
			team, err := e.svc.CreateTeam(ctx, e.root, "acme", authz.NewTeam{Name: "devices",
				Permissions: []string{"records.add"}, Grants: []authz.Grant{{Resource: "device:*", Rights: []string{"read"}}}})
			if err != nil {
				t.Fatal(err)
			}
			target, _ := e.mk("low-team", authz.RoleViewer, nil, nil)
			if err := e.svc.AddMember(ctx, e.root, "acme", team.ID, target.ID); err != nil {
				t.Fatal(err)
			}
			wantAllForbidden(t, "viewer in a team", borrowing(t, e, mgr, target))
			// Once the manager holds what the team gives, it manages the member.
			if _, err := e.svc.UpdateUser(ctx, e.root, "acme", mgr.UserID, authz.UserPatch{
				Permissions: &[]string{"users.manage", "users.read", "keys.manage", "keys.reveal", "teams.manage", "records.add"},
				Grants:      &[]authz.Grant{{Resource: "device:*", Rights: []string{"read"}}},
			}, nil); err != nil {
				t.Fatal(err)
			}
			mgr2 := e.auth(mustKey(t, e, mgr.UserID))
			for op, err := range borrowing(t, e, mgr2, target) {
				if err != nil {
					t.Errorf("a manager holding everything the target holds: %s: %v", op, err)
				}
			}
		})
		t.Run("an admin reaches neither a holder of workspaces.manage nor superadmin", func(t *testing.T) {
			_, admin := e.mk("adm", authz.RoleAdmin, nil, nil)
			wsAdmin, _ := e.mk("wsadm", authz.RoleAdmin, []string{"workspaces.manage"}, nil)
			wantAllForbidden(t, "admin holding workspaces.manage", borrowing(t, e, admin, wsAdmin))
			// An admin still manages users within its rights, grants included.
			plain, _ := e.mk("plain", authz.RoleAPIUser, []string{"rules.manage"}, []authz.Grant{{Resource: "device:d9", Rights: []string{"control"}}})
			for op, err := range borrowing(t, e, admin, plain) {
				if err != nil {
					t.Errorf("admin on an api_user within its rights: %s: %v", op, err)
				}
			}
		})
		t.Run("workspaces.manage never makes a superadmin", func(t *testing.T) {
			team, err := e.svc.CreateTeam(ctx, e.root, "acme", authz.NewTeam{Name: "ws-managers", Permissions: []string{"workspaces.manage"}})
			if err != nil {
				t.Fatal(err)
			}
			direct, directP := e.mk("ws-direct", authz.RoleAdmin, []string{"workspaces.manage"}, nil)
			viaTeam, _ := e.mk("ws-team", authz.RoleAdmin, nil, nil)
			if err := e.svc.AddMember(ctx, e.root, "acme", team.ID, viaTeam.ID); err != nil {
				t.Fatal(err)
			}
			viaTeamP := e.auth(viaTeam.Key)
			if !viaTeamP.HasPermission("workspaces.manage") {
				t.Fatal("the team does not give workspaces.manage")
			}
			super := authz.RoleSuperadmin
			for name, p := range map[string]*authz.Principal{"direct": directP, "team": viaTeamP} {
				_, err := e.svc.UpdateUser(ctx, p, "acme", p.UserID, authz.UserPatch{Role: &super}, nil)
				wantErr(t, err, authz.ErrForbidden)
				other, _ := e.mk("victim-"+name, authz.RoleViewer, nil, nil)
				_, err = e.svc.UpdateUser(ctx, p, "acme", other.ID, authz.UserPatch{Role: &super}, nil)
				wantErr(t, err, authz.ErrForbidden)
				_, err = e.svc.CreateUser(ctx, p, "acme", authz.NewUser{Username: "su-" + name, Kind: authz.KindAPI, Role: authz.RoleSuperadmin})
				wantErr(t, err, authz.ErrForbidden)
				wantAllForbidden(t, name+" on the root superadmin", borrowing(t, e, p, &authz.CreatedUser{User: authz.User{ID: e.root.UserID}}))
			}
			got, err := e.svc.GetUser(ctx, e.root, "acme", direct.ID)
			if err != nil || got.Role != authz.RoleAdmin {
				t.Fatalf("role after the attempts: %v %s", err, got.Role)
			}
			if p := e.auth(direct.Key); p.Everywhere || p.InWorkspace("elsewhere") {
				t.Fatal("a workspace admin reaches other workspaces")
			}
		})
		t.Run("nobody changes its own role", func(t *testing.T) {
			_, admin := e.mk("self-admin", authz.RoleAdmin, nil, nil)
			down := authz.RoleEditor
			_, err := e.svc.UpdateUser(ctx, admin, "acme", admin.UserID, authz.UserPatch{Role: &down}, nil)
			wantErr(t, err, authz.ErrForbidden)
			_, err = e.svc.UpdateUser(ctx, e.root, "acme", e.root.UserID, authz.UserPatch{Role: &down}, nil)
			wantErr(t, err, authz.ErrForbidden)
			// The same role is no change.
			same := authz.RoleAdmin
			if _, err := e.svc.UpdateUser(ctx, admin, "acme", admin.UserID, authz.UserPatch{Role: &same}, nil); err != nil {
				t.Fatalf("restating its own role: %v", err)
			}
		})
		t.Run("api_business and api_registration reach only plain api_basic users", func(t *testing.T) {
			_, biz := e.mk("biz", authz.RoleAPIBusiness, nil, nil)
			_, reg := e.mk("reg", authz.RoleAPIRegistration, nil, nil)
			team, err := e.svc.CreateTeam(ctx, e.root, "acme", authz.NewTeam{Name: "basic-plus", Permissions: []string{"users.read"}})
			if err != nil {
				t.Fatal(err)
			}
			elevated, _ := e.mk("basic-elevated", authz.RoleAPIBasic, nil, []authz.Grant{{Resource: "device:d1", Rights: []string{"read"}}})
			inTeam, _ := e.mk("basic-team", authz.RoleAPIBasic, nil, nil)
			if err := e.svc.AddMember(ctx, e.root, "acme", team.ID, inTeam.ID); err != nil {
				t.Fatal(err)
			}
			for _, target := range []*authz.CreatedUser{elevated, inTeam} {
				wantAllForbidden(t, "api_business on "+target.Username, borrowing(t, e, biz, target))
				_, err := e.svc.SetStatus(ctx, reg, "acme", target.ID, authz.StatusInactive)
				wantErr(t, err, authz.ErrForbidden)
			}
			plain, _ := e.mk("basic-plain", authz.RoleAPIBasic, nil, nil)
			if _, err := e.svc.CreateKey(ctx, biz, "acme", plain.ID, authz.NewKey{Name: "biz"}); err != nil {
				t.Fatalf("api_business minting a key for a plain api_basic user: %v", err)
			}
			if _, err := e.svc.SetStatus(ctx, reg, "acme", plain.ID, authz.StatusInactive); err != nil {
				t.Fatalf("api_registration disabling a plain api_basic user: %v", err)
			}
		})
		t.Run("api_registration never restores from trash", func(t *testing.T) {
			_, reg := e.mk("reg2", authz.RoleAPIRegistration, nil, nil)
			trashed, _ := e.mk("basic-trashed", authz.RoleAPIBasic, nil, nil)
			if _, err := e.svc.SetStatus(ctx, e.root, "acme", trashed.ID, authz.StatusTrash); err != nil {
				t.Fatal(err)
			}
			for _, to := range []authz.Status{authz.StatusActive, authz.StatusInactive, authz.StatusTrash} {
				_, err := e.svc.SetStatus(ctx, reg, "acme", trashed.ID, to)
				wantErr(t, err, authz.ErrForbidden)
			}
			if u, err := e.svc.GetUser(ctx, e.root, "acme", trashed.ID); err != nil || u.Status != authz.StatusTrash {
				t.Fatalf("after the attempts: %v %s", err, u.Status)
			}
			if _, _, err := e.svc.Authenticate(ctx, trashed.Key); !errors.Is(err, authz.ErrUnauthenticated) {
				t.Fatalf("the trashed user's key: %v", err)
			}
		})
	})
}

// mustKey mints a fresh key for user id as root.
func mustKey(t *testing.T, e *env, id string) string {
	t.Helper()
	k, err := e.svc.CreateKey(e.ctx, e.root, "acme", id, authz.NewKey{Name: "fresh"})
	if err != nil {
		t.Fatal(err)
	}
	return k.Secret
}

// TestInvalidKeysAnswerAlike: a 401 says only what the key's rightful
// holder can act on; the precise reason is for the log.
func TestInvalidKeysAnswerAlike(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(t *testing.T) authz.Store) {
		e := newEnv(t, open(t))
		ctx := e.ctx
		revoked, _ := e.mk("ans-revoked", authz.RoleAPIUser, nil, nil)
		inactive, _ := e.mk("ans-inactive", authz.RoleAPIUser, nil, nil)
		deleted, _ := e.mk("ans-deleted", authz.RoleAPIUser, nil, nil)
		if err := e.svc.RevokeKey(ctx, e.root, "acme", revoked.ID, revoked.KeyID); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.SetStatus(ctx, e.root, "acme", inactive.ID, authz.StatusInactive); err != nil {
			t.Fatal(err)
		}
		e.svc.SetStatus(ctx, e.root, "acme", deleted.ID, authz.StatusTrash)
		if err := e.svc.DeleteUser(ctx, e.root, "acme", deleted.ID, false); err != nil {
			t.Fatal(err)
		}
		live, _ := e.mk("ans-live", authz.RoleAPIUser, nil, nil)
		cl, err := e.svc.Signer().Verify(live.Key)
		if err != nil {
			t.Fatal(err)
		}
		sign := func(c authz.Claims) string {
			k, err := e.svc.Signer().Sign(c, "")
			if err != nil {
				t.Fatal(err)
			}
			return k
		}
		unknown := *cl
		unknown.KeyID = "key_00000000000000000000000000"
		early := *cl
		early.NotBefore = e.Now().Add(time.Hour).Unix()
		late := *cl
		late.ExpiresAt = e.Now().Add(-time.Hour).Unix()
		reasons := map[string]bool{}
		for name, key := range map[string]string{
			"revoked": revoked.Key, "inactive": inactive.Key, "deleted": deleted.Key, "unknown": sign(unknown),
			"bad signature": live.Key[:len(live.Key)-2] + "AA", "malformed": "x.y.z", "not yet valid": sign(early),
		} {
			_, _, err := e.svc.Authenticate(ctx, key)
			var ae *authz.Error
			if !errors.As(err, &ae) || !errors.Is(err, authz.ErrUnauthenticated) || ae.Detail != authz.DetailInvalidKey {
				t.Errorf("%s: %v, want %q", name, err, authz.DetailInvalidKey)
				continue
			}
			reasons[ae.Reason()] = true
		}
		if len(reasons) < 5 {
			t.Errorf("the log cannot tell the reasons apart: %v", reasons)
		}
		_, _, err = e.svc.Authenticate(ctx, sign(late))
		wantErr(t, err, authz.ErrExpiredKey)
		_, _, err = e.svc.Authenticate(ctx, "")
		wantErr(t, err, authz.ErrNoKey)
	})
}

// TestAuditHidesWhatReadingHides: the audit log shows a reader no field
// that reading the user would hide from it.
func TestAuditHidesWhatReadingHides(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(t *testing.T) authz.Store) {
		e := newEnv(t, open(t))
		ctx := e.ctx
		_, admin := e.mk("aud-admin", authz.RoleAdmin, nil, nil)
		_, editor := e.mk("aud-editor", authz.RoleEditor, nil, nil) // audit.read and users.read, no users.manage
		target, _ := e.mk("aud-target", authz.RoleAPIUser, nil, nil)
		note := "owes money"
		if _, err := e.svc.UpdateUser(ctx, admin, "acme", target.ID, authz.UserPatch{PrivateNote: &note}, nil); err != nil {
			t.Fatal(err)
		}
		// A reader with audit.read reads the target's audit entries, but
		// may not read its note.
		auditor, _ := e.mk("aud-auditor", authz.RoleAPIUser, []string{"audit.read"}, nil)
		auditorP := e.auth(mustKey(t, e, auditor.ID))
		if u, err := e.svc.GetUser(ctx, editor, "acme", target.ID); err != nil || u.PrivateNote != "" {
			t.Fatalf("the editor reads the note from the user: %v %q", err, u.PrivateNote)
		}
		notes := func(p *authz.Principal) (n int) {
			t.Helper()
			entries, _, err := e.svc.ListAudit(ctx, p, "acme", authz.Page{Limit: 500})
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range entries {
				if a.Target != target.ID {
					continue
				}
				if _, ok := a.Changes["private_note"]; ok {
					n++
				}
				raw, _ := json.Marshal(a)
				if strings.Contains(string(raw), note) && p != admin && p != e.root {
					t.Errorf("the audit log shows the note: %s", raw)
				}
			}
			return n
		}
		if n := notes(editor); n != 0 {
			t.Errorf("editor sees %d private_note changes", n)
		}
		if n := notes(auditorP); n != 0 {
			t.Errorf("an audit.read holder sees %d private_note changes", n)
		}
		if n := notes(admin); n != 2 { // created with one, then changed
			t.Errorf("admin sees %d private_note changes, want 2", n)
		}
		if n := notes(e.root); n != 2 {
			t.Errorf("superadmin sees %d private_note changes, want 2", n)
		}
		// The user itself, given audit.read, does not see its own note.
		if _, err := e.svc.UpdateUser(ctx, e.root, "acme", target.ID, authz.UserPatch{Permissions: &[]string{"audit.read"}}, nil); err != nil {
			t.Fatal(err)
		}
		targetP := e.auth(target.Key)
		if n := notes(targetP); n != 0 {
			t.Errorf("the user sees %d changes of its own note", n)
		}
		// Once the user is gone, only a superadmin still sees it.
		e.svc.SetStatus(ctx, e.root, "acme", target.ID, authz.StatusTrash)
		if err := e.svc.DeleteUser(ctx, e.root, "acme", target.ID, false); err != nil {
			t.Fatal(err)
		}
		if n := notes(admin); n != 0 {
			t.Errorf("admin sees %d private_note changes of a deleted user", n)
		}
		if n := notes(e.root); n != 2 {
			t.Errorf("superadmin sees %d private_note changes of a deleted user, want 2", n)
		}
	})
}

// TestRegenerateWithinKeyLimit: during a grace both keys work, so a
// regeneration with grace must leave room for the new key; one without
// grace replaces the old key and always fits.
func TestRegenerateWithinKeyLimit(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(t *testing.T) authz.Store) {
		e := newEnv(t, open(t))
		ctx := e.ctx
		u, _ := e.mk("key-hoarder", authz.RoleAPIUser, nil, nil)
		for len(mustKeys(t, e, u.ID)) < authz.MaxKeysPerUser {
			if _, err := e.svc.CreateKey(ctx, e.root, "acme", u.ID, authz.NewKey{Name: "k"}); err != nil {
				t.Fatal(err)
			}
		}
		_, err := e.svc.RegenerateKey(ctx, e.root, "acme", u.ID, u.KeyID, time.Hour)
		wantErr(t, err, authz.ErrConflict)
		if n := len(mustKeys(t, e, u.ID)); n != authz.MaxKeysPerUser {
			t.Fatalf("%d keys after a refused regeneration, want %d", n, authz.MaxKeysPerUser)
		}
		if _, _, err := e.svc.Authenticate(ctx, u.Key); err != nil {
			t.Fatalf("the old key after a refused regeneration: %v", err)
		}
		k, err := e.svc.RegenerateKey(ctx, e.root, "acme", u.ID, u.KeyID, 0)
		if err != nil {
			t.Fatalf("regenerating without grace at the limit: %v", err)
		}
		if n := len(mustKeys(t, e, u.ID)); n != authz.MaxKeysPerUser {
			t.Fatalf("%d keys after regenerating without grace, want %d", n, authz.MaxKeysPerUser)
		}
		// Below the limit, a grace fits: both keys live until it ends.
		if err := e.svc.RevokeKey(ctx, e.root, "acme", u.ID, k.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.RegenerateKey(ctx, e.root, "acme", u.ID, mustKeys(t, e, u.ID)[0].ID, time.Hour); err != nil {
			t.Fatalf("a grace with room for it: %v", err)
		}
		if n := len(mustKeys(t, e, u.ID)); n != authz.MaxKeysPerUser {
			t.Fatalf("%d keys during the grace, want %d", n, authz.MaxKeysPerUser)
		}
	})
}

func mustKeys(t *testing.T, e *env, id string) []authz.Key {
	t.Helper()
	ks, err := e.svc.ListKeys(e.ctx, e.root, "acme", id)
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func TestAllowedEdges(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(t *testing.T) authz.Store) {
		e := newEnv(t, open(t))
		target, _ := e.mk("edge", authz.RoleAPIUser, nil, nil)
		_, admin := e.mk("edge-admin", authz.RoleAdmin, nil, nil)
		got, err := e.svc.Allowed(e.ctx, admin, nil, "acme", target.ID, "usr_nobody", admin.UserID)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 3 || len(got[0]) == 0 || got[1] == nil || len(got[1]) != 0 {
			t.Fatalf("allowed %q: want verbs for the user, none (and not null) for a missing one", got)
		}
		// Its own record: it updates itself, but changes neither its own
		// role nor its own limits, nor sets its own password.
		for _, v := range []string{authz.AllowRole, authz.AllowLimits, authz.AllowPassword, authz.AllowKeysLimits} {
			if slices.Contains(got[2], v) {
				t.Errorf("an admin on itself is allowed %s: %v", v, got[2])
			}
		}
		if !slices.Contains(got[2], authz.AllowUpdate) || !slices.Contains(got[2], authz.AllowKeys) {
			t.Errorf("an admin on itself: %v", got[2])
		}
		// Another workspace's caller is allowed nothing here.
		if _, err := e.svc.CreateWorkspace(e.ctx, e.root, authz.Workspace{ID: "other"}); err != nil {
			t.Fatal(err)
		}
		cu, err := e.svc.CreateUser(e.ctx, e.root, "other", authz.NewUser{Username: "stranger", Kind: authz.KindAPI, Role: authz.RoleAdmin, IssueKey: true})
		if err != nil {
			t.Fatal(err)
		}
		got, err = e.svc.Allowed(e.ctx, e.auth(cu.Key), nil, "acme", target.ID)
		if err != nil || len(got) != 1 || len(got[0]) != 0 {
			t.Fatalf("a caller of another workspace: %q %v", got, err)
		}
	})
}
