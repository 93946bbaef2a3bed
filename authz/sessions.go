package authz

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/apiusers/apiusers/authz/audit"
	"github.com/apiusers/apiusers/authz/ids"
)

// Sessions. A person's console session is a record of the global
// collections, found by the id its cookie token starts with; the admin API
// reads it on every request (one store read), so ending it is seen by
// every instance at once. An API user's session token is a JWT signed like
// a key, with the session id (ses_…) as its jti and its end as exp, and the
// session record lives beside the user's keys: the gateway checks it on
// its cached hot path exactly as a key, and ending it invalidates the
// user's principal fleet-wide as revoking a key does.

// Session defaults.
const (
	DefaultSessionTTL  = 12 * time.Hour
	DefaultSessionIdle = time.Hour
	DefaultInviteTTL   = 7 * 24 * time.Hour
	ResetTTL           = time.Hour
	// MaxTokenSessions bounds an API user's live session tokens: signing
	// in beyond it ends the oldest.
	MaxTokenSessions = 20
	// MaxConsoleSessions bounds a person's live console sessions (its
	// browsers and devices): signing in beyond it ends the oldest, and
	// every sign-in deletes the sessions that have ended (expired or
	// idle).
	MaxConsoleSessions = 10
	// sessionTouch is how stale a console session's last_used_at may get
	// before a request writes it again.
	sessionTouch = time.Minute
)

// consoleSession is a stored console session.
type consoleSession struct {
	Account    string    `json:"account"`
	Digest     []byte    `json:"digest"`
	CreatedAt  time.Time `json:"created_at"`
	LastUsedAt time.Time `json:"last_used_at"`
	ExpiresAt  time.Time `json:"expires_at"`
}

// tokenSession is a stored API user session, in the user's keys
// collection. id and expires_at are the fields BuildPrincipal reads.
type tokenSession struct {
	ID         string     `json:"id"`
	ExpiresAt  time.Time  `json:"expires_at"`
	CreatedAt  time.Time  `json:"c"`
	LastUsedAt *time.Time `json:"l,omitempty"`
}

// ConsoleCaller is a person signed in to the console: the session, the
// account and its memberships (index order: by workspace id).
type ConsoleCaller struct {
	SessionID   string
	Account     Account
	Memberships []Membership
}

// errNoSession is every failure of a console token: one answer whatever
// the reason (unknown, ended, expired, idle, bad secret).
var errNoSession = &Error{Kind: ErrUnauthenticated, Detail: "not signed in or the session has ended"}

