package filestore

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/apiusers/apiusers/authz"
	"go.etcd.io/bbolt"
)

// Credentials beside their user. The records of a user's keys collection
// (authz.KeysCollection: its keys, session tokens and use records) are not
// a bucket of their own: they live in the workspace's users bucket, each
// under its user's id, credSep and its own id. So a user's credentials
// sort right after the user record (credSep starts with the least byte),
// and the gateway's load of a principal is one descent of one B+tree and a
// walk along one leaf, and recording a use dirties one page of that tree.
// (A bucket per user, as stores written before this layout have, costs a
// second descent, of the workspace bucket, and an inline bucket to open
// and rewrite on every use; Open moves such buckets here: migrate.)
//
// The composite keys cannot be mistaken for users: a user id (in the users
// bucket's own collection) may not hold credSep, and the user id of a keys
// collection may hold no zero byte at all, so the first credSep of a key
// ends its user id. No id the domain makes holds a zero byte.
const credSep = "\x00\x00"

// credsOf returns the user id of c when c is a keys collection.
func credsOf(c authz.Collection) (string, bool) {
	return strings.CutPrefix(c.Name, keysPrefix)
}

// keysPrefix is the name of every keys collection, before its user id.
var keysPrefix = authz.KeysCollection("", "").Name

// checkCreds refuses the user id of a keys collection that the layout
// cannot hold.
func checkCreds(c authz.Collection, userID string) error {
	if strings.IndexByte(userID, 0) >= 0 {
		return fmt.Errorf("collection %q: a user id with a zero byte: %w", c.Name, authz.ErrInvalid)
	}
	return nil
}

// isCred reports whether k, a key of a users bucket, is a credential's.
func isCred(k []byte) bool { return bytes.Contains(k, []byte(credSep)) }

// credKey appends the key of credential record id of user userID to buf.
func credKey(buf []byte, userID, id string) []byte {
	buf = append(buf, userID...)
	buf = append(buf, credSep...)
	return append(buf, id...)
}

// dropCreds deletes every record of userID's keys collection from ub.
func dropCreds(ub *bbolt.Bucket, userID string) error {
	if ub == nil {
		return nil
	}
	pfx := credKey(nil, userID, "")
	var doomed [][]byte
	c := ub.Cursor()
	for k, _ := c.Seek(pfx); k != nil && bytes.HasPrefix(k, pfx); k, _ = c.Next() {
		doomed = append(doomed, bytes.Clone(k))
	}
	for _, k := range doomed {
		if err := ub.Delete(k); err != nil {
			return fmt.Errorf("dropping the credentials of %s: %w", userID, err)
		}
	}
	return nil
}

// dropUsers deletes the user records of ub, keeping the credentials: the
// users collection and the keys collections are collections apart.
func dropUsers(ub *bbolt.Bucket) error {
	var doomed [][]byte
	c := ub.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		if !isCred(k) {
			doomed = append(doomed, bytes.Clone(k))
		}
	}
	for _, k := range doomed {
		if err := ub.Delete(k); err != nil {
			return fmt.Errorf("dropping users: %w", err)
		}
	}
	return nil
}

// migrateBatch bounds the keys buckets one transaction of migrate moves,
// so that a large store's migration does not hold it all in memory.
const migrateBatch = 2000

// migrate moves the records of every keys bucket of a store written
// before credentials lived beside their users into the users bucket, and
// deletes the buckets. Each transaction moves whole buckets, so a
// migration cut short leaves every collection in one place or the other,
// and the next Open goes on with it. It returns how many buckets it moved.
func migrate(db *bbolt.DB) (int, error) {
	if old, err := hasKeysBuckets(db); err != nil || !old {
		return 0, err
	}
	moved := 0
	for {
		n := 0
		err := db.Update(func(btx *bbolt.Tx) error {
			return btx.ForEach(func(wsName []byte, wsb *bbolt.Bucket) error {
				if n >= migrateBatch {
					return nil
				}
				var names [][]byte
				c := wsb.Cursor()
				for k, v := c.Seek([]byte(keysPrefix)); k != nil && bytes.HasPrefix(k, []byte(keysPrefix)); k, v = c.Next() {
					if v == nil { // a bucket
						names = append(names, bytes.Clone(k))
						if n+len(names) >= migrateBatch {
							break
						}
					}
				}
				if len(names) == 0 {
					return nil
				}
				ub, err := wsb.CreateBucketIfNotExists(usersBucket)
				if err != nil {
					return fmt.Errorf("creating the users bucket of %q: %w", wsName, err)
				}
				for _, name := range names {
					uid := string(name[len(keysPrefix):])
					if strings.IndexByte(uid, 0) >= 0 {
						return fmt.Errorf("workspace bucket %q: keys bucket %q: a user id with a zero byte, which this version cannot hold", wsName, name)
					}
					kb := wsb.Bucket(name)
					err := kb.ForEach(func(id, v []byte) error {
						if v == nil {
							return fmt.Errorf("workspace bucket %q: keys bucket %q holds a bucket %q", wsName, name, id)
						}
						return ub.Put(credKey(nil, uid, string(id)), bytes.Clone(v))
					})
					if err != nil {
						return err
					}
					if err := wsb.DeleteBucket(name); err != nil {
						return err
					}
				}
				n += len(names)
				return nil
			})
		})
		if err != nil {
			return moved, fmt.Errorf("moving credentials beside their users: %w", err)
		}
		moved += n
		if n < migrateBatch {
			return moved, nil
		}
	}
}

// hasKeysBuckets reports whether the file holds a keys bucket still: a
// read, so that opening a migrated file writes nothing.
func hasKeysBuckets(db *bbolt.DB) (bool, error) {
	found := false
	err := db.View(func(btx *bbolt.Tx) error {
		return btx.ForEach(func(_ []byte, wsb *bbolt.Bucket) error {
			c := wsb.Cursor()
			for k, v := c.Seek([]byte(keysPrefix)); k != nil && bytes.HasPrefix(k, []byte(keysPrefix)); k, v = c.Next() {
				if v == nil {
					found = true
					return nil
				}
			}
			return nil
		})
	})
	if err != nil {
		return false, fmt.Errorf("looking for keys buckets: %w", err)
	}
	return found, nil
}
