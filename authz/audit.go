package authz

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
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
	// The random part tells apart ids made by several processes in the
	// same millisecond with the same sequence number. It is no secret, so
	// the runtime's generator (per thread, seeded by the OS) serves: it
	// costs nanoseconds where crypto/rand costs a system call, and the
	// recorder names every API message with this.
	var rnd [8]byte
	binary.LittleEndian.PutUint64(rnd[:], mrand.Uint64())
	var b [10 + 8 + 10]byte
	putSortable(b[0:10], uint64(1)<<48-1-uint64(now.UnixMilli()))
	putSortable(b[10:18], seq)
	idEncoding.Encode(b[18:], rnd[:6])
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

// The stored form of an audit entry: a compact binary record, since the
// audit log is the bulk of what a workspace stores (two entries for a user
// created with its key). Only ListAudit reads it back, and the API output
// is the AuditEntry JSON as ever. The entry's id and workspace are where
// it is stored and are not repeated. Layout (uvarint and varint as in
// encoding/binary):
//
//	0x01                   format (a JSON record starts with '{')
//	uvarint flags          auditNoID, auditNoWorkspace, auditTimeText
//	varint | str           time: nanoseconds after the time the id carries
//	                       (newestFirstID), or RFC 3339 text (auditTimeText)
//	str actor
//	sym action             (auditActions)
//	str target
//	uvarint n, then n × {sym field (auditFields); uvarint has (1 old,
//	                       2 new); val old if has&1; val new if has&2}
//
// str is uvarint(len<<1) then the bytes, or, for an id newID makes
// ("<prefix>_" and 26 base32 characters), uvarint(len(prefix)<<1|1), the
// prefix and the 16 bytes the characters encode. sym is 0 then a str, or
// k > 0 for table[k-1]. val (raw JSON) is k < len(auditValues) for
// auditValues[k], len(auditValues) then a str for a JSON string holding
// just that str (an id, mostly), or len(auditValues)+1+n then n bytes of
// JSON. auditNoID and auditNoWorkspace say the new "id" equal to the
// target, the new "workspace" equal to the entry's, are left out of the
// changes (user.create, team.create list both).
//
// The tables are part of the format: entries may be appended, never
// removed or reordered.
const auditFormat = 0x01

const (
	auditNoID = 1 << iota
	auditNoWorkspace
	auditTimeText
)

var (
	auditActions = []string{
		ActionUserCreate, ActionUserUpdate, ActionUserStatus, ActionUserDelete,
		ActionKeyCreate, ActionKeyRegenerate, ActionKeyRevoke, ActionKeyReveal,
		ActionTeamCreate, ActionTeamUpdate, ActionTeamDelete, ActionTeamMemberAdd, ActionTeamMemberRemove,
		ActionWorkspaceCreate,
	}
	auditFields = []string{
		"id", "workspace", "username", "email", "kind", "role", "status", "organization", "language",
		"timezone", "private_note", "permissions", "grants", "teams", "name", "members", "user_id",
		"expires_at", "replaces", "old_revokes_at", "erase",
	}
	auditValues = []string{
		`[]`, `""`, `null`, `true`, `false`, `{}`, `"api"`, `"member"`, `"active"`, `"inactive"`, `"trash"`,
		`"superadmin"`, `"admin"`, `"editor"`, `"operator"`, `"viewer"`, `"api_user"`, `"api_basic"`,
		`"api_registration"`, `"api_business"`, `"default"`,
	}
)

func encodeAudit(e *AuditEntry) ([]byte, error) {
	changes := e.Changes
	var flags uint64
	if fc, ok := changes["id"]; ok && fc.Old == nil && string(fc.New) == jsonString(e.Target) {
		flags |= auditNoID
	}
	if fc, ok := changes["workspace"]; ok && fc.Old == nil && string(fc.New) == jsonString(e.Workspace) {
		flags |= auditNoWorkspace
	}
	if !inStampRange(e.Time) {
		flags |= auditTimeText
	}
	b := make([]byte, 0, 128)
	b = append(b, auditFormat)
	b = binary.AppendUvarint(b, flags)
	if flags&auditTimeText != 0 {
		t, err := e.Time.MarshalText()
		if err != nil {
			return nil, err
		}
		b = appendAuditStr(b, string(t))
	} else {
		b = binary.AppendVarint(b, e.Time.UnixNano()-auditIDNanos(e.ID))
	}
	b = appendAuditStr(b, e.Actor)
	b = appendAuditSym(b, auditActions, e.Action)
	b = appendAuditStr(b, e.Target)
	n := len(changes)
	if flags&auditNoID != 0 {
		n--
	}
	if flags&auditNoWorkspace != 0 {
		n--
	}
	b = binary.AppendUvarint(b, uint64(n))
	// In field name order, so that equal entries encode alike.
	for _, k := range sortedKeys(changes) {
		if (k == "id" && flags&auditNoID != 0) || (k == "workspace" && flags&auditNoWorkspace != 0) {
			continue
		}
		fc := changes[k]
		b = appendAuditSym(b, auditFields, k)
		var has uint64
		if fc.Old != nil {
			has |= 1
		}
		if fc.New != nil {
			has |= 2
		}
		b = binary.AppendUvarint(b, has)
		if fc.Old != nil {
			b = appendAuditVal(b, fc.Old)
		}
		if fc.New != nil {
			b = appendAuditVal(b, fc.New)
		}
	}
	return b, nil
}

