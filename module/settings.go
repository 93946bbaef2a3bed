package module

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/caddyserver/caddy/v2"

	"github.com/apiusers/apiusers/admin"
	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/password"
	"github.com/apiusers/apiusers/authz/redisstore"
	"github.com/apiusers/apiusers/authz/throttle"
)

// Defaults.
const (
	defaultCacheTTL    = 30 * time.Second
	defaultRetryAfter  = 5 * time.Second
	defaultLockTimeout = 5 * time.Second
	defaultRedisPrefix = "apiusers"
)

// settings is the app configuration with defaults applied and placeholders
// expanded: everything needed to open the store and make the service. The
// app's Provision and the bootstrap command both start from it, so a store
// is opened one way only.
type settings struct {
	storeType    string
	dir          string // file store: absolute directory
	lockTimeout  time.Duration
	url          string // redis store
	prefix       string
	dialTimeout  time.Duration // zero: the store's default
	readTimeout  time.Duration
	writeTimeout time.Duration
	redis        redisDeployment // redis store: all but url, prefix, timeouts

	secret        []byte // signing_key, or (file store) loadSecret's
	algorithm     string
	cacheTTL      time.Duration
	staleTTL      time.Duration
	sessionTTL    time.Duration
	sessionIdle   time.Duration
	inviteTTL     time.Duration
	failures      throttle.Policy // Limit 0: off
	passwordShare float64         // password_budget, or its default
	publicURL     string          // without a trailing slash
	retryAfterDur time.Duration
	retryAfter    []string // precomputed Retry-After header value
}

// DefaultDir is the file store's default directory.
func DefaultDir() string { return filepath.Join(caddy.AppDataDir(), "apiusers") }

