package audit

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/apiusers/apiusers/authz/ids"
)

// The stored form of an entry: a compact binary record, since the audit
// log is the bulk of what a workspace stores (two entries for a user
// created with its key). The API shows the Entry's JSON. The entry's id
// and workspace are where it is stored and are not repeated. Layout
// (uvarint and varint as in encoding/binary):
//
//	0x01                   format
//	uvarint flags          noID, noWorkspace, timeText
//	varint | str           time: nanoseconds after the time the id carries
//	                       (ids.NewestFirst), or RFC 3339 text (timeText)
//	str actor
//	sym action             (actions)
//	str target
//	uvarint n, then n × {sym field (fields); uvarint has (1 old, 2 new);
//	                       val old if has&1; val new if has&2}
//
// str is uvarint(len<<1) then the bytes, or, for an id ids.New makes
// ("<prefix>_" and 26 base32 characters), uvarint(len(prefix)<<1|1), the
// prefix and the 16 bytes the characters encode (ids.Pack). sym is 0 then
// a str, or k > 0 for table[k-1]. val (raw JSON) is k < len(values) for
// values[k], len(values) then a str for a JSON string holding just that
// str (an id, mostly), or len(values)+1+n then n bytes of JSON. noID and
// noWorkspace say the new "id" equal to the target, the new "workspace"
// equal to the entry's, are left out of the changes (user.create and
// team.create list both).
//
// The tables are part of the format: entries may be appended, never
// removed or reordered. A name or value that is not in them is stored in
// full, so new actions and fields need no change here.
const format = 0x01

const (
	noID = 1 << iota
	noWorkspace
	timeText
)

var (
	actions = []string{
		"user.create", "user.update", "user.status", "user.delete",
		"key.create", "key.regenerate", "key.revoke", "key.reveal",
		"team.create", "team.update", "team.delete", "team.member.add", "team.member.remove",
		"workspace.create",
	}
	fields = []string{
		"id", "workspace", "username", "email", "kind", "role", "status", "organization", "language",
		"timezone", "private_note", "permissions", "grants", "teams", "name", "members", "user_id",
		"expires_at", "replaces", "old_revokes_at", "erase",
	}
	values = []string{
		`[]`, `""`, `null`, `true`, `false`, `{}`, `"api"`, `"member"`, `"active"`, `"inactive"`, `"trash"`,
		`"superadmin"`, `"admin"`, `"editor"`, `"operator"`, `"viewer"`, `"api_user"`, `"api_basic"`,
		`"api_registration"`, `"api_business"`, `"default"`,
	}
)

// Encode returns the stored form of e.
func Encode(e *Entry) ([]byte, error) {
	changes := e.Changes
	var flags uint64
	if c, ok := changes["id"]; ok && c.Old == nil && string(c.New) == jsonString(e.Target) {
		flags |= noID
	}
	if c, ok := changes["workspace"]; ok && c.Old == nil && string(c.New) == jsonString(e.Workspace) {
		flags |= noWorkspace
	}
	if !inNanoRange(e.Time) {
		flags |= timeText
	}
	b := make([]byte, 0, 128)
	b = append(b, format)
	b = binary.AppendUvarint(b, flags)
	if flags&timeText != 0 {
		t, err := e.Time.MarshalText()
		if err != nil {
			return nil, err
		}
		b = appendStr(b, string(t))
	} else {
		b = binary.AppendVarint(b, e.Time.UnixNano()-ids.NewestFirstNanos(e.ID))
	}
	b = appendStr(b, e.Actor)
	b = appendSym(b, actions, e.Action)
	b = appendStr(b, e.Target)
	n := len(changes)
	if flags&noID != 0 {
		n--
	}
	if flags&noWorkspace != 0 {
		n--
	}
	b = binary.AppendUvarint(b, uint64(n))
	// In field name order, so that equal entries encode alike.
	for _, k := range sortedKeys(changes) {
		if (k == "id" && flags&noID != 0) || (k == "workspace" && flags&noWorkspace != 0) {
			continue
		}
		c := changes[k]
		b = appendSym(b, fields, k)
		var has uint64
		if c.Old != nil {
			has |= 1
		}
		if c.New != nil {
			has |= 2
		}
		b = binary.AppendUvarint(b, has)
		if c.Old != nil {
			b = appendVal(b, c.Old)
		}
		if c.New != nil {
			b = appendVal(b, c.New)
		}
	}
	return b, nil
}

