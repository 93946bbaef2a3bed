// Package admin is the apiusers admin API: a plain net/http handler over
// authz.Service. It imports no Caddy package; the module mounts it.
//
// Paths are relative to the mount (normally `handle_path /admin/*`). The
// routes are listed in one table (routes.go) and described by the OpenAPI
// 3.1 document served, without authentication, at GET /openapi.json.
//
// Conventions:
//   - Every request but GET /openapi.json and the public people routes
//     (POST /login, /invitations/accept, /password-reset,
//     /password-reset/confirm) authenticates, before routing, with a key or
//     an API user's session token read as the gateway reads it, else with
//     the console session cookie (SessionCookie): without either any path
//     is a 401. A cookie-authenticated mutation, and a public POST, whose
//     Origin (or Sec-Fetch-Site) is another site's is a 403. An
//     authenticated caller gets 404 for an unknown path and 405 with Allow
//     for a known path under another method.
//   - Errors are RFC 9457 problems with type "about:blank"; "field" names the
//     offending body field, query parameter or header.
//   - Bodies: at most 1 MiB (413 beyond; 8 KiB for the public POSTs:
//     sign-in, accepting, resets), one JSON object, no unknown field,
//     no member given twice, no member name in another letter case than its
//     field's, at most 32 levels deep, no trailing data (400); a
//     Content-Type other than JSON is a 415, a missing one is accepted.
//   - Lists: limit is 1 to 500 (default 50); anything else is a 400, never
//     clamped. next_cursor is omitted on the last page.
//   - ETag: the quoted version for users and teams (and for /me, the
//     caller's user version); a digest of the body for workspaces.
//     If-Match: "*" or absent means any version; a header that is not an
//     entity-tag list is a 400; a list naming no current version (weak tags
//     never match) is a 412.
//   - Membership PUT and DELETE are idempotent: 204 whether or not the
//     user already was (or still was) a member.
//   - Message filters since (inclusive) and until (exclusive) are RFC 3339
//     times; another format, or until before since, is a 400.
//   - Location of a created resource is a reference relative to the request
//     URL, so it is right wherever the API is mounted.
//   - Every answer carries Cache-Control: no-store.
//   - GET / and the console's other pages and files (admin/console) are
//     the web console, served without authentication: a client of this
//     API with no endpoints of its own.
package admin

import (
	"errors"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/apiusers/apiusers/admin/console"
	"github.com/apiusers/apiusers/authz"
)

// KeySource reads the caller's API key from a request and returns "" when
// the request carries none there.
type KeySource func(r *http.Request) string

// BearerKey reads the key from `Authorization: Bearer <key>`.
func BearerKey(r *http.Request) string { return BearerToken(r.Header.Get("Authorization")) }

// BearerToken returns the credential of an Authorization header value of
// the Bearer scheme (matched case-insensitively), or "" for any other
// value. It allocates nothing.
func BearerToken(authorization string) string {
	const scheme = "bearer "
	if len(authorization) <= len(scheme) || !strings.EqualFold(authorization[:len(scheme)], scheme) {
		return ""
	}
	return strings.TrimSpace(authorization[len(scheme):])
}

// HeaderKey reads the key from the request header name (such as X-API-Key).
func HeaderKey(name string) KeySource {
	name = http.CanonicalHeaderKey(name)
	return func(r *http.Request) string { return strings.TrimSpace(r.Header.Get(name)) }
}

// DefaultKeySources are the key sources used when Options names none:
// `Authorization: Bearer <key>`, then `X-API-Key: <key>`.
var DefaultKeySources = []KeySource{BearerKey, HeaderKey("X-API-Key")}

