package authz

import (
	"context"
	"errors"
)

// What a caller may do with a user, as the admin API tells it beside
// every user it returns ("allowed"), so that a client (the console)
// offers exactly the operations that will not be refused. Each verb is
// decided by the very check its operation makes (who-may-manage-whom,
// rules.go, and the checks built on it), never by a copy of the rule; the
// API still decides every request.

// The verbs of Allowed: each names the admin API operation on a user it
// allows (paths below /workspaces/{ws}/users/{id}).
const (
	// AllowUpdate: PATCH the user's fields (everyone may change its own
	// email, language and timezone without it).
	AllowUpdate = "update"
	// AllowRole: PATCH its role (to a role the caller may give; nobody
	// changes its own).
	AllowRole = "role"
	// AllowLimits: PATCH its rate_limit and credits.
	AllowLimits = "limits"
	// AllowTeams: PUT and DELETE …/teams/{tid}/members/{id} (a team it
	// joins must give nothing the caller lacks; nobody joins or leaves a
	// team with a rate limit itself).
	AllowTeams = "teams"
	// AllowStatusActive, AllowStatusInactive, AllowStatusTrash: POST
	// …/status with that status, from the user's current one.
	AllowStatusActive   = "status.active"
	AllowStatusInactive = "status.inactive"
	AllowStatusTrash    = "status.trash"
	// AllowDelete: DELETE the user (only from trash: else 409).
	AllowDelete = "delete"
	// AllowInvitation: POST …/invitation, a member's new invitation (only
	// while it is invited: else 409).
	AllowInvitation = "invitation"
	// AllowPassword: PUT …/password, an API user's password.
	AllowPassword = "password"
	// AllowPasswordReset: POST …/password-reset, a reset link for a member
	// that accepted its invitation (before, only a new invitation helps).
	AllowPasswordReset = "password_reset"
	// AllowSessions: GET …/sessions and DELETE …/sessions/{sid}.
	AllowSessions = "sessions"
	// AllowKeys: GET …/keys and …/keys/{kid}, its key metadata.
	AllowKeys = "keys"
	// AllowKeysCreate, AllowKeysRegenerate, AllowKeysRevoke,
	// AllowKeysReveal: POST …/keys, POST …/keys/{kid}/regenerate, DELETE
	// …/keys/{kid}, POST …/keys/{kid}/reveal.
	AllowKeysCreate     = "keys.create"
	AllowKeysRegenerate = "keys.regenerate"
	AllowKeysRevoke     = "keys.revoke"
	AllowKeysReveal     = "keys.reveal"
	// AllowKeysLimits: PATCH …/keys/{kid}, a key's rate_limit and credits.
	AllowKeysLimits = "keys.limits"
)

// AllowedVerbs returns every verb Allowed may list, in its order.
func AllowedVerbs() []string {
	return []string{AllowUpdate, AllowRole, AllowLimits, AllowTeams,
		AllowStatusActive, AllowStatusInactive, AllowStatusTrash, AllowDelete,
		AllowInvitation, AllowPassword, AllowPasswordReset, AllowSessions,
		AllowKeys, AllowKeysCreate, AllowKeysRegenerate, AllowKeysRevoke, AllowKeysReveal, AllowKeysLimits}
}

// Allowed returns, for each user of ws named in ids, the verbs (Allow…)
// of what actor (acting for the console caller via, or nil) may do with
// it now, in the order of the constants. A verb says the caller's rights
// allow the operation; the user's state may still refuse it with 409
// (deleting a user outside trash, a new invitation for a member who
// accepted one). Verbs that cannot apply to the user are left out (a
// password for a member, a reset or an invitation for an API user, a
// reset for a member that never accepted its invitation).
//
// It tells nothing that trying the operations would not: each verb is the
// outcome of its operation's own check. Ask it only for users the caller
// is shown (those it may read, and those an operation of its answers
// with); a user that does not exist gets no verb.
func (s *Service) Allowed(ctx context.Context, actor *Principal, via *ConsoleCaller, ws string, ids ...string) ([][]string, error) {
	out := make([][]string, len(ids))
	for i := range out {
		out[i] = []string{}
	}
	if len(ids) == 0 || !actor.InWorkspace(ws) {
		return out, nil
	}
	subjects := make([]*subject, len(ids))
	err := s.store.View(ctx, ws, func(tx Tx) error {
		memo := teamMemo{}
		for i, id := range ids {
			subjects[i] = nil
			u, err := getUser(tx, ws, id)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if subjects[i], err = subjectOf(tx, u, memo); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.allowedOf(ctx, actor, via, subjects)
}

// allowedOf returns the verbs of Allowed for each of subjects (none for a
// nil one).
func (s *Service) allowedOf(ctx context.Context, actor *Principal, via *ConsoleCaller, subjects []*subject) ([][]string, error) {
	// The person behind a membership: whether actor may act on the
	// account, asked once per account.
	accounts := map[string]error{}
	account := func(acc string) error {
		if err, ok := accounts[acc]; ok {
			return err
		}
		_, err := s.mayManageAccount(ctx, actor, via, acc)
		accounts[acc] = err
		return err
	}
	out := make([][]string, len(subjects))
	for i, sj := range subjects {
		if sj == nil {
			out[i] = []string{}
			continue
		}
		var err error
		if out[i], err = s.allowedOn(actor, via, sj, account); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// allowedOn lists the verbs actor may do with u (see Allowed); account
// checks an account (mayManageAccount).
func (s *Service) allowedOn(actor *Principal, via *ConsoleCaller, u *subject, account func(string) error) ([]string, error) {
	out := []string{}
	var fail error
	// check adds verb when its check passed; a refusal (403, or a 409 the
	// user's kind makes) leaves it out; any other failure (the store's)
	// fails the whole answer rather than hide a verb.
	check := func(verb string, err error) {
		switch {
		case err == nil:
			out = append(out, verb)
		case errors.Is(err, ErrForbidden), errors.Is(err, ErrConflict):
		case fail == nil:
			fail = err
		}
	}
	allow := func(verb string, ok bool) {
		if ok {
			out = append(out, verb)
		}
	}
	manages := mayManage(actor, u)
	allow(AllowUpdate, manages)
	check(AllowRole, mayChangeRole(actor, u.User, manages))
	check(AllowLimits, mayLimit(actor, u, false))
	check(AllowTeams, s.mayChangeTeams(actor, u))
	allow(AllowStatusActive, mayChangeStatus(actor, u, StatusActive))
	allow(AllowStatusInactive, mayChangeStatus(actor, u, StatusInactive))
	allow(AllowStatusTrash, mayChangeStatus(actor, u, StatusTrash))
	check(AllowDelete, mayDelete(actor, u))
	allow(AllowInvitation, u.Kind == KindMember && mayReinvite(actor, u))
	check(AllowPassword, s.maySetPassword(actor, u))
	check(AllowPasswordReset, mayResetPassword(actor, u, account))
	check(AllowSessions, maySessions(actor, via, u, account))
	check(AllowKeys, mayReadKeys(actor, u))
	keys := mayManageKeysOf(actor, u)
	check(AllowKeysCreate, keys)
	check(AllowKeysRegenerate, keys)
	check(AllowKeysRevoke, keys)
	check(AllowKeysReveal, mayReveal(actor, u))
	check(AllowKeysLimits, mayLimit(actor, u, true))
	return out, fail
}
