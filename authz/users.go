package authz

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/apiusers/apiusers/authz/audit"
	"github.com/apiusers/apiusers/authz/ids"
)

// ListUsers lists users of ws the caller may see, in creation order (a
// search by prefix, f.Q, in the order of the names it matched). users.read
// sees every user; users.manage.basic sees api_basic users. Lists by kind
// (and status) and searches read the user index (userindex.go), so a page
// costs what it shows, not what the workspace holds; such a page may end
// early, with a next cursor, after a bounded read.
func (s *Service) ListUsers(ctx context.Context, actor *Principal, ws string, f UserFilter, page Page) ([]User, string, error) {
	users, _, next, err := s.listUsers(ctx, actor, nil, ws, f, page, false)
	return users, next, err
}

// ListUsersAllowed is ListUsers with, for each user listed, what actor
// (acting for the console caller via, or nil) may do with it (Allowed),
// worked out from the users and teams the list read, in the same
// transaction, instead of reading them again.
func (s *Service) ListUsersAllowed(ctx context.Context, actor *Principal, via *ConsoleCaller, ws string, f UserFilter, page Page) ([]User, [][]string, string, error) {
	return s.listUsers(ctx, actor, via, ws, f, page, true)
}

// listUsers is ListUsers, and with withAllowed ListUsersAllowed.
func (s *Service) listUsers(ctx context.Context, actor *Principal, via *ConsoleCaller, ws string, f UserFilter, page Page, withAllowed bool) ([]User, [][]string, string, error) {
	if err := f.check(); err != nil {
		return nil, nil, "", err
	}
	if !actor.InWorkspace(ws) {
		return nil, nil, "", forbidden("not a member of workspace %s", ws)
	}
	switch {
	case actor.HasPermission(PermUsersRead):
	case authorityOf(actor) == authBasic:
		if f.Role != "" && f.Role != RoleAPIBasic {
			return []User{}, [][]string{}, "", nil
		}
		f.Role = RoleAPIBasic
	default:
		return nil, nil, "", forbidden("listing users needs %s", PermUsersRead)
	}
	list := "users:" + ws
	page, after, err := s.normalize(page, list)
	if err != nil {
		return nil, nil, "", err
	}
	q := CanonicalName(f.Q)
	// rest checks what the index range chosen below does not.
	rest := func(u *User) bool {
		return (f.Kind == "" || u.Kind == f.Kind) &&
			(f.Role == "" || u.Role == f.Role) &&
			(f.Status == "" || u.Status == f.Status) &&
			(f.Team == "" || slices.Contains(u.Teams, f.Team))
	}
	if _, err := s.workspaceExists(ctx, ws); err != nil {
		return nil, nil, "", err
	}
	if err := s.ensureUserIndex(ctx, ws); err != nil {
		return nil, nil, "", err
	}
	// The index range to read (see userindex.go), and how its cursors
	// read: a search by prefix reads the terms in order (the cursor is an
	// index entry); a kind and status list its one range in creation
	// order, as does a kind list over every status (merged; the cursor
	// is a user id, as for the plain list of every user).
	var ranges []*indexRange
	byUser := false
	var pre func([]byte) bool
	keep := func(_ string, u *User) bool { return rest(u) }
	switch {
	case q != "":
		prefix := termPrefix + indexTerm(q)
		if after != "" && !strings.HasPrefix(after, prefix) {
			return nil, nil, "", fieldErr("cursor", "is not a cursor of this search")
		}
		ranges = []*indexRange{{prefix: prefix, after: after}}
		pre = func(v []byte) bool {
			kind, status, _ := strings.Cut(string(v), "\x00")
			return (f.Kind == "" || Kind(kind) == f.Kind) && (f.Status == "" || Status(status) == f.Status)
		}
		keep = func(entry string, u *User) bool { return rest(u) && firstTerm(entry, u, q) }
	case f.Kind != "" && f.Status != "":
		prefix := statusPrefix(f.Kind, f.Status)
		if after != "" && !strings.HasPrefix(after, prefix) {
			return nil, nil, "", fieldErr("cursor", "is not a cursor of this list")
		}
		ranges = []*indexRange{{prefix: prefix, after: after}}
	case f.Kind != "":
		byUser = true
		for _, st := range []Status{StatusInvited, StatusActive, StatusInactive, StatusTrash} {
			prefix := statusPrefix(f.Kind, st)
			r := &indexRange{prefix: prefix}
			if after != "" {
				r.after = prefix + after
			}
			ranges = append(ranges, r)
		}
	}
	var out []User
	var show []bool
	var subjects []*subject
	next := ""
	err = s.store.View(ctx, ws, func(tx Tx) error {
		out, show, subjects, next = out[:0], show[:0], subjects[:0], ""
		memo := teamMemo{}
		var at []string
		if ranges != nil {
			for _, r := range ranges { // a retried View starts over
				r.buf, r.done = nil, false
			}
			if byUser {
				for _, r := range ranges {
					r.after = ""
					if after != "" {
						r.after = r.prefix + after
					}
				}
			} else {
				ranges[0].after = after
			}
			p, err := scanIndex(tx, ws, ranges, byUser, page.Limit, pre, keep)
			if err != nil {
				return err
			}
			out, at, next = p.users, p.at, p.stop
			if next != "" {
				next = s.EncodeCursor(list, next)
			}
		} else {
			cursor := after
			for len(out) <= page.Limit {
				entries, err := tx.Scan(usersOf(ws), "", cursor, page.Limit+1)
				if err != nil {
					return err
				}
				for _, e := range entries {
					var u User
					if err := decodeRecord(usersOf(ws), e.ID, e.Value, &u); err != nil {
						return fmt.Errorf("decoding user %s: %w", e.ID, err)
					}
					if rest(&u) {
						out = append(out, u)
						at = append(at, u.ID)
						if len(out) > page.Limit {
							break
						}
					}
				}
				if len(entries) <= page.Limit {
					break
				}
				cursor = entries[len(entries)-1].ID
			}
		}
		if len(out) > page.Limit {
			out = out[:page.Limit]
			next = s.EncodeCursor(list, at[page.Limit-1])
		}
		for i := range out {
			sj, err := subjectOf(tx, &out[i], memo)
			if err != nil {
				return err
			}
			show = append(show, mayManage(actor, sj))
			subjects = append(subjects, sj)
		}
		return nil
	})
	if err != nil {
		return nil, nil, "", err
	}
	var allowed [][]string
	if withAllowed { // before redact, which takes away what it reads
		if allowed, err = s.allowedOf(ctx, actor, via, subjects); err != nil {
			return nil, nil, "", err
		}
	}
	cs := make([]*Credits, len(out))
	for i := range out {
		redact(actor, &out[i], show[i])
		cs[i] = out[i].Credits
	}
	if err := s.fillCredits(ctx, ws, cs...); err != nil {
		return nil, nil, "", err
	}
	return out, allowed, next, nil
}

