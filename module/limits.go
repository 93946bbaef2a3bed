package module

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/bits"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/limit"
)

// What a rate limit counts by.
const (
	ByKey       = "key"       // each API key
	ByUser      = "user"      // each API user (all its keys together)
	ByWorkspace = "workspace" // each workspace (all its users together)
	ByIP        = "ip"        // each client address (Caddy's client_ip)
)

// RateLimit is one `rate_limit` line of a route: each caller (as By says)
// may make Requests requests per Per on the route, at most Burst at once.
// Every line of a route is checked; a request any of them refuses is
// answered 429 and counts against none.
//
// A caller's own rate limit (set on its key, else its user, else the
// highest of its teams' over the admin API) replaces Requests, Per and
// Burst of the lines that count by key or by user; lines that count by
// workspace or by address hold for every caller as written.
type RateLimit struct {
	// Requests is how many requests a caller may make per Per. Required,
	// 1 to 1073741824.
	Requests int64 `json:"requests"`

	// Per is the period Requests applies to. Required.
	Per caddy.Duration `json:"per"`

	// By says what is counted: "key" (each API key), "user" (each API
	// user, all its keys together), "workspace" (each workspace) or "ip"
	// (each client address as Caddy sees it, so trusted_proxies apply).
	// Default: "user".
	By string `json:"by,omitempty"`

	// Burst is the most requests a caller may make at once; the rate over
	// time stays Requests per Per (the window becomes Per × Burst /
	// Requests long). Default: Requests.
	Burst int64 `json:"burst,omitempty"`

	// Name names the limit in the RateLimit-Policy and RateLimit response
	// fields: lower-case letters, digits, '-', '_' and '.'. Default: the
	// By value, with "-2", "-3", … for a route's second, third line of the
	// same By.
	Name string `json:"name,omitempty"`
}

// countBy is a RateLimit's By, compiled.
type countBy uint8

const (
	countByUser countBy = iota
	countByKey
	countByWorkspace
	countByIP
)

var countByOf = map[string]countBy{ByUser: countByUser, ByKey: countByKey, ByWorkspace: countByWorkspace, ByIP: countByIP}

// policyNameRe is what a RateLimit name may be.
var policyNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)

// creditsPolicy is the name of the credits' entry in the RateLimit fields.
const creditsPolicy = "credits"

// maxLimitLines bounds the rate_limit lines of one route.
const maxLimitLines = 8

// limitLine is a compiled RateLimit.
type limitLine struct {
	id        string // the limiter's fleet-wide name
	name      string
	by        countBy
	rate      limit.Rate
	perCaller bool   // by key or by user: a caller's own rate replaces rate
	policy    string // the RateLimit-Policy item of rate
	state     string // `"<name>";r=`, the start of the RateLimit item
	limited   prometheus.Counter

	mu       sync.RWMutex
	policies map[limit.Rate]string // the items of callers' own rates
}

// compileLimits checks the rate limits and the cost and precomputes what
// the hot path uses. ident names this route's limiters across a fleet.
func (g *Gateway) compileLimits(ident string) error {
	g.lines = g.lines[:0]
	route := routeLabel(g)
	g.creditsLimited = limitedRequests.WithLabelValues(route, creditsPolicy)
	if len(g.RateLimits) > maxLimitLines {
		return fmt.Errorf("rate_limit: at most %d lines per route", maxLimitLines)
	}
	names, err := limitNames(g.RateLimits)
	if err != nil {
		return err
	}
	for i, rl := range g.RateLimits {
		by := rl.By
		if by == "" {
			by = ByUser
		}
		switch by {
		case ByKey, ByUser, ByWorkspace, ByIP:
		default:
			return fmt.Errorf("rate_limit by %q: want key, user, workspace or ip", rl.By)
		}
		r := limit.Rate{Requests: rl.Requests, Per: time.Duration(rl.Per), Burst: rl.Burst}
		if err := r.Validate(); err != nil {
			return fmt.Errorf("rate_limit %s: %v", r, err)
		}
		name := names[i]
		g.lines = append(g.lines, &limitLine{
			id:        ident + "/" + strconv.Itoa(i) + "/" + by,
			name:      name,
			by:        countByOf[by],
			rate:      r,
			perCaller: by == ByKey || by == ByUser,
			policy:    policyItem(name, r),
			state:     `"` + name + `";r=`,
			limited:   limitedRequests.WithLabelValues(route, name),
		})
	}
	g.cost = 1
	if g.Cost != nil {
		if *g.Cost < 0 || *g.Cost > limit.MaxCredits {
			return fmt.Errorf("cost %d: want 0 to %d", *g.Cost, int64(limit.MaxCredits))
		}
		g.cost = *g.Cost
	}
	if g.taken == nil {
		g.taken = new(takeHandles)
	}
	g.noLimitPolicy = nil
	for _, l := range g.lines {
		g.noLimitPolicy = append(g.noLimitPolicy, l.policy)
	}
	return nil
}

