package authz

import (
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"github.com/apiusers/apiusers/authz/ids"
	"github.com/apiusers/apiusers/authz/limit"
)

// Principal is everything the gateway and the admin API need to decide about
// one user: status, role, effective permissions (role ∪ user ∪ teams), grants,
// and the user's live keys. It is immutable once built and shared by every
// request that reads it from the cache.
//
// What principals of the same workspace, role, teams, permissions and
// grants hold in common (the compiled permission set and grants, the
// workspace and team strings) is one shared access value, so that a cached
// principal costs little more than its ids and keys.
type Principal struct {
	UserID    string
	Username  string
	Workspace string
	// canonName is Username in canonical form (CanonicalName), for Owns.
	canonName string
	Kind      Kind
	Role      Role
	Status    Status
	Teams     []string
	// Everywhere is true for superadmins, who act in every workspace.
	Everywhere bool

	*access              // shared with principals of the same rights
	keys      []keyState // the user's keys (a few: looked up in order)
	loadedAt  time.Time
	stamp     loadStamp      // the cache's counters when the load began
	wsEpoch   *atomic.Uint64 // the cache's counter of this principal's workspace
	userEpoch *atomic.Uint64 // the cache's counter of this principal's user shard
	used      atomic.Uint32  // the cache's clock at its last use (see boundedMap)
	limits    *callerLimits  // nil when the user and its keys and teams set none
	windows   limit.Memo     // the rate limit windows it was last counted in
}

// callerLimits are a principal's own limits: the user's rate limit (else
// the highest of its teams'), its credits, and whether it or any of its
// keys has credits.
type callerLimits struct {
	rate       *limit.Rate
	credits    *limit.Credits
	anyCredits bool
	keys       bool // some key has limits of its own
}

// keyLimits are a key's own rate limit and credits.
type keyLimits struct {
	rate    *limit.Rate
	credits *limit.Credits
}

func (p *Principal) lastUse() *atomic.Uint32 { return &p.used }

// access is what principals with the same rights share (see accessFor).
type access struct {
	workspace string
	teams     []string

	perms  permSet
	grants map[string]rightSet // "type:id" -> rights
	wild   map[string]rightSet // "type" -> rights, from "type:*" grants
}

type rightSet map[string]struct{}

type keyState struct {
	id       string
	notAfter int64 // Unix nanoseconds; 0: no end
	// lastTouch is when this instance last queued a last_used_at update
	// for the key (Unix seconds).
	lastTouch atomic.Int64
	memo      atomic.Value // see Principal.Memo
	limits    *keyLimits   // nil when the key sets none
}

// key returns the state of key id kid, or nil.
func (p *Principal) key(kid string) *keyState {
	for i := range p.keys {
		if p.keys[i].id == kid {
			return &p.keys[i]
		}
	}
	return nil
}

// The parts of the stored records a principal is built from; the other
// fields are skipped unread.
type principalUser struct {
	ID          string   `json:"id"`
	Workspace   string   `json:"workspace"`
	Username    string   `json:"username"`
	Kind        Kind     `json:"kind"`
	Role        Role     `json:"role"`
	Status      Status   `json:"status"`
	Permissions []string `json:"permissions"`
	Grants      []Grant  `json:"grants"`
	Teams       []string `json:"teams"`

	RateLimit *RateLimit     `json:"rate_limit"`
	Credits   *storedCredits `json:"credits"`
}

type principalTeam struct {
	Permissions []string   `json:"permissions"`
	Grants      []Grant    `json:"grants"`
	RateLimit   *RateLimit `json:"rate_limit"`
}

type principalKey struct {
	ID        string          `json:"id"`
	Created   json.RawMessage `json:"c"` // see keyRecord
	LastUsed  json.RawMessage `json:"l"`
	ExpiresAt *time.Time      `json:"expires_at"`
	RevokesAt *time.Time      `json:"revokes_at"`

	RateLimit *RateLimit     `json:"rate_limit"`
	Credits   *storedCredits `json:"credits"`
}

