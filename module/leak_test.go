package module

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/redis/go-redis/v9"

	"github.com/apiusers/apiusers/authz/redisstore/redistest"
	"github.com/apiusers/apiusers/internal/apitest"
	"github.com/apiusers/apiusers/internal/goroutines"
)

// No goroutine, file descriptor or Redis connection is left behind by
// config reloads and Redis outages: an in-process Caddy on the Redis store
// (with the gateway, a recorded route and the admin API) is reloaded ten
// times with changed settings, then Redis is stopped and restarted ten
// times, with traffic throughout; after each phase, once things settle,
// the process's goroutines and open files and the connections Redis sees
// are back at what they were after the warm-up, whatever the number of
// cycles, and exactly one invalidation subscription is left.

const (
	leakCycles = 10
	// Allowed excess over the baseline, for what the runtime, Caddy and
	// the clients keep for a while (connections closing, a timer firing).
	// A leak of one per cycle exceeds it; the plugin's own goroutines
	// (those of apiusers and go-redis) get less slack, since a
	// leak of theirs may happen only on the cycles that change the backend.
	leakSlackGoroutines = 6
	leakSlackPlugin     = 1
	leakSlackFiles      = 3
	leakSlackClients    = 3
	// leakTraffic is how many clients send requests at once.
	leakTraffic = 4
)

const leakSigningKey = "leak-test-signing-key-0123456789abcdef012345"

// leakCaddyfile is the configuration of cycle n: cache_ttl changes every
// third cycle, from cycle 1 on (a new backend: cache, service and
// invalidation subscriber, over the same store; the old one is closed),
// retry_after every cycle (the same backend, taken again by the new app).
// (Closing a backend's cache takes a few seconds under the race detector,
// hence not on every cycle.)
func leakCaddyfile(adminPort, sitePort int, redisURL string, n int) string {
	return apitest.Caddyfile{
		AdminPort: adminPort,
		Apiusers: []string{
			"store redis " + redisURL, "signing_key " + leakSigningKey,
			fmt.Sprintf("cache_ttl %dm", 1+(n+2)/3%2), fmt.Sprintf("retry_after %ds", 1+n%7),
		},
		SitePort: sitePort,
		Routes: `
	handle /api/* {
		apiusers {
			require listeners.invoke
		}
		respond "hello {http.auth.user.username}" 200
	}

	handle /rec/* {
		apiusers {
			require listeners.invoke
			record body 1KiB
		}
		respond "recorded {http.auth.user.username}" 200
	}
`,
	}.String()
}

// leakSample is what is counted.
type leakSample struct {
	goroutines int
	plugin     int // goroutines of apiusers and go-redis
	files      int // open file descriptors; -1 where not counted
	clients    int // connections Redis has, besides the test's own
	subs       int64
}

func (s leakSample) String() string {
	return fmt.Sprintf("%d goroutines (%d of the plugin), %d open files, %d redis clients, %d subscribers", s.goroutines, s.plugin, s.files, s.clients, s.subs)
}

// leakPluginGoroutines returns the stacks of the goroutines that run code
// of the plugin or of the library it starts goroutines in (go-redis), the
// test's own excepted.
func leakPluginGoroutines() []string {
	var out []string
	for _, g := range goroutines.Stacks() {
		if strings.Contains(g, "_test.go:") || strings.Contains(g, "/redistest.") {
			continue
		}
		if strings.Contains(g, "github.com/apiusers/apiusers/") ||
			strings.Contains(g, "github.com/redis/go-redis/") {
			out = append(out, g)
		}
	}
	return out
}

