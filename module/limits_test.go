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

// TestGatewayRateLimitAllocs: a rate limit adds no allocation to an
// allowed request.
func TestGatewayRateLimitAllocs(t *testing.T) {
	e := newTestEnv(t)
	plain := e.gateway(&Gateway{})
	limited := e.gateway(&Gateway{RateLimits: []RateLimit{{Requests: 1 << 30, Per: caddy.Duration(time.Second)}}})
	base := httptest.NewRequest(http.MethodGet, "http://example.com/api/hello", nil)
	tmpl := clientHeader(e.userKey)
	allocs := func(g *Gateway) float64 {
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
	a, b := allocs(plain), allocs(limited)
	if b > a {
		t.Errorf("allocations per allowed request: %v with a rate limit, %v without", b, a)
	}
}
