package authz

import (
	"context"
	"time"
	"unicode/utf8"

	"github.com/apiusers/apiusers/authz/audit"
	"github.com/apiusers/apiusers/authz/ids"
)

// MaxKeysPerUser bounds how many keys one user may hold.
const MaxKeysPerUser = 100

// MaxGrace bounds the grace period of a regeneration.
const MaxGrace = 30 * 24 * time.Hour

func (s *Service) newKey(u *User, name string, expiresAt *time.Time, now time.Time) *Key {
	return &Key{
		ID: ids.New("key_", now), UserID: u.ID, Workspace: u.Workspace, Name: name,
		CreatedAt: now, ExpiresAt: expiresAt, IssuedAt: now.Unix(), SigningKeyID: s.signer.KeyID(),
	}
}

// sign makes the key string of k's claims.
func (s *Service) sign(k *Key) (string, error) {
	c := Claims{UserID: k.UserID, Workspace: k.Workspace, KeyID: k.ID, IssuedAt: k.IssuedAt}
	if k.ExpiresAt != nil {
		c.ExpiresAt = k.ExpiresAt.Unix()
	}
	secret, err := s.signer.Sign(c, k.SigningKeyID)
	if err != nil {
		return "", errf(ErrConflict, "key %s was signed with a signing key that is no longer configured", k.ID)
	}
	return secret, nil
}

// keyTarget loads the user whose keys are touched and checks the actor may
// manage them (self may only read).
func (s *Service) keyTarget(tx Tx, actor *Principal, ws, userID string, read bool) (*User, error) {
	if !actor.InWorkspace(ws) {
		return nil, forbidden("not a member of workspace %s", ws)
	}
	sj, err := loadSubject(tx, ws, userID)
	if err != nil {
		return nil, err
	}
	if read && actor.UserID == userID {
		return sj.User, nil
	}
	if !mayManageKeys(actor, sj) {
		return nil, forbidden("managing keys of user %s needs %s and may not reach beyond the caller's own rights", userID, PermKeysManage)
	}
	return sj.User, nil
}

// managedKey loads key kid of user userID, which actor must be able to
// manage.
func (s *Service) managedKey(tx Tx, actor *Principal, ws, userID, kid string) (*Key, error) {
	if _, err := s.keyTarget(tx, actor, ws, userID, false); err != nil {
		return nil, err
	}
	return getKey(tx, ws, userID, kid)
}

// liveKeys lists u's keys, deleting the ones whose grace or expiry ended
// when prune is set (inside an Update).
func liveKeys(tx Tx, ws, userID string, now time.Time, prune bool) ([]Key, error) {
	all, err := listKeys(tx, ws, userID)
	if err != nil {
		return nil, err
	}
	live := all[:0]
	for _, k := range all {
		if k.RevokesAt != nil && !now.Before(*k.RevokesAt) {
			if prune {
				if err := deleteKey(tx, ws, userID, k.ID); err != nil {
					return nil, err
				}
			}
			continue
		}
		live = append(live, k)
	}
	return live, nil
}

// ListKeys lists a user's key metadata: the user itself, or a caller that
// may manage its keys.
func (s *Service) ListKeys(ctx context.Context, actor *Principal, ws, userID string) ([]Key, error) {
	var keys []Key
	err := s.store.View(ctx, ws, func(tx Tx) error {
		if _, err := s.keyTarget(tx, actor, ws, userID, true); err != nil {
			return err
		}
		var err error
		keys, err = liveKeys(tx, ws, userID, s.now(), false)
		return err
	})
	return keys, err
}

// CreateKey issues a new key for a user.
func (s *Service) CreateKey(ctx context.Context, actor *Principal, ws, userID string, in NewKey) (*IssuedKey, error) {
	now := s.now().UTC()
	if err := validateKeyName(in.Name); err != nil {
		return nil, err
	}
	if in.ExpiresAt != nil && !in.ExpiresAt.After(now) {
		return nil, fieldErr("expires_at", "must be in the future")
	}
	if in.ExpiresAt != nil {
		t := in.ExpiresAt.UTC().Truncate(time.Second)
		in.ExpiresAt = &t
	}
	var out *IssuedKey
	err := s.store.Update(ctx, ws, func(tx Tx) error {
		u, err := s.keyTarget(tx, actor, ws, userID, false)
		if err != nil {
			return err
		}
		live, err := liveKeys(tx, ws, userID, now, true)
		if err != nil {
			return err
		}
		if len(live) >= MaxKeysPerUser {
			return errf(ErrConflict, "user %s already holds %d keys", userID, MaxKeysPerUser)
		}
		k := s.newKey(u, in.Name, in.ExpiresAt, now)
		secret, err := s.sign(k)
		if err != nil {
			return err
		}
		out = &IssuedKey{Key: *k, Secret: secret}
		if err := putKey(tx, k); err != nil {
			return err
		}
		return s.audit(tx, ws, actor, ActionKeyCreate, k.ID, keyChanges(k))
	})
	if err != nil {
		return nil, err
	}
	s.changed(Change{Workspace: ws, Users: []string{userID}})
	return out, nil
}

