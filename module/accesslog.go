package module

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Keeping secrets out of Caddy's access log.
//
// Caddy's server logs each request as it was before any handler ran (a
// clone made before the handler chain), and redacts only the Authorization,
// Proxy-Authorization, Cookie and Set-Cookie headers. A key sent in another
// header (X-API-Key) or in a query parameter, or a one-time token in a
// link's query string, would be written out in full, whether the request
// was admitted or refused, and a handler cannot change that clone. So a
// handler that reads a secret from such a place calls redactAccessLog
// first: when the request carries one of the secrets and Caddy would log
// it, Caddy's own line is skipped (the log_skip variable) and, once the
// request is done (its context ends), the same line is written to the same
// loggers — same message, level, fields and logger names — with each of
// those values replaced by REDACTED. A request without such a secret, or
// one Caddy does not log, costs a few map lookups.
//
// What the replacement line cannot carry: fields that other handlers added
// with log_append (Caddy keeps them where no module can read them) and a
// write_error.

// redacted replaces a secret in a log line.
const redacted = "REDACTED"

// logSecrets names where a request holds secrets that Caddy's access log
// would show: header names (canonical) and query parameter names.
type logSecrets struct {
	headers []string
	query   []string
}

// secretsOfSources returns where the key sources srcs put secrets that
// Caddy would log: every header source but Authorization, every query
// source (cookies are redacted by Caddy itself).
func secretsOfSources(srcs []keySource) logSecrets {
	var ls logSecrets
	for _, s := range srcs {
		switch s.kind {
		case kindHeader:
			switch s.name {
			case "Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie":
			default:
				ls.headers = append(ls.headers, s.name)
			}
		case kindQuery:
			ls.query = append(ls.query, s.name)
		}
	}
	return ls
}

// in reports whether r carries any of the secrets.
func (ls *logSecrets) in(r *http.Request) bool {
	for _, h := range ls.headers {
		if len(r.Header[h]) > 0 {
			return true
		}
	}
	for _, q := range ls.query {
		if hasQueryParam(r.URL.RawQuery, q) {
			return true
		}
	}
	return false
}

// accessLog writes access log lines in place of Caddy's.
type accessLog struct {
	// base is the logger Caddy's servers log requests to: the http app's
	// logger named log.access (so "http.log.access", then the site's
	// logger name), with the same cores.
	base *zap.Logger
}

// newAccessLog makes an accessLog for the config ctx belongs to.
func newAccessLog(ctx caddy.Context) *accessLog {
	return &accessLog{base: ctx.Logger(&caddyhttp.App{}).Named("log.access")}
}

// redactAccessLog arranges for r's access log line to show the values of
// ls's headers and query parameters as REDACTED (see above). Call it
// before the handler changes r: the line shows r as it is now, with the
// request URI Caddy received.
func (al *accessLog) redactAccessLog(w http.ResponseWriter, r *http.Request, ls *logSecrets) {
	if al == nil || !ls.in(r) {
		return
	}
	ctx := r.Context()
	srv, _ := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if srv == nil || srv.Logs == nil {
		return // Caddy logs no request of this server
	}
	if skip, _ := caddyhttp.GetVar(ctx, caddyhttp.LogSkipVar).(bool); skip {
		return // not logged anyway (log_skip, or redacted already)
	}
	rec := recorderOf(w)
	if rec == nil {
		return // Caddy records no response for this request: it logs none
	}
	line := r.Clone(context.WithoutCancel(ctx))
	if orig, ok := ctx.Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok {
		line.Method, line.RequestURI, line.RemoteAddr = orig.Method, orig.RequestURI, orig.RemoteAddr
	}
	for _, h := range ls.headers {
		if vs := line.Header[h]; len(vs) > 0 {
			line.Header[h] = []string{redacted}
		}
	}
	line.RequestURI = redactQuery(line.RequestURI, ls.query)
	body := &countingBody{}
	if r.Body != nil && r.Body != http.NoBody {
		body.ReadCloser = r.Body
		r.Body = body
	}
	caddyhttp.SetVar(ctx, caddyhttp.LogSkipVar, true)
	repl, _ := ctx.Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	start, ok := caddyhttp.GetVar(ctx, varStartTime).(time.Time)
	if !ok {
		start = time.Now()
	}
	context.AfterFunc(ctx, func() {
		al.write(srv.Logs, line, rec, repl, body.n.Load(), time.Since(start))
	})
}

