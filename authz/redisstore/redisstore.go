// Package redisstore is the Redis store: the one truth a fleet of Caddy
// instances shares.
//
// Key layout. Every key of one workspace carries the same hash tag, so a
// workspace lives in one Redis Cluster slot and a transaction or script may
// touch any of its keys:
//
//	<prefix>:{<ws>}:r:<collection>   ZSET  score 0, one member per record:
//	                                 the id, a tag, the value (see below)
//	<prefix>:{<ws>}:h:names          HASH  id -> value
//	<prefix>:{<ws>}:p:keys           HASH  user id -> that user's whole
//	                                 collection keys:<user id>, packed
//	<prefix>:{<ws>}:m:...            API messages (see messages.go)
//
// The global workspace "" uses the tag {_}, which no workspace id can match
// (ids match ^[a-z0-9][a-z0-9-]{0,62}$).
//
// The layout keeps what a record costs in memory low: there is no Redis
// key per user, and no record is in two structures. Most collections are
// one sorted set whose members hold id and value together, in id order
// (layout.go tells how): ZRANGEBYLEX ... LIMIT serves Scan in O(log n +
// limit) and Get in O(log n); a write replaces the member of its id
// (ZREMRANGEBYLEX, ZADD). A member leaves out what repeats where it is
// stored: the {"id":"<id>","workspace":"<ws>" the domain's records start
// with (the record contract of authz.Tx). The one collection the domain only reads by id, names, is a
// plain hash (Get in O(1); Scan reads the whole hash). A user's keys
// (at most authz.MaxKeysPerUser live ones) are one field of a hash all
// users of the workspace share, read and written whole: LoadPrincipal gets
// them with one HGET, and an Update writing them reads the field (under
// WATCH) and writes it back in its MULTI/EXEC. Nothing an EXEC runs can
// fail at run time, so a transaction applies whole or not at all.
//
// LoadPrincipal is one script run (one round trip); the loads of
// concurrent cache misses share pipelines (loads.go), since on a busy
// gateway a round trip costs the server and the client more than the
// script itself.
//
// A credential's last use is an entry of its own in the same blob
// (use_<credential id>, see authz.UseValue). Touch records a batch of uses
// with one pipeline of script runs (touch.go), each reading and rewriting
// the blobs of its users on the server: no WATCH, no decoding of records.
// Keys written before use records existed keep their last use in the key
// record ("l"); readers take the later of the two, so that data needs no
// migration.
//
// A workspace of 100,000 API users with one key each (user, name, key, and
// the two audit entries of their creation) takes about 920 bytes of Redis
// memory per user (bench/run.sh measures it).
//
// The channel <prefix>:invalidate carries cache invalidations between
// instances (Publish, Subscribe).
//
// Update is optimistic: WATCH the key of every collection fn reads, buffer
// fn's writes in the Tx, and apply them with MULTI/EXEC; when a watched key
// changed, run fn again. Since the keys of all users of a workspace share
// one key, any change to keys conflicts with an Update that read keys of
// any user of the same workspace (as every change to users does with one
// that read a user).
//
// Deployments. The store talks to a single server, a Redis Cluster or a
// master that Redis Sentinel watches, through one redis.UniversalClient
// (see Options). The hash tags make the cluster work; Sentinel failovers
// are followed by the client. Redis replicates asynchronously, so a write
// acknowledged by a master that fails before its replicas have it is lost:
// Options.WaitReplicas closes that window for Update.
package redisstore

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/apiusers/apiusers/authz"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// DefaultPrefix starts every key the store writes, unless Options.Prefix says
// otherwise.
const DefaultPrefix = "apiusers"

// Retry policy of Update when a watched key changed under it: up to
// maxAttempts runs of fn with jittered exponential backoff between them.
// From the second attempt on, Update also holds its workspace's local
// retry lock (waiting at most retryLockWait for it), so the transactions of
// one process that keep colliding take turns instead of starving each
// other; they still race transactions of other processes optimistically.
const (
	maxAttempts   = 10
	backoffBase   = time.Millisecond
	backoffCap    = 50 * time.Millisecond
	retryLocks    = 64
	retryLockWait = 2 * time.Second
)