// workspaceExists reads workspace ws from the global collection.
func (s *Service) workspaceExists(ctx context.Context, ws string) (*Workspace, error) {
	var w *Workspace
	err := s.store.View(ctx, ws, func(tx Tx) error {
		var err error
		w, err = getWorkspace(tx, ws)
		return err
	})
	return w, err
}

// redact hides what the actor may not see of u: its private_note, unless
// the actor may manage u (manages, as mayManage said) and is not u itself.
func redact(actor *Principal, u *User, manages bool) {
	if actor.UserID == u.ID || !manages {
		u.PrivateNote = ""
	}
	if actor.UserID != u.ID && !actor.Everywhere {
		// The person behind a membership is its own business: an
		// account id (which carries its creation time) would tell a
		// workspace's admin whether the person is a member elsewhere.
		u.Account = ""
	}
}

// CreateUser creates a user (and its first key when in.IssueKey).
func (s *Service) CreateUser(ctx context.Context, actor *Principal, ws string, in NewUser) (*CreatedUser, error) {
	auth, err := mayCreateUsers(actor, ws)
	if err != nil {
		return nil, err
	}
	if in.Status == "" {
		in.Status = StatusActive
	}
	if err := s.validateNewUser(actor, auth, &in); err != nil {
		return nil, err
	}
	if _, err := s.workspaceExists(ctx, ws); err != nil {
		return nil, err
	}
	var phc string
	if in.Password != "" {
		if in.Kind != KindAPI {
			return nil, fieldErr("password", "only API users get a password on create: people set theirs by invitation")
		}
		if phc, err = s.hashPassword(ctx, "password", in.Password, in.Username, in.Email); err != nil {
			return nil, err
		}
	}
	now := s.now().UTC()
	nu, err := s.newUserRecords(ws, in, now)
	if err != nil {
		return nil, err
	}
	if phc != "" {
		nu.hash = phc
		nu.user.PasswordChangedAt, nu.user.HasPassword = &now, true
	}
	err = s.store.Update(ctx, ws, func(tx Tx) error {
		return s.writeNewUser(tx, actor, nu, in.Teams, now)
	})
	if err != nil {
		return nil, err
	}
	s.changed(Change{Workspace: ws, Users: []string{nu.user.ID}})
	out := nu.created(s, actor)
	s.fillCreditsAfter(ctx, ws, out.Credits)
	return out, nil
}

