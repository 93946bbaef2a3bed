// Command seed fills a workspace with API users, one key each, for load
// tests (bench/run.sh seeds the stores it measures with it):
//
//	go run ./bench/seed --config Caddyfile --workspace acme --users 10000 \
//	    --prefix load --keys-out keys.txt
//
// It opens the store that the apiusers app of the configuration names,
// as `caddy apiusers bootstrap` does, and creates --users API users named
// <prefix>-<number> in the workspace (created when missing), each with one
// key. The keys are written one per line to --keys-out (mode 0600), or to
// standard output without it; progress and a summary go to standard error.
//
// Every user is created the way the admin API creates one (with its audit
// entries), --batch users per transaction (all or none of a batch), by
// --workers workers at once. Without --root-key a superadmin named
// <prefix>-seeder is bootstrapped to act as the creator; its key is never
// shown and is revoked when seeding ends. With the file store, Caddy must
// be stopped; the Redis store can be seeded while a fleet runs.
//
// Flags: --config (required), --adapter, --workspace (required), --users
// (10000), --prefix (seed), --role (api_user), --keys-out (standard
// output), --root-key (bootstrap <prefix>-seeder), --workers (8 with the
// file store, which spends most of each creation waiting for the disk; 1
// with Redis, where creations in one workspace contend for the same
// records and concurrent ones mostly retry), --batch (100, at most 1000),
// --credits (0, none: with n, every user gets n credits).
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/module"
)

// exitFailed is the exit status of a failed run.
const exitFailed = 1

// fleetStore is a store a fleet of Caddy instances shares (the Redis
// store): it carries their cache invalidations.
type fleetStore interface {
	Publish(ctx context.Context, c authz.Change) error
}

func main() {
	var o seedOptions
	var role string
	fs := flag.NewFlagSet("seed", flag.ExitOnError)
	fs.StringVar(&o.config, "config", "", "the configuration file (a Caddyfile or JSON)")
	fs.StringVar(&o.adapter, "adapter", "", "the config adapter to use (such as caddyfile)")
	fs.StringVar(&o.workspace, "workspace", "", "the workspace id (created when missing)")
	fs.IntVar(&o.users, "users", defaultSeedUsers, "how many users to create")
	fs.StringVar(&o.prefix, "prefix", defaultSeedPrefix, "usernames are <prefix>-<number>")
	fs.StringVar(&role, "role", string(authz.RoleAPIUser), "the role of the users")
	fs.StringVar(&o.keysOut, "keys-out", "", "the file the keys are written to (default: standard output)")
	fs.StringVar(&o.rootKey, "root-key", "", "the key of the creating user (default: bootstrap <prefix>-seeder)")
	fs.IntVar(&o.workers, "workers", 0, "how many batches are created at once (default: 8 on the file store, 1 on Redis)")
	fs.IntVar(&o.batch, "batch", defaultSeedBatch, "users created per transaction (at most 1000)")
	fs.Int64Var(&o.credits, "credits", 0, "credits every user gets (default 0: none)")
	_ = fs.Parse(os.Args[1:])
	o.role = authz.Role(role)
	code, err := seed(context.Background(), os.Stdout, os.Stderr, o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "seed: %v\n", err)
	}
	os.Exit(code)
}

// Defaults of seed.
const (
	defaultSeedUsers  = 10000
	defaultSeedPrefix = "seed"
	// Users created at once: the file store commits one fsync per user, so
	// workers overlap the signing and encoding with it; on Redis every
	// creation in a workspace races on the same username index, so
	// concurrent creations mostly collide and retry, and one worker is
	// fastest.
	defaultSeedWorkersFile  = 8
	defaultSeedWorkersRedis = 1
	// defaultSeedBatch is how many users one seeding transaction creates.
	defaultSeedBatch = 100
)

// seedOptions are the flags of the seed command.
type seedOptions struct {
	config, adapter string
	workspace       string
	users           int
	prefix          string
	role            authz.Role
	keysOut         string        // "": stdout
	rootKey         string        // "": bootstrap <prefix>-seeder
	workers         int           // 0: by store type
	batch           int           // users per transaction; 0: defaultSeedBatch
	progress        time.Duration // how often progress is reported; 0: 5s
	credits         int64         // 0: none
}

