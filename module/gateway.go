package module

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/recorder"
)

func init() {
	caddy.RegisterModule(Gateway{})
}

// Gateway admits requests that carry a valid API key of an active user who
// may use the route, and tells the upstream who the caller is.
//
// For each request it takes the key (see KeyFrom), verifies it and loads
// the caller's principal through the apiusers app (cache first, else one
// store round trip), then answers
//
//   - 401 with `WWW-Authenticate: Bearer realm="apiusers", error="invalid_token"`
//     when there is no key, the key is malformed, badly signed, unknown,
//     revoked or expired, or its user is not active;
//   - 403 with `WWW-Authenticate: Bearer realm="apiusers", error="insufficient_scope"`
//     when the caller is authenticated but the route's workspace, roles or
//     require lines do not admit it;
//   - 503 with `Retry-After` when the store is unreachable and the principal
//     is not cached (never 401 or 403 then).
//
// Failures are returned as caddyhttp errors, so handle_errors can shape the
// response; {http.error.message} is one line that never contains the key.
//
// On success it sets these placeholders:
//
//	{http.auth.user.id}         the user id (usr_…)
//	{http.auth.user.username}   the username
//	{http.auth.user.workspace}  the user's workspace
//	{http.auth.user.role}       the user's role
//	{http.auth.user.key_id}     the id of the key used (key_…)
//	{http.auth.user.teams}      the user's team ids, comma-separated
//
// (A value an earlier handler of the same request set for one of these
// names, such as `vars http.auth.user.id …`, keeps precedence over the
// gateway's, as static replacer values do over providers.)
//
// and these request headers, replacing every value the client sent:
// X-Api-User-Id, X-Api-User-Name, X-Api-Workspace, X-Api-Role, X-Api-Key-Id.
// (Spellings that some upstreams read as the same header, X_Api_User_Id or
// X.Api.User.Id, never get this far: Caddy's server drops header names
// with underscores and dots unless told otherwise.)
// Unless KeepCredentials is set, the credential the key came from (the
// Authorization header, the header, the query parameter or the cookie) is
// removed from the request before it goes on.
//
// With Record, every call the route admits is stored as an API message of
// the caller once the handlers after it are done: its time, key id, method,
// path (as the client sent it), status, duration, bytes in and out, client
// IP and, when asked, the start of the request body. Messages are written
// in batches off the request path; a message that cannot be queued or
// stored is counted in apiusers_messages_dropped_total, and the request
// never waits or fails because of it.
type Gateway struct {
	// Workspace, when set, admits only callers whose workspace it is.
	// Superadmins act in every workspace and pass this check. Default: any
	// workspace.
	Workspace string `json:"workspace,omitempty"`

	// Roles, when set, admits only callers holding one of these roles
	// (superadmin is not implied: list it to admit it). Default: any role.
	Roles []string `json:"roles,omitempty"`

	// Require lists permission checks; every one must hold. Default: none
	// (any active user with a live key of the workspace passes).
	Require []Requirement `json:"require,omitempty"`

	// KeyFrom lists where the key is looked for, in order; the first source
	// that holds a value is used and the others are ignored. Default: the
	// Authorization header's Bearer credential, then the X-API-Key header.
	KeyFrom []KeySource `json:"key_from,omitempty"`

	// KeepCredentials passes the credential the key came from on to the
	// upstream. Default: false (it is removed).
	KeepCredentials bool `json:"keep_credentials,omitempty"`

	// Record, when set, stores each admitted call as an API message of the
	// caller (listed at GET /workspaces/{ws}/messages of the admin API).
	// Retention and the write queue are options of the apiusers app.
	// Default: nothing is recorded.
	Record *RecordConfig `json:"record,omitempty"`

	svc        *authz.Service
	recorder   *recorder.Recorder // nil unless Record is set
	bodyMax    int64
	now        func() time.Time
	retryAfter []string
	roles      []authz.Role
	reqs       []requirement
	sources    []keySource
	logger     *zap.Logger
}

// Requirement is one `require` line.
type Requirement struct {
	// Permission is the permission (or, with On, the right) the caller
	// needs. Required.
	Permission string `json:"permission"`

	// On, when set, names a resource ("type:id", placeholders expanded per
	// request): the caller then needs a grant on that resource, or on
	// "type:*", that includes the right Permission, instead of the
	// workspace permission.
	On string `json:"on,omitempty"`

	// Owner, when set, names the user whose data the request touches, by id
	// or username (placeholders expanded per request, such as {re.ev.1}): a
	// caller holding Permission passes for any owner; a caller holding only
	// Permission + ".own" passes when the owner is itself. With On, the
	// ".own" right is looked for in the resource's grants.
	Owner string `json:"owner,omitempty"`
}