// mayCreateUsers checks that actor may create users in ws at all, and
// returns its authority over the users it creates.
func mayCreateUsers(actor *Principal, ws string) (authority, error) {
	if !actor.InWorkspace(ws) {
		return authNone, forbidden("not a member of workspace %s", ws)
	}
	auth := authorityOf(actor)
	if auth == authNone {
		return authNone, forbidden("creating users needs %s", PermUsersManage)
	}
	return auth, nil
}

// newUser is what creating one user writes: the user record and, when
// asked for, its first key and that key's string.
type newUser struct {
	user   User
	key    *Key
	secret string
	// manages: the actor may manage the user it made (set by writeNewUser).
	manages bool
	hash    string // the password's PHC string, when it has one
}

// newUserRecords makes the records of a new user of ws from in (checked
// already), and signs its first key when in.IssueKey.
func (s *Service) newUserRecords(ws string, in NewUser, now time.Time) (*newUser, error) {
	nu := &newUser{user: User{
		ID: ids.New("usr_", now), Workspace: ws, Username: in.Username, Email: in.Email,
		Kind: in.Kind, Role: in.Role, Status: in.Status, Organization: in.Organization,
		Language: in.Language, Timezone: in.Timezone, PrivateNote: in.PrivateNote,
		Permissions: orEmpty(in.Permissions), Grants: orEmptyGrants(in.Grants), Teams: []string{},
		CreatedAt: now, UpdatedAt: now, Version: 1, RateLimit: in.RateLimit,
	}}
	if in.Credits != nil {
		c, err := newCredits("credits", in.Credits, nil, nu.user.ID, now)
		if err != nil {
			return nil, err
		}
		nu.user.Credits = c
	}
	if in.IssueKey {
		nu.key = s.newKey(&nu.user, "default", nil, now)
		secret, err := s.sign(nu.key)
		if err != nil {
			return nil, err
		}
		nu.secret = secret
	}
	return nu, nil
}