// seed runs the seed command: keys go to o.keysOut (or stdout), messages
// to stderr.
func seed(ctx context.Context, stdout, stderr io.Writer, o seedOptions) (int, error) {
	switch {
	case o.config == "":
		return exitFailed, errors.New("--config is required")
	case o.workspace == "":
		return exitFailed, errors.New("--workspace is required")
	case o.users < 1:
		return exitFailed, errors.New("--users must be at least 1")
	case o.prefix == "":
		return exitFailed, errors.New("--prefix must not be empty")
	}
	if o.role == "" {
		o.role = authz.RoleAPIUser
	}
	if o.progress <= 0 {
		o.progress = 5 * time.Second
	}
	if o.batch < 1 {
		o.batch = defaultSeedBatch
	}
	if o.batch > authz.MaxBulkUsers {
		return exitFailed, fmt.Errorf("--batch must be at most %d", authz.MaxBulkUsers)
	}
	svc, closeSvc, err := module.OpenService(o.config, o.adapter)
	if err != nil {
		return exitFailed, err
	}
	defer closeSvc()
	if o.workers < 1 {
		o.workers = defaultSeedWorkersFile
		if _, shared := svc.Store().(fleetStore); shared {
			// A store a fleet shares (Redis) is optimistic: see the defaults.
			o.workers = defaultSeedWorkersRedis
		}
	}

	out := stdout
	var keysFile *os.File
	if o.keysOut != "" {
		keysFile, err = os.OpenFile(o.keysOut, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return exitFailed, fmt.Errorf("opening keys file: %w", err)
		}
		defer keysFile.Close() // a second Close after the checked one is harmless
		out = keysFile
	}

	actor, release, err := seedActor(ctx, svc, stderr, o)
	if err != nil {
		return exitFailed, err
	}
	defer release()

	start := time.Now()
	n, err := seedUsers(ctx, svc, actor, out, stderr, o)
	elapsed := time.Since(start)
	if err != nil {
		return exitFailed, fmt.Errorf("after %d of %d users: %w", n, o.users, err)
	}
	if keysFile != nil {
		if err := keysFile.Close(); err != nil {
			return exitFailed, fmt.Errorf("writing keys file: %w", err)
		}
	}
	fmt.Fprintf(stderr, "seeded %d users (%s) in workspace %s in %s: %.0f users/s\n",
		n, o.role, o.workspace, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds())
	return 0, nil
}

// seedActor returns the principal that creates the users: the owner of
// o.rootKey, or a superadmin bootstrapped for the purpose, whose key release
// revokes. The workspace exists once it returns.
func seedActor(ctx context.Context, svc *authz.Service, stderr io.Writer, o seedOptions) (*authz.Principal, func(), error) {
	nothing := func() {}
	if o.rootKey != "" {
		actor, _, err := svc.Authenticate(ctx, o.rootKey)
		if err != nil {
			return nil, nil, fmt.Errorf("--root-key: %w", err)
		}
		if _, err := svc.GetWorkspace(ctx, actor, o.workspace); errors.Is(err, authz.ErrNotFound) {
			if _, err := svc.CreateWorkspace(ctx, actor, authz.Workspace{ID: o.workspace}); err != nil {
				return nil, nil, fmt.Errorf("creating workspace %s: %w", o.workspace, err)
			}
		}
		return actor, nothing, nil
	}
	name := o.prefix + "-seeder"
	created, err := svc.Bootstrap(ctx, o.workspace, name)
	if err != nil {
		return nil, nil, fmt.Errorf("bootstrapping the seeding superadmin %s (pass --root-key, or another --prefix): %w", name, err)
	}
	actor, _, err := svc.Authenticate(ctx, created.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("authenticating the seeding superadmin: %w", err)
	}
	release := func() {
		err := svc.RevokeKey(context.WithoutCancel(ctx), actor, o.workspace, created.ID, created.KeyID)
		if err != nil {
			fmt.Fprintf(stderr, "revoking the key of the seeding superadmin %s (%s, key %s) failed: %v; revoke it over the admin API\n",
				name, created.ID, created.KeyID, err)
		}
	}
	fmt.Fprintf(stderr, "bootstrapped superadmin %s (%s) to seed with; its key is revoked when seeding ends\n", name, created.ID)
	return actor, release, nil
}

