package authz

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Credentials' last_used_at is kept up to date off the request path:
// Authenticate queues a touch at most once a minute per credential (per
// loaded principal), and one goroutine writes the queued touches in
// batches. A touch that cannot be queued or written is dropped:
// last_used_at is a hint, never a reason to slow or fail a request.
//
// A credential's last use is a record of its own, beside the credential in
// its user's keys collection (UseID, UseValue): recording a use never reads
// or rewrites the credential, so a store can apply a whole batch without
// decoding a record (Toucher), and the gateway's one-round-trip load
// (LoadPrincipal) reads it with the credentials. Deleting a credential
// deletes its use record in the same transaction (deleteCredential), and a
// use is recorded only while its credential exists, so use records never
// outlive their credentials. Records written before use records existed
// keep their last use inside the credential (a key's "l"); reading takes
// the later of the two.

// touchInterval is the least time between two updates of one key's
// last_used_at by one instance.
const touchInterval = 60 // seconds

// Touch says that credential ID (a key_… or ses_… record of
// KeysCollection(Workspace, User)) was used at At, in Unix seconds.
type Touch struct {
	Workspace, User, ID string
	At                  int64
}

// Toucher is a Store that records credentials' uses natively, in a batch
// at a time: the writer of last_used_at hands each of its batches (up to a
// second of touches, of any workspaces) to Touch. Both stores implement
// it; for a store that does not, the Service writes the same records with
// one Update per workspace.
type Toucher interface {
	// Touch applies each touch t: when credential t.ID exists in
	// KeysCollection(t.Workspace, t.User), it sets the record UseID(t.ID)
	// of that collection to UseValue(t.ID, t.At), unless the record holds
	// t.At or a later time already (last uses never move backwards); a
	// touch of a missing credential writes nothing. Each touch is atomic
	// with its checks; a batch as a whole need not be (when Touch fails,
	// some touches may have been applied). It costs the backend a small
	// number of round trips whatever the batch's size, and may reorder ts.
	Touch(ctx context.Context, ts []Touch) error
}

// usePrefix starts the id of a use record: "use_" and the credential's id.
const usePrefix = "use_"

// UseID is the id of the use record of credential id.
func UseID(credential string) string { return usePrefix + credential }

// useHead is how every use record's value starts.
const useHead = `{"id":"` + usePrefix

// UseValue is the value of the use record of credential at at (Unix
// seconds): {"id":"use_<credential>","at":<at>}. It names itself, as the
// record contract asks (IDHead(UseID(credential))).
func UseValue(credential string, at int64) []byte {
	b := make([]byte, 0, len(useHead)+len(credential)+19)
	b = append(b, useHead...)
	b = append(b, credential...)
	b = append(b, `","at":`...)
	b = strconv.AppendInt(b, at, 10)
	return append(b, '}')
}

// ParseUse reads the value of a use record: the credential's id (a slice
// of v) and the time of its use; ok is false when v is no use record.
func ParseUse(v []byte) (credential []byte, at int64, ok bool) {
	if !bytes.HasPrefix(v, []byte(useHead)) {
		return nil, 0, false
	}
	rest := v[len(useHead):]
	i := bytes.IndexByte(rest, '"')
	if i <= 0 || !bytes.HasPrefix(rest[i:], []byte(`","at":`)) || rest[len(rest)-1] != '}' {
		return nil, 0, false
	}
	digits := rest[i+7 : len(rest)-1]
	if len(digits) == 0 || len(digits) > 18 {
		return nil, 0, false
	}
	var n int64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return nil, 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return rest[:i], n, true
}

// isUse reports whether v is the value of a use record.
func isUse(v []byte) bool { return bytes.HasPrefix(v, []byte(useHead)) }

// laterUse sets *t to the time of use at (Unix seconds) when that is
// later than *t (or *t is nil).
func laterUse(t **time.Time, at int64) {
	if u := time.Unix(at, 0).UTC(); *t == nil || u.After(**t) {
		*t = &u
	}
}

// usesIn returns the times of the use records among es, by credential id.
func usesIn(es []Entry) map[string]int64 {
	var m map[string]int64
	for _, e := range es {
		if !strings.HasPrefix(e.ID, usePrefix) {
			continue
		}
		if cred, at, ok := ParseUse(e.Value); ok && string(cred) == e.ID[len(usePrefix):] {
			if m == nil {
				m = make(map[string]int64)
			}
			m[e.ID[len(usePrefix):]] = at
		}
	}
	return m
}

