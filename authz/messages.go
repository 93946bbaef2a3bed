package authz

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Message is one recorded call of an API user (an "API message").
type Message struct {
	ID         string    `json:"id"`
	Workspace  string    `json:"workspace"`
	UserID     string    `json:"user_id"`
	KeyID      string    `json:"key_id"`
	Time       time.Time `json:"time"`
	Method     string    `json:"method"`
	Path       string    `json:"path"`
	Status     int       `json:"status"`
	DurationMS float64   `json:"duration_ms"`
	BytesIn    int64     `json:"bytes_in"`
	BytesOut   int64     `json:"bytes_out"`
	ClientIP   string    `json:"client_ip"`
	// Body is the start of the request body, when the route records bodies.
	Body string `json:"body,omitempty"`
	// BodyTruncated is true when the body was longer than what was kept.
	BodyTruncated bool `json:"body_truncated,omitempty"`
}

// MessageQuery selects messages of one workspace, newest first.
type MessageQuery struct {
	// UserID restricts to one user's messages ("" = every user).
	UserID string
	// Since and Until bound the message time (zero = unbounded); Since is
	// inclusive, Until exclusive.
	Since, Until time.Time
	// After is the id of the last message of the previous page.
	After string
	Limit int
}

// Retention bounds what is kept of each user's messages.
type Retention struct {
	// MaxPerUser keeps at most this many messages per user (0 = no bound).
	MaxPerUser int
	// MaxAge drops messages older than this (0 = no bound).
	MaxAge time.Duration
}

// MessageStore keeps API messages. Both stores implement it; it is apart
// from Store because messages are written in bulk, off the request path,
// and need no transactions with the rest.
type MessageStore interface {
	// AppendMessages stores msgs (ids already set, newest-first ids from
	// NewMessageID) and applies retention to the users they belong to.
	AppendMessages(ctx context.Context, msgs []Message, keep Retention) error
	// ListMessages returns up to q.Limit messages, newest first, costing
	// O(page) when q.UserID is set.
	ListMessages(ctx context.Context, ws string, q MessageQuery) ([]Message, error)
	// EraseMessages deletes every message of user userID.
	EraseMessages(ctx context.Context, ws, userID string) error
}

// NewMessageID makes a message id that sorts newest first.
func NewMessageID(t time.Time) string { return newestFirstID("msg_", t) }

// ListMessages lists a workspace's messages, newest first. A caller without
// messages.read sees only its own, whatever user it asks for.
func (s *Service) ListMessages(ctx context.Context, actor *Principal, ws string, q MessageQuery, page Page) ([]Message, string, error) {
	ms, ok := s.store.(MessageStore)
	if !ok {
		return nil, "", errf(ErrUnavailable, "this store does not keep messages")
	}
	if !actor.InWorkspace(ws) {
		return nil, "", forbidden("not a member of workspace %s", ws)
	}
	if !actor.HasPermission(PermMessagesRead) {
		if !actor.HasPermission(PermMessagesRead + OwnSuffix) {
			return nil, "", forbidden("reading messages needs %s", PermMessagesRead)
		}
		q.UserID = actor.UserID
	}
	page, after, err := page.normalize()
	if err != nil {
		return nil, "", err
	}
	if _, err := s.workspaceExists(ctx, ws); err != nil {
		return nil, "", err
	}
	q.After, q.Limit = after, page.Limit+1
	out, err := ms.ListMessages(ctx, ws, q)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(out) > page.Limit {
		out = out[:page.Limit]
		next = encodeCursor(out[len(out)-1].ID)
	}
	return out, next, nil
}

// MessageSweeper is a MessageStore that can apply an age bound to every
// user at once, so that the messages of a user who stopped calling age out
// too (AppendMessages applies retention only to the users it writes for).
type MessageSweeper interface {
	// SweepMessages deletes messages older than before (at millisecond
	// precision) of every user of every workspace, at most limit of them
	// (limit > 0), and returns how many it deleted. Each deletion removes
	// a message from every index at once.
	SweepMessages(ctx context.Context, before time.Time, limit int) (int, error)
}

// sweepChunk is the most messages one SweepMessages call of the recorder
// deletes; it calls again while a call deletes that many.
const sweepChunk = 10000

// sweepPause is the recorder's pause between two chunks of one sweep.
const sweepPause = 100 * time.Millisecond

