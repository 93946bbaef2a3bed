package module

import (
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/dustin/go-humanize"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/limit"
	"github.com/apiusers/apiusers/authz/password"
	"github.com/apiusers/apiusers/authz/redisstore"
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
//		store redis [<url>] {
//			cluster           <host:port...>
//			sentinel          <master-name> <host:port...>
//			sentinel_username <user>
//			sentinel_password <password>
//			username          <user>
//			password          <password>
//			tls
//			db                <number>
//			wait_replicas     <count> [<timeout>]
//			prefix            <prefix>
//			dial_timeout      <duration>
//			read_timeout      <duration>
//			write_timeout     <duration>
//		}
//		signing_key       <secret>
//		signing_algorithm HS256|HS384|HS512
//		cache_ttl         <duration>
//		stale_ttl         <duration>
//		retry_after       <duration>
//		messages_keep     <count>
//		messages_max_age  <duration>
//		messages_queue    <count>
//		mail smtp[s]://[user:password@]host[:port] {
//			from <address>
//		}
//		public_url        <url>
//		session_ttl       <duration>
//		session_idle      <duration>
//		invite_ttl        <duration>
//		auth_failures     <n> per <duration> [backoff <duration>] | off
//	}
//
// The store's block is optional. The file store is the default; the Redis
// store needs signing_key. The Redis store is a single server (the url),
// a Redis Cluster (cluster with one or more seed nodes, no url) or a
// master that Redis Sentinel watches (sentinel with the master's name and
// the sentinels, no url); username, password and tls apply to any of them
// (with a url, credentials go in the url or in username/password, not
// both). mail names the SMTP server and, in from, the sender; without it
// no mail is sent. Values may be placeholders such as {env.X}, expanded
// when the config loads. See App, StoreConfig, SentinelConfig and
// MailConfig for what each option means and its default.
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
			if !authz.ValidSigningAlgorithm(d.Val()) {
				return d.Errf("signing_algorithm %q: want %s", d.Val(), authz.SigningAlgorithms)
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
		case "messages_keep":
			n, err := parseCount(d)
			if err != nil {
				return err
			}
			a.MessagesKeep = n
		case "messages_max_age":
			dur, err := parseDuration(d)
			if err != nil {
				return err
			}
			a.MessagesMaxAge = dur
		case "messages_queue":
			n, err := parseCount(d)
			if err != nil {
				return err
			}
			a.MessagesQueue = n
		case "mail":
			if a.Mail != nil {
				return d.Err("mail given twice")
			}
			mc, err := unmarshalMail(d)
			if err != nil {
				return err
			}
			a.Mail = mc
		case "public_url":
			if !d.NextArg() {
				return d.ArgErr()
			}
			raw := d.Val()
			if !strings.Contains(raw, "{") {
				u, err := url.Parse(raw)
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
					return d.Errf("public_url %q: want an absolute http:// or https:// URL without query or fragment", raw)
				}
			}
			a.PublicURL = raw
			if d.NextArg() {
				return d.ArgErr()
			}
		case "session_ttl":
			dur, err := parseDuration(d)
			if err != nil {
				return err
			}
			a.SessionTTL = dur
		case "session_idle":
			dur, err := parseDuration(d)
			if err != nil {
				return err
			}
			a.SessionIdle = dur
		case "invite_ttl":
			dur, err := parseDuration(d)
			if err != nil {
				return err
			}
			a.InviteTTL = dur
		case "auth_failures":
			af, err := unmarshalAuthFailures(d)
			if err != nil {
				return err
			}
			a.AuthFailures = af
		case "password_budget":
			b, err := parseShare(d)
			if err != nil {
				return err
			}
			a.PasswordBudget = b
		default:
			return d.Errf("unknown apiusers option %q", d.Val())
		}
	}
	if a.Store != nil && a.Store.Type == StoreRedis && a.SigningKey == "" {
		return storeAt.Err("store redis needs signing_key, so every instance verifies the same keys")
	}
	return nil
}

