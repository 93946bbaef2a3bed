package redisstore

import (
	"encoding/binary"
	"errors"
	"slices"
	"strings"

	"github.com/apiusers/apiusers/authz"
)

// How a collection is kept in Redis; see the package comment.
type layout uint8

const (
	// layoutSorted: one ZSET, score 0, one member per record holding the
	// id and the value (encodeMember). Ordered Scan in O(log n + limit),
	// Get in O(log n).
	layoutSorted layout = iota
	// layoutHash: one HASH id -> value. Get in O(1); Scan reads the whole
	// hash and sorts it, so it is kept for collections the domain only
	// reads by id (CollNames).
	layoutHash
	// layoutPacked: the whole collection is one field of a HASH the
	// workspace's collections of the same family share (encodeBlob). For
	// many small collections (a user's keys, at most authz.MaxKeysPerUser
	// live ones): no Redis key of their own.
	layoutPacked
)

// keysFamily is how the per-user key collections' names start
// ("keys:<user id>"); they are packed into one hash per workspace, the
// field being the user id.
var keysFamily = authz.KeysCollection("", "").Name

// place is where one collection lives: a Redis key and, for layoutPacked,
// the field of that key's hash.
type place struct {
	layout layout
	key    string
	field  string
}

// where names the place: its key, and its field when it has one.
func (p place) where() string { return p.key + "\x00" + p.field }

// place returns where collection coll of workspace ws lives.
func (s *Store) place(ws, coll string) place {
	switch {
	case strings.HasPrefix(coll, keysFamily):
		return place{layout: layoutPacked, key: s.key(ws, 'p', strings.TrimSuffix(keysFamily, ":")), field: coll[len(keysFamily):]}
	case coll == authz.CollNames:
		return place{layout: layoutHash, key: s.key(ws, 'h', coll)}
	default:
		return place{layout: layoutSorted, key: s.key(ws, 'r', coll)}
	}
}

// Sorted members. A member is the escaped id, one tag byte, then the value
// less what the tag says was left out:
//
//	member = esc(id) tag rest
//
// esc writes each byte of the id as is, except 0x00 to 0x03, which become
// 0x03 followed by the byte. Since every tag sorts below every byte esc
// starts a unit with, and esc keeps byte order, members sort like their
// ids, a shorter id before its extensions, and ZRANGEBYLEX ranges over ids
// are ranges over members (idRange, scanRange).
//
// The domain's records start with their own id, most with their workspace
// next ({"id":"usr_…","workspace":"acme",…}; the record contract of
// authz.Tx): the tag leaves out what repeats where the record is stored
// (split, join).
const (
	tagRaw       = 0x00 // rest is the value
	tagID        = 0x01 // the value is authz.IDHead(id) then rest
	tagWorkspace = 0x02 // the value is IDHead(id), authz.WorkspaceHead(ws), then rest
	escByte      = 0x03
)

func appendEsc(b []byte, id string) []byte {
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= escByte {
			b = append(b, escByte, c)
		} else {
			b = append(b, c)
		}
	}
	return b
}

func esc(id string) string {
	for i := 0; i < len(id); i++ {
		if id[i] <= escByte {
			return string(appendEsc(make([]byte, 0, len(id)+4), id))
		}
	}
	return id // the common case: nothing to escape
}

// elided returns what tag leaves out of a value of record id of workspace ws.
func elided(tag byte, ws, id string) string {
	switch tag {
	case tagID:
		return authz.IDHead(id)
	case tagWorkspace:
		return authz.IDHead(id) + authz.WorkspaceHead(ws)
	}
	return ""
}

// split returns the tag that leaves the most out of value, and the rest.
func split(ws, id string, value []byte) (tag byte, rest []byte) {
	for _, tag := range []byte{tagWorkspace, tagID} {
		if p := elided(tag, ws, id); len(value) >= len(p) && string(value[:len(p)]) == p {
			return tag, value[len(p):]
		}
	}
	return tagRaw, value
}

// join is the inverse of split; it returns a new slice.
func join(ws, id string, tag byte, rest []byte) []byte {
	p := elided(tag, ws, id)
	return append(append(make([]byte, 0, len(p)+len(rest)), p...), rest...)
}

