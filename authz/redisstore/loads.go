package redisstore

import (
	"context"
	"errors"
	"sync"

	"github.com/apiusers/apiusers/authz"
	"github.com/redis/go-redis/v9"
)

// Batched loads. A busy gateway's cache misses come many at once, each a
// run of the loadPrincipal script, and what a round trip costs the server
// and the client (system calls, wake-ups) is far more than the script's
// own work. So concurrent loads share round trips: at most loadSenders
// round trips of loads are in flight at once, and a load that comes while
// they all are queues for the next one, which carries every run queued, up
// to maxLoadBatch, in one pipeline.
//
// A load that finds a sender free and nothing queued is its own sender: it
// sends its run from its own goroutine, so a lone miss costs no hand-off
// to another goroutine and back (and no new goroutine's stack to grow).
// When its round trip ends with loads queued meanwhile, it hands its turn
// to a sender goroutine that sends them, batch after batch, and ends when
// the queue is empty: an idle store runs no goroutine. Each load still
// costs one round trip.
const (
	// loadSenders bounds the round trips of loads in flight at once.
	loadSenders = 2
	// maxLoadBatch bounds the runs of one pipeline.
	maxLoadBatch = 64
)

// loadCall is one load handed to a sender: the script run, and its reply
// once done is signalled.
type loadCall struct {
	keys []string
	args []any
	cmd  *redis.Cmd
	done chan struct{} // one value when cmd is set
}

var loadCalls = sync.Pool{New: func() any { return &loadCall{done: make(chan struct{}, 1)} }}

// loads is the queue of loads and its senders.
type loads struct {
	mu      sync.Mutex
	queue   []*loadCall
	senders int  // round trips of loads in flight, or goroutines about to send one
	closed  bool // by Close: no more loads
}

var errStoreClosed = errors.New("redis store is closed")

// load runs the loadPrincipal script with keys and args, by itself when
// a sender is free and nothing waits, else through a sender, and returns
// its reply. A run sent by itself goes with ctx (its values reach the
// client's hooks; an end of ctx stops it only before it is sent); a queued
// load returns when ctx ends, its run going with the batch regardless.
func (s *Store) load(ctx context.Context, keys []string, args ...any) ([]any, error) {
	l := &s.loads
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, authz.Unavailable(errStoreClosed)
	}
	if l.senders < loadSenders && len(l.queue) == 0 {
		l.senders++
		l.mu.Unlock()
		defer s.endTurn() // even if a client hook panics: the turn is never lost
		return loadPrincipal.Run(ctx, s.client, keys, args...).Slice()
	}
	c := loadCalls.Get().(*loadCall)
	c.keys, c.args = keys, args
	l.queue = append(l.queue, c)
	if l.senders < loadSenders {
		l.senders++
		go s.sendLoads()
	}
	l.mu.Unlock()
	select {
	case <-c.done:
	case <-ctx.Done():
		// The sender still answers c (and c is not reused): give up.
		return nil, ctx.Err()
	}
	res, err := c.cmd.Slice()
	*c = loadCall{done: c.done}
	loadCalls.Put(c)
	return res, err
}

// endTurn ends a load's own round trip: the loads queued meanwhile get a
// sender, which takes the turn over; with none queued, the turn is free.
func (s *Store) endTurn() {
	l := &s.loads
	l.mu.Lock()
	if len(l.queue) > 0 {
		go s.sendLoads()
	} else {
		l.senders--
	}
	l.mu.Unlock()
}

// sendLoads is one sender: it sends what is queued, batch after batch,
// until the queue is empty.
func (s *Store) sendLoads() {
	l := &s.loads
	var batch []*loadCall
	var cmds []*redis.Cmd
	for {
		l.mu.Lock()
		n := min(len(l.queue), maxLoadBatch)
		if n == 0 {
			l.senders--
			l.mu.Unlock()
			return
		}
		batch = append(batch[:0], l.queue[:n]...)
		rest := copy(l.queue, l.queue[n:])
		clear(l.queue[rest:])
		l.queue = l.queue[:rest]
		l.mu.Unlock()
		cmds = s.sendBatch(batch, cmds[:0])
		for i, c := range batch {
			c.cmd = cmds[i]
			c.done <- struct{}{}
			batch[i], cmds[i] = nil, nil
		}
	}
}

// sendBatch sends the runs of batch in one pipeline (one command when it
// holds one) and returns their replies, appended to cmds. Runs the server
// does not know the script for (after a restart or SCRIPT FLUSH) go
// again with EVAL, which caches it. The client's timeouts bound it, not
// the loads' contexts (a batch carries several).
func (s *Store) sendBatch(batch []*loadCall, cmds []*redis.Cmd) []*redis.Cmd {
	ctx := context.Background()
	if len(batch) == 1 {
		return append(cmds, loadPrincipal.Run(ctx, s.client, batch[0].keys, batch[0].args...))
	}
	_, _ = s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, c := range batch {
			cmds = append(cmds, loadPrincipal.EvalSha(ctx, p, c.keys, c.args...))
		}
		return nil
	})
	var again []int
	for i, cmd := range cmds {
		if redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
			again = append(again, i)
		}
	}
	if len(again) > 0 {
		_, _ = s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, i := range again {
				cmds[i] = loadPrincipal.Eval(ctx, p, batch[i].keys, batch[i].args...)
			}
			return nil
		})
	}
	return cmds
}

// stopLoads fails the loads still queued and takes no more (Close); the
// batches in flight end with the client.
func (s *Store) stopLoads() {
	l := &s.loads
	l.mu.Lock()
	l.closed = true
	q := l.queue
	l.queue = nil
	l.mu.Unlock()
	for _, c := range q {
		c.cmd = redis.NewCmd(context.Background())
		c.cmd.SetErr(authz.Unavailable(errStoreClosed))
		c.done <- struct{}{}
	}
}
