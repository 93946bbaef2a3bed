package module

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/recorder"
)

// Recording API messages: the gateway's record line, and the one recorder
// per store and message settings that the apiusers app shares across
// config reloads.

// Message defaults and bounds.
const (
	defaultMessagesKeep   = 10000
	defaultMessagesMaxAge = 30 * 24 * time.Hour
	defaultMessagesQueue  = 65536

	// MaxRecordBody is the most of a request body a message may keep.
	MaxRecordBody = 1 << 20

	// recorderCloseTimeout bounds writing what is queued when a recorder
	// is let go (the last configuration using it was unloaded).
	recorderCloseTimeout = 2 * time.Second

	// recorderErrorLogEvery spaces out the log lines of a failing store.
	recorderErrorLogEvery = 10 * time.Second
)

// RecordConfig is a route's `record` line: each call the route admits is
// stored as an API message of the caller.
type RecordConfig struct {
	// Body keeps up to this many bytes of the start of the request body in
	// the message, at most 1 MiB. The body is captured as the handlers
	// after the gateway (normally reverse_proxy) read it, never buffered
	// beyond this; a body that was longer is marked body_truncated. It is
	// kept as text: bytes that are not UTF-8 show as U+FFFD in JSON.
	// Default: 0 (no body is kept).
	Body int64 `json:"body,omitempty"`
}

// The message metrics, registered in the metrics registry of every
// configuration that records. They are process-wide, so their values
// survive config reloads.
var (
	messagesRecorded = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "apiusers",
		Name:      "messages_recorded_total",
		Help:      "API messages stored (routes with record).",
	})
	messagesDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "apiusers",
		Name:      "messages_dropped_total",
		Help:      "API messages lost because the queue was full or the store failed.",
	})
)

// registerMessageMetrics registers the message counters in reg; a counter
// that is already there is fine.
func registerMessageMetrics(reg *prometheus.Registry) error {
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{messagesRecorded, messagesDropped} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return fmt.Errorf("registering message metrics: %w", err)
			}
		}
	}
	return nil
}

// appMessages is what an app instance knows about recording: the resolved
// settings, and the shared recorder once a route asked for it.
type appMessages struct {
	storeID string
	keep    authz.Retention
	queue   int
	logger  *zap.Logger

	mu  sync.Mutex
	key string // in recorders, once taken
	rec *recorder.Recorder
}

// messageSettings applies the message defaults and checks the values.
func (a *App) messageSettings(storeID string) (*appMessages, error) {
	if a.MessagesKeep < 0 {
		return nil, errors.New("messages_keep must not be negative")
	}
	if a.MessagesMaxAge < 0 {
		return nil, errors.New("messages_max_age must not be negative")
	}
	if a.MessagesQueue < 0 {
		return nil, errors.New("messages_queue must not be negative")
	}
	m := &appMessages{
		storeID: storeID,
		keep: authz.Retention{
			MaxPerUser: a.MessagesKeep,
			MaxAge:     durationOr(a.MessagesMaxAge, defaultMessagesMaxAge),
		},
		queue:  a.MessagesQueue,
		logger: a.logger,
	}
	if m.keep.MaxPerUser == 0 {
		m.keep.MaxPerUser = defaultMessagesKeep
	}
	if m.queue == 0 {
		m.queue = defaultMessagesQueue
	}
	return m, nil
}

// recorder returns the message recorder of the app's store, making it on
// the first call: only configurations with a record line pay for its queue
// and writer. Configurations with the same store and message settings
// share one recorder, so a reload loses nothing that was queued. The
// message metrics are registered in ctx's registry.
func (a *App) recorder(ctx caddy.Context) (*recorder.Recorder, error) {
	m := a.messages
	if m == nil {
		return nil, errors.New("apiusers app is not provisioned")
	}
	if err := registerMessageMetrics(ctx.GetMetricsRegistry()); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rec != nil {
		return m.rec, nil
	}
	ms, ok := a.svc.Store().(authz.MessageStore)
	if !ok {
		return nil, errors.New("record: the store does not keep API messages")
	}
	key := m.storeID + "\x00" + strconv.Itoa(m.keep.MaxPerUser) + "\x00" + m.keep.MaxAge.String() + "\x00" + strconv.Itoa(m.queue)
	v, _, err := recorders.LoadOrNew(key, func() (caddy.Destructor, error) {
		// Hold the store for as long as the recorder writes to it. The
		// app's backend holds it already, so it is never opened here.
		if _, _, err := stores.LoadOrNew(m.storeID, func() (caddy.Destructor, error) {
			return nil, errors.New("record: the store is not open")
		}); err != nil {
			return nil, err
		}
		sr := &sharedRecorder{storeID: m.storeID, logger: m.logger}
		sr.rec = recorder.New(ms, recorder.Config{
			Queue:   m.queue,
			Keep:    m.keep,
			OnDrop:  func(n int) { messagesDropped.Add(float64(n)) },
			OnBatch: sr.batchDone,
			OnSweep: sr.sweepDone,
		})
		return sr, nil
	})
	if err != nil {
		return nil, err
	}
	m.key = key
	m.rec = v.(*sharedRecorder).rec
	return m.rec, nil
}

