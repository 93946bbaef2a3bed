package filestore

import (
	"context"
	"fmt"

	"github.com/apiusers/apiusers/authz"
)

// Touch implements authz.Toucher: the whole batch in one write
// transaction, reading each credential's presence and its use record and
// writing the use record, without decoding the credential.
func (s *Store) Touch(ctx context.Context, ts []authz.Touch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, t := range ts {
		if err := checkWorkspace(t.Workspace); err != nil {
			return err
		}
	}
	return s.Update(ctx, "", func(at authz.Tx) error {
		btx := at.(*tx).btx
		for _, t := range ts {
			kb := bucket(btx.Bucket(bucketName(t.Workspace)), authz.KeysCollection(t.Workspace, t.User).Name)
			if kb == nil || t.ID == "" {
				continue
			}
			if k, _ := kb.Cursor().Seek([]byte(t.ID)); k == nil || string(k) != t.ID {
				continue // no such credential: do not bring it back
			}
			uid := []byte(authz.UseID(t.ID))
			if old := kb.Get(uid); old != nil {
				if cred, last, ok := authz.ParseUse(old); ok && string(cred) == t.ID && last >= t.At {
					continue
				}
			}
			if err := kb.Put(uid, authz.UseValue(t.ID, t.At)); err != nil {
				return fmt.Errorf("recording the use of %s: %w", t.ID, err)
			}
		}
		return nil
	})
}

// Interface guards
var _ authz.Toucher = (*Store)(nil)
