package redisstore

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/redisstore/redistest"
	"github.com/apiusers/apiusers/internal/goroutines"
)

// subscriber runs Subscribe on s in the background and records what it
// sees.
type subscriber struct {
	changes chan authz.Change
	resyncs chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}
}

func subscribe(t *testing.T, s *Store) *subscriber {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sub := &subscriber{changes: make(chan authz.Change, 100), resyncs: make(chan struct{}, 100), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(sub.done)
		s.Subscribe(ctx,
			func(c authz.Change) { sub.changes <- c },
			func() { sub.resyncs <- struct{}{} })
	}()
	t.Cleanup(sub.stop)
	return sub
}

// stop cancels Subscribe and waits for it to return.
func (sub *subscriber) stop() {
	sub.cancel()
	<-sub.done
}

// waitSubscribed waits until the server (every master of a cluster) counts
// n subscribers of s's channel.
func waitSubscribed(t *testing.T, s *Store, n int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := numSub(s)
		if err == nil && got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("channel %s has %d subscribers (%v), want %d", s.Channel(), got, err, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// numSub counts the subscribers of s's channel; a cluster node counts only
// its own.
func numSub(s *Store) (int64, error) {
	ctx := context.Background()
	cc, ok := s.Client().(*redis.ClusterClient)
	if !ok {
		got, err := s.Client().PubSubNumSub(ctx, s.Channel()).Result()
		return got[s.Channel()], err
	}
	var total atomic.Int64
	err := cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		got, err := node.PubSubNumSub(ctx, s.Channel()).Result()
		total.Add(got[s.Channel()])
		return err
	})
	return total.Load(), err
}

func (sub *subscriber) expect(t *testing.T, want authz.Change, within time.Duration) {
	t.Helper()
	select {
	case got := <-sub.changes:
		if got.Workspace != want.Workspace || !slices.Equal(got.Users, want.Users) {
			t.Fatalf("received %+v, want %+v", got, want)
		}
	case <-time.After(within):
		t.Fatalf("%+v not received within %s", want, within)
	}
}

func (sub *subscriber) expectResync(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case <-sub.resyncs:
	case <-time.After(within):
		t.Fatalf("no resync within %s", within)
	}
}

func (sub *subscriber) expectNoResync(t *testing.T) {
	t.Helper()
	select {
	case <-sub.resyncs:
		t.Fatal("resync called without a lost subscription")
	default:
	}
}

// TestPublishSubscribe runs two instances on one server: B applies what A
// publishes, resyncs once the server comes back from a restart, and then
// receives again.
func TestPublishSubscribe(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	opts := Options{URL: srv.URL(), DialTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond}
	a, b := newStore(t, opts), newStore(t, opts)
	ctx := context.Background()
	sub := subscribe(t, b)
	waitSubscribed(t, a, 1)

	for _, c := range []authz.Change{
		{Workspace: "acme", Users: []string{"usr_1", "usr_2"}},
		{Workspace: "acme"}, // the whole workspace
		{Workspace: "other", Users: []string{"usr_3"}},
	} {
		start := time.Now()
		if err := a.Publish(ctx, c); err != nil {
			t.Fatal(err)
		}
		sub.expect(t, c, 100*time.Millisecond)
		t.Logf("%+v applied on B %s after A published it", c, time.Since(start))
	}
	sub.expectNoResync(t)

	srv.Stop()
	if err := a.Publish(ctx, authz.Change{Workspace: "acme"}); !errors.Is(err, authz.ErrUnavailable) {
		t.Fatalf("Publish with the server down: %v, want ErrUnavailable", err)
	}
	time.Sleep(300 * time.Millisecond) // B notices and retries a few times
	sub.expectNoResync(t)              // not while the server is away
	srv.Restart()
	sub.expectResync(t, 5*time.Second)
	waitSubscribed(t, a, 1)
	c := authz.Change{Workspace: "acme", Users: []string{"usr_9"}}
	if err := a.Publish(ctx, c); err != nil {
		t.Fatal(err)
	}
	sub.expect(t, c, 100*time.Millisecond)
	sub.expectNoResync(t)
}