func decodeAudit(ws, id string, raw []byte, e *AuditEntry) error {
	if len(raw) > 0 && raw[0] == '{' {
		return json.Unmarshal(raw, e)
	}
	d := auditDecoder{b: raw}
	if d.byte() != auditFormat {
		return errBadAudit
	}
	flags := d.uvarint()
	*e = AuditEntry{ID: id, Workspace: ws}
	if flags&auditTimeText != 0 {
		if err := e.Time.UnmarshalText([]byte(d.str())); err != nil && d.err == nil {
			d.err = err
		}
	} else {
		e.Time = time.Unix(0, auditIDNanos(id)+d.varint()).UTC()
	}
	e.Actor = d.str()
	e.Action = d.sym(auditActions)
	e.Target = d.str()
	n := d.uvarint()
	if n > uint64(len(raw)) {
		return errBadAudit
	}
	if n > 0 || flags&(auditNoID|auditNoWorkspace) != 0 {
		e.Changes = make(map[string]FieldChange, n+2)
	}
	for range n {
		k := d.sym(auditFields)
		has := d.uvarint()
		var fc FieldChange
		if has&1 != 0 {
			fc.Old = d.val()
		}
		if has&2 != 0 {
			fc.New = d.val()
		}
		e.Changes[k] = fc
	}
	if flags&auditNoID != 0 {
		e.Changes["id"] = FieldChange{New: json.RawMessage(jsonString(e.Target))}
	}
	if flags&auditNoWorkspace != 0 {
		e.Changes["workspace"] = FieldChange{New: json.RawMessage(jsonString(ws))}
	}
	if d.err == nil && len(d.b) > 0 {
		d.err = errBadAudit
	}
	return d.err
}

var errBadAudit = errors.New("malformed audit record")

// jsonString is s as a JSON string, as encoding/json writes it.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func sortedKeys(m map[string]FieldChange) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func appendAuditStr(b []byte, s string) []byte {
	if raw, ok := packID(s); ok {
		i := strings.IndexByte(s, '_')
		b = binary.AppendUvarint(b, uint64(i)<<1|1)
		b = append(b, s[:i]...)
		return append(b, raw[:]...)
	}
	b = binary.AppendUvarint(b, uint64(len(s))<<1)
	return append(b, s...)
}

// packID returns the 16 bytes a newID id encodes, when s is one that
// encodes back to itself.
func packID(s string) (raw [16]byte, ok bool) {
	i := strings.IndexByte(s, '_')
	if i < 0 || len(s)-i-1 != 26 {
		return raw, false
	}
	if n, err := idEncoding.Decode(raw[:], []byte(s[i+1:])); err != nil || n != 16 {
		return raw, false
	}
	return raw, idEncoding.EncodeToString(raw[:]) == s[i+1:]
}

func appendAuditSym(b []byte, table []string, s string) []byte {
	for i, t := range table {
		if t == s {
			return binary.AppendUvarint(b, uint64(i+1))
		}
	}
	b = append(b, 0)
	return appendAuditStr(b, s)
}

func appendAuditVal(b []byte, v json.RawMessage) []byte {
	for i, t := range auditValues {
		if t == string(v) {
			return binary.AppendUvarint(b, uint64(i))
		}
	}
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		if s := string(v[1 : len(v)-1]); jsonString(s) == string(v) {
			b = binary.AppendUvarint(b, uint64(len(auditValues)))
			return appendAuditStr(b, s)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(auditValues)+1+len(v)))
	return append(b, v...)
}

// auditDecoder reads a stored audit record; the first error sticks and
// later reads return zero values.
type auditDecoder struct {
	b   []byte
	err error
}

func (d *auditDecoder) fail() {
	if d.err == nil {
		d.err = errBadAudit
	}
	d.b = nil
}

func (d *auditDecoder) byte() byte {
	if len(d.b) == 0 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *auditDecoder) bytes(n uint64) []byte {
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	out := d.b[:n]
	d.b = d.b[n:]
	return out
}

func (d *auditDecoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *auditDecoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *auditDecoder) str() string {
	h := d.uvarint()
	if h&1 == 0 {
		return string(d.bytes(h >> 1))
	}
	prefix := d.bytes(h >> 1)
	raw := d.bytes(16)
	if d.err != nil {
		return ""
	}
	return string(prefix) + "_" + idEncoding.EncodeToString(raw)
}

func (d *auditDecoder) sym(table []string) string {
	k := d.uvarint()
	switch {
	case k == 0:
		return d.str()
	case k <= uint64(len(table)):
		return table[k-1]
	}
	d.fail()
	return ""
}

func (d *auditDecoder) val() json.RawMessage {
	k := d.uvarint()
	n := uint64(len(auditValues))
	switch {
	case k < n:
		return json.RawMessage(auditValues[k])
	case k == n:
		return json.RawMessage(jsonString(d.str()))
	}
	return json.RawMessage(bytes.Clone(d.bytes(k - n - 1)))
}

// auditIDNanos returns the time newestFirstID put into id, in Unix
// nanoseconds, or 0 when id is not such an id.
func auditIDNanos(id string) int64 {
	i := strings.IndexByte(id, '_')
	if i < 0 || len(id)-i-1 < 10 {
		return 0
	}
	const alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
	var v uint64
	for _, c := range []byte(id[i+1 : i+11]) {
		d := strings.IndexByte(alphabet, c)
		if d < 0 {
			return 0
		}
		v = v<<5 | uint64(d)
	}
	if v >= 1<<48 {
		return 0
	}
	ms := int64(1<<48 - 1 - v)
	if ms > stampLimit/1_000_000 {
		return 0
	}
	return ms * 1e6
}
