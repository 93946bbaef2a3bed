// Package filestore is the embedded store: one bbolt file on local disk,
// owned by a single process. It is the default store of the apiusers app.
//
// Layout: one top-level bucket per workspace, named after the workspace id;
// the global workspace "" uses the bucket "_", which no workspace id can
// match (ids match ^[a-z0-9][a-z0-9-]{0,62}$). Inside a workspace bucket,
// every collection is a nested bucket named after the collection, holding
// id -> value, but for the users' keys collections: a user's credentials
// (keys, session tokens and the use records of both, authz.UseID) live in
// the users bucket beside the user record (creds.go), so that a principal
// is one read of one place. Names starting with '_' are the store's own:
// API messages live in "_messages" (see messages.go). Touch writes a batch
// of use records in one transaction without decoding a record (touch.go).
package filestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/apiusers/apiusers/authz"
	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// globalBucket is the bucket of the global workspace "". It cannot clash
// with a workspace id, which never starts with '_'.
const globalBucket = "_"

// Options tunes Open.
type Options struct {
	// LockTimeout is how long Open waits for the file lock when another
	// process holds the file. Default: 1s.
	LockTimeout time.Duration
}

// Store is a bbolt-backed authz.Store. It is safe for concurrent use;
// bbolt serializes writers and lets readers run alongside them.
type Store struct {
	db   *bbolt.DB
	path string
	now  func() time.Time // the clock of message retention
}

// Open opens (creating it if needed) the store file at path. Missing parent
// directories are created with mode 0700 and the file with mode 0600. When
// another process holds the file, Open fails after opts.LockTimeout with an
// error saying so, instead of waiting forever.
func Open(path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("opening store file: empty path")
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = time.Second
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating store directory: %w", err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: opts.LockTimeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("store file %s is in use by another process (is Caddy running with this store?): %w", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("opening store file %s: %w", path, err)
	}
	if _, err := migrate(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("store file %s: %w", path, err)
	}
	return &Store{db: db, path: path, now: time.Now}, nil
}

// Path returns the file the store was opened on.
func (s *Store) Path() string { return s.path }

// View runs fn in a read-only bbolt transaction over workspace ws.
func (s *Store) View(ctx context.Context, ws string, fn func(authz.Tx) error) error {
	return s.run(ctx, ws, false, fn)
}

// Update runs fn in a read-write bbolt transaction over workspace ws. bbolt
// serializes writers, so fn runs exactly once; if it returns an error the
// transaction rolls back and that error is returned unchanged.
func (s *Store) Update(ctx context.Context, ws string, fn func(authz.Tx) error) error {
	return s.run(ctx, ws, true, fn)
}

func (s *Store) run(ctx context.Context, ws string, write bool, fn func(authz.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkWorkspace(ws); err != nil {
		return err
	}
	var fnErr error
	body := func(btx *bbolt.Tx) error {
		fnErr = fn(&tx{btx: btx, ws: ws})
		return fnErr
	}
	var err error
	if write {
		err = s.db.Update(body)
	} else {
		err = s.db.View(body)
	}
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return s.backendErr(err)
	}
	return nil
}

// LoadPrincipal reads the user, its keys and its teams in one read
// transaction. Keys come in key id order, teams in the order the user lists
// them; teams that do not exist are skipped. The record's values share one
// copy of what they hold (a cache miss allocates little).
func (s *Store) LoadPrincipal(ctx context.Context, ws, userID string) (*authz.PrincipalRecord, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkWorkspace(ws); err != nil {
		return nil, err
	}
	var rec *authz.PrincipalRecord
	var fnErr error
	err := s.db.View(func(btx *bbolt.Tx) error {
		rec, fnErr = loadPrincipal(btx, ws, userID)
		return fnErr
	})
	if fnErr != nil {
		return nil, fnErr
	}
	if err != nil {
		return nil, s.backendErr(err)
	}
	return rec, nil
}

var (
	usersBucket = []byte(authz.CollUsers)
	teamsBucket = []byte(authz.CollTeams)
)