// BuildPrincipal decodes a stored record into a Principal.
func BuildPrincipal(rec *PrincipalRecord) (*Principal, error) {
	// u and k stay on the stack when the scanners read the records (the
	// common case); encoding/json decodes into copies of their own.
	var u principalUser
	if !u.scan(rec.User) {
		var du principalUser
		if err := json.Unmarshal(rec.User, &du); err != nil {
			return nil, fmt.Errorf("decoding user record: %w", err)
		}
		u = du
	}
	teams := make([]principalTeam, len(rec.Teams))
	for i, raw := range rec.Teams {
		if err := json.Unmarshal(raw, &teams[i]); err != nil {
			return nil, fmt.Errorf("decoding team record of user %s: %w", u.ID, err)
		}
	}
	acc := accessFor(&u, teams)
	p := &Principal{
		UserID:     u.ID,
		Username:   u.Username,
		canonName:  CanonicalName(u.Username),
		Workspace:  acc.workspace,
		Kind:       canonicalKind(u.Kind),
		Role:       canonicalRole(u.Role),
		Status:     canonicalStatus(u.Status),
		Teams:      acc.teams,
		Everywhere: roles[u.Role].everywhere,
		access:     acc,
	}
	uses := 0
	for _, raw := range rec.Keys {
		if isUse(raw) {
			uses++
		}
	}
	p.keys = make([]keyState, len(rec.Keys)-uses)
	lim := callerLimits{rate: ownRate(u.RateLimit), credits: u.Credits.limitCredits(acc.workspace, u.ID)}
	if lim.rate == nil {
		for _, t := range teams {
			if r := ownRate(t.RateLimit); r != nil && (lim.rate == nil || r.Faster(*lim.rate)) {
				lim.rate = r
			}
		}
	}
	lim.anyCredits = lim.credits != nil
	i := 0
	for _, raw := range rec.Keys {
		if isUse(raw) {
			continue
		}
		var k principalKey
		if !k.scan(raw) {
			var dk principalKey
			if err := json.Unmarshal(raw, &dk); err != nil {
				return nil, fmt.Errorf("decoding key record of user %s: %w", u.ID, err)
			}
			k = dk
		}
		ks := &p.keys[i]
		i++
		ks.id = k.ID
		if k.RateLimit != nil || k.Credits != nil {
			ks.limits = &keyLimits{rate: ownRate(k.RateLimit), credits: k.Credits.limitCredits(acc.workspace, k.ID)}
			lim.anyCredits = lim.anyCredits || ks.limits.credits != nil
			lim.keys = true
		}
		if k.LastUsed != nil {
			// A use this recent is on record already (by this instance
			// before it reloaded, or by another): the next update is due
			// a touch interval after it, not at the first use seen here.
			created, err := decodeStamp(k.Created, ids.Nanos(k.ID))
			if err != nil {
				return nil, fmt.Errorf("decoding key record of user %s: %w", u.ID, err)
			}
			last, err := decodeStamp(k.LastUsed, stampBase(created))
			if err != nil {
				return nil, fmt.Errorf("decoding key record of user %s: %w", u.ID, err)
			}
			ks.lastTouch.Store(last.Unix())
		}
		if k.ExpiresAt != nil {
			ks.notAfter = k.ExpiresAt.UnixNano()
		}
		if k.RevokesAt != nil && (ks.notAfter == 0 || k.RevokesAt.UnixNano() < ks.notAfter) {
			ks.notAfter = k.RevokesAt.UnixNano()
		}
	}
	if uses > 0 {
		// A use record (lastused.go) is a later use than a credential's
		// own "l" when it is later.
		for _, raw := range rec.Keys {
			cred, at, ok := ParseUse(raw)
			if !ok {
				continue
			}
			for j := range p.keys {
				if ks := &p.keys[j]; ks.id == string(cred) {
					if at > ks.lastTouch.Load() {
						ks.lastTouch.Store(at)
					}
					break
				}
			}
		}
	}
	if lim.rate != nil || lim.anyCredits || lim.keys {
		held := lim // allocated only here: most principals have no limits
		p.limits = &held
	}
	return p, nil
}

// The canonical spellings of the names a principal holds, so that a
// decoded copy is not kept once per principal.
func canonicalRole(r Role) Role {
	for _, c := range RoleNames {
		if c == r {
			return c
		}
	}
	return r
}

func canonicalKind(k Kind) Kind {
	for _, c := range [...]Kind{KindAPI, KindMember} {
		if c == k {
			return c
		}
	}
	return k
}

func canonicalStatus(s Status) Status {
	for _, c := range [...]Status{StatusActive, StatusInactive, StatusTrash} {
		if c == s {
			return c
		}
	}
	return s
}