// resolve applies defaults, expands placeholders and checks the
// configuration; repl expands placeholders. It touches no file: the file
// store's generated secret is read (or made) by loadSecret, when the store
// is opened.
func (a *App) resolve(repl *caddy.Replacer) (*settings, error) {
	if err := checkFailurePolicy(a.AuthFailures); err != nil {
		return nil, err
	}
	sc := a.Store
	if sc == nil {
		sc = new(StoreConfig)
	}
	s := &settings{
		storeType:     sc.Type,
		lockTimeout:   durationOr(sc.LockTimeout, defaultLockTimeout),
		prefix:        sc.Prefix,
		dialTimeout:   time.Duration(sc.DialTimeout),
		readTimeout:   time.Duration(sc.ReadTimeout),
		writeTimeout:  time.Duration(sc.WriteTimeout),
		algorithm:     a.SigningAlgorithm,
		cacheTTL:      durationOr(a.CacheTTL, defaultCacheTTL),
		staleTTL:      time.Duration(a.StaleTTL),
		sessionTTL:    durationOr(a.SessionTTL, authz.DefaultSessionTTL),
		sessionIdle:   durationOr(a.SessionIdle, authz.DefaultSessionIdle),
		inviteTTL:     durationOr(a.InviteTTL, authz.DefaultInviteTTL),
		failures:      failurePolicy(a.AuthFailures),
		passwordShare: password.DefaultBudget,
		publicURL:     strings.TrimSuffix(repl.ReplaceKnown(a.PublicURL, ""), "/"),
	}
	if a.SessionTTL < 0 || a.SessionIdle < 0 || a.InviteTTL < 0 {
		return nil, errors.New("session_ttl, session_idle and invite_ttl must not be negative")
	}
	if a.PasswordBudget != 0 {
		if !(a.PasswordBudget >= password.MinBudget && a.PasswordBudget <= 1) {
			return nil, fmt.Errorf("password_budget %v: want a share of the CPUs from %v to 1", a.PasswordBudget, password.MinBudget)
		}
		s.passwordShare = a.PasswordBudget
	}
	if s.publicURL != "" {
		u, err := url.Parse(s.publicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("public_url %q: want an absolute http:// or https:// URL without query or fragment", s.publicURL)
		}
	}
	if s.storeType == "" {
		s.storeType = StoreFile
	}
	if s.algorithm == "" {
		s.algorithm = authz.DefaultSigningAlgorithm
	}
	if !authz.ValidSigningAlgorithm(s.algorithm) {
		return nil, fmt.Errorf("signing_algorithm %q: want %s", s.algorithm, authz.SigningAlgorithms)
	}
	if a.CacheTTL < 0 {
		return nil, errors.New("cache_ttl must not be negative")
	}
	if a.StaleTTL < 0 {
		return nil, errors.New("stale_ttl must not be negative")
	}
	if a.RetryAfter < 0 {
		return nil, errors.New("retry_after must not be negative")
	}
	ra := durationOr(a.RetryAfter, defaultRetryAfter)
	s.retryAfterDur = ra
	s.retryAfter = []string{admin.RetryAfter(ra)}

	if a.SigningKey != "" {
		key := repl.ReplaceKnown(a.SigningKey, "")
		if key == "" {
			return nil, errors.New("signing_key is empty once placeholders are expanded")
		}
		if len(key) < authz.MinSecretLen {
			return nil, fmt.Errorf("signing_key must be at least %d bytes, got %d", authz.MinSecretLen, len(key))
		}
		s.secret = []byte(key)
	}

	switch s.storeType {
	case StoreFile:
		if sc.URL != "" || sc.Prefix != "" {
			return nil, errors.New("store: url and prefix apply to the redis store only")
		}
		dir := repl.ReplaceKnown(sc.Dir, "")
		if dir == "" {
			dir = DefaultDir()
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, fmt.Errorf("store directory %s: %w", dir, err)
		}
		s.dir = abs
	case StoreRedis:
		if sc.Dir != "" {
			return nil, errors.New("store: dir applies to the file store only")
		}
		s.url = repl.ReplaceKnown(sc.URL, "")
		rd, err := resolveRedis(sc, repl)
		if err != nil {
			return nil, err
		}
		s.redis = rd
		switch {
		case (sc.Cluster != nil || sc.Sentinel != nil) && s.url != "":
			return nil, errors.New("store redis: url names a single server; with cluster or sentinel give username, password and tls instead")
		case sc.Cluster != nil || sc.Sentinel != nil:
		case s.url == "":
			return nil, errors.New("store redis: url is required (redis:// or rediss://), or cluster or sentinel addresses")
		case !redisstore.IsURL(s.url):
			return nil, errors.New("store redis: url must start with redis:// or rediss://")
		}
		if s.prefix == "" {
			s.prefix = defaultRedisPrefix
		}
		if strings.ContainsAny(s.prefix, "{}") {
			return nil, errors.New("store redis: prefix must not contain '{' or '}'")
		}
		if s.secret == nil {
			return nil, errors.New("signing_key is required with the redis store, so every instance verifies the same keys")
		}
	default:
		return nil, fmt.Errorf("store type %q: want file or redis", s.storeType)
	}
	return s, nil
}

// redisDeployment is the Redis store's configuration beyond the url,
// prefix and timeouts, placeholders expanded.
type redisDeployment struct {
	cluster          []string // seed nodes; nil unless cluster
	masterName       string   // sentinel
	sentinels        []string
	sentinelUsername string
	sentinelPassword string
	username         string
	password         string
	tls              bool
	db               int
	waitReplicas     int
	waitTimeout      time.Duration
}

