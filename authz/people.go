package authz

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/apiusers/apiusers/authz/ids"
)

// People: accounts, memberships, passwords, sessions and
// one-time tokens.
//
// An account is a person, installation-wide; its records live in the
// global collections (Workspace ""), so every change to an account, its
// password, its sessions and its one-time tokens is one transaction. A
// membership is a user of kind member in a workspace whose Account names
// the account: role, permissions, grants, teams and status are the
// membership's, in the workspace's own transaction. The global index
// CollAccountMembers lists an account's memberships.
//
// What spans the two (inviting, accepting, deleting a membership) is two
// transactions, ordered so that a failure between them leaves nothing
// that can be used: see Invite, AcceptInvitation and DeleteUser.
//
// Password hashes (argon2id PHC strings) live in CollPasswords only, never
// in a record the API returns or the audit log: the global one for
// accounts (by account id), each workspace's for its API users (by user
// id), so an API user's password is independent per workspace.
//
// One-time tokens (invitations, password resets) and console session
// tokens are "<id>.<secret>": the id finds the record, which keeps only
// the SHA-256 of the secret (256 random bits), compared in constant time.
// A token is deleted when used, and an invitation's or a reset's token
// when a new one is sent.

// Global collections of people.
const (
	CollAccounts       = "accounts"    // acc id -> Account
	CollEmails         = "emails"      // canonical email -> acc id
	CollAccountMembers = "memberships" // "<acc id>/<ws>" -> user id
	CollPasswords      = "passwords"   // acc id (global) or user id (workspace) -> PHC string
	CollSessions       = "sessions"    // ses id -> console session
	CollAccountSess    = "accsessions" // "<acc id>/<ses id>" -> ""
	CollTokens         = "tokens"      // token id -> one-time token
	CollTokenIndex     = "tokenindex"  // "inv/<ws>/<user id>" or "reset/<acc id>" -> token id
)

func globalColl(name string) Collection { return Collection{Name: name} }
func passwordsOf(ws string) Collection  { return Collection{Workspace: ws, Name: CollPasswords} }

// Account is a person: one sign-in for every workspace it is a member of.
type Account struct {
	ID                string     `json:"id"`
	Email             string     `json:"email"`
	Name              string     `json:"name"`
	Language          string     `json:"language"`
	Timezone          string     `json:"timezone"`
	CreatedAt         time.Time  `json:"created_at"`
	PasswordChangedAt *time.Time `json:"password_changed_at"`
	HasPassword       bool       `json:"has_password"`
}

// Membership is one workspace a person belongs to.
type Membership struct {
	Workspace     string `json:"workspace"`
	WorkspaceName string `json:"workspace_name"`
	UserID        string `json:"user_id"`
	Role          Role   `json:"role"`
	Status        Status `json:"status"`
}

// Session kinds.
const (
	SessionConsole = "console" // a person's console cookie
	SessionToken   = "token"   // an API user's bearer session token
)

