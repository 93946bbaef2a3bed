package filestore

import (
	"bytes"
	"context"
	"fmt"
	"strings"

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
		var buf [128]byte
		for _, t := range ts {
			ub := bucket(btx.Bucket(bucketName(t.Workspace)), authz.CollUsers)
			if ub == nil || t.ID == "" || strings.IndexByte(t.User, 0) >= 0 {
				continue
			}
			c := ub.Cursor()
			cred := credKey(buf[:0], t.User, t.ID)
			if k, _ := c.Seek(cred); k == nil || !bytes.Equal(k, cred) {
				continue // no such credential: do not bring it back
			}
			uid := credKey(nil, t.User, authz.UseID(t.ID))
			if k, old := c.Seek(uid); k != nil && bytes.Equal(k, uid) {
				if cred, last, ok := authz.ParseUse(old); ok && string(cred) == t.ID && last >= t.At {
					continue
				}
			}
			if err := ub.Put(uid, authz.UseValue(t.ID, t.At)); err != nil {
				return fmt.Errorf("recording the use of %s: %w", t.ID, err)
			}
		}
		return nil
	})
}

// Interface guards
var _ authz.Toucher = (*Store)(nil)
