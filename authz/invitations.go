package authz

import (
	"context"
	"errors"
	"time"

	"github.com/apiusers/apiusers/authz/audit"
	"github.com/apiusers/apiusers/authz/ids"
)

// NewInvitation is the body of POST /workspaces/{ws}/invitations.
type NewInvitation struct {
	Email string `json:"email"`
	// Username of the membership. Default: the email.
	Username    string   `json:"username,omitempty"`
	Role        Role     `json:"role"`
	Permissions []string `json:"permissions,omitempty"`
	Grants      []Grant  `json:"grants,omitempty"`
	Teams       []string `json:"teams,omitempty"`
}

// Invitation is a sent invitation: the invited membership and what the
// mail needs (Token is the secret of the link, shown to nobody but the
// recipient, or the inviter when no mailer is set).
type Invitation struct {
	User          User
	Token         string
	Email         string
	Name          string // the person's name, when the account has one
	Language      string
	WorkspaceName string
	Inviter       string
	ExpiresAt     time.Time
}

// Invite invites email into ws with a role, permissions, grants and teams
// (the rules of creating a user apply; only users.manage invites). It
// finds or makes the person's account (global transaction), then writes
// the invited membership (workspace transaction), then indexes it and
// makes the link's token (global transaction). A failure after the first
// leaves at most an account without memberships or password, which
// nothing can use and a later invitation reuses; one after the second
// leaves an invited membership without a link, which "send a new
// invitation" mends.
func (s *Service) Invite(ctx context.Context, actor *Principal, ws string, in NewInvitation) (*Invitation, error) {
	auth, err := mayCreateUsers(actor, ws)
	if err != nil {
		return nil, err
	}
	if auth != authManage {
		return nil, forbidden("inviting members needs %s", PermUsersManage)
	}
	if in.Email == "" {
		return nil, fieldErr("email", "is required")
	}
	if err := validateEmail(in.Email); err != nil {
		return nil, err
	}
	if in.Username == "" {
		in.Username = in.Email
	}
	nu := NewUser{Username: in.Username, Kind: KindMember, Role: in.Role, Status: StatusActive, Email: in.Email,
		Permissions: in.Permissions, Grants: in.Grants, Teams: in.Teams}
	if err := s.validateNewUser(actor, auth, &nu); err != nil {
		return nil, err
	}
	w, err := s.workspaceExists(ctx, ws)
	if err != nil {
		return nil, err
	}
	now := s.now().UTC()
	var acc *Account
	err = s.store.Update(ctx, "", func(tx Tx) error {
		var err error
		acc, err = accountByEmail(tx, in.Email)
		switch {
		case err == nil:
			if _, err := tx.Get(globalColl(CollAccountMembers), acc.ID+"/"+ws); err == nil {
				return errf(ErrConflict, "%s is already a member of workspace %s", in.Email, ws)
			} else if !errors.Is(err, ErrNotFound) {
				return err
			}
			return nil
		case !errors.Is(err, ErrNotFound):
			return err
		}
		acc = &Account{ID: ids.New("acc_", now), Email: in.Email, CreatedAt: now}
		if err := putAccount(tx, acc); err != nil {
			return err
		}
		return tx.Put(globalColl(CollEmails), emailKey(in.Email), []byte(acc.ID))
	})
	if err != nil {
		return nil, err
	}
	rec, err := s.newUserRecords(ws, nu, now)
	if err != nil {
		return nil, err
	}
	rec.user.Status = StatusInvited
	rec.user.Account = acc.ID
	// The membership keeps the address as the inviter wrote it (the same
	// in canonical form): the account's own spelling is the person's, and
	// would tell the inviter that the person has an account already.
	rec.user.Email = in.Email
	t := &oneTime{Purpose: purposeInvitation, Account: acc.ID, Workspace: ws, UserID: rec.user.ID, ExpiresAt: now.Add(s.people.InviteTTL)}
	tokenID, token := issueToken(t, now)
	err = s.store.Update(ctx, ws, func(tx Tx) error {
		if err := s.writeNewUser(tx, actor, rec, in.Teams, now); err != nil {
			return err
		}
		if err := putPending(tx, ws, rec.user.ID, tokenID, t); err != nil {
			return err
		}
		return s.audit(tx, ws, actor, ActionInvitationSend, rec.user.ID, map[string]FieldChange{"email": audit.Changed(nil, acc.Email)})
	})
	if err != nil {
		return nil, err
	}
	s.changed(Change{Workspace: ws, Users: []string{rec.user.ID}})
	inv := &Invitation{User: rec.user, Email: acc.Email, Name: acc.Name, Language: acc.Language,
		WorkspaceName: w.Name, Inviter: actor.Username}
	if err := s.newInvitationToken(ctx, tokenID, token, t, inv); err != nil {
		return nil, err
	}
	redact(actor, &inv.User, rec.manages)
	return inv, nil
}

