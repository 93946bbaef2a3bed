package module

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/apiusers/apiusers/authz"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "apiusers",
		Short: "Manages the apiusers store",
		Long: `
Commands that work on the apiusers store a configuration names, without
running Caddy.

  bootstrap   creates a workspace and its first superadmin (an API user, or a person)
  seed        fills a workspace with API users, one key each (load tests)
`,
		CobraFunc: func(cmd *cobra.Command) {
			bootstrap := &cobra.Command{
				Use:   "bootstrap --config <file> [--adapter caddyfile] --workspace <id> (--username <name> | --email <address> [--console <url>])",
				Short: "Creates a workspace and a superadmin, and prints its key or a one-time setup link",
				Long: `
Opens the store that the apiusers app of the given configuration names (the
file store in Caddy's data directory when the configuration has no apiusers
block), creates the workspace if it does not exist yet and a superadmin API
user in it, and prints the user's API key alone on standard output.
Everything else goes to standard error.

The file store can be held by one process only: while a Caddy that uses it
runs, this command fails after the store's lock_timeout and says so. Create
further users through the admin API then, or stop Caddy first. The Redis
store can be bootstrapped at any time.

--config
    The configuration file (a Caddyfile or JSON). Required.

--adapter
    The name of the config adapter to use (such as caddyfile).

--workspace
    The workspace id, such as acme. Created when missing.

--username
    The new superadmin's username: an API user, whose key is printed.

--email
    Instead of --username: the new superadmin is a person, invited by
    email; the one-time setup link (valid invite_ttl) is printed alone on
    standard output. Opening it in the console sets the password; without
    the console, POST its token with a password to /invitations/accept.

--console
    With --email: the console's URL, where apiusers_admin is mounted.
    Default: public_url followed by /admin/, or http://localhost:8080/admin/.
`,
				Args: cobra.NoArgs,
				RunE: caddycmd.WrapCommandFuncForCobra(cmdBootstrap),
			}
			bootstrap.Flags().StringP("config", "c", "", "Configuration file")
			bootstrap.Flags().StringP("adapter", "a", "", "Name of config adapter to apply")
			bootstrap.Flags().StringP("workspace", "w", "", "Workspace id")
			bootstrap.Flags().StringP("username", "u", "", "Username of the new superadmin")
			bootstrap.Flags().StringP("email", "e", "", "Email of the new superadmin (a person)")
			bootstrap.Flags().String("console", "", "The console's URL (with --email)")
			cmd.AddCommand(bootstrap)
			cmd.AddCommand(seedCommand())
		},
	})
}

func cmdBootstrap(fl caddycmd.Flags) (int, error) {
	var code int
	var err error
	if email := fl.String("email"); email != "" {
		if fl.String("username") != "" {
			return caddy.ExitCodeFailedStartup, errors.New("apiusers bootstrap: give --username or --email, not both")
		}
		code, err = bootstrapPerson(os.Stdout, os.Stderr, fl.String("config"), fl.String("adapter"), fl.String("workspace"), email, fl.String("console"))
	} else {
		code, err = bootstrap(os.Stdout, os.Stderr, fl.String("config"), fl.String("adapter"), fl.String("workspace"), fl.String("username"))
	}
	if err != nil {
		return code, fmt.Errorf("apiusers bootstrap: %w", err)
	}
	return code, nil
}

// bootstrap runs the bootstrap command: the key goes to stdout, messages
// to stderr.
func bootstrap(stdout, stderr io.Writer, configFile, adapter, ws, username string) (int, error) {
	if configFile == "" {
		return caddy.ExitCodeFailedStartup, errors.New("--config is required")
	}
	if ws == "" || username == "" {
		return caddy.ExitCodeFailedStartup, errors.New("--workspace and --username are required")
	}
	svc, closeSvc, err := openService(configFile, adapter)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	defer closeSvc()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	created, err := svc.Bootstrap(ctx, ws, username)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	fmt.Fprintf(stderr, "created superadmin %s (%s) in workspace %s; its API key follows on standard output\n",
		created.Username, created.ID, created.Workspace)
	if _, err := fmt.Fprintln(stdout, created.Key); err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	return caddy.ExitCodeSuccess, nil
}

