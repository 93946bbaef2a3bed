package authz

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/apiusers/apiusers/authz/audit"
	"github.com/apiusers/apiusers/authz/password"
)

// PeopleConfig configures accounts, sessions and passwords.
type PeopleConfig struct {
	// SessionTTL is how long a session lives. Default: 12h.
	SessionTTL time.Duration
	// SessionIdle ends a console session unused for this long. Default: 1h.
	SessionIdle time.Duration
	// InviteTTL is how long an invitation link works. Default: 7 days.
	InviteTTL time.Duration
	// Hasher hashes passwords. Default: password.New with its defaults.
	Hasher *password.Hasher
	// SignIn, when set, is told the outcome of every sign-in attempt
	// ("ok", "failed", "throttled", "error"), for metrics.
	SignIn func(outcome string)
}

func (c *PeopleConfig) defaults(st Store) error {
	if c.SessionTTL <= 0 {
		c.SessionTTL = DefaultSessionTTL
	}
	if c.SessionIdle <= 0 {
		c.SessionIdle = DefaultSessionIdle
	}
	if c.InviteTTL <= 0 {
		c.InviteTTL = DefaultInviteTTL
	}
	if c.Hasher == nil {
		h, err := password.New(password.Config{})
		if err != nil {
			return err
		}
		c.Hasher = h
	}
	if c.SignIn == nil {
		c.SignIn = func(string) {}
	}
	return nil
}

// Bounds of sign-in input, in bytes, checked before any other work: an
// email (RFC 5321's path limit), a username (its canonical form's limit),
// a workspace id, and a password (MaxLength characters of at most four
// bytes each).
const (
	maxEmailBytes     = 254
	maxUsernameBytes  = maxCanonical
	maxWorkspaceBytes = 63
	maxPasswordBytes  = 4 * password.MaxLength
)

// checkPasswordInput refuses a password no policy could have let through,
// before it is hashed or estimated.
func checkPasswordInput(field, pw string) error {
	if len(pw) > maxPasswordBytes {
		return fieldErr(field, "is too long (at most %d characters)", password.MaxLength)
	}
	return nil
}

// errBadSignIn is the one answer of every failed sign-in: wrong password,
// unknown identity, no password, inactive or only invited.
var errBadSignIn = &Error{Kind: ErrUnauthenticated, Detail: "wrong email, username or password"}

// SignedIn is a person's successful sign-in: the account, its memberships,
// and the console session token for the cookie.
type SignedIn struct {
	Account     Account
	Memberships []Membership
	Token       string
	ExpiresAt   time.Time
}

// TokenSignIn is an API user's successful sign-in.
type TokenSignIn struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// SignInAccount signs a person in with email and password from client
// address addr. Every failure is the same 401 after the same work (a hash
// is verified even for an unknown email); throttled attempts are a 429.
func (s *Service) SignInAccount(ctx context.Context, email, pw, addr string) (*SignedIn, error) {
	// Bounds first: nothing below, Unicode normalization least of all,
	// may cost what a client's input asks for.
	if len(email) > maxEmailBytes {
		return nil, fieldErr("email", "is not an email address (at most %d bytes)", maxEmailBytes)
	}
	if err := checkPasswordInput("password", pw); err != nil {
		return nil, err
	}
	identity := "e:" + emailKey(email)
	out, err := s.signInAccount(ctx, identity, email, pw, addr)
	s.signInOutcome(err)
	return out, err
}

func (s *Service) signInOutcome(err error) {
	switch {
	case err == nil:
		s.people.SignIn("ok")
	case errors.Is(err, ErrThrottled):
		s.people.SignIn("throttled")
	case errors.Is(err, ErrUnauthenticated):
		s.people.SignIn("failed")
	default:
		s.people.SignIn("error")
	}
}

func (s *Service) signInAccount(ctx context.Context, identity, email, pw, addr string) (*SignedIn, error) {
	try, err := s.begin(ctx, identity, addr)
	if err != nil {
		return nil, err
	}
	defer try.end(ctx)
	var acc *Account
	var phc string
	var idx [][2]string
	err = s.store.View(ctx, "", func(tx Tx) error {
		var err error
		if acc, err = accountByEmail(tx, email); err != nil {
			if errors.Is(err, ErrNotFound) {
				acc = nil
				return nil
			}
			return err
		}
		raw, err := tx.Get(globalColl(CollPasswords), acc.ID)
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return err
		default:
			phc = string(raw)
		}
		idx, err = membershipsOf(tx, acc.ID)
		return err
	})
	if err != nil {
		return nil, err
	}
	ok, rehash, err := s.verify(ctx, pw, phc)
	if err != nil {
		return nil, err
	}
	var ms []Membership
	if ok {
		if ms, err = s.memberships(ctx, idx); err != nil {
			return nil, err
		}
		ok = false
		for _, m := range ms {
			ok = ok || m.Status == StatusActive
		}
	}
	if !ok {
		try.failed()
		return nil, errBadSignIn
	}
	try.succeeded(ctx)
	now := s.now().UTC()
	var newHash string
	if rehash {
		newHash, _ = s.people.Hasher.Hash(ctx, pw) // a failure keeps the old hash
	}
	var token string
	err = s.store.Update(ctx, "", func(tx Tx) error {
		if newHash != "" {
			if err := tx.Put(globalColl(CollPasswords), acc.ID, []byte(newHash)); err != nil {
				return err
			}
		}
		var err error
		token, err = s.newConsoleSession(tx, acc.ID, now)
		return err
	})
	if err != nil {
		return nil, err
	}
	id, _, _ := strings.Cut(token, ".")
	s.auditAccount(ctx, active(ms), ActionSignIn, map[string]FieldChange{"session": audit.Changed(nil, id)})
	return &SignedIn{Account: *acc, Memberships: ms, Token: token, ExpiresAt: now.Add(s.people.SessionTTL)}, nil
}

