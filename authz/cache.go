package authz

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// CacheConfig sizes the in-process cache.
type CacheConfig struct {
	// TTL is how long a cached principal may be used without news from the
	// store. Default: 30s.
	TTL time.Duration
	// MaxPrincipals bounds the number of cached principals. Default: 1,000,000.
	MaxPrincipals int64
	// MaxKeys bounds the number of cached verified keys. Default: 1,000,000.
	MaxKeys int64
	// StaleTTL lets a principal whose TTL has passed be used for this much
	// longer when reloading it fails because the store is unreachable. An
	// invalidated principal is never used. Default: 0 (never beyond TTL).
	StaleTTL time.Duration
}

// Cache holds verified keys and principals in process (two boundedMaps),
// so an allowed request whose key and principal are cached touches neither
// the store nor the HMAC. Its memory follows what it holds: nothing is
// reserved for MaxKeys and MaxPrincipals.
//
// Invalidation is by user (Del) and by workspace or everything (epochs): a
// principal remembers the epochs it was loaded under and is a miss once
// either moved on. A load that started before an invalidation is never
// cached, so a change is seen by the next request that starts after it.
//
// A verified key also remembers the principal it last led to (a link, see
// verifiedKey), so that a request whose key and principal are cached does one
// cache lookup, not two. A link is good only while no invalidation of any
// kind has happened since it was made (the epoch counter), and while the
// principal is fresh; every invalidation moves the epoch both before and
// after it drops anything, so a link made from a principal read during the
// invalidation is already stale when the invalidation returns.
type Cache struct {
	ttl        time.Duration
	staleTTL   time.Duration
	keys       *boundedMap[keyDigest, *verifiedKey]
	principals *boundedMap[string, *Principal]

	// epoch moves on every invalidation; a load that saw another epoch at its
	// start than at its end is not cached.
	epoch atomic.Uint64
	// all moves on InvalidateAll; wsEpochs[ws] on InvalidateWorkspace;
	// users[userShard(id)] on InvalidateUser (see loadStamp).
	all      atomic.Uint64
	wsEpochs sync.Map // string -> *atomic.Uint64
	users    [userShards]atomic.Uint64

	// hits and misses count principal lookups (see Lookups).
	hits, misses atomic.Uint64
}

// NewCache makes a Cache.
func NewCache(cfg CacheConfig) (*Cache, error) {
	if cfg.TTL <= 0 {
		cfg.TTL = 30 * time.Second
	}
	if cfg.MaxPrincipals <= 0 {
		cfg.MaxPrincipals = 1_000_000
	}
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = 1_000_000
	}
	if cfg.StaleTTL < 0 {
		cfg.StaleTTL = 0
	}
	return &Cache{
		ttl:        cfg.TTL,
		staleTTL:   cfg.StaleTTL,
		keys:       newBoundedMap[keyDigest, *verifiedKey](cfg.MaxKeys, func(d keyDigest) uint64 { return d.a }),
		principals: newBoundedMap[string, *Principal](cfg.MaxPrincipals, principalHash),
	}, nil
}

// The key cache holds a key by its digest: two 64-bit hashes of the key
// string with seeds of this process, so that a cached key costs 16 bytes,
// not the key (a JWT is about 200). The seeds are random per process, so
// nobody can craft colliding keys, and a collision of both by chance (one
// in 2^128 per pair) would still need the principal's key id to match.
var keySeed1, keySeed2 = maphash.MakeSeed(), maphash.MakeSeed()

type keyDigest struct{ a, b uint64 }

func digest(key string) keyDigest {
	return keyDigest{maphash.String(keySeed1, key), maphash.String(keySeed2, key)}
}

var principalSeed = maphash.MakeSeed()

func principalHash(userID string) uint64 { return maphash.String(principalSeed, userID) }

// TTL is the configured principal lifetime.
func (c *Cache) TTL() time.Duration { return c.ttl }

// Close empties the cache.
func (c *Cache) Close() {
	c.keys.Clear()
	c.principals.Clear()
}

// Len returns the number of cached verified keys and principals.
func (c *Cache) Len() (keys, principals int) { return c.keys.Len(), c.principals.Len() }

// Lookups returns how many principal lookups the cache answered (hits: a
// key's link, or a cached principal) and how many it could not (misses: a
// store round trip followed).
func (c *Cache) Lookups() (hits, misses uint64) { return c.hits.Load(), c.misses.Load() }

// Evictions returns how many verified keys and principals were evicted to
// keep the cache within its bounds.
func (c *Cache) Evictions() (keys, principals uint64) {
	return c.keys.evictions.Load(), c.principals.evictions.Load()
}

// verifiedKey is a key cache entry: the claims of a key whose signature
// was checked, and the principal the key last led to (see linked).
type verifiedKey struct {
	claims Claims
	link   atomic.Pointer[principalLink]
	used   atomic.Uint32 // the cache's clock at its last use (see boundedMap)
}

func (v *verifiedKey) lastUse() *atomic.Uint32 { return &v.used }

// verified returns the cache entry of key, if cached.
func (c *Cache) verified(key string) (*verifiedKey, bool) { return c.keys.Get(digest(key)) }

// setVerified caches cl as the verified claims of key and returns the entry.
func (c *Cache) setVerified(key string, cl *Claims) *verifiedKey {
	v := &verifiedKey{claims: *cl}
	c.keys.Set(digest(key), v)
	return v
}

