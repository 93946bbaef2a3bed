package authz

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/apiusers/apiusers/authz/audit"
	"github.com/apiusers/apiusers/authz/ids"
)

// CollTeamNames maps a team name in canonical form (CanonicalName) to its
// id (names are unique per workspace).
const CollTeamNames = "teamnames"

func teamNamesOf(ws string) Collection { return Collection{Workspace: ws, Name: CollTeamNames} }

// getTeam reads team id with its members.
func getTeam(tx Tx, ws, id string) (*Team, error) {
	t, err := getTeamRecord(tx, ws, id)
	if err != nil {
		return nil, err
	}
	if err := fillMembers(tx, t); err != nil {
		return nil, err
	}
	return t, nil
}

// getTeamRecord reads the record of team id: what it gives, not who its
// members are (Members is nil; fillMembers reads them).
func getTeamRecord(tx Tx, ws, id string) (*Team, error) {
	var t Team
	if err := getRecord(tx, teamsOf(ws), id, &t); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, errf(ErrNotFound, "team %s not found in workspace %s", id, ws)
		}
		return nil, err
	}
	t.fromRecord()
	return &t, nil
}

// fromRecord moves the members a decoded record lists (one written before
// CollTeamMembers) to t.inRecord.
func (t *Team) fromRecord() { t.inRecord, t.Members = t.Members, nil }

// fillMembers sets the Members of t, as read by getTeamRecord.
func fillMembers(tx Tx, t *Team) error {
	var err error
	t.Members, err = teamMembers(tx, t)
	return err
}

// putTeam writes t's record. Its members are not part of it: joining and
// leaving write CollTeamMembers (joinTeam, leaveTeam); the members a
// record written before that collection lists move there now.
func putTeam(tx Tx, t *Team) error {
	for _, uid := range t.inRecord {
		if err := tx.Put(teamMembersOf(t.Workspace), memberKey(t.ID, uid), []byte{}); err != nil {
			return err
		}
	}
	t.inRecord = nil
	return putRecord(tx, teamsOf(t.Workspace), t.ID, t)
}

// memberKey is the id of user uid's membership of team tid in
// CollTeamMembers.
func memberKey(tid, uid string) string { return tid + "/" + uid }

// teamMembers returns the members of t, as read by getTeamRecord, in user
// id order.
func teamMembers(tx Tx, t *Team) ([]string, error) {
	prefix := memberKey(t.ID, "")
	entries, err := tx.Scan(teamMembersOf(t.Workspace), prefix, "", 0)
	if err != nil {
		return nil, err
	}
	members := make([]string, 0, len(entries)+len(t.inRecord))
	for _, e := range entries {
		members = append(members, e.ID[len(prefix):])
	}
	members = append(members, t.inRecord...)
	slices.Sort(members)
	return slices.Compact(members), nil
}

// isMember reports whether user uid is a member of t, as read by
// getTeamRecord.
func isMember(tx Tx, t *Team, uid string) (bool, error) {
	if slices.Contains(t.inRecord, uid) {
		return true, nil
	}
	switch _, err := tx.Get(teamMembersOf(t.Workspace), memberKey(t.ID, uid)); {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrNotFound):
		return false, nil
	default:
		return false, err
	}
}

func validateTeamName(name string) error {
	if n := utf8.RuneCountInString(strings.TrimSpace(name)); n < 1 || n > 100 {
		return fieldErr("name", "must be 1 to 100 characters")
	}
	_, err := checkName("name", name)
	return err
}

// mayChangeTeams checks that actor may add user u to teams and remove it
// from them: it manages teams and may manage u (adding also needs what the
// team gives, checkGrantable).
func (s *Service) mayChangeTeams(actor *Principal, u *subject) error {
	if err := s.teamManager(actor, u.Workspace); err != nil {
		return err
	}
	if !mayManage(actor, u) {
		return forbidden("may not change the teams of user %s", u.ID)
	}
	return nil
}

// teamNameKey is the key of a team name in CollTeamNames.
func teamNameKey(name string) string { return CanonicalName(name) }

func claimTeamName(tx Tx, ws, name, id string) error {
	owner, err := tx.Get(teamNamesOf(ws), teamNameKey(name))
	switch {
	case err == nil && string(owner) != id:
		return errf(ErrConflict, "team name %q is taken in workspace %s", name, ws)
	case err != nil && !errors.Is(err, ErrNotFound):
		return err
	}
	return tx.Put(teamNamesOf(ws), teamNameKey(name), []byte(id))
}

func (s *Service) teamManager(actor *Principal, ws string) error {
	if !actor.InWorkspace(ws) || !actor.HasPermission(PermTeamsManage) {
		return forbidden("managing teams needs %s", PermTeamsManage)
	}
	return nil
}

