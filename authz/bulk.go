package authz

import (
	"context"
	"slices"
	"strings"
)

// MaxBulkUsers is the most users one CreateUsers call creates.
const MaxBulkUsers = 1000

// CreateUsers creates several users of workspace ws at once, each exactly
// as CreateUser would (the same rules, records and audit entries), in one
// transaction: either every user is created or none is. It serves bulk
// loads (`caddy apiusers seed`), where one transaction per user would spend
// most of its time on round trips and, on Redis, on optimistic retries.
// Teams are not taken: users that join teams are created one by one.
func (s *Service) CreateUsers(ctx context.Context, actor *Principal, ws string, in []NewUser) ([]*CreatedUser, error) {
	if len(in) == 0 {
		return nil, nil
	}
	if len(in) > MaxBulkUsers {
		return nil, fieldErr("users", "at most %d users at once", MaxBulkUsers)
	}
	if !actor.InWorkspace(ws) {
		return nil, forbidden("not a member of workspace %s", ws)
	}
	auth := authorityOf(actor)
	if auth == authNone {
		return nil, forbidden("creating users needs %s", PermUsersManage)
	}
	in = slices.Clone(in) // defaults are filled in; the caller's slice stays
	names := make(map[string]bool, len(in))
	for i := range in {
		if in[i].Status == "" {
			in[i].Status = StatusActive
		}
		if len(in[i].Teams) > 0 {
			return nil, fieldErr("teams", "users created in bulk join no teams")
		}
		if err := s.validateNewUser(actor, auth, &in[i]); err != nil {
			return nil, err
		}
		lower := strings.ToLower(in[i].Username)
		if names[lower] {
			return nil, errf(ErrConflict, "username %q is given twice", in[i].Username)
		}
		names[lower] = true
	}
	if _, err := s.workspaceExists(ctx, ws); err != nil {
		return nil, err
	}
	now := s.now().UTC()
	users := make([]User, len(in))
	keys := make([]*Key, len(in))
	out := make([]*CreatedUser, len(in))
	for i, nu := range in {
		users[i] = User{
			ID: newID("usr_", now), Workspace: ws, Username: nu.Username, Email: nu.Email,
			Kind: nu.Kind, Role: nu.Role, Status: nu.Status, Organization: nu.Organization,
			Language: nu.Language, Timezone: nu.Timezone, PrivateNote: nu.PrivateNote,
			Permissions: orEmpty(nu.Permissions), Grants: orEmptyGrants(nu.Grants), Teams: []string{},
			CreatedAt: now, UpdatedAt: now, Version: 1,
		}
		out[i] = &CreatedUser{}
		if nu.IssueKey {
			keys[i] = s.newKey(&users[i], "default", nil, now)
			secret, err := s.sign(keys[i])
			if err != nil {
				return nil, err
			}
			out[i].Key, out[i].KeyID = secret, keys[i].ID
		}
	}
	err := s.store.Update(ctx, ws, func(tx Tx) error {
		for i := range users {
			u := &users[i]
			if err := claimName(tx, ws, u.Username, u.ID); err != nil {
				return err
			}
			if err := putUser(tx, u); err != nil {
				return err
			}
			changes, err := diff(nil, u)
			if err != nil {
				return err
			}
			if err := s.audit(tx, ws, actor, ActionUserCreate, u.ID, changes); err != nil {
				return err
			}
			if keys[i] == nil {
				continue
			}
			if err := putKey(tx, keys[i]); err != nil {
				return err
			}
			if err := s.audit(tx, ws, actor, ActionKeyCreate, keys[i].ID, keyChanges(keys[i])); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Nothing is invalidated: no cache holds users that did not exist
	// (and moving every cache's epoch for each batch would unlink every
	// key of every instance while a fleet is seeded).
	for i := range users {
		out[i].User = users[i]
		s.redact(actor, &out[i].User)
	}
	return out, nil
}
