package authz

import (
	"context"
	"errors"
	"time"

	"github.com/apiusers/apiusers/authz/audit"
	"github.com/apiusers/apiusers/authz/password"
	"github.com/apiusers/apiusers/authz/throttle"
)

// checkPolicy checks pw against the password policy, in the hashing pool
// and on its budget (the estimate costs CPU as a hash does); personal are
// the email, username and name it must not be.
func (s *Service) checkPolicy(ctx context.Context, field, pw string, personal ...string) error {
	err := s.people.Hasher.CheckPolicy(ctx, pw, personal...)
	var pe *password.PolicyError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &pe):
		return &Error{Kind: ErrInvalid, Field: field, Detail: field + ": " + err.Error()}
	}
	return Unavailable(err)
}

// hashPassword checks pw against the policy and hashes it.
func (s *Service) hashPassword(ctx context.Context, field, pw string, personal ...string) (string, error) {
	if err := s.checkPolicy(ctx, field, pw, personal...); err != nil {
		return "", err
	}
	phc, err := s.people.Hasher.Hash(ctx, pw)
	if err != nil {
		return "", Unavailable(err)
	}
	return phc, nil
}

// errWrongCurrent is a wrong current password on a change (403).
var errWrongCurrent = &Error{Kind: ErrForbidden, Field: "current_password", Detail: "current_password: wrong password"}

// ChangePassword changes the caller's own password after checking the
// current one: a person's (the account of console, or of member actor)
// or an API user's. A wrong current password is a 403 and counts as a
// failed sign-in. Every other session of the identity ends; keep is the
// caller's own session id, which stays.
func (s *Service) ChangePassword(ctx context.Context, actor *Principal, console *ConsoleCaller, current, next, addr, keep string) error {
	if console == nil && actor.Kind == KindMember {
		u, err := s.loadUser(ctx, actor.Workspace, actor.UserID)
		if err != nil {
			return err
		}
		if u.Account == "" {
			return forbidden("this member has no account and no password")
		}
		var acc *Account
		var idx [][2]string
		err = s.store.View(ctx, "", func(tx Tx) error {
			var err error
			if acc, err = getAccount(tx, u.Account); err != nil {
				return err
			}
			idx, err = membershipsOf(tx, acc.ID)
			return err
		})
		if err != nil {
			return err
		}
		ms, err := s.memberships(ctx, idx)
		if err != nil {
			return err
		}
		console = &ConsoleCaller{Account: *acc, Memberships: ms}
	}
	if console != nil {
		return s.changeAccountPassword(ctx, console, current, next, addr)
	}
	return s.changeUserPassword(ctx, actor, current, next, addr, keep)
}

