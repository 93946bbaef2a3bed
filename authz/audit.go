package authz

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
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
)

// CollAudit holds a workspace's audit entries, newest first.
const CollAudit = "audit"

// AuditEntry records one admin change. It never holds a key or a secret.
type AuditEntry struct {
	ID        string    `json:"id"`
	Time      time.Time `json:"time"`
	Workspace string    `json:"workspace"`
	// Actor is the user id of the caller ("system:bootstrap" for the
	// bootstrap command).
	Actor  string `json:"actor"`
	Action string `json:"action"`
	// Target is the id of what changed (user, key, team, workspace); for
	// memberships "team_…/usr_…".
	Target  string                 `json:"target"`
	Changes map[string]FieldChange `json:"changes,omitempty"`
}

// FieldChange is the old and new value of one field (JSON; absent when
// there was none).
type FieldChange struct {
	Old json.RawMessage `json:"old,omitempty"`
	New json.RawMessage `json:"new,omitempty"`
}

const actorBootstrap = "system:bootstrap"

func actorID(p *Principal) string {
	if p == nil || p.UserID == "" {
		return actorBootstrap
	}
	return p.UserID
}

// newestFirstID makes an id whose byte order is newest first: the inverted
// milliseconds, then an inverted process-wide sequence (so entries of one
// millisecond from one instance keep their order), then randomness. A plain
// ascending scan lists the newest entry first and a page costs O(page).
// The random part is 48 bits in 10 characters, as the last 10 characters of
// newID's. The id is made in one allocation: the API message recorder makes
// one per message.
func newestFirstID(prefix string, now time.Time) string {
	seq := uint64(1)<<40 - 1 - idSeq.Add(1)&(1<<40-1)
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		panic(fmt.Sprintf("reading random bytes: %v", err))
	}
	var b [10 + 8 + 10]byte
	putSortable(b[0:10], uint64(1)<<48-1-uint64(now.UnixMilli()))
	putSortable(b[10:18], seq)
	idEncoding.Encode(b[18:], rnd[:])
	var sb strings.Builder
	sb.Grow(len(prefix) + len(b))
	sb.WriteString(prefix)
	sb.Write(b[:])
	return sb.String()
}

var idSeq atomic.Uint64

// putSortable encodes the low 5*len(b) bits of v in b as base32 characters
// that sort like the number.
func putSortable(b []byte, v uint64) {
	const alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = alphabet[v&31]
		v >>= 5
	}
}

// audit writes an audit entry in tx, in the same transaction as the change.
func (s *Service) audit(tx Tx, ws string, actor *Principal, action, target string, changes map[string]FieldChange) error {
	now := s.now().UTC()
	e := AuditEntry{
		ID: newestFirstID("aud_", now), Time: now, Workspace: ws, Actor: actorID(actor),
		Action: action, Target: target, Changes: changes,
	}
	return putRecord(tx, Collection{Workspace: ws, Name: CollAudit}, e.ID, &e)
}

// diff returns the fields of old and new (JSON objects of the same type)
// that differ, leaving out bookkeeping fields. A nil old lists every field
// of new.
func diff(old, new any, skip ...string) (map[string]FieldChange, error) {
	var o, n map[string]json.RawMessage
	if old != nil {
		if err := remarshal(old, &o); err != nil {
			return nil, err
		}
	}
	if new != nil {
		if err := remarshal(new, &n); err != nil {
			return nil, err
		}
	}
	out := map[string]FieldChange{}
	for _, k := range []string{"version", "updated_at", "created_at"} {
		delete(o, k)
		delete(n, k)
	}
	for _, k := range skip {
		delete(o, k)
		delete(n, k)
	}
	for k, nv := range n {
		if ov, ok := o[k]; !ok || !bytes.Equal(ov, nv) {
			out[k] = FieldChange{Old: o[k], New: nv}
		}
	}
	for k, ov := range o {
		if _, ok := n[k]; !ok {
			out[k] = FieldChange{Old: ov}
		}
	}
	return out, nil
}

func remarshal(v any, into *map[string]json.RawMessage) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding audit change: %w", err)
	}
	return json.Unmarshal(b, into)
}

func change(old, new any) FieldChange {
	var fc FieldChange
	if old != nil {
		fc.Old, _ = json.Marshal(old)
	}
	if new != nil {
		fc.New, _ = json.Marshal(new)
	}
	return fc
}

// ListAudit lists a workspace's audit entries, newest first (needs audit.read).
func (s *Service) ListAudit(ctx context.Context, actor *Principal, ws string, page Page) ([]AuditEntry, string, error) {
	if !actor.InWorkspace(ws) || !actor.HasPermission(PermAuditRead) {
		return nil, "", forbidden("reading the audit log needs %s", PermAuditRead)
	}
	page, after, err := page.normalize()
	if err != nil {
		return nil, "", err
	}
	if _, err := s.workspaceExists(ctx, ws); err != nil {
		return nil, "", err
	}
	return listPage[AuditEntry](ctx, s.store, Collection{Workspace: ws, Name: CollAudit}, after, page.Limit)
}