func (c *Cache) wsEpoch(ws string) *atomic.Uint64 {
	if v, ok := c.wsEpochs.Load(ws); ok {
		return v.(*atomic.Uint64)
	}
	v, _ := c.wsEpochs.LoadOrStore(ws, new(atomic.Uint64))
	return v.(*atomic.Uint64)
}

// principal returns the cached principal of userID if it is still fresh at now.
func (c *Cache) principal(userID string, now time.Time) (*Principal, bool) {
	p, ok := c.principals.Get(userID)
	if !ok || now.Sub(p.loadedAt) >= c.ttl || !c.current(p) {
		c.misses.Add(1)
		return nil, false
	}
	c.hits.Add(1)
	return p, true
}

// loadStamp is what a principal is checked against: the invalidation counters
// that cover it (everything, its workspace, its user's shard) as they were
// when its load began. A principal whose counters moved since is never
// used, however its Set and the invalidation interleave.
type loadStamp struct {
	scope uint64 // all<<32 ^ the workspace counter
	user  uint64 // the user's shard counter
}

// userShards is the number of per-user invalidation counters; users share
// them by hash, so invalidating one user may make a few others miss once.
const userShards = 4096

var userShardSeed = maphash.MakeSeed()

func (c *Cache) userShard(userID string) *atomic.Uint64 {
	return &c.users[maphash.String(userShardSeed, userID)%userShards]
}

// current reports whether no invalidation covering p happened since its
// load began.
func (c *Cache) current(p *Principal) bool {
	return p.stamp.scope == c.all.Load()<<32^p.wsEpoch.Load() && p.stamp.user == p.userEpoch.Load()
}

// principalLink is what a verified key remembers of the principal it led
// to: the principal, the state of that key in it, and the epoch the link
// was made under.
type principalLink struct {
	p     *Principal
	ks    *keyState
	epoch uint64
}

// linked returns the principal v's last request led to, if no
// invalidation happened since and it is still fresh at now.
func (c *Cache) linked(v *verifiedKey, now time.Time) (*Principal, *keyState, bool) {
	l := v.link.Load()
	if l == nil || l.epoch != c.epoch.Load() || now.Sub(l.p.loadedAt) >= c.ttl {
		return nil, nil, false
	}
	c.hits.Add(1)
	return l.p, l.ks, true
}

// link makes v lead to p (and ks, v's key in p), which was fresh when the
// epoch was epoch.
func (c *Cache) link(v *verifiedKey, p *Principal, ks *keyState, epoch uint64) {
	if epoch == c.epoch.Load() {
		v.link.Store(&principalLink{p: p, ks: ks, epoch: epoch})
	}
}

// stale returns the cached principal of userID if it was not invalidated
// and its TTL passed less than StaleTTL ago: the copy to use when the store
// cannot be reached.
func (c *Cache) stale(userID string, now time.Time) (*Principal, bool) {
	if c.staleTTL <= 0 {
		return nil, false
	}
	p, ok := c.principals.Get(userID)
	if !ok || now.Sub(p.loadedAt) >= c.ttl+c.staleTTL || !c.current(p) {
		return nil, false
	}
	return p, true
}

// stamp returns the counters a load of userID of ws that begins now is
// checked against.
func (c *Cache) stamp(ws, userID string) loadStamp {
	return loadStamp{scope: c.all.Load()<<32 ^ c.wsEpoch(ws).Load(), user: c.userShard(userID).Load()}
}

// begin returns the epoch to pass to store (or link) when a load starts.
func (c *Cache) begin() uint64 { return c.epoch.Load() }

// store caches p, loaded at loadedAt, unless an invalidation happened since
// begin returned start.
func (c *Cache) store(p *Principal, start uint64, loadedAt time.Time, stamp loadStamp) {
	p.loadedAt = loadedAt
	p.stamp = stamp
	p.wsEpoch = c.wsEpoch(p.Workspace)
	p.userEpoch = c.userShard(p.UserID)
	if c.epoch.Load() != start {
		return
	}
	// No TTL in the map: freshness is checked against loadedAt with the
	// caller's clock (one clock read per request), and stale entries leave
	// by eviction or by the next load of the same user.
	c.principals.Set(p.UserID, p)
}

// InvalidateUser drops the cached principal of userID.
//
// The epoch moves before the drop (a load in flight is not cached) and
// after it (a link made from the principal read just before the drop is
// not used); the same holds for the other two.
func (c *Cache) InvalidateUser(userID string) {
	c.epoch.Add(1)
	c.userShard(userID).Add(1)
	c.principals.Del(userID, nil)
	c.epoch.Add(1)
}

// InvalidateWorkspace drops every cached principal of workspace ws.
func (c *Cache) InvalidateWorkspace(ws string) {
	c.epoch.Add(1)
	c.wsEpoch(ws).Add(1)
	c.epoch.Add(1)
}

// InvalidateAll drops every cached principal (for example after a lost
// invalidation feed).
func (c *Cache) InvalidateAll() {
	c.epoch.Add(1)
	c.all.Add(1)
	c.epoch.Add(1)
}

// Wait returns when pending cache writes are applied (for tests). Writes
// are applied when they are made, so it returns at once.
func (c *Cache) Wait() {}