func TestNoLeakAcrossReloadsAndOutages(t *testing.T) {
	tmp, _ := e2eTempDirs(t)
	srv := redistest.Start(t, "--appendonly", "yes") // Stop flushes it; users survive restarts
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr, PoolSize: 1, MaxRetries: 5})
	t.Cleanup(func() { _ = rc.Close() })

	e2eAdminPortOnce.Do(func() { e2eAdminPort = apitest.FreePort(t) })
	adminPort, sitePort := e2eAdminPort, apitest.FreePort(t)
	site := "http://localhost:" + strconv.Itoa(sitePort)
	cf := func(n int) string { return leakCaddyfile(adminPort, sitePort, srv.URL(), n) }

	cfgPath := filepath.Join(tmp, "Caddyfile")
	if err := os.WriteFile(cfgPath, []byte(cf(0)), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if _, err := bootstrap(&stdout, &stderr, cfgPath, "caddyfile", "acme", "root"); err != nil {
		t.Fatalf("bootstrap: %v\n%s", err, stderr.String())
	}
	root := strings.TrimSpace(stdout.String())

	tester := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort})
	tester.InitServer(cf(0), "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	client := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{}}
	t.Cleanup(func() {
		client.CloseIdleConnections()
		tester.InitServer(apitest.Empty(adminPort), "caddyfile")
	})

	// reload loads the configuration of cycle n, as the admin API's /load
	// does.
	reload := func(n int) {
		t.Helper()
		client.CloseIdleConnections() // else the old servers wait for them
		cfg, warn, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cf(n)), nil)
		if err != nil {
			t.Fatalf("adapting the config of cycle %d: %v %v", n, err, warn)
		}
		if err := caddy.Load(cfg, false); err != nil {
			t.Fatalf("loading the config of cycle %d: %v", n, err)
		}
		// Load returns once the old servers were told to shut down, not
		// when they stopped accepting: a connection they take meanwhile is
		// closed unanswered. Wait until new connections keep reaching
		// the new servers.
		deadline := time.Now().Add(10 * time.Second)
		for good := 0; good < 5; {
			client.CloseIdleConnections()
			res, err := client.Get(site + "/api/x")
			if err == nil {
				res.Body.Close()
				good++
				continue
			}
			good = 0
			if time.Now().After(deadline) {
				t.Fatalf("the site after loading the config of cycle %d: %v", n, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	call := func(method, path, key, body string) (int, []byte, error) {
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequest(method, site+path, rd)
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set("Authorization", "Bearer "+key)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		res, err := client.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		return res.StatusCode, b, err
	}
	send := func(method, path, key, body string) (int, error) {
		status, _, err := call(method, path, key, body)
		return status, err
	}
	status, body, err := call(http.MethodPost, "/admin/workspaces/acme/users", root,
		`{"username": "station", "kind": "api", "role": "api_user", "issue_key": true}`)
	var created struct {
		Key string `json:"key"`
	}
	if err != nil || status != http.StatusCreated || json.Unmarshal(body, &created) != nil || created.Key == "" {
		t.Fatalf("creating station: %d %v", status, err)
	}
	station := created.Key

	// stranger's principal is never cached: it is used only while Redis
	// is down.
	status, body, err = call(http.MethodPost, "/admin/workspaces/acme/users", root,
		`{"username": "stranger", "kind": "api", "role": "api_user", "issue_key": true}`)
	if err != nil || status != http.StatusCreated || json.Unmarshal(body, &created) != nil || created.Key == "" {
		t.Fatalf("creating stranger: %d %v", status, err)
	}
	stranger := created.Key

	// traffic has leakTraffic clients send a round of requests each: the
	// gateway, a recorded route, an admin read and an admin write; every
	// one must succeed. While Redis is down, one client sends a lighter
	// round (every failing request costs the Redis client dial errors,
	// and enough of them make it wait a second for a probe to succeed
	// before it dials again), and 503 is allowed.
	users := 0
	traffic := func(redisDown bool) {
		t.Helper()
		type request struct{ method, path, key, body string }
		users++
		clients := leakTraffic
		round := func(c int) []request {
			return []request{
				{http.MethodGet, "/api/x", station, ""},
				{http.MethodGet, "/rec/x", station, ""},
				{http.MethodGet, "/admin/me", root, ""},
				{http.MethodPost, "/admin/workspaces/acme/users", root,
					fmt.Sprintf(`{"username": "u%d-%d", "kind": "api", "role": "api_user"}`, users, c)},
				{http.MethodGet, "/api/y", station, ""},
			}
		}
		if redisDown {
			clients = 1
			round = func(c int) []request {
				return []request{
					{http.MethodGet, "/api/x", station, ""},
					{http.MethodGet, "/rec/x", station, ""},
					{http.MethodGet, "/api/x", stranger, ""},
					{http.MethodPost, "/admin/workspaces/acme/users", root,
						fmt.Sprintf(`{"username": "d%d-%d", "kind": "api", "role": "api_user"}`, users, c)},
				}
			}
		}
		var wg sync.WaitGroup
		errs := make(chan string, clients*8)
		for c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, r := range round(c) {
					status, err := send(r.method, r.path, r.key, r.body)
					ok := status/100 == 2 || redisDown && status == http.StatusServiceUnavailable
					if err != nil || !ok {
						errs <- fmt.Sprintf("%s %s: %d %v", r.method, r.path, status, err)
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Errorf("traffic (redis down: %v): %s", redisDown, e)
		}
	}

	// storeBack waits until an admin write goes through again.
	storeBack := func() {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for i := 0; ; i++ {
			status, err := send(http.MethodPost, "/admin/workspaces/acme/users", root,
				fmt.Sprintf(`{"username": "back-%d-%d", "kind": "api", "role": "api_user"}`, users, i))
			if err == nil && status == http.StatusCreated {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the store is not back within 15s of Redis: %d %v", status, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	sample := func() leakSample {
		t.Helper()
		ctx := context.Background()
		s := leakSample{goroutines: runtime.NumGoroutine(), plugin: len(leakPluginGoroutines()), files: -1}
		if runtime.GOOS == "linux" {
			if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
				s.files = len(fds)
			}
		}
		// The test's own connection (a new one after a restart).
		own, err := rc.ClientID(ctx).Result()
		if err != nil {
			t.Fatalf("CLIENT ID: %v", err)
		}
		list, err := rc.ClientList(ctx).Result()
		if err != nil {
			t.Fatalf("CLIENT LIST: %v", err)
		}
		for _, l := range strings.Split(strings.TrimSpace(list), "\n") {
			if l != "" && !strings.HasPrefix(l, "id="+strconv.FormatInt(own, 10)+" ") {
				s.clients++
			}
		}
		subs, err := rc.PubSubNumSub(ctx, "apiusers:invalidate").Result()
		if err != nil {
			t.Fatalf("PUBSUB NUMSUB: %v", err)
		}
		s.subs = subs["apiusers:invalidate"]
		return s
	}
	// settle closes what the test's clients keep open and samples until
	// two samples a moment apart agree.
	settle := func() leakSample {
		t.Helper()
		client.CloseIdleConnections()
		http.DefaultTransport.(*http.Transport).CloseIdleConnections() // caddytest's
		prev := sample()
		for range 50 {
			time.Sleep(200 * time.Millisecond)
			s := sample()
			if s == prev {
				return s
			}
			prev = s
		}
		return prev
	}
	// check waits until the counts are back within the slack of base.
	check := func(phase string, base leakSample) {
		t.Helper()
		client.CloseIdleConnections()
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
		deadline := time.Now().Add(20 * time.Second)
		for {
			s := sample()
			ok := s.goroutines <= base.goroutines+leakSlackGoroutines &&
				s.plugin <= base.plugin+leakSlackPlugin &&
				s.files <= base.files+leakSlackFiles &&
				s.clients <= base.clients+leakSlackClients &&
				s.subs == 1
			if ok {
				t.Logf("after %s: %v (baseline %v)", phase, s, base)
				return
			}
			if time.Now().After(deadline) {
				var stacks bytes.Buffer
				_ = pprof.Lookup("goroutine").WriteTo(&stacks, 1)
				list, _ := rc.ClientList(context.Background()).Result()
				t.Fatalf("after %s: %v, baseline %v (slack %d goroutines, %d files, %d clients; 1 subscriber)\nredis clients:\n%s\ngoroutines:\n%s",
					phase, s, base, leakSlackGoroutines, leakSlackFiles, leakSlackClients, list, stacks.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// Warm-up: every path once (a reload, an outage), so that what is made
	// once per process (pools, registries, lazily started workers) is in
	// the baseline.
	traffic(false)
	reload(1)
	traffic(false)
	srv.Stop()
	traffic(true)
	srv.Restart()
	storeBack()
	traffic(false)
	if t.Failed() {
		t.FailNow()
	}
	base := settle()
	if base.subs != 1 {
		t.Fatalf("baseline: %v, want 1 subscriber", base)
	}
	t.Logf("baseline: %v", base)

	start := time.Now()
	for n := 2; n < 2+leakCycles; n++ {
		reload(n)
		traffic(false)
	}
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d reloads in %v", leakCycles, time.Since(start).Round(time.Millisecond))
	check(strconv.Itoa(leakCycles)+" reloads", base)

	start = time.Now()
	for range leakCycles {
		srv.Stop()
		traffic(true)
		srv.Restart()
		storeBack()
		traffic(false)
	}
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d outages in %v", leakCycles, time.Since(start).Round(time.Millisecond))
	check(strconv.Itoa(leakCycles)+" outages", base)
}