// loadPrincipal is LoadPrincipal inside its transaction: one descent to
// the user, then its credentials, which follow it in the users bucket.
func loadPrincipal(btx *bbolt.Tx, ws, userID string) (*authz.PrincipalRecord, error) {
	var name [96]byte // bucket names and keys, on the stack
	wsb := btx.Bucket(append(name[:0], bucketName(ws)...))
	var ub *bbolt.Bucket
	if wsb != nil {
		ub = wsb.Bucket(usersBucket)
	}
	notFound := func() error {
		return fmt.Errorf("loading principal %s in workspace %q: %w", userID, ws, authz.ErrNotFound)
	}
	if ub == nil || userID == "" || strings.Contains(userID, credSep) {
		return nil, notFound()
	}
	c := ub.Cursor()
	k, user := c.Seek(append(name[:0], userID...))
	if k == nil || string(k) != userID || user == nil {
		return nil, notFound()
	}
	teams, err := authz.UserRecordTeams(user)
	if err != nil {
		return nil, fmt.Errorf("loading principal %s in workspace %q: decoding user: %w", userID, ws, err)
	}
	// What the record holds, as bbolt has it: the user, then the keys,
	// then the teams.
	var held [24][]byte
	parts := append(held[:0], user)
	if strings.IndexByte(userID, 0) < 0 {
		pfx := credKey(name[:0], userID, "")
		k, v := c.Next()
		if k != nil && bytes.Compare(k, pfx) < 0 {
			// A user id that extends this one with a zero byte sorts
			// between the user and its credentials.
			k, v = c.Seek(pfx)
		}
		for ; k != nil && bytes.HasPrefix(k, pfx); k, v = c.Next() {
			parts = append(parts, v)
		}
	}
	nkeys := len(parts) - 1
	if len(teams) > 0 {
		tb := wsb.Bucket(teamsBucket)
		for _, id := range teams {
			if v := getKey(tb, append(name[:0], id...)); v != nil {
				parts = append(parts, v)
			}
		}
	}
	size := 0
	for _, p := range parts {
		size += len(p)
	}
	buf := make([]byte, 0, size)
	vals := make([][]byte, len(parts))
	for i, p := range parts {
		buf = append(buf, p...)
		vals[i] = buf[len(buf)-len(p) : len(buf) : len(buf)]
	}
	rec := &authz.PrincipalRecord{User: vals[0]}
	if nkeys > 0 {
		rec.Keys = vals[1 : 1+nkeys]
	}
	if len(vals) > 1+nkeys {
		rec.Teams = vals[1+nkeys:]
	}
	return rec, nil
}

// getKey returns the value of key in b (nil b: none), or nil when it is
// missing or a bucket. A present empty value is a non-nil empty slice. The
// result points into bbolt memory.
func getKey(b *bbolt.Bucket, key []byte) []byte {
	if b == nil || len(key) == 0 {
		return nil
	}
	k, v := b.Cursor().Seek(key)
	if k == nil || !bytes.Equal(k, key) || v == nil && b.Bucket(key) != nil {
		return nil
	}
	if v == nil {
		return []byte{}
	}
	return v
}

// Close closes the file and releases its lock. Calls after the first do
// nothing. Transactions started after Close fail with an error wrapping
// authz.ErrUnavailable.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("closing store file %s: %w", s.path, err)
	}
	return nil
}

// backendErr wraps a failure of bbolt itself (closed database, I/O error
// on commit) so it maps to 503.
func (s *Store) backendErr(err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return authz.Unavailable(fmt.Errorf("store file %s is closed: %w", s.path, err))
	}
	return authz.Unavailable(fmt.Errorf("store file %s: %w", s.path, err))
}

// tx adapts a bbolt transaction to authz.Tx.
type tx struct {
	btx *bbolt.Tx
	ws  string
}

