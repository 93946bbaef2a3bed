package authz

import (
	"context"
	"slices"
)

// MaxBulkUsers is the most users one CreateUsers call creates.
const MaxBulkUsers = 1000

// CreateUsers creates several users of workspace ws at once, each exactly
// as CreateUser would (the same rules, records and audit entries), in one
// transaction: either every user is created or none is. It serves bulk
// loads (bench/seed), where one transaction per user would spend
// most of its time on round trips and, on Redis, on optimistic retries.
// Teams are not taken: users that join teams are created one by one.
func (s *Service) CreateUsers(ctx context.Context, actor *Principal, ws string, in []NewUser) ([]*CreatedUser, error) {
	if len(in) == 0 {
		return nil, nil
	}
	if len(in) > MaxBulkUsers {
		return nil, fieldErr("users", "at most %d users at once", MaxBulkUsers)
	}
	auth, err := mayCreateUsers(actor, ws)
	if err != nil {
		return nil, err
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
		key := nameKey(in[i].Username)
		if names[key] {
			return nil, errf(ErrConflict, "username %q is given twice", in[i].Username)
		}
		names[key] = true
	}
	if _, err := s.workspaceExists(ctx, ws); err != nil {
		return nil, err
	}
	now := s.now().UTC()
	nus := make([]*newUser, len(in))
	for i := range in {
		if nus[i], err = s.newUserRecords(ws, in[i], now); err != nil {
			return nil, err
		}
	}
	err = s.store.Update(ctx, ws, func(tx Tx) error {
		for _, nu := range nus {
			if err := s.writeNewUser(tx, actor, nu, nil, now); err != nil {
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
	out := make([]*CreatedUser, len(nus))
	for i, nu := range nus {
		out[i] = nu.created(s, actor)
	}
	return out, nil
}