// ListTeams lists the teams of ws (needs users.read or teams.manage).
func (s *Service) ListTeams(ctx context.Context, actor *Principal, ws string, page Page) ([]Team, string, error) {
	if !actor.InWorkspace(ws) || !(actor.HasPermission(PermUsersRead) || actor.HasPermission(PermTeamsManage)) {
		return nil, "", forbidden("listing teams needs %s", PermUsersRead)
	}
	list := "teams:" + ws
	page, after, err := s.normalize(page, list)
	if err != nil {
		return nil, "", err
	}
	if _, err := s.workspaceExists(ctx, ws); err != nil {
		return nil, "", err
	}
	return listPage(ctx, s, list, teamsOf(ws), after, page.Limit, func(tx Tx, t *Team) error {
		t.fromRecord()
		return fillMembers(tx, t)
	})
}

// GetTeam returns one team: to callers with users.read or teams.manage, and
// to its members.
func (s *Service) GetTeam(ctx context.Context, actor *Principal, ws, id string) (*Team, error) {
	if !actor.InWorkspace(ws) {
		return nil, forbidden("not a member of workspace %s", ws)
	}
	var t *Team
	err := s.store.View(ctx, ws, func(tx Tx) error {
		var err error
		if t, err = getTeamRecord(tx, ws, id); err != nil {
			return err
		}
		// A member may read its team: asked before reading every member.
		if !actor.HasPermission(PermUsersRead) && !actor.HasPermission(PermTeamsManage) {
			switch member, err := isMember(tx, t, actor.UserID); {
			case err != nil:
				return err
			case !member:
				return forbidden("reading team %s needs %s", id, PermUsersRead)
			}
		}
		return fillMembers(tx, t)
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// CreateTeam creates a team (needs teams.manage; the caller must hold every
// permission and right it gives the team).
func (s *Service) CreateTeam(ctx context.Context, actor *Principal, ws string, in NewTeam) (*Team, error) {
	if err := s.teamManager(actor, ws); err != nil {
		return nil, err
	}
	if err := validateTeamName(in.Name); err != nil {
		return nil, err
	}
	if err := validatePermissions("permissions", in.Permissions); err != nil {
		return nil, err
	}
	if err := validateGrants("grants", in.Grants); err != nil {
		return nil, err
	}
	if err := checkGrantable(actor, authManage, nil, in.Permissions, nil, in.Grants); err != nil {
		return nil, err
	}
	if in.RateLimit != nil {
		r := *in.RateLimit
		if err := r.normalize("rate_limit"); err != nil {
			return nil, err
		}
		in.RateLimit = &r
	}
	if _, err := s.workspaceExists(ctx, ws); err != nil {
		return nil, err
	}
	now := s.now().UTC()
	t := Team{
		ID: ids.New("team_", now), Workspace: ws, Name: strings.TrimSpace(in.Name),
		Permissions: orEmpty(in.Permissions), Grants: orEmptyGrants(in.Grants), Members: []string{},
		RateLimit: in.RateLimit, CreatedAt: now, UpdatedAt: now, Version: 1,
	}
	err := s.store.Update(ctx, ws, func(tx Tx) error {
		if err := claimTeamName(tx, ws, t.Name, t.ID); err != nil {
			return err
		}
		if err := putTeam(tx, &t); err != nil {
			return err
		}
		changes, err := audit.Diff(nil, &t, "members", "workspace", "id")
		if err != nil {
			return err
		}
		return s.audit(tx, ws, actor, ActionTeamCreate, t.ID, changes)
	})
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// UpdateTeam applies patch; every member's next request sees the change.
func (s *Service) UpdateTeam(ctx context.Context, actor *Principal, ws, id string, patch TeamPatch, ifMatch *int64) (*Team, error) {
	if err := s.teamManager(actor, ws); err != nil {
		return nil, err
	}
	gives := false // whether what the team gives its members changed
	return update(ctx, s, actor, recordChange[Team]{
		kind: teamRecords, ws: ws, id: id, ifMatch: ifMatch,
		action: ActionTeamUpdate, skip: []string{"members"},
		edit: func(tx Tx, t *Team) error {
			before := *t
			defer func() {
				gives = !reflect.DeepEqual([]any{before.Permissions, before.Grants, before.RateLimit},
					[]any{t.Permissions, t.Grants, t.RateLimit})
			}()
			if patch.Name != nil {
				if err := validateTeamName(*patch.Name); err != nil {
					return err
				}
				name := strings.TrimSpace(*patch.Name)
				if teamNameKey(name) != teamNameKey(t.Name) {
					if err := claimTeamName(tx, ws, name, t.ID); err != nil {
						return err
					}
					if err := tx.Delete(teamNamesOf(ws), teamNameKey(t.Name)); err != nil {
						return err
					}
				}
				t.Name = name
			}
			if patch.Permissions != nil {
				if err := validatePermissions("permissions", *patch.Permissions); err != nil {
					return err
				}
				t.Permissions = orEmpty(*patch.Permissions)
			}
			if patch.Grants != nil {
				if err := validateGrants("grants", *patch.Grants); err != nil {
					return err
				}
				t.Grants = orEmptyGrants(*patch.Grants)
			}
			if err := checkGrantable(actor, authManage, before.Permissions, t.Permissions, before.Grants, t.Grants); err != nil {
				return err
			}
			if rl := patch.RateLimit; rl.Set {
				if err := checkTeamLimit(tx, actor, t); err != nil {
					return err
				}
				t.RateLimit = nil
				if rl.Value != nil {
					r := *rl.Value
					if err := r.normalize("rate_limit"); err != nil {
						return err
					}
					t.RateLimit = &r
				}
			}
			return nil
		},
		// A member's principal holds what the team gives, not its name.
		touched: func(t *Team) []string {
			if !gives {
				return nil
			}
			return t.Members
		},
	})
}

// DeleteTeam deletes a team and removes it from its members.
func (s *Service) DeleteTeam(ctx context.Context, actor *Principal, ws, id string) error {
	if err := s.teamManager(actor, ws); err != nil {
		return err
	}
	var members []string
	err := s.store.Update(ctx, ws, func(tx Tx) error {
		t, err := getTeam(tx, ws, id)
		if err != nil {
			return err
		}
		members = t.Members
		if t.RateLimit != nil {
			// Deleting it removes its limit from its members.
			if err := checkTeamLimit(tx, actor, t); err != nil {
				return err
			}
		}
		now := s.now().UTC()
		for _, uid := range t.Members {
			u, err := getUser(tx, ws, uid)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			u.Teams = slices.DeleteFunc(u.Teams, func(x string) bool { return x == id })
			userRecords.bump(u, now)
			if err := putUser(tx, u); err != nil {
				return err
			}
		}
		for _, uid := range t.Members {
			if err := tx.Delete(teamMembersOf(ws), memberKey(id, uid)); err != nil {
				return err
			}
		}
		if err := tx.Delete(teamNamesOf(ws), teamNameKey(t.Name)); err != nil {
			return err
		}
		if err := tx.Delete(teamsOf(ws), id); err != nil {
			return err
		}
		// What the members lose with it, as well as who they were.
		changes := map[string]FieldChange{
			"name": audit.Changed(t.Name, nil), "members": audit.Changed(t.Members, nil),
		}
		if len(t.Permissions) > 0 {
			changes["permissions"] = audit.Changed(t.Permissions, nil)
		}
		if len(t.Grants) > 0 {
			changes["grants"] = audit.Changed(t.Grants, nil)
		}
		if t.RateLimit != nil {
			changes["rate_limit"] = audit.Changed(t.RateLimit, nil)
		}
		return s.audit(tx, ws, actor, ActionTeamDelete, id, changes)
	})
	if err != nil {
		return err
	}
	s.changed(Change{Workspace: ws, Users: members})
	return nil
}

// AddMember adds user uid to team tid. The caller needs teams.manage, must
// be able to manage the user, and must hold what the team gives.
func (s *Service) AddMember(ctx context.Context, actor *Principal, ws, tid, uid string) error {
	return s.membership(ctx, actor, ws, tid, uid, true)
}

// RemoveMember removes user uid from team tid.
func (s *Service) RemoveMember(ctx context.Context, actor *Principal, ws, tid, uid string) error {
	return s.membership(ctx, actor, ws, tid, uid, false)
}

func (s *Service) membership(ctx context.Context, actor *Principal, ws, tid, uid string, add bool) error {
	if err := s.teamManager(actor, ws); err != nil {
		return err
	}
	action := ActionTeamMemberAdd
	if !add {
		action = ActionTeamMemberRemove
	}
	var t *Team
	var sj *subject
	var stray bool // a member record of a user that does not list the team
	now := s.now().UTC()
	_, err := update(ctx, s, actor, recordChange[User]{
		kind: userRecords, ws: ws, id: uid, now: now,
		action: action, target: tid + "/" + uid,
		load: func(tx Tx) (*User, error) {
			var err error
			if t, err = getTeamRecord(tx, ws, tid); err != nil {
				return nil, err
			}
			if sj, err = loadSubject(tx, ws, uid); err != nil {
				return nil, err
			}
			return sj.User, nil
		},
		edit: func(tx Tx, u *User) error {
			if err := s.mayChangeTeams(actor, sj); err != nil {
				return err
			}
			if uid == actor.UserID && t.RateLimit != nil {
				// Joining or leaving it changes the limit the caller runs under.
				return forbidden("nobody joins or leaves a team with a rate limit itself")
			}
			if !add {
				// Leaving removes the member record even when the user
				// does not list the team (a removal by an earlier
				// version, which kept members in the team's record,
				// leaves one behind).
				removed, err := leaveTeam(tx, ws, tid, uid, now)
				if err != nil {
					return err
				}
				stray = removed && !slices.Contains(u.Teams, tid)
				u.Teams = slices.DeleteFunc(u.Teams, func(x string) bool { return x == tid })
				return nil
			}
			if slices.Contains(u.Teams, tid) {
				return nil
			}
			if err := checkGrantable(actor, authManage, nil, t.Permissions, nil, t.Grants); err != nil {
				return err
			}
			return joinTeam(tx, u, tid, now)
		},
		// The entry names the membership; the user's teams are what changed.
		changes: func(before, after *User) (map[string]FieldChange, bool) {
			return nil, stray || !slices.Equal(before.Teams, after.Teams)
		},
	})
	return err
}