// Options configures a Handler. The zero value is usable.
type Options struct {
	// KeySources are tried in order; the first one that finds a key wins.
	// The Caddy module passes the extractor its gateway uses, so that the
	// admin API reads keys exactly as the gateway does.
	// Default: DefaultKeySources.
	KeySources []KeySource

	// RetryAfter is the value of the Retry-After header of a 503 answer
	// (the store is unreachable), rounded up to whole seconds.
	// Default: 5s.
	RetryAfter time.Duration

	// Logger receives the causes of 5xx answers. Keys and secrets are never
	// logged. Default: no logging.
	Logger *zap.Logger

	// Mailer sends invitation and password reset mails. Without one, the
	// inviter's answer carries the link (accept_url, reset_url) and a log
	// line says that no mail was sent. Default: none.
	Mailer Mailer

	// PublicURL is the base of links in mails (scheme, host and an
	// optional path prefix before the mount), such as
	// https://console.example.com. Default: the scheme and host of the
	// request that caused the mail, when ServedHost says it is one the
	// site serves (for a manager's mail, also when the request comes
	// from the console's origin); a self-service reset asked for under
	// any other host sends no mail.
	PublicURL string

	// ServedHost reports whether the Host of r is a name the server is
	// configured to serve the admin API under (the module checks the
	// host matchers of the routes that reach it), so that a link made
	// from it points where the operator said. Without PublicURL, the
	// links of self-service password resets are made only from such a
	// host; a manager's mails also from a request of the console's
	// origin. Default: none is.
	ServedHost func(r *http.Request) bool

	// ForwardedHTTPS reports whether r came through a trusted proxy that
	// says (X-Forwarded-Proto) it was HTTPS on its side: the session
	// cookie is then Secure and the console's origin https, behind a
	// TLS-terminating proxy too. The module trusts Caddy's
	// trusted_proxies. Default: never.
	ForwardedHTTPS func(r *http.Request) bool

	// Mount returns the path the handler is mounted at, with a trailing
	// slash ("/admin/"), for the session cookie's Path and the links in
	// mails. Default: "/".
	Mount func(r *http.Request) string

	// ClientAddr returns the client address failed sign-ins are counted
	// by. Default: the host of the request's RemoteAddr.
	ClientAddr func(r *http.Request) string

	// AuthFailed, when set, is told of each request whose key or session
	// token failed to authenticate (not of a request without one); a
	// non-nil error (an *authz.ThrottledError: 429 with Retry-After) is
	// answered instead of the 401. The Caddy module counts the failures
	// per client address there, as the gateway does. Default: none.
	AuthFailed func(r *http.Request) error
}

// Handler serves the admin API. Make one with New.
type Handler struct {
	svc        *authz.Service
	sources    []KeySource
	retryAfter string
	log        *zap.Logger
	mux        *http.ServeMux
	notFound   http.Handler // answers paths that are not in canonical form
	mailer     Mailer
	publicURL  string
	servedHost func(r *http.Request) bool
	// forwardedHTTPS: see Options.ForwardedHTTPS.
	forwardedHTTPS func(r *http.Request) bool
	mount          func(r *http.Request) string
	clientAddr     func(r *http.Request) string
	console        *console.Handler
	authFailed     func(r *http.Request) error
	busy           busyLog // the 503s of busy password hashing
}

// New makes the admin API handler over svc.
func New(svc *authz.Service, opts Options) *Handler {
	h := &Handler{svc: svc, sources: opts.KeySources, log: opts.Logger, mailer: opts.Mailer,
		publicURL: strings.TrimSuffix(opts.PublicURL, "/"), servedHost: opts.ServedHost, mount: opts.Mount, clientAddr: opts.ClientAddr,
		console: console.New(), authFailed: opts.AuthFailed}
	if h.servedHost == nil {
		h.servedHost = func(*http.Request) bool { return false }
	}
	if h.forwardedHTTPS = opts.ForwardedHTTPS; h.forwardedHTTPS == nil {
		h.forwardedHTTPS = func(*http.Request) bool { return false }
	}
	if h.mount == nil {
		h.mount = func(*http.Request) string { return "/" }
	}
	if h.clientAddr == nil {
		h.clientAddr = remoteHost
	}
	if len(h.sources) == 0 {
		h.sources = DefaultKeySources
	}
	if h.log == nil {
		h.log = zap.NewNop()
	}
	ra := opts.RetryAfter
	if ra <= 0 {
		ra = 5 * time.Second
	}
	h.retryAfter = RetryAfter(ra)
	h.mux = http.NewServeMux()
	for _, rt := range h.routes() {
		h.mux.Handle(rt.method+" "+rt.path, h.serveRoute(rt))
	}
	h.mux.Handle("/", h.serveRoute(route{handle: h.unmatched}))
	h.notFound = h.serveRoute(route{handle: func(http.ResponseWriter, *http.Request, *authz.Principal) error {
		return errNoRoute
	}})
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if canonical(r.URL.Path) && h.console.Serves(r) {
		h.console.ServeHTTP(w, r)
		return
	}
	hdr := w.Header()
	// Keys appear in some answers: nothing here may be stored by a cache.
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	if !canonical(r.URL.Path) {
		// ServeMux would redirect to the cleaned path, but it only sees the
		// path below the mount, so its Location would drop the mount.
		h.notFound.ServeHTTP(w, r)
		return
	}
	h.mux.ServeHTTP(w, r)
}