// unmarshalStore parses `store file [<dir>] {…}` or `store redis [<url>] {…}`;
// d is on "store".
func unmarshalStore(d *caddyfile.Dispenser) (*StoreConfig, error) {
	if !d.NextArg() {
		return nil, d.ArgErr()
	}
	sc := &StoreConfig{Type: d.Val()}
	storeAt := *d // the store's type, for errors about the whole store
	switch sc.Type {
	case StoreFile:
		if d.NextArg() {
			sc.Dir = d.Val()
		}
	case StoreRedis:
		// No url when the block names a cluster or sentinel.
		if d.NextArg() {
			sc.URL = d.Val()
			if !strings.Contains(sc.URL, "{") && !redisstore.IsURL(sc.URL) {
				return nil, d.Errf("store redis: URL must start with redis:// or rediss://")
			}
		}
	default:
		return nil, d.Errf("unknown store %q (want file or redis)", sc.Type)
	}
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	var r redisLines
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if sc.Type == StoreRedis {
			if ok, err := r.unmarshal(d, sc); ok || err != nil {
				if err != nil {
					return nil, err
				}
				continue
			}
		}
		var target *caddy.Duration
		switch {
		case sc.Type == StoreFile && opt == "lock_timeout":
			target = &sc.LockTimeout
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
	if sc.Type == StoreRedis {
		if err := r.finish(sc, &storeAt); err != nil {
			return nil, err
		}
	}
	return sc, nil
}

// redisLines remembers, while the block of `store redis` is parsed, what
// can only be checked once all of it is read, and where it was.
type redisLines struct {
	sentinelUsername, sentinelPassword string
	sentinelAuthAt                     *caddyfile.Dispenser // first sentinel_username/_password line
	dbAt                               *caddyfile.Dispenser
	credentialsAt                      *caddyfile.Dispenser // first username/password line
}

// unmarshal parses the Redis option d is on into sc; ok is false when d is
// on no Redis-specific option (a timeout, or an unknown option).
func (r *redisLines) unmarshal(d *caddyfile.Dispenser, sc *StoreConfig) (ok bool, err error) {
	opt := d.Val()
	at := *d
	switch opt {
	case "cluster", "sentinel":
		args := d.RemainingArgs()
		switch {
		case sc.Cluster != nil || sc.Sentinel != nil:
			if (opt == "cluster") == (sc.Cluster != nil) {
				return true, d.Errf("%s given twice", opt)
			}
			return true, d.Err("store redis: cluster and sentinel exclude each other")
		case sc.URL != "":
			return true, d.Errf("%s: the url names a single server; leave it out and give username, password and tls in this block", opt)
		case opt == "cluster" && len(args) == 0:
			return true, d.Err("cluster needs at least one seed address (host:port)")
		case opt == "sentinel" && len(args) < 2:
			return true, d.Err("sentinel needs the master's name and at least one sentinel address (host:port)")
		}
		addrs := args
		if opt == "sentinel" {
			addrs = args[1:]
		}
		for _, a := range addrs {
			if strings.Contains(a, "{") {
				continue // checked once expanded
			}
			if host, port, err := net.SplitHostPort(a); err != nil || host == "" || port == "" {
				return true, d.Errf("%s: address %q: want host:port", opt, a)
			}
		}
		if opt == "cluster" {
			sc.Cluster = addrs
		} else {
			sc.Sentinel = &SentinelConfig{MasterName: args[0], Addrs: addrs}
		}
	case "username", "password", "sentinel_username", "sentinel_password", "prefix":
		if !d.NextArg() {
			return true, d.ArgErr()
		}
		v := d.Val()
		if d.NextArg() {
			return true, d.ArgErr()
		}
		switch opt {
		case "username":
			sc.Username = v
		case "password":
			sc.Password = v
		case "sentinel_username":
			r.sentinelUsername = v
		case "sentinel_password":
			r.sentinelPassword = v
		case "prefix":
			sc.Prefix = v
		}
		switch {
		case (opt == "username" || opt == "password") && r.credentialsAt == nil:
			r.credentialsAt = &at
		case strings.HasPrefix(opt, "sentinel_") && r.sentinelAuthAt == nil:
			r.sentinelAuthAt = &at
		}
	case "tls":
		if d.NextArg() {
			return true, d.ArgErr()
		}
		sc.TLS = true
	case "db":
		if !d.NextArg() {
			return true, d.ArgErr()
		}
		n, err := strconv.Atoi(d.Val())
		if err != nil || n < 0 {
			return true, d.Errf("db: want a database number (0 or more), got %q", d.Val())
		}
		if d.NextArg() {
			return true, d.ArgErr()
		}
		sc.DB, r.dbAt = n, &at
	case "wait_replicas":
		if !d.NextArg() {
			return true, d.ArgErr()
		}
		n, err := strconv.Atoi(d.Val())
		if err != nil || n <= 0 {
			return true, d.Errf("wait_replicas: want a positive whole number, got %q", d.Val())
		}
		sc.WaitReplicas = n
		if d.NextArg() {
			dur, err := caddy.ParseDuration(d.Val())
			if err != nil {
				return true, d.Errf("wait_replicas: bad timeout %q: %v", d.Val(), err)
			}
			if dur <= 0 {
				return true, d.Err("wait_replicas: the timeout must be positive")
			}
			sc.WaitTimeout = caddy.Duration(dur)
			if d.NextArg() {
				return true, d.ArgErr()
			}
		}
	default:
		return false, nil
	}
	return true, nil
}

// finish checks the block of `store redis` as a whole; storeAt is on its
// type, for errors about the whole store.
func (r *redisLines) finish(sc *StoreConfig, storeAt *caddyfile.Dispenser) error {
	switch {
	case sc.URL == "" && sc.Cluster == nil && sc.Sentinel == nil:
		return storeAt.Err("store redis needs a URL (redis:// or rediss://), or a cluster or sentinel line in its block")
	case r.sentinelAuthAt != nil && sc.Sentinel == nil:
		return r.sentinelAuthAt.Err("sentinel_username and sentinel_password need a sentinel line")
	case r.dbAt != nil && sc.Sentinel == nil:
		return r.dbAt.Err("db applies to sentinel only: a single server's database is the url path (redis://host:port/<db>), and a cluster has only database 0")
	case r.credentialsAt != nil && strings.Contains(sc.URL, "@"):
		return r.credentialsAt.Err("the url already holds credentials: give them in one place")
	}
	if sc.Sentinel != nil {
		sc.Sentinel.Username, sc.Sentinel.Password = r.sentinelUsername, r.sentinelPassword
	}
	return nil
}

// parseShare reads the password hashing budget: a share of the machine's
// CPUs, a fraction (0.05) or a percentage (5%), from 0.1% to 100%.
func parseShare(d *caddyfile.Dispenser) (float64, error) {
	opt := d.Val()
	if !d.NextArg() {
		return 0, d.ArgErr()
	}
	raw := d.Val()
	num, pct := strings.CutSuffix(raw, "%")
	v, err := strconv.ParseFloat(num, 64)
	if pct {
		v /= 100
	}
	if err != nil || !(v >= password.MinBudget && v <= 1) {
		return 0, d.Errf("%s: want a share of the CPUs from 0.1%% to 100%% (such as 5%% or 0.05), got %q", opt, raw)
	}
	if d.NextArg() {
		return 0, d.ArgErr()
	}
	return v, nil
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

// parseCount reads the one positive integer argument of the current option.
func parseCount(d *caddyfile.Dispenser) (int, error) {
	opt := d.Val()
	if !d.NextArg() {
		return 0, d.ArgErr()
	}
	n, err := strconv.Atoi(d.Val())
	if err != nil || n <= 0 {
		return 0, d.Errf("%s: want a positive whole number, got %q", opt, d.Val())
	}
	if d.NextArg() {
		return 0, d.ArgErr()
	}
	return n, nil
}

func parseGateway(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	g := new(Gateway)
	err := g.UnmarshalCaddyfile(h.Dispenser)
	return g, err
}

// UnmarshalCaddyfile sets up the gateway from Caddyfile tokens. Syntax:
//
//	apiusers [<matcher>] {
//		name      <name>
//		workspace <id>
//		roles     <role...>
//		require   <permission> [on <resource>] [owner <value>]
//		key_from  <source...>
//		keep_credentials
//		record    [body <size>]
//		rate_limit <n> per <duration> [by key|user|workspace|ip] [burst <n>] [name <name>]
//		cost      <n>
//		name      <name>
//	}
//
// The block is optional; require and roles may be repeated (require lines
// all must hold; roles lines add up). A key_from source is `bearer` (the
// Authorization: Bearer credential), `header <name>`, `query <name>` or
// `cookie <name>`; sources are tried in the order given, across repeated
// key_from lines. Default: `key_from bearer header X-API-Key`.
//
// name labels the route in the gateway's metrics (default: a summary of its
// rules).
//
// Roles and permissions are checked when the configuration loads: a role
// must be a built-in role, a permission must match ^[a-z][a-z0-9_.:-]*$.
//
// record stores each admitted call as an API message of the caller; with
// `body <size>` (such as 4KiB, 1kB or 512), the message keeps up to that
// much of the start of the request body, at most 1MiB.
//
// rate_limit lets each caller make n requests per duration on the route
// (counted by user unless by says otherwise), at most burst at once; it
// may be repeated, and every line must admit a request. cost is how many
// credits a request spends of a caller that has credits (default 1; 0
// makes the route free). name names the route in metrics and its counts
// across a fleet (see Gateway.Name). See RateLimit and Gateway.Cost.
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
			if g.Record != nil {
				return d.Err("record given twice")
			}
			rc, err := unmarshalRecord(d)
			if err != nil {
				return err
			}
			g.Record = rc
		case "rate_limit":
			rl, err := unmarshalRateLimit(d)
			if err != nil {
				return err
			}
			if len(g.RateLimits) == maxLimitLines {
				return d.Errf("rate_limit: at most %d lines per route", maxLimitLines)
			}
			g.RateLimits = append(g.RateLimits, rl)
			if _, err := limitNames(g.RateLimits); err != nil {
				return d.Err(err.Error())
			}
		case "name":
			if g.Name != "" {
				return d.Err("name given twice")
			}
			if !d.NextArg() {
				return d.ArgErr()
			}
			if !policyNameRe.MatchString(d.Val()) {
				return d.Errf("name %q: want lower-case letters, digits, '-', '_' and '.'", d.Val())
			}
			g.Name = d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}
		case "cost":
			if g.Cost != nil {
				return d.Err("cost given twice")
			}
			if !d.NextArg() {
				return d.ArgErr()
			}
			n, err := strconv.ParseInt(d.Val(), 10, 64)
			if err != nil || n < 0 || n > limit.MaxCredits {
				return d.Errf("cost: want a whole number of credits from 0 to %d, got %q", int64(limit.MaxCredits), d.Val())
			}
			if d.NextArg() {
				return d.ArgErr()
			}
			g.Cost = &n
		default:
			return d.Errf("unknown apiusers subdirective %q", d.Val())
		}
	}
	return nil
}