// writeNewUser writes nu in tx: its name, the teams it joins, the user,
// its key, and the audit entries of the user and the key.
func (s *Service) writeNewUser(tx Tx, actor *Principal, nu *newUser, teams []string, now time.Time) error {
	u, ws := &nu.user, nu.user.Workspace
	u.Teams = []string{} // Update may run this more than once
	if err := claimName(tx, ws, u.Username, u.ID); err != nil {
		return err
	}
	for _, tid := range teams {
		if t, err := getTeamRecord(tx, ws, tid); err == nil {
			if err := checkGrantable(actor, authManage, nil, t.Permissions, nil, t.Grants); err != nil {
				return err
			}
		}
		if err := joinTeam(tx, u, tid, now); err != nil {
			return err
		}
	}
	if err := putNewUser(tx, u); err != nil {
		return err
	}
	sj, err := subjectOf(tx, u, nil)
	if err != nil {
		return err
	}
	nu.manages = mayManage(actor, sj)
	if (u.RateLimit != nil || u.Credits != nil) && !nu.manages {
		return forbidden("setting the rate limit or credits of a user needs %s", PermUsersManage)
	}
	if nu.hash != "" {
		if err := tx.Put(passwordsOf(ws), u.ID, []byte(nu.hash)); err != nil {
			return err
		}
	}
	changes, err := audit.Diff(nil, u)
	if err != nil {
		return err
	}
	if err := s.audit(tx, ws, actor, ActionUserCreate, u.ID, changes); err != nil {
		return err
	}
	if nu.key == nil {
		return nil
	}
	if err := putKey(tx, nu.key); err != nil {
		return err
	}
	return s.audit(tx, ws, actor, ActionKeyCreate, nu.key.ID, keyChanges(nu.key))
}

// created is what the caller is shown of nu: the user as actor may see it,
// and the key string.
func (nu *newUser) created(s *Service, actor *Principal) *CreatedUser {
	out := &CreatedUser{User: nu.user, Key: nu.secret}
	if nu.key != nil {
		out.KeyID = nu.key.ID
	}
	redact(actor, &out.User, nu.manages)
	return out
}

func (s *Service) validateNewUser(actor *Principal, auth authority, in *NewUser) error {
	if err := validateUsername(in.Username); err != nil {
		return err
	}
	if in.Kind != KindAPI && in.Kind != KindMember {
		return fieldErr("kind", "must be api or member")
	}
	if in.Role == "" {
		return fieldErr("role", "is required")
	}
	if !ValidStatus(in.Status) {
		return fieldErr("status", "must be active, inactive or trash")
	}
	if err := validateProfile(in.Email, in.Language, in.Timezone); err != nil {
		return err
	}
	if err := validatePermissions("permissions", in.Permissions); err != nil {
		return err
	}
	if err := validateGrants("grants", in.Grants); err != nil {
		return err
	}
	if err := validateOrganization(in.Organization); err != nil {
		return err
	}
	if err := validatePrivateNote(in.PrivateNote); err != nil {
		return err
	}
	if err := checkRole(actor, auth, in.Kind, in.Role); err != nil {
		return err
	}
	if auth == authRegister {
		if in.Status != StatusActive && in.Status != StatusInactive {
			return forbidden("may only create active or inactive users")
		}
		if len(in.Permissions) > 0 || len(in.Grants) > 0 {
			return forbidden("may not grant permissions or rights")
		}
	}
	if len(in.Teams) > 0 && !actor.HasPermission(PermTeamsManage) {
		return forbidden("adding users to teams needs %s", PermTeamsManage)
	}
	if in.IssueKey && auth == authManage && !actor.HasPermission(PermKeysManage) {
		return forbidden("issuing keys needs %s", PermKeysManage)
	}
	if in.Password != "" && auth == authManage && !actor.HasPermission(PermKeysManage) {
		// A password signs in to a session token, which acts as a key.
		return forbidden("giving a user a password needs %s: it is a credential, as a key is", PermKeysManage)
	}
	if in.RateLimit != nil {
		r := *in.RateLimit
		if err := r.normalize("rate_limit"); err != nil {
			return err
		}
		in.RateLimit = &r
	}
	return checkGrantable(actor, auth, nil, in.Permissions, nil, in.Grants)
}

func validateProfile(email, lang, tz string) error {
	if err := validateEmail(email); err != nil {
		return err
	}
	if err := validateLanguage(lang); err != nil {
		return err
	}
	return validateTimezone(tz)
}

// claimName reserves username for user id, or fails with 409.
func claimName(tx Tx, ws, username, id string) error {
	owner, err := tx.Get(namesOf(ws), nameKey(username))
	switch {
	case err == nil && string(owner) != id:
		return errf(ErrConflict, "username %q is taken in workspace %s", username, ws)
	case err != nil && !errors.Is(err, ErrNotFound):
		return err
	}
	return tx.Put(namesOf(ws), nameKey(username), []byte(id))
}