// canonical reports whether p is a clean absolute path (no empty, "." or
// ".." segments), which is the only form the routes match.
func canonical(p string) bool {
	c := path.Clean(p)
	return c == p || (c != "/" && c+"/" == p)
}

// key returns the caller's key, or "" when the request carries none.
func (h *Handler) key(r *http.Request) string {
	for _, src := range h.sources {
		if k := src(r); k != "" {
			return k
		}
	}
	return ""
}

// serveRoute authenticates the caller (unless the route is public) and runs
// the route's handler, turning its error into a problem answer.
//
// A caller is authenticated by a key or an API user's session token
// (Bearer or X-API-Key, as the gateway reads them), else by the console
// session cookie. A cookie-authenticated mutation must come from the
// console's own origin (see sameOrigin), and so must every public POST
// (sign-in, accepting, resetting) that states another origin.
func (h *Handler) serveRoute(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var caller *authz.Principal
		if rt.public {
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				if !h.sameOrigin(r) {
					h.fail(w, r, errCrossSite)
					return
				}
				// Anyone may send these: a small body, read no further.
				if r.ContentLength > MaxPublicBodyBytes {
					h.fail(w, r, &http.MaxBytesError{Limit: MaxPublicBodyBytes})
					return
				}
				r.Body = http.MaxBytesReader(w, r.Body, MaxPublicBodyBytes)
			}
			if rt.withSession {
				if c, err := h.svc.ConsoleSession(r.Context(), sessionCookie(r)); err == nil {
					r = r.WithContext(withAuth(r.Context(), &authInfo{console: c, session: c.SessionID}))
				}
			}
		} else {
			p, info, err := h.authenticate(r)
			if err != nil {
				h.fail(w, r, err)
				return
			}
			caller = p
			r = r.WithContext(withAuth(r.Context(), info))
		}
		if err := rt.handle(w, r, caller); err != nil {
			h.fail(w, r, err)
		}
	})
}

// authenticate finds the caller of a request to a route that is not
// public.
func (h *Handler) authenticate(r *http.Request) (*authz.Principal, *authInfo, error) {
	if key := h.key(r); key != "" || sessionCookie(r) == "" {
		p, cl, err := h.svc.Authenticate(r.Context(), key)
		if err != nil {
			if h.authFailed != nil && key != "" && errors.Is(err, authz.ErrUnauthenticated) {
				if terr := h.authFailed(r); terr != nil {
					return nil, nil, terr
				}
			}
			return nil, nil, err
		}
		info := &authInfo{}
		if strings.HasPrefix(cl.KeyID, "ses_") {
			info.session = cl.KeyID
		}
		return p, info, nil
	}
	c, err := h.svc.ConsoleSession(r.Context(), sessionCookie(r))
	if err != nil {
		return nil, nil, err
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead && !h.sameOrigin(r) {
		return nil, nil, errCrossSite
	}
	ws := r.PathValue("ws")
	if ws == "" {
		ws = r.URL.Query().Get("workspace")
	}
	p, err := h.svc.Acting(r.Context(), c, ws)
	if err != nil {
		return nil, nil, err
	}
	return p, &authInfo{console: c, session: c.SessionID}, nil
}

// RetryAfter renders d as a Retry-After value: whole seconds, rounded up.
func RetryAfter(d time.Duration) string {
	return strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10)
}
