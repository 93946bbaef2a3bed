package module

import (
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/apiusers/apiusers/authz"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("apiusers", parseGlobalOption)
	httpcaddyfile.RegisterHandlerDirective("apiusers", parseGateway)
	httpcaddyfile.RegisterDirectiveOrder("apiusers", httpcaddyfile.After, "forward_auth")
}

// parseGlobalOption sets up the apiusers app from the global option block.
func parseGlobalOption(d *caddyfile.Dispenser, existing any) (any, error) {
	if existing != nil {
		return nil, d.Err("the apiusers global option may be given only once")
	}
	app := new(App)
	if err := app.UnmarshalCaddyfile(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{Name: "apiusers", Value: caddyconfig.JSON(app, nil)}, nil
}

// UnmarshalCaddyfile sets up the app from Caddyfile tokens. Syntax:
//
//	apiusers {
//		store file [<dir>] {
//			lock_timeout <duration>
//		}
//		store redis <url> {
//			prefix        <prefix>
//			dial_timeout  <duration>
//			read_timeout  <duration>
//			write_timeout <duration>
//		}
//		signing_key       <secret>
//		signing_algorithm HS256|HS384|HS512
//		cache_ttl         <duration>
//		stale_ttl         <duration>
//		retry_after       <duration>
//	}
//
// The store's block is optional. The file store is the default; the Redis
// store needs signing_key. See App and StoreConfig for what each option
// means and its default.
func (a *App) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // option name
	if d.NextArg() {
		return d.ArgErr()
	}
	var storeAt *caddyfile.Dispenser // where the store was named, for errors
	for d.NextBlock(0) {
		switch d.Val() {
		case "store":
			if a.Store != nil {
				return d.Err("store given twice")
			}
			at := *d
			storeAt = &at
			sc, err := unmarshalStore(d)
			if err != nil {
				return err
			}
			a.Store = sc
		case "signing_key":
			if !d.NextArg() {
				return d.ArgErr()
			}
			key := d.Val()
			if !strings.Contains(key, "{") && len(key) < authz.MinSecretLen {
				return d.Errf("signing_key must be at least %d bytes, got %d", authz.MinSecretLen, len(key))
			}
			a.SigningKey = key
			if d.NextArg() {
				return d.ArgErr()
			}
		case "signing_algorithm":
			if !d.NextArg() {
				return d.ArgErr()
			}
			switch d.Val() {
			case "HS256", "HS384", "HS512":
			default:
				return d.Errf("signing_algorithm %q: want HS256, HS384 or HS512", d.Val())
			}
			a.SigningAlgorithm = d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}
		case "cache_ttl":
			dur, err := parseDuration(d)
			if err != nil {
				return err
			}
			a.CacheTTL = dur
		case "stale_ttl":
			dur, err := parseDuration(d)
			if err != nil {
				return err
			}
			a.StaleTTL = dur
		case "retry_after":
			dur, err := parseDuration(d)
			if err != nil {
				return err
			}
			a.RetryAfter = dur
		default:
			return d.Errf("unknown apiusers option %q", d.Val())
		}
	}
	if a.Store != nil && a.Store.Type == StoreRedis && a.SigningKey == "" {
		return storeAt.Err("store redis needs signing_key, so every instance verifies the same keys")
	}
	return nil
}

// unmarshalStore parses `store file [<dir>] {…}` or `store redis <url> {…}`;
// d is on "store".
func unmarshalStore(d *caddyfile.Dispenser) (*StoreConfig, error) {
	if !d.NextArg() {
		return nil, d.ArgErr()
	}
	sc := &StoreConfig{Type: d.Val()}
	switch sc.Type {
	case StoreFile:
		if d.NextArg() {
			sc.Dir = d.Val()
		}
	case StoreRedis:
		if !d.NextArg() {
			return nil, d.Errf("store redis needs a URL (redis:// or rediss://)")
		}
		sc.URL = d.Val()
		if !strings.Contains(sc.URL, "{") && !strings.HasPrefix(sc.URL, "redis://") && !strings.HasPrefix(sc.URL, "rediss://") {
			return nil, d.Errf("store redis: URL must start with redis:// or rediss://")
		}
	default:
		return nil, d.Errf("unknown store %q (want file or redis)", sc.Type)
	}
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		var target *caddy.Duration
		switch {
		case sc.Type == StoreFile && opt == "lock_timeout":
			target = &sc.LockTimeout
		case sc.Type == StoreRedis && opt == "prefix":
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			sc.Prefix = d.Val()
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			continue
		case sc.Type == StoreRedis && opt == "dial_timeout":
			target = &sc.DialTimeout
		case sc.Type == StoreRedis && opt == "read_timeout":
			target = &sc.ReadTimeout
		case sc.Type == StoreRedis && opt == "write_timeout":
			target = &sc.WriteTimeout
		default:
			return nil, d.Errf("unknown option %q of store %s", opt, sc.Type)
		}
		dur, err := parseDuration(d)
		if err != nil {
			return nil, err
		}
		*target = dur
	}
	return sc, nil
}

