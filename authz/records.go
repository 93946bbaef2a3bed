package authz

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Typed access to the records the domain keeps in a Tx.
//
// Users, keys and audit entries, the records a workspace holds many of, are
// not stored as their API JSON but in compact forms (encodeRecord,
// decodeRecord; the API output is the same). Users and keys are JSON still
// (userRecord, keyRecord): the fields the gateway reads keep their API
// names and encodings, since BuildPrincipal decodes the stored JSON
// straight into User and Key; every other field has a short name (none
// that encoding/json, matching names case-insensitively, could take for
// one of User's or Key's), is left out when empty, and timestamps are
// nanoseconds after the time the record's id carries. What the collection
// already says (a key's user and workspace) is not stored. Audit entries
// are binary (encodeAudit). Everything else is stored as its API JSON.

func getRecord(tx Tx, c Collection, id string, v any) error {
	raw, err := tx.Get(c, id)
	if err != nil {
		return err
	}
	if err := decodeRecord(c, id, raw, v); err != nil {
		return fmt.Errorf("decoding %s/%s: %w", c.Name, id, err)
	}
	return nil
}

func putRecord(tx Tx, c Collection, id string, v any) error {
	raw, err := encodeRecord(v)
	if err != nil {
		return fmt.Errorf("encoding %s/%s: %w", c.Name, id, err)
	}
	return tx.Put(c, id, raw)
}

// encodeRecord returns the stored form of v.
func encodeRecord(v any) ([]byte, error) {
	switch r := v.(type) {
	case *User:
		return json.Marshal(newUserRecord(r))
	case *Key:
		return json.Marshal(newKeyRecord(r))
	case *AuditEntry:
		return encodeAudit(r)
	}
	return json.Marshal(v)
}

// decodeRecord decodes raw, record id of c, into v.
func decodeRecord(c Collection, id string, raw []byte, v any) error {
	switch r := v.(type) {
	case *User:
		var ur userRecord
		if err := json.Unmarshal(raw, &ur); err != nil {
			return err
		}
		return ur.user(r)
	case *Key:
		var kr keyRecord
		if err := json.Unmarshal(raw, &kr); err != nil {
			return err
		}
		return kr.key(r, c.Workspace, strings.TrimPrefix(c.Name, collKeysPrefix))
	case *AuditEntry:
		return decodeAudit(c.Workspace, id, raw, r)
	}
	return json.Unmarshal(raw, v)
}

// userRecord is how a User is stored. The first nine fields are the ones
// BuildPrincipal reads, under their API names ("id" first: the Redis store
// does not store a leading {"id":"<record id>" twice).
type userRecord struct {
	ID           string          `json:"id"`
	Workspace    string          `json:"workspace"`
	Username     string          `json:"username"`
	Kind         Kind            `json:"kind"`
	Role         Role            `json:"role"`
	Status       Status          `json:"status"`
	Permissions  []string        `json:"permissions,omitempty"`
	Grants       []Grant         `json:"grants,omitempty"`
	Teams        []string        `json:"teams,omitempty"`
	Email        string          `json:"e,omitempty"`
	Organization string          `json:"o,omitempty"`
	Language     string          `json:"l,omitempty"`
	Timezone     string          `json:"z,omitempty"`
	PrivateNote  string          `json:"n,omitempty"`
	Created      json.RawMessage `json:"c,omitempty"` // stamp after the id's time
	Updated      json.RawMessage `json:"u,omitempty"` // stamp after Created; absent: the same
	Version      int64           `json:"v,omitempty"` // less one: absent is version 1
}

func newUserRecord(u *User) *userRecord {
	r := &userRecord{
		ID: u.ID, Workspace: u.Workspace, Username: u.Username, Kind: u.Kind, Role: u.Role, Status: u.Status,
		Permissions: u.Permissions, Grants: u.Grants, Teams: u.Teams,
		Email: u.Email, Organization: u.Organization, Language: u.Language, Timezone: u.Timezone, PrivateNote: u.PrivateNote,
		Version: u.Version - 1,
	}
	r.Created = encodeStamp(u.CreatedAt, idNanos(u.ID))
	if !u.UpdatedAt.Equal(u.CreatedAt) {
		r.Updated = encodeStamp(u.UpdatedAt, stampBase(u.CreatedAt))
	}
	return r
}