// Options configures New. It names one of three deployments:
//
//   - a single server: URL (redis:// or rediss://);
//   - Redis Cluster: Cluster set and Addrs the seed nodes; one reachable
//     seed is enough, the client discovers the others (a cluster of one
//     node is given the same way);
//   - Redis Sentinel: MasterName set and Addrs the sentinels; the client
//     asks them for the master and follows it across failovers.
//
// The deployment is never guessed from the number of addresses. New
// rejects options that mix deployments or give a setting twice.
type Options struct {
	// URL locates a single server: redis://[user:password@]host[:port][/db]
	// or rediss://... for TLS. Query parameters understood by go-redis
	// (dial_timeout, pool_size, ...) apply unless a field below is set.
	// Must be empty with Cluster or MasterName.
	URL string
	// Cluster selects Redis Cluster: Addrs are seed nodes.
	Cluster bool
	// MasterName selects Redis Sentinel: the name the sentinels (Addrs)
	// monitor the master under.
	MasterName string
	// Addrs are host:port addresses: cluster seed nodes with Cluster, the
	// sentinels with MasterName. Used with one of them only.
	Addrs []string
	// Username and Password authenticate to the data nodes (Redis ACL user;
	// an empty Username with a Password is the "default" user). With URL
	// they may be given here instead of in the URL, not in both.
	Username string
	Password string
	// SentinelUsername and SentinelPassword authenticate to the sentinels
	// when they require it (Sentinel's own requirepass or ACL). Default:
	// none.
	SentinelUsername string
	SentinelPassword string
	// TLS makes every connection (data nodes and sentinels) use TLS,
	// verified against the system roots with the server name taken from the
	// address. A rediss:// URL implies it. Default: false.
	TLS bool
	// TLSConfig, when set, is the TLS configuration of every connection
	// (custom roots, client certificates) and implies TLS.
	TLSConfig *tls.Config
	// DB is the database of a Sentinel-managed master. A single server's
	// database is given in the URL path; Redis Cluster has only database 0.
	// Default: 0.
	DB int
	// Prefix starts every key. It must not contain '{' or '}'.
	// Default: "apiusers".
	Prefix string
	// DialTimeout bounds establishing a connection. Default: 2s.
	DialTimeout time.Duration
	// ReadTimeout bounds reading one reply. Default: 1s.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing one command. Default: 1s.
	WriteTimeout time.Duration
	// PoolSize is the maximum number of connections (per node with
	// Cluster). Default: go-redis's (10 per GOMAXPROCS).
	PoolSize int
	// WaitReplicas makes Update, after its EXEC, wait (Redis WAIT on the
	// same connection) until this many replicas acknowledge the write, for
	// at most WaitTimeout. When fewer do, Update fails with an error
	// wrapping authz.ErrUnavailable (a 503) although the write is applied
	// on the master: it may or may not survive a failover.
	//
	// Redis replicates asynchronously. Without this, a failover loses the
	// writes the old master acknowledged but had not passed on: those of
	// the last moments before the promotion, and every write it takes
	// between the promotion and the clients hearing of it (in this
	// package's failover test, about a second of writes). With it, every
	// write Update reports as done is on WaitReplicas replicas, one of which
	// a failover promotes. The price: one more round trip per write (the
	// replication delay, well under a millisecond on a LAN), and writes
	// failing while fewer replicas are connected (after a failover until
	// the old master rejoins as a replica, or always when there are fewer
	// replicas than this). API messages (AppendMessages, EraseMessages) do
	// not wait. Default: 0 (do not wait).
	WaitReplicas int
	// WaitTimeout bounds the wait of WaitReplicas. Default: 1s.
	WaitTimeout time.Duration
}

// Store is a Redis-backed authz.Store. It is safe for concurrent use.
type Store struct {
	client       redis.UniversalClient
	prefix       string
	ownClient    bool
	waitReplicas int           // see Options.WaitReplicas
	waitTimeout  time.Duration // see Options.WaitTimeout
	closed       atomic.Bool
	now          func() time.Time // the clock of message retention
	// retryLock[i] is a one-slot semaphore shared by the workspaces whose
	// id hashes to i; see maxAttempts.
	retryLock [retryLocks]chan struct{}
	loads     loads // LoadPrincipal's senders (loads.go)
}