// parseDuration reads the one duration argument of the current option.
func parseDuration(d *caddyfile.Dispenser) (caddy.Duration, error) {
	opt := d.Val()
	if !d.NextArg() {
		return 0, d.ArgErr()
	}
	dur, err := caddy.ParseDuration(d.Val())
	if err != nil {
		return 0, d.Errf("%s: bad duration %q: %v", opt, d.Val(), err)
	}
	if dur <= 0 {
		return 0, d.Errf("%s must be positive", opt)
	}
	if d.NextArg() {
		return 0, d.ArgErr()
	}
	return caddy.Duration(dur), nil
}

func parseGateway(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	g := new(Gateway)
	err := g.UnmarshalCaddyfile(h.Dispenser)
	return g, err
}

// UnmarshalCaddyfile sets up the gateway from Caddyfile tokens. Syntax:
//
//	apiusers [<matcher>] {
//		workspace <id>
//		roles     <role...>
//		require   <permission> [on <resource>] [owner <value>]
//		key_from  <source...>
//		keep_credentials
//	}
//
// The block is optional; require and roles may be repeated (require lines
// all must hold; roles lines add up). A key_from source is `bearer` (the
// Authorization: Bearer credential), `header <name>`, `query <name>` or
// `cookie <name>`; sources are tried in the order given, across repeated
// key_from lines. Default: `key_from bearer header X-API-Key`.
//
// Roles and permissions are checked when the configuration loads: a role
// must be a built-in role, a permission must match ^[a-z][a-z0-9_.:-]*$.
func (g *Gateway) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "workspace":
			if !d.NextArg() {
				return d.ArgErr()
			}
			if g.Workspace != "" {
				return d.Err("workspace given twice")
			}
			if !authz.ValidWorkspaceID(d.Val()) {
				return d.Errf("workspace %q is not a valid workspace id", d.Val())
			}
			g.Workspace = d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}
		case "roles":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			for _, r := range args {
				if !authz.ValidRole(authz.Role(r)) {
					return d.Errf("roles: unknown role %q", r)
				}
			}
			g.Roles = append(g.Roles, args...)
		case "require":
			rq, err := unmarshalRequire(d)
			if err != nil {
				return err
			}
			g.Require = append(g.Require, rq)
		case "key_from":
			if !d.NextArg() {
				return d.ArgErr()
			}
			for {
				src := KeySource{From: d.Val()}
				switch src.From {
				case SourceBearer:
				case SourceHeader, SourceQuery, SourceCookie:
					if !d.NextArg() {
						return d.Errf("key_from %s needs a name", src.From)
					}
					src.Name = d.Val()
				default:
					return d.Errf("key_from: unknown source %q (want bearer, header <name>, query <name> or cookie <name>)", src.From)
				}
				g.KeyFrom = append(g.KeyFrom, src)
				if !d.NextArg() {
					break
				}
			}
		case "keep_credentials":
			if d.NextArg() {
				return d.ArgErr()
			}
			g.KeepCredentials = true
		case "record":
			return d.Err("record is not supported yet")
		default:
			return d.Errf("unknown apiusers subdirective %q", d.Val())
		}
	}
	return nil
}

// unmarshalRequire parses `require <permission> [on <resource>] [owner <value>]`;
// d is on "require".
func unmarshalRequire(d *caddyfile.Dispenser) (Requirement, error) {
	var rq Requirement
	if !d.NextArg() {
		return rq, d.ArgErr()
	}
	rq.Permission = d.Val()
	if !authz.ValidPermission(rq.Permission) {
		return rq, d.Errf("require: %q is not a valid permission", rq.Permission)
	}
	for d.NextArg() {
		switch d.Val() {
		case "on":
			if rq.On != "" || !d.NextArg() {
				return rq, d.ArgErr()
			}
			rq.On = d.Val()
			if !strings.Contains(rq.On, "{") {
				if _, _, ok := authz.ParseResource(rq.On); !ok {
					return rq, d.Errf("require %s on %q: the resource must be type:id", rq.Permission, rq.On)
				}
			}
		case "owner":
			if rq.Owner != "" || !d.NextArg() {
				return rq, d.ArgErr()
			}
			rq.Owner = d.Val()
		default:
			return rq, d.Errf("require: unexpected %q (want on <resource> or owner <value>)", d.Val())
		}
	}
	return rq, nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*App)(nil)
	_ caddyfile.Unmarshaler = (*Gateway)(nil)
)