// joinTeam adds u to team tid (both records), or fails with 400 when the
// team does not exist.
func joinTeam(tx Tx, u *User, tid string, now time.Time) error {
	t, err := getTeamRecord(tx, u.Workspace, tid)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return fieldErr("teams", "team %s does not exist", tid)
		}
		return err
	}
	member, err := isMember(tx, t, u.ID)
	if err != nil {
		return err
	}
	if !member {
		if err := tx.Put(teamMembersOf(u.Workspace), memberKey(tid, u.ID), []byte{}); err != nil {
			return err
		}
		teamRecords.bump(t, now)
		if err := putTeam(tx, t); err != nil {
			return err
		}
	}
	if !slices.Contains(u.Teams, tid) {
		u.Teams = append(u.Teams, tid)
	}
	return nil
}

// GetUser returns one user; private_note only when the caller may manage it.
func (s *Service) GetUser(ctx context.Context, actor *Principal, ws, id string) (*User, error) {
	if !actor.InWorkspace(ws) {
		return nil, forbidden("not a member of workspace %s", ws)
	}
	var sj *subject
	err := s.store.View(ctx, ws, func(tx Tx) error {
		u, err := getUser(tx, ws, id)
		if err != nil {
			return err
		}
		sj, err = subjectOf(tx, u, nil)
		return err
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) && actor.UserID != id && !actor.HasPermission(PermUsersRead) && authorityOf(actor) < authBasic {
			return nil, forbidden("reading users needs %s", PermUsersRead)
		}
		return nil, err
	}
	if !mayRead(actor, sj) {
		return nil, forbidden("reading user %s needs %s", id, PermUsersRead)
	}
	redact(actor, sj.User, mayManage(actor, sj))
	if err := s.fillCredits(ctx, ws, sj.User.Credits); err != nil {
		return nil, err
	}
	return sj.User, nil
}

// loadSubject reads user id of ws and its teams in tx.
func loadSubject(tx Tx, ws, id string) (*subject, error) {
	u, err := getUser(tx, ws, id)
	if err != nil {
		return nil, err
	}
	return subjectOf(tx, u, nil)
}

// loadingSubject is the load of a recordChange of user id of ws that
// reads it as a subject (with its teams, for the rules) into *sj.
func loadingSubject(ws, id string, sj **subject) func(Tx) (*User, error) {
	return func(tx Tx) (*User, error) {
		var err error
		if *sj, err = loadSubject(tx, ws, id); err != nil {
			return nil, err
		}
		return (*sj).User, nil
	}
}

func (s *Service) loadUser(ctx context.Context, ws, id string) (*User, error) {
	var u *User
	err := s.store.View(ctx, ws, func(tx Tx) error {
		var err error
		u, err = getUser(tx, ws, id)
		return err
	})
	return u, err
}

// UpdateUser applies patch; ifMatch, when not nil, must equal the current version.
func (s *Service) UpdateUser(ctx context.Context, actor *Principal, ws, id string, patch UserPatch, ifMatch *int64) (*User, error) {
	if !actor.InWorkspace(ws) {
		return nil, forbidden("not a member of workspace %s", ws)
	}
	var manages bool
	var sj *subject
	var dropped string
	u, err := update(ctx, s, actor, recordChange[User]{
		kind: userRecords, ws: ws, id: id, ifMatch: ifMatch, action: ActionUserUpdate,
		load: loadingSubject(ws, id, &sj),
		edit: func(tx Tx, u *User) error {
			manages = mayManage(actor, sj)
			if err := s.applyPatch(tx, actor, u, manages, &patch); err != nil {
				return err
			}
			dropped = ""
			if patch.RateLimit.Set || patch.Credits.Set {
				if err := mayLimit(actor, sj, false); err != nil {
					return err
				}
				var err error
				if dropped, err = applyLimits(patch.RateLimit, patch.Credits, &u.RateLimit, &u.Credits, u.ID, s.now()); err != nil {
					return err
				}
			}
			return nil
		},
		unseen: func(before, after *User, changes map[string]FieldChange) {
			creditsSetAgain(patch.Credits, before.Credits, after.Credits, changes)
		},
	})
	if err != nil {
		return nil, err
	}
	s.dropCredits(ctx, ws, dropped)
	redact(actor, u, manages)
	s.fillCreditsAfter(ctx, ws, u.Credits)
	return u, nil
}