// New builds a store from opts. It does not dial: the first command
// connects, so New never hangs on an unreachable server (or cluster, or
// sentinel).
func New(opts Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	prefix, err := checkPrefix(opts.Prefix)
	if err != nil {
		return nil, err
	}
	var c redis.UniversalClient
	if opts.URL != "" {
		ro, err := opts.single()
		if err != nil {
			return nil, err
		}
		c = redis.NewClient(ro)
	} else {
		c = redis.NewUniversalClient(opts.universal())
	}
	s := NewFromClient(c, prefix)
	s.ownClient = true
	s.waitReplicas = opts.WaitReplicas
	s.waitTimeout = cmp.Or(opts.WaitTimeout, time.Second)
	return s, nil
}

// IsURL reports whether u names a single server as Options.URL does: it
// starts with redis:// or rediss:// (TLS).
func IsURL(u string) bool {
	return strings.HasPrefix(u, "redis://") || strings.HasPrefix(u, "rediss://")
}

// Validate reports what New would reject in opts, without making a
// client, so that a configuration can be checked before it runs.
func (o Options) Validate() error {
	if err := o.check(); err != nil {
		return err
	}
	if _, err := checkPrefix(o.Prefix); err != nil {
		return err
	}
	if o.URL != "" {
		if _, err := o.single(); err != nil {
			return err
		}
	}
	return nil
}

// check rejects options that name no deployment, mix two, or give a
// setting twice.
func (o *Options) check() error {
	sentinel := o.MasterName != ""
	switch {
	case o.Cluster && sentinel:
		return errors.New("redis store: cluster and sentinel (master name) exclude each other")
	case (o.Cluster || sentinel) && o.URL != "":
		return errors.New("redis store: a url names a single server; with cluster or sentinel give the addresses (and username, password, tls) instead")
	case o.Cluster && len(o.Addrs) == 0:
		return errors.New("redis store: cluster needs at least one seed address")
	case sentinel && len(o.Addrs) == 0:
		return errors.New("redis store: sentinel needs at least one sentinel address")
	case !o.Cluster && !sentinel && len(o.Addrs) > 0:
		return errors.New("redis store: addresses need cluster or a sentinel master name; a single server is given by its url")
	case !o.Cluster && !sentinel && o.URL == "":
		return errors.New("redis store: empty url (or give cluster or sentinel addresses)")
	case !sentinel && (o.SentinelUsername != "" || o.SentinelPassword != ""):
		return errors.New("redis store: sentinel username and password need a sentinel master name")
	case o.DB < 0:
		return fmt.Errorf("redis store: db %d is negative", o.DB)
	case o.Cluster && o.DB != 0:
		return errors.New("redis store: redis cluster has only database 0")
	case o.URL != "" && o.DB != 0:
		return errors.New("redis store: a single server's database is given in the url path (redis://host:port/<db>), not as db")
	case o.WaitReplicas < 0:
		return fmt.Errorf("redis store: wait replicas %d is negative", o.WaitReplicas)
	case o.WaitTimeout < 0:
		return errors.New("redis store: wait timeout is negative")
	}
	for _, a := range o.Addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" || port == "" {
			return fmt.Errorf("redis store: address %q: want host:port", a)
		}
	}
	return nil
}

// single returns the client options of a single server: the URL's, with
// the fields of o applied.
func (o *Options) single() (*redis.Options, error) {
	u, err := url.Parse(o.URL)
	if err != nil {
		// url.Parse errors quote the input, which may hold a password.
		return nil, errors.New("redis store: malformed url")
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, fmt.Errorf("redis store: url %s: scheme must be redis or rediss", u.Redacted())
	}
	ro, err := redis.ParseURL(o.URL)
	if err != nil {
		return nil, fmt.Errorf("redis store: parsing url %s: %w", u.Redacted(), err)
	}
	if o.Username != "" || o.Password != "" {
		if u.User != nil {
			return nil, fmt.Errorf("redis store: url %s: credentials given both in the url and as username/password", u.Redacted())
		}
		ro.Username, ro.Password = o.Username, o.Password
	}
	if o.TLSConfig != nil || ro.TLSConfig == nil {
		// A rediss:// URL's own TLS settings (skip_verify) stay unless
		// TLSConfig replaces them.
		if tc := o.tlsConfig(); tc != nil {
			ro.TLSConfig = tc
		}
	}
	ro.DialTimeout = pick(o.DialTimeout, ro.DialTimeout, 2*time.Second)
	ro.ReadTimeout = pick(o.ReadTimeout, ro.ReadTimeout, time.Second)
	ro.WriteTimeout = pick(o.WriteTimeout, ro.WriteTimeout, time.Second)
	if o.PoolSize > 0 {
		ro.PoolSize = o.PoolSize
	}
	if ro.DialerRetries == 0 {
		// One dial attempt per command attempt: when the server is down the
		// caller must learn it fast (and answer 503), not after 5 dials.
		ro.DialerRetries = 1
	}
	// Plain Redis does not send maintenance notifications; skip the
	// handshake that asks for them.
	ro.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return ro, nil
}

