package storetest

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/internal/apitest"
)

// RunPeople runs the people rules through a Service on the store
// open returns: accounts, invitations, passwords, sign-in, sessions and
// one-time tokens behave the same on every store.
func RunPeople(t *testing.T, open func(t *testing.T) authz.Store) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, p *people)
	}{
		{"InviteAcceptSignIn", testInviteAcceptSignIn},
		{"SignInFailuresAreAlike", testSignInFailures},
		{"ResetOnce", testResetOnce},
		{"APIUserPassword", testAPIUserPassword},
		{"ChangePasswordEndsSessions", testChangePassword},
		{"NoSecretInRecords", testNoSecretInRecords},
		{"ResetLinkOnlyToWhoManagesAll", testResetLinkScope},
		{"NoAccountTakeover", testNoAccountTakeover},
		{"EndedSessionsPruned", testSessionsPruned},
		{"ResetMailsBounded", testResetsBounded},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newPeople(t, open(t))) })
	}
	t.Run("AcceptRacesResend", func(t *testing.T) { testAcceptRacesResend(t, open(t)) })
}

// people is a service over the store with a clock the test moves.
type people struct {
	t    *testing.T
	st   authz.Store
	svc  *authz.Service
	root *authz.Principal
	ctx  context.Context
	*apitest.Clock
}

func newPeople(t *testing.T, st authz.Store) *people {
	t.Helper()
	p := &people{t: t, st: st, ctx: context.Background(), Clock: apitest.NewClock(time.Now().UTC().Truncate(time.Second))}
	signer, err := authz.NewSigner(authz.SignerConfig{Secret: []byte("people-conformance-secret-0123456789")})
	if err != nil {
		t.Fatal(err)
	}
	cache, err := authz.NewCache(authz.CacheConfig{TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cache.Close)
	p.svc, err = authz.NewService(authz.Config{Store: st, Signer: signer, Cache: cache, Now: p.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.svc.Close)
	cu, err := p.svc.Bootstrap(p.ctx, "acme", "root")
	if err != nil {
		t.Fatal(err)
	}
	if p.root, _, err = p.svc.Authenticate(p.ctx, cu.Key); err != nil {
		t.Fatal(err)
	}
	if _, err := p.svc.CreateWorkspace(p.ctx, p.root, authz.Workspace{ID: "beta", Name: "Beta"}); err != nil {
		t.Fatal(err)
	}
	return p
}

const goodPassword = "glacier orbit lantern 42 mosaic"

func (p *people) invite(ws, email string) *authz.Invitation {
	p.t.Helper()
	inv, err := p.svc.Invite(p.ctx, p.root, ws, authz.NewInvitation{Email: email, Role: authz.RoleEditor})
	if err != nil {
		p.t.Fatalf("inviting %s to %s: %v", email, ws, err)
	}
	return inv
}

func wantKind(t *testing.T, what string, err, kind error) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("%s: %v, want %v", what, err, kind)
	}
}