// ConsoleSession checks a console session token and returns the signed-in
// person with its memberships (status and role as their principals say).
func (s *Service) ConsoleSession(ctx context.Context, token string) (*ConsoleCaller, error) {
	id, digest, ok := splitToken(token, "ses_")
	if !ok {
		return nil, errNoSession
	}
	now := s.now().UTC()
	var cs consoleSession
	var acc *Account
	var idx [][2]string
	var names map[string]string
	err := s.store.View(ctx, "", func(tx Tx) error {
		if err := getRecord(tx, globalColl(CollSessions), id, &cs); err != nil {
			if errors.Is(err, ErrNotFound) {
				return errNoSession
			}
			return err
		}
		if !sameDigest(cs.Digest, digest) || !now.Before(cs.ExpiresAt) || !now.Before(cs.LastUsedAt.Add(s.people.SessionIdle)) {
			return errNoSession
		}
		var err error
		if acc, err = getAccount(tx, cs.Account); err != nil {
			if errors.Is(err, ErrNotFound) {
				return errNoSession
			}
			return err
		}
		if idx, err = membershipsOf(tx, acc.ID); err != nil {
			return err
		}
		// The workspaces' names, in the same read-only transaction (the
		// global index of workspaces holds them), rather than one read
		// each after it.
		names = make(map[string]string, len(idx))
		for _, m := range idx {
			var w Workspace
			if err := getRecord(tx, workspacesColl(), m[0], &w); err == nil {
				names[m[0]] = w.Name
			} else if !errors.Is(err, ErrNotFound) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if now.Sub(cs.LastUsedAt) >= sessionTouch {
		_ = s.store.Update(ctx, "", func(tx Tx) error {
			var cur consoleSession
			if err := getRecord(tx, globalColl(CollSessions), id, &cur); err != nil {
				return err
			}
			cur.LastUsedAt = now
			return putRecord(tx, globalColl(CollSessions), id, &cur)
		})
	}
	ms, err := s.membershipsNamed(ctx, idx, names)
	if err != nil {
		return nil, err
	}
	return &ConsoleCaller{SessionID: id, Account: *acc, Memberships: ms}, nil
}

// memberships describes the indexed memberships from their principals
// (cached) and workspace records; ones whose user is gone are skipped.
func (s *Service) memberships(ctx context.Context, idx [][2]string) ([]Membership, error) {
	return s.membershipsNamed(ctx, idx, nil)
}

// membershipsNamed is memberships with the workspaces' names known
// (names[ws]; a workspace missing there is read).
func (s *Service) membershipsNamed(ctx context.Context, idx [][2]string, names map[string]string) ([]Membership, error) {
	out := make([]Membership, 0, len(idx))
	for _, m := range idx {
		p, err := s.Principal(ctx, m[0], m[1])
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		name, known := names[m[0]]
		if !known {
			name = m[0]
			if w, err := s.workspaceExists(ctx, m[0]); err == nil {
				name = w.Name
			} else if !errors.Is(err, ErrNotFound) {
				return nil, err
			}
		}
		out = append(out, Membership{Workspace: m[0], WorkspaceName: name, UserID: m[1], Role: p.Role, Status: p.Status})
	}
	return out, nil
}

// Acting picks the membership a console caller acts through for workspace
// ws ("" for no particular one): its active membership of ws, else an
// active superadmin membership (which acts everywhere), else its first
// active membership. It fails with 401 when no membership is active.
func (s *Service) Acting(ctx context.Context, c *ConsoleCaller, ws string) (*Principal, error) {
	pick := func(ok func(Membership) bool) *Membership {
		for i := range c.Memberships {
			if m := &c.Memberships[i]; m.Status == StatusActive && ok(*m) {
				return m
			}
		}
		return nil
	}
	m := pick(func(m Membership) bool { return ws != "" && m.Workspace == ws })
	if m == nil {
		m = pick(func(m Membership) bool { return m.Role == RoleSuperadmin })
	}
	if m == nil {
		m = pick(func(Membership) bool { return true })
	}
	if m == nil {
		return nil, errNoSession
	}
	p, err := s.Principal(ctx, m.Workspace, m.UserID)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, errNoSession
		}
		return nil, err
	}
	if !p.Active() {
		return nil, errNoSession
	}
	return p, nil
}

// newConsoleSession writes a console session of acc in tx and returns its
// token.
func (s *Service) newConsoleSession(tx Tx, accID string, now time.Time) (string, error) {
	entries, err := tx.Scan(globalColl(CollAccountSess), accID+"/", "", 0)
	if err != nil {
		return "", err
	}
	var live []string // ids sort by creation time
	for _, e := range entries {
		sid := strings.TrimPrefix(e.ID, accID+"/")
		var cs consoleSession
		err := getRecord(tx, globalColl(CollSessions), sid, &cs)
		switch {
		case err == nil && now.Before(cs.ExpiresAt) && now.Before(cs.LastUsedAt.Add(s.people.SessionIdle)):
			live = append(live, sid)
			continue
		case err != nil && !errors.Is(err, ErrNotFound):
			return "", err
		}
		if err := endConsoleSession(tx, accID, sid); err != nil {
			return "", err
		}
	}
	for ; len(live) >= MaxConsoleSessions; live = live[1:] {
		if err := endConsoleSession(tx, accID, live[0]); err != nil {
			return "", err
		}
	}
	id, token, digest := secretToken("ses_", now)
	cs := consoleSession{Account: accID, Digest: digest, CreatedAt: now, LastUsedAt: now, ExpiresAt: now.Add(s.people.SessionTTL)}
	if err := putRecord(tx, globalColl(CollSessions), id, &cs); err != nil {
		return "", err
	}
	return token, tx.Put(globalColl(CollAccountSess), accID+"/"+id, nil)
}

// endConsoleSession ends console session sid of acc, in tx.
func endConsoleSession(tx Tx, accID, sid string) error {
	if err := tx.Delete(globalColl(CollSessions), sid); err != nil {
		return err
	}
	return tx.Delete(globalColl(CollAccountSess), accID+"/"+sid)
}

// endConsoleSessions ends every console session of acc but keep ("" for
// none), in tx.
func endConsoleSessions(tx Tx, accID, keep string) error {
	entries, err := tx.Scan(globalColl(CollAccountSess), accID+"/", "", 0)
	if err != nil {
		return err
	}
	for _, e := range entries {
		sid := strings.TrimPrefix(e.ID, accID+"/")
		if sid == keep {
			continue
		}
		if err := tx.Delete(globalColl(CollSessions), sid); err != nil {
			return err
		}
		if err := tx.Delete(globalColl(CollAccountSess), e.ID); err != nil {
			return err
		}
	}
	return nil
}

// listConsoleSessions lists acc's live console sessions.
func listConsoleSessions(tx Tx, accID string, now time.Time, idle time.Duration) ([]Session, error) {
	entries, err := tx.Scan(globalColl(CollAccountSess), accID+"/", "", 0)
	if err != nil {
		return nil, err
	}
	out := []Session{}
	for _, e := range entries {
		sid := strings.TrimPrefix(e.ID, accID+"/")
		var cs consoleSession
		if err := getRecord(tx, globalColl(CollSessions), sid, &cs); err != nil {
			if errors.Is(err, ErrNotFound) {
				continue
			}
			return nil, err
		}
		if !now.Before(cs.ExpiresAt) || !now.Before(cs.LastUsedAt.Add(idle)) {
			continue
		}
		last := cs.LastUsedAt
		out = append(out, Session{ID: sid, Kind: SessionConsole, CreatedAt: cs.CreatedAt, LastUsedAt: &last, ExpiresAt: cs.ExpiresAt})
	}
	return out, nil
}

// tokenSessions lists u's session tokens (live or not) in tx.
func tokenSessions(tx Tx, ws, userID string) ([]tokenSession, error) {
	c := KeysCollection(ws, userID)
	entries, err := tx.Scan(c, "", "", 0)
	if err != nil {
		return nil, err
	}
	uses := usesIn(entries)
	var out []tokenSession
	for _, e := range entries {
		if !strings.HasPrefix(e.ID, "ses_") {
			continue
		}
		out = append(out, tokenSession{})
		t := &out[len(out)-1]
		if err := decodeRecord(c, e.ID, e.Value, t); err != nil {
			return nil, err
		}
		if at, ok := uses[e.ID]; ok {
			laterUse(&t.LastUsedAt, at)
		}
	}
	return out, nil
}

// endTokenSessions ends every session token of the user but keep.
func endTokenSessions(tx Tx, ws, userID, keep string) (bool, error) {
	ts, err := tokenSessions(tx, ws, userID)
	if err != nil {
		return false, err
	}
	ended := false
	for _, t := range ts {
		if t.ID == keep {
			continue
		}
		if err := deleteCredential(tx, ws, userID, t.ID); err != nil {
			return false, err
		}
		ended = true
	}
	return ended, nil
}

// newTokenSession writes a session of API user u in tx, ending expired
// ones and, beyond MaxTokenSessions, the oldest, and returns the token.
func (s *Service) newTokenSession(tx Tx, u *User, now time.Time) (string, *tokenSession, error) {
	ts, err := tokenSessions(tx, u.Workspace, u.ID)
	if err != nil {
		return "", nil, err
	}
	live := ts[:0]
	for _, t := range ts {
		if !now.Before(t.ExpiresAt) {
			if err := deleteCredential(tx, u.Workspace, u.ID, t.ID); err != nil {
				return "", nil, err
			}
			continue
		}
		live = append(live, t)
	}
	for len(live) >= MaxTokenSessions { // ids sort by creation time
		if err := deleteCredential(tx, u.Workspace, u.ID, live[0].ID); err != nil {
			return "", nil, err
		}
		live = live[1:]
	}
	t := &tokenSession{ID: ids.New("ses_", now), CreatedAt: now, ExpiresAt: now.Add(s.people.SessionTTL).Truncate(time.Second)}
	token, err := s.signer.Sign(Claims{UserID: u.ID, Workspace: u.Workspace, KeyID: t.ID, IssuedAt: now.Unix(), ExpiresAt: t.ExpiresAt.Unix()}, "")
	if err != nil {
		return "", nil, err
	}
	return token, t, putRecord(tx, KeysCollection(u.Workspace, u.ID), t.ID, t)
}

// ListSessions lists the sessions of user id of ws: an API user's session
// tokens, or the console sessions of a member's account. The user itself
// or a caller that may manage it may list them; current marks the caller's
// own (currentID).
func (s *Service) ListSessions(ctx context.Context, actor *Principal, via *ConsoleCaller, ws, id, currentID string) ([]Session, error) {
	u, err := s.sessionTarget(ctx, actor, via, ws, id)
	if err != nil {
		return nil, err
	}
	now := s.now().UTC()
	var out []Session
	if u.Kind == KindMember {
		if u.Account == "" {
			return []Session{}, nil
		}
		err = s.store.View(ctx, "", func(tx Tx) error {
			out, err = listConsoleSessions(tx, u.Account, now, s.people.SessionIdle)
			return err
		})
	} else {
		err = s.store.View(ctx, ws, func(tx Tx) error {
			ts, err := tokenSessions(tx, ws, id)
			if err != nil {
				return err
			}
			out = []Session{}
			for _, t := range ts {
				if now.Before(t.ExpiresAt) {
					out = append(out, Session{ID: t.ID, Kind: SessionToken, CreatedAt: t.CreatedAt, LastUsedAt: t.LastUsedAt, ExpiresAt: t.ExpiresAt})
				}
			}
			return nil
		})
	}
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Current = out[i].ID == currentID
	}
	slices.SortFunc(out, func(a, b Session) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// sessionTarget loads user id and checks that actor may see and end its
// sessions: itself, or a caller that may manage it; a member's sessions
// are its account's console sessions, which act in every workspace of the
// person, so for them a caller other than the person must manage every
// membership of the account (mayManageAccount; via is the console caller
// actor acts for, or nil).
func (s *Service) sessionTarget(ctx context.Context, actor *Principal, via *ConsoleCaller, ws, id string) (*User, error) {
	if !actor.InWorkspace(ws) {
		return nil, forbidden("not a member of workspace %s", ws)
	}
	u, err := s.subjectNow(ctx, ws, id)
	if err != nil {
		return nil, err
	}
	if err := maySessions(actor, via, u, func(acc string) error {
		_, err := s.mayManageAccount(ctx, actor, via, acc)
		return err
	}); err != nil {
		return nil, err
	}
	return u.User, nil
}

// maySessions checks that actor (acting for console caller via, or nil)
// may see and end u's sessions: itself (for a console caller, any
// membership of its own account), or a caller that may manage u and, for
// a member's console sessions, whose account lets it act on the person's
// account (mayManageAccount).
func maySessions(actor *Principal, via *ConsoleCaller, u *subject, account func(accID string) error) error {
	if actor.UserID == u.ID || (via != nil && u.Account != "" && via.Account.ID == u.Account) {
		return nil
	}
	if !mayManage(actor, u) {
		return forbidden("may not manage the sessions of user %s", u.ID)
	}
	if u.Kind == KindMember && u.Account != "" {
		return account(u.Account)
	}
	return nil
}

// EndSession ends session sid of user id of ws (see ListSessions for who
// may).
func (s *Service) EndSession(ctx context.Context, actor *Principal, via *ConsoleCaller, ws, id, sid string) error {
	u, err := s.sessionTarget(ctx, actor, via, ws, id)
	if err != nil {
		return err
	}
	notFound := errf(ErrNotFound, "session %s not found for user %s", sid, id)
	if !strings.HasPrefix(sid, "ses_") {
		return notFound
	}
	if u.Kind == KindMember {
		if u.Account == "" {
			return notFound
		}
		err = s.store.Update(ctx, "", func(tx Tx) error {
			if _, err := tx.Get(globalColl(CollAccountSess), u.Account+"/"+sid); err != nil {
				if errors.Is(err, ErrNotFound) {
					return notFound
				}
				return err
			}
			if err := tx.Delete(globalColl(CollSessions), sid); err != nil {
				return err
			}
			return tx.Delete(globalColl(CollAccountSess), u.Account+"/"+sid)
		})
		if err != nil {
			return err
		}
		return s.auditIn(ctx, ws, actor, ActionSessionEnd, id, map[string]FieldChange{"session": audit.Changed(sid, nil)})
	}
	err = s.store.Update(ctx, ws, func(tx Tx) error {
		if _, err := tx.Get(KeysCollection(ws, id), sid); err != nil {
			if errors.Is(err, ErrNotFound) {
				return notFound
			}
			return err
		}
		if err := deleteCredential(tx, ws, id, sid); err != nil {
			return err
		}
		return s.audit(tx, ws, actor, ActionSessionEnd, id, map[string]FieldChange{"session": audit.Changed(sid, nil)})
	})
	if err != nil {
		return err
	}
	s.changed(Change{Workspace: ws, Users: []string{id}})
	return nil
}

// EndConsoleToken ends the console session of token, when it is a live
// one (signing in again replaces the session a browser presented); it is
// audited as a sign-out. Anything else is ignored.
func (s *Service) EndConsoleToken(ctx context.Context, token string) error {
	c, err := s.ConsoleSession(ctx, token)
	if err != nil {
		return nil
	}
	return s.Logout(ctx, nil, c, "")
}

// Logout ends the caller's own session: the console session sid of a
// person, or the session token sid of API user actor.
func (s *Service) Logout(ctx context.Context, actor *Principal, console *ConsoleCaller, sid string) error {
	if console != nil {
		err := s.store.Update(ctx, "", func(tx Tx) error {
			if err := tx.Delete(globalColl(CollSessions), console.SessionID); err != nil {
				return err
			}
			return tx.Delete(globalColl(CollAccountSess), console.Account.ID+"/"+console.SessionID)
		})
		if err != nil {
			return err
		}
		s.auditAccount(ctx, console.Memberships, ActionSignOut, map[string]FieldChange{"session": audit.Changed(console.SessionID, nil)})
		return nil
	}
	if !strings.HasPrefix(sid, "ses_") {
		return errf(ErrInvalid, "signing out needs a session: this request was made with an API key")
	}
	err := s.store.Update(ctx, actor.Workspace, func(tx Tx) error {
		if err := deleteCredential(tx, actor.Workspace, actor.UserID, sid); err != nil {
			return err
		}
		return s.audit(tx, actor.Workspace, actor, ActionSignOut, actor.UserID, map[string]FieldChange{"session": audit.Changed(sid, nil)})
	})
	if err != nil {
		return err
	}
	s.changed(Change{Workspace: actor.Workspace, Users: []string{actor.UserID}})
	return nil
}

// auditIn writes one audit entry in its own transaction (for changes made
// outside the workspace: an account's).
func (s *Service) auditIn(ctx context.Context, ws string, actor *Principal, action, target string, changes map[string]FieldChange) error {
	return s.store.Update(ctx, ws, func(tx Tx) error { return s.audit(tx, ws, actor, action, target, changes) })
}

// auditAccount records an account event in the audit log of each
// workspace the person acts in (an active membership), as done by the
// membership there: a workspace where the person was only invited, or is
// no longer active, learns nothing of the account's sign-ins, passwords
// or name. The account change has committed already (in the global
// transaction): an entry that cannot be written is skipped, not a reason
// to fail what is done.
func (s *Service) auditAccount(ctx context.Context, ms []Membership, action string, changes map[string]FieldChange) {
	for _, m := range ms {
		if m.Status != StatusActive {
			continue
		}
		actor := &Principal{UserID: m.UserID, Workspace: m.Workspace}
		_ = s.auditIn(ctx, m.Workspace, actor, action, m.UserID, changes)
	}
}