// write writes the access log line of a finished request, as Caddy's
// server would have (Server.logRequest).
func (al *accessLog) write(logs *caddyhttp.ServerLogConfig, r *http.Request, rec caddyhttp.ResponseRecorder, repl *caddy.Replacer, read int64, d time.Duration) {
	ctx := r.Context()
	status, size := rec.Status(), rec.Size()
	message := "handled request"
	if nop, ok := caddyhttp.GetVar(ctx, "unhandled").(bool); ok && nop {
		message = "NOP"
	}
	level := zapcore.InfoLevel
	if status >= 500 {
		level = zapcore.ErrorLevel
	}
	if name, ok := caddyhttp.GetVar(ctx, caddyhttp.LogLevelVar).(string); ok {
		if l, err := zapcore.ParseLevel(name); err == nil && l >= zapcore.DebugLevel && l <= zapcore.ErrorLevel {
			level = l
		}
	}
	userID := ""
	if repl != nil {
		userID, _ = repl.GetString("http.auth.user.id")
	}
	fields := []zapcore.Field{
		zap.Object("request", caddyhttp.LoggableHTTPRequest{Request: r, ShouldLogCredentials: logs.ShouldLogCredentials}),
		zap.Int64("bytes_read", read),
		zap.String("user_id", userID),
		zap.Duration("duration", d),
		zap.Int("size", size),
		zap.Int("status", status),
		zap.Object("resp_headers", caddyhttp.LoggableHTTPHeader{Header: rec.Header(), ShouldLogCredentials: logs.ShouldLogCredentials}),
	}
	for _, l := range loggersFor(logs, al.base, r) {
		if c := l.Check(level, message); c != nil {
			c.Write(fields...)
		}
	}
}

// loggersFor returns the loggers Caddy's server logs r to (as
// ServerLogConfig's unexported wrapLogger does): the names of the
// access_logger_names variable, else those configured for r's host, else
// the default logger name.
func loggersFor(logs *caddyhttp.ServerLogConfig, base *zap.Logger, r *http.Request) []*zap.Logger {
	named := func(names []string) []*zap.Logger {
		out := make([]*zap.Logger, 0, len(names))
		for _, n := range names {
			if n == "" {
				out = append(out, base)
			} else {
				out = append(out, base.Named(n))
			}
		}
		return out
	}
	if v, ok := caddyhttp.GetVar(r.Context(), caddyhttp.AccessLoggerNameVarKey).([]any); ok {
		names := make([]string, 0, len(v))
		for _, n := range v {
			s, _ := n.(string)
			names = append(names, s)
		}
		return named(names)
	}
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = r.Host
	}
	host = strings.ToLower(host)
	if names, ok := logs.LoggerNames[host]; ok {
		return named(names)
	}
	labels := strings.Split(host, ".")
	for i := range labels {
		if labels[i] == "" {
			continue
		}
		labels[i] = "*"
		if names, ok := logs.LoggerNames[strings.Join(labels, ".")]; ok {
			return named(names)
		}
	}
	return named([]string{logs.DefaultLoggerName})
}

// recorderOf returns Caddy's response recorder under w (the one closest to
// the connection), or nil.
func recorderOf(w http.ResponseWriter) caddyhttp.ResponseRecorder {
	var found caddyhttp.ResponseRecorder
	for range 32 {
		if rec, ok := w.(caddyhttp.ResponseRecorder); ok {
			found = rec
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			break
		}
		w = u.Unwrap()
	}
	return found
}

// redactQuery returns the request URI uri with the value of every query
// parameter named in names replaced by REDACTED.
func redactQuery(uri string, names []string) string {
	path, query, ok := strings.Cut(uri, "?")
	if !ok || len(names) == 0 {
		return uri
	}
	var b strings.Builder
	b.WriteString(path)
	b.WriteByte('?')
	for i, part := range strings.Split(query, "&") {
		if i > 0 {
			b.WriteByte('&')
		}
		k, _, hasValue := strings.Cut(part, "=")
		secret := false
		for _, n := range names {
			if queryKey(k) == n {
				secret = true
				break
			}
		}
		if secret && hasValue {
			b.WriteString(k)
			b.WriteString("=" + redacted)
			continue
		}
		b.WriteString(part)
	}
	return b.String()
}

// countingBody counts the bytes read from a request body.
type countingBody struct {
	io.ReadCloser
	n atomic.Int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}