func encodeMember(ws, id string, value []byte) string {
	tag, rest := split(ws, id, value)
	b := make([]byte, 0, len(id)+1+len(rest))
	b = appendEsc(b, id)
	b = append(b, tag)
	b = append(b, rest...)
	return string(b)
}

var errBadMember = errors.New("malformed record member")

func decodeMember(ws, m string) (authz.Entry, error) {
	var id []byte
	for i := 0; i < len(m); i++ {
		switch c := m[i]; {
		case c == escByte:
			if i+1 == len(m) {
				return authz.Entry{}, errBadMember
			}
			i++
			id = append(id, m[i])
		case c < escByte:
			ids := string(id)
			return authz.Entry{ID: ids, Value: join(ws, ids, c, []byte(m[i+1:]))}, nil
		default:
			id = append(id, c)
		}
	}
	return authz.Entry{}, errBadMember
}

// idRange returns the ZRANGEBYLEX bounds of the member of id.
func idRange(id string) (lo, hi string) {
	e := esc(id)
	return "[" + e, "(" + e + string(rune(escByte))
}

// scanRange returns the ZRANGEBYLEX bounds of the members whose ids start
// with prefix and sort after `after`.
func scanRange(prefix, after string) (lo, hi string) {
	lo = "-"
	switch {
	case after != "" && after >= prefix:
		// Members of `after` itself end in a tag, below escByte; every
		// longer id starting with after continues with a byte >= escByte.
		lo = "[" + esc(after) + string(rune(escByte))
	case prefix != "":
		lo = "[" + esc(prefix)
	}
	hi = "+"
	if succ, ok := successor(esc(prefix)); ok {
		hi = "(" + succ
	}
	return lo, hi
}

// successor returns the smallest string greater than every string starting
// with prefix, or false when there is none (empty prefix, or all 0xff).
func successor(prefix string) (string, bool) {
	b := []byte(prefix)
	for len(b) > 0 && b[len(b)-1] == 0xff {
		b = b[:len(b)-1]
	}
	if len(b) == 0 {
		return "", false
	}
	b[len(b)-1]++
	return string(b), true
}

// Packed collections. A blob holds every entry of one collection in id
// order, each as
//
//	uvarint(len(id)) id uvarint(len(rest)<<2 | tag) rest
//
// with tag and rest as in a sorted member. An empty collection has no field
// at all.

func encodeBlob(ws string, entries []authz.Entry) []byte {
	n := 0
	for _, e := range entries {
		n += len(e.ID) + len(e.Value) + 2*binary.MaxVarintLen32
	}
	b := make([]byte, 0, n)
	for _, e := range entries {
		tag, rest := split(ws, e.ID, e.Value)
		b = binary.AppendUvarint(b, uint64(len(e.ID)))
		b = append(b, e.ID...)
		b = binary.AppendUvarint(b, uint64(len(rest))<<2|uint64(tag))
		b = append(b, rest...)
	}
	return b
}

var errBadBlob = errors.New("malformed packed collection")

// decodeBlob returns the entries of a blob, in id order, as new slices.
func decodeBlob(ws string, b []byte) ([]authz.Entry, error) {
	var out []authz.Entry
	for len(b) > 0 {
		n, w := binary.Uvarint(b)
		if w <= 0 || n > uint64(len(b)-w) {
			return nil, errBadBlob
		}
		id := string(b[w : w+int(n)])
		b = b[w+int(n):]
		n, w = binary.Uvarint(b)
		if w <= 0 || n>>2 > uint64(len(b)-w) || byte(n&3) >= escByte {
			return nil, errBadBlob
		}
		l := int(n >> 2)
		out = append(out, authz.Entry{ID: id, Value: join(ws, id, byte(n&3), b[w:w+l])})
		b = b[w+l:]
	}
	return out, nil
}

// filterEntries keeps, in place, the entries of sorted es whose ids start
// with prefix and sort after `after`, at most n of them (n <= 0: all).
func filterEntries(es []authz.Entry, prefix, after string, n int) []authz.Entry {
	out := es[:0]
	for _, e := range es {
		if n > 0 && len(out) == n {
			break
		}
		if strings.HasPrefix(e.ID, prefix) && e.ID > after {
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func sortEntries(es []authz.Entry) {
	slices.SortFunc(es, func(a, b authz.Entry) int { return strings.Compare(a.ID, b.ID) })
}
