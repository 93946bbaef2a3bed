package authz

import (
	"context"
	"errors"
	"strings"
	"time"
)

// Keys' last_used_at is kept up to date off the request path: Authenticate
// queues a touch at most once a minute per key (per loaded principal), and
// one goroutine writes the queued touches. A touch that cannot be queued or
// written is dropped: last_used_at is a hint, never a reason to slow or fail
// a request.

// touchInterval is the least time between two updates of one key's
// last_used_at by one instance.
const touchInterval = 60 // seconds

type touch struct {
	ws, user, kid string
	at            time.Time
}

// startTouches starts the writer of last_used_at; Close stops it. Touches
// are gathered for up to touchFlush and written in one transaction per
// workspace, so a busy gateway costs the store a few writes a second.
func (s *Service) startTouches() {
	s.touches = make(chan touch, 4096)
	s.touchesDone = make(chan struct{})
	go func() {
		defer close(s.touchesDone)
		pending := map[string][]touch{}
		n := 0
		flush := func() {
			for ws, ts := range pending {
				s.writeTouches(ws, ts)
			}
			clear(pending)
			n = 0
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
				pending[t.ws] = append(pending[t.ws], t)
				if n++; n >= 512 {
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

func (s *Service) writeTouches(ws string, ts []touch) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.store.Update(ctx, ws, func(tx Tx) error {
		for _, t := range ts {
			if strings.HasPrefix(t.kid, "ses_") {
				if err := touchSession(tx, ws, t.user, t.kid, t.at); err != nil {
					return err
				}
				continue
			}
			k, err := getKey(tx, ws, t.user, t.kid)
			if errors.Is(err, ErrNotFound) {
				continue // revoked meanwhile: do not bring it back
			}
			if err != nil {
				return err
			}
			if k.LastUsedAt != nil && !t.at.After(*k.LastUsedAt) {
				continue
			}
			at := t.at
			k.LastUsedAt = &at
			if err := putRecord(tx, KeysCollection(ws, t.user), k.ID, k); err != nil {
				return err
			}
		}
		return nil
	})
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
	case s.touches <- touch{ws: p.Workspace, user: p.UserID, kid: cl.KeyID, at: now.UTC().Truncate(time.Second)}:
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

// touchSession sets the last_used_at of session token kid of user.
func touchSession(tx Tx, ws, user, kid string, at time.Time) error {
	var t tokenSession
	if err := getRecord(tx, KeysCollection(ws, user), kid, &t); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil // ended meanwhile: do not bring it back
		}
		return err
	}
	if t.LastUsedAt != nil && !at.After(*t.LastUsedAt) {
		return nil
	}
	t.LastUsedAt = &at
	return putRecord(tx, KeysCollection(ws, user), kid, &t)
}
