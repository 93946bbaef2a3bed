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
// do so with check (mayReadKeys, mayManageKeysOf or mayReveal).
func (s *Service) keyTarget(tx Tx, actor *Principal, ws, userID string, check func(*Principal, *subject) error) (*User, error) {
	if !actor.InWorkspace(ws) {
		return nil, forbidden("not a member of workspace %s", ws)
	}
	sj, err := loadSubject(tx, ws, userID)
	if err != nil {
		return nil, err
	}
	if err := check(actor, sj); err != nil {
		return nil, err
	}
	return sj.User, nil
}

// mayReadKeys checks that actor may read target's key metadata: the user
// itself, or a caller that may manage its keys.
func mayReadKeys(actor *Principal, target *subject) error {
	if actor.UserID == target.ID {
		return nil
	}
	return mayManageKeysOf(actor, target)
}

// mayManageKeysOf checks that actor may create, regenerate and revoke
// target's keys (mayManageKeys; the user itself may only read them).
func mayManageKeysOf(actor *Principal, target *subject) error {
	if !mayManageKeys(actor, target) {
		return forbidden("managing keys of user %s needs %s and may not reach beyond the caller's own rights", target.ID, PermKeysManage)
	}
	return nil
}

// mayReveal checks that actor may show target's existing keys again: it
// holds keys.reveal and may manage target's keys.
func mayReveal(actor *Principal, target *subject) error {
	if !actor.HasPermission(PermKeysReveal) {
		return forbidden("revealing keys needs %s", PermKeysReveal)
	}
	return mayManageKeysOf(actor, target)
}

// managedKey loads key kid of user userID after check (see keyTarget).
func (s *Service) managedKey(tx Tx, actor *Principal, ws, userID, kid string, check func(*Principal, *subject) error) (*Key, error) {
	if _, err := s.keyTarget(tx, actor, ws, userID, check); err != nil {
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
		if _, err := s.keyTarget(tx, actor, ws, userID, mayReadKeys); err != nil {
			return err
		}
		var err error
		keys, err = liveKeys(tx, ws, userID, s.now(), false)
		return err
	})
	if err != nil {
		return nil, err
	}
	cs := make([]*Credits, len(keys))
	for i := range keys {
		cs[i] = keys[i].Credits
	}
	if err := s.fillCredits(ctx, ws, cs...); err != nil {
		return nil, err
	}
	return keys, nil
}

// GetKey returns the metadata of one live key of a user: to the user
// itself, or a caller that may manage its keys (never the key itself).
func (s *Service) GetKey(ctx context.Context, actor *Principal, ws, userID, kid string) (*Key, error) {
	var k *Key
	err := s.store.View(ctx, ws, func(tx Tx) error {
		if _, err := s.keyTarget(tx, actor, ws, userID, mayReadKeys); err != nil {
			return err
		}
		var err error
		if k, err = getKey(tx, ws, userID, kid); err != nil {
			return err
		}
		if !k.Live(s.now()) {
			return errf(ErrNotFound, "key %s not found for user %s", kid, userID)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := s.fillCredits(ctx, ws, k.Credits); err != nil {
		return nil, err
	}
	return k, nil
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
	if in.RateLimit != nil {
		r := *in.RateLimit
		if err := r.normalize("rate_limit"); err != nil {
			return nil, err
		}
		in.RateLimit = &r
	}
	var out *IssuedKey
	err := s.store.Update(ctx, ws, func(tx Tx) error {
		u, err := s.keyTarget(tx, actor, ws, userID, mayManageKeysOf)
		if err != nil {
			return err
		}
		if in.RateLimit != nil || in.Credits != nil {
			sj, err := subjectOf(tx, u, nil)
			if err != nil {
				return err
			}
			if err := mayLimit(actor, sj, true); err != nil {
				return err
			}
		}
		live, err := liveKeys(tx, ws, userID, now, true)
		if err != nil {
			return err
		}
		if len(live) >= MaxKeysPerUser {
			return errf(ErrConflict, "user %s already holds %d keys", userID, MaxKeysPerUser)
		}
		k := s.newKey(u, in.Name, in.ExpiresAt, now)
		k.RateLimit = in.RateLimit
		if in.Credits != nil {
			if k.Credits, err = newCredits("credits", in.Credits, nil, k.ID, now); err != nil {
				return err
			}
		}
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
	s.fillCreditsAfter(ctx, ws, out.Credits)
	return out, nil
}

// keyChanges describes a new key for the audit log: never the key itself.
func keyChanges(k *Key) map[string]FieldChange {
	c := map[string]FieldChange{"user_id": audit.Changed(nil, k.UserID), "name": audit.Changed(nil, k.Name)}
	if k.ExpiresAt != nil {
		c["expires_at"] = audit.Changed(nil, k.ExpiresAt)
	}
	if k.RateLimit != nil {
		c["rate_limit"] = audit.Changed(nil, k.RateLimit)
	}
	if k.Credits != nil {
		c["credits"] = audit.Changed(nil, k.Credits)
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
		u, err := s.keyTarget(tx, actor, ws, userID, mayManageKeysOf)
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
		if grace > 0 {
			// During the grace both keys work: the new one must fit
			// beside every live key, the old one included.
			live, err := liveKeys(tx, ws, userID, now, true)
			if err != nil {
				return err
			}
			if len(live) >= MaxKeysPerUser {
				return errf(ErrConflict, "user %s already holds %d keys: regenerate without grace, or revoke a key first", userID, MaxKeysPerUser)
			}
		}
		k := s.newKey(u, old.Name, old.ExpiresAt, now)
		// The new key has the old one's limits, and spends from the same
		// credit account (during a grace, both keys do).
		k.RateLimit, k.Credits = old.RateLimit, old.Credits
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
	s.fillCreditsAfter(ctx, ws, out.Credits)
	return out, nil
}

// RevealKey re-signs key kid's claims to show it again (needs keys.reveal).
func (s *Service) RevealKey(ctx context.Context, actor *Principal, ws, userID, kid string) (*IssuedKey, error) {
	if !actor.HasPermission(PermKeysReveal) {
		return nil, forbidden("revealing keys needs %s", PermKeysReveal)
	}
	var out *IssuedKey
	err := s.store.Update(ctx, ws, func(tx Tx) error {
		k, err := s.managedKey(tx, actor, ws, userID, kid, mayReveal)
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
	if err != nil {
		return nil, err
	}
	s.fillCreditsAfter(ctx, ws, out.Credits)
	return out, nil
}

// RevokeKey kills key kid at once.
func (s *Service) RevokeKey(ctx context.Context, actor *Principal, ws, userID, kid string) error {
	var dropped string
	err := s.store.Update(ctx, ws, func(tx Tx) error {
		k, err := s.managedKey(tx, actor, ws, userID, kid, mayManageKeysOf)
		if err != nil {
			return err
		}
		dropped = ""
		if k.Credits != nil && !sharedAccount(tx, ws, userID, kid, k.Credits.account) {
			dropped = k.Credits.account
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
	s.dropCredits(ctx, ws, dropped)
	return nil
}

func validateKeyName(name string) error {
	if n := utf8.RuneCountInString(name); n < 1 || n > 100 {
		return fieldErr("name", "must be 1 to 100 characters")
	}
	return CheckText("name", name, TextLine)
}
