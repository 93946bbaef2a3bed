package module

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/apiusers/apiusers/admin"
	"github.com/apiusers/apiusers/authz"
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
//     when there is no key ("no API key"), the key expired ("API key
//     expired"), or it is malformed, badly signed, not valid yet, unknown
//     or revoked, or its user is not active (all of them "invalid API key":
//     a stolen key tells nothing of its account; the debug log has the
//     reason);
//   - 429 with `Retry-After` instead of that 401 when the client address
//     has failed to authenticate too often (the app's auth_failures; a
//     valid key is never refused by it);
//   - 403 with `WWW-Authenticate: Bearer realm="apiusers", error="insufficient_scope"`
//     when the caller is authenticated but the route's workspace, roles or
//     require lines do not admit it;
//   - 429 with `Retry-After` when one of the route's RateLimits refuses the
//     request ("rate limit exceeded"), or the caller's credits do not
//     cover the route's Cost ("no credits left"; Retry-After only when a
//     refill is due);
//   - 503 with `Retry-After` when the store is unreachable and the principal
//     is not cached (never 401 or 403 then), or the credits cannot be spent
//     for want of the store ("credits unavailable").
//
// Every answer of a route with RateLimits, and every answer to a caller
// with credits, carries the RateLimit-Policy and RateLimit response fields
// (draft-ietf-httpapi-ratelimit-headers-10); answers that counted nothing
// (401, 403, 503) carry the route's RateLimit-Policy only.
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
// Identity header names listed in the client's Connection header are
// taken out of it, so a proxy after the gateway does not drop them as
// hop-by-hop. Unless KeepCredentials is set, every configured key source
// (the Authorization header, the header, the query parameter or the
// cookie) is cleared before the request goes on, not only the one the key
// came from.
//
// No key reaches Caddy's access log: Caddy redacts only the Authorization
// and Cookie headers of the request it logs, so when a request carries a
// key in another header source or in a query parameter, Caddy's line is
// replaced by the same line with those values REDACTED (accesslog.go),
// whether the request is admitted or refused.
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

	// KeepCredentials passes the key sources on to the upstream. Default:
	// false (every configured source is cleared, whichever held the key).
	KeepCredentials bool `json:"keep_credentials,omitempty"`

	// Record, when set, stores each admitted call as an API message of the
	// caller (listed at GET /workspaces/{ws}/messages of the admin API).
	// Retention and the write queue are options of the apiusers app.
	// Default: nothing is recorded.
	Record *RecordConfig `json:"record,omitempty"`

	// RateLimits lists the route's rate limits; a request must fit every
	// one, else it is answered 429 with Retry-After. Every answer of a
	// route with rate limits carries the RateLimit-Policy and RateLimit
	// fields. Default: none.
	RateLimits []RateLimit `json:"rate_limits,omitempty"`

	// Cost is how many credits a request on this route spends, when its
	// caller (its key, else its user) has credits; a caller without
	// enough left is answered 429. 0 makes the route free. Default: 1.
	Cost *int64 `json:"cost,omitempty"`

	// Name names the route: the route label of its metrics
	// (apiusers_gateway_requests_total, apiusers_gateway_limited_total) and
	// the name its rate limits count under across a fleet (two routes with
	// one name share their counts). Lower-case letters, digits, '-', '_'
	// and '.'. Default: in metrics, a summary of the route's rules, such as
	// "workspace=acme require=events.read owner {re.ev.1}" ("any" for a
	// route without rules); for rate-limit counts, a digest of the block
	// (routes alike in every way share their counts).
	Name string `json:"name,omitempty"`

	app        *App
	bodyMax    int64
	now        func() time.Time
	retryAfter []string
	roles      []authz.Role
	reqs       []requirement
	sources    []keySource
	secrets    logSecrets // where the key sources put secrets Caddy's access log would show
	counters   *gatewayCounters
	accessLog  *accessLog
	logger     *zap.Logger

	lines          []*limitLine
	cost           int64
	noLimitPolicy  []string     // the RateLimit-Policy of answers that count nothing
	taken          *takeHandles // the limiters taken from the engine
	creditsLimited prometheus.Counter
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

// CaddyModule returns the Caddy module information.
func (Gateway) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.apiusers",
		New: func() caddy.Module { return new(Gateway) },
	}
}

// Provision compiles the route's rules and finds the apiusers app (which
// runs with its defaults when the Caddyfile has no global apiusers block),
// whose service it uses once the app is started.
func (g *Gateway) Provision(ctx caddy.Context) error {
	g.logger = ctx.Logger()
	if err := g.compile(); err != nil {
		return err
	}
	appIface, err := ctx.App("apiusers")
	if err != nil {
		return fmt.Errorf("getting apiusers app: %w", err)
	}
	g.app = appIface.(*App)
	g.retryAfter = g.app.retryAfter
	g.accessLog = newAccessLog(ctx)
	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return err
	}
	g.counters = newGatewayCounters(routeLabel(g))
	if g.Record != nil {
		return g.app.wantRecorder(ctx)
	}
	return nil
}