// Session is a sign-in as the API lists it.
type Session struct {
	ID         string     `json:"id"`
	Kind       string     `json:"kind"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	ExpiresAt  time.Time  `json:"expires_at"`
	Current    bool       `json:"current"`
}

// emailKey is the canonical form an account's email is unique in and
// found by (the one canonical form of every name).
func emailKey(email string) string { return CanonicalName(strings.TrimSpace(email)) }

// secretToken makes a token "<id>.<secret>" and the digest of its secret
// to store.
func secretToken(prefix string, now time.Time) (id, token string, digest []byte) {
	id = ids.New(prefix, now)
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		panic(fmt.Sprintf("reading random bytes: %v", err))
	}
	secret := base64.RawURLEncoding.EncodeToString(raw[:])
	sum := sha256.Sum256([]byte(secret))
	return id, id + "." + secret, sum[:]
}

// splitToken returns the id and the digest of the secret of a token made
// by secretToken, or false when it is not one (of prefix).
func splitToken(token, prefix string) (id string, digest []byte, ok bool) {
	if len(token) > 200 {
		return "", nil, false
	}
	id, secret, ok := strings.Cut(token, ".")
	if !ok || !strings.HasPrefix(id, prefix) || len(secret) != 43 {
		return "", nil, false
	}
	if _, err := base64.RawURLEncoding.DecodeString(secret); err != nil {
		return "", nil, false
	}
	sum := sha256.Sum256([]byte(secret))
	return id, sum[:], true
}

// sameDigest compares two digests in constant time.
func sameDigest(a, b []byte) bool { return len(a) == len(b) && subtle.ConstantTimeCompare(a, b) == 1 }

func getAccount(tx Tx, id string) (*Account, error) {
	var a Account
	if err := getRecord(tx, globalColl(CollAccounts), id, &a); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, errf(ErrNotFound, "account %s not found", id)
		}
		return nil, err
	}
	return &a, nil
}

func putAccount(tx Tx, a *Account) error { return putRecord(tx, globalColl(CollAccounts), a.ID, a) }

// accountByEmail returns the account of email, or ErrNotFound.
func accountByEmail(tx Tx, email string) (*Account, error) {
	id, err := tx.Get(globalColl(CollEmails), emailKey(email))
	if err != nil {
		return nil, err
	}
	return getAccount(tx, string(id))
}

// membershipsOf lists the account's memberships as the index has them:
// workspace -> user id, in workspace order.
func membershipsOf(tx Tx, accID string) ([][2]string, error) {
	entries, err := tx.Scan(globalColl(CollAccountMembers), accID+"/", "", 0)
	if err != nil {
		return nil, err
	}
	out := make([][2]string, 0, len(entries))
	for _, e := range entries {
		out = append(out, [2]string{strings.TrimPrefix(e.ID, accID+"/"), string(e.Value)})
	}
	return out, nil
}

// oneTime is a stored one-time token (an invitation or a password reset).
type oneTime struct {
	Purpose   string `json:"purpose"` // "invitation" or "reset"
	Account   string `json:"account"`
	Workspace string `json:"workspace,omitempty"` // invitations
	UserID    string `json:"user_id,omitempty"`   // invitations
	// NewAccount: an invitation that sets up its account (see
	// newInvitationToken).
	NewAccount bool      `json:"new_account,omitempty"`
	Digest     []byte    `json:"digest"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at"`
}

const (
	purposeInvitation = "invitation"
	purposeReset      = "reset"
)

func inviteIndex(ws, userID string) string { return "inv/" + ws + "/" + userID }
func resetIndex(accID string) string       { return "reset/" + accID }

// replaceToken makes a new one-time token under index key idx, deleting
// the one it replaces, and returns the token string.
func replaceToken(tx Tx, idx string, t *oneTime, now time.Time) (string, error) {
	id, token := issueToken(t, now)
	return token, putToken(tx, idx, id, t)
}

// issueToken makes a new one-time token for t (its digest and time), to
// be stored with putToken, and returns its id and the token string.
func issueToken(t *oneTime, now time.Time) (id, token string) {
	id, token, t.Digest = secretToken("otk_", now)
	t.CreatedAt = now
	return id, token
}

// putToken stores token id, t, under index key idx, deleting the one it
// replaces.
func putToken(tx Tx, idx, id string, t *oneTime) error {
	if err := dropToken(tx, idx); err != nil {
		return err
	}
	if err := putRecord(tx, globalColl(CollTokens), id, t); err != nil {
		return err
	}
	return tx.Put(globalColl(CollTokenIndex), idx, []byte(id))
}

// CollInvitations is a workspace's pending invitations: user id -> the
// id, digest and end of its current link. Accepting checks and deletes it
// in the transaction that makes the membership active, so a link that was
// replaced, used or expired can never activate it.
const CollInvitations = "invitations"

func invitationsOf(ws string) Collection { return Collection{Workspace: ws, Name: CollInvitations} }

// pendingInvitation is a membership's current link, in its workspace.
type pendingInvitation struct {
	Token     string    `json:"token"` // the token id
	Digest    []byte    `json:"digest"`
	ExpiresAt time.Time `json:"expires_at"`
}

func putPending(tx Tx, ws, userID, tokenID string, t *oneTime) error {
	return putRecord(tx, invitationsOf(ws), userID, &pendingInvitation{Token: tokenID, Digest: t.Digest, ExpiresAt: t.ExpiresAt})
}

// dropToken deletes the token under index key idx, if any.
func dropToken(tx Tx, idx string) error {
	old, err := tx.Get(globalColl(CollTokenIndex), idx)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil
	case err != nil:
		return err
	}
	if err := tx.Delete(globalColl(CollTokens), string(old)); err != nil {
		return err
	}
	return tx.Delete(globalColl(CollTokenIndex), idx)
}

