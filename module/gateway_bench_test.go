package module

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/filestore"
	"github.com/apiusers/apiusers/authz/redisstore"
	"github.com/apiusers/apiusers/authz/redisstore/redistest"
)

// The gateway's hot path: an allowed request whose key and principal are
// cached. Target: ≤ 1 µs and ≤ 2 allocations in the plugin.
//
//   - BenchmarkGatewayCached is the number to read. Each call gets a fresh
//     request with the state Caddy's server gives one (vars, a replacer
//     with the HTTP placeholders, a header map of its own), prepared in
//     batches with the timer stopped, so that everything the plugin does,
//     including growing the request's maps, is timed and counted, and
//     nothing else: key extraction, the verified-key cache lookup that
//     leads to the principal (no HMAC, no store), the
//     workspace/role/require decision, the placeholders, the header scrub
//     and five upstream headers, the credential removal.
//   - BenchmarkGatewayFresh and BenchmarkGatewayFreshBaseline make the
//     same fresh request inside the timed loop, with and without the
//     handler: a cross-check, the plugin's cost being their difference.
//
// The next handler is a no-op in all three.
func benchGateway(b *testing.B, routes ...func(*Gateway)) (*Gateway, string) {
	return benchGatewayWith(b, false, routes...)
}

// benchGatewayWith is benchGateway; with session, the credential is the
// station's bearer session token (POST /login's) instead of its key.
// routes change the route before it is compiled.
func benchGatewayWith(b *testing.B, session bool, routes ...func(*Gateway)) (*Gateway, string) {
	b.Helper()
	store, err := filestore.Open(b.TempDir()+"/apiusers.db", filestore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = store.Close() })
	return benchGatewayOn(b, store, session, 0, routes...)
}

// benchGatewayOn is benchGatewayWith over store; with credits > 0 the
// station has that many credits.
func benchGatewayOn(b *testing.B, store authz.Store, session bool, credits int64, routes ...func(*Gateway)) (*Gateway, string) {
	b.Helper()
	signer, err := authz.NewSigner(authz.SignerConfig{Secret: []byte(testSecret)})
	if err != nil {
		b.Fatal(err)
	}
	cache, err := authz.NewCache(authz.CacheConfig{TTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cache.Close)
	svc, err := authz.NewService(authz.Config{Store: store, Signer: signer, Cache: cache})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	root, err := svc.Bootstrap(ctx, "acme", "root")
	if err != nil {
		b.Fatal(err)
	}
	rootP, _, err := svc.Authenticate(ctx, root.Key)
	if err != nil {
		b.Fatal(err)
	}
	in := authz.NewUser{
		Username: "station", Kind: authz.KindAPI, Role: authz.RoleAPIUser, IssueKey: true,
		Password: "glacier orbit lantern 42 mosaic",
	}
	if credits > 0 {
		in.Credits = &authz.SetCredits{Remaining: &credits}
	}
	u, err := svc.CreateUser(ctx, rootP, "acme", in)
	if err != nil {
		b.Fatal(err)
	}
	if session {
		tok, err := svc.SignInUser(ctx, "acme", "station", "glacier orbit lantern 42 mosaic", "192.0.2.10")
		if err != nil {
			b.Fatal(err)
		}
		u.Key = tok.Token
	}
	g := &Gateway{Workspace: "acme", Roles: []string{"api_user"}, Require: []Requirement{{Permission: "listeners.invoke"}}}
	for _, f := range routes {
		f(g)
	}
	if err := g.compile(); err != nil {
		b.Fatal(err)
	}
	g.app, g.retryAfter, g.logger = appServing(svc, nil), []string{"5"}, zap.NewNop()
	// As Provision would: the route's metrics counters and the access log
	// check (the request carries no secret Caddy would log).
	g.counters, g.accessLog = newGatewayCounters(routeLabel(g)), &accessLog{base: zap.NewNop()}

	// Warm the caches.
	for range 2 {
		if _, _, err := svc.Authenticate(ctx, u.Key); err != nil {
			b.Fatal(err)
		}
	}
	return g, u.Key
}

var noopNext = caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })

// clientHeader is what a typical API client sends.
func clientHeader(key string) http.Header {
	return http.Header{
		"Accept":          {"application/json"},
		"User-Agent":      {"station/1.0"},
		"Accept-Encoding": {"gzip"},
		"Authorization":   {"Bearer " + key},
	}
}