func (t *tx) check(c authz.Collection) error {
	if c.Workspace != t.ws {
		return fmt.Errorf("collection %q of workspace %q used in a transaction over workspace %q: %w", c.Name, c.Workspace, t.ws, authz.ErrInvalid)
	}
	if c.Name == "" {
		return fmt.Errorf("empty collection name: %w", authz.ErrInvalid)
	}
	if c.Name[0] == '_' {
		return fmt.Errorf("collection name %q: names starting with '_' are reserved: %w", c.Name, authz.ErrInvalid)
	}
	return nil
}

// Get returns a copy of the value of id in c.
func (t *tx) Get(c authz.Collection, id string) ([]byte, error) {
	if err := t.check(c); err != nil {
		return nil, err
	}
	name, key, err := t.where(c, id)
	if err != nil {
		return nil, err
	}
	v := get(t.btx.Bucket(bucketName(t.ws)), name, key)
	if v == nil {
		return nil, fmt.Errorf("record %s/%s in workspace %q: %w", c.Name, id, t.ws, authz.ErrNotFound)
	}
	return bytes.Clone(v), nil
}

// Put sets id in c, creating the workspace and collection buckets on demand.
func (t *tx) Put(c authz.Collection, id string, value []byte) error {
	if err := t.check(c); err != nil {
		return err
	}
	if id == "" {
		return fmt.Errorf("putting into %s: empty record id: %w", c.Name, authz.ErrInvalid)
	}
	if !t.btx.Writable() {
		return fmt.Errorf("putting %s/%s: %w", c.Name, id, berrors.ErrTxNotWritable)
	}
	name, key, err := t.where(c, id)
	if err != nil {
		return err
	}
	if c.Name == authz.CollUsers && strings.Contains(id, credSep) {
		return fmt.Errorf("putting %s/%q: a user id may not hold two zero bytes in a row: %w", c.Name, id, authz.ErrInvalid)
	}
	wsb, err := t.btx.CreateBucketIfNotExists(bucketName(t.ws))
	if err != nil {
		return fmt.Errorf("creating bucket of workspace %q: %w", t.ws, err)
	}
	cb, err := wsb.CreateBucketIfNotExists([]byte(name))
	if err != nil {
		return fmt.Errorf("creating bucket of collection %s: %w", name, err)
	}
	// bbolt keeps references to key and value until commit: hand it copies
	// the caller cannot change.
	if err := cb.Put([]byte(key), clone(value)); err != nil {
		if errors.Is(err, berrors.ErrKeyTooLarge) || errors.Is(err, berrors.ErrValueTooLarge) {
			err = fmt.Errorf("%w: %w", authz.ErrInvalid, err)
		}
		return fmt.Errorf("putting %s/%s: %w", c.Name, id, err)
	}
	return nil
}

// Delete removes id from c; a missing id or collection is not an error.
func (t *tx) Delete(c authz.Collection, id string) error {
	if err := t.check(c); err != nil {
		return err
	}
	if !t.btx.Writable() {
		return fmt.Errorf("deleting %s/%s: %w", c.Name, id, berrors.ErrTxNotWritable)
	}
	name, key, err := t.where(c, id)
	if err != nil {
		return err
	}
	cb := bucket(t.btx.Bucket(bucketName(t.ws)), name)
	if cb == nil || key == "" {
		return nil
	}
	if err := cb.Delete([]byte(key)); err != nil {
		return fmt.Errorf("deleting %s/%s: %w", c.Name, id, err)
	}
	return nil
}

// Drop removes the bucket of c; a missing collection is not an error.
func (t *tx) Drop(c authz.Collection) error {
	if err := t.check(c); err != nil {
		return err
	}
	if !t.btx.Writable() {
		return fmt.Errorf("dropping %s: %w", c.Name, berrors.ErrTxNotWritable)
	}
	wsb := t.btx.Bucket(bucketName(t.ws))
	if wsb == nil {
		return nil
	}
	if userID, ok := credsOf(c); ok {
		if err := checkCreds(c, userID); err != nil {
			return err
		}
		return dropCreds(wsb.Bucket(usersBucket), userID)
	}
	if c.Name == authz.CollUsers {
		if ub := wsb.Bucket(usersBucket); ub != nil {
			return dropUsers(ub)
		}
		return nil
	}
	err := wsb.DeleteBucket([]byte(c.Name))
	if err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
		return fmt.Errorf("dropping %s: %w", c.Name, err)
	}
	return nil
}

