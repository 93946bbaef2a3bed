package authz

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeStore serves one user whose status flips; LoadPrincipal reads the
// status at its start (like a real read) and can be slowed down. (Found by
// review: the races the tests below exercise.)
type fakeStore struct {
	status atomic.Value // Status
	loads  atomic.Int64
	delay  time.Duration
	key    Key
}

func (f *fakeStore) View(context.Context, string, func(Tx) error) error   { return nil }
func (f *fakeStore) Update(context.Context, string, func(Tx) error) error { return nil }
func (f *fakeStore) Close() error                                         { return nil }
func (f *fakeStore) LoadPrincipal(_ context.Context, ws, uid string) (*PrincipalRecord, error) {
	f.loads.Add(1)
	st := f.status.Load().(Status)
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	u := User{ID: uid, Workspace: ws, Username: "hot", Kind: KindAPI, Role: RoleAPIUser, Status: st, Teams: []string{}}
	ub, _ := json.Marshal(&u)
	kb, _ := json.Marshal(&f.key)
	return &PrincipalRecord{User: ub, Keys: [][]byte{kb}}, nil
}

func newFakeService(t *testing.T, delay time.Duration) (*Service, *fakeStore, string) {
	t.Helper()
	signer, err := NewSigner(SignerConfig{Secret: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	cache, err := NewCache(CacheConfig{TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cache.Close)
	f := &fakeStore{delay: delay}
	f.status.Store(StatusActive)
	svc, err := NewService(Config{Store: f, Signer: signer, Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	u := User{ID: "usr_hot", Workspace: "acme"}
	f.key = *svc.newKey(&u, "default", nil, time.Now())
	secret, err := svc.sign(&f.key)
	if err != nil {
		t.Fatal(err)
	}
	return svc, f, secret
}

// A principal cached by a load that began before InvalidateUser (its Set
// may be applied after the invalidation's Del) is never served to a request
// that starts after the invalidation returned, nor linked to a key.
func TestCacheInvalidationOutrunsSet(t *testing.T) {
	c, err := NewCache(CacheConfig{TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 50000 {
		uid := "u" + strconv.Itoa(i%64)
		old := &Principal{UserID: uid, Workspace: "w", keys: []keyState{{id: "k"}}}
		c.store(old, c.begin(), time.Now(), c.stamp("w", uid))
		c.InvalidateUser(uid) // the change committed and invalidated
		// A request that starts now:
		if p, ok := c.principal(uid, time.Now()); ok && p == old {
			t.Fatalf("round %d: the principal from before the invalidation is served", i)
		}
	}
}

// A user deactivated (store, then Apply) while other goroutines keep
// authenticating its key is refused by the next Authenticate, and admitted
// again by the next one after reactivation.
func TestDeactivationSeenWhileAuthenticating(t *testing.T) {
	svc, f, key := newFakeService(t, 0)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					_, _, _ = svc.Authenticate(context.Background(), key)
				}
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()
	for i := range 3000 {
		f.status.Store(StatusInactive)
		svc.Apply(Change{Workspace: "acme", Users: []string{"usr_hot"}})
		if _, _, err := svc.Authenticate(context.Background(), key); !errors.Is(err, ErrInactive) {
			t.Fatalf("round %d: after deactivation: %v, want ErrInactive", i, err)
		}
		f.status.Store(StatusActive)
		svc.Apply(Change{Workspace: "acme", Users: []string{"usr_hot"}})
		if _, _, err := svc.Authenticate(context.Background(), key); err != nil {
			t.Fatalf("round %d: after reactivation: %v", i, err)
		}
	}
}

// Requests that joined a load which began before an invalidation wait for
// a newer load, and share it: two loads in all, not one per request.
func TestStaleLoadRetriedOnce(t *testing.T) {
	svc, f, _ := newFakeService(t, 20*time.Millisecond)
	const rounds, waiters = 5, 64
	var total int64
	for range rounds {
		f.loads.Store(0)
		svc.cache.InvalidateUser("usr_hot")
		var wg sync.WaitGroup
		wg.Go(func() { _, _ = svc.Principal(context.Background(), "acme", "usr_hot") })
		time.Sleep(5 * time.Millisecond) // the first load is in flight
		svc.cache.InvalidateUser("usr_hot")
		for range waiters {
			wg.Go(func() { _, _ = svc.Principal(context.Background(), "acme", "usr_hot") })
		}
		wg.Wait()
		total += f.loads.Load()
	}
	if avg := float64(total) / rounds; avg > 4 {
		t.Fatalf("%.1f store loads per round for %d requests that joined a stale load, want about 2", avg, waiters)
	}
}
