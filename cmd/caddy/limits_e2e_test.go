package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apiusers/apiusers/authz/redisstore/redistest"
	"github.com/apiusers/apiusers/internal/apitest"
)

// Rate limits and credits through real Caddy processes (the built binary)
// and a real upstream-less route (Caddy answers): one instance on the file
// store, then three instances on one redis-server.

// limitsRoutes are an instance's routes. /api counts 10 (on the fleet:
// 100) per second by user; /ip 3 per minute by client address; /paid has
// no rate limit and spends a credit of callers that have them.
func limitsRoutes(perSecond int) string {
	return fmt.Sprintf(`
	handle /api/* {
		apiusers {
			rate_limit %d per 1s
		}
		respond "ok" 200
	}

	handle /ip/* {
		apiusers {
			rate_limit 3 per 1m by ip
		}
		respond "ok" 200
	}

	handle /paid/* {
		apiusers
		respond "ok" 200
	}
`, perSecond)
}

// limitsCaddyfile is the Caddyfile of one instance: the apiusers options,
// and the client address taken from X-Forwarded-For of loopback peers (so
// the test can speak from several addresses).
func limitsCaddyfile(adminPort, sitePort int, routes string, apiusers ...string) string {
	cf := apitest.Caddyfile{AdminPort: adminPort, SitePort: sitePort, Routes: routes, Apiusers: apiusers}.String()
	return strings.Replace(cf, "\tpersist_config off\n",
		"\tpersist_config off\n\tservers {\n\t\ttrusted_proxies static 127.0.0.0/8\n\t\tclient_ip_headers X-Forwarded-For\n\t}\n", 1)
}

// limitsClient sends the test's load: many connections, no test failure
// from a goroutine.
var limitsClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// hit calls path on base with key (and a client address, when ip is set)
// and returns the status, the headers and the body.
func hit(base, path, key, ip string) (int, http.Header, string, error) {
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		return 0, nil, "", err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	if ip != "" {
		req.Header.Set("X-Forwarded-For", ip)
	}
	res, err := limitsClient.Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, string(b), err
}

// burst sends n requests at once and counts the answers by status; it
// returns one 429's headers and body.
func burst(t *testing.T, base, path, key string, n int) (map[int]int, http.Header, string) {
	t.Helper()
	var mu sync.Mutex
	counts := map[int]int{}
	var limited http.Header
	var limitedBody string
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			status, h, body, err := hit(base, path, key, "")
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				counts[-1]++
				return
			}
			counts[status]++
			if status == http.StatusTooManyRequests && limited == nil {
				limited, limitedBody = h, body
			}
		}()
	}
	close(start)
	wg.Wait()
	return counts, limited, limitedBody
}

func TestLimitsProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	t.Parallel()
	bin := caddyBin.Path(t)

	// bootstrap makes the superadmin through cfg's store.
	bootstrap := func(t *testing.T, env []string, cfg string) string {
		t.Helper()
		r := apitest.Run(t, bin, env, 30*time.Second, "apiusers", "bootstrap", "--config", cfg, "--adapter", "caddyfile", "--workspace", "acme", "--username", "root")
		root := strings.TrimSpace(r.Stdout)
		if r.Code != 0 || root == "" {
			t.Fatalf("bootstrap: exit %d\n%s", r.Code, r.Stderr)
		}
		return root
	}
	// instance starts one Caddy with the apiusers options.
	instance := func(t *testing.T, perSecond int, root bool, apiusers ...string) (*apitest.Site, *apitest.Proc, string) {
		t.Helper()
		tmp := t.TempDir()
		env := apitest.Env(tmp)
		adminPort, sitePort := apitest.FreePort(t), apitest.FreePort(t)
		cfg := filepath.Join(tmp, "Caddyfile")
		if err := os.WriteFile(cfg, []byte(limitsCaddyfile(adminPort, sitePort, limitsRoutes(perSecond), apiusers...)), 0o644); err != nil {
			t.Fatal(err)
		}
		var key string
		if root {
			key = bootstrap(t, env, cfg)
		}
		site := &apitest.Site{Base: "http://localhost:" + strconv.Itoa(sitePort), Client: limitsClient}
		p := apitest.Start(t, bin, env, site.Base+"/api/", "--config", cfg, "--adapter", "caddyfile")
		return site, p, key
	}

	t.Run("file store", func(t *testing.T) {
		site, _, root := instance(t, 10, true, "store file {$HOME}/data")
		u := site.MkUser(t, root, "acme", "station", "api_user", nil)

		t.Run("10 per second admits 10 of a burst of 50", func(t *testing.T) {
			counts, h, body := burst(t, site.Base, "/api/x", u.Key, 50)
			if counts[200] != 10 || counts[429] != 40 {
				t.Fatalf("a burst of 50: %v, want 10 × 200 and 40 × 429", counts)
			}
			if ra, err := strconv.Atoi(h.Get("Retry-After")); err != nil || ra < 1 || ra > 2 {
				t.Errorf("Retry-After %q, want a second or two", h.Get("Retry-After"))
			}
			if got := h.Get("RateLimit-Policy"); got != `"user";q=10;w=1` {
				t.Errorf("RateLimit-Policy %q", got)
			}
			if got := h.Get("RateLimit"); !strings.HasPrefix(got, `"user";r=0;t=`) {
				t.Errorf("RateLimit %q", got)
			}
			if body != "429 rate limit exceeded" {
				t.Errorf("429 body %q", body)
			}
		})

		t.Run("a key's own higher limit overrides the route's", func(t *testing.T) {
			site.Admin(t, root, http.MethodPatch, "/workspaces/acme/users/"+u.ID+"/keys/"+u.KeyID,
				map[string]any{"rate_limit": map[string]any{"requests": 30, "per": "1s"}}, http.StatusOK)
			time.Sleep(1200 * time.Millisecond) // the last burst leaves the window
			counts, h, _ := burst(t, site.Base, "/api/x", u.Key, 50)
			if counts[200] != 30 || counts[429] != 20 {
				t.Fatalf("a burst of 50 with the key's 30 per second: %v", counts)
			}
			if got := h.Get("RateLimit-Policy"); got != `"user";q=30;w=1` {
				t.Errorf("RateLimit-Policy %q, want the key's", got)
			}
		})

		t.Run("by ip counts per client address", func(t *testing.T) {
			for _, ip := range []string{"203.0.113.1", "203.0.113.2"} {
				ok := 0
				for range 5 {
					status, _, _, err := hit(site.Base, "/ip/x", u.Key, ip)
					if err != nil {
						t.Fatal(err)
					}
					if status == 200 {
						ok++
					}
				}
				if ok != 3 {
					t.Errorf("from %s: %d of 5 admitted at 3 per minute, want 3", ip, ok)
				}
			}
		})

		t.Run("credits, and their refill at the boundary", func(t *testing.T) {
			// Set the credits just after a boundary, so the two spends and
			// the refused third fall in the period they were set in.
			time.Sleep(time.Duration(2*int64(time.Second)-time.Now().UnixNano()%(2*int64(time.Second))) + 50*time.Millisecond)
			w := site.MkUser(t, root, "acme", "metered", "api_user", map[string]any{
				"credits": map[string]any{"remaining": 2, "refill": map[string]any{"amount": 3, "every": "2s"}},
			})
			for i := range 3 {
				status, h, body, err := hit(site.Base, "/paid/x", w.Key, "")
				if err != nil {
					t.Fatal(err)
				}
				want := 200
				if i == 2 {
					want = 429
				}
				if status != want {
					t.Fatalf("spend %d: %d %s", i, status, body)
				}
				if i == 2 {
					if body != "429 no credits left" || h.Get("RateLimit") != `"credits";r=0;t=2` && h.Get("RateLimit") != `"credits";r=0;t=1` {
						t.Errorf("spent out: %q, RateLimit %q", body, h.Get("RateLimit"))
					}
					if ra, _ := strconv.Atoi(h.Get("Retry-After")); ra < 1 || ra > 2 {
						t.Errorf("Retry-After %q, want the next boundary", h.Get("Retry-After"))
					}
				}
			}
			// The user's JSON says what is left, and when it refills.
			type shown struct {
				Credits struct {
					Remaining int64     `json:"remaining"`
					RefillsAt time.Time `json:"refills_at"`
				} `json:"credits"`
			}
			var got shown
			apitest.Poll(t, "the user's credits to show none left", time.Second, func() bool {
				res, body := site.API(t, http.MethodGet, "/workspaces/acme/users/"+w.ID, root, nil)
				got = apitest.Decode[shown](t, "metered", res, body, http.StatusOK)
				return got.Credits.Remaining == 0
			})
			if got.Credits.RefillsAt.IsZero() {
				t.Errorf("credits shown: %+v, want a refill time", got.Credits)
			}
			time.Sleep(time.Until(got.Credits.RefillsAt) + 50*time.Millisecond)
			ok := 0
			for range 5 {
				if status, _, _, _ := hit(site.Base, "/paid/x", w.Key, ""); status == 200 {
					ok++
				}
			}
			if ok != 3 {
				t.Errorf("after the refill: %d of 5 admitted, want the refill's 3", ok)
			}
		})
	})

	t.Run("fleet", func(t *testing.T) {
		srv := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
		opts := []string{"store redis " + srv.URL(), "signing_key " + fleetProcSigningKey, "cache_ttl 1h"}
		a, _, root := instance(t, 100, true, opts...)
		b, _, _ := instance(t, 100, false, opts...)
		c, procC, _ := instance(t, 100, false, opts...)
		sites := []*apitest.Site{a, b, c}
		waitFeed(t, srv.Addr, 3)

		t.Run("100 per second by user, 10s at three times that over three instances", func(t *testing.T) {
			u := a.MkUser(t, root, "acme", "busy", "api_user", nil)
			var admitted, refused, failed atomic.Int64
			var wg sync.WaitGroup
			end := time.Now().Add(10 * time.Second)
			for _, s := range sites {
				for g := range 2 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						// 50 requests a second from each of two senders.
						next := time.Now().Add(time.Duration(g) * 10 * time.Millisecond)
						for next.Before(end) {
							time.Sleep(time.Until(next))
							next = next.Add(20 * time.Millisecond)
							status, _, _, err := hit(s.Base, "/api/x", u.Key, "")
							switch {
							case err != nil:
								failed.Add(1)
							case status == 200:
								admitted.Add(1)
							case status == 429:
								refused.Add(1)
							default:
								failed.Add(1)
							}
						}
					}()
				}
			}
			wg.Wait()
			got := admitted.Load()
			t.Logf("admitted %d, refused %d, failed %d", got, refused.Load(), failed.Load())
			if got < 950 || got > 1050 || failed.Load() > 0 {
				t.Errorf("admitted %d in 10s (refused %d, failed %d), want within 5%% of 1000", got, refused.Load(), failed.Load())
			}
		})

		t.Run("a changed limit is seen by every instance within 1s", func(t *testing.T) {
			u := a.MkUser(t, root, "acme", "changed", "api_user", nil)
			for _, s := range sites {
				if status, h, _, err := hit(s.Base, "/api/x", u.Key, ""); err != nil || status != 200 || h.Get("RateLimit-Policy") != `"user";q=100;w=1` {
					t.Fatalf("warm-up: %d %v %q", status, err, h.Get("RateLimit-Policy"))
				}
			}
			a.Admin(t, root, http.MethodPatch, "/workspaces/acme/users/"+u.ID,
				map[string]any{"rate_limit": map[string]any{"requests": 7, "per": "1m"}}, http.StatusOK)
			changed := time.Now()
			for _, s := range []*apitest.Site{b, c} {
				seen := apitest.Poll(t, "the new limit on "+s.Base, 2*time.Second, func() bool {
					_, h, _, err := hit(s.Base, "/api/x", u.Key, "")
					return err == nil && h.Get("RateLimit-Policy") == `"user";q=7;w=60`
				})
				if d := seen.Sub(changed); d > fleetPropagation {
					t.Errorf("%s saw the new limit %s after the change, want within %s", s.Base, d, fleetPropagation)
				}
			}
		})

		// spendAll spends key's credits through every instance as fast as
		// they go, until each says "no credits left" many times in a row;
		// during returns true while the spending goes on (it may break
		// things). It returns the answers by status.
		spendAll := func(key string, during func(spent int64)) map[int]int64 {
			var spent atomic.Int64
			var mu sync.Mutex
			counts := map[int]int64{}
			var wg sync.WaitGroup
			for _, s := range sites {
				for range 4 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						noCredits := 0
						for noCredits < 50 {
							status, _, body, err := hit(s.Base, "/paid/x", key, "")
							mu.Lock()
							if err != nil {
								counts[-1]++
							} else {
								counts[status]++
							}
							mu.Unlock()
							switch {
							case err != nil:
								noCredits++ // an instance killed on purpose
								time.Sleep(10 * time.Millisecond)
							case status == 200:
								noCredits = 0
								if during != nil {
									during(spent.Add(1))
								}
							case status == 429 && body == "429 no credits left":
								noCredits++
								time.Sleep(5 * time.Millisecond)
							default:
								time.Sleep(5 * time.Millisecond) // 503 while Redis is away
							}
						}
					}()
				}
			}
			wg.Wait()
			return counts
		}

		t.Run("1000 credits through three instances, Redis restarted in the middle: exactly 1000", func(t *testing.T) {
			u := a.MkUser(t, root, "acme", "paying", "api_user", map[string]any{"credits": map[string]any{"remaining": 1000}})
			var once sync.Once
			counts := spendAll(u.Key, func(spent int64) {
				if spent == 400 {
					once.Do(func() {
						go func() {
							srv.Kill()
							time.Sleep(500 * time.Millisecond)
							srv.Restart()
						}()
					})
				}
			})
			t.Logf("answers: %v", counts)
			if counts[200] != 1000 {
				t.Errorf("admitted %d, want exactly 1000 (answers %v)", counts[200], counts)
			}
			// The instances report what they spent within a second or so:
			// then the user's JSON shows none left.
			var body []byte
			apitest.Poll(t, "the user's credits to show none left", time.Second, func() bool {
				body = a.Admin(t, root, http.MethodGet, "/workspaces/acme/users/"+u.ID, nil, http.StatusOK)
				return strings.Contains(string(body), `"credits":{"remaining":0}`)
			})
		})

		t.Run("an instance killed while it holds credits loses what it held", func(t *testing.T) {
			u := a.MkUser(t, root, "acme", "crashing", "api_user", map[string]any{"credits": map[string]any{"remaining": 1000}})
			var once sync.Once
			counts := spendAll(u.Key, func(spent int64) {
				if spent == 300 {
					once.Do(func() { procC.Kill() })
				}
			})
			lost := 1000 - counts[200]
			t.Logf("admitted %d; %d lost with the killed instance's lease; answers %v", counts[200], lost, counts)
			if counts[200] > 1000 || lost > 250 {
				t.Errorf("admitted %d: never more than 1000, and at most a lease (a quarter of the balance) lost", counts[200])
			}
		})
	})
}
