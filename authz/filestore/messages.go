package filestore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/apiusers/apiusers/authz"
	"go.etcd.io/bbolt"
)

// API messages live apart from the collections of authz.Tx, in one nested
// bucket per workspace that no collection can name (tx.check rejects names
// starting with '_'):
//
//	<ws>/_messages/users/<user id>   message id -> message JSON
//	<ws>/_messages/all               message id -> user id
//	<ws>/_messages/count             user id -> messages kept (uint64, big endian)
//
// Message ids sort newest first (authz.NewMessageID), so a cursor walking a
// user's bucket forward lists that user's messages newest first and a page
// costs O(log n + page) whatever the other users hold; "all" does the same
// for the whole workspace, one extra lookup per message. The oldest
// messages sit at the end, where retention trims them. See messageRange for
// how time bounds become id bounds.
const (
	messagesBucket = "_messages"
	msgUsersBucket = "users"
	msgAllBucket   = "all"
	msgCountBucket = "count"
)

// AppendMessages stores msgs in one write transaction, then applies keep to
// every user msgs belong to: it drops that user's messages beyond the
// keep.MaxPerUser newest and those older than keep.MaxAge (at millisecond
// precision), from every index at once. Storing a message id again
// replaces the message. A batch with an invalid message stores nothing.
func (s *Store) AppendMessages(ctx context.Context, msgs []authz.Message, keep authz.Retention) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(msgs) == 0 {
		return nil
	}
	// Validate and encode before taking bbolt's writer lock.
	vals := make([][]byte, len(msgs))
	for i := range msgs {
		if err := msgs[i].Validate(); err != nil {
			return err
		}
		v, err := json.Marshal(&msgs[i])
		if err != nil {
			return fmt.Errorf("encoding message %s: %w", msgs[i].ID, err)
		}
		vals[i] = v
	}
	var dropFrom []byte
	if keep.MaxAge > 0 {
		dropFrom = []byte(authz.MessageIDsOlderThan(s.now().Add(-keep.MaxAge)))
	}
	type owner struct{ ws, user string }
	var fnErr error
	err := s.db.Update(func(btx *bbolt.Tx) error {
		added := make(map[owner]uint64)
		for i := range msgs {
			m := &msgs[i]
			b, err := messageBuckets(btx, m.Workspace, true)
			if err != nil {
				fnErr = err
				return err
			}
			ub, err := b.users.CreateBucketIfNotExists([]byte(m.UserID))
			if err != nil {
				fnErr = fmt.Errorf("creating message bucket of user %s: %w", m.UserID, err)
				return fnErr
			}
			id := []byte(m.ID)
			n := added[owner{m.Workspace, m.UserID}]
			if ub.Get(id) == nil {
				n++
			}
			added[owner{m.Workspace, m.UserID}] = n
			if err := ub.Put(id, vals[i]); err != nil {
				fnErr = fmt.Errorf("storing message %s: %w", m.ID, err)
				return fnErr
			}
			if err := b.all.Put(id, []byte(m.UserID)); err != nil {
				fnErr = fmt.Errorf("indexing message %s: %w", m.ID, err)
				return fnErr
			}
		}
		for o, n := range added {
			b, _ := messageBuckets(btx, o.ws, false)
			if err := b.retain(o.user, n, keep.MaxPerUser, dropFrom, 0); err != nil {
				fnErr = err
				return err
			}
		}
		return nil
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return s.backendErr(err)
	}
	return nil
}

