package module

import (
	"fmt"
	"path/filepath"

	"github.com/caddyserver/caddy/v2"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/filestore"
	"github.com/apiusers/apiusers/authz/redisstore"
)

// Store types.
const (
	StoreFile  = "file"
	StoreRedis = "redis"
)

// dbFileName is the database file the file store keeps in its directory.
const dbFileName = "apiusers.db"

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

// redisOptions is the Redis store's configuration.
func (s *settings) redisOptions() redisstore.Options {
	rd := &s.redis
	addrs := rd.cluster
	if rd.masterName != "" {
		addrs = rd.sentinels
	}
	return redisstore.Options{
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
	}
}

// checkStore reports what opening the store would reject in the
// configuration, without opening it (Provision calls it).
func (s *settings) checkStore() error {
	if s.storeType == StoreRedis {
		return s.redisOptions().Validate()
	}
	return nil
}

// openStore opens the configured store. The file store waits at most
// lockTimeout for another process to release the database.
func (s *settings) openStore() (authz.Store, error) {
	switch s.storeType {
	case StoreRedis:
		st, err := redisstore.New(s.redisOptions())
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
