package authz

import (
	"encoding/json"
	"time"
	"unicode/utf8"
)

// A cache miss decodes a user record and its keys; encoding/json spends
// most of a miss's decoding on reflection. recordScanner reads the flat
// objects json.Marshal writes for userRecord and keyRecord without it. It
// reads strings without escapes, numbers and arrays of such strings; when
// it meets anything else in a field it needs (an escape, a nested object
// such as a grant) or anything it cannot skip, it gives up, and the
// caller decodes the record with encoding/json as before. Either way the
// result is the same: the fuzz tests hold the two to it.
type recordScanner struct {
	b   []byte
	bad bool
}

func (s *recordScanner) fail() { s.bad = true }

func (s *recordScanner) peek() byte {
	if len(s.b) == 0 {
		return 0
	}
	return s.b[0]
}

func (s *recordScanner) expect(c byte) {
	if s.peek() != c {
		s.fail()
		return
	}
	s.b = s.b[1:]
}

// fields calls field for each key of the object, which must read or skip
// its value.
func (s *recordScanner) fields(field func(key []byte)) {
	s.expect('{')
	if s.peek() == '}' {
		s.b = s.b[1:]
	} else {
		for !s.bad {
			key, ok := s.plain()
			if !ok {
				s.fail()
				return
			}
			s.expect(':')
			if s.bad {
				return
			}
			field(key)
			if s.peek() == ',' {
				s.b = s.b[1:]
				continue
			}
			s.expect('}')
			break
		}
	}
	if len(s.b) != 0 {
		s.fail()
	}
}

// plain reads a string without escapes or control characters, holding
// valid UTF-8.
func (s *recordScanner) plain() ([]byte, bool) {
	if s.peek() != '"' {
		return nil, false
	}
	for i := 1; i < len(s.b); i++ {
		switch c := s.b[i]; {
		case c == '"':
			v := s.b[1:i]
			if !utf8.Valid(v) {
				return nil, false
			}
			s.b = s.b[i+1:]
			return v, true
		case c == '\\' || c < 0x20:
			return nil, false
		}
	}
	return nil, false
}

// str reads a plain string value.
func (s *recordScanner) str() string {
	v, ok := s.plain()
	if !ok {
		s.fail()
	}
	return string(v)
}

// name reads a plain string value that is usually one of names, and
// returns that name when it is one (without allocating).
func name[T ~string](s *recordScanner, names []T) T {
	v, ok := s.plain()
	if !ok {
		s.fail()
		return ""
	}
	for _, n := range names {
		if string(v) == string(n) {
			return n
		}
	}
	return T(v)
}

var (
	kindNames   = []Kind{KindAPI, KindMember}
	statusNames = []Status{StatusActive, StatusInactive, StatusTrash}
)

// strs reads an array of plain strings (nil for null).
func (s *recordScanner) strs() []string {
	if s.literal("null") {
		return nil
	}
	s.expect('[')
	out := []string{}
	for !s.bad && s.peek() != ']' {
		if len(out) > 0 {
			s.expect(',')
		}
		out = append(out, s.str())
	}
	s.expect(']')
	return out
}

func (s *recordScanner) literal(lit string) bool {
	if len(s.b) >= len(lit) && string(s.b[:len(lit)]) == lit {
		s.b = s.b[len(lit):]
		return true
	}
	return false
}

// number reads an integer as json.Marshal writes one.
func (s *recordScanner) number() []byte {
	i := 0
	if s.peek() == '-' {
		i++
	}
	start := i
	for i < len(s.b) && '0' <= s.b[i] && s.b[i] <= '9' {
		i++
	}
	if i == start || (s.b[start] == '0' && i > start+1) {
		s.fail()
		return nil
	}
	v := s.b[:i]
	s.b = s.b[i:]
	return v
}

// raw reads a number or a plain string, as its JSON text.
func (s *recordScanner) raw() json.RawMessage {
	if s.peek() == '"' {
		start := s.b
		if _, ok := s.plain(); !ok {
			s.fail()
			return nil
		}
		return json.RawMessage(start[:len(start)-len(s.b)])
	}
	return json.RawMessage(s.number())
}

// skipString reads a string nobody needs: escapes are checked, not
// decoded.
func (s *recordScanner) skipString() {
	if s.peek() != '"' {
		s.fail()
		return
	}
	for i := 1; i < len(s.b); i++ {
		switch c := s.b[i]; {
		case c == '"':
			s.b = s.b[i+1:]
			return
		case c < 0x20:
			s.fail()
			return
		case c == '\\':
			if i+1 >= len(s.b) {
				s.fail()
				return
			}
			switch s.b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				if i+5 >= len(s.b) || !isHex(s.b[i+2:i+6]) {
					s.fail()
					return
				}
				i += 5
			default:
				s.fail()
				return
			}
		}
	}
	s.fail()
}

