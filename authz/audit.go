package authz

import (
	"context"

	"github.com/apiusers/apiusers/authz/audit"
	"github.com/apiusers/apiusers/authz/ids"
)

// Audit actions.
const (
	ActionUserCreate       = "user.create"
	ActionUserUpdate       = "user.update"
	ActionUserStatus       = "user.status"
	ActionUserDelete       = "user.delete"
	ActionKeyCreate        = "key.create"
	ActionKeyRegenerate    = "key.regenerate"
	ActionKeyRevoke        = "key.revoke"
	ActionKeyReveal        = "key.reveal"
	ActionTeamCreate       = "team.create"
	ActionTeamUpdate       = "team.update"
	ActionTeamDelete       = "team.delete"
	ActionTeamMemberAdd    = "team.member.add"
	ActionTeamMemberRemove = "team.member.remove"
	ActionWorkspaceCreate  = "workspace.create"

	ActionSignIn            = "session.sign_in"
	ActionSignOut           = "session.sign_out"
	ActionSessionEnd        = "session.end"
	ActionInvitationSend    = "invitation.send"
	ActionInvitationResend  = "invitation.resend"
	ActionInvitationAccept  = "invitation.accept"
	ActionPasswordSet       = "password.set"
	ActionPasswordChange    = "password.change"
	ActionPasswordResetSend = "password.reset_send"
	ActionPasswordReset     = "password.reset"
	ActionAccountUpdate     = "account.update"
)

// CollAudit holds a workspace's audit entries, newest first.
const CollAudit = "audit"

// AuditEntry records one admin change (see package audit). It never holds
// a key or a secret.
type AuditEntry = audit.Entry

// FieldChange is the old and new value of one field of an AuditEntry.
type FieldChange = audit.Change

const actorBootstrap = "system:bootstrap"

func actorID(p *Principal) string {
	if p == nil || p.UserID == "" {
		return actorBootstrap
	}
	return p.UserID
}

// audit writes an audit entry in tx, in the same transaction as the change.
func (s *Service) audit(tx Tx, ws string, actor *Principal, action, target string, changes map[string]FieldChange) error {
	now := s.now().UTC()
	e := AuditEntry{
		ID: ids.NewestFirst("aud_", now), Time: now, Workspace: ws, Actor: actorID(actor),
		Action: action, Target: target, Changes: changes,
	}
	return putRecord(tx, Collection{Workspace: ws, Name: CollAudit}, e.ID, &e)
}

// ListAudit lists a workspace's audit entries, newest first (needs audit.read).
func (s *Service) ListAudit(ctx context.Context, actor *Principal, ws string, page Page) ([]AuditEntry, string, error) {
	if !actor.InWorkspace(ws) || !actor.HasPermission(PermAuditRead) {
		return nil, "", forbidden("reading the audit log needs %s", PermAuditRead)
	}
	list := "audit:" + ws
	page, after, err := s.normalize(page, list)
	if err != nil {
		return nil, "", err
	}
	if _, err := s.workspaceExists(ctx, ws); err != nil {
		return nil, "", err
	}
	return listPage[AuditEntry](ctx, s, list, Collection{Workspace: ws, Name: CollAudit}, after, page.Limit)
}
