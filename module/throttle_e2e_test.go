package module

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/apiusers/apiusers/internal/apitest"
)

// TestE2EAuthFailures: through a real Caddy whose server trusts the test
// client as a proxy (so Caddy's client_ip is the X-Forwarded-For address),
// an address that failed to authenticate 5 times gets 429 with a growing
// Retry-After for its further failures, at the gateway and the admin API;
// its valid keys, other addresses and requests without a key are not
// slowed; an IPv6 address counts with its /64. On Redis the counts reach
// the fleet's store.
func TestE2EAuthFailures(t *testing.T) {
	forEachStore(t, e2eSite{
		global:   "\tservers {\n\t\ttrusted_proxies static 127.0.0.1/32 ::1/128\n\t}",
		apiusers: []string{"auth_failures 5 per 1m backoff 2s"},
		routes:   hardRoutes,
	}, func(t *testing.T, e *e2e) {
		u := e.MkUser(t, e.Root, "acme", "throttled-station", "api_user", nil)
		from := func(addr string, key string, path string) (*http.Response, []byte) {
			t.Helper()
			h := http.Header{"X-Forwarded-For": {addr}}
			if key != "" {
				h.Set("Authorization", "Bearer "+key)
			}
			return e.Do(t, http.MethodGet, path, h, nil)
		}
		bad := u.Key[:len(u.Key)-3] + "xyz"
		const addr = "203.0.113.7"
		for i := 1; i <= 5; i++ {
			if res, body := from(addr, bad, "/api/x"); res.StatusCode != http.StatusUnauthorized {
				t.Fatalf("failure %d: %d %s, want 401", i, res.StatusCode, body)
			}
		}
		wantAfter := []string{"4", "8", "16"}
		for i, want := range wantAfter {
			res, body := from(addr, bad, "/api/x")
			if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") != want {
				t.Fatalf("failure %d: %d Retry-After %q %s, want 429 with Retry-After %s", 6+i, res.StatusCode, res.Header.Get("Retry-After"), body, want)
			}
			if string(body) != "429 too many failed authentications from this address: retry later" {
				t.Errorf("429 body %q", body)
			}
		}
		// The admin API counts and refuses alike.
		res, body := from(addr, bad, "/admin/me")
		p := apitest.WantProblem(t, "admin API, blocked address", res, body, http.StatusTooManyRequests, bad)
		if res.Header.Get("Retry-After") != "32" || !strings.Contains(p.Detail, "too many failed authentications") {
			t.Errorf("admin 429: Retry-After %q, %+v", res.Header.Get("Retry-After"), p)
		}
		// Never slowed: a valid key from the blocked address, a request
		// without a key (not a failure), another address, the proxy itself.
		if res, body := from(addr, u.Key, "/api/x"); res.StatusCode != http.StatusOK {
			t.Errorf("a valid key from the blocked address: %d %s", res.StatusCode, body)
		}
		if res, body := from(addr, u.Key, "/admin/me"); res.StatusCode != http.StatusOK {
			t.Errorf("a valid key from the blocked address at the admin API: %d %s", res.StatusCode, body)
		}
		if res, body := from(addr, "", "/api/x"); res.StatusCode != http.StatusUnauthorized || string(body) != "401 no API key" {
			t.Errorf("no key from the blocked address: %d %s", res.StatusCode, body)
		}
		if res, body := from("203.0.113.8", bad, "/api/x"); res.StatusCode != http.StatusUnauthorized {
			t.Errorf("another address: %d %s", res.StatusCode, body)
		}
		if res, body := e.Do(t, http.MethodGet, "/api/x", apitest.Bearer(bad), nil); res.StatusCode != http.StatusUnauthorized {
			t.Errorf("the proxy's own address: %d %s", res.StatusCode, body)
		}
		// IPv6: one /64 is one address.
		for i := range 5 {
			from("2001:db8:0:1::"+string(rune('1'+i)), bad, "/api/x")
		}
		if res, body := from("2001:db8:0:1::ff", bad, "/api/x"); res.StatusCode != http.StatusTooManyRequests {
			t.Errorf("another address of the same /64: %d %s, want 429", res.StatusCode, body)
		}
		if res, body := from("2001:db8:0:2::1", bad, "/api/x"); res.StatusCode != http.StatusUnauthorized {
			t.Errorf("an address of another /64: %d %s, want 401", res.StatusCode, body)
		}
		if e.redis == nil {
			return
		}
		// On Redis the instance's counts reach the fleet's (every second).
		c := redis.NewClient(&redis.Options{Addr: e.redis.Addr})
		t.Cleanup(func() { c.Close() })
		apitest.Poll(t, "failure counts in Redis", 5*time.Second, func() bool {
			keys, err := c.Keys(context.Background(), "apiusers:t:gateway.address:*").Result()
			return err == nil && len(keys) >= 3
		})
	})
}