func testInviteAcceptSignIn(t *testing.T, p *people) {
	inv := p.invite("acme", "Ana.Kovac@example.com")
	if inv.User.Status != authz.StatusInvited || inv.User.Kind != authz.KindMember || !strings.HasPrefix(inv.User.Account, "acc_") {
		t.Fatalf("invited membership: %+v", inv.User)
	}
	// An invited member cannot sign in.
	_, err := p.svc.SignInAccount(p.ctx, "ana.kovac@example.com", goodPassword, "")
	wantKind(t, "sign-in before accepting", err, authz.ErrUnauthenticated)

	_, err = p.svc.AcceptInvitation(p.ctx, inv.Token, "Ana", "short", nil)
	wantKind(t, "accepting with a weak password", err, authz.ErrInvalid)
	acc, err := p.svc.AcceptInvitation(p.ctx, inv.Token, "Ana Kovač", goodPassword, nil)
	if err != nil {
		t.Fatal(err)
	}
	if acc.Token == "" || !acc.Account.HasPassword || acc.Account.Name != "Ana Kovač" || len(acc.Memberships) != 1 ||
		acc.Memberships[0].Status != authz.StatusActive || acc.Memberships[0].Workspace != "acme" {
		t.Fatalf("accepted: %+v", acc)
	}
	_, err = p.svc.AcceptInvitation(p.ctx, inv.Token, "", goodPassword, nil)
	wantKind(t, "accepting twice", err, authz.ErrGone)

	// Sign in, in another letter case: one account.
	in, err := p.svc.SignInAccount(p.ctx, "ANA.kovac@EXAMPLE.com", goodPassword, "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	c, err := p.svc.ConsoleSession(p.ctx, in.Token)
	if err != nil || c.Account.ID != acc.Account.ID {
		t.Fatalf("console session: %v %+v", err, c)
	}
	if _, err := p.svc.ConsoleSession(p.ctx, in.Token+"x"); !errors.Is(err, authz.ErrUnauthenticated) {
		t.Fatalf("tampered token: %v", err)
	}

	// A second workspace's invitation for the same email joins the same
	// account; the first link of it dies when it is sent again, and an
	// expired one is gone too.
	inv2 := p.invite("beta", "ana.kovac@example.com")
	if inv2.User.Account != acc.Account.ID {
		t.Fatalf("second invitation made another account: %s vs %s", inv2.User.Account, acc.Account.ID)
	}
	if _, err := p.svc.Invite(p.ctx, p.root, "beta", authz.NewInvitation{Email: "ana.kovac@example.com", Role: authz.RoleViewer}); !errors.Is(err, authz.ErrConflict) {
		t.Fatalf("inviting a member again: %v", err)
	}
	again, err := p.svc.Reinvite(p.ctx, p.root, "beta", inv2.User.ID)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.svc.AcceptInvitation(p.ctx, inv2.Token, "", "", c)
	wantKind(t, "the replaced link", err, authz.ErrGone)
	_, err = p.svc.AcceptInvitation(p.ctx, again.Token, "", "", nil)
	wantKind(t, "an existing account, not signed in", err, authz.ErrUnauthenticated)
	p.Advance(8 * 24 * time.Hour)
	_, err = p.svc.AcceptInvitation(p.ctx, again.Token, "", "", c)
	wantKind(t, "an expired link", err, authz.ErrGone)
	if _, err := p.svc.ConsoleSession(p.ctx, in.Token); !errors.Is(err, authz.ErrUnauthenticated) {
		t.Fatalf("a session past its TTL: %v", err)
	}
	in, err = p.svc.SignInAccount(p.ctx, "ana.kovac@example.com", goodPassword, "")
	if err != nil {
		t.Fatal(err)
	}
	c, _ = p.svc.ConsoleSession(p.ctx, in.Token)
	fresh, err := p.svc.Reinvite(p.ctx, p.root, "beta", inv2.User.ID)
	if err != nil {
		t.Fatal(err)
	}
	done, err := p.svc.AcceptInvitation(p.ctx, fresh.Token, "", "", c)
	if err != nil || len(done.Memberships) != 2 || done.Token != "" {
		t.Fatalf("accepting signed in: %v %+v", err, done)
	}
	// Idle: a console session unused for session_idle ends.
	p.Advance(authz.DefaultSessionIdle + time.Second)
	if _, err := p.svc.ConsoleSession(p.ctx, in.Token); !errors.Is(err, authz.ErrUnauthenticated) {
		t.Fatalf("an idle session: %v", err)
	}
}

func testSignInFailures(t *testing.T, p *people) {
	inv := p.invite("acme", "bo@example.com")
	if _, err := p.svc.AcceptInvitation(p.ctx, inv.Token, "", goodPassword, nil); err != nil {
		t.Fatal(err)
	}
	var details []string
	for _, email := range []string{"bo@example.com", "nobody@example.com"} {
		_, err := p.svc.SignInAccount(p.ctx, email, "not the password at all", "")
		wantKind(t, email, err, authz.ErrUnauthenticated)
		details = append(details, err.Error())
	}
	if _, err := p.svc.SetStatus(p.ctx, p.root, "acme", inv.User.ID, authz.StatusInactive); err != nil {
		t.Fatal(err)
	}
	_, err := p.svc.SignInAccount(p.ctx, "bo@example.com", goodPassword, "")
	wantKind(t, "inactive member", err, authz.ErrUnauthenticated)
	details = append(details, err.Error())
	for _, d := range details[1:] {
		if d != details[0] {
			t.Fatalf("failures answer differently: %q", details)
		}
	}
	if _, err := p.svc.SetStatus(p.ctx, p.root, "acme", inv.User.ID, authz.StatusActive); err != nil {
		t.Fatal(err)
	}
	// Two failures so far count for bo (the unknown email is another
	// identity); three more reach the limit.
	for i := 0; i < 3; i++ {
		_, err := p.svc.SignInAccount(p.ctx, "bo@example.com", "still not the password", "")
		wantKind(t, "failure", err, authz.ErrUnauthenticated)
	}
	_, err = p.svc.SignInAccount(p.ctx, "bo@example.com", goodPassword, "")
	var te *authz.ThrottledError
	if !errors.As(err, &te) || te.RetryAfter <= 0 {
		t.Fatalf("sixth attempt: %v, want throttled", err)
	}
}

func testResetOnce(t *testing.T, p *people) {
	inv := p.invite("acme", "cy@example.com")
	if _, err := p.svc.AcceptInvitation(p.ctx, inv.Token, "", goodPassword, nil); err != nil {
		t.Fatal(err)
	}
	old, err := p.svc.SignInAccount(p.ctx, "cy@example.com", goodPassword, "")
	if err != nil {
		t.Fatal(err)
	}
	if m, err := p.svc.RequestReset(p.ctx, "nobody@example.com", ""); err != nil || m != nil {
		t.Fatalf("reset of an unknown email: %v %+v", err, m)
	}
	m, err := p.svc.RequestReset(p.ctx, "CY@example.com", "")
	if err != nil || m == nil || m.Email != "cy@example.com" {
		t.Fatalf("reset: %v %+v", err, m)
	}
	const next = "tundra velvet compass 7 harbor"
	if err := p.svc.ConfirmReset(p.ctx, m.Token, next); err != nil {
		t.Fatal(err)
	}
	wantKind(t, "the reset link again", p.svc.ConfirmReset(p.ctx, m.Token, "another fine passphrase 9"), authz.ErrGone)
	_, err = p.svc.SignInAccount(p.ctx, "cy@example.com", goodPassword, "")
	wantKind(t, "the old password", err, authz.ErrUnauthenticated)
	if _, err := p.svc.SignInAccount(p.ctx, "cy@example.com", next, ""); err != nil {
		t.Fatalf("the new password: %v", err)
	}
	if _, err := p.svc.ConsoleSession(p.ctx, old.Token); !errors.Is(err, authz.ErrUnauthenticated) {
		t.Fatalf("a session from before the reset: %v", err)
	}
}

func testAPIUserPassword(t *testing.T, p *people) {
	for _, ws := range []string{"acme", "beta"} {
		pw := goodPassword + " " + ws
		if _, err := p.svc.CreateUser(p.ctx, p.root, ws, authz.NewUser{Username: "device", Kind: authz.KindAPI, Role: authz.RoleAPIUser, Password: pw}); err != nil {
			t.Fatal(err)
		}
	}
	tok, err := p.svc.SignInUser(p.ctx, "acme", "DEVICE", goodPassword+" acme", "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.svc.SignInUser(p.ctx, "beta", "device", goodPassword+" acme", "")
	wantKind(t, "another workspace's password", err, authz.ErrUnauthenticated)
	pr, cl, err := p.svc.Authenticate(p.ctx, tok.Token)
	if err != nil || !strings.HasPrefix(cl.KeyID, "ses_") || pr.Username != "device" {
		t.Fatalf("session token: %v %+v", err, cl)
	}
	ss, err := p.svc.ListSessions(p.ctx, p.root, nil, "acme", pr.UserID, "")
	if err != nil || len(ss) != 1 || ss[0].ID != cl.KeyID || ss[0].Kind != authz.SessionToken {
		t.Fatalf("sessions: %v %+v", err, ss)
	}
	keys, err := p.svc.ListKeys(p.ctx, p.root, "acme", pr.UserID)
	if err != nil || len(keys) != 0 {
		t.Fatalf("a session listed as a key: %v %+v", err, keys)
	}
	if _, err := p.svc.RevealKey(p.ctx, p.root, "acme", pr.UserID, cl.KeyID); !errors.Is(err, authz.ErrNotFound) {
		t.Fatalf("revealing a session as a key: %v", err)
	}
	if _, err := p.svc.SetStatus(p.ctx, p.root, "acme", pr.UserID, authz.StatusInactive); err != nil {
		t.Fatal(err)
	}
	_, _, err = p.svc.Authenticate(p.ctx, tok.Token)
	wantKind(t, "token of a deactivated user", err, authz.ErrUnauthenticated)
	if _, err := p.svc.SetStatus(p.ctx, p.root, "acme", pr.UserID, authz.StatusActive); err != nil {
		t.Fatal(err)
	}
	_, _, err = p.svc.Authenticate(p.ctx, tok.Token)
	wantKind(t, "token after reactivation", err, authz.ErrUnauthenticated)
}

func testChangePassword(t *testing.T, p *people) {
	if _, err := p.svc.CreateUser(p.ctx, p.root, "acme", authz.NewUser{Username: "kiosk", Kind: authz.KindAPI, Role: authz.RoleAPIUser, Password: goodPassword}); err != nil {
		t.Fatal(err)
	}
	a, _ := p.svc.SignInUser(p.ctx, "acme", "kiosk", goodPassword, "")
	b, _ := p.svc.SignInUser(p.ctx, "acme", "kiosk", goodPassword, "")
	pa, ca, err := p.svc.Authenticate(p.ctx, a.Token)
	if err != nil {
		t.Fatal(err)
	}
	const next = "saffron quarry 88 nebula drift"
	err = p.svc.ChangePassword(p.ctx, pa, nil, "wrong current password", next, "", ca.KeyID)
	wantKind(t, "wrong current password", err, authz.ErrForbidden)
	if _, err := p.svc.SignInUser(p.ctx, "acme", "kiosk", next, ""); !errors.Is(err, authz.ErrUnauthenticated) {
		t.Fatalf("the refused new password works: %v", err)
	}
	if err := p.svc.ChangePassword(p.ctx, pa, nil, goodPassword, next, "", ca.KeyID); err != nil {
		t.Fatal(err)
	}
	// A wrong current password counts as a failed sign-in of the
	// identity (the right one cleared the count, as a sign-in does): five
	// of them, and signing in is throttled.
	for i := 0; i < 5; i++ {
		err := p.svc.ChangePassword(p.ctx, pa, nil, "wrong current password", next+" again", "", ca.KeyID)
		wantKind(t, "wrong current password", err, authz.ErrForbidden)
	}
	_, err = p.svc.SignInUser(p.ctx, "acme", "kiosk", next, "")
	wantKind(t, "sign-in after five wrong current passwords", err, authz.ErrThrottled)
	if _, _, err := p.svc.Authenticate(p.ctx, a.Token); err != nil {
		t.Fatalf("the changing session ended: %v", err)
	}
	_, _, err = p.svc.Authenticate(p.ctx, b.Token)
	wantKind(t, "another session after the change", err, authz.ErrUnauthenticated)
}

// testNoSecretInRecords: nothing a password or token leaves behind is in
// a user, an account, or an audit entry.
func testNoSecretInRecords(t *testing.T, p *people) {
	inv := p.invite("acme", "di@example.com")
	acc, err := p.svc.AcceptInvitation(p.ctx, inv.Token, "Di", goodPassword, nil)
	if err != nil {
		t.Fatal(err)
	}
	cu, err := p.svc.CreateUser(p.ctx, p.root, "acme", authz.NewUser{Username: "cam", Kind: authz.KindAPI, Role: authz.RoleAPIUser, Password: goodPassword})
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{goodPassword, "$argon2id$", inv.Token, acc.Token, strings.SplitN(inv.Token, ".", 2)[1]}
	var blobs []string
	for _, ws := range []string{"", "acme"} {
		err := p.st.View(p.ctx, ws, func(tx authz.Tx) error {
			for _, c := range []string{authz.CollUsers, authz.CollAccounts, authz.CollAudit, authz.CollEmails, authz.CollAccountMembers} {
				es, err := tx.Scan(authz.Collection{Workspace: ws, Name: c}, "", "", 0)
				if err != nil {
					return err
				}
				for _, e := range es {
					blobs = append(blobs, c+":"+string(e.Value))
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	audit, _, err := p.svc.ListAudit(p.ctx, p.root, "acme", authz.Page{Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	actions := map[string]bool{}
	for _, e := range audit {
		actions[e.Action] = true
		for k, c := range e.Changes {
			blobs = append(blobs, "audit "+k+":"+string(c.Old)+string(c.New))
		}
	}
	for _, want := range []string{authz.ActionInvitationSend, authz.ActionInvitationAccept} {
		if !actions[want] {
			t.Errorf("audit lacks %s: %v", want, actions)
		}
	}
	for _, b := range blobs {
		for _, s := range secrets {
			if s != "" && strings.Contains(b, s) {
				t.Fatalf("a stored record holds a secret %.12q…: %.80s", s, b)
			}
		}
	}
	u, err := p.svc.GetUser(p.ctx, p.root, "acme", cu.ID)
	if err != nil || !u.HasPassword || u.PasswordChangedAt == nil {
		t.Fatalf("API user with a password: %v %+v", err, u)
	}
}

// testResetLinkScope: a reset link signs its holder in as the person
// everywhere, so only a caller who manages every one of the person's
// memberships may have one made, shown (no mailer) or mailed.
func testResetLinkScope(t *testing.T, p *people) {
	for _, ws := range []string{"acme", "beta"} {
		role := authz.RoleViewer
		if ws == "beta" {
			role = authz.RoleAdmin
		}
		inv, err := p.svc.Invite(p.ctx, p.root, ws, authz.NewInvitation{Email: "eve@example.com", Role: role})
		if err != nil {
			t.Fatal(err)
		}
		c := (*authz.ConsoleCaller)(nil)
		if ws == "beta" {
			in, err := p.svc.SignInAccount(p.ctx, "eve@example.com", goodPassword, "")
			if err != nil {
				t.Fatal(err)
			}
			if c, err = p.svc.ConsoleSession(p.ctx, in.Token); err != nil {
				t.Fatal(err)
			}
		}
		pw := goodPassword
		if c != nil {
			pw = ""
		}
		if _, err := p.svc.AcceptInvitation(p.ctx, inv.Token, "", pw, c); err != nil {
			t.Fatal(err)
		}
	}
	admin, err := p.svc.CreateUser(p.ctx, p.root, "acme", authz.NewUser{Username: "acme-admin", Kind: authz.KindAPI, Role: authz.RoleAdmin, IssueKey: true})
	if err != nil {
		t.Fatal(err)
	}
	actor, _, err := p.svc.Authenticate(p.ctx, admin.Key)
	if err != nil {
		t.Fatal(err)
	}
	eve, _, err := p.svc.ListUsers(p.ctx, p.root, "acme", authz.UserFilter{Q: "eve@"}, authz.Page{})
	if err != nil || len(eve) != 1 {
		t.Fatalf("eve in acme: %v %+v", err, eve)
	}
	_, err = p.svc.SendReset(p.ctx, actor, nil, "acme", eve[0].ID)
	wantKind(t, "a link for a person who is more elsewhere", err, authz.ErrForbidden)
	if m, err := p.svc.SendReset(p.ctx, p.root, nil, "acme", eve[0].ID); err != nil || m.Email != "eve@example.com" {
		t.Fatalf("a superadmin's link: %v %+v", err, m)
	}
}

// keyed makes an API user of ws with role and a key, and returns it as a
// principal.
func (p *people) keyed(ws, username string, role authz.Role) *authz.Principal {
	p.t.Helper()
	cu, err := p.svc.CreateUser(p.ctx, p.root, ws, authz.NewUser{Username: username, Kind: authz.KindAPI, Role: role, IssueKey: true})
	if err != nil {
		p.t.Fatal(err)
	}
	pr, _, err := p.svc.Authenticate(p.ctx, cu.Key)
	if err != nil {
		p.t.Fatal(err)
	}
	return pr
}

// person invites email into ws with role (as root), and accepts.
func (p *people) person(ws, email string, role authz.Role) *authz.Invitation {
	p.t.Helper()
	inv, err := p.svc.Invite(p.ctx, p.root, ws, authz.NewInvitation{Email: email, Role: role})
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.svc.AcceptInvitation(p.ctx, inv.Token, "", goodPassword, nil); err != nil {
		p.t.Fatal(err)
	}
	return inv
}

// testNoAccountTakeover: the admin of one workspace cannot reach, through
// an invitation into its own workspace, the account of a person who is a
// member elsewhere: a never-accepted membership does not become active
// through trash, a reset needs power over every membership of the
// account, and the link of such an invitation never sets the password.
func testNoAccountTakeover(t *testing.T, p *people) {
	bob := p.keyed("beta", "bob", authz.RoleAdmin)
	alice := p.person("acme", "alice@example.com", authz.RoleSuperadmin)

	inv, err := p.svc.Invite(p.ctx, bob, "beta", authz.NewInvitation{Email: "alice@example.com", Role: authz.RoleViewer})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.svc.SetStatus(p.ctx, bob, "beta", inv.User.ID, authz.StatusActive); !errors.Is(err, authz.ErrConflict) {
		t.Fatalf("activating an invitation: %v", err)
	}
	if _, err := p.svc.SetStatus(p.ctx, bob, "beta", inv.User.ID, authz.StatusTrash); err != nil {
		t.Fatal(err)
	}
	_, err = p.svc.SetStatus(p.ctx, bob, "beta", inv.User.ID, authz.StatusInactive)
	wantKind(t, "an invitation from trash to inactive", err, authz.ErrConflict)
	u, err := p.svc.SetStatus(p.ctx, bob, "beta", inv.User.ID, authz.StatusActive)
	if err != nil || u.Status != authz.StatusInvited || u.AcceptedAt != nil {
		t.Fatalf("an invitation restored from trash: %v %+v, want invited", err, u)
	}
	_, err = p.svc.SendReset(p.ctx, bob, nil, "beta", inv.User.ID)
	wantKind(t, "a reset of a membership never accepted", err, authz.ErrConflict)
	_, err = p.svc.AcceptInvitation(p.ctx, inv.Token, "", "bob's own passphrase 123", nil)
	wantKind(t, "accepting another person's invitation without signing in", err, authz.ErrUnauthenticated)

	// Alice accepts beta herself: now the membership is accepted, and
	// still bob may not reset her password (she is a superadmin of acme).
	in, err := p.svc.SignInAccount(p.ctx, "alice@example.com", goodPassword, "")
	if err != nil {
		t.Fatal(err)
	}
	c, err := p.svc.ConsoleSession(p.ctx, in.Token)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.svc.AcceptInvitation(p.ctx, inv.Token, "", "", c); err != nil {
		t.Fatal(err)
	}
	_, err = p.svc.SendReset(p.ctx, bob, nil, "beta", inv.User.ID)
	wantKind(t, "bob resets alice", err, authz.ErrForbidden)
	if m, err := p.svc.SendReset(p.ctx, p.root, nil, "acme", alice.User.ID); err != nil || m.Token == "" {
		t.Fatalf("a superadmin resets alice: %v", err)
	}

	// A person only in beta: bob may.
	dan := p.person("beta", "dan@example.com", authz.RoleViewer)
	if _, err := p.svc.SendReset(p.ctx, bob, nil, "beta", dan.User.ID); err != nil {
		t.Fatalf("bob resets dan: %v", err)
	}

	// An account not set up yet (carol never accepted acme's invitation)
	// cannot be claimed through an invitation into beta: its link sets no
	// password. Carol's own link still does.
	carol := p.invite("acme", "carol@example.com")
	cinv, err := p.svc.Invite(p.ctx, bob, "beta", authz.NewInvitation{Email: "carol@example.com", Role: authz.RoleViewer})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.svc.AcceptInvitation(p.ctx, cinv.Token, "", "bob's own passphrase 123", nil)
	wantKind(t, "claiming carol's account", err, authz.ErrConflict)
	again, err := p.svc.Reinvite(p.ctx, bob, "beta", cinv.User.ID)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.svc.AcceptInvitation(p.ctx, again.Token, "", "bob's own passphrase 123", nil)
	wantKind(t, "claiming carol's account with a resent link", err, authz.ErrConflict)
	resent, err := p.svc.Reinvite(p.ctx, p.root, "acme", carol.User.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.svc.AcceptInvitation(p.ctx, resent.Token, "Carol", goodPassword, nil); err != nil {
		t.Fatalf("carol sets up her account with her own (resent) link: %v", err)
	}

	// A person admin of both workspaces, signed in to the console, may
	// reset a person of both from either; an admin of one may not.
	eve := p.person("acme", "eve@example.com", authz.RoleAdmin)
	eveBeta, err := p.svc.Invite(p.ctx, p.root, "beta", authz.NewInvitation{Email: "eve@example.com", Role: authz.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	frank := p.person("acme", "frank@example.com", authz.RoleViewer)
	frankBeta, err := p.svc.Invite(p.ctx, p.root, "beta", authz.NewInvitation{Email: "frank@example.com", Role: authz.RoleViewer})
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct {
		email string
		token string
	}{{"eve@example.com", eveBeta.Token}, {"frank@example.com", frankBeta.Token}} {
		in, err := p.svc.SignInAccount(p.ctx, x.email, goodPassword, "")
		if err != nil {
			t.Fatal(err)
		}
		c, err := p.svc.ConsoleSession(p.ctx, in.Token)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.svc.AcceptInvitation(p.ctx, x.token, "", "", c); err != nil {
			t.Fatal(err)
		}
	}
	in, err = p.svc.SignInAccount(p.ctx, "eve@example.com", goodPassword, "")
	if err != nil {
		t.Fatal(err)
	}
	ec, err := p.svc.ConsoleSession(p.ctx, in.Token)
	if err != nil {
		t.Fatal(err)
	}
	asBeta, err := p.svc.Acting(p.ctx, ec, "beta")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.svc.SendReset(p.ctx, asBeta, ec, "beta", frankBeta.User.ID); err != nil {
		t.Fatalf("eve (admin of both) resets frank: %v", err)
	}
	_, err = p.svc.SendReset(p.ctx, asBeta, nil, "beta", frankBeta.User.ID)
	wantKind(t, "eve's beta membership alone resets frank", err, authz.ErrForbidden)
	_, err = p.svc.SendReset(p.ctx, bob, nil, "beta", frankBeta.User.ID)
	wantKind(t, "bob resets frank", err, authz.ErrForbidden)
	_ = eve
	_ = frank
}

// testSessionsPruned: a sign-in deletes the account's console sessions
// that have ended (idle or expired), so none piles up in the store.
func testSessionsPruned(t *testing.T, p *people) {
	inv := p.invite("acme", "ida@example.com")
	if _, err := p.svc.AcceptInvitation(p.ctx, inv.Token, "", goodPassword, nil); err != nil {
		t.Fatal(err)
	}
	p.Advance(authz.DefaultSessionIdle + time.Minute)
	if _, err := p.svc.SignInAccount(p.ctx, "ida@example.com", goodPassword, ""); err != nil {
		t.Fatal(err)
	}
	var n int
	err := p.st.View(p.ctx, "", func(tx authz.Tx) error {
		es, err := tx.Scan(authz.Collection{Name: authz.CollAccountSess}, inv.User.Account+"/", "", 0)
		n = len(es)
		return err
	})
	if err != nil || n != 1 {
		t.Fatalf("console sessions stored after an idle one and a new sign-in: %d (%v), want 1", n, err)
	}
}

// testResetsBounded: self-service resets send an account at most
// ResetsPerAccount links an hour, and one address is refused after
// ResetsPerAddress asks, known emails or not.
func testResetsBounded(t *testing.T, p *people) {
	p.person("acme", "kim@example.com", authz.RoleViewer)
	sent := 0
	for i := 0; i < authz.ResetsPerAccount+2; i++ {
		m, err := p.svc.RequestReset(p.ctx, "kim@example.com", "198.51.100.1")
		if err != nil {
			t.Fatal(err)
		}
		if m != nil {
			sent++
		}
		p.Advance(2 * time.Minute)
	}
	if sent != authz.ResetsPerAccount {
		t.Fatalf("reset links sent within the hour: %d, want %d", sent, authz.ResetsPerAccount)
	}
	for i := 0; i < authz.ResetsPerAddress; i++ {
		if _, err := p.svc.RequestReset(p.ctx, "nobody"+string(rune('a'+i))+"@example.com", "2001:db8:9::1"); err != nil {
			t.Fatalf("ask %d: %v", i+1, err)
		}
	}
	_, err := p.svc.RequestReset(p.ctx, "kim@example.com", "2001:db8:9::2")
	var te *authz.ThrottledError
	if !errors.As(err, &te) || te.RetryAfter <= 0 {
		t.Fatalf("ask %d from one /64: %v, want 429", authz.ResetsPerAddress+1, err)
	}
}

// hookStore is a store that runs a hook once, before the next update of a
// workspace: a test's way to make something happen between two steps of
// the service, on the real store.
type hookStore struct {
	authz.Store
	mu     sync.Mutex
	ws     string
	before func()
}

func (h *hookStore) Update(ctx context.Context, ws string, fn func(authz.Tx) error) error {
	h.mu.Lock()
	f := h.before
	if ws != h.ws {
		f = nil
	} else {
		h.before = nil
	}
	h.mu.Unlock()
	if f != nil {
		f()
	}
	return h.Store.Update(ctx, ws, fn)
}

// testAcceptRacesResend: a link replaced while it is being accepted (after
// it was read, before the membership is made active) activates nothing:
// the link is checked and used in the transaction that activates.
func testAcceptRacesResend(t *testing.T, st authz.Store) {
	hs := &hookStore{Store: st, ws: "acme"}
	p := newPeople(t, hs)
	inv := p.invite("acme", "lee@example.com")
	var fresh *authz.Invitation
	hs.mu.Lock()
	hs.before = func() {
		var err error
		if fresh, err = p.svc.Reinvite(p.ctx, p.root, "acme", inv.User.ID); err != nil {
			t.Error(err)
		}
	}
	hs.mu.Unlock()
	_, err := p.svc.AcceptInvitation(p.ctx, inv.Token, "", goodPassword, nil)
	wantKind(t, "accepting a link replaced meanwhile", err, authz.ErrGone)
	if fresh == nil {
		t.Fatal("the resend did not run")
	}
	u, err := p.svc.GetUser(p.ctx, p.root, "acme", inv.User.ID)
	if err != nil || u.Status != authz.StatusInvited || u.AcceptedAt != nil {
		t.Fatalf("after a replaced link was accepted: %v %+v, want still invited", err, u)
	}
	if _, err := p.svc.AcceptInvitation(p.ctx, fresh.Token, "", goodPassword, nil); err != nil {
		t.Fatalf("the new link: %v", err)
	}
	_, err = p.svc.AcceptInvitation(p.ctx, fresh.Token, "", goodPassword, nil)
	wantKind(t, "the new link again", err, authz.ErrGone)
}
