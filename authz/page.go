package authz

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
)

// Cursors are the last id of the previous page, opaque to clients and
// authenticated: base64url(id) "." base64url(MAC(list, id)), under a
// secret derived from the signing key (so every instance of a fleet reads
// the others' cursors). A cursor this API did not return for this list —
// forged, edited, respelled, or another list's — is a 400, whatever it
// holds; strict base64 leaves each cursor one spelling.

// cursorMACLen is the length of a cursor's MAC, in bytes.
const cursorMACLen = 12

var cursorEncoding = base64.RawURLEncoding.Strict()

func (s *Service) cursorMAC(list, id string) []byte {
	m := hmac.New(sha256.New, s.cursorKey)
	m.Write([]byte(list))
	m.Write([]byte{0})
	m.Write([]byte(id))
	return m.Sum(nil)[:cursorMACLen]
}

// EncodeCursor returns the cursor of list (a name the caller gives the
// list, such as "keys:acme/usr_…") that resumes after id; "" for "".
func (s *Service) EncodeCursor(list, id string) string {
	if id == "" {
		return ""
	}
	return cursorEncoding.EncodeToString([]byte(id)) + "." + cursorEncoding.EncodeToString(s.cursorMAC(list, id))
}

// DecodeCursor returns the id a cursor of list resumes after ("" for ""),
// or a 400 naming the field cursor.
func (s *Service) DecodeCursor(list, c string) (string, error) {
	if c == "" {
		return "", nil
	}
	bad := fieldErr("cursor", "is not a cursor this API returned")
	idPart, macPart, ok := strings.Cut(c, ".")
	if !ok || len(c) > 512 || !base64URLOnly(c) {
		return "", bad
	}
	id, err := cursorEncoding.DecodeString(idPart)
	if err != nil || len(id) == 0 || len(id) > 256 {
		return "", bad
	}
	mac, err := cursorEncoding.DecodeString(macPart)
	if err != nil || !hmac.Equal(mac, s.cursorMAC(list, string(id))) {
		return "", bad
	}
	return string(id), nil
}

// normalize checks p's limit and returns the id p's cursor of list resumes
// after.
func (s *Service) normalize(p Page, list string) (Page, string, error) {
	if p.Limit == 0 {
		p.Limit = DefaultPageSize
	}
	if p.Limit < 1 || p.Limit > MaxPageSize {
		return p, "", fieldErr("limit", "must be between 1 and %d", MaxPageSize)
	}
	after, err := s.DecodeCursor(list, p.Cursor)
	return p, after, err
}

// cutPage keeps the first limit of items, read with one more than a page
// asks for, and returns the cursor of the next page: "" when there was no
// more.
func cutPage[T any](s *Service, list string, items []T, limit int, id func(*T) string) ([]T, string) {
	if len(items) <= limit {
		return items, ""
	}
	items = items[:limit]
	return items, s.EncodeCursor(list, id(&items[limit-1]))
}

// listPage reads one page of collection c: up to limit records with ids
// after `after`, decoded, and the cursor of the next page ("" when there is
// none). complete, when given, completes each record in the same
// transaction (a team's members).
func listPage[T any](ctx context.Context, s *Service, list string, c Collection, after string, limit int, complete ...func(tx Tx, v *T) error) ([]T, string, error) {
	out := []T{}
	next := ""
	err := s.store.View(ctx, c.Workspace, func(tx Tx) error {
		entries, err := tx.Scan(c, "", after, limit+1)
		if err != nil {
			return err
		}
		entries, next = cutPage(s, list, entries, limit, func(e *Entry) string { return e.ID })
		out = make([]T, 0, len(entries))
		for _, e := range entries {
			var v T
			if err := decodeRecord(c, e.ID, e.Value, &v); err != nil {
				return fmt.Errorf("decoding %s/%s: %w", c.Name, e.ID, err)
			}
			for _, f := range complete {
				if err := f(tx, &v); err != nil {
					return err
				}
			}
			out = append(out, v)
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// base64URLOnly reports whether s holds only base64url characters and
// dots. (encoding/base64 skips \r and \n even when strict, so a cursor with
// a line break in it would be another spelling of the same cursor.)
func base64URLOnly(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}