// useOf returns the time of the use record of credential id in c, or 0.
func useOf(tx Tx, c Collection, id string) (int64, error) {
	v, err := tx.Get(c, UseID(id))
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if cred, at, ok := ParseUse(v); ok && string(cred) == id {
		return at, nil
	}
	return 0, nil
}

// deleteCredential deletes credential id (a key or a session token) of
// user userID, and its use record.
func deleteCredential(tx Tx, ws, userID, id string) error {
	c := KeysCollection(ws, userID)
	if err := tx.Delete(c, id); err != nil {
		return err
	}
	return tx.Delete(c, UseID(id))
}

// touchIn applies touch t in tx as Toucher.Touch does.
func touchIn(tx Tx, t Touch) error {
	c := KeysCollection(t.Workspace, t.User)
	if _, err := tx.Get(c, t.ID); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil // revoked or ended meanwhile: do not bring it back
		}
		return err
	}
	at, err := useOf(tx, c, t.ID)
	if err != nil || at >= t.At {
		return err
	}
	return tx.Put(c, UseID(t.ID), UseValue(t.ID, t.At))
}

// TouchByUpdate returns the Toucher the Service uses for a store that is
// none: one Update per workspace of a batch, with a Get of the credential
// and of its use record and a Put per touch. It writes the same records a
// store's own Toucher must (storetest.RunTouch runs it against each store).
func TouchByUpdate(st Store) Toucher { return updateToucher{st} }

type updateToucher struct{ st Store }

func (u updateToucher) Touch(ctx context.Context, ts []Touch) error {
	slices.SortFunc(ts, func(a, b Touch) int { return cmp.Compare(a.Workspace, b.Workspace) })
	var errs []error
	for i := 0; i < len(ts); {
		j := i + 1
		for j < len(ts) && ts[j].Workspace == ts[i].Workspace {
			j++
		}
		batch := ts[i:j]
		errs = append(errs, u.st.Update(ctx, batch[0].Workspace, func(tx Tx) error {
			for _, t := range batch {
				if err := touchIn(tx, t); err != nil {
					return err
				}
			}
			return nil
		}))
		i = j
	}
	return errors.Join(errs...)
}

// touchBatch is the most touches the writer gathers before it writes them.
const touchBatch = 512

// startTouches starts the writer of last_used_at; Close stops it. Touches
// are gathered for up to touchFlush (or touchBatch of them) and handed to
// the store's Toucher at once, so a busy gateway costs the store a few
// round trips a second.
func (s *Service) startTouches() {
	s.touches = make(chan Touch, 4096)
	s.touchesDone = make(chan struct{})
	go func() {
		defer close(s.touchesDone)
		pending := make([]Touch, 0, touchBatch)
		flush := func() {
			if len(pending) > 0 {
				s.writeTouches(pending)
				clear(pending)
				pending = pending[:0]
			}
		}
		tick := time.NewTicker(touchFlush)
		defer tick.Stop()
		for {
			select {
			case t, ok := <-s.touches:
				if !ok {
					flush()
					return
				}
				if pending = append(pending, t); len(pending) >= touchBatch {
					flush()
				}
			case <-tick.C:
				flush()
			}
		}
	}()
}

// touchFlush is how long touches are gathered before they are written.
const touchFlush = time.Second

func (s *Service) writeTouches(ts []Touch) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.toucher.Touch(ctx, ts)
}

// queueTouch records that key cl was used by p at now, if it is due.
func (s *Service) queueTouch(p *Principal, ks *keyState, cl *Claims, now time.Time) {
	if s.touches == nil || !ks.touch(now.Unix(), touchInterval) {
		return
	}
	s.touchMu.RLock()
	defer s.touchMu.RUnlock()
	if s.touchClosed {
		return
	}
	select {
	case s.touches <- Touch{Workspace: p.Workspace, User: p.UserID, ID: cl.KeyID, At: now.Unix()}:
	default:
	}
}

// Close stops the service's background work (pending last_used_at updates
// are written first). The store and the cache are the caller's to close.
func (s *Service) Close() {
	s.touchMu.Lock()
	if s.touchClosed || s.touches == nil {
		s.touchMu.Unlock()
		return
	}
	s.touchClosed = true
	close(s.touches)
	s.touchMu.Unlock()
	<-s.touchesDone
	if s.signIns != nil {
		s.signIns.close()
	}
}
