package authz

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

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
	ActionKeyUpdate        = "key.update"
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
	return s.ListAuditFiltered(ctx, actor, ws, AuditFilter{}, page)
}

// AuditFilter narrows the audit log. Empty fields match every entry.
type AuditFilter struct {
	// Action is one action ("user.create") or, ending in ".", every action
	// it starts ("key.").
	Action string
	// Actor is the id of who made the change (a user id, or
	// "system:bootstrap").
	Actor string
	// Target is the id of what changed; it also matches either side of a
	// membership's "team_…/usr_…".
	Target string
	// Since (inclusive) and Until (exclusive) bound the entry's time.
	Since, Until time.Time
}

func (f AuditFilter) empty() bool {
	return f.Action == "" && f.Actor == "" && f.Target == "" && f.Since.IsZero() && f.Until.IsZero()
}

func (f AuditFilter) match(e *AuditEntry) bool {
	if f.Action != "" && e.Action != f.Action && !(strings.HasSuffix(f.Action, ".") && strings.HasPrefix(e.Action, f.Action)) {
		return false
	}
	if f.Actor != "" && e.Actor != f.Actor {
		return false
	}
	if f.Target != "" && e.Target != f.Target {
		a, b, ok := strings.Cut(e.Target, "/")
		if !ok || (a != f.Target && b != f.Target) {
			return false
		}
	}
	return f.Until.IsZero() || e.Time.Before(f.Until)
}

// auditScanMax is the most audit entries one filtered page reads. A page
// that reaches it without filling up ends early, with a next cursor from
// where the reading stopped: a rare filter over a long log costs a bounded
// time per request, and the client follows the cursor.
const auditScanMax = 5000

// ListAuditFiltered lists a workspace's audit entries that match f, newest
// first (needs audit.read). A page holds at most page.Limit entries, and
// fewer (even none) with a next cursor when auditScanMax entries were read
// without filling it.
func (s *Service) ListAuditFiltered(ctx context.Context, actor *Principal, ws string, f AuditFilter, page Page) ([]AuditEntry, string, error) {
	if !actor.InWorkspace(ws) || !actor.HasPermission(PermAuditRead) {
		return nil, "", forbidden("reading the audit log needs %s", PermAuditRead)
	}
	list := "audit:" + ws
	page, after, err := s.normalize(page, list)
	if err != nil {
		return nil, "", err
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && f.Until.Before(f.Since) {
		return nil, "", fieldErr("until", "must not be before since")
	}
	if _, err := s.workspaceExists(ctx, ws); err != nil {
		return nil, "", err
	}
	c := Collection{Workspace: ws, Name: CollAudit}
	if f.empty() {
		entries, next, err := listPage[AuditEntry](ctx, s, list, c, after, page.Limit)
		if err != nil {
			return nil, "", err
		}
		if err := s.redactAudit(ctx, actor, ws, entries); err != nil {
			return nil, "", err
		}
		return entries, next, nil
	}
	var out []AuditEntry
	next := ""
	err = s.store.View(ctx, ws, func(tx Tx) error {
		out, next = []AuditEntry{}, ""
		cursor, read := after, 0
		for {
			batch := min(auditScanMax-read, 256)
			entries, err := tx.Scan(c, "", cursor, batch)
			if err != nil {
				return err
			}
			for _, en := range entries {
				read++
				cursor = en.ID
				var e AuditEntry
				if err := decodeRecord(c, en.ID, en.Value, &e); err != nil {
					return fmt.Errorf("decoding %s/%s: %w", c.Name, en.ID, err)
				}
				if !f.Since.IsZero() && e.Time.Before(f.Since) {
					return nil // newest first: every later entry is older still
				}
				if !f.match(&e) {
					continue
				}
				if len(out) == page.Limit {
					next = s.EncodeCursor(list, out[len(out)-1].ID)
					return nil
				}
				out = append(out, e)
			}
			if len(entries) < batch {
				return nil // the end of the log
			}
			if read >= auditScanMax {
				next = s.EncodeCursor(list, cursor)
				return nil
			}
		}
	})
	if err != nil {
		return nil, "", err
	}
	if err := s.redactAudit(ctx, actor, ws, out); err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// hiddenUserFields are the fields of a user that reading it shows only to
// callers who may manage it (never to the user itself).
var hiddenUserFields = []string{"private_note"}

// redactAudit removes from entries each change of a field that reading the
// user the entry targets would hide from actor private_note,
// unless actor may manage that user now and is not that user. A user that
// no longer exists cannot be weighed, so its hidden fields stay hidden
// from all but a superadmin (who may manage anyone).
func (s *Service) redactAudit(ctx context.Context, actor *Principal, ws string, entries []AuditEntry) error {
	if !actor.Everywhere {
		// Account ids show only to superadmins, as in users (redact).
		for i := range entries {
			delete(entries[i].Changes, "account")
		}
	}
	var touched []int
	for i := range entries {
		for _, f := range hiddenUserFields {
			if _, ok := entries[i].Changes[f]; ok {
				touched = append(touched, i)
				break
			}
		}
	}
	if len(touched) == 0 {
		return nil
	}
	show := make(map[string]bool, len(touched))
	err := s.store.View(ctx, ws, func(tx Tx) error {
		memo := teamMemo{}
		for _, i := range touched {
			target := entries[i].Target
			if _, done := show[target]; done {
				continue
			}
			if target == actor.UserID {
				show[target] = false
				continue
			}
			may, found, err := mayManageID(tx, actor, ws, target, memo)
			if err != nil {
				return err
			}
			show[target] = may || !found && actor.Everywhere
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, i := range touched {
		if show[entries[i].Target] {
			continue
		}
		kept := make(map[string]FieldChange, len(entries[i].Changes))
		for k, c := range entries[i].Changes {
			if !slices.Contains(hiddenUserFields, k) {
				kept[k] = c
			}
		}
		entries[i].Changes = kept
	}
	return nil
}