// accesses interns access values by what they are built from, so that
// principals with the same rights share one. It holds them weakly: an
// access no cached principal uses any more is collected, and its entry goes
// with it.
var accesses = struct {
	sync.Mutex
	m map[string]weak.Pointer[access]
}{m: map[string]weak.Pointer[access]{}}

// accessFor returns the shared access of a user with teams.
func accessFor(u *principalUser, teams []principalTeam) *access {
	var buf [256]byte
	id := appendAccessID(buf[:0], u, teams)
	accesses.Lock()
	defer accesses.Unlock()
	if wp, ok := accesses.m[string(id)]; ok {
		if a := wp.Value(); a != nil {
			return a
		}
	}
	key := string(id)
	a := newAccess(u, teams)
	accesses.m[key] = weak.Make(a)
	runtime.AddCleanup(a, dropAccess, key)
	return a
}

func dropAccess(id string) {
	accesses.Lock()
	if wp, ok := accesses.m[id]; ok && wp.Value() == nil {
		delete(accesses.m, id)
	}
	accesses.Unlock()
}

// appendAccessID appends to b the name of everything an access is built
// from: the workspace, the role, the team ids, and the permissions and
// grants of the user and its teams (each list sorted, so the same rights
// in another order share).
func appendAccessID(b []byte, u *principalUser, teams []principalTeam) []byte {
	var perms, grants []string
	add := func(ps []string, gs []Grant) {
		perms = append(perms, ps...)
		for _, g := range gs {
			for _, r := range g.Rights {
				grants = append(grants, g.Resource+" "+r)
			}
		}
	}
	add(u.Permissions, u.Grants)
	for i := range teams {
		add(teams[i].Permissions, teams[i].Grants)
	}
	sortStrings(perms)
	sortStrings(grants)
	b = append(b, u.Workspace...)
	b = append(b, 0)
	b = append(b, u.Role...)
	for _, parts := range [...][]string{u.Teams, slices.Compact(perms), slices.Compact(grants)} {
		b = append(b, 0)
		for i, s := range parts {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, s...)
		}
	}
	return b
}

func newAccess(u *principalUser, teams []principalTeam) *access {
	a := &access{
		workspace: strings.Clone(u.Workspace),
		perms:     newPermSet(),
		grants:    map[string]rightSet{},
		wild:      map[string]rightSet{},
	}
	if len(u.Teams) > 0 {
		a.teams = append([]string(nil), u.Teams...)
	}
	a.perms.addRole(u.Role)
	a.perms.add(u.Permissions)
	a.addGrants(u.Grants)
	for i := range teams {
		a.perms.add(teams[i].Permissions)
		a.addGrants(teams[i].Grants)
	}
	return a
}

func (a *access) addGrants(gs []Grant) {
	for _, g := range gs {
		typ, id, ok := ParseResource(g.Resource)
		if !ok {
			continue
		}
		m, key := a.grants, g.Resource
		if id == "*" {
			m, key = a.wild, typ
		}
		rs := m[key]
		if rs == nil {
			rs = make(rightSet, len(g.Rights))
			m[key] = rs
		}
		for _, r := range g.Rights {
			rs[r] = struct{}{}
		}
	}
}

// ownRate is r as a limit.Rate, nil when there is none (or it does not
// parse: records are checked when written).
func ownRate(r *RateLimit) *limit.Rate {
	if r == nil {
		return nil
	}
	lr, ok := r.Rate()
	if !ok {
		return nil
	}
	return &lr
}

// CallerLimits returns the caller's own rate limit (its key kid's, else
// its user's, else the highest of its teams'; nil for none) and the
// credits it spends (the key's, else the user's; nil for none).
func (p *Principal) CallerLimits(kid string) (*limit.Rate, *limit.Credits) {
	if p.limits == nil {
		return nil, nil // most callers
	}
	rate, credits := p.limits.rate, p.limits.credits
	if !p.limits.keys {
		return rate, credits
	}
	if ks := p.key(kid); ks != nil && ks.limits != nil {
		if ks.limits.rate != nil {
			rate = ks.limits.rate
		}
		if ks.limits.credits != nil {
			credits = ks.limits.credits
		}
	}
	return rate, credits
}

// Windows remembers the rate limit windows the principal's requests were
// last counted in (limit.Limiter.AllowMemo), for lines that count by its
// user, its keys or its workspace, and the credit account it last spent
// from (limit.Engine.SpendMemo).
func (p *Principal) Windows() *limit.Memo { return &p.windows }