// keyChanges describes a new key for the audit log: never the key itself.
func keyChanges(k *Key) map[string]FieldChange {
	c := map[string]FieldChange{"user_id": audit.Changed(nil, k.UserID), "name": audit.Changed(nil, k.Name)}
	if k.ExpiresAt != nil {
		c["expires_at"] = audit.Changed(nil, k.ExpiresAt)
	}
	return c
}

// RegenerateKey issues a new key with the old one's name and expiry, and
// revokes key kid at once (grace 0) or when grace has passed.
func (s *Service) RegenerateKey(ctx context.Context, actor *Principal, ws, userID, kid string, grace time.Duration) (*IssuedKey, error) {
	if grace < 0 || grace > MaxGrace {
		return nil, fieldErr("grace", "must be between 0 and %s", MaxGrace)
	}
	now := s.now().UTC()
	var out *IssuedKey
	err := s.store.Update(ctx, ws, func(tx Tx) error {
		u, err := s.keyTarget(tx, actor, ws, userID, false)
		if err != nil {
			return err
		}
		old, err := getKey(tx, ws, userID, kid)
		if err != nil {
			return err
		}
		if !old.Live(now) {
			return errf(ErrNotFound, "key %s not found for user %s", kid, userID)
		}
		k := s.newKey(u, old.Name, old.ExpiresAt, now)
		secret, err := s.sign(k)
		if err != nil {
			return err
		}
		if grace == 0 {
			err = deleteKey(tx, ws, userID, kid)
		} else {
			end := now.Add(grace)
			if old.RevokesAt == nil || end.Before(*old.RevokesAt) {
				old.RevokesAt = &end
			}
			err = putKey(tx, old)
		}
		if err != nil {
			return err
		}
		out = &IssuedKey{Key: *k, Secret: secret}
		if err := putKey(tx, k); err != nil {
			return err
		}
		changes := keyChanges(k)
		changes["replaces"] = audit.Changed(nil, old.ID)
		if old.RevokesAt != nil {
			changes["old_revokes_at"] = audit.Changed(nil, old.RevokesAt)
		}
		return s.audit(tx, ws, actor, ActionKeyRegenerate, k.ID, changes)
	})
	if err != nil {
		return nil, err
	}
	s.changed(Change{Workspace: ws, Users: []string{userID}})
	return out, nil
}

// RevealKey re-signs key kid's claims to show it again (needs keys.reveal).
func (s *Service) RevealKey(ctx context.Context, actor *Principal, ws, userID, kid string) (*IssuedKey, error) {
	if !actor.HasPermission(PermKeysReveal) {
		return nil, forbidden("revealing keys needs %s", PermKeysReveal)
	}
	var out *IssuedKey
	err := s.store.Update(ctx, ws, func(tx Tx) error {
		k, err := s.managedKey(tx, actor, ws, userID, kid)
		if err != nil {
			return err
		}
		if !k.Live(s.now()) {
			return errf(ErrNotFound, "key %s not found for user %s", kid, userID)
		}
		secret, err := s.sign(k)
		if err != nil {
			return err
		}
		out = &IssuedKey{Key: *k, Secret: secret}
		return s.audit(tx, ws, actor, ActionKeyReveal, k.ID, map[string]FieldChange{"user_id": audit.Changed(nil, userID)})
	})
	return out, err
}

// RevokeKey kills key kid at once.
func (s *Service) RevokeKey(ctx context.Context, actor *Principal, ws, userID, kid string) error {
	err := s.store.Update(ctx, ws, func(tx Tx) error {
		k, err := s.managedKey(tx, actor, ws, userID, kid)
		if err != nil {
			return err
		}
		if err := deleteKey(tx, ws, userID, kid); err != nil {
			return err
		}
		return s.audit(tx, ws, actor, ActionKeyRevoke, kid, map[string]FieldChange{
			"user_id": audit.Changed(userID, nil), "name": audit.Changed(k.Name, nil),
		})
	})
	if err != nil {
		return err
	}
	s.changed(Change{Workspace: ws, Users: []string{userID}})
	return nil
}

func validateKeyName(name string) error {
	if n := utf8.RuneCountInString(name); n < 1 || n > 100 {
		return fieldErr("name", "must be 1 to 100 characters")
	}
	return CheckText("name", name, TextLine)
}
