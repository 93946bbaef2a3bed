package module

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/recorder"
)

// Recording API messages: the gateway's record line and what it captures
// of a call. The recorder it writes to is the app's (messages.go).

// MaxRecordBody is the most of a request body a message may keep.
const MaxRecordBody = 1 << 20

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

// serveRecorded runs next and records the call with rec as an API message
// of p.
// Recording never fails the request: the message is queued without
// blocking, and a message that cannot be queued or stored is counted.
//
// The call's time and duration count from when Caddy began the request
// (its start_time variable, as its access log does), or from now when the
// request has no such variable.
func (g *Gateway) serveRecorded(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, rec *recorder.Recorder, p *authz.Principal, cl *authz.Claims) error {
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
	rec.Record(authz.Message{
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
	_ http.Flusher  = (*recordingWriter)(nil)
	_ http.Hijacker = (*recordingWriter)(nil)
	_ io.ReaderFrom = (*recordingWriter)(nil)
	_ http.Pusher   = (*recordingWriter)(nil)
	_ io.ReadCloser = (*recordingBody)(nil)
)
