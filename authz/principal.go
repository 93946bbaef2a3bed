package authz

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

// Principal is everything the gateway and the admin API need to decide about
// one user: status, role, effective permissions (role ∪ user ∪ teams), grants,
// and the user's live keys. It is immutable once built and shared by every
// request that reads it from the cache.
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

	perms  permSet
	grants map[string]rightSet // "type:id" -> rights
	wild   map[string]rightSet // "type" -> rights, from "type:*" grants
	keys   map[string]*keyState

	loadedAt  time.Time
	stamp     loadStamp      // the cache's counters when the load began
	wsEpoch   *atomic.Uint64 // the cache's counter of this principal's workspace
	userEpoch *atomic.Uint64 // the cache's counter of this principal's user shard
}

type rightSet map[string]struct{}

type keyState struct {
	// lastTouch is when this instance last queued a last_used_at update
	// for the key (Unix seconds).
	lastTouch atomic.Int64
	notAfter  time.Time    // zero: no end
	memo      atomic.Value // see Principal.Memo
}

// BuildPrincipal decodes a stored record into a Principal.
func BuildPrincipal(rec *PrincipalRecord) (*Principal, error) {
	var u User
	if err := json.Unmarshal(rec.User, &u); err != nil {
		return nil, fmt.Errorf("decoding user record: %w", err)
	}
	p := &Principal{
		UserID:     u.ID,
		Username:   u.Username,
		canonName:  CanonicalName(u.Username),
		Workspace:  u.Workspace,
		Kind:       u.Kind,
		Role:       u.Role,
		Status:     u.Status,
		Teams:      append([]string(nil), u.Teams...),
		Everywhere: roles[u.Role].everywhere,
		perms:      newPermSet(),
		grants:     map[string]rightSet{},
		wild:       map[string]rightSet{},
		keys:       make(map[string]*keyState, len(rec.Keys)),
	}
	p.perms.addRole(u.Role)
	p.perms.add(u.Permissions)
	p.addGrants(u.Grants)
	for _, raw := range rec.Teams {
		var t Team
		if err := json.Unmarshal(raw, &t); err != nil {
			return nil, fmt.Errorf("decoding team record of user %s: %w", u.ID, err)
		}
		p.perms.add(t.Permissions)
		p.addGrants(t.Grants)
	}
	for _, raw := range rec.Keys {
		var k Key
		if err := json.Unmarshal(raw, &k); err != nil {
			return nil, fmt.Errorf("decoding key record of user %s: %w", u.ID, err)
		}
		ks := new(keyState)
		if k.ExpiresAt != nil {
			ks.notAfter = *k.ExpiresAt
		}
		if k.RevokesAt != nil && (ks.notAfter.IsZero() || k.RevokesAt.Before(ks.notAfter)) {
			ks.notAfter = *k.RevokesAt
		}
		p.keys[k.ID] = ks
	}
	return p, nil
}

func (p *Principal) addGrants(gs []Grant) {
	for _, g := range gs {
		typ, id, ok := ParseResource(g.Resource)
		if !ok {
			continue
		}
		m, key := p.grants, g.Resource
		if id == "*" {
			m, key = p.wild, typ
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

// Active reports whether the user may authenticate.
func (p *Principal) Active() bool { return p.Status == StatusActive }

// KeyLive reports whether key id kid of this user may authenticate at t.
func (p *Principal) KeyLive(kid string, t time.Time) bool {
	ks, ok := p.keys[kid]
	return ok && ks.liveAt(t)
}

// liveAt reports whether the key may authenticate at t.
func (ks *keyState) liveAt(t time.Time) bool {
	return ks.notAfter.IsZero() || t.Before(ks.notAfter)
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
	if ks, ok := p.keys[kid]; ok {
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