// Key sources.
const (
	SourceBearer = "bearer" // Authorization: Bearer <key>
	SourceHeader = "header" // a request header
	SourceQuery  = "query"  // a query string parameter
	SourceCookie = "cookie" // a cookie
)

// KeySource is one place a key may be taken from.
type KeySource struct {
	// From is "bearer" (the Authorization header's Bearer credential),
	// "header", "query" or "cookie".
	From string `json:"from"`

	// Name is the header, query parameter or cookie name. Required unless
	// From is "bearer".
	Name string `json:"name,omitempty"`
}

// DefaultKeySources are used when a route names none.
var DefaultKeySources = []KeySource{{From: SourceBearer}, {From: SourceHeader, Name: "X-API-Key"}}

// CaddyModule returns the Caddy module information.
func (Gateway) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.apiusers",
		New: func() caddy.Module { return new(Gateway) },
	}
}

// Provision compiles the route's rules and takes the service of the
// apiusers app (which runs with its defaults when the Caddyfile has no
// global apiusers block).
func (g *Gateway) Provision(ctx caddy.Context) error {
	g.logger = ctx.Logger()
	if err := g.compile(); err != nil {
		return err
	}
	appIface, err := ctx.App("apiusers")
	if err != nil {
		return fmt.Errorf("getting apiusers app: %w", err)
	}
	app := appIface.(*App)
	g.svc = app.Service()
	g.retryAfter = app.retryAfter
	if g.Record != nil {
		if g.recorder, err = app.recorder(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Validate reports whether the handler is ready.
func (g *Gateway) Validate() error {
	if g.svc == nil {
		return errors.New("apiusers: no service")
	}
	if g.Record != nil && g.recorder == nil {
		return errors.New("apiusers: record without a recorder")
	}
	return nil
}

// compile checks the configuration and precomputes what the hot path uses.
func (g *Gateway) compile() error {
	if g.Workspace != "" && !authz.ValidWorkspaceID(g.Workspace) {
		return fmt.Errorf("workspace %q is not a valid workspace id", g.Workspace)
	}
	g.roles = g.roles[:0]
	for _, r := range g.Roles {
		if !authz.ValidRole(authz.Role(r)) {
			return fmt.Errorf("roles: unknown role %q", r)
		}
		g.roles = append(g.roles, authz.Role(r))
	}
	g.reqs = g.reqs[:0]
	for _, rq := range g.Require {
		c, err := compileRequirement(rq)
		if err != nil {
			return err
		}
		g.reqs = append(g.reqs, c)
	}
	if g.Record != nil {
		if g.Record.Body < 0 || g.Record.Body > MaxRecordBody {
			return fmt.Errorf("record body %d: want 0 to %d bytes", g.Record.Body, MaxRecordBody)
		}
		g.bodyMax = g.Record.Body
	}
	if g.now == nil {
		g.now = time.Now
	}
	var err error
	g.sources, err = compileSources(g.KeyFrom)
	return err
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	src, key := g.takeKey(r)
	p, cl, err := g.svc.Authenticate(r.Context(), key)
	if err != nil {
		return g.authError(w, err)
	}
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if deny := g.decide(p, repl); deny != nil {
		w.Header()[hdrWWWAuthenticate] = challengeInsufficientScope
		if c := g.logger.Check(zapcore.DebugLevel, "request denied"); c != nil {
			c.Write(zap.String("user_id", p.UserID), zap.String("key_id", cl.KeyID), zap.Error(deny))
		}
		return caddyhttp.Error(http.StatusForbidden, deny)
	}

	setPlaceholders(r, repl, p, cl.KeyID)

	if !g.KeepCredentials {
		src.remove(r)
	}
	// The request's one allocation: a handler after this one may edit
	// header values in place (Caddy's request_header replace does), so the
	// cached principal's precomputed slices are not handed out; the five
	// values share one array instead. Each slice has capacity 1, so an
	// append reallocates rather than writing into its neighbour.
	// Assigning the canonical key replaces every value the client sent.
	vals := new([5]string)
	vals[0], vals[1], vals[2], vals[3], vals[4] = p.UserID, p.Username, p.Workspace, string(p.Role), cl.KeyID
	h := r.Header
	h[hdrUserID] = vals[0:1:1]
	h[hdrUsername] = vals[1:2:2]
	h[hdrWorkspace] = vals[2:3:3]
	h[hdrRole] = vals[3:4:4]
	h[hdrKeyID] = vals[4:5:5]
	if g.recorder != nil {
		return g.serveRecorded(w, r, next, p, cl)
	}
	return next.ServeHTTP(w, r)
}

// varPlaceholders is the request variable that tells a gateway that an
// earlier one already gave the request's replacer a placeholder provider.
const varPlaceholders = "apiusers.placeholders"

// setPlaceholders makes the {http.auth.user.*} placeholders of r answer for
// p and its key kid.
//
// The first gateway of a request adds a provider to the replacer: one made
// per principal and key and kept with the cached principal (KeySlot), so a
// request costs a slice append instead of six locked map writes. A later
// gateway of the same request (or a request without Caddy's vars) sets
// static values, which the replacer consults before any provider: the last
// gateway's caller is the one the placeholders describe.
func setPlaceholders(r *http.Request, repl *caddy.Replacer, p *authz.Principal, kid string) {
	if vars, ok := r.Context().Value(caddyhttp.VarsCtxKey).(map[string]any); ok {
		if _, again := vars[varPlaceholders]; !again {
			if slot := p.KeySlot(kid); slot != nil {
				f, _ := slot.Load().(caddy.ReplacerFunc)
				if f == nil {
					f = placeholderProvider(p, p.KeyValue(kid))
					slot.Store(f) // a racing request stores an equal one
				}
				vars[varPlaceholders] = true
				repl.Map(f)
				return
			}
		}
	}
	repl.Set(phUserID, p.ValUserID)
	repl.Set(phUsername, p.ValUsername)
	repl.Set(phWorkspace, p.ValWorkspace)
	repl.Set(phRole, p.ValRole)
	repl.Set(phKeyID, p.KeyValue(kid))
	repl.Set(phTeams, p.ValTeams)
}

// The placeholders the gateway sets.
const (
	phPrefix    = "http.auth.user."
	phUserID    = phPrefix + "id"
	phUsername  = phPrefix + "username"
	phWorkspace = phPrefix + "workspace"
	phRole      = phPrefix + "role"
	phKeyID     = phPrefix + "key_id"
	phTeams     = phPrefix + "teams"
)

// placeholderProvider answers the gateway's placeholders for p and the
// boxed key id kid.
func placeholderProvider(p *authz.Principal, kid any) caddy.ReplacerFunc {
	return func(key string) (any, bool) {
		if len(key) <= len(phPrefix) || key[:len(phPrefix)] != phPrefix {
			return nil, false
		}
		switch key[len(phPrefix):] {
		case "id":
			return p.ValUserID, true
		case "username":
			return p.ValUsername, true
		case "workspace":
			return p.ValWorkspace, true
		case "role":
			return p.ValRole, true
		case "key_id":
			return kid, true
		case "teams":
			return p.ValTeams, true
		}
		return nil, false
	}
}

// authError maps an error of Authenticate to the response: 401 for a bad
// key or user, 503 (fail closed, retryable) for everything else.
func (g *Gateway) authError(w http.ResponseWriter, err error) error {
	if errors.Is(err, authz.ErrUnauthenticated) {
		w.Header()[hdrWWWAuthenticate] = challengeInvalidToken
		return caddyhttp.Error(http.StatusUnauthorized, err)
	}
	if c := g.logger.Check(zapcore.ErrorLevel, "authorization store unavailable"); c != nil {
		c.Write(zap.Error(err))
	}
	w.Header()[hdrRetryAfter] = g.retryAfter
	var ae *authz.Error
	if !errors.As(err, &ae) {
		// Keep the cause (addresses, driver messages) out of the response.
		err = errStoreUnavailable
	}
	return caddyhttp.Error(http.StatusServiceUnavailable, err)
}

// decide returns nil when the route admits p, else the 403 error to return.
func (g *Gateway) decide(p *authz.Principal, repl *caddy.Replacer) error {
	if g.Workspace != "" && !p.InWorkspace(g.Workspace) {
		return errWrongWorkspace
	}
	if len(g.roles) > 0 {
		ok := false
		for _, r := range g.roles {
			if p.Role == r {
				ok = true
				break
			}
		}
		if !ok {
			return errWrongRole
		}
	}
	for i := range g.reqs {
		if !g.reqs[i].holds(p, repl) {
			return g.reqs[i].deny
		}
	}
	return nil
}

// Canonical header names and precomputed header values.
const (
	hdrUserID          = "X-Api-User-Id"
	hdrUsername        = "X-Api-User-Name"
	hdrWorkspace       = "X-Api-Workspace"
	hdrRole            = "X-Api-Role"
	hdrKeyID           = "X-Api-Key-Id"
	hdrAuthorization   = "Authorization"
	hdrWWWAuthenticate = "Www-Authenticate"
	hdrRetryAfter      = "Retry-After"
)

var (
	challengeInvalidToken      = []string{`Bearer realm="apiusers", error="invalid_token"`}
	challengeInsufficientScope = []string{`Bearer realm="apiusers", error="insufficient_scope"`}
)

// The 403 and 503 errors. They are made once: denying does not allocate
// beyond caddyhttp.Error.
var (
	errWrongWorkspace   = &authz.Error{Kind: authz.ErrForbidden, Detail: "the API key's workspace may not use this route"}
	errWrongRole        = &authz.Error{Kind: authz.ErrForbidden, Detail: "the API user's role may not use this route"}
	errStoreUnavailable = &authz.Error{Kind: authz.ErrUnavailable, Detail: "authorization store unavailable"}
)

// requirement is a compiled Requirement.
type requirement struct {
	perm, own  string
	on, owner  string
	hasOn      bool
	hasOwner   bool
	onDynamic  bool // on holds placeholders
	ownDynamic bool // owner holds placeholders
	deny       error
}

func compileRequirement(rq Requirement) (requirement, error) {
	if !authz.ValidPermission(rq.Permission) {
		return requirement{}, fmt.Errorf("require: %q is not a valid permission", rq.Permission)
	}
	c := requirement{
		perm:       rq.Permission,
		own:        rq.Permission + authz.OwnSuffix,
		on:         rq.On,
		owner:      rq.Owner,
		hasOn:      rq.On != "",
		hasOwner:   rq.Owner != "",
		onDynamic:  strings.Contains(rq.On, "{"),
		ownDynamic: strings.Contains(rq.Owner, "{"),
	}
	if c.hasOwner && strings.HasSuffix(rq.Permission, authz.OwnSuffix) {
		return requirement{}, fmt.Errorf("require %s owner: name the permission without %s; holders of %s%s pass for their own data",
			rq.Permission, authz.OwnSuffix, strings.TrimSuffix(rq.Permission, authz.OwnSuffix), authz.OwnSuffix)
	}
	detail := "missing permission " + rq.Permission
	if c.hasOn {
		if !c.onDynamic {
			if _, _, ok := authz.ParseResource(rq.On); !ok {
				return requirement{}, fmt.Errorf("require %s on %q: the resource must be type:id", rq.Permission, rq.On)
			}
			detail = "missing right " + rq.Permission + " on " + rq.On
		} else {
			detail = "missing right " + rq.Permission + " on the requested resource"
		}
	}
	if c.hasOwner {
		detail += " for this owner"
	}
	c.deny = &authz.Error{Kind: authz.ErrForbidden, Detail: detail}
	return c, nil
}

// holds reports whether p meets the requirement; placeholders are expanded
// with repl.
func (q *requirement) holds(p *authz.Principal, repl *caddy.Replacer) bool {
	owner := q.owner
	if q.ownDynamic {
		owner = repl.ReplaceAll(owner, "")
	}
	if !q.hasOn {
		if q.hasOwner {
			return p.AllowsOwned(q.perm, q.own, owner)
		}
		return p.HasPermission(q.perm)
	}
	res := q.on
	if q.onDynamic {
		res = repl.ReplaceAll(res, "")
		if _, _, ok := authz.ParseResource(res); !ok {
			return false
		}
	}
	if p.HasRight(res, q.perm) {
		return true
	}
	return q.hasOwner && p.HasRight(res, q.own) && p.Owns(owner)
}

// keySource is a compiled KeySource.
type keySource struct {
	kind uint8
	name string // canonical header name, query parameter or cookie name
}

const (
	kindNone uint8 = iota
	kindBearer
	kindHeader
	kindQuery
	kindCookie
)

func compileSources(srcs []KeySource) ([]keySource, error) {
	if len(srcs) == 0 {
		srcs = DefaultKeySources
	}
	out := make([]keySource, 0, len(srcs))
	for _, s := range srcs {
		var ks keySource
		switch s.From {
		case SourceBearer:
			if s.Name != "" {
				return nil, errors.New("key_from bearer takes no name")
			}
			ks = keySource{kind: kindBearer, name: hdrAuthorization}
		case SourceHeader:
			ks = keySource{kind: kindHeader, name: http.CanonicalHeaderKey(s.Name)}
		case SourceQuery:
			ks = keySource{kind: kindQuery, name: s.Name}
		case SourceCookie:
			ks = keySource{kind: kindCookie, name: s.Name}
		default:
			return nil, fmt.Errorf("key_from: unknown source %q (want bearer, header, query or cookie)", s.From)
		}
		if ks.kind != kindBearer && s.Name == "" {
			return nil, fmt.Errorf("key_from %s needs a name", s.From)
		}
		out = append(out, ks)
	}
	return out, nil
}

// takeKey returns the first source holding a key, and the key ("" and a
// zero source when none does).
func (g *Gateway) takeKey(r *http.Request) (keySource, string) {
	for _, s := range g.sources {
		if k := s.value(r); k != "" {
			return s, k
		}
	}
	return keySource{}, ""
}

// value returns the key this source holds in r, or "".
func (s keySource) value(r *http.Request) string {
	switch s.kind {
	case kindBearer:
		v := r.Header[hdrAuthorization]
		if len(v) == 0 {
			return ""
		}
		const scheme = "bearer "
		a := v[0]
		if len(a) <= len(scheme) || !strings.EqualFold(a[:len(scheme)], scheme) {
			return ""
		}
		return strings.TrimSpace(a[len(scheme):])
	case kindHeader:
		v := r.Header[s.name]
		if len(v) == 0 {
			return ""
		}
		return strings.TrimSpace(v[0])
	case kindQuery:
		return queryValue(r.URL.RawQuery, s.name)
	case kindCookie:
		c, err := r.Cookie(s.name)
		if err != nil {
			return ""
		}
		return c.Value
	}
	return ""
}

// remove deletes this source's credential from r.
func (s keySource) remove(r *http.Request) {
	switch s.kind {
	case kindBearer, kindHeader:
		delete(r.Header, s.name)
	case kindQuery:
		r.URL.RawQuery = removeQueryParam(r.URL.RawQuery, s.name)
		r.RequestURI = r.URL.RequestURI()
	case kindCookie:
		removeCookie(r.Header, s.name)
	}
}

// queryValue returns the first value of parameter name in the raw query,
// without parsing (and allocating) the whole query.
func queryValue(raw, name string) string {
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		k, v, _ := strings.Cut(part, "=")
		if queryKey(k) != name {
			continue
		}
		if strings.ContainsAny(v, "%+") {
			u, err := url.QueryUnescape(v)
			if err != nil {
				return ""
			}
			v = u
		}
		return v
	}
	return ""
}

func queryKey(k string) string {
	if strings.ContainsAny(k, "%+") {
		if u, err := url.QueryUnescape(k); err == nil {
			return u
		}
	}
	return k
}

// removeQueryParam returns raw without any parameter named name.
func removeQueryParam(raw, name string) string {
	var b strings.Builder
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		k, _, _ := strings.Cut(part, "=")
		if part == "" || queryKey(k) == name {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(part)
	}
	return b.String()
}

// removeCookie deletes cookie name from the Cookie headers of h.
func removeCookie(h http.Header, name string) {
	lines := h["Cookie"]
	if len(lines) == 0 {
		return
	}
	kept := make([]string, 0, len(lines))
	for _, line := range lines {
		var b strings.Builder
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimSpace(part)
			k, _, _ := strings.Cut(part, "=")
			if part == "" || strings.TrimSpace(k) == name {
				continue
			}
			if b.Len() > 0 {
				b.WriteString("; ")
			}
			b.WriteString(part)
		}
		if b.Len() > 0 {
			kept = append(kept, b.String())
		}
	}
	if len(kept) == 0 {
		delete(h, "Cookie")
		return
	}
	h["Cookie"] = kept
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Gateway)(nil)
	_ caddy.Validator             = (*Gateway)(nil)
	_ caddyhttp.MiddlewareHandler = (*Gateway)(nil)
)
