// Command scale shows what the number of users costs on the Redis store
// (issue: "a gateway miss and an admin list page cost the same at 1,000 and
// at 1,000,000 users"; "Redis memory per user").
//
// It fills one workspace of a Redis server with API users, one key each,
// the way the admin API creates them (authz.Service.CreateUsers: the user,
// its name index entry, its key and key index entry, and the audit entries
// of both, all in one transaction per batch), and at each size in -sizes
// measures, on the same Redis:
//
//   - a gateway miss: authz.Service.Authenticate of a key seen for the
//     first time by a fresh cache (signature check plus the one-round-trip
//     principal load), for -samples keys drawn from every user seeded so
//     far;
//   - an admin list page: authz.Service.ListUsers of 100 users from a
//     cursor at a random user (what GET /workspaces/{ws}/users?limit=100
//     does), -samples times;
//   - Redis used_memory per user (growth since before seeding, divided by
//     the users seeded).
//
// Use an empty Redis: it writes under the key prefix "scale" and flushes
// nothing. Its output is a Markdown table, one row per size.
//
//	go run ./bench/scale -redis redis://127.0.0.1:6379 -sizes 1000,1000000
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"log"
	mrand "math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/redisstore"
)

func main() {
	url := flag.String("redis", "", "the Redis server, redis://host:port (an empty one)")
	sizesFlag := flag.String("sizes", "1000,10000,100000,1000000", "the sizes to measure at, ascending, comma-separated")
	samples := flag.Int("samples", 1000, "misses and list pages measured at each size")
	batch := flag.Int("batch", 500, "users created per transaction")
	flag.Parse()
	if *url == "" {
		log.Fatal("scale: -redis is required")
	}
	var sizes []int
	for _, f := range strings.Split(*sizesFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 || (len(sizes) > 0 && n <= sizes[len(sizes)-1]) {
			log.Fatalf("scale: -sizes %q: want ascending positive numbers", *sizesFlag)
		}
		sizes = append(sizes, n)
	}
	if err := run(*url, sizes, *samples, *batch); err != nil {
		log.Fatalf("scale: %v", err)
	}
}

const ws = "scale"

// sample is a seeded user whose key the misses use.
type sample struct{ id, key string }

func run(url string, sizes []int, samples, batch int) error {
	ctx := context.Background()
	store, err := redisstore.New(redisstore.Options{URL: url, Prefix: "scale"})
	if err != nil {
		return err
	}
	defer store.Close()
	opt, err := redis.ParseURL(url)
	if err != nil {
		return err
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()

	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return err
	}
	signer, err := authz.NewSigner(authz.SignerConfig{Secret: secret})
	if err != nil {
		return err
	}
	newService := func() (*authz.Service, func(), error) {
		cache, err := authz.NewCache(authz.CacheConfig{TTL: time.Hour, MaxPrincipals: 100_000, MaxKeys: 100_000})
		if err != nil {
			return nil, nil, err
		}
		svc, err := authz.NewService(authz.Config{Store: store, Signer: signer, Cache: cache})
		if err != nil {
			cache.Close()
			return nil, nil, err
		}
		return svc, func() { svc.Close(); cache.Close() }, nil
	}
	svc, closeSvc, err := newService()
	if err != nil {
		return err
	}
	defer closeSvc()

	before, err := usedMemory(ctx, rdb)
	if err != nil {
		return err
	}
	root, err := svc.Bootstrap(ctx, ws, "root")
	if err != nil {
		return fmt.Errorf("bootstrap (is the Redis empty?): %w", err)
	}
	actor, _, err := svc.Authenticate(ctx, root.Key)
	if err != nil {
		return err
	}

	fmt.Println("| users | seeding (users/s) | Redis used_memory | per user | gateway miss p50 | p99 | list page (100) p50 | p99 |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|---:|")
	// A reservoir of samples drawn uniformly from every user seeded so far.
	reservoir := make([]sample, 0, samples)
	seeded, prev := 0, 0
	for _, size := range sizes {
		start := time.Now()
		for seeded < size {
			n := min(batch, size-seeded)
			in := make([]authz.NewUser, n)
			for i := range in {
				in[i] = authz.NewUser{Username: fmt.Sprintf("user-%07d", seeded+i+1), Kind: authz.KindAPI, Role: authz.RoleAPIUser, IssueKey: true}
			}
			created, err := svc.CreateUsers(ctx, actor, ws, in)
			if err != nil {
				return fmt.Errorf("seeding users %d to %d: %w", seeded+1, seeded+n, err)
			}
			for _, cu := range created {
				seeded++
				s := sample{cu.ID, cu.Key}
				if len(reservoir) < samples {
					reservoir = append(reservoir, s)
				} else if j := mrand.IntN(seeded); j < samples {
					reservoir[j] = s
				}
			}
		}
		rate := float64(size-prev) / time.Since(start).Seconds()
		prev = size
		used, err := usedMemory(ctx, rdb)
		if err != nil {
			return err
		}

		// Misses: a fresh service, so every key is seen for the first time.
		missSvc, closeMiss, err := newService()
		if err != nil {
			return err
		}
		var miss []time.Duration
		for _, s := range reservoir {
			t := time.Now()
			p, _, err := missSvc.Authenticate(ctx, s.key)
			d := time.Since(t)
			if err != nil || p.UserID != s.id {
				closeMiss()
				return fmt.Errorf("authenticating a seeded key: %v", err)
			}
			miss = append(miss, d)
		}
		closeMiss()

		var list []time.Duration
		for range samples {
			s := reservoir[mrand.IntN(len(reservoir))]
			cursor := base64.RawURLEncoding.EncodeToString([]byte(s.id)) // next_cursor after user s
			t := time.Now()
			_, _, err := svc.ListUsers(ctx, actor, ws, authz.UserFilter{}, authz.Page{Limit: 100, Cursor: cursor})
			d := time.Since(t)
			if err != nil {
				return fmt.Errorf("listing users: %w", err)
			}
			list = append(list, d)
		}
		perUser := (used - before) / int64(size+1) // +1: the root user
		fmt.Printf("| %s | %s | %.1f MiB | %s B | %s | %s | %s | %s |\n",
			thousands(size), thousands(int(rate)), float64(used-before)/(1<<20), thousands(int(perUser)),
			ms(pct(miss, 50)), ms(pct(miss, 99)), ms(pct(list, 50)), ms(pct(list, 99)))
	}
	return nil
}

// usedMemory is the server's used_memory.
func usedMemory(ctx context.Context, rdb *redis.Client) (int64, error) {
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("no used_memory in INFO memory")
}

func pct(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond)) }

func thousands(n int) string {
	s := strconv.Itoa(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
