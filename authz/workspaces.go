package authz

import (
	"context"
	"errors"

	"github.com/apiusers/apiusers/authz/audit"
)

// ListWorkspaces lists the caller's workspace, or every workspace for a
// superadmin.
func (s *Service) ListWorkspaces(ctx context.Context, actor *Principal, page Page) ([]Workspace, string, error) {
	page, after, err := s.normalize(page, "workspaces")
	if err != nil {
		return nil, "", err
	}
	if !actor.Everywhere {
		if after != "" {
			return []Workspace{}, "", nil
		}
		w, err := s.workspaceExists(ctx, actor.Workspace)
		if err != nil {
			return nil, "", err
		}
		return []Workspace{*w}, "", nil
	}
	return listPage[Workspace](ctx, s, "workspaces", workspacesColl(), after, page.Limit)
}

// CreateWorkspace creates a workspace (needs workspaces.manage).
func (s *Service) CreateWorkspace(ctx context.Context, actor *Principal, ws Workspace) (*Workspace, error) {
	if !actor.HasPermission(PermWorkspacesManage) {
		return nil, forbidden("creating workspaces needs %s", PermWorkspacesManage)
	}
	return s.createWorkspace(ctx, actor, ws, false)
}

// createWorkspace writes the workspace record with its audit entry in the
// workspace itself, then indexes it globally (idempotent, so a failed index
// write is mended by creating again with mayExist).
func (s *Service) createWorkspace(ctx context.Context, actor *Principal, ws Workspace, mayExist bool) (*Workspace, error) {
	if err := validateWorkspace(&ws); err != nil {
		return nil, err
	}
	ws.CreatedAt = s.now().UTC()
	err := s.store.Update(ctx, ws.ID, func(tx Tx) error {
		existing, err := getWorkspace(tx, ws.ID)
		switch {
		case err == nil && mayExist:
			ws = *existing
			return nil
		case err == nil:
			return errf(ErrConflict, "workspace %s already exists", ws.ID)
		case !errors.Is(err, ErrNotFound):
			return err
		}
		if err := putRecord(tx, metaOf(ws.ID), metaWorkspace, &ws); err != nil {
			return err
		}
		if err := markUserIndex(tx, ws.ID); err != nil {
			return err
		}
		return s.audit(tx, ws.ID, actor, ActionWorkspaceCreate, ws.ID, map[string]FieldChange{
			"id": audit.Changed(nil, ws.ID), "name": audit.Changed(nil, ws.Name),
		})
	})
	if err != nil {
		return nil, err
	}
	err = s.store.Update(ctx, "", func(tx Tx) error {
		return putRecord(tx, workspacesColl(), ws.ID, &ws)
	})
	if err != nil {
		return nil, err
	}
	return &ws, nil
}

// GetWorkspace returns one workspace the caller may see.
func (s *Service) GetWorkspace(ctx context.Context, actor *Principal, id string) (*Workspace, error) {
	if !actor.InWorkspace(id) {
		return nil, forbidden("not a member of workspace %s", id)
	}
	return s.workspaceExists(ctx, id)
}

// BootstrapPerson creates workspace ws if needed and invites email into
// it as a superadmin (a person): the invitation's token makes the one-time
// setup link. Like Bootstrap, it has no actor.
func (s *Service) BootstrapPerson(ctx context.Context, ws, email string) (*Invitation, error) {
	root := &Principal{Workspace: ws, Everywhere: true, access: &access{perms: *rolePerms[RoleSuperadmin]}}
	if _, err := s.createWorkspace(ctx, root, Workspace{ID: ws}, true); err != nil {
		return nil, err
	}
	return s.Invite(ctx, root, ws, NewInvitation{Email: email, Role: RoleSuperadmin})
}

// Bootstrap creates workspace ws if needed and a superadmin API user named
// username with one key, and returns the user and the key. It is the only
// operation without an actor: the operator runs it on the store.
func (s *Service) Bootstrap(ctx context.Context, ws, username string) (*CreatedUser, error) {
	root := &Principal{Workspace: ws, Everywhere: true, access: &access{perms: *rolePerms[RoleSuperadmin]}}
	if _, err := s.createWorkspace(ctx, root, Workspace{ID: ws}, true); err != nil {
		return nil, err
	}
	return s.CreateUser(ctx, root, ws, NewUser{
		Username: username, Kind: KindAPI, Role: RoleSuperadmin, IssueKey: true,
	})
}