// applyPatch applies p to u; manage says whether actor may manage u.
func (s *Service) applyPatch(tx Tx, actor *Principal, u *User, manage bool, p *UserPatch) error {
	self := actor.UserID == u.ID
	if p.Role != nil && *p.Role != u.Role {
		if err := mayChangeRole(actor, u, manage); err != nil {
			return err
		}
	}
	if !manage {
		if !self {
			return forbidden("may not change user %s", u.ID)
		}
		if p.Username != nil || p.Role != nil || p.Organization != nil || p.PrivateNote != nil || p.Permissions != nil || p.Grants != nil {
			return forbidden("users may change only their own email, language and timezone")
		}
	}
	auth := authorityOf(actor)
	if p.Email != nil && u.Account != "" && *p.Email != u.Email {
		return errf(ErrConflict, "user %s is a person's membership: its email is the account's sign-in and cannot be changed here", u.ID)
	}
	if p.Email != nil {
		if err := validateEmail(*p.Email); err != nil {
			return err
		}
		u.Email = *p.Email
	}
	if p.Language != nil {
		if err := validateLanguage(*p.Language); err != nil {
			return err
		}
		u.Language = *p.Language
	}
	if p.Timezone != nil {
		if err := validateTimezone(*p.Timezone); err != nil {
			return err
		}
		u.Timezone = *p.Timezone
	}
	if p.Organization != nil {
		if err := validateOrganization(*p.Organization); err != nil {
			return err
		}
		u.Organization = *p.Organization
	}
	if p.PrivateNote != nil {
		if err := validatePrivateNote(*p.PrivateNote); err != nil {
			return err
		}
		u.PrivateNote = *p.PrivateNote
	}
	if p.Username != nil && *p.Username != u.Username {
		if err := validateUsername(*p.Username); err != nil {
			return err
		}
		if nameKey(*p.Username) != nameKey(u.Username) {
			if err := claimName(tx, u.Workspace, *p.Username, u.ID); err != nil {
				return err
			}
			if err := tx.Delete(namesOf(u.Workspace), nameKey(u.Username)); err != nil {
				return err
			}
		}
		u.Username = *p.Username
	}
	if p.Role != nil && *p.Role != u.Role {
		if err := checkRole(actor, auth, u.Kind, *p.Role); err != nil {
			return err
		}
		u.Role = *p.Role
	}
	newPerms, newGrants := u.Permissions, u.Grants
	if p.Permissions != nil {
		if err := validatePermissions("permissions", *p.Permissions); err != nil {
			return err
		}
		newPerms = orEmpty(*p.Permissions)
	}
	if p.Grants != nil {
		if err := validateGrants("grants", *p.Grants); err != nil {
			return err
		}
		newGrants = orEmptyGrants(*p.Grants)
	}
	if err := checkGrantable(actor, auth, u.Permissions, newPerms, u.Grants, newGrants); err != nil {
		return err
	}
	u.Permissions, u.Grants = newPerms, newGrants
	return nil
}

// mayChangeRole checks that actor may change u's role at all (which roles
// it may give, checkRole says): it manages u (manage), with users.manage
// (users.manage.basic gives only the api_basic role its users hold
// already), and is not u.
func mayChangeRole(actor *Principal, u *User, manage bool) error {
	if actor.UserID == u.ID {
		return forbidden("nobody changes its own role")
	}
	if !manage {
		return forbidden("may not change user %s", u.ID)
	}
	if authorityOf(actor) != authManage {
		return forbidden("may only give the api_basic role")
	}
	return nil
}