func (r *userRecord) user(u *User) error {
	created, err := decodeStamp(r.Created, idNanos(r.ID))
	if err != nil {
		return err
	}
	updated := created
	if r.Updated != nil {
		if updated, err = decodeStamp(r.Updated, stampBase(created)); err != nil {
			return err
		}
	}
	*u = User{
		ID: r.ID, Workspace: r.Workspace, Username: r.Username, Email: r.Email,
		Kind: r.Kind, Role: r.Role, Status: r.Status, Organization: r.Organization,
		Language: r.Language, Timezone: r.Timezone, PrivateNote: r.PrivateNote,
		Permissions: orEmpty(r.Permissions), Grants: orEmptyGrants(r.Grants), Teams: orEmpty(r.Teams),
		CreatedAt: created, UpdatedAt: updated, Version: r.Version + 1,
	}
	return nil
}

// keyRecord is how a Key is stored. id, expires_at and revokes_at are the
// fields BuildPrincipal reads; the user and workspace are those of the
// collection the key is in.
type keyRecord struct {
	ID           string          `json:"id"`
	Name         string          `json:"n,omitempty"`
	Created      json.RawMessage `json:"c,omitempty"` // stamp after the id's time
	LastUsed     json.RawMessage `json:"l,omitempty"` // stamp after Created
	ExpiresAt    *time.Time      `json:"expires_at,omitempty"`
	RevokesAt    *time.Time      `json:"revokes_at,omitempty"`
	IssuedAt     *int64          `json:"i,omitempty"` // absent: Created in Unix seconds
	SigningKeyID string          `json:"s,omitempty"`
}

func newKeyRecord(k *Key) *keyRecord {
	r := &keyRecord{
		ID: k.ID, Name: k.Name, ExpiresAt: k.ExpiresAt, RevokesAt: k.RevokesAt, SigningKeyID: k.SigningKeyID,
		Created: encodeStamp(k.CreatedAt, idNanos(k.ID)),
	}
	if k.LastUsedAt != nil {
		r.LastUsed = encodeStamp(*k.LastUsedAt, stampBase(k.CreatedAt))
	}
	if k.CreatedAt.IsZero() || k.IssuedAt != k.CreatedAt.Unix() {
		r.IssuedAt = &k.IssuedAt
	}
	return r
}

func (r *keyRecord) key(k *Key, ws, userID string) error {
	created, err := decodeStamp(r.Created, idNanos(r.ID))
	if err != nil {
		return err
	}
	*k = Key{
		ID: r.ID, UserID: userID, Workspace: ws, Name: r.Name, CreatedAt: created,
		ExpiresAt: r.ExpiresAt, RevokesAt: r.RevokesAt, SigningKeyID: r.SigningKeyID,
	}
	if r.LastUsed != nil {
		t, err := decodeStamp(r.LastUsed, stampBase(created))
		if err != nil {
			return err
		}
		k.LastUsedAt = &t
	}
	if r.IssuedAt != nil {
		k.IssuedAt = *r.IssuedAt
	} else if !created.IsZero() {
		k.IssuedAt = created.Unix()
	}
	return nil
}

// Stamps. A stored time is an integer, nanoseconds after a base the reader
// knows as well as the writer (the milliseconds a newID id carries, or
// another time of the same record), so that the usual stamp is a few
// digits; a time too far from the base for nanoseconds (or the zero time)
// is stored as its RFC 3339 string. An absent stamp is the zero time.

// stampLimit bounds the Unix nanoseconds stamps compute with: about the
// years 1678 to 2262, where UnixNano is defined.
const stampLimit = 1 << 62

// idNanos returns the time newID put into id, in Unix nanoseconds, or 0
// when id is not a newID id.
func idNanos(id string) int64 {
	i := strings.IndexByte(id, '_')
	if i < 0 || len(id)-i-1 != 26 {
		return 0
	}
	var b [16]byte
	if n, err := idEncoding.Decode(b[:], []byte(id[i+1:])); err != nil || n != 16 {
		return 0
	}
	ms := int64(binary.BigEndian.Uint64(b[:8]) >> 16)
	if ms > stampLimit/1_000_000 {
		return 0
	}
	return ms * 1e6
}

// stampBase returns t in Unix nanoseconds when it can be a stamp base, else 0.
func stampBase(t time.Time) int64 {
	if !inStampRange(t) {
		return 0
	}
	return t.UnixNano()
}

func inStampRange(t time.Time) bool {
	y := t.Year()
	return !t.IsZero() && y > 1678 && y < 2262
}

func encodeStamp(t time.Time, base int64) json.RawMessage {
	if t.IsZero() {
		return nil
	}
	if inStampRange(t) {
		return strconv.AppendInt(nil, t.UnixNano()-base, 10)
	}
	b, _ := t.UTC().MarshalJSON()
	return b
}

