package authz

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/apiusers/apiusers/authz/ids"
)

// The stored forms of users and keys. They are JSON: the fields the
// gateway reads keep their API names and encodings, since BuildPrincipal
// decodes the stored JSON straight into User and Key; every other field
// has a short name (none that encoding/json, matching names
// case-insensitively, could take for one of User's or Key's), is left out
// when empty, and timestamps are nanoseconds after the time the record's
// id carries. What the collection already says (a key's user and
// workspace) is not stored.

// userRecord is how a User is stored. The first nine fields and the last
// two are the ones BuildPrincipal reads, under their API names; "id" and
// "workspace" come first and "teams" is there, as the record contract
// (authz.Tx) promises.
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
	Account      string          `json:"a,omitempty"`
	PasswordAt   json.RawMessage `json:"pw,omitempty"` // stamp after Created; absent: no password
	RateLimit    *RateLimit      `json:"rate_limit,omitempty"`
	Credits      *storedCredits  `json:"credits,omitempty"`
	AcceptedAt   json.RawMessage `json:"ac,omitempty"` // stamp after Created; absent: never accepted
}

func newUserRecord(u *User) *userRecord {
	r := &userRecord{
		ID: u.ID, Workspace: u.Workspace, Username: u.Username, Kind: u.Kind, Role: u.Role, Status: u.Status,
		Permissions: u.Permissions, Grants: u.Grants, Teams: u.Teams,
		Email: u.Email, Organization: u.Organization, Language: u.Language, Timezone: u.Timezone, PrivateNote: u.PrivateNote,
		Version: u.Version - 1,
	}
	r.Created = encodeStamp(u.CreatedAt, ids.Nanos(u.ID))
	if !u.UpdatedAt.Equal(u.CreatedAt) {
		r.Updated = encodeStamp(u.UpdatedAt, stampBase(u.CreatedAt))
	}
	r.Account = u.Account
	r.RateLimit, r.Credits = u.RateLimit, storeCredits(u.Credits)
	if u.PasswordChangedAt != nil {
		r.PasswordAt = encodeStamp(*u.PasswordChangedAt, stampBase(u.CreatedAt))
	}
	if u.AcceptedAt != nil {
		r.AcceptedAt = encodeStamp(*u.AcceptedAt, stampBase(u.CreatedAt))
	}
	return r
}

func (r *userRecord) user(u *User) error {
	created, err := decodeStamp(r.Created, ids.Nanos(r.ID))
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
		CreatedAt: created, UpdatedAt: updated, Version: r.Version + 1, Account: r.Account,
		RateLimit: r.RateLimit, Credits: r.Credits.credits(),
	}
	if r.PasswordAt != nil {
		t, err := decodeStamp(r.PasswordAt, stampBase(created))
		if err != nil {
			return err
		}
		u.PasswordChangedAt, u.HasPassword = &t, true
	}
	if r.AcceptedAt != nil {
		t, err := decodeStamp(r.AcceptedAt, stampBase(created))
		if err != nil {
			return err
		}
		u.AcceptedAt = &t
	}
	return nil
}

// keyRecord is how a Key is stored. id, expires_at, revokes_at,
// rate_limit and credits are the fields BuildPrincipal reads, with c and l
// (when the key was last recorded as used); "id" comes first (the record
// contract of authz.Tx); the user and workspace are those of the
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
	RateLimit    *RateLimit      `json:"rate_limit,omitempty"`
	Credits      *storedCredits  `json:"credits,omitempty"`
}

func newKeyRecord(k *Key) *keyRecord {
	r := &keyRecord{
		ID: k.ID, Name: k.Name, ExpiresAt: k.ExpiresAt, RevokesAt: k.RevokesAt, SigningKeyID: k.SigningKeyID,
		Created:   encodeStamp(k.CreatedAt, ids.Nanos(k.ID)),
		RateLimit: k.RateLimit, Credits: storeCredits(k.Credits),
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
	created, err := decodeStamp(r.Created, ids.Nanos(r.ID))
	if err != nil {
		return err
	}
	*k = Key{
		ID: r.ID, UserID: userID, Workspace: ws, Name: r.Name, CreatedAt: created,
		ExpiresAt: r.ExpiresAt, RevokesAt: r.RevokesAt, SigningKeyID: r.SigningKeyID,
		RateLimit: r.RateLimit, Credits: r.Credits.credits(),
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
// knows as well as the writer (the milliseconds an ids.New id carries, or
// another time of the same record), so that the usual stamp is a few
// digits; a time too far from the base for nanoseconds (or the zero time)
// is stored as its RFC 3339 string. An absent stamp is the zero time.

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
