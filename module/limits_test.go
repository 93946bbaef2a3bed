package module

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/apiusers/apiusers/authz"
)

// serveFrom calls g for a request with key from client address ip.
func serveFrom(t *testing.T, g *Gateway, key, ip string) result {
	t.Helper()
	r := bearer(key)
	repl := caddyhttp.NewTestReplacer(r)
	*r = *r.WithContext(context.WithValue(r.Context(), caddyhttp.VarsCtxKey, map[string]any{caddyhttp.ClientIPVarKey: ip}))
	w := httptest.NewRecorder()
	var res result
	res.err = g.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		res.upstream = r
		return nil
	}))
	res.header, res.repl = w.Header(), repl
	if he, ok := res.err.(caddyhttp.HandlerError); ok {
		res.status = he.StatusCode
	}
	return res
}

func TestGatewayRateLimit(t *testing.T) {
	e := newTestEnv(t)
	g := e.gateway(&Gateway{RateLimits: []RateLimit{{Requests: 10, Per: caddy.Duration(time.Second)}}})
	g.now = e.Clock.Now

	admitted, limited := 0, 0
	var last result
	for i := range 50 {
		res := serveFrom(t, g, e.userKey, "192.0.2.1")
		switch {
		case res.err == nil:
			admitted++
			// t: the window is a second; its first request leaves it a
			// little after a second (slots are a tenth), so "2" whole
			// seconds, rounded up.
			if got, want := res.header.Get("RateLimit"), `"user";r=`+strconv.Itoa(9-i)+";t="; !strings.HasPrefix(got, want) || (got[len(want):] != "1" && got[len(want):] != "2") {
				t.Errorf("request %d: RateLimit %q, want %q1 or 2", i, got, want)
			}
		case res.status == http.StatusTooManyRequests:
			limited++
			last = res
		default:
			t.Fatalf("request %d: %v", i, res.err)
		}
		if got := res.header.Get("RateLimit-Policy"); got != `"user";q=10;w=1` {
			t.Fatalf("request %d: RateLimit-Policy %q", i, got)
		}
	}
	if admitted != 10 || limited != 40 {
		t.Fatalf("a burst of 50 at 10 per second: %d admitted, %d limited; want 10 and 40", admitted, limited)
	}
	if got := last.header.Get("Retry-After"); got != "1" && got != "2" {
		t.Errorf("Retry-After %q, want about a second", got)
	}
	if got := last.header.Get("RateLimit"); got != `"user";r=0;t=1` && got != `"user";r=0;t=2` {
		t.Errorf("RateLimit of a 429: %q", got)
	}
	if !strings.Contains(last.err.Error(), "rate limit exceeded") {
		t.Errorf("429 message %q", last.err)
	}
	// A second later the window has moved on.
	e.Advance(1100 * time.Millisecond)
	if res := serveFrom(t, g, e.userKey, "192.0.2.1"); res.err != nil {
		t.Errorf("after a second: %v", res.err)
	}
}

func TestGatewayRateLimitByIP(t *testing.T) {
	e := newTestEnv(t)
	g := e.gateway(&Gateway{RateLimits: []RateLimit{{Requests: 2, Per: caddy.Duration(time.Minute), By: ByIP}}})
	g.now = e.Clock.Now
	for _, ip := range []string{"192.0.2.1", "192.0.2.2"} {
		for i := range 3 {
			res := serveFrom(t, g, e.userKey, ip)
			if ok := res.err == nil; ok != (i < 2) {
				t.Errorf("%s request %d: %v, want %s", ip, i, res.err, map[bool]string{true: "admitted", false: "429"}[i < 2])
			}
		}
	}
}