func active(ms []Membership) []Membership {
	out := make([]Membership, 0, len(ms))
	for _, m := range ms {
		if m.Status == StatusActive {
			out = append(out, m)
		}
	}
	return out
}

// verify checks pw against phc, or against a dummy hash when phc is ""
// (same time, always false).
func (s *Service) verify(ctx context.Context, pw, phc string) (ok, rehash bool, err error) {
	h := s.people.Hasher
	if phc == "" {
		err = h.VerifyDummy(ctx, pw)
	} else {
		ok, rehash, err = h.Verify(ctx, pw, phc)
		if errors.Is(err, password.ErrMalformed) {
			return false, false, err
		}
	}
	if err != nil {
		return false, false, Unavailable(err)
	}
	return ok, rehash, nil
}

// SignInUser signs API user username of ws in with its password and
// returns a bearer session token (see SignInAccount for failures).
func (s *Service) SignInUser(ctx context.Context, ws, username, pw, addr string) (*TokenSignIn, error) {
	switch {
	case len(ws) > maxWorkspaceBytes:
		return nil, fieldErr("workspace", "is not a workspace id (at most %d characters)", maxWorkspaceBytes)
	case len(username) > maxUsernameBytes:
		return nil, fieldErr("username", "is too long (at most %d bytes)", maxUsernameBytes)
	}
	if err := checkPasswordInput("password", pw); err != nil {
		return nil, err
	}
	identity := "u:" + ws + "/" + CanonicalName(username)
	out, err := s.signInUser(ctx, identity, ws, username, pw, addr)
	s.signInOutcome(err)
	return out, err
}

func (s *Service) signInUser(ctx context.Context, identity, ws, username, pw, addr string) (*TokenSignIn, error) {
	try, err := s.begin(ctx, identity, addr)
	if err != nil {
		return nil, err
	}
	defer try.end(ctx)
	var u *User
	var phc string
	if ValidWorkspaceID(ws) && username != "" {
		err := s.store.View(ctx, ws, func(tx Tx) error {
			id, err := tx.Get(namesOf(ws), nameKey(username))
			if errors.Is(err, ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			if u, err = getUser(tx, ws, string(id)); err != nil {
				u = nil
				if errors.Is(err, ErrNotFound) {
					return nil
				}
				return err
			}
			raw, err := tx.Get(passwordsOf(ws), u.ID)
			switch {
			case errors.Is(err, ErrNotFound):
			case err != nil:
				return err
			default:
				phc = string(raw)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	ok, rehash, err := s.verify(ctx, pw, phc)
	if err != nil {
		return nil, err
	}
	if !ok || u.Kind != KindAPI || u.Status != StatusActive {
		try.failed()
		return nil, errBadSignIn
	}
	try.succeeded(ctx)
	var newHash string
	if rehash {
		newHash, _ = s.people.Hasher.Hash(ctx, pw)
	}
	now := s.now().UTC()
	var out *TokenSignIn
	err = s.store.Update(ctx, ws, func(tx Tx) error {
		cur, err := getUser(tx, ws, u.ID)
		if err != nil {
			return err
		}
		if cur.Status != StatusActive {
			return errBadSignIn
		}
		if newHash != "" {
			if err := tx.Put(passwordsOf(ws), u.ID, []byte(newHash)); err != nil {
				return err
			}
		}
		token, t, err := s.newTokenSession(tx, cur, now)
		if err != nil {
			return err
		}
		out = &TokenSignIn{Token: token, ExpiresAt: t.ExpiresAt}
		self := &Principal{UserID: u.ID, Workspace: ws}
		return s.audit(tx, ws, self, ActionSignIn, u.ID, map[string]FieldChange{"session": audit.Changed(nil, t.ID)})
	})
	if err != nil {
		return nil, err
	}
	s.changed(Change{Workspace: ws, Users: []string{u.ID}})
	return out, nil
}