// release lets go of the shared recorder, if this app instance took it.
func (m *appMessages) release() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.key == "" {
		return
	}
	_, _ = recorders.Delete(m.key)
	m.key, m.rec = "", nil
}

// recorders holds the message recorders by store and message settings.
var recorders = caddy.NewUsagePool()

// sharedRecorder is a recorder in the recorders pool.
type sharedRecorder struct {
	storeID string
	rec     *recorder.Recorder
	logger  *zap.Logger
	lastLog atomic.Int64 // unix nanoseconds of the last error logged
}

// batchDone counts a written batch, and logs a failed one (at most once
// every recorderErrorLogEvery: a store that is away fails every batch).
func (s *sharedRecorder) batchDone(n int, err error) {
	if err == nil {
		messagesRecorded.Add(float64(n))
		return
	}
	now := time.Now().UnixNano()
	last := s.lastLog.Load()
	if now-last < int64(recorderErrorLogEvery) || !s.lastLog.CompareAndSwap(last, now) {
		return
	}
	if c := s.logger.Check(zapcore.WarnLevel, "storing API messages failed; they are dropped and counted in apiusers_messages_dropped_total"); c != nil {
		c.Write(zap.Int("messages", n), zap.Error(err))
	}
}

// sweepDone logs a sweep of old messages: the number deleted at debug
// level, a failure as a warning (the next sweep tries again).
func (s *sharedRecorder) sweepDone(n int, err error) {
	if err != nil {
		if c := s.logger.Check(zapcore.WarnLevel, "deleting API messages past messages_max_age failed; the next sweep tries again"); c != nil {
			c.Write(zap.Int("deleted", n), zap.Error(err))
		}
		return
	}
	if c := s.logger.Check(zapcore.DebugLevel, "deleted API messages past messages_max_age"); c != nil {
		c.Write(zap.Int("deleted", n))
	}
}

// Destruct writes what is queued (for at most recorderCloseTimeout), stops
// the recorder and lets go of the store.
func (s *sharedRecorder) Destruct() error {
	ctx, cancel := context.WithTimeout(context.Background(), recorderCloseTimeout)
	defer cancel()
	s.rec.Close(ctx)
	_, err := stores.Delete(s.storeID)
	return err
}

// serveRecorded runs next and records the call as an API message of p.
// Recording never fails the request: the message is queued without
// blocking, and a message that cannot be queued or stored is counted.
//
// The call's time and duration count from when Caddy began the request
// (its start_time variable, as its access log does), or from now when the
// request has no such variable.
func (g *Gateway) serveRecorded(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, p *authz.Principal, cl *authz.Claims) error {
	vars, _ := r.Context().Value(caddyhttp.VarsCtxKey).(map[string]any)
	start, ok := vars[varStartTime].(time.Time)
	if !ok {
		start = g.now()
	}
	// The path the client asked for, before handle_path or rewrites.
	path := r.URL.Path
	if orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok && orig.URL != nil {
		path = orig.URL.Path
	}
	method := r.Method
	rc := &recording{}
	rc.w.ResponseWriter = w
	if r.Body != nil && r.Body != http.NoBody {
		rc.body.rc = r.Body
		rc.body.max = int(g.bodyMax)
		rc.body.sizeHint = r.ContentLength
		r.Body = &rc.body
	}

	err := next.ServeHTTP(&rc.w, r)

	status := rc.w.status
	if status == 0 {
		status = http.StatusOK
		if err != nil {
			status = http.StatusInternalServerError
			var he caddyhttp.HandlerError
			if errors.As(err, &he) && he.StatusCode != 0 {
				status = he.StatusCode
			}
		}
	}
	in, body, truncated := rc.body.result(r.ContentLength)
	g.recorder.Record(authz.Message{
		Workspace:     p.Workspace,
		UserID:        p.UserID,
		KeyID:         cl.KeyID,
		Time:          start.UTC(),
		Method:        method,
		Path:          path,
		Status:        status,
		DurationMS:    float64(g.now().Sub(start)) / float64(time.Millisecond),
		BytesIn:       in,
		BytesOut:      rc.w.size,
		ClientIP:      clientIP(r, vars),
		Body:          body,
		BodyTruncated: truncated,
	})
	return err
}