// Scan seeks the cursor to the first candidate and walks at most limit
// entries forward, so it costs O(limit), not O(collection). (In the users
// collection it also seeks past the credentials of each user it meets,
// one seek per user, not one step per credential.)
func (t *tx) Scan(c authz.Collection, prefix, after string, limit int) ([]authz.Entry, error) {
	if err := t.check(c); err != nil {
		return nil, err
	}
	name, base := c.Name, ""
	if userID, ok := credsOf(c); ok {
		if err := checkCreds(c, userID); err != nil {
			return nil, err
		}
		name, base = authz.CollUsers, string(credKey(nil, userID, ""))
	}
	users := name == authz.CollUsers && base == ""
	cb := bucket(t.btx.Bucket(bucketName(t.ws)), name)
	if cb == nil {
		return nil, nil
	}
	cur := cb.Cursor()
	pfx := []byte(base + prefix)
	var k, v []byte
	if after != "" && after >= prefix {
		k, v = cur.Seek([]byte(base + after))
		if k != nil && string(k) == base+after {
			k, v = cur.Next()
		}
	} else {
		k, v = cur.Seek(pfx)
	}
	var out []authz.Entry
	var past []byte
	for k != nil && bytes.HasPrefix(k, pfx) {
		if users {
			if i := bytes.Index(k, []byte(credSep)); i >= 0 {
				// Credentials of the user k[:i]: every key from here to
				// k[:i]+"\x00\x01" is one of them. Seek past them all.
				past = append(append(past[:0], k[:i]...), 0, 1)
				k, v = cur.Seek(past)
				continue
			}
		}
		if limit > 0 && len(out) >= limit {
			break
		}
		out = append(out, authz.Entry{ID: string(k[len(base):]), Value: clone(v)})
		k, v = cur.Next()
	}
	return out, nil
}

// where returns the bucket of collection c and the key of its record id
// there (see creds.go).
func (t *tx) where(c authz.Collection, id string) (bucketName, key string, err error) {
	if userID, ok := credsOf(c); ok {
		if err := checkCreds(c, userID); err != nil {
			return "", "", err
		}
		if id == "" {
			return authz.CollUsers, "", nil
		}
		return authz.CollUsers, string(credKey(nil, userID, id)), nil
	}
	if c.Name == authz.CollUsers && strings.Contains(id, credSep) {
		return c.Name, "", nil // no user has such an id
	}
	return c.Name, id, nil
}

func checkWorkspace(ws string) error {
	if ws != "" && !authz.ValidWorkspaceID(ws) {
		return fmt.Errorf("workspace id %q: %w", ws, authz.ErrInvalid)
	}
	return nil
}

func bucketName(ws string) []byte {
	if ws == "" {
		return []byte(globalBucket)
	}
	return []byte(ws)
}

// bucket returns the collection bucket name inside wsb, or nil.
func bucket(wsb *bbolt.Bucket, name string) *bbolt.Bucket {
	if wsb == nil {
		return nil
	}
	return wsb.Bucket([]byte(name))
}

// get returns the value of id in collection name of wsb, or nil when it is
// missing. A present empty value is returned as a non-nil empty slice. The
// result points into bbolt memory: copy it before the transaction ends.
func get(wsb *bbolt.Bucket, name, id string) []byte {
	cb := bucket(wsb, name)
	if cb == nil || id == "" {
		return nil
	}
	k, v := cb.Cursor().Seek([]byte(id))
	if k == nil || string(k) != id {
		return nil
	}
	if v == nil {
		return []byte{}
	}
	return v
}

// clone copies b, returning a non-nil slice even when b is empty.
func clone(b []byte) []byte {
	return append(make([]byte, 0, len(b)), b...)
}

// Interface guards
var _ authz.Store = (*Store)(nil)