// ListMessages returns up to q.Limit messages of workspace ws (q.Limit <= 0:
// all), newest first. With q.UserID it walks that user's bucket only.
func (s *Store) ListMessages(ctx context.Context, ws string, q authz.MessageQuery) ([]authz.Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkWorkspace(ws); err != nil {
		return nil, err
	}
	from, to := q.IDRange()
	var out []authz.Message
	var fnErr error
	err := s.db.View(func(btx *bbolt.Tx) error {
		b, _ := messageBuckets(btx, ws, false)
		if b == nil {
			return nil
		}
		var (
			idx   *bbolt.Bucket // walked in id order
			value func(k, v []byte) []byte
		)
		if q.UserID != "" {
			if idx = b.users.Bucket([]byte(q.UserID)); idx == nil {
				return nil
			}
			value = func(_, v []byte) []byte { return v }
		} else {
			idx = b.all
			value = func(k, user []byte) []byte {
				if ub := b.users.Bucket(user); ub != nil {
					return ub.Get(k)
				}
				return nil
			}
		}
		c := idx.Cursor()
		for k, v := c.Seek([]byte(from)); k != nil && bytes.Compare(k, []byte(to)) < 0; k, v = c.Next() {
			if q.Limit > 0 && len(out) >= q.Limit {
				break
			}
			raw := value(k, v)
			if raw == nil {
				continue // cannot happen: every index changes in one transaction
			}
			var m authz.Message
			if err := json.Unmarshal(raw, &m); err != nil {
				fnErr = fmt.Errorf("decoding message %s of workspace %q: %w", k, ws, err)
				return fnErr
			}
			// The id bounds are exact to the millisecond; the message time
			// settles the bounds' own milliseconds.
			if q.Contains(&m) {
				out = append(out, m)
			}
		}
		return nil
	})
	if fnErr != nil {
		return nil, fnErr
	}
	if err != nil {
		return nil, s.backendErr(err)
	}
	return out, nil
}

// EraseMessages deletes every message of user userID of workspace ws, in
// one write transaction costing O(that user's messages).
func (s *Store) EraseMessages(ctx context.Context, ws, userID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkWorkspace(ws); err != nil {
		return err
	}
	if userID == "" {
		return fmt.Errorf("erasing messages: empty user id: %w", authz.ErrInvalid)
	}
	var fnErr error
	err := s.db.Update(func(btx *bbolt.Tx) error {
		b, _ := messageBuckets(btx, ws, false)
		if b == nil {
			return nil
		}
		if fnErr = b.retain(userID, 0, -1, nil, 0); fnErr != nil {
			return fnErr
		}
		return nil
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return s.backendErr(err)
	}
	return nil
}

// SweepMessages deletes up to limit messages older than before, of every
// user of every workspace, in one write transaction. In each workspace it
// walks "all" from the first id too old towards the oldest, so it costs
// O(log n) per message deleted plus one lookup per workspace.
func (s *Store) SweepMessages(ctx context.Context, before time.Time, limit int) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if limit <= 0 {
		return 0, fmt.Errorf("sweeping messages: limit %d: %w", limit, authz.ErrInvalid)
	}
	dropFrom := []byte(authz.MessageIDsOlderThan(before))
	deleted := 0
	var fnErr error
	err := s.db.Update(func(btx *bbolt.Tx) error {
		var names [][]byte
		if err := btx.ForEach(func(name []byte, _ *bbolt.Bucket) error {
			names = append(names, bytes.Clone(name))
			return nil
		}); err != nil {
			return err
		}
		for _, name := range names {
			if deleted >= limit {
				break
			}
			b, _ := messageBuckets(btx, string(name), false)
			if b == nil || string(name) == globalBucket {
				continue
			}
			// Count per user what goes, then let retain drop those
			// messages (the oldest of each user) and fix the counts.
			gone := map[string]int{}
			c := b.all.Cursor()
			for k, user := c.Seek(dropFrom); k != nil && deleted < limit; k, user = c.Next() {
				gone[string(user)]++
				deleted++
			}
			for user := range gone {
				if fnErr = b.retain(user, 0, 0, dropFrom, gone[user]); fnErr != nil {
					return fnErr
				}
			}
		}
		return nil
	})
	if fnErr != nil {
		return 0, fnErr
	}
	if err != nil {
		return 0, s.backendErr(err)
	}
	return deleted, nil
}

