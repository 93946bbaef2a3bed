package module

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "apiusers",
		Short: "Manages the apiusers store",
		Long: `
Commands that work on the apiusers store a configuration names, without
running Caddy.

  bootstrap   creates a workspace and its first superadmin API user
`,
		CobraFunc: func(cmd *cobra.Command) {
			bootstrap := &cobra.Command{
				Use:   "bootstrap --config <file> [--adapter caddyfile] --workspace <id> --username <name>",
				Short: "Creates a workspace and a superadmin API user, and prints its key",
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
    The new superadmin's username.
`,
				Args: cobra.NoArgs,
				RunE: caddycmd.WrapCommandFuncForCobra(cmdBootstrap),
			}
			bootstrap.Flags().StringP("config", "c", "", "Configuration file")
			bootstrap.Flags().StringP("adapter", "a", "", "Name of config adapter to apply")
			bootstrap.Flags().StringP("workspace", "w", "", "Workspace id")
			bootstrap.Flags().StringP("username", "u", "", "Username of the new superadmin")
			cmd.AddCommand(bootstrap)
		},
	})
}

func cmdBootstrap(fl caddycmd.Flags) (int, error) {
	code, err := bootstrap(os.Stdout, os.Stderr, fl.String("config"), fl.String("adapter"), fl.String("workspace"), fl.String("username"))
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
	app, err := appFromConfig(configFile, adapter)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	s, err := app.resolve(caddy.NewReplacer())
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	store, err := s.openStore()
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	defer store.Close()
	svc, cache, err := s.newService(store, nil)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	defer cache.Close()

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