func BenchmarkGatewayCached(b *testing.B) {
	g, key := benchGateway(b)
	benchCached(b, g, key)
}

// BenchmarkGatewayCachedSession is BenchmarkGatewayCached with an API
// user's bearer session token: it must cost what a key costs.
func BenchmarkGatewayCachedSession(b *testing.B) {
	g, token := benchGatewayWith(b, true)
	benchCached(b, g, token)
}

// BenchmarkGatewayCachedRateLimit is BenchmarkGatewayCached on a route with
// one rate limit (by user, never reached). Target: ≤ 150 ns and no
// allocation more than BenchmarkGatewayCached.
func BenchmarkGatewayCachedRateLimit(b *testing.B) {
	g, key := benchGateway(b, func(g *Gateway) {
		g.RateLimits = []RateLimit{{Requests: 1 << 30, Per: caddy.Duration(time.Second)}}
	})
	benchCached(b, g, key)
}

// BenchmarkGatewayCachedCredits is BenchmarkGatewayCached for a caller
// with credits, each request spending one. Target: ≤ 200 ns and no
// allocation more than BenchmarkGatewayCached.
func BenchmarkGatewayCachedCredits(b *testing.B) {
	store, err := filestore.Open(b.TempDir()+"/apiusers.db", filestore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = store.Close() })
	g, key := benchGatewayOn(b, store, false, 1<<50)
	benchCached(b, g, key)
}

// BenchmarkGatewayRateLimitCost and BenchmarkGatewayCreditsCost measure
// what BenchmarkGatewayCachedRateLimit and BenchmarkGatewayCachedCredits
// cost over BenchmarkGatewayCached as a paired difference: the two
// gateways (without and with the limit, or a caller without and with
// credits) serve batches of 1,024 fresh requests in turn in one process,
// so that the shared machine's drift, which moves a run by more than the
// difference, weighs on both alike. They report each side's ns/op and
// extra-ns/op, the difference (the targets: ≤ 150 and ≤ 200).
func BenchmarkGatewayRateLimitCost(b *testing.B) {
	g0, key0 := benchGateway(b)
	g1, key1 := benchGateway(b, func(g *Gateway) {
		g.RateLimits = []RateLimit{{Requests: 1 << 30, Per: caddy.Duration(time.Second)}}
	})
	benchPaired(b, g0, key0, g1, key1)
}

func BenchmarkGatewayCreditsCost(b *testing.B) {
	g0, key0 := benchGateway(b)
	store, err := filestore.Open(b.TempDir()+"/apiusers.db", filestore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = store.Close() })
	g1, key1 := benchGatewayOn(b, store, false, 1<<50)
	benchPaired(b, g0, key0, g1, key1)
}

// benchPaired serves b.N requests with key0 on g0 and b.N with key1 on g1,
// a batch of each in turn (the order alternating), each request fresh as
// in benchCached, and reports the two sides' ns/op and their difference,
// and then what one more batch of each allocates.
func benchPaired(b *testing.B, g0 *Gateway, key0 string, g1 *Gateway, key1 string) {
	gs := [2]*Gateway{g0, g1}
	base := httptest.NewRequest(http.MethodPost, "http://example.com/api/hello", nil)
	tmpls := [2]http.Header{clientHeader(key0), clientHeader(key1)}
	const batch = 1024
	reqs := make([]*http.Request, batch)
	ws := make([]*httptest.ResponseRecorder, batch)
	run := func(s, n int) time.Duration {
		start := time.Now()
		for i := range n {
			if err := gs[s].ServeHTTP(ws[i], reqs[i], noopNext); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(start)
	}
	prepare := func(s, n int) {
		for i := range n {
			reqs[i], ws[i] = freshRequest(base, tmpls[s]), freshResponse()
		}
	}
	serve := func(s, n int) time.Duration {
		prepare(s, n)
		return run(s, n)
	}
	serve(0, 1)
	serve(1, 1)
	var took [2]time.Duration
	b.ResetTimer()
	b.StopTimer() // each side's time is taken in serve; ns/op is left at 0
	for done, turn := 0, 0; done < b.N; done, turn = done+batch, turn+1 {
		n := min(batch, b.N-done)
		took[turn%2] += serve(turn%2, n)
		took[(turn+1)%2] += serve((turn+1)%2, n)
	}
	per := func(v float64) float64 { return v / float64(b.N) }
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(per(float64(took[0])), "base-ns/op")
	b.ReportMetric(per(float64(took[1])), "limited-ns/op")
	b.ReportMetric(per(float64(took[1]-took[0])), "extra-ns/op")
	units := [2]string{"base", "limited"}
	for s := range gs {
		var m0, m1 runtime.MemStats
		prepare(s, batch)
		runtime.ReadMemStats(&m0)
		run(s, batch)
		runtime.ReadMemStats(&m1)
		b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/batch, units[s]+"-B/op")
		b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/batch, units[s]+"-allocs/op")
	}
}