// limitNames returns the policy name of each line: its Name, else its By
// (with "-2", "-3", … for the second, third line of the same By).
func limitNames(rls []RateLimit) ([]string, error) {
	seen := map[string]int{}
	used := map[string]bool{}
	out := make([]string, len(rls))
	for i, rl := range rls {
		name := rl.Name
		if name == "" {
			by := rl.By
			if by == "" {
				by = ByUser
			}
			seen[by]++
			name = by
			if n := seen[by]; n > 1 {
				name += "-" + strconv.Itoa(n)
			}
		} else if !policyNameRe.MatchString(name) || name == creditsPolicy {
			return nil, fmt.Errorf("rate_limit name %q: want lower-case letters, digits, '-', '_' and '.' (and not %q)", name, creditsPolicy)
		}
		if used[name] {
			return nil, fmt.Errorf("rate_limit: two lines of this route are named %q; give one a name of its own", name)
		}
		used[name] = true
		out[i] = name
	}
	return out, nil
}

// routeIdent names a route's limits across a fleet: its Name, else a
// digest of the handler's configuration, which every instance of the fleet
// shares. Two routes whose apiusers blocks are alike in every way share
// their counts; a name sets them apart.
func routeIdent(g *Gateway) (string, error) {
	if g.Name != "" {
		return g.Name, nil
	}
	b, err := json.Marshal(g)
	if err != nil {
		return "", fmt.Errorf("naming the route's limits: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8]), nil
}

// policyItem is the RateLimit-Policy item of rate r named name
// (draft-ietf-httpapi-ratelimit-headers-10): the quota q is the window's
// capacity, w the window in whole seconds (at least 1).
func policyItem(name string, r limit.Rate) string {
	w := (int64(r.Window()) + int64(time.Second) - 1) / int64(time.Second)
	return `"` + name + `";q=` + strconv.FormatInt(r.Capacity(), 10) + ";w=" + strconv.FormatInt(max(w, 1), 10)
}

// policyFor returns the RateLimit-Policy item of rate r on line l.
func (l *limitLine) policyFor(r limit.Rate) string {
	if r == l.rate {
		return l.policy // inline: the usual case
	}
	return l.ownPolicy(r)
}

// ownPolicy is policyFor for a caller's own rate.
func (l *limitLine) ownPolicy(r limit.Rate) string {
	l.mu.RLock()
	p, ok := l.policies[r]
	l.mu.RUnlock()
	if ok {
		return p
	}
	p = policyItem(l.name, r)
	l.mu.Lock()
	if l.policies == nil || len(l.policies) > 1024 {
		l.policies = map[limit.Rate]string{} // rates callers set are few; bound it anyway
	}
	l.policies[r] = p
	l.mu.Unlock()
	return p
}

// subject returns what line l counts this request by.
func (l *limitLine) subject(r *http.Request, p *authz.Principal, kid string) string {
	if l.by == countByUser {
		return p.UserID // the usual line, answered inline
	}
	return l.otherSubject(r, p, kid)
}

// otherSubject is subject for a line that does not count by user.
func (l *limitLine) otherSubject(r *http.Request, p *authz.Principal, kid string) string {
	switch l.by {
	case countByKey:
		return kid
	case countByWorkspace:
		return p.Workspace
	case countByIP:
		if vars, ok := r.Context().Value(caddyhttp.VarsCtxKey).(map[string]any); ok {
			if ip, ok := vars[caddyhttp.ClientIPVarKey].(string); ok && ip != "" {
				return ip
			}
		}
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			return host
		}
		return r.RemoteAddr
	}
	return p.UserID
}

// limitVals are the RateLimit fields' values of one request, and the
// bytes they are made of. They are part of the request's one allocation
// (newLimitVals), with the identity header values: header values are not
// shared between requests, since a handler after this one may edit them
// in place.
type limitVals struct {
	policy, state []string
	buf           []byte
}

// Sizes of the request's allocation, the smallest that holds its items
// (a route's lines, and credits): one, two, or every line and credits.
// An item's RateLimit value (`"user";r=1073741823;t=86400`) takes at most
// 40 bytes with a name of up to 10 characters; a longer one that does not
// fit is a string of its own. A request's only item has 32 bytes (a
// 144-byte allocation: `"user";r=1073741823;t=31622400` fits) or, when its
// value is longer, 48 (160 bytes).
const (
	itemBytes     = 40
	oneItemBytes  = 32
	wideItemBytes = 48
)

type limitVals1 struct {
	ids           [5]string
	policy, state [1]string
	buf           [oneItemBytes]byte
}

type limitVals1w struct {
	ids           [5]string
	policy, state [1]string
	buf           [wideItemBytes]byte
}

type limitVals2 struct {
	ids           [5]string
	policy, state [2]string
	buf           [2 * itemBytes]byte
}

type limitValsMax struct {
	ids           [5]string
	policy, state [maxLimitLines + 1]string
	buf           [(maxLimitLines + 1) * itemBytes]byte
}

// newLimitVals makes the request's one allocation for n items.
func (g *Gateway) newLimitVals(n int) (*[5]string, limitVals) {
	switch {
	case n <= 1:
		v := new(limitVals1w)
		return &v.ids, limitVals{policy: v.policy[:0], state: v.state[:0], buf: v.buf[:0]}
	case n == 2:
		v := new(limitVals2)
		return &v.ids, limitVals{policy: v.policy[:0], state: v.state[:0], buf: v.buf[:0]}
	}
	v := new(limitValsMax)
	return &v.ids, limitVals{policy: v.policy[:0], state: v.state[:0], buf: v.buf[:0]}
}

// add adds an item: its RateLimit-Policy value, and the RateLimit value
// prefix+r[;t=t] made in v's bytes.
func (v *limitVals) add(policy, prefix string, r, t int64, withT bool) {
	v.policy = append(v.policy, policy)
	var s string
	s, v.buf = stateItem(v.buf, prefix, r, t, withT)
	v.state = append(v.state, s)
}

// stateItem appends the RateLimit item prefix+r[;t=t] to buf and returns
// it, and buf with it. The item's bytes live in the request's allocation
// (buf's array), are never written again, and live as long as the header
// does; one that does not fit is a copy of its own.
func stateItem(buf []byte, prefix string, r, t int64, withT bool) (string, []byte) {
	start := len(buf)
	b := append(buf, prefix...)
	b = strconv.AppendInt(b, r, 10)
	if withT {
		b = append(b, ";t="...)
		b = strconv.AppendInt(b, t, 10)
	}
	if cap(b) != cap(buf) {
		return string(b[start:]), buf
	}
	return unsafe.String(&b[start], len(b)-start), b
}

// Headers of the RateLimit fields (canonical forms).
const (
	hdrRateLimitPolicy = "Ratelimit-Policy"
	hdrRateLimit       = "Ratelimit"
)

// seconds rounds d up to whole seconds.
func seconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

// Errors of limited requests, made once.
var (
	errRateLimited = &authz.Error{Kind: authz.ErrLimited, Detail: "rate limit exceeded"}
	errNoCredits   = &authz.Error{Kind: authz.ErrLimited, Detail: "no credits left"}
	errCreditsAway = &authz.Error{Kind: authz.ErrUnavailable, Detail: "credits unavailable"}
)

// limitRequest checks the route's rate limits (with the caller's own rate
// on the lines that count by key or user) and then spends the caller's
// credits for r, sets the RateLimit fields on w, and fills vals. It
// returns the error to answer with when the request may not go on: 429
// when a limit refuses it or the credits are spent, 503 when the credits
// cannot be spent for want of the store.
func (g *Gateway) limitRequest(w http.ResponseWriter, r *http.Request, sv *serving, p *authz.Principal, kid string, now int64, vals limitVals) error {
	var counted [maxLimitLines]limit.Ticket // to refund when refused
	denied := -1
	var retry time.Duration
	lines := g.limiters(sv)
	own, credits := p.CallerLimits(kid)
	for i, l := range g.lines {
		rate := l.rateFor(own)
		d := lines[i].AllowMemo(l.memo(p), l.subject(r, p, kid), rate, 1, now)
		counted[i] = d.Ticket()
		vals.add(l.policyFor(rate), l.state, d.Remaining, seconds(d.Reset), true)
		if !d.Allowed && (denied < 0 || d.RetryAfter > retry) {
			denied, retry = i, d.RetryAfter
		}
	}
	var err error
	if denied >= 0 {
		err = errRateLimited
		g.lines[denied].limited.Inc()
	} else if credits != nil && g.cost > 0 {
		q, item, cerr := g.spend(r, sv, p, credits, now)
		vals.add(item, `"credits";r=`, q.Remaining, seconds(q.Reset), q.Reset > 0)
		if cerr != nil {
			err, retry = cerr, q.RetryAfter
		}
	}
	h := w.Header()
	if n := len(vals.policy); n > 0 {
		h[hdrRateLimitPolicy] = vals.policy[:n:n]
		h[hdrRateLimit] = vals.state[:n:n]
	}
	if err == nil {
		return nil
	}
	for i := range g.lines {
		lines[i].Refund(counted[i])
	}
	return g.refuse(h, err, retry)
}

// The two usual limited requests have a path of their own, with less to
// do than limitRequest: a route with one rate limit and a caller without
// credits (limitOne), and a route without rate limits and a caller with
// credits (spendOne). Each returns the request's allocation
// (newLimitVals) as well, or the error to answer with.

func (g *Gateway) limitOne(w http.ResponseWriter, r *http.Request, sv *serving, p *authz.Principal, kid string, now int64) (*[5]string, error) {
	l := g.lines[0]
	own, _ := p.CallerLimits(kid)
	rate := l.rateFor(own)
	var d limit.Decision
	g.limiters(sv)[0].AllowMemoInto(&d, l.memo(p), l.subject(r, p, kid), rate, 1, now)
	vals := oneItem(w.Header(), l.policyFor(rate), l.state, d.Remaining, seconds(d.Reset), true)
	if !d.Allowed {
		l.limited.Inc()
		return nil, g.refuse(w.Header(), errRateLimited, d.RetryAfter)
	}
	return vals, nil
}

func (g *Gateway) spendOne(w http.ResponseWriter, r *http.Request, sv *serving, p *authz.Principal, kid string, now int64) (*[5]string, error) {
	_, credits := p.CallerLimits(kid)
	if credits == nil || g.cost == 0 {
		return new([5]string), nil // another of the user's keys has credits
	}
	q, item, err := g.spend(r, sv, p, credits, now)
	vals := oneItem(w.Header(), item, `"credits";r=`, q.Remaining, seconds(q.Reset), q.Reset > 0)
	if err != nil {
		return nil, g.refuse(w.Header(), err, q.RetryAfter)
	}
	return vals, nil
}

// rateFor returns the rate line l counts at: the caller's own rate own
// when the line counts by key or user and the caller has one, else the
// line's.
func (l *limitLine) rateFor(own *limit.Rate) limit.Rate {
	if l.perCaller && own != nil {
		return *own
	}
	return l.rate
}

// memo returns where line l remembers the window it counts p's requests
// in: p's Memo, or nil for a line by address (an address is no caller's:
// remember nothing).
func (l *limitLine) memo(p *authz.Principal) *limit.Memo {
	if l.by == countByIP {
		return nil
	}
	return p.Windows()
}

// spend spends the route's cost of credits c (p's) for r, and returns the
// decision, its RateLimit-Policy item, and the error to refuse r with (nil
// when the credits allow it).
func (g *Gateway) spend(r *http.Request, sv *serving, p *authz.Principal, c *limit.Credits, now int64) (limit.QuotaDecision, string, error) {
	q := sv.limits.SpendMemo(r.Context(), p.Windows(), c, g.cost, now)
	item := g.taken.creditsPolicy(c, q, now)
	switch {
	case q.Unavailable:
		return q, item, errCreditsAway
	case !q.Allowed:
		g.creditsLimited.Inc()
		return q, item, errNoCredits
	}
	return q, item, nil
}

// oneItem makes the request's allocation for one item, the smallest that
// holds it, and sets the RateLimit fields in h to it: policy and
// prefix+r[;t=t].
func oneItem(h http.Header, policy, prefix string, r, t int64, withT bool) *[5]string {
	rn, tn := decimalLen(r), 0
	n := len(prefix) + rn
	if withT {
		tn = decimalLen(t)
		n += len(";t=") + tn
	}
	var (
		ids            *[5]string
		policies, item *[1]string
		b              []byte
	)
	if n <= oneItemBytes {
		v := new(limitVals1)
		ids, policies, item, b = &v.ids, &v.policy, &v.state, v.buf[:n]
	} else {
		v := new(limitVals1w)
		ids, policies, item = &v.ids, &v.policy, &v.state
		if n <= wideItemBytes {
			b = v.buf[:n]
		} else {
			b = make([]byte, n) // a long name: a copy of its own
		}
	}
	if r < 0 || t < 0 { // never on the usual paths: strconv's signs
		item[0], _ = stateItem(b[:0], prefix, r, t, withT)
	} else {
		putItem(b, prefix, r, rn, t, tn, withT)
		item[0] = unsafe.String(&b[0], n)
	}
	policies[0] = policy
	h[hdrRateLimitPolicy] = policies[:]
	h[hdrRateLimit] = item[:]
	return ids
}

// putItem writes the RateLimit item prefix+r[;t=t] into b, which is as
// long as it (r and t, not negative, have rn and tn digits).
func putItem(b []byte, prefix string, r int64, rn int, t int64, tn int, withT bool) {
	i := copy(b, prefix)
	putDecimal(b[i:i+rn], uint64(r))
	if withT {
		i += rn + copy(b[i+rn:], ";t=")
		putDecimal(b[i:i+tn], uint64(t))
	}
}

// digitPairs holds the two digits of 00 to 99.
const digitPairs = "00010203040506070809" +
	"10111213141516171819" +
	"20212223242526272829" +
	"30313233343536373839" +
	"40414243444546474849" +
	"50515253545556575859" +
	"60616263646566676869" +
	"70717273747576777879" +
	"80818283848586878889" +
	"90919293949596979899"

// putDecimal writes the decimal digits of u into b, which has exactly as
// many bytes (decimalLen).
func putDecimal(b []byte, u uint64) {
	i := len(b)
	for u >= 100 && i >= 2 {
		q := u / 100
		j := (u - q*100) * 2
		b[i-1], b[i-2] = digitPairs[j+1], digitPairs[j]
		i -= 2
		u = q
	}
	switch {
	case u >= 10 && i >= 2:
		b[i-1], b[i-2] = digitPairs[u*2+1], digitPairs[u*2]
	case i >= 1:
		b[i-1] = byte('0' + u%10)
	}
}

// pow10 holds 10^0 to 10^19.
var pow10 = [20]uint64{
	1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9,
	1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
}

// decimalLen returns how many decimal digits x (not negative) has.
func decimalLen(x int64) int {
	u := uint64(x)
	n := (bits.Len64(u) * 1233) >> 12 // ⌊log10⌋ of the bit length's bound, or one less
	if n < len(pow10) && u >= pow10[n] {
		n++
	}
	return max(n, 1)
}

// refuse returns the answer to a request limitRequest refused with err:
// 429, or 503 when the credits are away, with Retry-After set in h when
// retry says when to.
func (g *Gateway) refuse(h http.Header, err error, retry time.Duration) error {
	if retry > 0 {
		h[hdrRetryAfter] = []string{strconv.FormatInt(seconds(retry), 10)}
	}
	if err == errCreditsAway {
		if retry <= 0 {
			h[hdrRetryAfter] = g.retryAfter
		}
		return caddyhttp.Error(http.StatusServiceUnavailable, err)
	}
	return caddyhttp.Error(http.StatusTooManyRequests, err)
}

// creditsPolicyItem is the RateLimit-Policy item of credits c: q is what a
// period grants (or the credits as set, without a refill), w the period in
// seconds (left out without a refill).
func creditsPolicyItem(c *limit.Credits, q limit.QuotaDecision, now int64) string {
	s := `"credits";q=` + strconv.FormatInt(q.Limit, 10)
	if !c.Refill.IsZero() {
		s += ";w=" + strconv.FormatInt(c.Refill.Seconds(c.Refill.Period(now)), 10)
	}
	return s
}

// limiters returns the route's limiters of sv's engine, taking them on
// first use.
func (g *Gateway) limiters(sv *serving) []*limit.Limiter {
	t := g.taken
	if ls := t.live.Load(); ls != nil && ls.engine == sv.limits {
		return ls.limiters
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if ls := t.live.Load(); ls != nil && ls.engine == sv.limits {
		return ls.limiters
	}
	t.release(g.lines)
	ls := &takenLimiters{engine: sv.limits}
	for _, l := range g.lines {
		ls.limiters = append(ls.limiters, sv.limits.Limiter(l.id))
	}
	t.live.Store(ls)
	return ls.limiters
}

// takeHandles holds the limiters a gateway took from an engine, and the
// RateLimit-Policy items of the credits it has seen.
type takeHandles struct {
	mu   sync.Mutex
	live atomic.Pointer[takenLimiters]

	last     atomic.Pointer[creditsItem] // the last one made or found
	pmu      sync.RWMutex
	policies map[[2]int64]string // {q, w} -> the credits' item
}

// creditsItem is a credits' RateLimit-Policy item and what it is of.
type creditsItem struct {
	k [2]int64
	p string
}

// creditsPolicy returns creditsPolicyItem, made once per quota and period.
func (t *takeHandles) creditsPolicy(c *limit.Credits, q limit.QuotaDecision, now int64) string {
	var w int64
	if !c.Refill.IsZero() {
		w = c.Refill.Seconds(c.Refill.Period(now))
	}
	k := [2]int64{q.Limit, w}
	if l := t.last.Load(); l != nil && l.k == k {
		return l.p // callers of one route mostly have the same quota
	}
	t.pmu.RLock()
	p, ok := t.policies[k]
	t.pmu.RUnlock()
	if ok {
		t.last.Store(&creditsItem{k: k, p: p})
		return p
	}
	p = creditsPolicyItem(c, q, now)
	t.pmu.Lock()
	if t.policies == nil || len(t.policies) > 1024 {
		t.policies = map[[2]int64]string{} // quotas callers have are few; bound it anyway
	}
	t.policies[k] = p
	t.pmu.Unlock()
	t.last.Store(&creditsItem{k: k, p: p})
	return p
}

// takenLimiters are the limiters a gateway took from an engine.
type takenLimiters struct {
	engine   *limit.Engine
	limiters []*limit.Limiter
}

// release gives back the limiters taken for lines; t.mu is held.
func (t *takeHandles) release(lines []*limitLine) {
	ls := t.live.Load()
	if ls == nil {
		return
	}
	for _, l := range lines {
		ls.engine.Release(l.id)
	}
	t.live.Store(nil)
}

// Cleanup gives back the route's limiters (a reload takes the new ones
// first, so counts go on).
func (g *Gateway) Cleanup() error {
	if g.taken == nil {
		return nil
	}
	g.taken.mu.Lock()
	defer g.taken.mu.Unlock()
	g.taken.release(g.lines)
	return nil
}

var _ caddy.CleanerUpper = (*Gateway)(nil)