// unmarshalRateLimit parses `rate_limit <n> per <duration> [by <what>]
// [burst <n>] [name <name>]`; d is on "rate_limit".
func unmarshalRateLimit(d *caddyfile.Dispenser) (RateLimit, error) {
	var rl RateLimit
	args := d.RemainingArgs()
	if len(args) < 3 || args[1] != "per" {
		return rl, d.Err("rate_limit: want <n> per <duration> [by key|user|workspace|ip] [burst <n>] [name <name>]")
	}
	n, err := strconv.ParseInt(args[0], 10, 64)
	if err != nil || n < 1 || n > limit.MaxRequests {
		return rl, d.Errf("rate_limit: %q is not a number of requests from 1 to %d", args[0], limit.MaxRequests)
	}
	rl.Requests = n
	per, err := caddy.ParseDuration(args[2])
	if err != nil || per <= 0 {
		return rl, d.Errf("rate_limit: per %q is not a positive duration (such as 1s, 1m, 1h, 1d)", args[2])
	}
	rl.Per = caddy.Duration(per)
	seen := map[string]bool{}
	for rest := args[3:]; len(rest) > 0; rest = rest[2:] {
		word := rest[0]
		if len(rest) < 2 {
			return rl, d.Errf("rate_limit: %s needs a value", word)
		}
		if seen[word] {
			return rl, d.Errf("rate_limit: %s given twice", word)
		}
		seen[word] = true
		v := rest[1]
		switch word {
		case "by":
			switch v {
			case ByKey, ByUser, ByWorkspace, ByIP:
			default:
				return rl, d.Errf("rate_limit by %q: want key, user, workspace or ip", v)
			}
			rl.By = v
		case "burst":
			b, err := strconv.ParseInt(v, 10, 64)
			if err != nil || b < 1 || b > limit.MaxRequests {
				return rl, d.Errf("rate_limit burst %q: want a number of requests from 1 to %d", v, limit.MaxRequests)
			}
			rl.Burst = b
		case "name":
			if !policyNameRe.MatchString(v) || v == creditsPolicy {
				return rl, d.Errf("rate_limit name %q: want lower-case letters, digits, '-', '_' and '.' (and not %q)", v, creditsPolicy)
			}
			rl.Name = v
		default:
			return rl, d.Errf("rate_limit: unexpected %q (want by, burst or name)", word)
		}
	}
	r := limit.Rate{Requests: rl.Requests, Per: per, Burst: rl.Burst}
	if err := r.Validate(); err != nil {
		return rl, d.Errf("rate_limit %s: %v", r, err)
	}
	return rl, nil
}