func (s *Service) changeAccountPassword(ctx context.Context, c *ConsoleCaller, current, next, addr string) error {
	identity := "e:" + emailKey(c.Account.Email)
	try, err := s.begin(ctx, identity, addr)
	if err != nil {
		return err
	}
	defer try.end(ctx)
	var phc string
	err = s.store.View(ctx, "", func(tx Tx) error {
		raw, err := tx.Get(globalColl(CollPasswords), c.Account.ID)
		if err == nil {
			phc = string(raw)
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	ok, _, err := s.verify(ctx, current, phc)
	if err != nil {
		return err
	}
	if !ok {
		try.failed()
		return errWrongCurrent
	}
	try.succeeded(ctx) // the current password is known: as a sign-in
	phcNew, err := s.hashPassword(ctx, "new_password", next, c.Account.Email, c.Account.Name)
	if err != nil {
		return err
	}
	if err := s.setAccountPassword(ctx, c.Account.ID, phcNew, c.SessionID); err != nil {
		return err
	}
	s.auditAccount(ctx, c.Memberships, ActionPasswordChange, nil)
	return nil
}

// setAccountPassword stores an account's new hash and ends every console
// session but keep, and any pending reset.
func (s *Service) setAccountPassword(ctx context.Context, accID, phc, keep string) error {
	now := s.now().UTC()
	return s.store.Update(ctx, "", func(tx Tx) error {
		acc, err := getAccount(tx, accID)
		if err != nil {
			return err
		}
		acc.HasPassword, acc.PasswordChangedAt = true, &now
		if err := putAccount(tx, acc); err != nil {
			return err
		}
		if err := tx.Put(globalColl(CollPasswords), accID, []byte(phc)); err != nil {
			return err
		}
		if err := dropToken(tx, resetIndex(accID)); err != nil {
			return err
		}
		return endConsoleSessions(tx, accID, keep)
	})
}

func (s *Service) changeUserPassword(ctx context.Context, actor *Principal, current, next, addr, keep string) error {
	identity := "u:" + actor.Workspace + "/" + CanonicalName(actor.Username)
	try, err := s.begin(ctx, identity, addr)
	if err != nil {
		return err
	}
	defer try.end(ctx)
	ws := actor.Workspace
	var u *User
	var phc string
	err = s.store.View(ctx, ws, func(tx Tx) error {
		var err error
		if u, err = getUser(tx, ws, actor.UserID); err != nil {
			return err
		}
		raw, err := tx.Get(passwordsOf(ws), actor.UserID)
		if err == nil {
			phc = string(raw)
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	ok, _, err := s.verify(ctx, current, phc)
	if err != nil {
		return err
	}
	if !ok {
		try.failed()
		return errWrongCurrent
	}
	try.succeeded(ctx) // the current password is known: as a sign-in
	phcNew, err := s.hashPassword(ctx, "new_password", next, u.Username, u.Email)
	if err != nil {
		return err
	}
	return s.storeUserPassword(ctx, actor, ws, u.ID, phcNew, keep, ActionPasswordChange)
}

// storeUserPassword stores API user id's new hash, stamps the user and
// ends its session tokens but keep, in one transaction with the audit
// entry.
func (s *Service) storeUserPassword(ctx context.Context, actor *Principal, ws, id, phc, keep, action string) error {
	now := s.now().UTC()
	var sj *subject
	_, err := update(ctx, s, actor, recordChange[User]{
		kind: userRecords, ws: ws, id: id, now: now, action: action,
		load: loadingSubject(ws, id, &sj),
		edit: func(tx Tx, u *User) error {
			if err := s.mayEditPassword(actor, sj); err != nil {
				return err
			}
			u.PasswordChangedAt, u.HasPassword = &now, true
			if err := tx.Put(passwordsOf(ws), id, []byte(phc)); err != nil {
				return err
			}
			_, err := endTokenSessions(tx, ws, id, keep)
			return err
		},
		// The stamp, never the hash; and a new hash is a change even when
		// the stamp's second is the same.
		changes: func(before, _ *User) (map[string]FieldChange, bool) {
			return map[string]FieldChange{"password_changed_at": audit.Changed(before.PasswordChangedAt, now)}, true
		},
	})
	return err
}

// mayEditPassword: an API user itself, or a caller that may manage its
// keys (a password signs in to a session token, which acts as a key: who
// may manage a user but not its keys must not mint one this way).
func (s *Service) mayEditPassword(actor *Principal, u *subject) error {
	if u.Kind != KindAPI {
		return errf(ErrConflict, "user %s is a member: a person sets its password by invitation or reset", u.ID)
	}
	if actor.UserID != u.ID && !mayManageKeys(actor, u) {
		return forbidden("may not set the password of user %s", u.ID)
	}
	return nil
}

// maySetPassword checks that actor may set API user u's password without
// knowing the current one (PUT …/password): mayEditPassword, and not its
// own (that takes the current password, POST /me/password).
func (s *Service) maySetPassword(actor *Principal, u *subject) error {
	if err := s.mayEditPassword(actor, u); err != nil {
		return err
	}
	if actor.UserID == u.ID {
		return forbidden("change your own password with POST /me/password and the current one")
	}
	return nil
}

// SetUserPassword sets API user id's password (PUT …/password) for a
// caller that may manage it; every session of the user ends.
func (s *Service) SetUserPassword(ctx context.Context, actor *Principal, ws, id, pw string) error {
	if !actor.InWorkspace(ws) {
		return forbidden("not a member of workspace %s", ws)
	}
	u, err := s.subjectNow(ctx, ws, id)
	if err != nil {
		return err
	}
	if err := s.maySetPassword(actor, u); err != nil {
		return err
	}
	phc, err := s.hashPassword(ctx, "password", pw, u.Username, u.Email)
	if err != nil {
		return err
	}
	return s.storeUserPassword(ctx, actor, ws, id, phc, "", ActionPasswordSet)
}

// ResetMail is what a reset mail needs: the token for the link and the
// recipient.
type ResetMail struct {
	account   string
	Token     string
	Email     string
	Name      string
	Language  string
	ExpiresAt time.Time
}

// resetMinInterval: a self-service reset request for an account that got
// one this recently sends nothing (no mail flood).
const resetMinInterval = time.Minute

// RequestReset makes a reset link for the account of email, if there is
// one (nil otherwise, and when one was made less than a minute ago): the
// self-service form, which answers the same either way.
//
// addr is the client's address: one that asked too often within the
// window is refused (429, every ask counting, known email or not), and an
// account that was sent ResetsPerAccount such links within the hour gets
// no more (answered alike), so no one floods a mailbox.
func (s *Service) RequestReset(ctx context.Context, email, addr string) (*ResetMail, error) {
	if addr != "" {
		key := throttle.AddrKey(addr)
		if v, _ := s.signIns.resetAddr.Fail(ctx, key); v.Refused {
			return nil, &ThrottledError{RetryAfter: max(v.RetryAfter, time.Second), What: "password reset requests from this address"}
		}
	}
	if validateEmail(email) != nil || email == "" {
		return nil, nil
	}
	now := s.now().UTC()
	var out *ResetMail
	err := s.store.Update(ctx, "", func(tx Tx) error {
		out = nil
		acc, err := accountByEmail(tx, email)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if old, err := tx.Get(globalColl(CollTokenIndex), resetIndex(acc.ID)); err == nil {
			var t oneTime
			if err := getRecord(tx, globalColl(CollTokens), string(old), &t); err == nil && now.Sub(t.CreatedAt) < resetMinInterval {
				return nil
			}
		}
		if v, _ := s.signIns.resetAccount.Check(ctx, acc.ID); v.Refused {
			return nil
		}
		out, err = s.newReset(tx, acc, now)
		return err
	})
	if out != nil && err == nil {
		_, _ = s.signIns.resetAccount.Fail(ctx, out.account)
	}
	return out, err
}

func (s *Service) newReset(tx Tx, acc *Account, now time.Time) (*ResetMail, error) {
	t := &oneTime{Purpose: purposeReset, Account: acc.ID, ExpiresAt: now.Add(ResetTTL)}
	token, err := replaceToken(tx, resetIndex(acc.ID), t, now)
	if err != nil {
		return nil, err
	}
	return &ResetMail{account: acc.ID, Token: token, Email: acc.Email, Name: acc.Name, Language: acc.Language, ExpiresAt: t.ExpiresAt}, nil
}

// SendReset makes a reset link for member id of ws (POST …/password-reset),
// for a caller that may manage it and every other membership of its
// account (see mayManageAccount; via is the console caller actor acts
// for, or nil). A membership never accepted gets none: its person sets
// the password by accepting.
func (s *Service) SendReset(ctx context.Context, actor *Principal, via *ConsoleCaller, ws, id string) (*ResetMail, error) {
	if !actor.InWorkspace(ws) {
		return nil, forbidden("not a member of workspace %s", ws)
	}
	u, err := s.subjectNow(ctx, ws, id)
	if err != nil {
		return nil, err
	}
	var ms accountMemberships
	if err := mayResetPassword(actor, u, func(acc string) (err error) {
		ms, err = s.mayManageAccount(ctx, actor, via, acc)
		return err
	}); err != nil {
		return nil, err
	}
	now := s.now().UTC()
	var out *ResetMail
	err = s.store.Update(ctx, "", func(tx Tx) error {
		if err := ms.still(tx, u.Account); err != nil {
			return err
		}
		acc, err := getAccount(tx, u.Account)
		if err != nil {
			return err
		}
		out, err = s.newReset(tx, acc, now)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, s.auditIn(ctx, ws, actor, ActionPasswordResetSend, id, nil)
}

// mayResetPassword checks that actor may send member u a reset link: it
// may manage u, u is a person who accepted its invitation, and account
// (mayManageAccount) lets it act on the person's account.
func mayResetPassword(actor *Principal, u *subject, account func(accID string) error) error {
	if !mayManage(actor, u) {
		return forbidden("may not reset the password of user %s", u.ID)
	}
	if u.Kind != KindMember || u.Account == "" {
		return errf(ErrConflict, "user %s is not a person with an account: set an API user's password with PUT …/password", u.ID)
	}
	if u.AcceptedAt == nil {
		return errf(ErrConflict, "user %s has not accepted the invitation yet: send a new invitation instead", u.ID)
	}
	return account(u.Account)
}

// ConfirmReset sets a new password with a reset token (once); every
// console session of the account ends.
func (s *Service) ConfirmReset(ctx context.Context, token, next string) error {
	now := s.now().UTC()
	var acc *Account
	err := s.store.View(ctx, "", func(tx Tx) error {
		_, t, err := useToken(tx, token, purposeReset, now)
		if err != nil {
			return err
		}
		acc, err = getAccount(tx, t.Account)
		return err
	})
	if err != nil {
		return err
	}
	phc, err := s.hashPassword(ctx, "new_password", next, acc.Email, acc.Name)
	if err != nil {
		return err
	}
	var idx [][2]string
	err = s.store.Update(ctx, "", func(tx Tx) error {
		id, t, err := useToken(tx, token, purposeReset, now)
		if err != nil {
			return err
		}
		if err := tx.Delete(globalColl(CollTokens), id); err != nil {
			return err
		}
		if err := tx.Delete(globalColl(CollTokenIndex), resetIndex(t.Account)); err != nil {
			return err
		}
		a, err := getAccount(tx, t.Account)
		if err != nil {
			return err
		}
		a.HasPassword, a.PasswordChangedAt = true, &now
		if err := putAccount(tx, a); err != nil {
			return err
		}
		if err := tx.Put(globalColl(CollPasswords), a.ID, []byte(phc)); err != nil {
			return err
		}
		if err := endConsoleSessions(tx, a.ID, ""); err != nil {
			return err
		}
		idx, err = membershipsOf(tx, a.ID)
		return err
	})
	if err != nil {
		return err
	}
	ms, err := s.memberships(ctx, idx)
	if err == nil {
		s.auditAccount(ctx, ms, ActionPasswordReset, nil)
	}
	s.succeeded(ctx, "e:"+emailKey(acc.Email))
	return nil
}