// universal returns the client options of a cluster or sentinel
// deployment (check has passed).
func (o *Options) universal() *redis.UniversalOptions {
	return &redis.UniversalOptions{
		Addrs: slices.Clone(o.Addrs),
		// Explicit, so that a cluster of one seed is not taken for a
		// single server.
		IsClusterMode:    o.Cluster,
		MasterName:       o.MasterName,
		Username:         o.Username,
		Password:         o.Password,
		SentinelUsername: o.SentinelUsername,
		SentinelPassword: o.SentinelPassword,
		DB:               o.DB,
		TLSConfig:        o.tlsConfig(),
		DialTimeout:      cmp.Or(o.DialTimeout, 2*time.Second),
		ReadTimeout:      cmp.Or(o.ReadTimeout, time.Second),
		WriteTimeout:     cmp.Or(o.WriteTimeout, time.Second),
		PoolSize:         o.PoolSize,
		DialerRetries:    1, // see single
		// Cluster clients only; failover clients disable it themselves.
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
}

// tlsConfig returns the TLS configuration o asks for, nil for none (or
// for what a rediss:// URL implies).
func (o *Options) tlsConfig() *tls.Config {
	switch {
	case o.TLSConfig != nil:
		return o.TLSConfig.Clone()
	case o.TLS:
		// The server name comes from each address as it is dialed.
		return &tls.Config{MinVersion: tls.VersionTLS12}
	default:
		return nil
	}
}

// NewFromClient builds a store over an existing client, for settings
// Options does not offer. An empty prefix means DefaultPrefix; Update does
// not wait for replicas (Options.WaitReplicas). Close does not close c.
// NewFromClient panics on a prefix New would reject.
func NewFromClient(c redis.UniversalClient, prefix string) *Store {
	p, err := checkPrefix(prefix)
	if err != nil {
		panic(err)
	}
	s := &Store{client: c, prefix: p, now: time.Now}
	for i := range s.retryLock {
		s.retryLock[i] = make(chan struct{}, 1)
	}
	return s
}

// Client returns the underlying client (for pub/sub).
func (s *Store) Client() redis.UniversalClient { return s.client }

// Close closes the client when New made it. Calls after the first do
// nothing. Operations after Close fail with an error wrapping
// authz.ErrUnavailable.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.stopLoads()
	if !s.ownClient {
		return nil
	}
	if err := s.client.Close(); err != nil {
		return fmt.Errorf("closing redis client: %w", err)
	}
	return nil
}

// View runs fn over plain reads of workspace ws. Each read is its own
// command: fn sees committed data, not one snapshot.
func (s *Store) View(ctx context.Context, ws string, fn func(authz.Tx) error) error {
	if err := s.begin(ctx, ws); err != nil {
		return err
	}
	return fn(&tx{s: s, ctx: ctx, ws: ws, r: s.client})
}

// Update runs fn in an optimistic transaction over workspace ws (see the
// package comment). fn may run up to 10 times; when every attempt lost a
// race the error wraps authz.ErrConflict. If fn fails, nothing is written
// and fn's error is returned unchanged.
func (s *Store) Update(ctx context.Context, ws string, fn func(authz.Tx) error) error {
	if err := s.begin(ctx, ws); err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		if attempt == 2 {
			if release, err := s.lockRetries(ctx, ws); err != nil {
				return s.mapErr(fmt.Sprintf("updating workspace %q", ws), err)
			} else if release != nil {
				defer release()
			}
		}
		var fnErr error
		err := s.client.Watch(ctx, func(rtx *redis.Tx) error {
			t := &tx{s: s, ctx: ctx, ws: ws, r: rtx, rtx: rtx}
			if fnErr = fn(t); fnErr != nil {
				return fnErr
			}
			if err := t.commit(); err != nil || len(t.ops) == 0 {
				return err
			}
			return s.awaitReplicas(ctx, rtx)
		}, s.anchor(ws)...)
		switch {
		case fnErr != nil:
			return fnErr
		case err == nil:
			return nil
		case !errors.Is(err, redis.TxFailedErr):
			return s.mapErr(fmt.Sprintf("updating workspace %q", ws), err)
		case attempt == maxAttempts:
			return fmt.Errorf("updating workspace %q: gave up after %d concurrent modifications: %w", ws, attempt, authz.ErrConflict)
		}
		// Jittered exponential backoff spreads contenders apart.
		d := min(backoffCap, backoffBase<<(attempt-1))
		select {
		case <-time.After(rand.N(d) + d/4):
		case <-ctx.Done():
			return s.mapErr(fmt.Sprintf("updating workspace %q", ws), ctx.Err())
		}
	}
}