// newInvitationToken indexes the membership under its account and makes
// a new link's token, replacing the previous one.
//
// The link may set up the account (its password) only when it is the
// invitation of a new person: the account has no password and no other
// membership, or the link it replaces could (resending keeps what the
// first link was). Any other link is for an existing person, who accepts
// it signed in: a manager holding the link of an invitation it sent to
// someone else's account (without a mailer, the answer carries it) can
// never take that account over.
//
// The token (id tokenID, t as issueToken made it) is already the
// membership's pending invitation in its workspace (putPending): written
// there first, so that the link it replaces dies there at once.
func (s *Service) newInvitationToken(ctx context.Context, tokenID, token string, t *oneTime, inv *Invitation) error {
	accID, ws, userID := t.Account, t.Workspace, t.UserID
	err := s.store.Update(ctx, "", func(tx Tx) error {
		if err := tx.Put(globalColl(CollAccountMembers), accID+"/"+ws, []byte(userID)); err != nil {
			return err
		}
		fresh, err := invitesNewPerson(tx, accID, ws, userID)
		if err != nil {
			return err
		}
		t.NewAccount = fresh
		return putToken(tx, inviteIndex(ws, userID), tokenID, t)
	})
	if err == nil {
		inv.Token, inv.ExpiresAt = token, t.ExpiresAt
	}
	return err
}

// invitesNewPerson reports, in tx, whether the invitation of membership userID
// of ws sets up account accID: the link it replaces did, or the account
// has no password and no membership but this one.
func invitesNewPerson(tx Tx, accID, ws, userID string) (bool, error) {
	if old, err := tx.Get(globalColl(CollTokenIndex), inviteIndex(ws, userID)); err == nil {
		var t oneTime
		if err := getRecord(tx, globalColl(CollTokens), string(old), &t); err == nil && t.NewAccount {
			return true, nil
		} else if err != nil && !errors.Is(err, ErrNotFound) {
			return false, err
		}
	} else if !errors.Is(err, ErrNotFound) {
		return false, err
	}
	acc, err := getAccount(tx, accID)
	if err != nil {
		return false, err
	}
	if acc.HasPassword {
		return false, nil
	}
	idx, err := membershipsOf(tx, accID)
	if err != nil {
		return false, err
	}
	for _, m := range idx {
		if m[0] != ws || m[1] != userID {
			return false, nil
		}
	}
	return true, nil
}

// Reinvite sends a new invitation link to invited member id of ws; the
// previous link dies.
func (s *Service) Reinvite(ctx context.Context, actor *Principal, ws, id string) (*Invitation, error) {
	if !actor.InWorkspace(ws) {
		return nil, forbidden("not a member of workspace %s", ws)
	}
	sj, err := s.subjectNow(ctx, ws, id)
	if err != nil {
		return nil, err
	}
	if !mayReinvite(actor, sj) {
		return nil, forbidden("may not invite user %s", id)
	}
	u := sj.User
	if u.Kind != KindMember || u.Account == "" || u.Status != StatusInvited {
		return nil, errf(ErrConflict, "user %s is not an invited member", id)
	}
	w, err := s.workspaceExists(ctx, ws)
	if err != nil {
		return nil, err
	}
	var acc *Account
	if err := s.store.View(ctx, "", func(tx Tx) error {
		acc, err = getAccount(tx, u.Account)
		return err
	}); err != nil {
		return nil, err
	}
	now := s.now().UTC()
	inv := &Invitation{User: *u, Email: acc.Email, Name: acc.Name, Language: acc.Language, WorkspaceName: w.Name, Inviter: actor.Username}
	t := &oneTime{Purpose: purposeInvitation, Account: acc.ID, Workspace: ws, UserID: id, ExpiresAt: now.Add(s.people.InviteTTL)}
	tokenID, token := issueToken(t, now)
	err = s.store.Update(ctx, ws, func(tx Tx) error {
		cur, err := getUser(tx, ws, id)
		if err != nil {
			return err
		}
		if cur.Status != StatusInvited || cur.Account != acc.ID {
			return errf(ErrConflict, "user %s is not an invited member", id)
		}
		if err := putPending(tx, ws, id, tokenID, t); err != nil {
			return err
		}
		return s.audit(tx, ws, actor, ActionInvitationResend, id, map[string]FieldChange{"email": audit.Changed(nil, u.Email)})
	})
	if err != nil {
		return nil, err
	}
	if err := s.newInvitationToken(ctx, tokenID, token, t, inv); err != nil {
		return nil, err
	}
	redact(actor, &inv.User, true)
	return inv, nil
}

// mayReinvite reports whether actor may send member u a new invitation:
// it manages u with users.manage (inviting needs it).
func mayReinvite(actor *Principal, u *subject) bool {
	return authorityOf(actor) == authManage && mayManage(actor, u)
}

// Accepted is an accepted invitation: the account, its memberships, and
// the console session token when accepting signed the person in.
type Accepted struct {
	Account     Account
	Memberships []Membership
	Token       string
	ExpiresAt   time.Time
}

