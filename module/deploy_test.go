package module

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/redis/go-redis/v9"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/redisstore"
	"github.com/apiusers/apiusers/authz/redisstore/redistest"
	"github.com/apiusers/apiusers/internal/apitest"
)

// TestRedisClusterDeployment configures the app from Caddyfile global
// options naming a Redis Cluster of three masters (one seed literally, the
// others and the password from the environment) and runs a gateway
// scenario over it (see runDeployment).
func TestRedisClusterDeployment(t *testing.T) {
	cluster := redistest.StartCluster(t, 3, "--requirepass", "s3cret-pw")
	t.Setenv("REDIS_SEEDS", strings.Join(cluster.Addrs()[1:], ","))
	// (The test cluster has no replicas to wait for.)
	runDeployment(t, `cluster `+cluster.Addrs()[0]+` {env.REDIS_SEEDS}
		password {env.REDIS_PASSWORD}`,
		func(t *testing.T, c redis.UniversalClient) {
			cc, ok := c.(*redis.ClusterClient)
			if !ok {
				t.Fatalf("client is %T, want a cluster client", c)
			}
			if got := cc.Options().Addrs; len(got) != 3 {
				t.Fatalf("cluster seeds %q, want 3", got)
			}
		})
}

// TestRedisSentinelDeployment does the same over a master and a replica
// that a sentinel watches, every write waiting for the replica.
func TestRedisSentinelDeployment(t *testing.T) {
	sentinel := redistest.StartSentinel(t, "--requirepass", "s3cret-pw")
	t.Setenv("SENTINELS", strings.Join(sentinel.SentinelAddrs(), " "))
	runDeployment(t, `sentinel `+redistest.MasterName+` {env.SENTINELS}
		password {env.REDIS_PASSWORD}
		wait_replicas 1`,
		func(t *testing.T, c redis.UniversalClient) {
			if cl, ok := c.(*redis.Client); !ok || cl.Options().Addr != "FailoverClient" {
				t.Fatalf("client is %T, want a failover client", c)
			}
		})
}

// runDeployment parses a global option block whose `store redis` block
// holds lines, loads the adapted JSON as Caddy would, resolves it with the
// password from the environment, opens the store as Provision does and
// checks its client, then runs a gateway scenario: bootstrap a
// superadmin, create an API user with a key, authenticate the key,
// deactivate the user and see the key refused.
func runDeployment(t *testing.T, lines string, client func(t *testing.T, c redis.UniversalClient)) {
	t.Setenv("REDIS_PASSWORD", "s3cret-pw")
	t.Setenv("APIUSERS_SIGNING_KEY", secret32)
	input := "apiusers {\n\tstore redis {\n\t\t" + lines + "\n\t\tprefix deploy\n\t}\n\tsigning_key {env.APIUSERS_SIGNING_KEY}\n}"
	var parsed App
	if err := parsed.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	// What the adapter writes and Caddy loads.
	raw, err := json.Marshal(parsed)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "s3cret") {
		t.Fatalf("the adapted config holds the password: %s", raw)
	}
	var app App
	if err := json.Unmarshal(raw, &app); err != nil {
		t.Fatal(err)
	}
	s, err := app.resolve(caddy.NewReplacer())
	if err != nil {
		t.Fatalf("resolve: %v", err)
	}
	if id := s.poolKey(); strings.Contains(id, "s3cret") {
		t.Fatalf("the pool key holds the password: %q", id)
	}
	st, err := s.openStore()
	if err != nil {
		t.Fatalf("openStore: %v", err)
	}
	client(t, st.(*redisstore.Store).Client())
	svc, cache, err := s.newService(st, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cache.Close(); st.Close() })

	ctx := context.Background()
	root, err := svc.Bootstrap(ctx, "acme", "root")
	if err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	rootP, _, err := svc.Authenticate(ctx, root.Key)
	if err != nil {
		t.Fatal(err)
	}
	u, err := svc.CreateUser(ctx, rootP, "acme", authz.NewUser{Username: "station", Kind: authz.KindAPI, Role: authz.RoleAPIUser, IssueKey: true})
	if err != nil {
		t.Fatalf("create user: %v", err)
	}
	p, _, err := svc.Authenticate(ctx, u.Key)
	if err != nil {
		t.Fatalf("authenticate: %v", err)
	}
	if p.Username != "station" || p.Workspace != "acme" {
		t.Fatalf("authenticated as %s in %s", p.Username, p.Workspace)
	}
	if _, err := svc.SetStatus(ctx, rootP, "acme", u.ID, authz.StatusInactive); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.Authenticate(ctx, u.Key); !errors.Is(err, authz.ErrUnauthenticated) {
		t.Fatalf("a deactivated user's key: %v, want ErrUnauthenticated", err)
	}
}

// TestE2ERedisCluster serves caddyfile-examples/redis-cluster from a real
// Caddy over a cluster of three masters and runs the gateway scenario every
// store passes.
func TestE2ERedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	c := redistest.StartCluster(t, 3, "--requirepass", "e2e-pw")
	t.Setenv("REDIS_CLUSTER_NODES", strings.Join(c.Addrs(), ","))
	t.Setenv("REDIS_PASSWORD", "e2e-pw")
	t.Setenv("APIUSERS_SIGNING_KEY", "e2e-signing-key-0123456789abcdef0123456789")
	e := startE2E(t, e2eSite{example: "redis-cluster"})
	exerciseGateway(t, e)
}

