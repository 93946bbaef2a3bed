package authz

import (
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
)

type testEntry struct {
	n    int
	used atomic.Uint32
}

func (e *testEntry) lastUse() *atomic.Uint32 { return &e.used }

func newTestMap(max int64) *boundedMap[string, *testEntry] {
	return newBoundedMap[string, *testEntry](max, principalHash)
}

// The map never holds more than its bound (rounded up to whole shards),
// and counts what it evicted to stay there.
func TestBoundedMapStaysWithinItsBound(t *testing.T) {
	m := newTestMap(1000)
	limit := mapShards * ((1000 + mapShards - 1) / mapShards)
	for i := range 20000 {
		m.Set("k"+strconv.Itoa(i), &testEntry{n: i})
		if n := m.Len(); n > limit {
			t.Fatalf("after %d sets the map holds %d entries, more than %d", i+1, n, limit)
		}
	}
	if n := m.Len(); n < limit*9/10 {
		t.Errorf("the full map holds only %d of %d entries", n, limit)
	}
	if ev := m.evictions.Load(); ev != uint64(20000-m.Len()) {
		t.Errorf("evictions = %d, want %d", ev, 20000-m.Len())
	}
	// The newest entry is there, with its value.
	if e, ok := m.Get("k19999"); !ok || e.n != 19999 {
		t.Errorf("Get(k19999) = %v, %v", e, ok)
	}
}

// An entry that is used between evictions survives a stream of entries
// used once.
func TestBoundedMapKeepsWhatIsUsed(t *testing.T) {
	m := newTestMap(640)
	hot := make([]*testEntry, 20)
	for i := range hot {
		hot[i] = &testEntry{n: -i}
		m.Set("hot"+strconv.Itoa(i), hot[i])
	}
	for i := range 50000 {
		m.Set("once"+strconv.Itoa(i), &testEntry{n: i})
		h := i % len(hot)
		if e, ok := m.Get("hot" + strconv.Itoa(h)); !ok || e != hot[h] {
			t.Fatalf("after %d one-off entries, hot entry %d is gone", i+1, h)
		}
	}
}

// Del removes an entry only when it is the one named (or any, with nil).
func TestBoundedMapDel(t *testing.T) {
	m := newTestMap(100)
	a, b := &testEntry{n: 1}, &testEntry{n: 2}
	m.Set("k", a)
	m.Del("k", b)
	if e, ok := m.Get("k"); !ok || e != a {
		t.Fatalf("Del of another entry removed k: %v %v", e, ok)
	}
	m.Del("k", a)
	if _, ok := m.Get("k"); ok {
		t.Fatal("Del(k, a) left k")
	}
	m.Set("k", b)
	m.Del("k", nil)
	if _, ok := m.Get("k"); ok {
		t.Fatal("Del(k, nil) left k")
	}
}

// A cache reserves nothing for its bounds: memory follows what it holds.
func TestCacheReservesNothingForItsBounds(t *testing.T) {
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	c, err := NewCache(CacheConfig{MaxKeys: 10_000_000, MaxPrincipals: 10_000_000})
	if err != nil {
		t.Fatal(err)
	}
	after := heap()
	runtime.KeepAlive(c)
	if grew := int64(after) - int64(before); grew > 256<<10 {
		t.Errorf("a cache bounded at ten million entries takes %d KiB before it holds any", grew>>10)
	}
}