// varStartTime is the request variable in which Caddy's server keeps the
// time it began the request.
const varStartTime = "start_time"

// clientIP is Caddy's idea of the client's address (trusted proxies
// applied), else the connection's remote address.
func clientIP(r *http.Request, vars map[string]any) string {
	if ip, ok := vars[caddyhttp.ClientIPVarKey].(string); ok && ip != "" {
		return ip
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// recording is the state of one recorded call, in one allocation.
type recording struct {
	w    recordingWriter
	body recordingBody
}

// recordingWriter passes the response through and notes its status and
// size. Flushing and hijacking reach the underlying writer (directly, and
// through Unwrap for http.ResponseController).
type recordingWriter struct {
	caddyhttp.ResponseWriterWrapper
	status int
	size   int64
}

// WriteHeader notes the final status (informational 1xx answers other
// than 101 Switching Protocols are not final).
func (w *recordingWriter) WriteHeader(code int) {
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recordingWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.size += int64(n)
	return n, err
}

// ReadFrom keeps the underlying writer's fast path (sendfile) and counts.
func (w *recordingWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriterWrapper.ReadFrom(r)
	w.size += n
	return n, err
}

// Flush implements http.Flusher for handlers that assert it.
func (w *recordingWriter) Flush() { _ = w.FlushError() }

// FlushError flushes the underlying writer.
func (w *recordingWriter) FlushError() error {
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack implements http.Hijacker for handlers that assert it.
func (w *recordingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// recordingBody counts the request body as it is read and keeps its first
// max bytes. It may be read from another goroutine than the handler's
// (a proxy transport writes the request body on its own), hence mu.
type recordingBody struct {
	rc       io.ReadCloser
	max      int
	sizeHint int64 // Content-Length, -1 when unknown

	mu  sync.Mutex
	n   int64
	buf []byte
}

func (b *recordingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		b.mu.Lock()
		b.n += int64(n)
		if room := b.max - len(b.buf); room > 0 {
			if b.buf == nil {
				c := b.max
				if b.sizeHint >= 0 && b.sizeHint < int64(c) {
					c = int(b.sizeHint)
				}
				b.buf = make([]byte, 0, c)
			}
			b.buf = append(b.buf, p[:min(n, room)]...)
		}
		b.mu.Unlock()
	}
	return n, err
}

func (b *recordingBody) Close() error { return b.rc.Close() }

// result returns the bytes in (read, or Content-Length when more), the
// kept start of the body, and whether the body was longer than that.
func (b *recordingBody) result(contentLength int64) (in int64, body string, truncated bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	in = max(b.n, contentLength, 0)
	if b.max == 0 {
		return in, "", false
	}
	kept := b.buf
	truncated = in > int64(len(kept))
	if truncated {
		kept = trimPartialRune(kept)
	}
	return in, string(kept), truncated
}

// trimPartialRune drops a UTF-8 sequence cut short at the end of b.
func trimPartialRune(b []byte) []byte {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return b[:i]
			}
			break
		}
	}
	return b
}

// Interface guards
var (
	_ caddy.Destructor = (*sharedRecorder)(nil)
	_ http.Flusher     = (*recordingWriter)(nil)
	_ http.Hijacker    = (*recordingWriter)(nil)
	_ io.ReaderFrom    = (*recordingWriter)(nil)
	_ http.Pusher      = (*recordingWriter)(nil)
	_ io.ReadCloser    = (*recordingBody)(nil)
)
