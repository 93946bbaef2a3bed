// Package module is the Caddy glue of apiusers: the apiusers app, the
// gateway handler (directive apiusers), the admin handler (directive
// apiusers_admin), their Caddyfile parsing and the `caddy apiusers`
// commands. The domain lives in authz; this package only wires it to Caddy.
package module

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/filestore"
	"github.com/apiusers/apiusers/authz/redisstore"
	"github.com/apiusers/apiusers/mail"
)

func init() {
	caddy.RegisterModule(App{})
}

// Store types.
const (
	StoreFile  = "file"
	StoreRedis = "redis"
)

// Defaults.
const (
	defaultCacheTTL    = 30 * time.Second
	defaultRetryAfter  = 5 * time.Second
	defaultLockTimeout = 5 * time.Second
	defaultRedisPrefix = "apiusers"

	// Names of the files the file store keeps in its directory.
	dbFileName     = "apiusers.db"
	secretFileName = "signing.key"
)

// App is the apiusers app: the one store, signing key and principal cache
// that every apiusers and apiusers_admin handler of a configuration shares.
// It is configured by the global option block
//
//	{
//		apiusers {
//			store file [<dir>]
//			store redis <url>
//			signing_key <secret>
//			cache_ttl <duration>
//			...
//		}
//	}
//
// (see UnmarshalCaddyfile for every option). Without the block the app runs
// with its defaults: the file store in Caddy's data directory, and a signing
// key generated there.
//
// The store, the cache and the service are shared across config reloads
// while the store and the settings that shape the cache stay the same, so a
// reload keeps the cache warm and never opens the embedded database twice.
type App struct {
	// Store names where users, keys and teams live. Default: the file store
	// in "apiusers" under Caddy's data directory.
	Store *StoreConfig `json:"store,omitempty"`

	// SigningKey is the HMAC secret keys are signed with, at least 32 bytes.
	// Placeholders known at provision ({env.X}, {file./path}) are expanded.
	// Required with the Redis store, so every instance of a fleet verifies
	// the same keys; it is never written to Redis. Default with the file
	// store: a random secret made once and kept in the store's directory as
	// "signing.key" (mode 0600), whose contents can later be given here.
	SigningKey string `json:"signing_key,omitempty"`

	// SigningAlgorithm is the JWT algorithm keys are signed and verified
	// with: HS256, HS384 or HS512. Keys that name any other algorithm
	// (including "none") are rejected. Default: HS256.
	SigningAlgorithm string `json:"signing_algorithm,omitempty"`

	// CacheTTL is how long a cached principal (a user's status, role,
	// permissions, grants and live keys) may be used without news from the
	// store. Default: 30s.
	CacheTTL caddy.Duration `json:"cache_ttl,omitempty"`

	// StaleTTL lets a cached principal be used for this much longer than
	// cache_ttl, but only while the store cannot be reached; a principal
	// invalidated by a change (a revoked key, a deactivated user) is never
	// used. Default: 0 (deny with 503 once cache_ttl has passed).
	StaleTTL caddy.Duration `json:"stale_ttl,omitempty"`

	// RetryAfter is the value of the Retry-After header sent, rounded up to
	// whole seconds, when the store is unreachable and a request has to be
	// answered 503. Default: 5s.
	RetryAfter caddy.Duration `json:"retry_after,omitempty"`

	// MessagesKeep is how many API messages (calls recorded on routes with
	// `record`) are kept per user: when a user's new messages are written,
	// its oldest beyond this many are deleted. Default: 10000.
	MessagesKeep int `json:"messages_keep,omitempty"`

	// MessagesMaxAge is how long API messages are kept: when a user's new
	// messages are written, its messages older than this are deleted, and
	// a sweep deletes them for every user (those who stopped calling too)
	// every MessagesMaxAge/100, kept between one minute and one hour.
	// Default: 720h (30 days).
	MessagesMaxAge caddy.Duration `json:"messages_max_age,omitempty"`

	// MessagesQueue is how many API messages may wait to be written. When
	// the queue is full (the store is slow or away), new messages are
	// dropped, never the request, and counted in the
	// apiusers_messages_dropped_total metric. Default: 65536.
	MessagesQueue int `json:"messages_queue,omitempty"`

	// Mail is the SMTP server invitation and password-reset mails are
	// sent through (see MailConfig). Default: none; no mail is sent.
	Mail *MailConfig `json:"mail,omitempty"`

	svc           *authz.Service
	messages      *appMessages // the recorder taken by routes with record
	poolKey       string
	retryAfter    []string
	retryAfterDur time.Duration
	logger        *zap.Logger
	mailer        *mail.Mailer // nil without the mail option
	mailKey       string       // in mailers
}

