package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"time"

	"github.com/apiusers/apiusers/authz"
	"github.com/redis/go-redis/v9"
)

// Fleet invalidation: every instance publishes the changes it commits on
// the channel <prefix>:invalidate and applies what the others publish to
// its cache. Pub/sub delivers at most once: a message sent while a
// subscriber is disconnected is lost, so a subscriber that reconnects must
// assume it missed some and flush its cache (resync).
const (
	// healthEvery is how long Subscribe waits for a message before it
	// pings the server; a ping unanswered for as long again means the
	// connection is dead even if TCP has not noticed.
	healthEvery = 15 * time.Second
	// Backoff between subscription attempts while the server is away.
	resubscribeBase = 50 * time.Millisecond
	resubscribeCap  = 2 * time.Second
)

// changeMessage is the wire form of authz.Change:
// {"from":"<instance>","ws":"acme","users":[…],"at":<Unix ns>}.
type changeMessage struct {
	Origin    string   `json:"from,omitempty"`
	Workspace string   `json:"ws"`
	Users     []string `json:"users,omitempty"`
	At        int64    `json:"at,omitempty"` // Unix nanoseconds of the commit
}

// Channel is the pub/sub channel of invalidations.
func (s *Store) Channel() string { return s.prefix + ":invalidate" }

// Publish tells every subscribed instance (Subscribe) about c. Errors
// reaching the server wrap authz.ErrUnavailable.
func (s *Store) Publish(ctx context.Context, c authz.Change) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return authz.Unavailable(errors.New("redis store is closed"))
	}
	m := changeMessage{Origin: c.Origin, Workspace: c.Workspace, Users: c.Users}
	if !c.At.IsZero() {
		m.At = c.At.UnixNano()
	}
	payload, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encoding change of workspace %q: %w", c.Workspace, err)
	}
	if err := s.client.Publish(ctx, s.Channel(), payload).Err(); err != nil {
		return s.mapErr(fmt.Sprintf("publishing change of workspace %q", c.Workspace), err)
	}
	return nil
}

// Subscribe receives what Publish sends, until ctx is done, and calls apply
// for every change, in order, from one goroutine (the caller's). Whenever
// the subscription comes back after it was lost (a receive error, a dead
// connection, the server restarting or unreachable when Subscribe started)
// it calls resync, because changes may have been missed meanwhile; it does
// not call it for the first subscription. A message it cannot decode also
// calls resync. Subscribe returns when ctx is done or the store is closed,
// having closed its connection.
//
// Each subscription is its own go-redis PubSub: when one fails, Subscribe
// closes it and, after a backoff (50ms doubling to 2s), subscribes anew,
// rather than letting the PubSub reconnect in place, so a receive error
// and a silently dead connection take the same path.
func (s *Store) Subscribe(ctx context.Context, apply func(authz.Change), resync func()) {
	lost := false // a subscription failed since the last one came up
	for backoff := resubscribeBase; ; {
		if ctx.Err() != nil || s.closed.Load() {
			return
		}
		up := s.listen(ctx, apply, resync, lost)
		if ctx.Err() != nil || s.closed.Load() {
			return
		}
		lost = true
		if up {
			backoff = resubscribeBase
		}
		t := time.NewTimer(backoff/2 + rand.N(backoff/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, resubscribeCap)
	}
}

// listen runs one subscription until it fails or ctx is done, and closes
// it. up reports whether the subscription was confirmed; resync is called
// at that moment when lost is set.
func (s *Store) listen(ctx context.Context, apply func(authz.Change), resync func(), lost bool) (up bool) {
	ps := s.client.Subscribe(ctx, s.Channel())
	// Receive does not watch ctx: closing the PubSub unblocks it.
	closed := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = ps.Close()
		close(closed)
	})
	defer func() {
		if stop() {
			_ = ps.Close()
		} else {
			<-closed
		}
	}()
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, healthEvery)
		if err != nil {
			if isTimeout(err) && !pinged && ctx.Err() == nil {
				// Quiet for a while: make the server answer something.
				if ps.Ping(ctx) != nil {
					return up
				}
				pinged = true
				continue
			}
			return up
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" && !up {
				up = true
				if lost {
					resync()
				}
			}
		case *redis.Message:
			var c changeMessage
			if err := json.Unmarshal([]byte(m.Payload), &c); err != nil {
				resync() // from an instance speaking another format
				continue
			}
			ch := authz.Change{Origin: c.Origin, Workspace: c.Workspace, Users: c.Users}
			if c.At != 0 {
				ch.At = time.Unix(0, c.At)
			}
			apply(ch)
		}
	}
}

func isTimeout(err error) bool {
	var nerr net.Error
	return errors.As(err, &nerr) && nerr.Timeout()
}