func decodeStamp(raw json.RawMessage, base int64) (time.Time, error) {
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return time.Time{}, nil
	case raw[0] == '"':
		var t time.Time
		err := json.Unmarshal(raw, &t)
		return t.UTC(), err
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("bad time stamp %s", raw)
	}
	return time.Unix(0, base+n).UTC(), nil
}

func usersOf(ws string) Collection   { return Collection{Workspace: ws, Name: CollUsers} }
func namesOf(ws string) Collection   { return Collection{Workspace: ws, Name: CollNames} }
func teamsOf(ws string) Collection   { return Collection{Workspace: ws, Name: CollTeams} }
func workspacesColl() Collection     { return Collection{Name: CollWorkspaces} }
func nameKey(username string) string { return strings.ToLower(username) }

func getUser(tx Tx, ws, id string) (*User, error) {
	var u User
	if err := getRecord(tx, usersOf(ws), id, &u); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, errf(ErrNotFound, "user %s not found in workspace %s", id, ws)
		}
		return nil, err
	}
	return &u, nil
}

func putUser(tx Tx, u *User) error { return putRecord(tx, usersOf(u.Workspace), u.ID, u) }

func getKey(tx Tx, ws, userID, kid string) (*Key, error) {
	var k Key
	if err := getRecord(tx, KeysCollection(ws, userID), kid, &k); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, errf(ErrNotFound, "key %s not found for user %s", kid, userID)
		}
		return nil, err
	}
	return &k, nil
}

// A key lives in its user's collection only: nothing needs to find a key
// by its id alone (a key carries its user id), so there is no key index
// (CollKeyIndex is no longer written).

func putKey(tx Tx, k *Key) error {
	return putRecord(tx, KeysCollection(k.Workspace, k.UserID), k.ID, k)
}

func deleteKey(tx Tx, ws, userID, kid string) error {
	return tx.Delete(KeysCollection(ws, userID), kid)
}

func listKeys(tx Tx, ws, userID string) ([]Key, error) {
	c := KeysCollection(ws, userID)
	entries, err := tx.Scan(c, "", "", 0)
	if err != nil {
		return nil, err
	}
	keys := make([]Key, len(entries))
	for i, e := range entries {
		if err := decodeRecord(c, e.ID, e.Value, &keys[i]); err != nil {
			return nil, fmt.Errorf("decoding key %s: %w", e.ID, err)
		}
	}
	return keys, nil
}

// A workspace's record lives inside the workspace (collection "meta", id
// "workspace"), next to the data and audit entries written with it; the
// global collection "workspaces" indexes every workspace for superadmins.
func metaOf(ws string) Collection { return Collection{Workspace: ws, Name: CollMeta} }

const metaWorkspace = "workspace"

func getWorkspace(tx Tx, id string) (*Workspace, error) {
	var w Workspace
	if err := getRecord(tx, metaOf(id), metaWorkspace, &w); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, errf(ErrNotFound, "workspace %s not found", id)
		}
		return nil, err
	}
	return &w, nil
}

// Cursors are the last id of the previous page, opaque to clients.

func encodeCursor(id string) string {
	if id == "" {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(id))
}

func decodeCursor(c string) (string, error) {
	if c == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) == 0 || len(b) > 256 {
		return "", fieldErr("cursor", "is not a cursor this API returned")
	}
	return string(b), nil
}

func (p Page) normalize() (Page, string, error) {
	if p.Limit == 0 {
		p.Limit = DefaultPageSize
	}
	if p.Limit < 1 || p.Limit > MaxPageSize {
		return p, "", fieldErr("limit", "must be between 1 and %d", MaxPageSize)
	}
	after, err := decodeCursor(p.Cursor)
	return p, after, err
}

// listPage reads one page of collection c: up to limit records with ids
// after `after`, decoded, and the cursor of the next page ("" when there is
// none).
func listPage[T any](ctx context.Context, st Store, c Collection, after string, limit int) ([]T, string, error) {
	out := []T{}
	next := ""
	err := st.View(ctx, c.Workspace, func(tx Tx) error {
		entries, err := tx.Scan(c, "", after, limit+1)
		if err != nil {
			return err
		}
		out, next = make([]T, 0, len(entries)), ""
		if len(entries) > limit {
			entries = entries[:limit]
			next = encodeCursor(entries[limit-1].ID)
		}
		for _, e := range entries {
			var v T
			if err := decodeRecord(c, e.ID, e.Value, &v); err != nil {
				return fmt.Errorf("decoding %s/%s: %w", c.Name, e.ID, err)
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