// TestGatewayRateLimitLines: every line is checked, and a request one of
// them refuses counts against none.
func TestGatewayRateLimitLines(t *testing.T) {
	e := newTestEnv(t)
	g := e.gateway(&Gateway{RateLimits: []RateLimit{
		{Requests: 5, Per: caddy.Duration(time.Minute)},
		{Requests: 2, Per: caddy.Duration(time.Minute), By: ByKey, Name: "per-key"},
	}})
	g.now = e.Clock.Now
	for i := range 4 {
		res := serveFrom(t, g, e.userKey, "192.0.2.1")
		if ok := res.err == nil; ok != (i < 2) {
			t.Fatalf("request %d: %v", i, res.err)
		}
		if got := res.header.Values("RateLimit-Policy"); strings.Join(got, ", ") != `"user";q=5;w=60, "per-key";q=2;w=60` {
			t.Errorf("RateLimit-Policy %q", got)
		}
	}
	// The two refused requests did not count against the user line.
	res := serveFrom(t, g, e.userKey, "192.0.2.1")
	if got := res.header.Values("RateLimit")[0]; !strings.HasPrefix(got, `"user";r=2;`) {
		t.Errorf("user line after two refusals: %q, want 2 remaining (3 counted: 2 admitted and this one, refunded)", got)
	}
}

// TestGatewayRateLimitOtherAnswers: answers that count nothing (401, 403)
// carry the route's RateLimit-Policy.
func TestGatewayRateLimitOtherAnswers(t *testing.T) {
	e := newTestEnv(t)
	g := e.gateway(&Gateway{RateLimits: []RateLimit{{Requests: 10, Per: caddy.Duration(time.Second)}}, Roles: []string{"admin"}})
	for _, key := range []string{"", e.userKey} {
		res := serveFrom(t, g, key, "192.0.2.1")
		if res.status != http.StatusUnauthorized && res.status != http.StatusForbidden {
			t.Fatalf("key %q: %v", key, res.err)
		}
		if got := res.header.Get("RateLimit-Policy"); got != `"user";q=10;w=1` {
			t.Errorf("%d: RateLimit-Policy %q", res.status, got)
		}
		if got := res.header.Get("RateLimit"); got != "" {
			t.Errorf("%d: RateLimit %q, want none (nothing was counted)", res.status, got)
		}
	}
}