// awaitReplicas waits, when Options.WaitReplicas asks for it, until that
// many replicas acknowledge what c (the connection that ran EXEC) wrote.
// WAIT counts the replicas that have every write of c's connection so far,
// so it covers the EXEC just before it.
func (s *Store) awaitReplicas(ctx context.Context, c *redis.Tx) error {
	if s.waitReplicas == 0 {
		return nil
	}
	n, err := c.Wait(ctx, s.waitReplicas, s.waitTimeout).Result()
	switch {
	case err == nil:
	case errors.Is(err, context.Canceled):
		return err
	default:
		// Whatever failed (the connection, or the master turned replica
		// after EXEC and refuses WAIT), the write is applied but not
		// known to be replicated: unavailable, like a short count.
		return authz.Unavailable(fmt.Errorf("waiting for %d replicas: %w", s.waitReplicas, err))
	}
	if n < int64(s.waitReplicas) {
		return authz.Unavailable(fmt.Errorf("write reached %d of %d replicas within %s: a failover could lose it", n, s.waitReplicas, s.waitTimeout))
	}
	return nil
}

// anchor returns the keys Update must WATCH up front: none on a single
// node (collections are watched as fn reads them), but a cluster client
// needs one key to pick the workspace's node, so it gets a key of the
// workspace's slot that is never written (watching it costs nothing and
// never conflicts).
func (s *Store) anchor(ws string) []string {
	if _, ok := s.client.(*redis.ClusterClient); ok {
		return []string{s.key(ws, 'a', "")}
	}
	return nil
}