// unmarshalRecord parses `record [body <size>]`; d is on "record".
func unmarshalRecord(d *caddyfile.Dispenser) (*RecordConfig, error) {
	rc := new(RecordConfig)
	if !d.NextArg() {
		return rc, nil
	}
	if d.Val() != "body" {
		return nil, d.Errf("record: unexpected %q (want body <size>)", d.Val())
	}
	if !d.NextArg() {
		return nil, d.Err("record body needs a size, such as 4KiB")
	}
	n, err := humanize.ParseBytes(d.Val())
	if err != nil {
		return nil, d.Errf("record body: bad size %q: %v", d.Val(), err)
	}
	if n == 0 || n > MaxRecordBody {
		return nil, d.Errf("record body %s: want 1 byte to 1MiB", d.Val())
	}
	rc.Body = int64(n)
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	return rc, nil
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

// unmarshalAuthFailures reads `auth_failures <n> per <duration> [backoff
// <duration>]` or `auth_failures off`.
func unmarshalAuthFailures(d *caddyfile.Dispenser) (*AuthFailures, error) {
	if !d.NextArg() {
		return nil, d.ArgErr()
	}
	if d.Val() == "off" {
		if d.NextArg() {
			return nil, d.ArgErr()
		}
		return &AuthFailures{Off: true}, nil
	}
	n, err := strconv.Atoi(d.Val())
	if err != nil || n < 1 {
		return nil, d.Errf("auth_failures: %q is not a number of failures (1 or more)", d.Val())
	}
	af := &AuthFailures{Limit: n}
	if !d.NextArg() || d.Val() != "per" {
		return nil, d.Err("auth_failures: want <n> per <duration> [backoff <duration>], or off")
	}
	if af.Window, err = nextDuration(d, "auth_failures per"); err != nil {
		return nil, err
	}
	if d.NextArg() {
		if d.Val() != "backoff" {
			return nil, d.Errf("auth_failures: unexpected %q (want backoff <duration>)", d.Val())
		}
		if af.Backoff, err = nextDuration(d, "auth_failures backoff"); err != nil {
			return nil, err
		}
		if af.Backoff > af.Window {
			return nil, d.Err("auth_failures: backoff must be positive and at most the window")
		}
		if d.NextArg() {
			return nil, d.ArgErr()
		}
	}
	return af, nil
}

// nextDuration reads the next argument as a positive duration; what names
// it in errors.
func nextDuration(d *caddyfile.Dispenser, what string) (caddy.Duration, error) {
	if !d.NextArg() {
		return 0, d.ArgErr()
	}
	dur, err := caddy.ParseDuration(d.Val())
	if err != nil {
		return 0, d.Errf("%s: bad duration %q: %v", what, d.Val(), err)
	}
	if dur <= 0 {
		return 0, d.Errf("%s must be positive", what)
	}
	return caddy.Duration(dur), nil
}
