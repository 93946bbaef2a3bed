package authz

import (
	"sync"
	"sync/atomic"
)

// boundedMap is the store behind the Cache: a map of at most max entries,
// split into shards that each hold at most max/shards, with sampled
// least-recently-used eviction. Its memory follows what it holds: nothing
// is reserved for the bound, no goroutine runs, and a Set is visible to the
// next Get.
//
// Each shard has a clock that moves on every Set of a new entry; an entry
// remembers the clock of its Set and of its last Get (a Get writes only
// when the clock moved since, so a hot entry costs no writes while nothing
// new comes in). When a full shard takes a new entry, it looks at up to
// evictSample entries from a random place in the shard's map (Go
// randomises where a range begins) and evicts the one whose last use is
// oldest.
type boundedMap[K comparable, V cacheEntry] struct {
	shards   [mapShards]mapShard[K, V]
	perShard int
	hash     func(K) uint64

	evictions atomic.Uint64
}

// cacheEntry is what a boundedMap holds: a pointer to a value that carries
// the clock of its last use.
type cacheEntry interface {
	comparable
	lastUse() *atomic.Uint32
}

// mapShards splits a boundedMap so that writers rarely wait for each other;
// a power of two.
const mapShards = 64

// evictSample is how many entries an eviction looks at, at most.
const evictSample = 8

type mapShard[K comparable, V cacheEntry] struct {
	mu    sync.RWMutex
	clock atomic.Uint32
	m     map[K]V
	_     [64 - 40]byte // a cache line of its own
}

func newBoundedMap[K comparable, V cacheEntry](max int64, hash func(K) uint64) *boundedMap[K, V] {
	per := (max + mapShards - 1) / mapShards
	if per < 1 {
		per = 1
	}
	b := &boundedMap[K, V]{perShard: int(per), hash: hash}
	for i := range b.shards {
		b.shards[i].m = make(map[K]V)
	}
	return b
}

func (b *boundedMap[K, V]) shard(k K) *mapShard[K, V] {
	return &b.shards[b.hash(k)&(mapShards-1)]
}

// Get returns the entry of k.
func (b *boundedMap[K, V]) Get(k K) (V, bool) {
	s := b.shard(k)
	s.mu.RLock()
	v, ok := s.m[k]
	s.mu.RUnlock()
	if ok {
		if now := s.clock.Load(); v.lastUse().Load() != now {
			v.lastUse().Store(now)
		}
	}
	return v, ok
}

// Set makes v the entry of k, evicting another entry of k's shard when the
// shard is full.
func (b *boundedMap[K, V]) Set(k K, v V) {
	s := b.shard(k)
	s.mu.Lock()
	if _, ok := s.m[k]; !ok {
		if len(s.m) >= b.perShard {
			b.evictLocked(s)
		}
		s.clock.Add(1)
	}
	v.lastUse().Store(s.clock.Load())
	s.m[k] = v
	s.mu.Unlock()
}

// evictLocked removes the least recently used of a sample of s's entries.
// Clock values are compared by their distance from now, so the clock may
// wrap around.
func (b *boundedMap[K, V]) evictLocked(s *mapShard[K, V]) {
	now := s.clock.Load()
	var victim K
	var age uint32
	n := 0
	for k, v := range s.m {
		if a := now - v.lastUse().Load(); n == 0 || a > age {
			victim, age = k, a
		}
		if n++; n == evictSample {
			break
		}
	}
	if n > 0 {
		delete(s.m, victim)
		b.evictions.Add(1)
	}
}

// Del removes the entry of k, if it is v (or whatever it is, when v is the
// zero value).
func (b *boundedMap[K, V]) Del(k K, v V) {
	var zero V
	s := b.shard(k)
	s.mu.Lock()
	if cur, ok := s.m[k]; ok && (v == zero || cur == v) {
		delete(s.m, k)
	}
	s.mu.Unlock()
}

// Len returns the number of entries.
func (b *boundedMap[K, V]) Len() int {
	n := 0
	for i := range b.shards {
		s := &b.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

// Clear removes every entry and gives their memory back.
func (b *boundedMap[K, V]) Clear() {
	for i := range b.shards {
		s := &b.shards[i]
		s.mu.Lock()
		s.m = make(map[K]V)
		s.mu.Unlock()
	}
}
