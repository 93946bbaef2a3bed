package authz

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// The user index: what lets a workspace of many users be listed by kind
// and status, and searched by a username or email prefix, in time that
// grows with the page and not with the workspace. Each user has these
// entries in the collection CollUserIndex of its workspace:
//
//	s\x00<kind>\x00<status>\x00<user id>   value: "-"
//	t\x00<term>\x00<user id>               value: "<kind>\x00<status>"
//
// where the terms are the user's username and email in canonical form
// (CanonicalName), cut to indexTermMax bytes. Entries sort by their ids,
// so a kind and status list is one range in user id (creation) order, and
// a prefix search is one range in term order whose values tell kind and
// status apart without reading the users.
//
// putUser keeps a user's entries in step with its record (it compares with
// the stored record in the same transaction), putNewUser writes a new
// user's, deleteUserRecord removes them. Workspaces created by this
// version are marked indexed at once; older ones are indexed in chunks the
// first time a list needs the index (ensureUserIndex).

// CollUserIndex holds a workspace's user index.
const CollUserIndex = "userindex"

// indexTermMax bounds an index term, in bytes: a longer name is indexed by
// its start (and matched in full against the user record).
const indexTermMax = 200

// metaUserIndex is the meta record that says the workspace's users are all
// in the index ("done"), or up to which user id they are.
const metaUserIndex = "userindex"

const userIndexDone = "done"

func userIndexOf(ws string) Collection { return Collection{Workspace: ws, Name: CollUserIndex} }

// indexTerm is a name's canonical form cut to indexTermMax bytes on a rune
// boundary.
func indexTerm(name string) string {
	t := CanonicalName(name)
	if len(t) <= indexTermMax {
		return t
	}
	t = t[:indexTermMax]
	for len(t) > 0 && !utf8.ValidString(t) {
		t = t[:len(t)-1]
	}
	return t
}

func statusPrefix(kind Kind, status Status) string {
	return "s\x00" + string(kind) + "\x00" + string(status) + "\x00"
}

const termPrefix = "t\x00"

// userIndexEntries are u's index entries (id → value).
func userIndexEntries(u *User) map[string]string {
	ks := string(u.Kind) + "\x00" + string(u.Status)
	m := map[string]string{statusPrefix(u.Kind, u.Status) + u.ID: "-"}
	m[termPrefix+indexTerm(u.Username)+"\x00"+u.ID] = ks
	if u.Email != "" {
		m[termPrefix+indexTerm(u.Email)+"\x00"+u.ID] = ks
	}
	return m
}

// reindexUser moves the index entries of a user from old (nil: none) to
// new (nil: none), writing only what changed.
func reindexUser(tx Tx, old, new *User) error {
	var was, is map[string]string
	if old != nil {
		was = userIndexEntries(old)
	}
	if new != nil {
		is = userIndexEntries(new)
	}
	ws := ""
	if new != nil {
		ws = new.Workspace
	} else if old != nil {
		ws = old.Workspace
	}
	c := userIndexOf(ws)
	for id := range was {
		if _, keep := is[id]; !keep {
			if err := tx.Delete(c, id); err != nil {
				return err
			}
		}
	}
	for id, v := range is {
		if old, ok := was[id]; !ok || old != v {
			if err := tx.Put(c, id, []byte(v)); err != nil {
				return err
			}
		}
	}
	return nil
}

// putUser writes u and keeps its index entries in step with it.
func putUser(tx Tx, u *User) error {
	var old *User
	raw, err := tx.Get(usersOf(u.Workspace), u.ID)
	switch {
	case err == nil:
		old = new(User)
		if err := decodeRecord(usersOf(u.Workspace), u.ID, raw, old); err != nil {
			return fmt.Errorf("decoding user %s: %w", u.ID, err)
		}
	case !errors.Is(err, ErrNotFound):
		return err
	}
	if err := putRecord(tx, usersOf(u.Workspace), u.ID, u); err != nil {
		return err
	}
	return reindexUser(tx, old, u)
}

// putNewUser writes a user that does not exist yet, with its index entries.
func putNewUser(tx Tx, u *User) error {
	if err := putRecord(tx, usersOf(u.Workspace), u.ID, u); err != nil {
		return err
	}
	return reindexUser(tx, nil, u)
}

// deleteUserRecord deletes user u's record and its index entries.
func deleteUserRecord(tx Tx, u *User) error {
	if err := tx.Delete(usersOf(u.Workspace), u.ID); err != nil {
		return err
	}
	return reindexUser(tx, u, nil)
}

// markUserIndex marks a new workspace's (empty) user index complete.
func markUserIndex(tx Tx, ws string) error {
	return tx.Put(metaOf(ws), metaUserIndex, []byte(userIndexDone))
}

// indexChunk is how many users one transaction of ensureUserIndex adds.
const indexChunk = 500

