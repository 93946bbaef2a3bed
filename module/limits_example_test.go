package module

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiusers/apiusers/internal/apitest"
)

// TestE2ELimits walks caddyfile-examples/limits (its README) on a real
// Caddy, on the file store and on a real redis-server.
func TestE2ELimits(t *testing.T) {
	forEachStore(t, e2eSite{example: "limits"}, func(t *testing.T, x *e2e) {
		// burst sends n requests at once and returns the answers by
		// status, and one 429.
		burst := func(path, key string, n int) (map[int]int, *http.Response, string) {
			t.Helper()
			var mu sync.Mutex
			counts := map[int]int{}
			var limited *http.Response
			var limitedBody string
			var wg sync.WaitGroup
			for range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					req, _ := http.NewRequest(http.MethodGet, x.Base+path, nil)
					req.Header.Set("Authorization", "Bearer "+key)
					res, err := http.DefaultClient.Do(req)
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						counts[-1]++
						return
					}
					b, _ := io.ReadAll(res.Body)
					res.Body.Close()
					counts[res.StatusCode]++
					if res.StatusCode == http.StatusTooManyRequests && limited == nil {
						limited, limitedBody = res, string(b)
					}
				}()
			}
			wg.Wait()
			return counts, limited, limitedBody
		}
		problem := func(body string) (p struct {
			Type, Title, Detail string
			Status              int
		}) {
			t.Helper()
			if err := json.Unmarshal([]byte(body), &p); err != nil {
				t.Fatalf("429 body is not a problem: %v: %s", err, body)
			}
			return p
		}

		// 1. Search: 10 a second per user, bursts of 20.
		app := x.MkUser(t, x.Root, "acme", "search-app", "api_user", nil)
		counts, res, body := burst("/search/q", app.Key, 25)
		if counts[200] != 20 || counts[429] != 5 {
			t.Fatalf("a burst of 25: %v, want 20 admitted", counts)
		}
		if got := strings.Join(res.Header.Values("RateLimit-Policy"), ", "); got != `"user";q=20;w=2, "ip";q=100;w=60` {
			t.Errorf("RateLimit-Policy %q", got)
		}
		if res.Header.Get("Retry-After") == "" || !strings.HasPrefix(res.Header.Get("RateLimit"), `"user";r=0;`) {
			t.Errorf("429 headers: Retry-After %q, RateLimit %q", res.Header.Get("Retry-After"), res.Header.Get("RateLimit"))
		}
		if ct := res.Header.Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("429 Content-Type %q", ct)
		}
		if p := problem(body); p.Status != 429 || p.Title != "Too Many Requests" || p.Detail != "rate limit exceeded" || p.Type != "about:blank" {
			t.Errorf("429 problem %+v", p)
		}

		// 2. A key's own rate limit replaces the route's first line.
		fast := x.MkUser(t, x.Root, "acme", "fast-app", "api_user", nil)
		x.Admin(t, x.Root, http.MethodPatch, "/workspaces/acme/users/"+fast.ID+"/keys/"+fast.KeyID,
			map[string]any{"rate_limit": map[string]any{"requests": 40, "per": "1s"}}, http.StatusOK)
		if counts, _, _ := burst("/search/q", fast.Key, 50); counts[200] != 40 {
			t.Errorf("a burst of 50 with the key's 40 a second: %v", counts)
		}

		// 3. Credits: a report costs 5; 12 credits buy two.
		reporter := x.MkUser(t, x.Root, "acme", "reporter", "api_user", map[string]any{"credits": map[string]any{"remaining": 12}})
		for i, want := range []int{200, 200, 429} {
			res, body := x.Call(t, http.MethodGet, "/reports/monthly", reporter.Key, nil)
			if res.StatusCode != want {
				t.Fatalf("report %d: %d %s", i, res.StatusCode, body)
			}
			if got := res.Header.Values("RateLimit"); i == 1 && (len(got) != 3 || !strings.HasPrefix(got[0], `"key";r=3;t=`) ||
				!strings.HasPrefix(got[1], `"workspace";r=9998;t=`) || got[2] != `"credits";r=2`) {
				t.Errorf("RateLimit %q", got)
			}
			if want == 429 {
				if p := problem(string(body)); p.Detail != "no credits left" {
					t.Errorf("spent out: %+v", p)
				}
			}
		}
		if status, body := x.Send(t, reporter.Key, http.MethodGet, "/status", ""); status != 200 || string(body) != "up" {
			t.Errorf("the free route: %d %s", status, body)
		}
		var shown []byte
		defer func() {
			if t.Failed() {
				t.Logf("the reporter: %s", shown)
			}
		}()
		apitest.Poll(t, "the reporter's credits to show 2 left", 2*time.Second, func() bool {
			shown = x.Admin(t, x.Root, http.MethodGet, "/workspaces/acme/users/"+reporter.ID, nil, http.StatusOK)
			return strings.Contains(string(shown), `"credits":{"remaining":2}`)
		})
	})
}