// TestE2ERedisSentinel serves caddyfile-examples/redis-sentinel from a real
// Caddy over a master, a replica and a sentinel, runs the gateway scenario,
// fails the master over, and checks that keys still pass, that admin
// writes come back (503 with Retry-After while they cannot be confirmed)
// and that what was written before is still there.
func TestE2ERedisSentinel(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	set := redistest.StartSentinel(t, "--requirepass", "e2e-pw", "--appendonly", "yes")
	t.Setenv("REDIS_SENTINELS", strings.Join(set.SentinelAddrs(), ","))
	t.Setenv("REDIS_PASSWORD", "e2e-pw")
	t.Setenv("APIUSERS_SIGNING_KEY", "e2e-signing-key-0123456789abcdef0123456789")
	e := startE2E(t, e2eSite{example: "redis-sentinel"})
	station := exerciseGateway(t, e)

	set.Failover()
	if res, body := e.Do(t, http.MethodGet, "/api/hello", apitest.Bearer(station), nil); res.StatusCode != http.StatusOK {
		t.Fatalf("a key after the failover: %d %s", res.StatusCode, body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, body := e.Do(t, http.MethodPost, "/admin/workspaces/acme/users", apitest.Bearer(e.Root), map[string]any{
			"username": "after-failover", "kind": "api", "role": "api_user",
		})
		if res.StatusCode == http.StatusCreated {
			break
		}
		if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" || time.Now().After(deadline) {
			t.Fatalf("an admin write after the failover: %d %s (Retry-After %q)", res.StatusCode, body, res.Header.Get("Retry-After"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	res, body := e.Do(t, http.MethodGet, "/admin/workspaces/acme/users", apitest.Bearer(e.Root), nil)
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"station"`) || !strings.Contains(string(body), `"after-failover"`) {
		t.Fatalf("users after the failover: %d %s", res.StatusCode, body)
	}
}

// TestResolveClusterAndSentinel checks how resolve turns the Redis store's
// cluster and sentinel settings into what openStore uses.
func TestResolveClusterAndSentinel(t *testing.T) {
	t.Setenv("REDIS_SEEDS", "a:1, b:2 c:3")
	t.Setenv("REDIS_PASSWORD", "pw-from-env")
	s, err := (&App{Store: &StoreConfig{
		Type: StoreRedis, Cluster: []string{"{env.REDIS_SEEDS}"}, Password: "{env.REDIS_PASSWORD}", TLS: true,
		WaitReplicas: 1, WaitTimeout: caddy.Duration(time.Second),
	}, SigningKey: secret32}).resolve(caddy.NewReplacer())
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(s.redis.cluster, " "); got != "a:1 b:2 c:3" || s.redis.password != "pw-from-env" || !s.redis.tls {
		t.Fatalf("cluster %q, password expanded %v, tls %v", got, s.redis.password == "pw-from-env", s.redis.tls)
	}
	if strings.Contains(s.storeID(), "pw-from-env") {
		t.Fatal("the store id holds the password")
	}
	other := *s
	other.redis.password = "another"
	if other.storeID() == s.storeID() {
		t.Fatal("a changed password keeps the store id: a reload would keep the old client")
	}

	cases := []struct {
		sc   StoreConfig
		want string
	}{
		{StoreConfig{Type: StoreRedis, Cluster: []string{"a:1"}, URL: "redis://x"}, "url names a single server"},
		{StoreConfig{Type: StoreRedis, Cluster: []string{"a:1"}, Sentinel: &SentinelConfig{MasterName: "m", Addrs: []string{"s:1"}}}, "cluster and sentinel exclude each other"},
		{StoreConfig{Type: StoreRedis, Cluster: []string{"{env.APIUSERS_UNSET}"}}, "cluster has no address once placeholders are expanded"},
		{StoreConfig{Type: StoreRedis, Sentinel: &SentinelConfig{Addrs: []string{"s:1"}}}, "sentinel needs a master name and at least one sentinel address"},
		{StoreConfig{Type: StoreRedis, Sentinel: &SentinelConfig{MasterName: "m"}}, "sentinel needs a master name"},
		{StoreConfig{Type: StoreRedis, URL: "redis://x", WaitReplicas: -1}, "must not be negative"},
	}
	for _, c := range cases {
		_, err := (&App{Store: &c.sc, SigningKey: secret32}).resolve(caddy.NewReplacer())
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("resolve(%+v): %v, want an error saying %q", c.sc, err, c.want)
		}
	}

	// What redisstore rejects surfaces when the store is opened, and
	// already when the app is provisioned (caddy validate and adapt
	// included), which checks without opening.
	bad := &App{Store: &StoreConfig{Type: StoreRedis, Cluster: []string{"a:1"}, DB: 1}, SigningKey: secret32}
	s, err = bad.resolve(caddy.NewReplacer())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.openStore(); err == nil || !strings.Contains(err.Error(), "only database 0") {
		t.Fatalf("openStore of a cluster with db 1: %v", err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := bad.Provision(ctx); err == nil || !strings.Contains(err.Error(), "only database 0") {
		t.Fatalf("provisioning a cluster with db 1: %v", err)
	}
}