// TestSubscribeBeforeServer starts Subscribe with the server down: once it
// comes up the subscription counts as re-established, since changes may
// have been published meanwhile.
func TestSubscribeBeforeServer(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	srv.Stop()
	s := newStore(t, Options{URL: srv.URL(), DialTimeout: 200 * time.Millisecond})
	sub := subscribe(t, s)
	time.Sleep(200 * time.Millisecond)
	srv.Restart()
	sub.expectResync(t, 5*time.Second)
}

// TestSubscribeReleasesEverything cancels Subscribe and checks that its
// goroutines are gone and the server sees no subscriber. It counts the
// goroutines in the Redis client and this package's store (subscriptions'
// among them), so it does not run in parallel: the other tests' clients
// and subscriptions would come and go in the count.
func TestSubscribeReleasesEverything(t *testing.T) {
	srv := redistest.Start(t)
	s := newStore(t, Options{URL: srv.URL()})
	if err := s.Client().Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	before := storeGoroutines()
	for range 5 {
		sub := subscribe(t, s)
		waitSubscribed(t, s, 1)
		if err := s.Publish(context.Background(), authz.Change{Workspace: "acme"}); err != nil {
			t.Fatal(err)
		}
		sub.expect(t, authz.Change{Workspace: "acme"}, time.Second)
		sub.stop()
		waitSubscribed(t, s, 0)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		n := storeGoroutines()
		if n <= before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines of the store and its client after 5 canceled subscriptions, %d before:\n%s", n, before, strings.Join(goroutines.Stacks(), "\n\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// storeGoroutines counts the goroutines running code of the Redis client
// or of this package's Store (a subscription's, or the test's own
// subscriber's), whatever else the process runs.
func storeGoroutines() int {
	count := 0
	for _, g := range goroutines.Stacks() {
		if strings.Contains(g, "github.com/redis/go-redis/") ||
			strings.Contains(g, "redisstore.(*Store).") ||
			strings.Contains(g, "redisstore.subscribe.") {
			count++
		}
	}
	return count
}

// TestSubscribeMalformedMessage resyncs on a message it cannot decode and
// keeps going.
func TestSubscribeMalformedMessage(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := newStore(t, Options{URL: srv.URL(), Prefix: "p"})
	ctx := context.Background()
	sub := subscribe(t, s)
	waitSubscribed(t, s, 1)
	if err := s.Client().Publish(ctx, "p:invalidate", "not json").Err(); err != nil {
		t.Fatal(err)
	}
	sub.expectResync(t, time.Second)
	if err := s.Publish(ctx, authz.Change{Workspace: "acme"}); err != nil {
		t.Fatal(err)
	}
	sub.expect(t, authz.Change{Workspace: "acme"}, time.Second)
}

// TestPublishPayload pins the wire format other instances decode.
func TestPublishPayload(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := newStore(t, Options{URL: srv.URL(), Prefix: "p"})
	ctx := context.Background()
	ps := s.Client().Subscribe(ctx, "p:invalidate")
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil { // the confirmation
		t.Fatal(err)
	}
	for c, want := range map[*authz.Change]string{
		{Workspace: "acme", Users: []string{"usr_1"}}: `{"ws":"acme","users":["usr_1"]}`,
		{Workspace: "acme"}:                           `{"ws":"acme"}`,
	} {
		if err := s.Publish(ctx, *c); err != nil {
			t.Fatal(err)
		}
		m, err := ps.ReceiveMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if m.Payload != want {
			t.Errorf("Publish(%+v) sent %s, want %s", *c, m.Payload, want)
		}
	}
	_ = s.Close()
	if err := s.Publish(ctx, authz.Change{Workspace: "acme"}); !errors.Is(err, authz.ErrUnavailable) {
		t.Fatalf("Publish after Close: %v, want ErrUnavailable", err)
	}
}
