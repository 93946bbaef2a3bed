package module

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
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
	svc, closeSvc, err := OpenService(configFile, adapter)
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
	svc, closeSvc, err := OpenService(configFile, adapter)
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

// OpenService opens the store the apiusers app of a configuration file
// names (adapter, such as "caddyfile", adapts it; "" takes JSON) and makes
// the service over it, as the app does, for commands that work on the
// store without running Caddy: the bootstrap command, and bench/seed.
// close releases both. The file store waits at most its lock_timeout for
// a Caddy that holds it, then fails saying so.
func OpenService(configFile, adapter string) (svc *authz.Service, close func(), err error) {
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
