package module

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/apiusers/apiusers/authz"
)

// invalidationFeed is a store that carries cache invalidations between the
// Caddy instances sharing it (the Redis store, over pub/sub).
type invalidationFeed interface {
	Publish(ctx context.Context, c authz.Change) error
	Subscribe(ctx context.Context, apply func(authz.Change), resync func())
}

// fleet tells the other instances of a fleet what this one changed, and
// applies what they changed to this instance's cache. Publishing happens
// off the admin request, in order, from one goroutine; a change that cannot
// be published (queue full, Redis away) is logged, and the other instances
// still drop the stale principal within cache_ttl. A subscription that was
// lost and comes back flushes the whole cache, since changes may have been
// missed meanwhile.
type fleet struct {
	id     string // this instance, to skip its own changes coming back
	feed   invalidationFeed
	out    chan authz.Change
	logger *zap.Logger
	cancel context.CancelFunc
	subbed chan struct{} // closed when the subscriber ends
	sent   chan struct{} // closed when the publisher ends
	mu     sync.RWMutex  // guards closed against notify racing stop
	closed bool
}

// fleetQueue is how many published changes may wait to be sent.
const fleetQueue = 4096

// fleetPublishTimeout bounds one publish.
const fleetPublishTimeout = 2 * time.Second

func newFleet(feed invalidationFeed, logger *zap.Logger) *fleet {
	var id [12]byte
	_, _ = rand.Read(id[:])
	return &fleet{id: hex.EncodeToString(id[:]), feed: feed, out: make(chan authz.Change, fleetQueue), logger: logger}
}

// start runs the publisher and the subscriber until stop.
func (f *fleet) start(apply func(authz.Change), resync func()) {
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	f.subbed, f.sent = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(f.subbed)
		f.feed.Subscribe(ctx, func(c authz.Change) {
			if c.Origin != f.id { // this instance applied its own change already
				fleetReceived.Inc()
				if !c.At.IsZero() {
					fleetLag.Observe(max(time.Since(c.At), 0).Seconds())
				}
				apply(c)
			}
		}, func() {
			if c := f.logger.Check(zapcore.InfoLevel, "invalidation feed reconnected: flushing the principal cache"); c != nil {
				c.Write()
			}
			resync()
		})
	}()
	go func() {
		defer close(f.sent)
		for c := range f.out {
			pctx, cancel := context.WithTimeout(ctx, fleetPublishTimeout)
			err := f.feed.Publish(pctx, c)
			cancel()
			if err != nil {
				if ce := f.logger.Check(zapcore.WarnLevel, "publishing an invalidation failed; other instances catch up within cache_ttl"); ce != nil {
					ce.Write(zap.String("workspace", c.Workspace), zap.Int("users", len(c.Users)), zap.Error(err))
				}
			}
		}
	}()
}

// notify queues c for publishing; it never blocks (it is called on the
// admin request after the change committed).
func (f *fleet) notify(c authz.Change) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return
	}
	c.Origin = f.id
	c.At = time.Now()
	select {
	case f.out <- c:
	default:
		if ce := f.logger.Check(zapcore.WarnLevel, "invalidation queue full; other instances catch up within cache_ttl"); ce != nil {
			ce.Write(zap.String("workspace", c.Workspace))
		}
	}
}

// stop publishes what is queued (within the publish timeout each), ends
// the subscription and waits for both goroutines.
func (f *fleet) stop() {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	f.closed = true
	close(f.out)
	f.mu.Unlock()
	if f.cancel == nil {
		return
	}
	// Let the publisher send what is queued, then end the subscription.
	select {
	case <-f.sent:
	case <-time.After(fleetPublishTimeout):
	}
	f.cancel()
	<-f.sent
	<-f.subbed
}