// AcceptInvitation accepts the invitation of token. A new person (an
// account without a password) sets its password (and name); a person
// who has a password must be signed in as that account (signedIn). The
// membership becomes active (workspace transaction) before the token is
// used (global transaction): a failure between the two leaves a link that
// still works and accepts again.
func (s *Service) AcceptInvitation(ctx context.Context, token, name, pw string, signedIn *ConsoleCaller) (*Accepted, error) {
	now := s.now().UTC()
	var t *oneTime
	var tokenID string
	var acc *Account
	err := s.store.View(ctx, "", func(tx Tx) error {
		var err error
		if tokenID, t, err = useToken(tx, token, purposeInvitation, now); err != nil {
			return err
		}
		acc, err = getAccount(tx, t.Account)
		return err
	})
	if err != nil {
		return nil, err
	}
	if len([]rune(name)) > 200 {
		return nil, fieldErr("name", "at most 200 characters")
	}
	if err := CheckText("name", name, false); err != nil {
		return nil, err
	}
	var phc string
	switch {
	case acc.HasPassword:
		if signedIn == nil {
			return nil, &Error{Kind: ErrUnauthenticated, Detail: "this invitation is for an existing account: sign in, then accept it"}
		}
		if signedIn.Account.ID != acc.ID {
			return nil, forbidden("this invitation is for another account")
		}
	case !t.NewAccount:
		// An invitation into an account that belongs to other
		// workspaces never sets its password.
		return nil, errf(ErrConflict, "this invitation is for a person invited elsewhere too: set the account up with the link of its first invitation (or a password reset), sign in, then accept this one")
	default:
		if pw == "" {
			return nil, fieldErr("password", "is required to set up the account")
		}
		if phc, err = s.hashPassword(ctx, "password", pw, acc.Email, name); err != nil {
			return nil, err
		}
	}
	self := &Principal{UserID: t.UserID, Workspace: t.Workspace}
	_, err = update(ctx, s, self, recordChange[User]{
		kind: userRecords, ws: t.Workspace, id: t.UserID, now: now, action: ActionInvitationAccept,
		load: func(tx Tx) (*User, error) {
			u, err := getUser(tx, t.Workspace, t.UserID)
			if errors.Is(err, ErrNotFound) {
				return nil, errTokenGone
			}
			return u, err
		},
		edit: func(tx Tx, u *User) error {
			if u.Kind != KindMember || u.Account != acc.ID {
				return errTokenGone
			}
			var p pendingInvitation
			err := getRecord(tx, invitationsOf(t.Workspace), t.UserID, &p)
			switch {
			case err != nil && !errors.Is(err, ErrNotFound):
				return err
			case u.Status == StatusActive && u.AcceptedAt != nil && errors.Is(err, ErrNotFound):
				// Accepted with this link before, and its account step
				// did not finish: the global token, checked above and
				// again below, completes it.
				return nil
			case u.Status != StatusInvited || err != nil:
				return errTokenGone
			}
			// The link is checked and used here, in the transaction that
			// makes the membership active: one replaced, used or expired
			// meanwhile activates nothing.
			if p.Token != tokenID || !sameDigest(p.Digest, t.Digest) || !now.Before(p.ExpiresAt) {
				return errTokenGone
			}
			if err := tx.Delete(invitationsOf(t.Workspace), t.UserID); err != nil {
				return err
			}
			u.Status = StatusActive
			u.AcceptedAt = &now
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	out := &Accepted{}
	var idx [][2]string
	err = s.store.Update(ctx, "", func(tx Tx) error {
		id, cur, err := useToken(tx, token, purposeInvitation, now)
		if err != nil {
			return err
		}
		if err := tx.Delete(globalColl(CollTokens), id); err != nil {
			return err
		}
		if err := tx.Delete(globalColl(CollTokenIndex), inviteIndex(cur.Workspace, cur.UserID)); err != nil {
			return err
		}
		a, err := getAccount(tx, cur.Account)
		if err != nil {
			return err
		}
		if phc != "" {
			if a.HasPassword {
				return errf(ErrConflict, "the account got a password meanwhile: sign in, then accept")
			}
			a.HasPassword, a.PasswordChangedAt = true, &now
			if err := tx.Put(globalColl(CollPasswords), a.ID, []byte(phc)); err != nil {
				return err
			}
		}
		if name != "" {
			a.Name = name
		}
		if err := putAccount(tx, a); err != nil {
			return err
		}
		out.Account = *a
		if signedIn == nil || signedIn.Account.ID != a.ID {
			// Accepting signs the person in (replacing another person's
			// cookie that this browser held).
			if out.Token, err = s.newConsoleSession(tx, a.ID, now); err != nil {
				return err
			}
			out.ExpiresAt = now.Add(s.people.SessionTTL)
		}
		idx, err = membershipsOf(tx, a.ID)
		return err
	})
	if err != nil {
		return nil, err
	}
	if out.Memberships, err = s.memberships(ctx, idx); err != nil {
		return nil, err
	}
	return out, nil
}