// lockRetries takes the retry lock of workspace ws and returns its release.
// After retryLockWait without it (a holder stuck, or fn calling Update on
// the same workspace) it returns a nil release and the caller goes on
// unlocked: the lock is an optimization, never a source of deadlock.
func (s *Store) lockRetries(ctx context.Context, ws string) (release func(), err error) {
	h := uint32(2166136261) // FNV-1a
	for i := 0; i < len(ws); i++ {
		h = (h ^ uint32(ws[i])) * 16777619
	}
	sem := s.retryLock[h%retryLocks]
	timer := time.NewTimer(retryLockWait)
	defer timer.Stop()
	select {
	case sem <- struct{}{}:
		return func() { <-sem }, nil
	case <-timer.C:
		return nil, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// loadPrincipal reads, in one script run, the user ARGV[1] of workspace
// ARGV[4] (its member in the users zset KEYS[1] lies in the ZRANGEBYLEX
// range ARGV[2], ARGV[3]), the blob of its keys (field ARGV[1] of the packed
// hash KEYS[2]) and the teams it lists that exist (members of the teams
// zset KEYS[3]). It returns nil when the user is missing, else {user
// member, keys blob or nil, {team JSON...}}. See layout.go for the member
// and blob encodings. The user comes back as its member, which
// LoadPrincipal makes the record of (the server builds no copy of it);
// value() puts back the heads elided() leaves out of a team's, as in
// authz.IDHead and authz.WorkspaceHead, and the user's "teams" is the
// record contract's too. A user whose text holds no "teams" lists none; one
// that does is decoded (cjson) only when its teams are not listed the way
// json.Marshal writes them (teamIDs). A user that is not a JSON object
// fails here (or, if it lists teams, in the script), or in
// authz.BuildPrincipal when it only looks like one.
var loadPrincipal = redis.NewScript(`
local function esc(id)
  return (string.gsub(id, '[%z\1\2\3]', function(c) return '\3' .. c end))
end
local function value(member, id, elen)
  local tag, rest = string.byte(member, elen + 1), string.sub(member, elen + 2)
  if tag == 1 then return '{"id":"' .. id .. '"' .. rest end
  if tag == 2 then return '{"id":"' .. id .. '","workspace":"' .. ARGV[4] .. '"' .. rest end
  return rest
end
-- teamIDs returns the ids the user lists in its "teams", nil when it is
-- not a JSON object. The records json.Marshal writes are read without
-- decoding them: a key "teams" appears in the text only as the top-level
-- member (the user's other members hold no object with such a key, and
-- inside a string every quote is escaped), so when the text holds the
-- quoted word once, followed by an array of plain strings, that is the
-- list; no "teams" at all is no list. Anything else is decoded.
local function teamIDs(user)
  if string.byte(user, 1) ~= 123 or string.byte(user, -1) ~= 125 then return nil end
  local i = string.find(user, '"teams"', 1, true)
  if not i then return {} end
  if string.sub(user, i + 7, i + 8) == ':[' and not string.find(user, '"teams"', i + 7, true) then
    local ids, j = {}, i + 9
    if string.byte(user, j) == 93 then return ids end
    while true do
      local id, k = string.match(user, '^"([^"\\]*)"()', j)
      if not id then break end
      ids[#ids + 1] = id
      local c = string.byte(user, k)
      if c == 93 then return ids end
      if c ~= 44 then break end
      j = k + 1
    end
  end
  local ok, doc = pcall(cjson.decode, user)
  if not ok or type(doc) ~= 'table' then return nil end
  local ids = {}
  if type(doc.teams) == 'table' then
    for _, id in ipairs(doc.teams) do
      if type(id) == 'string' then ids[#ids + 1] = id end
    end
  end
  return ids
end
local m = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[2], ARGV[3], 'LIMIT', 0, 1)
if #m == 0 then return false end
local ids = {}
if string.find(m[1], '"teams"', #ARGV[2] + 1, true) then
  ids = teamIDs(value(m[1], ARGV[1], #ARGV[2] - 1))
  if not ids then
    return redis.error_reply('ERR decoding user ' .. ARGV[1] .. ': not a JSON object')
  end
end
local keys = redis.call('HGET', KEYS[2], ARGV[1])
local teams = {}
for _, id in ipairs(ids) do
  local e = esc(id)
  local t = redis.call('ZRANGEBYLEX', KEYS[3], '[' .. e, '(' .. e .. '\3', 'LIMIT', 0, 1)
  if #t > 0 then teams[#teams + 1] = value(t[1], id, #e) end
end
return {m[1], keys, teams}
`)

// LoadPrincipal reads the user, its keys (in key id order) and its teams
// (in the order the user lists them, missing ones skipped) with a single
// EVALSHA, which concurrent loads send in one pipeline (loads.go). Only
// when the server does not know the script yet (first call after a
// restart or SCRIPT FLUSH) does it cost a second round trip: EVAL, which
// also caches the script.
func (s *Store) LoadPrincipal(ctx context.Context, ws, userID string) (*authz.PrincipalRecord, error) {
	if err := s.begin(ctx, ws); err != nil {
		return nil, err
	}
	keysAt := s.place(ws, authz.KeysCollection(ws, userID).Name)
	keys := []string{
		s.place(ws, authz.CollUsers).key,
		keysAt.key,
		s.place(ws, authz.CollTeams).key,
	}
	lo, hi := idRange(userID)
	res, err := s.load(ctx, keys, userID, lo, hi, ws)
	if err != nil {
		return nil, s.mapErr(fmt.Sprintf("loading principal %s in workspace %q", userID, ws), err)
	}
	if len(res) != 3 {
		return nil, fmt.Errorf("loading principal %s in workspace %q: script returned %d values, want 3", userID, ws, len(res))
	}
	// The user's member: its escaped id (lo without its "["), its tag,
	// the rest of its record.
	member, ok := res[0].(string)
	at := len(lo) - 1
	if !ok || len(member) <= at || member[at] >= escByte {
		return nil, fmt.Errorf("loading principal %s in workspace %q: unexpected user reply (%T of %d bytes)", userID, ws, res[0], len(member))
	}
	head := elided(member[at], ws, userID)
	user := make([]byte, 0, len(head)+len(member)-at-1)
	user = append(append(user, head...), member[at+1:]...)
	if len(user) < 2 || user[0] != '{' || user[len(user)-1] != '}' {
		// What the script checks of a user that lists teams (teamIDs).
		return nil, fmt.Errorf("loading principal %s in workspace %q: decoding user: not a JSON object", userID, ws)
	}
	rec := &authz.PrincipalRecord{User: user}
	switch blob := res[1].(type) {
	case nil: // no keys (false comes back as nil)
	case string:
		es, err := decodeBlob(ws, []byte(blob))
		if err != nil {
			return nil, fmt.Errorf("loading principal %s in workspace %q: keys: %w", userID, ws, err)
		}
		for _, e := range es {
			rec.Keys = append(rec.Keys, e.Value)
		}
	default:
		return nil, fmt.Errorf("loading principal %s in workspace %q: unexpected keys reply %T", userID, ws, res[1])
	}
	if rec.Teams, err = byteSlices(res[2]); err != nil {
		return nil, fmt.Errorf("loading principal %s in workspace %q: teams: %w", userID, ws, err)
	}
	return rec, nil
}

func byteSlices(v any) ([][]byte, error) {
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("unexpected reply %T", v)
	}
	if len(arr) == 0 {
		return nil, nil
	}
	out := make([][]byte, len(arr))
	for i, e := range arr {
		s, ok := e.(string)
		if !ok {
			return nil, fmt.Errorf("unexpected element %T", e)
		}
		out[i] = []byte(s)
	}
	return out, nil
}

// begin checks what every operation checks before touching Redis.
func (s *Store) begin(ctx context.Context, ws string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return authz.Unavailable(errors.New("redis store is closed"))
	}
	if ws != "" && !authz.ValidWorkspaceID(ws) {
		return fmt.Errorf("workspace id %q: %w", ws, authz.ErrInvalid)
	}
	return nil
}

