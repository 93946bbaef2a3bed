package authz

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/apiusers/apiusers/authz/audit"
)

// Typed access to the records the domain keeps in a Tx. Users, keys and
// audit entries, the records a workspace holds many of, are stored in
// compact forms (stored.go; package audit for audit entries), which decode
// back to the JSON the API shows; every other record is stored as its API
// JSON.

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
		return audit.Encode(r)
	case *Team:
		return json.Marshal(storedTeam{teamFields: teamFields(*r)})
	}
	return json.Marshal(v)
}

// teamFields is a Team without its methods, for storedTeam.
type teamFields Team

// storedTeam is a team as stored: without its members, which are records
// of their own (CollTeamMembers). A record written before them still lists
// them; decoding a Team reads them into Members.
type storedTeam struct {
	teamFields
	Members []string `json:"members,omitempty"`
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
		return audit.Decode(c.Workspace, id, raw, r)
	}
	return json.Unmarshal(raw, v)
}

func usersOf(ws string) Collection { return Collection{Workspace: ws, Name: CollUsers} }
func namesOf(ws string) Collection { return Collection{Workspace: ws, Name: CollNames} }
func teamsOf(ws string) Collection { return Collection{Workspace: ws, Name: CollTeams} }
func teamMembersOf(ws string) Collection {
	return Collection{Workspace: ws, Name: CollTeamMembers}
}
func workspacesColl() Collection     { return Collection{Name: CollWorkspaces} }
func nameKey(username string) string { return CanonicalName(username) }

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

// putUser, putNewUser and deleteUserRecord (userindex.go) write users.

func getKey(tx Tx, ws, userID, kid string) (*Key, error) {
	var k Key
	if !strings.HasPrefix(kid, "key_") {
		// The collection also holds the user's session tokens (ses_…),
		// which no key operation may touch.
		return nil, errf(ErrNotFound, "key %s not found for user %s", kid, userID)
	}
	c := KeysCollection(ws, userID)
	if err := getRecord(tx, c, kid, &k); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, errf(ErrNotFound, "key %s not found for user %s", kid, userID)
		}
		return nil, err
	}
	at, err := useOf(tx, c, kid)
	if err != nil {
		return nil, err
	}
	if at != 0 {
		laterUse(&k.LastUsedAt, at)
	}
	return &k, nil
}

// A key lives in its user's collection only: nothing needs to find a key
// by its id alone (a key carries its user id).

func putKey(tx Tx, k *Key) error {
	return putRecord(tx, KeysCollection(k.Workspace, k.UserID), k.ID, k)
}

func deleteKey(tx Tx, ws, userID, kid string) error {
	return deleteCredential(tx, ws, userID, kid)
}

// listKeys lists the keys of a user, in id order, with their last uses
// (one read of the collection: its keys, session tokens and use records).
func listKeys(tx Tx, ws, userID string) ([]Key, error) {
	c := KeysCollection(ws, userID)
	entries, err := tx.Scan(c, "", "", 0)
	if err != nil {
		return nil, err
	}
	uses := usesIn(entries)
	keys := make([]Key, 0, len(entries)-len(uses))
	for _, e := range entries {
		if !strings.HasPrefix(e.ID, "key_") {
			continue
		}
		keys = append(keys, Key{})
		k := &keys[len(keys)-1]
		if err := decodeRecord(c, e.ID, e.Value, k); err != nil {
			return nil, fmt.Errorf("decoding key %s: %w", e.ID, err)
		}
		if at, ok := uses[e.ID]; ok {
			laterUse(&k.LastUsedAt, at)
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