// seedUsers creates o.users users with o.workers workers and writes their
// keys to out, one per line, as they are made. It returns how many users
// were created (and their keys written).
func seedUsers(ctx context.Context, svc *authz.Service, actor *authz.Principal, out, stderr io.Writer, o seedOptions) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		firstErr error
		failOnce sync.Once
	)
	fail := func(err error) {
		failOnce.Do(func() { firstErr = err; cancel() })
	}

	// A job is a batch of users, numbered first to first+n-1.
	type job struct{ first, n int }
	jobs := make(chan job)
	go func() {
		defer close(jobs)
		for i := 1; i <= o.users; i += o.batch {
			select {
			case jobs <- job{i, min(o.batch, o.users-i+1)}:
			case <-ctx.Done():
				return
			}
		}
	}()

	width := len(strconv.Itoa(o.users))
	keys := make(chan string, 4*o.workers)
	var wg sync.WaitGroup
	for range o.workers {
		wg.Go(func() {
			for j := range jobs {
				if ctx.Err() != nil {
					continue
				}
				names := make([]string, j.n)
				for i := range names {
					names[i] = fmt.Sprintf("%s-%0*d", o.prefix, width, j.first+i)
				}
				batch, err := seedBatch(ctx, svc, actor, o.workspace, o.role, o.credits, names)
				if err != nil {
					fail(err)
					continue
				}
				for _, key := range batch {
					keys <- key
				}
			}
		})
	}
	go func() { wg.Wait(); close(keys) }()

	var done atomic.Int64
	stopProgress := make(chan struct{})
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		start := time.Now()
		t := time.NewTicker(o.progress)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				n := done.Load()
				fmt.Fprintf(stderr, "seeded %d/%d users (%.0f/s)\n", n, o.users, float64(n)/time.Since(start).Seconds())
			case <-stopProgress:
				return
			}
		}
	}()

	// Keys are written as they come; after a write error the rest are
	// drained so the workers can stop.
	w := bufio.NewWriterSize(out, 64<<10)
	written := 0
	var writeErr error
	for key := range keys {
		if writeErr != nil {
			continue
		}
		if _, writeErr = w.WriteString(key + "\n"); writeErr != nil {
			fail(fmt.Errorf("writing keys: %w", writeErr))
			continue
		}
		written++
		done.Add(1)
	}
	close(stopProgress)
	<-progressDone
	if writeErr == nil {
		if err := w.Flush(); err != nil {
			fail(fmt.Errorf("writing keys: %w", err))
		}
	}
	return written, firstErr
}

// seedBatch creates API users with a key each, named names, in one
// transaction, and returns their keys. A store transaction that lost every
// optimistic race (the Redis store under many writers) wrote nothing and
// is tried again; a domain conflict (a username is taken) is not.
func seedBatch(ctx context.Context, svc *authz.Service, actor *authz.Principal, ws string, role authz.Role, credits int64, names []string) ([]string, error) {
	in := make([]authz.NewUser, len(names))
	for i, name := range names {
		in[i] = authz.NewUser{Username: name, Kind: authz.KindAPI, Role: role, IssueKey: true}
		if credits > 0 {
			in[i].Credits = &authz.SetCredits{Remaining: &credits}
		}
	}
	for attempt := 1; ; attempt++ {
		created, err := svc.CreateUsers(ctx, actor, ws, in)
		if err == nil {
			keys := make([]string, len(created))
			for i, cu := range created {
				keys[i] = cu.Key
			}
			return keys, nil
		}
		var domain *authz.Error
		if attempt < 5 && errors.Is(err, authz.ErrConflict) && !errors.As(err, &domain) {
			continue
		}
		return nil, fmt.Errorf("creating users %s to %s: %w", names[0], names[len(names)-1], err)
	}
}