// StoreConfig selects and configures the store.
type StoreConfig struct {
	// Type is "file" (embedded, persistent, one Caddy process) or "redis"
	// (shared by many Caddy instances). Default: file.
	Type string `json:"type,omitempty"`

	// Dir is the file store's directory; the database ("apiusers.db") and,
	// without signing_key, the generated secret ("signing.key") live in it.
	// Placeholders known at provision are expanded. Default: "apiusers"
	// under Caddy's data directory.
	Dir string `json:"dir,omitempty"`

	// LockTimeout is how long opening the file store waits for another
	// process (a running Caddy) to release the database. Default: 5s.
	LockTimeout caddy.Duration `json:"lock_timeout,omitempty"`

	// URL is a single Redis server, redis://[user:password@]host:port[/db]
	// or rediss://... for TLS. Placeholders known at provision are expanded.
	// The Redis store needs exactly one of url, cluster and sentinel.
	URL string `json:"url,omitempty"`

	// Cluster lists seed nodes (host:port) of a Redis Cluster: the store
	// learns the other nodes from any seed that answers, so one is enough,
	// and a cluster of one node is given the same way. Placeholders known
	// at provision are expanded, and an entry may then hold several
	// addresses separated by commas or spaces. Excludes url and sentinel.
	Cluster []string `json:"cluster,omitempty"`

	// Sentinel locates the master through Redis Sentinel; the store follows
	// it across failovers. Excludes url and cluster.
	Sentinel *SentinelConfig `json:"sentinel,omitempty"`

	// Username is the Redis ACL user of the data nodes (with url, it may be
	// given in the url instead, not in both). Placeholders known at
	// provision are expanded. Default: none (the "default" user).
	Username string `json:"username,omitempty"`

	// Password authenticates to the data nodes (with url, it may be given
	// in the url instead, not in both). Placeholders known at provision,
	// such as {env.REDIS_PASSWORD}, are expanded. Default: none.
	Password string `json:"password,omitempty"`

	// TLS makes every Redis connection (data nodes and sentinels) use TLS,
	// verified against the system's roots. A rediss:// url implies it.
	// Default: false.
	TLS bool `json:"tls,omitempty"`

	// DB is the database of a Sentinel-managed master. A single server's
	// database is the url path; Redis Cluster has only database 0.
	// Default: 0.
	DB int `json:"db,omitempty"`

	// WaitReplicas makes every admin write wait until this many replicas
	// have it (Redis WAIT), for at most wait_timeout, and answer 503 when
	// fewer do (the write is then on the master and may or may not
	// survive a failover). Redis replicates asynchronously: without this
	// a failover loses the writes the old master acknowledged but had not
	// passed on, which is every write it took between the promotion of a
	// replica and the clients' switch to it. It costs a round trip per
	// write and fails writes while fewer replicas are connected. Recorded
	// API messages do not wait. Default: 0 (do not wait).
	WaitReplicas int `json:"wait_replicas,omitempty"`

	// WaitTimeout bounds the wait of wait_replicas. Default: 1s.
	WaitTimeout caddy.Duration `json:"wait_timeout,omitempty"`

	// Prefix starts every Redis key the store writes, so several
	// deployments can share one Redis. It must not contain '{' or '}'.
	// Default: "apiusers".
	Prefix string `json:"prefix,omitempty"`

	// DialTimeout bounds connecting to Redis. Default: 2s.
	DialTimeout caddy.Duration `json:"dial_timeout,omitempty"`

	// ReadTimeout bounds reading one Redis reply. Default: 1s.
	ReadTimeout caddy.Duration `json:"read_timeout,omitempty"`

	// WriteTimeout bounds writing one Redis command. Default: 1s.
	WriteTimeout caddy.Duration `json:"write_timeout,omitempty"`
}

// SentinelConfig locates a Redis master through Redis Sentinel.
type SentinelConfig struct {
	// MasterName is the name the sentinels monitor the master under.
	// Placeholders known at provision are expanded. Required.
	MasterName string `json:"master_name,omitempty"`

	// Addrs are the sentinels (host:port); asking any one that answers is
	// enough. Placeholders are expanded as in cluster. Required.
	Addrs []string `json:"addrs,omitempty"`

	// Username and Password authenticate to the sentinels, when they
	// require it (they are not the data nodes' credentials). Placeholders
	// known at provision are expanded. Default: none.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "apiusers",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision resolves the configuration and takes (or makes) the shared
// store, cache and service, and the mailer. It does not dial: the Redis
// store connects on first use, the file store is a local file, and the
// mailer connects for each mail.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	if err := a.provisionMail(ctx); err != nil {
		return err
	}
	s, err := a.resolve(caddy.NewReplacer())
	if err != nil {
		return err
	}
	key := s.poolKey()
	v, _, err := backends.LoadOrNew(key, func() (caddy.Destructor, error) {
		return s.openBackend(a.logger)
	})
	if err != nil {
		return err
	}
	a.poolKey = key
	a.svc = v.(*backend).svc
	if a.messages, err = a.messageSettings(s.storeID()); err != nil {
		return err
	}
	a.retryAfter = s.retryAfter
	a.retryAfterDur = s.retryAfterDur
	return nil
}