// Validate reports whether the handler is ready.
func (g *Gateway) Validate() error {
	if g.app == nil {
		return errors.New("apiusers: no apiusers app")
	}
	return nil
}

// compile checks the configuration and precomputes what the hot path uses.
func (g *Gateway) compile() error {
	if g.Workspace != "" && !authz.ValidWorkspaceID(g.Workspace) {
		return fmt.Errorf("workspace %q is not a valid workspace id", g.Workspace)
	}
	if g.Name != "" && !policyNameRe.MatchString(g.Name) {
		return fmt.Errorf("name %q: want lower-case letters, digits, '-', '_' and '.'", g.Name)
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
	ident, err := routeIdent(g)
	if err != nil {
		return err
	}
	if err := g.compileLimits(ident); err != nil {
		return err
	}
	if g.sources, err = compileSources(g.KeyFrom); err != nil {
		return err
	}
	g.secrets = secretsOfSources(g.sources)
	return nil
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	// First, before anything changes r: no key reaches the access log,
	// admitted or refused.
	g.accessLog.redactAccessLog(w, r, &g.secrets)
	sv, err := g.app.open()
	if err != nil {
		return g.authError(w, err)
	}
	_, key := g.takeKey(r)
	now := sv.svc.Now()
	p, cl, err := sv.svc.AuthenticateAt(r.Context(), key, now)
	if err != nil {
		// Only now, with a key that failed, is the failure throttle
		// consulted: a valid key never pays for it.
		if err != authz.ErrNoKey && errors.Is(err, authz.ErrUnauthenticated) {
			if terr := sv.failures.failed(r); terr != nil {
				g.counters.throttled()
				return g.throttled(w, terr)
			}
		}
		return g.authError(w, err)
	}
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if deny := g.decide(p, repl); deny != nil {
		g.setNoLimitPolicy(w)
		w.Header()[hdrWWWAuthenticate] = challengeInsufficientScope
		if c := g.logger.Check(zapcore.DebugLevel, "request denied"); c != nil {
			c.Write(zap.String("user_id", p.UserID), zap.String("key_id", cl.KeyID), zap.Error(deny))
		}
		g.counters.forbidden()
		return caddyhttp.Error(http.StatusForbidden, deny)
	}

	// The request's one allocation: a handler after this one may edit
	// header values in place (Caddy's request_header replace does), so the
	// cached principal's strings are not handed out in slices of their
	// own; the five values share one array instead (on a limited route,
	// with the RateLimit fields' values). Each slice has capacity 1, so an
	// append reallocates rather than writing into its neighbour.
	var vals *[5]string
	switch credits := p.HasCredits(); {
	case len(g.lines) == 0 && !credits:
		vals = new([5]string)
	case len(g.lines) == 1 && !credits:
		vals, err = g.limitOne(w, r, sv, p, cl.KeyID, now.UnixNano())
	case len(g.lines) == 0:
		vals, err = g.spendOne(w, r, sv, p, cl.KeyID, now.UnixNano())
	default:
		n := len(g.lines)
		if credits {
			n++
		}
		var lv limitVals
		vals, lv = g.newLimitVals(n)
		err = g.limitRequest(w, r, sv, p, cl.KeyID, now.UnixNano(), lv)
	}
	if err != nil {
		if herr, ok := err.(caddyhttp.HandlerError); ok && herr.StatusCode == http.StatusServiceUnavailable {
			g.counters.unavailable()
		} else {
			g.counters.limited()
		}
		return err
	}

	setPlaceholders(r, repl, p, cl.KeyID)

	if !g.KeepCredentials {
		// Every source, not only the one the key came from: a client may
		// send the key twice, or something else that looks like one.
		for _, s := range g.sources {
			s.remove(r)
		}
	}
	// A header the client names in Connection is hop-by-hop: a proxy after
	// this handler would drop it, identity headers included. Keep those
	// names out of it.
	if conn := r.Header["Connection"]; len(conn) > 0 {
		dropConnectionTokens(r.Header, conn)
	}
	// Assigning the canonical key replaces every value the client sent.
	vals[0], vals[1], vals[2], vals[3], vals[4] = p.UserID, p.Username, p.Workspace, string(p.Role), cl.KeyID
	h := r.Header
	h[hdrUserID] = vals[0:1:1]
	h[hdrUsername] = vals[1:2:2]
	h[hdrWorkspace] = vals[2:3:3]
	h[hdrRole] = vals[3:4:4]
	h[hdrKeyID] = vals[4:5:5]
	g.counters.allowed()
	if sv.rec != nil && g.Record != nil {
		return g.serveRecorded(w, r, next, sv.rec, p, cl)
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
// per principal and key and kept with the cached principal (its Memo), so
// a request costs a slice append instead of six locked map writes. A later
// gateway of the same request (or a request without Caddy's vars) sets
// static values, which the replacer consults before any provider: the last
// gateway's caller is the one the placeholders describe.
func setPlaceholders(r *http.Request, repl *caddy.Replacer, p *authz.Principal, kid string) {
	ph := placeholdersOf(p, kid)
	if vars, ok := r.Context().Value(caddyhttp.VarsCtxKey).(map[string]any); ok {
		if _, again := vars[varPlaceholders]; !again {
			vars[varPlaceholders] = true
			repl.Map(ph.provide)
			return
		}
	}
	repl.Set(phUserID, ph.id)
	repl.Set(phUsername, ph.username)
	repl.Set(phWorkspace, ph.workspace)
	repl.Set(phRole, ph.role)
	repl.Set(phKeyID, ph.keyID)
	repl.Set(phTeams, ph.teams)
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

// placeholders is what the gateway keeps with a cached principal and key:
// the values of its placeholders, boxed once, and the provider answering
// them, so that setting them allocates nothing.
type placeholders struct {
	id, username, workspace, role, keyID, teams any
	provide                                     caddy.ReplacerFunc
}

// placeholdersOf returns the placeholders of p and its key kid, from p's
// memo of the key or made (and kept there) on the first call.
func placeholdersOf(p *authz.Principal, kid string) *placeholders {
	memo := p.Memo(kid)
	if memo != nil {
		if ph, _ := memo.Load().(*placeholders); ph != nil {
			return ph
		}
	}
	ph := &placeholders{
		id: p.UserID, username: p.Username, workspace: p.Workspace, role: string(p.Role),
		keyID: kid, teams: strings.Join(p.Teams, ","),
	}
	ph.provide = ph.value
	if memo != nil {
		memo.Store(ph) // a racing request stores an equal one
	}
	return ph
}

// value answers the gateway's placeholders.
func (ph *placeholders) value(key string) (any, bool) {
	if len(key) <= len(phPrefix) || key[:len(phPrefix)] != phPrefix {
		return nil, false
	}
	switch key[len(phPrefix):] {
	case "id":
		return ph.id, true
	case "username":
		return ph.username, true
	case "workspace":
		return ph.workspace, true
	case "role":
		return ph.role, true
	case "key_id":
		return ph.keyID, true
	case "teams":
		return ph.teams, true
	}
	return nil, false
}

// authError maps an error of Authenticate to the response: 401 for a bad
// key or user, 503 (fail closed, retryable) for everything else.
func (g *Gateway) authError(w http.ResponseWriter, err error) error {
	g.setNoLimitPolicy(w)
	if errors.Is(err, authz.ErrUnauthenticated) {
		g.counters.unauth()
		if c := g.logger.Check(zapcore.DebugLevel, "request unauthenticated"); c != nil {
			var ae *authz.Error
			reason := err.Error()
			if errors.As(err, &ae) {
				reason = ae.Reason()
			}
			c.Write(zap.String("reason", reason))
		}
		w.Header()[hdrWWWAuthenticate] = challengeInvalidToken
		return caddyhttp.Error(http.StatusUnauthorized, err)
	}
	g.counters.unavailable()
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

// throttled answers 429 with Retry-After for a client that failed to
// authenticate too often (see AuthFailures).
func (g *Gateway) throttled(w http.ResponseWriter, err error) error {
	g.setNoLimitPolicy(w)
	var te *authz.ThrottledError
	if errors.As(err, &te) {
		w.Header()[hdrRetryAfter] = []string{admin.RetryAfter(te.RetryAfter)}
	}
	if c := g.logger.Check(zapcore.DebugLevel, "request throttled"); c != nil {
		c.Write(zap.Error(err))
	}
	return caddyhttp.Error(http.StatusTooManyRequests, err)
}

// setNoLimitPolicy gives an answer that counted nothing (401, 403, 503)
// the route's RateLimit-Policy, when it has rate limits.
func (g *Gateway) setNoLimitPolicy(w http.ResponseWriter) {
	if len(g.noLimitPolicy) > 0 {
		w.Header()[hdrRateLimitPolicy] = append([]string(nil), g.noLimitPolicy...)
	}
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
	challengeInvalidToken      = []string{admin.ChallengeInvalidToken}
	challengeInsufficientScope = []string{admin.ChallengeInsufficientScope}
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

// Interface guards
var (
	_ caddy.Provisioner           = (*Gateway)(nil)
	_ caddy.Validator             = (*Gateway)(nil)
	_ caddyhttp.MiddlewareHandler = (*Gateway)(nil)
)