// HasCredits reports whether the user or any of its keys has credits.
func (p *Principal) HasCredits() bool { return p.limits != nil && p.limits.anyCredits }

// Active reports whether the user may authenticate.
func (p *Principal) Active() bool { return p.Status == StatusActive }

// KeyLive reports whether key id kid of this user may authenticate at t.
func (p *Principal) KeyLive(kid string, t time.Time) bool {
	ks := p.key(kid)
	return ks != nil && ks.liveAt(t)
}

// liveAt reports whether the key may authenticate at t.
func (ks *keyState) liveAt(t time.Time) bool {
	return ks.notAfter == 0 || t.UnixNano() < ks.notAfter
}

// touch reports whether the key's last_used_at is due for an update at
// now (at most once per interval per loaded principal), and claims it.
func (ks *keyState) touch(now int64, interval int64) bool {
	last := ks.lastTouch.Load()
	return now-last >= interval && ks.lastTouch.CompareAndSwap(last, now)
}

// Memo returns a place where a caller may keep what it derives from this
// principal and its key kid, to make it once and share it with every
// request with that key while the principal is cached (a reload builds a
// new principal, with empty memos); nil when the key is unknown. authz
// never reads it.
func (p *Principal) Memo(kid string) *atomic.Value {
	if ks := p.key(kid); ks != nil {
		return &ks.memo
	}
	return nil
}

// InWorkspace reports whether the principal may act in workspace ws.
func (p *Principal) InWorkspace(ws string) bool {
	return p.Everywhere || p.Workspace == ws
}

// HasPermission reports whether the principal holds the workspace permission
// perm exactly (a ".own" permission does not count for its base).
func (p *Principal) HasPermission(perm string) bool { return p.perms.has(perm) }

// HasRight reports whether the principal holds right on resource ("type:id"),
// through a grant on the resource, a grant on "type:*", or a role with "*".
// Asking about "type:*" itself is answered only by "type:*" grants.
func (p *Principal) HasRight(resource, right string) bool {
	if p.perms.all {
		return true
	}
	i := strings.IndexByte(resource, ':')
	if i <= 0 {
		return false
	}
	if resource[i+1:] != "*" {
		if rs, ok := p.grants[resource]; ok {
			if _, ok := rs[right]; ok {
				return true
			}
		}
	}
	if rs, ok := p.wild[resource[:i]]; ok {
		_, ok := rs[right]
		return ok
	}
	return false
}

// Owns reports whether owner names this principal's user, by id or by
// username in canonical form (CanonicalName: the form uniqueness is judged
// in, so no other user's name can match).
func (p *Principal) Owns(owner string) bool {
	return owner != "" && (owner == p.UserID || SameName(owner, p.canonName))
}

// AllowsOwned reports whether the principal may do perm on data owned by
// owner: holding perm allows any owner; holding only ownPerm (perm + ".own")
// allows only the principal's own data.
func (p *Principal) AllowsOwned(perm, ownPerm, owner string) bool {
	return p.perms.has(perm) || (p.perms.has(ownPerm) && p.Owns(owner))
}

// Permissions returns the effective permissions, sorted ("*" first when the
// role holds every permission; see Except).
func (p *Principal) Permissions() []string { return p.perms.list() }

// Except returns the permissions a "*" role leaves out, sorted.
func (p *Principal) Except() []string {
	out := make([]string, 0, len(p.perms.except))
	for e := range p.perms.except {
		if !p.perms.has(e) {
			out = append(out, e)
		}
	}
	sortStrings(out)
	return out
}

// Grants returns the effective grants, sorted by resource.
func (p *Principal) Grants() []Grant {
	out := make([]Grant, 0, len(p.grants)+len(p.wild))
	for res, rs := range p.grants {
		out = append(out, Grant{Resource: res, Rights: rs.list()})
	}
	for typ, rs := range p.wild {
		out = append(out, Grant{Resource: typ + ":*", Rights: rs.list()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Resource < out[j].Resource })
	return out
}

func (rs rightSet) list() []string {
	out := make([]string, 0, len(rs))
	for r := range rs {
		out = append(out, r)
	}
	sortStrings(out)
	return out
}

func sortStrings(s []string) { sort.Strings(s) }
