// Package recorder writes API messages (the calls a route records)
// asynchronously, in batches, to an authz.MessageStore, and sweeps the
// messages past their age bound for every user. Recording never blocks
// the caller: a message that cannot be queued or stored is dropped and
// counted.
package recorder

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apiusers/apiusers/authz"
)

// sweepChunk is the most messages one SweepMessages call of the recorder
// deletes; it calls again while a call deletes that many.
const sweepChunk = 10000

// sweepPause is the recorder's pause between two chunks of one sweep.
const sweepPause = 100 * time.Millisecond

// Recorder writes messages asynchronously in batches. Record never blocks:
// when the queue is full, or a batch cannot be stored, the messages are
// dropped and counted.
type Recorder struct {
	store   authz.MessageStore
	keep    authz.Retention
	queue   chan authz.Message
	dropped atomic.Uint64
	onDrop  func(n int)
	onBatch func(n int, err error)
	done    chan struct{}
	swept   chan struct{} // closed when the sweeper stopped
	closing chan struct{} // closed by Close: stop lingering and sweeping
	cancel  context.CancelFunc
	onSweep func(n int, err error)
	// mu guards closed against Record racing Close.
	mu     sync.RWMutex
	closed bool
}

// Config configures a Recorder.
type Config struct {
	// Queue is how many messages may wait to be written. Default: 65536.
	Queue int
	// Batch is the most messages written in one store call. Default: 256.
	Batch int
	// Keep is the retention applied on write.
	Keep authz.Retention
	// OnDrop is called (from the writer goroutine or Record) with the number
	// of messages lost.
	OnDrop func(n int)
	// Linger is how long the writer lets a batch that is not full fill up
	// before writing it, so that a store is written to in fewer, larger
	// batches. Default: 50ms.
	Linger time.Duration
	// OnBatch is called from the writer goroutine after each store call
	// with the number of messages in the batch and the store's error (nil
	// when they were stored).
	OnBatch func(n int, err error)
	// SweepEvery is how often the messages older than Keep.MaxAge are
	// deleted for every user, including those who no longer call (when
	// Keep.MaxAge is set and the store is an authz.MessageSweeper). The
	// first sweep runs at start. Default: MaxAge/100, between 1 minute and
	// 1 hour.
	SweepEvery time.Duration
	// OnSweep is called after each sweep with the number of messages
	// deleted and the store's error.
	OnSweep func(n int, err error)
}

// New starts a Recorder writing to ms; Close stops it after writing what
// is queued.
func New(ms authz.MessageStore, cfg Config) *Recorder {
	if cfg.Queue <= 0 {
		cfg.Queue = 65536
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 256
	}
	if cfg.Linger <= 0 {
		cfg.Linger = 50 * time.Millisecond
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Recorder{
		store: ms, keep: cfg.Keep, queue: make(chan authz.Message, cfg.Queue),
		onDrop: cfg.OnDrop, onBatch: cfg.OnBatch, onSweep: cfg.OnSweep,
		done: make(chan struct{}), swept: make(chan struct{}), closing: make(chan struct{}), cancel: cancel,
	}
	go r.run(ctx, cfg.Batch, cfg.Linger)
	sw, ok := ms.(authz.MessageSweeper)
	if !ok || cfg.Keep.MaxAge <= 0 {
		close(r.swept)
		return r
	}
	every := cfg.SweepEvery
	if every <= 0 {
		every = min(max(cfg.Keep.MaxAge/100, time.Minute), time.Hour)
	}
	go r.sweep(ctx, sw, every)
	return r
}

// sweep deletes the messages older than the age bound, every every, until
// Close. A sweep that fails (the store is away) is tried again at the next
// tick.
func (r *Recorder) sweep(ctx context.Context, sw authz.MessageSweeper, every time.Duration) {
	defer close(r.swept)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		total := 0
		var err error
		for {
			var n int
			sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			n, err = sw.SweepMessages(sctx, time.Now().Add(-r.keep.MaxAge), sweepChunk)
			cancel()
			total += n
			if err != nil || n < sweepChunk {
				break
			}
			// Catching up (after a long downtime, or a lowered bound):
			// leave the store to the writer between chunks.
			select {
			case <-r.closing:
				return
			case <-time.After(sweepPause):
			}
		}
		if r.onSweep != nil {
			r.onSweep(total, err)
		}
		select {
		case <-tick.C:
		case <-r.closing:
			return
		}
	}
}

// Record queues m. It never blocks. A message without an id gets
// authz.NewMessageID(m.Time) in the writer goroutine, off the caller's path.
func (r *Recorder) Record(m authz.Message) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		r.drop(1)
		return
	}
	select {
	case r.queue <- m:
	default:
		r.drop(1)
	}
}

// Dropped is the number of messages lost so far.
func (r *Recorder) Dropped() uint64 { return r.dropped.Load() }

func (r *Recorder) drop(n int) {
	r.dropped.Add(uint64(n))
	if r.onDrop != nil {
		r.onDrop(n)
	}
}

func (r *Recorder) run(ctx context.Context, batch int, linger time.Duration) {
	defer close(r.done)
	buf := make([]authz.Message, 0, batch)
	// fill adds what is queued to buf, without waiting; open is false once
	// the queue is closed and empty.
	fill := func() (open bool) {
		for len(buf) < batch {
			select {
			case m, ok := <-r.queue:
				if !ok {
					return false
				}
				buf = append(buf, m)
			default:
				return true
			}
		}
		return true
	}
	var wait *time.Timer
	for m := range r.queue {
		buf = append(buf[:0], m)
		// A batch that is not full yet gets linger to fill. The writer
		// sleeps rather than waits on the queue meanwhile, so busy
		// producers hand messages over without waking it each time.
		if fill() && len(buf) < batch && linger > 0 {
			if wait == nil {
				wait = time.NewTimer(linger)
			} else {
				wait.Reset(linger)
			}
			select {
			case <-wait.C:
			case <-r.closing:
				wait.Stop()
			}
			fill()
		}
		for i := range buf {
			if buf[i].ID == "" {
				buf[i].ID = authz.NewMessageID(buf[i].Time)
			}
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := r.store.AppendMessages(wctx, buf, r.keep)
		cancel()
		if err != nil {
			r.drop(len(buf))
		}
		if r.onBatch != nil {
			r.onBatch(len(buf), err)
		}
	}
}

// Close writes what is queued (for at most the context's time) and stops.
func (r *Recorder) Close(ctx context.Context) {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.queue)
		close(r.closing)
	}
	r.mu.Unlock()
	select {
	case <-r.done:
	case <-ctx.Done():
		r.cancel()
		<-r.done
	}
	r.cancel() // a sweep in progress stops
	<-r.swept
}
