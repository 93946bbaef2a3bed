package authz

import (
	"context"
	"errors"

	"github.com/apiusers/apiusers/authz/audit"
)

// PersonMe is GET /me for a person: the membership acting (as for any
// caller), the account and every membership.
type PersonMe struct {
	Me
	Account     Account      `json:"account"`
	Memberships []Membership `json:"memberships"`
}

// MeAsPerson returns GET /me for a console caller acting through actor.
func (s *Service) MeAsPerson(ctx context.Context, actor *Principal, c *ConsoleCaller) (*PersonMe, error) {
	me, err := s.Me(ctx, actor)
	if err != nil {
		return nil, err
	}
	return &PersonMe{Me: *me, Account: c.Account, Memberships: c.Memberships}, nil
}

// AccountPatch is what a person changes on its account with PATCH /me.
type AccountPatch struct {
	Name     *string
	Language *string
	Timezone *string
}

// UpdateAccount changes a person's name, language and timezone.
func (s *Service) UpdateAccount(ctx context.Context, c *ConsoleCaller, p AccountPatch) (*Account, error) {
	if p.Name != nil {
		if len([]rune(*p.Name)) > 200 {
			return nil, fieldErr("name", "at most 200 characters")
		}
		if err := CheckText("name", *p.Name, false); err != nil {
			return nil, err
		}
	}
	if p.Language != nil {
		if err := validateLanguage(*p.Language); err != nil {
			return nil, err
		}
	}
	if p.Timezone != nil {
		if err := validateTimezone(*p.Timezone); err != nil {
			return nil, err
		}
	}
	var out *Account
	var changes map[string]FieldChange
	err := s.store.Update(ctx, "", func(tx Tx) error {
		a, err := getAccount(tx, c.Account.ID)
		if err != nil {
			return err
		}
		before := *a
		if p.Name != nil {
			a.Name = *p.Name
		}
		if p.Language != nil {
			a.Language = *p.Language
		}
		if p.Timezone != nil {
			a.Timezone = *p.Timezone
		}
		if changes, err = audit.Diff(&before, a); err != nil {
			return err
		}
		out = a
		if len(changes) == 0 {
			return nil
		}
		return putAccount(tx, a)
	})
	if err != nil {
		return nil, err
	}
	if len(changes) > 0 {
		s.auditAccount(ctx, c.Memberships, ActionAccountUpdate, changes)
	}
	return out, nil
}

// PersonWorkspaces lists the workspaces a console caller is an active
// member of, in workspace id order.
func (s *Service) PersonWorkspaces(ctx context.Context, c *ConsoleCaller) ([]Workspace, error) {
	out := []Workspace{}
	for _, m := range c.Memberships {
		if m.Status != StatusActive {
			continue
		}
		w, err := s.workspaceExists(ctx, m.Workspace)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, *w)
	}
	return out, nil
}