// ensureUserIndex makes sure every user of ws is in the index: a workspace
// made before the index existed gets it built, indexChunk users per
// transaction. Users written meanwhile are indexed by their own writes, so
// the chunks and the writes agree. Once done, the service remembers it.
func (s *Service) ensureUserIndex(ctx context.Context, ws string) error {
	if _, ok := s.indexed.Load(ws); ok {
		return nil
	}
	for {
		done := false
		err := s.store.Update(ctx, ws, func(tx Tx) error {
			done = false
			mark, err := tx.Get(metaOf(ws), metaUserIndex)
			switch {
			case err == nil && string(mark) == userIndexDone:
				done = true
				return nil
			case err != nil && !errors.Is(err, ErrNotFound):
				return err
			}
			after := string(mark)
			entries, err := tx.Scan(usersOf(ws), "", after, indexChunk)
			if err != nil {
				return err
			}
			for _, e := range entries {
				var u User
				if err := decodeRecord(usersOf(ws), e.ID, e.Value, &u); err != nil {
					return fmt.Errorf("decoding user %s: %w", e.ID, err)
				}
				for id, v := range userIndexEntries(&u) {
					if err := tx.Put(userIndexOf(ws), id, []byte(v)); err != nil {
						return err
					}
				}
			}
			next := userIndexDone
			if len(entries) == indexChunk {
				next = entries[len(entries)-1].ID
			}
			return tx.Put(metaOf(ws), metaUserIndex, []byte(next))
		})
		if err != nil {
			return err
		}
		if done {
			s.indexed.Store(ws, true)
			return nil
		}
	}
}

// indexScanMax is the most index entries one list request reads. A page
// that reaches it without filling up ends early, with a next cursor from
// where the reading stopped.
const indexScanMax = 2000

// indexRange reads one range of the index (the entries whose ids start
// with prefix) in order, a batch at a time.
type indexRange struct {
	prefix, after string
	buf           []Entry
	done          bool
}

func (r *indexRange) peek(tx Tx, c Collection) (*Entry, error) {
	if len(r.buf) == 0 && !r.done {
		const batch = 128
		es, err := tx.Scan(c, r.prefix, r.after, batch)
		if err != nil {
			return nil, err
		}
		r.buf, r.done = es, len(es) < batch
		if len(es) > 0 {
			r.after = es[len(es)-1].ID
		}
	}
	if len(r.buf) == 0 {
		return nil, nil
	}
	return &r.buf[0], nil
}

// entryUser is the user id an index entry names: its last part.
func entryUser(id string) string { return id[strings.LastIndexByte(id, 0)+1:] }

// indexPage is one page read from the index.
type indexPage struct {
	users []User
	// at is where each user was found: its index entry id, or with
	// byUser its user id.
	at []string
	// stop, when not "", is where the reading stopped (indexScanMax
	// entries read) without filling the page.
	stop     string
	lastRead string
}

// scanIndex reads users from the ranges of the index: from one range in
// its order, or from several merged in user id order (byUser). pre, when
// set, rejects an entry by its value before the user is read; keep decides
// on the user. It returns up to limit users plus one (to tell whether
// there is a next page).
func scanIndex(tx Tx, ws string, ranges []*indexRange, byUser bool, limit int, pre func(value []byte) bool, keep func(entry string, u *User) bool) (indexPage, error) {
	c := userIndexOf(ws)
	var p indexPage
	key := func(e *Entry) string {
		if byUser {
			return entryUser(e.ID)
		}
		return e.ID
	}
	for read := 0; ; read++ {
		if read == indexScanMax {
			// Stopped: go on after the last entry read (every range's
			// entries up to it have been read).
			p.stop = p.lastRead
			return p, nil
		}
		var next *indexRange
		var nextKey string
		for _, r := range ranges {
			e, err := r.peek(tx, c)
			if err != nil {
				return p, err
			}
			if e != nil && (next == nil || key(e) < nextKey) {
				next, nextKey = r, key(e)
			}
		}
		if next == nil {
			return p, nil
		}
		e := next.buf[0]
		next.buf = next.buf[1:]
		p.lastRead = nextKey
		if pre != nil && !pre(e.Value) {
			continue
		}
		u, err := getUser(tx, ws, entryUser(e.ID))
		if errors.Is(err, ErrNotFound) {
			continue // the index is written with the user: cannot happen
		}
		if err != nil {
			return p, err
		}
		if !keep(e.ID, u) {
			continue
		}
		p.users = append(p.users, *u)
		p.at = append(p.at, nextKey)
		if len(p.users) > limit {
			return p, nil
		}
	}
}

// firstTerm reports whether entry is where u is listed in a search for
// prefix q: a user whose username and email both match is listed once, at
// the smaller of its matching terms.
func firstTerm(entry string, u *User, q string) bool {
	var terms []string
	for _, n := range []string{u.Username, u.Email} {
		if n != "" && strings.HasPrefix(CanonicalName(n), q) {
			terms = append(terms, termPrefix+indexTerm(n)+"\x00"+u.ID)
		}
	}
	return len(terms) > 0 && entry == slices.Min(terms)
}