// TestGatewayRateLimitAllocs: a rate limit, or credits to spend, add no
// allocation to an allowed request.
func TestGatewayRateLimitAllocs(t *testing.T) {
	e := newTestEnv(t)
	plain := e.gateway(&Gateway{})
	limited := e.gateway(&Gateway{RateLimits: []RateLimit{{Requests: 1 << 30, Per: caddy.Duration(time.Second)}}})
	base := httptest.NewRequest(http.MethodGet, "http://example.com/api/hello", nil)
	allocs := func(g *Gateway, key string) float64 {
		tmpl := clientHeader(key)
		w := httptest.NewRecorder()
		reqs := make([]*http.Request, 200)
		for i := range reqs {
			reqs[i] = freshRequest(base, tmpl)
		}
		if err := g.ServeHTTP(w, freshRequest(base, tmpl), noopNext); err != nil {
			t.Fatal(err)
		}
		i := 0
		return testing.AllocsPerRun(len(reqs)-1, func() {
			w.Header().Del("Ratelimit")
			w.Header().Del("Ratelimit-Policy")
			if err := g.ServeHTTP(w, reqs[i], noopNext); err != nil {
				t.Fatal(err)
			}
			i++
		})
	}
	a, b := allocs(plain, e.userKey), allocs(limited, e.userKey)
	if b > a {
		t.Errorf("allocations per allowed request: %v with a rate limit, %v without", b, a)
	}
	lots := int64(1 << 40)
	rich, richKey := e.createUser("acme", authz.NewUser{Username: "rich", Kind: authz.KindAPI, Role: authz.RoleAPIUser,
		Credits: &authz.SetCredits{Remaining: &lots}})
	_ = rich
	// Once the holding has grown to the pace of spending (the first
	// requests wait for leases, then prefetching keeps ahead).
	w := httptest.NewRecorder()
	for range 3000 {
		if err := plain.ServeHTTP(w, freshRequest(base, clientHeader(richKey)), noopNext); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	if c := allocs(plain, richKey); c > a {
		t.Errorf("allocations per allowed request: %v spending credits, %v without", c, a)
	}
}

// TestGatewayCallerRateLimit: a key's own higher limit replaces the
// route's on lines counted by key or user, not on lines by address.
func TestGatewayCallerRateLimit(t *testing.T) {
	e := newTestEnv(t)
	g := e.gateway(&Gateway{RateLimits: []RateLimit{
		{Requests: 2, Per: caddy.Duration(time.Minute)},
		{Requests: 5, Per: caddy.Duration(time.Minute), By: ByIP},
	}})
	g.now = e.Now
	ctx := context.Background()
	if _, err := e.svc.UpdateKey(ctx, e.root, "acme", e.user.ID, e.user.KeyID, authz.KeyPatch{
		RateLimit: authz.Optional[authz.RateLimit]{Set: true, Value: &authz.RateLimit{Requests: 4, Per: "1m"}},
	}); err != nil {
		t.Fatal(err)
	}
	admitted := 0
	var res result
	for range 6 {
		if res = serveFrom(t, g, e.userKey, "192.0.2.1"); res.err == nil {
			admitted++
		}
	}
	if admitted != 4 {
		t.Errorf("the key's 4 per minute over the route's 2: %d admitted, want 4", admitted)
	}
	if got := strings.Join(res.header.Values("RateLimit-Policy"), ", "); got != `"user";q=4;w=60, "ip";q=5;w=60` {
		t.Errorf("RateLimit-Policy %q: want the key's own numbers on the user line", got)
	}
}

// TestGatewayCredits: each request spends the route's cost; with none
// left the answer is 429 saying so; a free route spends nothing.
func TestGatewayCredits(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	five := int64(5)
	if _, err := e.svc.UpdateUser(ctx, e.root, "acme", e.user.ID, authz.UserPatch{
		Credits: authz.Optional[authz.SetCredits]{Set: true, Value: &authz.SetCredits{Remaining: &five}},
	}, nil); err != nil {
		t.Fatal(err)
	}
	plain := e.gateway(&Gateway{})
	costly := e.gateway(&Gateway{Cost: ptr(int64(2))})
	free := e.gateway(&Gateway{Cost: ptr(int64(0))})
	for _, g := range []*Gateway{plain, costly, free} {
		g.now = e.Now
	}
	res := serveFrom(t, plain, e.userKey, "192.0.2.1")
	if res.err != nil {
		t.Fatal(res.err)
	}
	if got := res.header.Get("RateLimit"); got != `"credits";r=4` {
		t.Errorf("after one: RateLimit %q", got)
	}
	if got := res.header.Get("RateLimit-Policy"); got != `"credits";q=5` {
		t.Errorf("RateLimit-Policy %q", got)
	}
	if res := serveFrom(t, costly, e.userKey, "192.0.2.1"); res.err != nil || res.header.Get("RateLimit") != `"credits";r=2` {
		t.Fatalf("a cost of 2: %v %q", res.err, res.header.Get("RateLimit"))
	}
	for range 3 {
		if res := serveFrom(t, free, e.userKey, "192.0.2.1"); res.err != nil || res.header.Get("RateLimit") != "" {
			t.Fatalf("a free route: %v %q", res.err, res.header.Get("RateLimit"))
		}
	}
	if res := serveFrom(t, costly, e.userKey, "192.0.2.1"); res.err != nil {
		t.Fatalf("the last two: %v", res.err)
	}
	res = serveFrom(t, plain, e.userKey, "192.0.2.1")
	if res.status != http.StatusTooManyRequests || !strings.Contains(res.err.Error(), "no credits left") {
		t.Fatalf("spent out: %d %v, want 429 no credits left", res.status, res.err)
	}
	if got := res.header.Get("RateLimit"); got != `"credits";r=0` {
		t.Errorf("spent out: RateLimit %q", got)
	}
	if got := res.header.Get("Retry-After"); got != "" {
		t.Errorf("no refill, so no Retry-After: %q", got)
	}
	// Another key of the user with credits of its own spends those.
	k, err := e.svc.CreateKey(ctx, e.root, "acme", e.user.ID, authz.NewKey{Name: "own", Credits: &authz.SetCredits{Remaining: &five}})
	if err != nil {
		t.Fatal(err)
	}
	if res := serveFrom(t, plain, k.Secret, "192.0.2.1"); res.err != nil || res.header.Get("RateLimit") != `"credits";r=4` {
		t.Fatalf("a key with credits of its own: %v %q", res.err, res.header.Get("RateLimit"))
	}
}

// TestGatewayCreditsRefill: credits that refill every second come back at
// the boundary; a spent-out answer says when.
func TestGatewayCreditsRefill(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	two := int64(2)
	if _, err := e.svc.UpdateKey(ctx, e.root, "acme", e.user.ID, e.user.KeyID, authz.KeyPatch{
		Credits: authz.Optional[authz.SetCredits]{Set: true, Value: &authz.SetCredits{Remaining: &two, Refill: &authz.Refill{Amount: 3, Every: "10s"}}},
	}); err != nil {
		t.Fatal(err)
	}
	g := e.gateway(&Gateway{})
	g.now = e.Now
	count := func() int {
		n := 0
		for range 10 {
			if serveFrom(t, g, e.userKey, "192.0.2.1").err == nil {
				n++
			}
		}
		return n
	}
	if n := count(); n != 2 {
		t.Fatalf("first period: %d admitted, want the 2 set", n)
	}
	res := serveFrom(t, g, e.userKey, "192.0.2.1")
	ra, _ := strconv.Atoi(res.header.Get("Retry-After"))
	if res.status != http.StatusTooManyRequests || ra < 1 || ra > 10 {
		t.Fatalf("spent out: %d, Retry-After %q", res.status, res.header.Get("Retry-After"))
	}
	if got := res.header.Get("RateLimit-Policy"); got != `"credits";q=3;w=10` {
		t.Errorf("RateLimit-Policy %q", got)
	}
	e.Advance(time.Duration(ra) * time.Second)
	if n := count(); n != 3 {
		t.Errorf("after the refill: %d admitted, want 3", n)
	}
}

// TestGatewayLimitedMetric: every 429 is counted in
// apiusers_gateway_limited_total, by route and by the limit that refused.
func TestGatewayLimitedMetric(t *testing.T) {
	e := newTestEnv(t)
	g := e.gateway(&Gateway{Name: "metered", RateLimits: []RateLimit{{Requests: 1, Per: caddy.Duration(time.Minute), Name: "slow"}}})
	g.now = e.Clock.Now
	before := counterValue(t, limitedRequests.WithLabelValues("metered", "slow"))
	for range 4 {
		serveFrom(t, g, e.userKey, "192.0.2.1")
	}
	if got := counterValue(t, limitedRequests.WithLabelValues("metered", "slow")) - before; got != 3 {
		t.Errorf("limited counted %v times, want 3", got)
	}
}

// TestOneItem: the RateLimit value of a request's only item is what
// strconv makes, for every length of number and name, and the two fields
// are slices of their own.
func TestOneItem(t *testing.T) {
	nums := []int64{0, 1, 9, 10, 99, 100, 101, 999, 1000, 86400, 1<<30 - 1, 1 << 30, 31622400, 1 << 53, 1<<63 - 1, -1, -86400}
	for p := int64(1); p > 0 && p < 1<<62; p *= 10 {
		nums = append(nums, p-1, p, p+1)
	}
	for _, name := range []string{"ip", "user", "workspace", "credits", strings.Repeat("n", 64)} {
		prefix := `"` + name + `";r=`
		for _, r := range nums {
			for _, tv := range nums {
				for _, withT := range []bool{true, false} {
					want := prefix + strconv.FormatInt(r, 10)
					if withT {
						want += ";t=" + strconv.FormatInt(tv, 10)
					}
					h := http.Header{}
					oneItem(h, `"p"`, prefix, r, tv, withT)
					if got := h[hdrRateLimit]; len(got) != 1 || got[0] != want || cap(got) != 1 {
						t.Fatalf("r=%d t=%d withT=%v: RateLimit %q (cap %d), want %q", r, tv, withT, got, cap(got), want)
					}
					if got := h[hdrRateLimitPolicy]; len(got) != 1 || got[0] != `"p"` || cap(got) != 1 {
						t.Fatalf("RateLimit-Policy %q (cap %d)", got, cap(got))
					}
				}
			}
		}
	}
	for _, n := range nums {
		if n >= 0 && decimalLen(n) != len(strconv.FormatInt(n, 10)) {
			t.Errorf("decimalLen(%d) = %d", n, decimalLen(n))
		}
	}
}
