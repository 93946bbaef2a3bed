package authz

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Typed access to the records the domain keeps in a Tx.

func getRecord(tx Tx, c Collection, id string, v any) error {
	raw, err := tx.Get(c, id)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decoding %s/%s: %w", c.Name, id, err)
	}
	return nil
}

func putRecord(tx Tx, c Collection, id string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding %s/%s: %w", c.Name, id, err)
	}
	return tx.Put(c, id, raw)
}

func usersOf(ws string) Collection    { return Collection{Workspace: ws, Name: CollUsers} }
func namesOf(ws string) Collection    { return Collection{Workspace: ws, Name: CollNames} }
func teamsOf(ws string) Collection    { return Collection{Workspace: ws, Name: CollTeams} }
func keyIndexOf(ws string) Collection { return Collection{Workspace: ws, Name: CollKeyIndex} }
func workspacesColl() Collection      { return Collection{Name: CollWorkspaces} }
func nameKey(username string) string  { return strings.ToLower(username) }

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

func putKey(tx Tx, k *Key) error {
	if err := putRecord(tx, KeysCollection(k.Workspace, k.UserID), k.ID, k); err != nil {
		return err
	}
	return tx.Put(keyIndexOf(k.Workspace), k.ID, []byte(k.UserID))
}

func deleteKey(tx Tx, ws, userID, kid string) error {
	if err := tx.Delete(KeysCollection(ws, userID), kid); err != nil {
		return err
	}
	return tx.Delete(keyIndexOf(ws), kid)
}

func listKeys(tx Tx, ws, userID string) ([]Key, error) {
	entries, err := tx.Scan(KeysCollection(ws, userID), "", "", 0)
	if err != nil {
		return nil, err
	}
	keys := make([]Key, 0, len(entries))
	for _, e := range entries {
		var k Key
		if err := json.Unmarshal(e.Value, &k); err != nil {
			return nil, fmt.Errorf("decoding key %s: %w", e.ID, err)
		}
		keys = append(keys, k)
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
			if err := json.Unmarshal(e.Value, &v); err != nil {
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