// Recorder writes messages asynchronously in batches. Record never blocks:
// when the queue is full, or a batch cannot be stored, the messages are
// dropped and counted.
type Recorder struct {
	store   MessageStore
	keep    Retention
	queue   chan Message
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

// RecorderConfig configures a Recorder.
type RecorderConfig struct {
	// Queue is how many messages may wait to be written. Default: 65536.
	Queue int
	// Batch is the most messages written in one store call. Default: 256.
	Batch int
	// Keep is the retention applied on write.
	Keep Retention
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
	// Keep.MaxAge is set and the store is a MessageSweeper). The first
	// sweep runs at start. Default: MaxAge/100, between 1 minute and 1
	// hour.
	SweepEvery time.Duration
	// OnSweep is called after each sweep with the number of messages
	// deleted and the store's error.
	OnSweep func(n int, err error)
}

// NewRecorder starts a Recorder writing to ms; Close stops it after
// writing what is queued.
func NewRecorder(ms MessageStore, cfg RecorderConfig) *Recorder {
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
		store: ms, keep: cfg.Keep, queue: make(chan Message, cfg.Queue),
		onDrop: cfg.OnDrop, onBatch: cfg.OnBatch, onSweep: cfg.OnSweep,
		done: make(chan struct{}), swept: make(chan struct{}), closing: make(chan struct{}), cancel: cancel,
	}
	go r.run(ctx, cfg.Batch, cfg.Linger)
	sw, ok := ms.(MessageSweeper)
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
func (r *Recorder) sweep(ctx context.Context, sw MessageSweeper, every time.Duration) {
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
// NewMessageID(m.Time) in the writer goroutine, off the caller's path.
func (r *Recorder) Record(m Message) {
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
	buf := make([]Message, 0, batch)
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
				buf[i].ID = NewMessageID(buf[i].Time)
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

// Message ids and time windows. Ids sort newest first (NewMessageID), so a
// time window is an id range and a store lists a window in O(page).

const messageIDPrefix = "msg_"

// messageTimePrefix is the part of a message id that encodes t's millisecond.
func messageTimePrefix(t time.Time) string { return NewMessageID(t)[:len(messageIDPrefix)+10] }

// successor returns the smallest string greater than every string starting
// with prefix (whose last byte is below 0xff, as in ids).
func successor(prefix string) string {
	b := []byte(prefix)
	b[len(b)-1]++
	return string(b)
}

// IDRange turns q into the message ids it may list: from (inclusive) to to
// (exclusive). Until (exclusive, the newest time allowed) sets the start
// and Since (inclusive, the oldest) the end; both are exact to the
// millisecond, and Contains decides within the bounds' own milliseconds.
// After moves the start past the previous page's last id.
func (q MessageQuery) IDRange() (from, to string) {
	from, to = messageIDPrefix, successor(messageIDPrefix)
	if !q.Until.IsZero() {
		from = messageTimePrefix(q.Until.Add(-time.Nanosecond))
	}
	if q.After != "" && q.After >= from {
		from = q.After + "\x00" // the smallest id after q.After
	}
	if !q.Since.IsZero() {
		to = successor(messageTimePrefix(q.Since))
	}
	return from, to
}

// Contains reports whether m's time is within q's Since and Until.
func (q MessageQuery) Contains(m *Message) bool {
	return (q.Since.IsZero() || !m.Time.Before(q.Since)) && (q.Until.IsZero() || m.Time.Before(q.Until))
}

// MessageIDsOlderThan returns the first id of the messages made before
// cutoff's millisecond: every id from it on is older than cutoff.
func MessageIDsOlderThan(cutoff time.Time) string { return successor(messageTimePrefix(cutoff)) }

// Validate rejects a message a store could not index.
func (m *Message) Validate() error {
	if m.Workspace != "" && !ValidWorkspaceID(m.Workspace) {
		return fmt.Errorf("message %s: workspace id %q: %w", m.ID, m.Workspace, ErrInvalid)
	}
	if m.UserID == "" {
		return fmt.Errorf("message %s: empty user id: %w", m.ID, ErrInvalid)
	}
	if !strings.HasPrefix(m.ID, messageIDPrefix) || len(m.ID) < len(messageIDPrefix)+10 {
		return fmt.Errorf("message id %q was not made by authz.NewMessageID: %w", m.ID, ErrInvalid)
	}
	return nil
}