// SetStatus moves a user to status.
func (s *Service) SetStatus(ctx context.Context, actor *Principal, ws, id string, status Status) (*User, error) {
	if !ValidStatus(status) {
		return nil, fieldErr("status", "must be active, inactive or trash")
	}
	if !actor.InWorkspace(ws) {
		return nil, forbidden("not a member of workspace %s", ws)
	}
	var manages bool
	var sj *subject
	to := status
	u, err := update(ctx, s, actor, recordChange[User]{
		kind: userRecords, ws: ws, id: id, action: ActionUserStatus,
		load: loadingSubject(ws, id, &sj),
		edit: func(tx Tx, u *User) error {
			manages = mayManage(actor, sj)
			if !mayChangeStatus(actor, sj, status) {
				return forbidden("may not set user %s to %s", id, status)
			}
			to = status
			if u.Status == StatusInvited && status != StatusTrash {
				return errf(ErrConflict, "user %s has not accepted the invitation: only the person can make it active", id)
			}
			if u.Status == StatusTrash && neverAccepted(u) {
				// A membership never accepted comes back as the
				// invitation it was: only accepting makes it active.
				switch status {
				case StatusInactive:
					return errf(ErrConflict, "user %s never accepted its invitation: restore it with status active, which makes it invited again", id)
				case StatusActive:
					to = StatusInvited
				}
			}
			if u.Status == to {
				return nil
			}
			u.Status = to
			if to != StatusActive {
				// Its sessions end, not just pause: reactivating the user
				// does not bring them back.
				if _, err := endTokenSessions(tx, ws, id, ""); err != nil {
					return err
				}
			}
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	// A person's console sessions stay: they are the account's, and its
	// other memberships are not this one's to end. What this membership
	// authorised ends with its status, since every console request
	// picks an active membership anew (Acting).
	redact(actor, u, manages)
	s.fillCreditsAfter(ctx, ws, u.Credits)
	return u, nil
}

// neverAccepted reports whether u is a person's membership whose
// invitation was never accepted.
func neverAccepted(u *User) bool { return u.Account != "" && u.AcceptedAt == nil }

// mayChangeStatus reports whether actor may move u to status: a manager
// may; a registering caller (users.register) may enable and disable an
// api_basic user that holds nothing beyond its role the caller lacks (move
// it between active and inactive, never out of trash nor into it); an
// api_basic user may deactivate itself.
func mayChangeStatus(actor *Principal, u *subject, status Status) bool {
	if mayManage(actor, u) {
		return true
	}
	enableDisable := (status == StatusActive || status == StatusInactive) &&
		(u.Status == StatusActive || u.Status == StatusInactive)
	if authorityOf(actor) == authRegister && u.Role == RoleAPIBasic && actor.InWorkspace(u.Workspace) && enableDisable &&
		holdsExtra(actor, u.extra) {
		return true
	}
	return actor.UserID == u.ID && u.Role == RoleAPIBasic && status == StatusInactive
}

// DeleteUser deletes a user in trash with its keys and memberships (and its
// messages when erase).
func (s *Service) DeleteUser(ctx context.Context, actor *Principal, ws, id string, erase bool) error {
	if !actor.InWorkspace(ws) {
		return forbidden("not a member of workspace %s", ws)
	}
	if erase {
		// Messages live apart from the user record: check the deletion is
		// allowed, erase them, then delete the user (checked again).
		var sj *subject
		err := s.store.View(ctx, ws, func(tx Tx) error {
			var err error
			sj, err = loadSubject(tx, ws, id)
			return err
		})
		if err != nil {
			return err
		}
		if err := checkDeletable(actor, sj); err != nil {
			return err
		}
		if ms, ok := s.store.(MessageStore); ok {
			if err := ms.EraseMessages(ctx, ws, id); err != nil {
				return err
			}
		}
	}
	var account string
	var credits []string // the ledger accounts of the user and its keys
	err := s.store.Update(ctx, ws, func(tx Tx) error {
		sj, err := loadSubject(tx, ws, id)
		if err != nil {
			return err
		}
		u := sj.User
		if err := checkDeletable(actor, sj); err != nil {
			return err
		}
		credits = credits[:0]
		if u.Credits != nil {
			credits = append(credits, u.Credits.account)
		}
		keys, err := listKeys(tx, ws, id)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if k.Credits != nil {
				credits = append(credits, k.Credits.account)
			}
		}
		if err := tx.Drop(KeysCollection(ws, id)); err != nil {
			return err
		}
		for _, tid := range u.Teams {
			if _, err := leaveTeam(tx, ws, tid, id, s.now().UTC()); err != nil {
				return err
			}
		}
		if err := tx.Delete(namesOf(ws), nameKey(u.Username)); err != nil {
			return err
		}
		if err := tx.Delete(passwordsOf(ws), id); err != nil {
			return err
		}
		if err := tx.Delete(invitationsOf(ws), id); err != nil {
			return err
		}
		if err := deleteUserRecord(tx, u); err != nil {
			return err
		}
		account = u.Account
		return s.audit(tx, ws, actor, ActionUserDelete, id, map[string]FieldChange{
			"username": audit.Changed(u.Username, nil), "erase": audit.Changed(nil, erase),
		})
	})
	if err != nil {
		return err
	}
	s.changed(Change{Workspace: ws, Users: []string{id}})
	s.dropCredits(ctx, ws, credits...)
	if account != "" {
		// The membership is gone; its index entry and link go after it
		// (a failure here leaves an entry that points at nothing, which
		// the account's readers skip). The person's console sessions
		// stay, for its other workspaces: none acts here any more.
		return s.store.Update(ctx, "", func(tx Tx) error {
			if err := tx.Delete(globalColl(CollAccountMembers), account+"/"+ws); err != nil {
				return err
			}
			return dropToken(tx, inviteIndex(ws, id))
		})
	}
	return nil
}

// checkDeletable checks that actor may delete u (mayDelete) and that u is
// in trash.
func checkDeletable(actor *Principal, u *subject) error {
	if err := mayDelete(actor, u); err != nil {
		return err
	}
	if u.Status != StatusTrash {
		return errf(ErrConflict, "user %s is %s: only users in trash can be deleted", u.ID, u.Status)
	}
	return nil
}

// mayDelete checks that actor may delete u (once it is in trash): it
// manages u.
func mayDelete(actor *Principal, u *subject) error {
	if !mayManage(actor, u) {
		return forbidden("may not delete user %s", u.ID)
	}
	return nil
}

// leaveTeam removes user id from team tid's members (a missing team is
// fine), and says whether it was one.
func leaveTeam(tx Tx, ws, tid, id string, now time.Time) (bool, error) {
	t, err := getTeamRecord(tx, ws, tid)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return false, nil
		}
		return false, err
	}
	member, err := isMember(tx, t, id)
	if err != nil || !member {
		return false, err
	}
	t.inRecord = slices.DeleteFunc(t.inRecord, func(x string) bool { return x == id })
	teamRecords.bump(t, now)
	if err := putTeam(tx, t); err != nil {
		return false, err
	}
	return true, tx.Delete(teamMembersOf(ws), memberKey(tid, id))
}

// Me returns the caller with its effective permissions and grants.
func (s *Service) Me(ctx context.Context, actor *Principal) (*Me, error) {
	u, err := s.loadUser(ctx, actor.Workspace, actor.UserID)
	if err != nil {
		return nil, err
	}
	u.PrivateNote = ""
	if err := s.fillCredits(ctx, actor.Workspace, u.Credits); err != nil {
		return nil, err
	}
	return &Me{User: *u, Permissions: actor.Permissions(), Except: actor.Except(), Grants: actor.Grants()}, nil
}

// UpdateMe changes the caller's own email, language and timezone; ifMatch,
// when not nil, must equal the current version.
func (s *Service) UpdateMe(ctx context.Context, actor *Principal, patch SelfPatch, ifMatch *int64) (*User, error) {
	return s.UpdateUser(ctx, actor, actor.Workspace, actor.UserID,
		UserPatch{Email: patch.Email, Language: patch.Language, Timezone: patch.Timezone}, ifMatch)
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func orEmptyGrants(g []Grant) []Grant {
	if g == nil {
		return []Grant{}
	}
	return g
}