// ErrGone is a used, expired or replaced one-time token (410).
var ErrGone = errors.New("gone")

var errTokenGone = &Error{Kind: ErrGone, Detail: "the link was used, has expired or was replaced by a newer one"}

// useToken reads the one-time token of purpose and checks its secret and
// expiry; it does not delete it.
func useToken(tx Tx, token, purpose string, now time.Time) (string, *oneTime, error) {
	id, digest, ok := splitToken(token, "otk_")
	if !ok {
		return "", nil, errTokenGone
	}
	var t oneTime
	if err := getRecord(tx, globalColl(CollTokens), id, &t); err != nil {
		if errors.Is(err, ErrNotFound) {
			return "", nil, errTokenGone
		}
		return "", nil, err
	}
	if !sameDigest(t.Digest, digest) || t.Purpose != purpose || !now.Before(t.ExpiresAt) {
		return "", nil, errTokenGone
	}
	return id, &t, nil
}

// subjectNow reads user id of ws with its teams, for a who-may-manage-whom
// check outside a transaction.
func (s *Service) subjectNow(ctx context.Context, ws, id string) (*subject, error) {
	var sj *subject
	err := s.store.View(ctx, ws, func(tx Tx) error {
		var err error
		sj, err = loadSubject(tx, ws, id)
		return err
	})
	return sj, err
}

// What touches an account — its password, its reset, its console
// sessions — acts on every membership at once: the person signs in once
// and acts everywhere. So a caller other than the person may do it only
// when it may manage every membership of the account (each in
// its own workspace): through the principal it acts as, or, for a person
// signed in to the console, through its membership of that workspace or
// a superadmin membership. A superadmin may everywhere; a workspace's
// admin may not reach a person who is also a member elsewhere.

// errAccountBeyond is the 403 of an account the caller may not act on.
// It names no workspace: the caller may not know where else the person is
// a member.
var errAccountBeyond = &Error{Kind: ErrForbidden, Detail: "this person is also a member where the caller may not manage it: " +
	"only a caller that may manage every membership of the account (or a superadmin) may act on its password and sessions"}

// accountMemberships is an account's memberships as a guard saw them.
type accountMemberships [][2]string

// mayManageAccount returns the memberships of account accID when actor
// (and via, the console caller actor is acting for, or nil) may manage
// every one of them; errAccountBeyond otherwise.
func (s *Service) mayManageAccount(ctx context.Context, actor *Principal, via *ConsoleCaller, accID string) (accountMemberships, error) {
	var idx [][2]string
	if err := s.store.View(ctx, "", func(tx Tx) error {
		var err error
		idx, err = membershipsOf(tx, accID)
		return err
	}); err != nil {
		return nil, err
	}
	managers := []*Principal{actor}
	if via != nil {
		for _, m := range via.Memberships {
			if m.Status != StatusActive || (m.Workspace == actor.Workspace && m.UserID == actor.UserID) {
				continue
			}
			p, err := s.Principal(ctx, m.Workspace, m.UserID)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			if p.Active() {
				managers = append(managers, p)
			}
		}
	}
	for _, m := range idx {
		sj, err := s.subjectNow(ctx, m[0], m[1])
		if errors.Is(err, ErrNotFound) {
			continue // an index entry of a membership being deleted
		}
		if err != nil {
			return nil, err
		}
		if sj.Account != accID {
			continue
		}
		ok := false
		for _, p := range managers {
			if ok = mayManage(p, sj); ok {
				break
			}
		}
		if !ok {
			return nil, errAccountBeyond
		}
	}
	return idx, nil
}

// still checks, in the transaction that acts on the account, that its
// memberships are those the guard checked: one added meanwhile was not.
func (ms accountMemberships) still(tx Tx, accID string) error {
	now, err := membershipsOf(tx, accID)
	if err != nil {
		return err
	}
	checked := make(map[[2]string]bool, len(ms))
	for _, m := range ms {
		checked[m] = true
	}
	for _, m := range now {
		if !checked[m] {
			return errf(ErrConflict, "the person's memberships changed meanwhile: try again")
		}
	}
	return nil
}
