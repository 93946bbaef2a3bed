package authz

import (
	"testing"
	"time"
)

// A principal whose load began before InvalidateUser may be stored in the
// cache after it. The stamp taken when the load began keeps it from being
// used.
func TestCacheSetLandingAfterInvalidation(t *testing.T) {
	c, err := NewCache(CacheConfig{TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	now := time.Now()
	p := &Principal{UserID: "usr_1", Workspace: "acme"}
	st := c.stamp("acme", "usr_1") // the load begins and reads the store
	c.InvalidateUser("usr_1")      // a change commits and invalidates
	// The Set of the old principal happens (or lands) only now.
	c.store(p, c.begin(), now, st)
	c.Wait()
	if got, ok := c.principal("usr_1", now); ok {
		t.Fatalf("a principal loaded before the invalidation is served: %p", got)
	}
	// A load that began after the invalidation is served.
	q := &Principal{UserID: "usr_1", Workspace: "acme"}
	c.store(q, c.begin(), now, c.stamp("acme", "usr_1"))
	c.Wait()
	if got, ok := c.principal("usr_1", now); !ok || got != q {
		t.Fatalf("the fresh principal is not served: %v %v", got, ok)
	}
	// Invalidating the workspace, or everything, works the same way.
	for _, inv := range []func(){func() { c.InvalidateWorkspace("acme") }, c.InvalidateAll} {
		st := c.stamp("acme", "usr_1")
		inv()
		c.store(&Principal{UserID: "usr_1", Workspace: "acme"}, c.begin(), now, st)
		c.Wait()
		if _, ok := c.principal("usr_1", now); ok {
			t.Fatal("a principal loaded before a workspace or global invalidation is served")
		}
	}
}