// resolveRedis expands the placeholders of sc's Redis deployment and
// checks what redisstore.New cannot word in the config's terms.
func resolveRedis(sc *StoreConfig, repl *caddy.Replacer) (redisDeployment, error) {
	rd := redisDeployment{
		cluster:      expandAddrs(sc.Cluster, repl),
		username:     repl.ReplaceKnown(sc.Username, ""),
		password:     repl.ReplaceKnown(sc.Password, ""),
		tls:          sc.TLS,
		db:           sc.DB,
		waitReplicas: sc.WaitReplicas,
		waitTimeout:  time.Duration(sc.WaitTimeout),
	}
	if sc.Cluster != nil && sc.Sentinel != nil {
		return rd, errors.New("store redis: cluster and sentinel exclude each other")
	}
	if sc.Cluster != nil && len(rd.cluster) == 0 {
		return rd, errors.New("store redis: cluster has no address once placeholders are expanded")
	}
	if sn := sc.Sentinel; sn != nil {
		rd.masterName = repl.ReplaceKnown(sn.MasterName, "")
		rd.sentinels = expandAddrs(sn.Addrs, repl)
		rd.sentinelUsername = repl.ReplaceKnown(sn.Username, "")
		rd.sentinelPassword = repl.ReplaceKnown(sn.Password, "")
		if rd.masterName == "" || len(rd.sentinels) == 0 {
			return rd, errors.New("store redis: sentinel needs a master name and at least one sentinel address")
		}
	}
	if sc.WaitReplicas < 0 || sc.WaitTimeout < 0 {
		return rd, errors.New("store redis: wait_replicas and wait_timeout must not be negative")
	}
	return rd, nil
}

// expandAddrs expands the placeholders of addrs and splits each result at
// commas and spaces, so one {env.X} can name several addresses.
func expandAddrs(addrs []string, repl *caddy.Replacer) []string {
	var out []string
	for _, a := range addrs {
		out = append(out, strings.FieldsFunc(repl.ReplaceKnown(a, ""), func(r rune) bool {
			return r == ',' || unicode.IsSpace(r)
		})...)
	}
	return out
}

// id names the deployment for storeID: empty for a plain url. Passwords
// appear as a hash, so a changed password makes a new client without the
// pool key holding it.
func (rd *redisDeployment) id() string {
	if rd.cluster == nil && rd.masterName == "" && rd.username == "" && rd.password == "" &&
		!rd.tls && rd.db == 0 && rd.waitReplicas == 0 && rd.waitTimeout == 0 {
		return ""
	}
	hash := func(p string) string {
		if p == "" {
			return ""
		}
		sum := sha256.Sum256([]byte(p))
		return hex.EncodeToString(sum[:8])
	}
	return strings.Join([]string{
		strings.Join(rd.cluster, ","), rd.masterName, strings.Join(rd.sentinels, ","),
		rd.sentinelUsername, hash(rd.sentinelPassword), rd.username, hash(rd.password),
		strconv.FormatBool(rd.tls), strconv.Itoa(rd.db), strconv.Itoa(rd.waitReplicas), rd.waitTimeout.String(),
	}, "\x00")
}

func durationOr(d caddy.Duration, def time.Duration) time.Duration {
	if d > 0 {
		return time.Duration(d)
	}
	return def
}

// storeID names the store: two configurations with the same id must share
// one store client (the embedded database can be opened only once).
func (s *settings) storeID() string {
	if s.storeType == StoreRedis {
		id := "redis\x00" + s.url + "\x00" + s.prefix
		if d := s.redis.id(); d != "" {
			id += "\x00" + d
		}
		return id
	}
	return "file\x00" + s.dir
}

// poolKey names the shared backend: the store and what shapes the cache
// (the verified-key cache is only valid for one secret and algorithm). It
// holds the secret's public id, never the secret.
func (s *settings) poolKey() string {
	return s.storeID() + "\x00" + authz.SigningKeyID(s.secret) + "\x00" + s.algorithm + "\x00" + s.cacheTTL.String() + "\x00" + s.staleTTL.String() +
		"\x00" + s.sessionTTL.String() + "\x00" + s.sessionIdle.String() + "\x00" + s.inviteTTL.String() +
		"\x00" + fmt.Sprint(s.failures)
}