// msgBuckets are the message buckets of one workspace.
type msgBuckets struct {
	users, all, count *bbolt.Bucket
}

// messageBuckets returns the message buckets of ws, creating them when
// create is set (btx must then be writable). Without create it returns nil
// when ws holds no messages.
func messageBuckets(btx *bbolt.Tx, ws string, create bool) (*msgBuckets, error) {
	if !create {
		mb := bucket(btx.Bucket(bucketName(ws)), messagesBucket)
		if mb == nil {
			return nil, nil
		}
		b := &msgBuckets{users: mb.Bucket([]byte(msgUsersBucket)), all: mb.Bucket([]byte(msgAllBucket)), count: mb.Bucket([]byte(msgCountBucket))}
		if b.users == nil || b.all == nil || b.count == nil {
			return nil, nil
		}
		return b, nil
	}
	wsb, err := btx.CreateBucketIfNotExists(bucketName(ws))
	if err != nil {
		return nil, fmt.Errorf("creating bucket of workspace %q: %w", ws, err)
	}
	mb, err := wsb.CreateBucketIfNotExists([]byte(messagesBucket))
	if err != nil {
		return nil, fmt.Errorf("creating message bucket of workspace %q: %w", ws, err)
	}
	var b msgBuckets
	for _, nb := range []struct {
		name string
		b    **bbolt.Bucket
	}{{msgUsersBucket, &b.users}, {msgAllBucket, &b.all}, {msgCountBucket, &b.count}} {
		if *nb.b, err = mb.CreateBucketIfNotExists([]byte(nb.name)); err != nil {
			return nil, fmt.Errorf("creating message bucket %s of workspace %q: %w", nb.name, ws, err)
		}
	}
	return &b, nil
}

// retain updates the count of user's messages by added, then deletes its
// oldest messages while it holds more than max (max 0: no bound; max < 0:
// delete all) or while the oldest id is at or past dropFrom (nil: no age
// bound), deleting at most limit messages (limit <= 0: no bound). It costs
// O(log n) per message deleted.
func (b *msgBuckets) retain(user string, added uint64, max int, dropFrom []byte, limit int) error {
	ub := b.users.Bucket([]byte(user))
	if ub == nil {
		return nil
	}
	n := added
	if v := b.count.Get([]byte(user)); len(v) == 8 {
		n += binary.BigEndian.Uint64(v)
	}
	dropped := 0
	c := ub.Cursor()
	for k, _ := c.Last(); k != nil; k, _ = c.Last() {
		over := max < 0 || (max > 0 && n > uint64(max))
		if !over && (dropFrom == nil || bytes.Compare(k, dropFrom) < 0) {
			break
		}
		if limit > 0 && dropped == limit {
			break
		}
		dropped++
		id := bytes.Clone(k) // k is invalid once deleted
		if err := c.Delete(); err != nil {
			return fmt.Errorf("deleting message %s: %w", id, err)
		}
		if err := b.all.Delete(id); err != nil {
			return fmt.Errorf("unindexing message %s: %w", id, err)
		}
		if n > 0 {
			n--
		}
	}
	if k, _ := c.First(); k == nil {
		// Leave nothing behind for a user without messages.
		if err := b.users.DeleteBucket([]byte(user)); err != nil {
			return fmt.Errorf("deleting message bucket of user %s: %w", user, err)
		}
		if err := b.count.Delete([]byte(user)); err != nil {
			return fmt.Errorf("deleting message count of user %s: %w", user, err)
		}
		return nil
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], n)
	if err := b.count.Put([]byte(user), v[:]); err != nil {
		return fmt.Errorf("counting messages of user %s: %w", user, err)
	}
	return nil
}

// Interface guards
var (
	_ authz.MessageStore   = (*Store)(nil)
	_ authz.MessageSweeper = (*Store)(nil)
)
