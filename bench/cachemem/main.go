// Command cachemem measures what cached users cost in memory (bench/run.sh):
// over a file store filled by bench/seed, it loads the principal
// of every seeded user into the apiusers cache (authz.Cache through
// authz.Service, as the gateway does), then authenticates every key, which
// also caches the verified key, and reports the growth of the live heap
// per user after each step.
//
// It opens the store file, so no Caddy may hold it. Its output is one line
// of key=value pairs:
//
//	users=100000 cached=100000 principal_bytes=… key_bytes=… user_bytes=…
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/filestore"
)

func main() {
	dir := flag.String("store", "", "the file store directory (apiusers.db and signing.key)")
	keysFile := flag.String("keys", "", "the keys file written by `bench/seed --keys-out`")
	n := flag.Int("n", 0, "how many keys of the file to use (0: all)")
	flag.Parse()
	if *dir == "" || *keysFile == "" {
		log.Fatal("cachemem: -store and -keys are required")
	}
	if err := run(*dir, *keysFile, *n); err != nil {
		log.Fatalf("cachemem: %v", err)
	}
}

// countingStore counts principal loads, that is cache misses.
type countingStore struct {
	authz.Store
	loads atomic.Int64
}

func (s *countingStore) LoadPrincipal(ctx context.Context, ws, userID string) (*authz.PrincipalRecord, error) {
	s.loads.Add(1)
	return s.Store.LoadPrincipal(ctx, ws, userID)
}

func run(dir, keysFile string, n int) error {
	keys, err := readKeys(keysFile, n)
	if err != nil {
		return err
	}
	secret, err := os.ReadFile(filepath.Join(dir, "signing.key"))
	if err != nil {
		return fmt.Errorf("reading the signing key: %w", err)
	}
	fs, err := filestore.Open(filepath.Join(dir, "apiusers.db"), filestore.Options{LockTimeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer fs.Close()
	store := &countingStore{Store: fs}
	signer, err := authz.NewSigner(authz.SignerConfig{Secret: []byte(strings.TrimSpace(string(secret)))})
	if err != nil {
		return err
	}
	// The gateway's cache sizes (the defaults), and a TTL the measurement
	// cannot outlive.
	cache, err := authz.NewCache(authz.CacheConfig{TTL: time.Hour})
	if err != nil {
		return err
	}
	defer cache.Close()
	svc, err := authz.NewService(authz.Config{Store: store, Signer: signer, Cache: cache})
	if err != nil {
		return err
	}
	ctx := context.Background()

	// The user ids, read from the keys before measuring.
	type user struct{ ws, id string }
	users := make([]user, len(keys))
	for i, k := range keys {
		cl, err := signer.Verify(k)
		if err != nil {
			return fmt.Errorf("key %d of %s: %w", i+1, keysFile, err)
		}
		users[i] = user{cl.Workspace, cl.UserID}
	}

	base := liveHeap()
	// Step 1: principals only. Ristretto applies writes asynchronously and
	// drops them when its buffer is full, so let it catch up now and then.
	for i, u := range users {
		if _, err := svc.Principal(ctx, u.ws, u.id); err != nil {
			return fmt.Errorf("loading principal %s: %w", u.id, err)
		}
		if i%1000 == 999 {
			cache.Wait()
		}
	}
	cache.Wait()
	withPrincipals := liveHeap()

	// Step 2: authenticate every key: the verified key is cached too.
	for i, k := range keys {
		if _, _, err := svc.Authenticate(ctx, k); err != nil {
			return fmt.Errorf("authenticating key %d: %w", i+1, err)
		}
		if i%1000 == 999 {
			cache.Wait()
		}
	}
	cache.Wait()
	// Authenticating queued a last_used_at update per key; they are
	// written within a second and then dropped: wait, so that the figure
	// is what the cache keeps, not that passing queue.
	time.Sleep(2 * time.Second)
	withKeys := liveHeap()

	// How many principals stayed cached: a third pass that loads only the
	// ones the cache does not hold.
	before := store.loads.Load()
	for _, u := range users {
		if _, err := svc.Principal(ctx, u.ws, u.id); err != nil {
			return err
		}
	}
	cached := int64(len(users)) - (store.loads.Load() - before)
	if cached <= 0 {
		return fmt.Errorf("no principal stayed in the cache")
	}
	fmt.Printf("users=%d cached=%d principal_bytes=%d key_bytes=%d user_bytes=%d\n",
		len(users), cached,
		(withPrincipals-base)/uint64(cached),
		(withKeys-withPrincipals)/uint64(cached),
		(withKeys-base)/uint64(cached))
	runtime.KeepAlive(users)
	runtime.KeepAlive(keys)
	return nil
}

// liveHeap returns the bytes of live heap objects after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func readKeys(path string, n int) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var keys []string
	sc := bufio.NewScanner(f)
	for sc.Scan() && (n <= 0 || len(keys) < n) {
		if k := strings.TrimSpace(sc.Text()); k != "" {
			keys = append(keys, k)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s holds no keys", path)
	}
	return keys, nil
}