// Validate checks what Provision cannot have caught already.
func (a *App) Validate() error {
	if a.svc == nil {
		return errors.New("apiusers app is not provisioned")
	}
	return nil
}

// Start starts the app.
func (a *App) Start() error { return nil }

// Stop stops the app.
func (a *App) Stop() error { return nil }

// Cleanup releases this instance's hold on the shared store, cache and
// mailer; the last holder closes them (the mailer after delivering its
// queue, for at most 10s).
func (a *App) Cleanup() error {
	if a.messages != nil {
		a.messages.release()
	}
	mailErr := a.releaseMail()
	if a.poolKey == "" {
		return mailErr
	}
	key := a.poolKey
	a.poolKey = ""
	_, err := backends.Delete(key)
	return errors.Join(err, mailErr)
}

// Service is the domain service the handlers use.
func (a *App) Service() *authz.Service { return a.svc }

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

	secret        []byte
	algorithm     string
	cacheTTL      time.Duration
	staleTTL      time.Duration
	retryAfterDur time.Duration
	retryAfter    []string // precomputed Retry-After header value
}

// DefaultDir is the file store's default directory.
func DefaultDir() string { return filepath.Join(caddy.AppDataDir(), "apiusers") }

// resolve applies defaults, expands placeholders, checks the configuration
// and, for the file store without a signing key, loads or makes the secret
// kept beside the data. repl expands placeholders.
func (a *App) resolve(repl *caddy.Replacer) (*settings, error) {
	sc := a.Store
	if sc == nil {
		sc = new(StoreConfig)
	}
	s := &settings{
		storeType:    sc.Type,
		lockTimeout:  durationOr(sc.LockTimeout, defaultLockTimeout),
		prefix:       sc.Prefix,
		dialTimeout:  time.Duration(sc.DialTimeout),
		readTimeout:  time.Duration(sc.ReadTimeout),
		writeTimeout: time.Duration(sc.WriteTimeout),
		algorithm:    a.SigningAlgorithm,
		cacheTTL:     durationOr(a.CacheTTL, defaultCacheTTL),
		staleTTL:     time.Duration(a.StaleTTL),
	}
	if s.storeType == "" {
		s.storeType = StoreFile
	}
	if s.algorithm == "" {
		s.algorithm = "HS256"
	}
	switch s.algorithm {
	case "HS256", "HS384", "HS512":
	default:
		return nil, fmt.Errorf("signing_algorithm %q: want HS256, HS384 or HS512", s.algorithm)
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
	s.retryAfter = []string{strconv.FormatInt(int64((ra+time.Second-1)/time.Second), 10)}

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
		if s.secret == nil {
			secret, err := loadOrMakeSecret(filepath.Join(abs, secretFileName))
			if err != nil {
				return nil, err
			}
			s.secret = secret
		}
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
		case !strings.HasPrefix(s.url, "redis://") && !strings.HasPrefix(s.url, "rediss://"):
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
	return s.storeID() + "\x00" + authz.SigningKeyID(s.secret) + "\x00" + s.algorithm + "\x00" + s.cacheTTL.String() + "\x00" + s.staleTTL.String()
}

// openStore opens the configured store. The file store waits at most
// lockTimeout for another process to release the database.
func (s *settings) openStore() (authz.Store, error) {
	switch s.storeType {
	case StoreRedis:
		rd := &s.redis
		addrs := rd.cluster
		if rd.masterName != "" {
			addrs = rd.sentinels
		}
		st, err := redisstore.New(redisstore.Options{
			URL:              s.url,
			Cluster:          rd.cluster != nil,
			MasterName:       rd.masterName,
			Addrs:            addrs,
			Username:         rd.username,
			Password:         rd.password,
			SentinelUsername: rd.sentinelUsername,
			SentinelPassword: rd.sentinelPassword,
			TLS:              rd.tls,
			DB:               rd.db,
			Prefix:           s.prefix,
			DialTimeout:      s.dialTimeout,
			ReadTimeout:      s.readTimeout,
			WriteTimeout:     s.writeTimeout,
			WaitReplicas:     rd.waitReplicas,
			WaitTimeout:      rd.waitTimeout,
		})
		if err != nil {
			return nil, fmt.Errorf("opening redis store: %w", err)
		}
		return st, nil
	default:
		path := filepath.Join(s.dir, dbFileName)
		st, err := filestore.Open(path, filestore.Options{LockTimeout: s.lockTimeout})
		if err != nil {
			return nil, fmt.Errorf("opening file store %s: %w", path, err)
		}
		return st, nil
	}
}

// newService makes the service over store, with its own cache; notify, when
// not nil, is told every committed change. The caller closes the cache and
// the store.
func (s *settings) newService(store authz.Store, notify func(authz.Change)) (*authz.Service, *authz.Cache, error) {
	signer, err := authz.NewSigner(authz.SignerConfig{Secret: s.secret, Algorithm: s.algorithm})
	if err != nil {
		return nil, nil, err
	}
	cache, err := authz.NewCache(authz.CacheConfig{TTL: s.cacheTTL, StaleTTL: s.staleTTL})
	if err != nil {
		return nil, nil, err
	}
	svc, err := authz.NewService(authz.Config{Store: store, Signer: signer, Cache: cache, Notify: notify})
	if err != nil {
		cache.Close()
		return nil, nil, err
	}
	return svc, cache, nil
}

// backend is one shared cache and service over a shared store.
type backend struct {
	storeID string
	cache   *authz.Cache
	svc     *authz.Service
	fleet   *fleet // nil unless the store carries invalidations (Redis)
}

// openBackend takes the shared store (opening it if no other backend holds
// it) and makes the service over it. Over a store shared by a fleet it
// also starts the fleet-wide invalidation (see fleet).
func (s *settings) openBackend(logger *zap.Logger) (*backend, error) {
	id := s.storeID()
	v, _, err := stores.LoadOrNew(id, func() (caddy.Destructor, error) {
		st, err := s.openStore()
		if err != nil {
			return nil, err
		}
		return sharedStore{st}, nil
	})
	if err != nil {
		return nil, err
	}
	st := v.(sharedStore).Store
	var fl *fleet
	notify := func(authz.Change) {}
	if feed, ok := st.(invalidationFeed); ok {
		fl = newFleet(feed, logger)
		notify = fl.notify
	}
	svc, cache, err := s.newService(st, notify)
	if err != nil {
		_, _ = stores.Delete(id)
		return nil, err
	}
	if fl != nil {
		fl.start(svc.Apply, cache.InvalidateAll)
	}
	return &backend{storeID: id, cache: cache, svc: svc, fleet: fl}, nil
}

// Destruct closes the cache and lets go of the store; the usage pool calls
// it when the last app instance using the backend is cleaned up.
func (b *backend) Destruct() error {
	b.svc.Close()
	if b.fleet != nil {
		b.fleet.stop()
	}
	// Nothing uses the cache any more; closing it zeroes ristretto's
	// counters (tens of milliseconds, seconds under the race detector),
	// which a config reload need not wait for.
	go b.cache.Close()
	_, err := stores.Delete(b.storeID)
	return err
}

// sharedStore is a store in the stores pool.
type sharedStore struct{ authz.Store }

// Destruct closes the store once no backend uses it.
func (s sharedStore) Destruct() error { return s.Close() }

// Two pools outlive config reloads, which overlap the old and the new app
// instance. backends holds cache and service by poolKey, so a reload that
// changes nothing keeps the cache warm. stores holds the store by storeID,
// so a reload that changes only the cache settings or the signing key makes
// a new backend over the same store: the embedded database can be opened
// by one holder only.
var (
	backends = caddy.NewUsagePool()
	stores   = caddy.NewUsagePool()
)

// loadOrMakeSecret reads the signing secret kept at path, or makes a random
// one there (32 random bytes, hex-encoded; the 64 characters are the
// secret, so they can be given as signing_key verbatim). The file is made
// with mode 0600 and never replaced.
func loadOrMakeSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		secret := []byte(strings.TrimSpace(string(b)))
		if len(secret) < authz.MinSecretLen {
			return nil, fmt.Errorf("signing key file %s holds fewer than %d bytes", path, authz.MinSecretLen)
		}
		return secret, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading signing key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("making store directory: %w", err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, fmt.Errorf("making signing key: %w", err)
	}
	secret := []byte(hex.EncodeToString(raw[:]))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		// Another process made it first: use theirs.
		return loadOrMakeSecret(path)
	}
	if err != nil {
		return nil, fmt.Errorf("writing signing key: %w", err)
	}
	_, err = f.Write(append(secret, '\n'))
	if err2 := f.Close(); err == nil {
		err = err2
	}
	if err != nil {
		_ = os.Remove(path)
		return nil, fmt.Errorf("writing signing key: %w", err)
	}
	return secret, nil
}

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.Validator    = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
	_ caddy.Destructor   = (*backend)(nil)
	_ caddy.Destructor   = sharedStore{}
)