// BenchmarkGatewayCachedRateLimitRedis and BenchmarkGatewayCachedCreditsRedis
// are the two above on a real redis-server, counting the commands the
// store's client sends while they run (redis-cmds/op): the fleet's counts
// and credits are exchanged in the background, a few times a second, not
// per request.
func BenchmarkGatewayCachedRateLimitRedis(b *testing.B) {
	benchRedis(b, 0, func(g *Gateway) {
		g.RateLimits = []RateLimit{{Requests: 1 << 30, Per: caddy.Duration(time.Second)}}
	})
}

func BenchmarkGatewayCachedCreditsRedis(b *testing.B) { benchRedis(b, 1<<50) }

func benchRedis(b *testing.B, credits int64, routes ...func(*Gateway)) {
	srv := redistest.Start(b)
	store, err := redisstore.New(redisstore.Options{URL: srv.URL()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = store.Close() })
	var cmds atomic.Int64
	store.Client().AddHook(commandCounter{&cmds})
	g, key := benchGatewayOn(b, store, false, credits, routes...)
	cmds.Store(0)
	benchCached(b, g, key)
	b.ReportMetric(float64(cmds.Load())/float64(b.N), "redis-cmds/op")
}

// commandCounter is a go-redis hook that counts the commands a client sends.
type commandCounter struct{ n *atomic.Int64 }

func (c commandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}

func (c commandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

func benchCached(b *testing.B, g *Gateway, key string) {
	base := httptest.NewRequest(http.MethodPost, "http://example.com/api/hello", nil)
	tmpl := clientHeader(key)
	w := httptest.NewRecorder()
	if err := g.ServeHTTP(w, freshRequest(base, tmpl), noopNext); err != nil {
		b.Fatal(err)
	}

	// Each call gets a request of its own, with the state Caddy gives a new
	// request (replacer, vars, headers), made in batches with the timer
	// stopped: what is timed and counted is the handler alone.
	const batch = 1024
	reqs := make([]*http.Request, batch)
	ws := make([]*httptest.ResponseRecorder, batch)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j := i % batch
		if j == 0 {
			b.StopTimer()
			for k := range reqs {
				reqs[k], ws[k] = freshRequest(base, tmpl), freshResponse()
			}
			b.StartTimer()
		}
		if err := g.ServeHTTP(ws[j], reqs[j], noopNext); err != nil {
			b.Fatal(err)
		}
	}
}

// freshResponse is a response as Caddy's server hands it to the first
// handler: a header map of its own, holding the Server field.
func freshResponse() *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	w.Header().Set("Server", "Caddy")
	return w
}

// freshRequest is base with the per-request state Caddy's server gives a
// request: vars, a replacer with the HTTP placeholders, and its own header
// map (a copy of tmpl).
func freshRequest(base *http.Request, tmpl http.Header) *http.Request {
	ctx := context.WithValue(base.Context(), caddyhttp.VarsCtxKey, map[string]any{
		caddyhttp.TrustedProxyVarKey: false,
		caddyhttp.ClientIPVarKey:     "192.0.2.10",
	})
	r := base.WithContext(ctx)
	caddyhttp.NewTestReplacer(r) // the server's NewReplacer and HTTP placeholders
	r.Header = tmpl.Clone()
	return r
}

func benchFresh(b *testing.B, handler bool) {
	g, key := benchGateway(b)
	base := httptest.NewRequest(http.MethodPost, "http://example.com/api/hello", nil)
	tmpl := clientHeader(key)
	w := httptest.NewRecorder()

	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r := freshRequest(base, tmpl)
		var err error
		if handler {
			err = g.ServeHTTP(w, r, noopNext)
		} else {
			err = noopNext(w, r)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGatewayFresh(b *testing.B)         { benchFresh(b, true) }
func BenchmarkGatewayFreshBaseline(b *testing.B) { benchFresh(b, false) }