// Decode decodes raw, the stored form of entry id of workspace ws, into e.
func Decode(ws, id string, raw []byte, e *Entry) error {
	d := decoder{b: raw}
	if d.byte() != format {
		return errMalformed
	}
	flags := d.uvarint()
	*e = Entry{ID: id, Workspace: ws}
	if flags&timeText != 0 {
		if err := e.Time.UnmarshalText([]byte(d.str())); err != nil && d.err == nil {
			d.err = err
		}
	} else {
		e.Time = time.Unix(0, ids.NewestFirstNanos(id)+d.varint()).UTC()
	}
	e.Actor = d.str()
	e.Action = d.sym(actions)
	e.Target = d.str()
	n := d.uvarint()
	if n > uint64(len(raw)) {
		return errMalformed
	}
	if n > 0 || flags&(noID|noWorkspace) != 0 {
		e.Changes = make(map[string]Change, n+2)
	}
	for range n {
		k := d.sym(fields)
		has := d.uvarint()
		var c Change
		if has&1 != 0 {
			c.Old = d.val()
		}
		if has&2 != 0 {
			c.New = d.val()
		}
		e.Changes[k] = c
	}
	if flags&noID != 0 {
		e.Changes["id"] = Change{New: json.RawMessage(jsonString(e.Target))}
	}
	if flags&noWorkspace != 0 {
		e.Changes["workspace"] = Change{New: json.RawMessage(jsonString(ws))}
	}
	if d.err == nil && len(d.b) > 0 {
		d.err = errMalformed
	}
	return d.err
}

var errMalformed = errors.New("malformed audit record")

// inNanoRange reports whether t can be stored in nanoseconds: not the
// zero time, and within the years UnixNano is defined for.
func inNanoRange(t time.Time) bool {
	y := t.Year()
	return !t.IsZero() && y > 1678 && y < 2262
}

// jsonString is s as a JSON string, as encoding/json writes it.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func sortedKeys(m map[string]Change) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func appendStr(b []byte, s string) []byte {
	if prefix, raw, ok := ids.Pack(s); ok {
		b = binary.AppendUvarint(b, uint64(len(prefix))<<1|1)
		b = append(b, prefix...)
		return append(b, raw[:]...)
	}
	b = binary.AppendUvarint(b, uint64(len(s))<<1)
	return append(b, s...)
}

func appendSym(b []byte, table []string, s string) []byte {
	for i, t := range table {
		if t == s {
			return binary.AppendUvarint(b, uint64(i+1))
		}
	}
	b = append(b, 0)
	return appendStr(b, s)
}

func appendVal(b []byte, v json.RawMessage) []byte {
	for i, t := range values {
		if t == string(v) {
			return binary.AppendUvarint(b, uint64(i))
		}
	}
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		if s := string(v[1 : len(v)-1]); jsonString(s) == string(v) {
			b = binary.AppendUvarint(b, uint64(len(values)))
			return appendStr(b, s)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(values)+1+len(v)))
	return append(b, v...)
}

// decoder reads a stored entry; the first error sticks and later reads
// return zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errMalformed
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) bytes(n uint64) []byte {
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	out := d.b[:n]
	d.b = d.b[n:]
	return out
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string {
	h := d.uvarint()
	if h&1 == 0 {
		return string(d.bytes(h >> 1))
	}
	prefix := d.bytes(h >> 1)
	raw := d.bytes(16)
	if d.err != nil {
		return ""
	}
	return ids.Unpack(string(prefix), [16]byte(raw))
}

func (d *decoder) sym(table []string) string {
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

func (d *decoder) val() json.RawMessage {
	k := d.uvarint()
	n := uint64(len(values))
	switch {
	case k < n:
		return json.RawMessage(values[k])
	case k == n:
		return json.RawMessage(jsonString(d.str()))
	}
	return json.RawMessage(bytes.Clone(d.bytes(k - n - 1)))
}