func isHex(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// skip reads a value nobody needs: a string, a number, true, false, null
// or an array of plain strings.
func (s *recordScanner) skip() {
	switch c := s.peek(); {
	case c == '"':
		s.skipString()
	case c == '[':
		s.strs()
	case c == '-' || '0' <= c && c <= '9':
		s.number()
	case s.literal("true"), s.literal("false"), s.literal("null"):
	default:
		s.fail()
	}
}

// scan reads a user record; false: decode it with encoding/json instead.
func (u *principalUser) scan(b []byte) bool {
	s := recordScanner{b: b}
	var seen uint16
	once := func(bit uint16) {
		if seen&bit != 0 {
			s.fail() // json.Unmarshal would take the last: leave it to it
		}
		seen |= bit
	}
	s.fields(func(key []byte) {
		switch string(key) {
		case "id":
			once(1)
			u.ID = s.str()
		case "workspace":
			once(2)
			u.Workspace = s.str()
		case "username":
			once(4)
			u.Username = s.str()
		case "kind":
			once(8)
			u.Kind = name(&s, kindNames)
		case "role":
			once(16)
			u.Role = name(&s, RoleNames)
		case "status":
			once(32)
			u.Status = name(&s, statusNames)
		case "permissions":
			once(64)
			u.Permissions = s.strs()
		case "teams":
			once(128)
			u.Teams = s.strs()
		case "grants":
			once(256)
			if !s.literal("null") && !s.literal("[]") {
				s.fail()
			}
		default:
			if !known(userKeys, key) {
				s.fail() // encoding/json matches names case-insensitively
			}
			s.skip()
		}
	})
	return !s.bad
}

// scan reads a key record; false: decode it with encoding/json instead.
func (k *principalKey) scan(b []byte) bool {
	s := recordScanner{b: b}
	var seen uint8
	once := func(bit uint8) {
		if seen&bit != 0 {
			s.fail()
		}
		seen |= bit
	}
	s.fields(func(key []byte) {
		switch string(key) {
		case "id":
			once(1)
			k.ID = s.str()
		case "c":
			once(2)
			k.Created = s.raw()
		case "l":
			once(4)
			k.LastUsed = s.raw()
		case "expires_at":
			once(8)
			k.ExpiresAt = s.time()
		case "revokes_at":
			once(16)
			k.RevokesAt = s.time()
		default:
			if !known(keyKeys, key) {
				s.fail()
			}
			s.skip()
		}
	})
	return !s.bad
}

// time reads a time as encoding/json does (null: nil).
func (s *recordScanner) time() *time.Time {
	if s.literal("null") {
		return nil
	}
	start := s.b
	if _, ok := s.plain(); !ok {
		s.fail()
		return nil
	}
	t := new(time.Time)
	if err := t.UnmarshalJSON(start[:len(start)-len(s.b)]); err != nil {
		s.fail()
		return nil
	}
	return t
}

// The other fields of the stored forms, skipped by name. Any other name is
// left to encoding/json, which matches names case-insensitively and might
// take it for one of the fields read.
var (
	userKeys     = []string{"e", "o", "l", "z", "n", "c", "u", "v"}
	userReadKeys = []string{"id", "workspace", "username", "kind", "role", "status", "permissions"}
	keyKeys      = []string{"n", "i", "s"}
)

func known(names []string, key []byte) bool {
	for _, n := range names {
		if string(key) == n {
			return true
		}
	}
	return false
}

// UserRecordTeams returns the team ids a stored user record lists (what a
// store's LoadPrincipal needs to read next), without encoding/json's
// reflection for the records json.Marshal writes.
func UserRecordTeams(user []byte) ([]string, error) {
	s := recordScanner{b: user}
	var teams []string
	seen := false
	s.fields(func(key []byte) {
		switch {
		case string(key) == "teams":
			if seen {
				s.fail()
			}
			seen = true
			teams = s.strs()
		case string(key) == "grants":
			if !s.literal("null") && !s.literal("[]") {
				s.fail()
			}
		case known(userKeys, key) || known(userReadKeys, key):
			s.skip()
		default:
			s.fail()
		}
	})
	if !s.bad {
		return teams, nil
	}
	var t struct {
		Teams []string `json:"teams"`
	}
	if err := json.Unmarshal(user, &t); err != nil {
		return nil, err
	}
	return t.Teams, nil
}