// bootstrapPerson runs the bootstrap command with --email: the setup link
// goes to stdout, messages to stderr.
func bootstrapPerson(stdout, stderr io.Writer, configFile, adapter, ws, email, console string) (int, error) {
	if configFile == "" {
		return caddy.ExitCodeFailedStartup, errors.New("--config is required")
	}
	if ws == "" || email == "" {
		return caddy.ExitCodeFailedStartup, errors.New("--workspace and --email are required")
	}
	if console == "" {
		app, err := appFromConfig(configFile, adapter)
		if err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		console = "http://localhost:8080/admin/"
		if app.PublicURL != "" {
			console = strings.TrimSuffix(caddy.NewReplacer().ReplaceKnown(app.PublicURL, ""), "/") + "/admin/"
		}
	}
	if !strings.HasSuffix(console, "/") {
		console += "/"
	}
	svc, closeSvc, err := openService(configFile, adapter)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	defer closeSvc()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	inv, err := svc.BootstrapPerson(ctx, ws, email)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	fmt.Fprintf(stderr, "invited %s as superadmin of workspace %s (membership %s); the one-time setup link (valid until %s) follows on standard output\n",
		inv.Email, ws, inv.User.ID, inv.ExpiresAt.Format(time.RFC3339))
	if _, err := fmt.Fprintln(stdout, console+"accept?token="+url.QueryEscape(inv.Token)); err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	return caddy.ExitCodeSuccess, nil
}

// openService opens the store the configuration names and makes the
// service over it, the way the apiusers app does; close releases both.
func openService(configFile, adapter string) (svc *authz.Service, close func(), err error) {
	app, err := appFromConfig(configFile, adapter)
	if err != nil {
		return nil, nil, err
	}
	s, err := app.resolve(caddy.NewReplacer())
	if err != nil {
		return nil, nil, err
	}
	if err := s.loadSecret(); err != nil {
		return nil, nil, err
	}
	store, err := s.openStore()
	if err != nil {
		return nil, nil, err
	}
	svc, cache, err := s.newService(store, nil)
	if err != nil {
		store.Close()
		return nil, nil, err
	}
	return svc, func() { svc.Close(); cache.Close(); store.Close() }, nil
}

// appFromConfig loads the configuration file and returns its apiusers app
// configuration (the defaults when it has none).
func appFromConfig(configFile, adapter string) (*App, error) {
	cfgJSON, _, _, err := caddycmd.LoadConfig(configFile, adapter)
	if err != nil {
		return nil, err
	}
	var cfg struct {
		Apps map[string]json.RawMessage `json:"apps"`
	}
	if len(cfgJSON) > 0 {
		if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
			return nil, fmt.Errorf("decoding config: %w", err)
		}
	}
	app := new(App)
	if raw := cfg.Apps["apiusers"]; len(raw) > 0 {
		if err := caddy.StrictUnmarshalJSON(raw, app); err != nil {
			return nil, fmt.Errorf("decoding apiusers app config: %w", err)
		}
	}
	return app, nil
}

// Defaults of `caddy apiusers seed`.
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

func seedCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "seed --config <file> [--adapter caddyfile] --workspace <id> --users <n> [--prefix <name>] [--keys-out <file>] [--root-key <key>]",
		Short: "Fills a workspace with API users, one key each, for load tests",
		Long: `
Opens the store that the apiusers app of the given configuration names, like
bootstrap, and creates --users API users named <prefix>-<number> in the
workspace (created when missing), each with one key. The keys are written one
per line to --keys-out (mode 0600), or to standard output without it; progress
and a summary go to standard error.

Every user is created the way the admin API creates one (with its audit
entries), --batch users per transaction (all or none of a batch), by
--workers workers at once. Without --root-key a superadmin named
<prefix>-seeder is bootstrapped to act as the creator; its key is never shown
and is revoked when seeding ends. With the file store, Caddy must be stopped (see bootstrap);
the Redis store can be seeded while a fleet runs.

--config
    The configuration file (a Caddyfile or JSON). Required.

--adapter
    The name of the config adapter to use (such as caddyfile).

--workspace
    The workspace id. Created when missing.

--users
    How many users to create. Default: 10000.

--prefix
    Usernames are <prefix>-<number>, numbered from 1. Default: seed.

--role
    The role of the users. Default: api_user.

--keys-out
    The file the keys are written to, one per line. Default: standard output.

--root-key
    A key of a user allowed to create users in the workspace (such as the
    key bootstrap printed), instead of bootstrapping <prefix>-seeder.

--workers
    How many batches are created at once. Default: 8 with the file store
    (which spends most of each creation waiting for the disk), 1 with Redis
    (where creations in one workspace contend for the same records, and
    concurrent ones mostly retry).

--batch
    How many users one transaction creates (at most 1000). Default: 100.
`,
		Args: cobra.NoArgs,
		RunE: caddycmd.WrapCommandFuncForCobra(cmdSeed),
	}
	f := c.Flags()
	f.StringP("config", "c", "", "Configuration file")
	f.StringP("adapter", "a", "", "Name of config adapter to apply")
	f.StringP("workspace", "w", "", "Workspace id")
	f.IntP("users", "n", defaultSeedUsers, "How many users to create")
	f.String("prefix", defaultSeedPrefix, "Username prefix")
	f.String("role", string(authz.RoleAPIUser), "Role of the users")
	f.StringP("keys-out", "o", "", "File the keys are written to (default: standard output)")
	f.String("root-key", "", "Key of the creating user (default: bootstrap <prefix>-seeder)")
	f.Int("workers", 0, "How many batches are created at once (default: 8 on the file store, 1 on Redis)")
	f.Int("batch", defaultSeedBatch, "Users created per transaction (at most 1000)")
	return c
}

