package authz

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
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

// Cache holds verified keys and principals in process (ristretto), so an
// allowed request whose key and principal are cached touches neither the
// store nor the HMAC.
//
// Invalidation is by user (Del) and by workspace or everything (epochs): a
// principal remembers the epochs it was loaded under and is a miss once
// either moved on. A load that started before an invalidation is never
// cached, so a change is seen by the next request that starts after it.
type Cache struct {
	ttl        time.Duration
	staleTTL   time.Duration
	keys       *ristretto.Cache[string, *Claims]
	principals *ristretto.Cache[string, *Principal]

	// epoch moves on every invalidation; a load that saw another epoch at its
	// start than at its end is not cached.
	epoch atomic.Uint64
	// all moves on InvalidateAll; wsEpochs[ws] on InvalidateWorkspace.
	all      atomic.Uint64
	wsEpochs sync.Map // string -> *atomic.Uint64
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
	keys, err := ristretto.NewCache(&ristretto.Config[string, *Claims]{
		NumCounters: cfg.MaxKeys * 10,
		MaxCost:     cfg.MaxKeys,
		BufferItems: 64,

		IgnoreInternalCost: true, // costs count entries: otherwise each costs 1+56 and only MaxKeys/57 fit
	})
	if err != nil {
		return nil, fmt.Errorf("making key cache: %w", err)
	}
	principals, err := ristretto.NewCache(&ristretto.Config[string, *Principal]{
		NumCounters: cfg.MaxPrincipals * 10,
		MaxCost:     cfg.MaxPrincipals,
		BufferItems: 64,

		IgnoreInternalCost: true, // costs count entries (see above)
	})
	if err != nil {
		keys.Close()
		return nil, fmt.Errorf("making principal cache: %w", err)
	}
	if cfg.StaleTTL < 0 {
		cfg.StaleTTL = 0
	}
	return &Cache{ttl: cfg.TTL, staleTTL: cfg.StaleTTL, keys: keys, principals: principals}, nil
}

// TTL is the configured principal lifetime.
func (c *Cache) TTL() time.Duration { return c.ttl }

// Close releases the cache.
func (c *Cache) Close() {
	c.keys.Close()
	c.principals.Close()
}

// claims returns the verified claims of key, if cached.
func (c *Cache) claims(key string) (*Claims, bool) { return c.keys.Get(key) }

func (c *Cache) setClaims(key string, cl *Claims) { c.keys.Set(key, cl, 1) }

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
	if !ok || now.Sub(p.loadedAt) >= c.ttl || p.epoch != c.all.Load()<<32^p.wsEpoch.Load() {
		return nil, false
	}
	return p, true
}

// stale returns the cached principal of userID if it was not invalidated
// and its TTL passed less than StaleTTL ago: the copy to use when the store
// cannot be reached.
func (c *Cache) stale(userID string, now time.Time) (*Principal, bool) {
	if c.staleTTL <= 0 {
		return nil, false
	}
	p, ok := c.principals.Get(userID)
	if !ok || now.Sub(p.loadedAt) >= c.ttl+c.staleTTL || p.epoch != c.all.Load()<<32^p.wsEpoch.Load() {
		return nil, false
	}
	return p, true
}

// stamp combines the global and workspace epochs a principal is checked
// against.
func (c *Cache) stamp(ws string) uint64 {
	return c.all.Load()<<32 ^ c.wsEpoch(ws).Load()
}

// begin returns the epoch to pass to store when a load starts.
func (c *Cache) begin() uint64 { return c.epoch.Load() }

// store caches p, loaded at loadedAt, unless an invalidation happened since
// begin returned start.
func (c *Cache) store(p *Principal, start uint64, loadedAt time.Time, stamp uint64) {
	p.loadedAt = loadedAt
	p.epoch = stamp
	p.wsEpoch = c.wsEpoch(p.Workspace)
	if c.epoch.Load() != start {
		return
	}
	// No ristretto TTL: freshness is checked against loadedAt with the
	// caller's clock (one clock read per request), and stale entries leave
	// by eviction.
	c.principals.Set(p.UserID, p, 1)
}

// InvalidateUser drops the cached principal of userID.
func (c *Cache) InvalidateUser(userID string) {
	c.epoch.Add(1)
	c.principals.Del(userID)
}

// InvalidateWorkspace drops every cached principal of workspace ws.
func (c *Cache) InvalidateWorkspace(ws string) {
	c.epoch.Add(1)
	c.wsEpoch(ws).Add(1)
}

// InvalidateAll drops every cached principal (for example after a lost
// invalidation feed).
func (c *Cache) InvalidateAll() {
	c.epoch.Add(1)
	c.all.Add(1)
}

// Wait blocks until pending cache writes are applied (for tests).
func (c *Cache) Wait() {
	c.keys.Wait()
	c.principals.Wait()
}
