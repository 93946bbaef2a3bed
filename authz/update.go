package authz

import (
	"context"
	"time"

	"github.com/apiusers/apiusers/authz/audit"
)

// versioned is a kind of record that carries a version and an update
// time (users, teams): how update writes one, and where the two are.
type versioned[T any] struct {
	what    string // "user", "team": what a 404 or a 412 names
	get     func(tx Tx, ws, id string) (*T, error)
	put     func(tx Tx, r *T) error
	version func(r *T) *int64
	updated func(r *T) *time.Time
}

// The versioned records.
var (
	userRecords = &versioned[User]{
		what: "user", get: getUser, put: putUser,
		version: func(u *User) *int64 { return &u.Version },
		updated: func(u *User) *time.Time { return &u.UpdatedAt },
	}
	teamRecords = &versioned[Team]{
		what: "team", get: getTeam, put: putTeam,
		version: func(t *Team) *int64 { return &t.Version },
		updated: func(t *Team) *time.Time { return &t.UpdatedAt },
	}
)

// bump moves r to its next version, changed at now. Every write of a
// versioned record bumps it once, through update or, for a record changed
// beside the one an update is about (a team's members, a member's teams),
// directly.
func (k *versioned[T]) bump(r *T, now time.Time) {
	*k.version(r)++
	*k.updated(r) = now
}

// recordChange is one change of a versioned record of kind T; see update.
type recordChange[T any] struct {
	kind   *versioned[T]
	ws, id string
	// ifMatch is the version the caller's If-Match names; nil: any.
	ifMatch *int64
	// load reads the record in tx. Default: kind.get(tx, ws, id).
	load func(tx Tx) (*T, error)
	// edit changes r, as loaded in tx, and may write other records in tx
	// (a name index, a team's members, sessions). An error aborts
	// everything.
	edit func(tx Tx, r *T) error
	// action is the audit action; target the audit target (default: id).
	action, target string
	// skip are fields of the record the audit diff leaves out (version
	// and the times are always left out).
	skip []string
	// changes, when set, says what the audit entry records and whether
	// there is anything to write, instead of the diff of r before and
	// after edit (for a change whose record diff says too much or too
	// little: a password's stamp, a membership).
	changes func(before, after *T) (changes map[string]FieldChange, changed bool)
	// unseen, when set, adds to the diff's changes what the diff cannot
	// see (credits set again to what they were set to).
	unseen func(before, after *T, changes map[string]FieldChange)
	// now is the update time. Default: the service's clock.
	now time.Time
	// touched are the users whose principals the committed change touched.
	// Default: id.
	touched func(r *T) []string
}

// update is the one path by which the domain changes an existing
// versioned record (a user, a team); passwords, sessions, limits and
// credits that change a record go through it too. In one transaction it
//
//  1. loads the record (404 when it is missing),
//  2. checks If-Match: a version the caller names must be the record's
//     (412 otherwise),
//  3. lets c.edit change the record, and anything else in the same
//     transaction,
//  4. diffs the record before and after (or asks c.changes), and when
//     nothing changed stops there: no write, no audit entry,
//  5. bumps the version and the update time and puts the record,
//  6. writes the audit entry: who (actor), c.action, what changed;
//
// then, once committed, invalidates the principals of c.touched on this
// instance and the fleet. It returns the record as it is afterwards (as
// loaded, when nothing changed).
func update[T any](ctx context.Context, s *Service, actor *Principal, c recordChange[T]) (*T, error) {
	var r *T
	err := s.store.Update(ctx, c.ws, func(tx Tx) error {
		var err error
		if c.load != nil {
			r, err = c.load(tx)
		} else {
			r, err = c.kind.get(tx, c.ws, c.id)
		}
		if err != nil {
			return err
		}
		if v := *c.kind.version(r); c.ifMatch != nil && *c.ifMatch != v {
			return errf(ErrPrecondition, "%s %s is at version %d, not %d", c.kind.what, c.id, v, *c.ifMatch)
		}
		before := *r
		if err := c.edit(tx, r); err != nil {
			return err
		}
		var changes map[string]FieldChange
		if c.changes != nil {
			var changed bool
			if changes, changed = c.changes(&before, r); !changed {
				return nil
			}
		} else {
			if changes, err = audit.Diff(&before, r, c.skip...); err != nil {
				return err
			}
			if c.unseen != nil {
				c.unseen(&before, r, changes)
			}
			if len(changes) == 0 {
				return nil
			}
		}
		now := c.now
		if now.IsZero() {
			now = s.now().UTC()
		}
		c.kind.bump(r, now)
		if err := c.kind.put(tx, r); err != nil {
			return err
		}
		target := c.target
		if target == "" {
			target = c.id
		}
		return s.audit(tx, c.ws, actor, c.action, target, changes)
	})
	if err != nil {
		return nil, err
	}
	touched := []string{c.id}
	if c.touched != nil {
		touched = c.touched(r)
	}
	s.changed(Change{Workspace: c.ws, Users: touched})
	return r, nil
}