func cmdSeed(fl caddycmd.Flags) (int, error) {
	o := seedOptions{
		config:    fl.String("config"),
		adapter:   fl.String("adapter"),
		workspace: fl.String("workspace"),
		users:     fl.Int("users"),
		prefix:    fl.String("prefix"),
		role:      authz.Role(fl.String("role")),
		keysOut:   fl.String("keys-out"),
		rootKey:   fl.String("root-key"),
		workers:   fl.Int("workers"),
		batch:     fl.Int("batch"),
	}
	code, err := seed(context.Background(), os.Stdout, os.Stderr, o)
	if err != nil {
		return code, fmt.Errorf("apiusers seed: %w", err)
	}
	return code, nil
}

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
}

// seed runs the seed command: keys go to o.keysOut (or stdout), messages
// to stderr.
func seed(ctx context.Context, stdout, stderr io.Writer, o seedOptions) (int, error) {
	switch {
	case o.config == "":
		return caddy.ExitCodeFailedStartup, errors.New("--config is required")
	case o.workspace == "":
		return caddy.ExitCodeFailedStartup, errors.New("--workspace is required")
	case o.users < 1:
		return caddy.ExitCodeFailedStartup, errors.New("--users must be at least 1")
	case o.prefix == "":
		return caddy.ExitCodeFailedStartup, errors.New("--prefix must not be empty")
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
		return caddy.ExitCodeFailedStartup, fmt.Errorf("--batch must be at most %d", authz.MaxBulkUsers)
	}
	svc, closeSvc, err := openService(o.config, o.adapter)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	defer closeSvc()
	if o.workers < 1 {
		o.workers = defaultSeedWorkersFile
		if _, shared := svc.Store().(invalidationFeed); shared {
			// A store a fleet shares (Redis) is optimistic: see the defaults.
			o.workers = defaultSeedWorkersRedis
		}
	}

	out := stdout
	var keysFile *os.File
	if o.keysOut != "" {
		keysFile, err = os.OpenFile(o.keysOut, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return caddy.ExitCodeFailedStartup, fmt.Errorf("opening keys file: %w", err)
		}
		defer keysFile.Close() // a second Close after the checked one is harmless
		out = keysFile
	}

	actor, release, err := seedActor(ctx, svc, stderr, o)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	defer release()

	start := time.Now()
	n, err := seedUsers(ctx, svc, actor, out, stderr, o)
	elapsed := time.Since(start)
	if err != nil {
		return caddy.ExitCodeFailedStartup, fmt.Errorf("after %d of %d users: %w", n, o.users, err)
	}
	if keysFile != nil {
		if err := keysFile.Close(); err != nil {
			return caddy.ExitCodeFailedStartup, fmt.Errorf("writing keys file: %w", err)
		}
	}
	fmt.Fprintf(stderr, "seeded %d users (%s) in workspace %s in %s: %.0f users/s\n",
		n, o.role, o.workspace, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds())
	return caddy.ExitCodeSuccess, nil
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
				batch, err := seedBatch(ctx, svc, actor, o.workspace, o.role, names)
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
func seedBatch(ctx context.Context, svc *authz.Service, actor *authz.Principal, ws string, role authz.Role, names []string) ([]string, error) {
	in := make([]authz.NewUser, len(names))
	for i, name := range names {
		in[i] = authz.NewUser{Username: name, Kind: authz.KindAPI, Role: role, IssueKey: true}
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