// key returns the key of collection coll of workspace ws; kind is 'r'
// (records zset), 'h' (hash), 'p' (packed collections, see place), 'a'
// (the cluster anchor, see anchor) or 'm' (API messages, see messages.go).
func (s *Store) key(ws string, kind byte, coll string) string {
	tag := ws
	if tag == "" {
		tag = "_"
	}
	var b strings.Builder
	b.Grow(len(s.prefix) + len(tag) + len(coll) + 7)
	b.WriteString(s.prefix)
	b.WriteString(":{")
	b.WriteString(tag)
	b.WriteString("}:")
	b.WriteByte(kind)
	b.WriteByte(':')
	b.WriteString(coll)
	return b.String()
}

// mapErr wraps err with what failed, mapping redis.Nil to authz.ErrNotFound
// and connectivity failures to authz.ErrUnavailable.
func (s *Store) mapErr(what string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, authz.ErrUnavailable):
		return fmt.Errorf("%s: %w", what, err)
	case errors.Is(err, redis.Nil):
		return fmt.Errorf("%s: %w", what, authz.ErrNotFound)
	case errors.Is(err, errBadMember) || errors.Is(err, errBadBlob):
		// Redis answered; what it holds is not this store's.
		return fmt.Errorf("%s: %w", what, err)
	case unavailable(err):
		return authz.Unavailable(fmt.Errorf("%s: %w", what, err))
	default:
		return fmt.Errorf("%s: %w", what, err)
	}
}

// unavailable reports whether err means Redis could not serve the request
// right now (as opposed to a bad request).
func unavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, redis.ErrClosed) ||
		errors.Is(err, redis.ErrPoolTimeout) ||
		errors.Is(err, redis.ErrPoolExhausted) {
		return true
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		for _, p := range []string{"LOADING", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "BUSY", "NOREPLICAS", "UNBLOCKED"} {
			if redis.HasErrorPrefix(err, p) {
				return true
			}
		}
		return false
	}
	// Anything else that is not a reply from Redis is a transport failure:
	// dial errors, timeouts, resets, EOF on a dropped connection.
	return !errors.Is(err, context.Canceled)
}

func checkPrefix(p string) (string, error) {
	if p == "" {
		return DefaultPrefix, nil
	}
	if strings.ContainsAny(p, "{}") {
		return "", fmt.Errorf("redis store: prefix %q must not contain '{' or '}'", p)
	}
	return p, nil
}

func pick(explicit, fromURL, def time.Duration) time.Duration {
	switch {
	case explicit != 0:
		return explicit
	case fromURL != 0:
		return fromURL
	default:
		return def
	}
}

// Interface guards
var _ authz.Store = (*Store)(nil)
