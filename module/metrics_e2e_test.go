package module

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/apiusers/apiusers/internal/apitest"
)

// metricsRoutes are the metrics test's routes: a named gateway route, a
// route limited to one call a minute, a recorded one, and Caddy's metrics
// handler.
const metricsRoutes = `
	handle /m/* {
		apiusers {
			name m-api
			require listeners.invoke
		}
		reverse_proxy UPSTREAM
	}

	handle /limited/* {
		apiusers {
			name m-limited
			rate_limit 1 per 1m
		}
		reverse_proxy UPSTREAM
	}

	handle /recorded/* {
		apiusers {
			name m-recorded
			record
		}
		reverse_proxy UPSTREAM
	}

	handle /metrics {
		metrics
	}
`

// scrape reads the site's /metrics (Caddy's metrics handler) into a map
// from a series ("name{label="value",…}", as Prometheus writes it) to its
// value.
func scrape(t *testing.T, e *e2e) map[string]float64 {
	t.Helper()
	res, body := e.Do(t, http.MethodGet, "/metrics", nil, nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d", res.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// TestE2EMetrics: the plugin's series, on Caddy's metrics registry, read
// through a real Caddy's metrics handler after calls that make each of
// them move.
func TestE2EMetrics(t *testing.T) {
	forEachStore(t, e2eSite{apiusers: []string{"auth_failures 3 per 1m"}, routes: metricsRoutes}, func(t *testing.T, e *e2e) {
		m0 := scrape(t, e)
		for _, series := range []string{
			`apiusers_gateway_requests_total{outcome="allowed",route="m-api"}`,
			`apiusers_gateway_requests_total{outcome="503",route="m-api"}`,
			`apiusers_cache_lookups_total{result="hit"}`,
			`apiusers_cache_lookups_total{result="miss"}`,
			`apiusers_cache_evictions_total{cache="keys"}`,
			`apiusers_cache_evictions_total{cache="principals"}`,
			`apiusers_store_round_trip_seconds_count{op="load_principal"}`,
			`apiusers_fleet_invalidations_received_total`,
			`apiusers_fleet_invalidation_lag_seconds_count`,
			`apiusers_messages_recorded_total`,
			`apiusers_messages_dropped_total`,
			`apiusers_sign_ins_total{outcome="failed"}`,
			`apiusers_mails_sent_total{kind="invitation"}`,
			`apiusers_mails_failed_total{kind="password_reset"}`,
		} {
			if _, ok := m0[series]; !ok {
				t.Errorf("%s is not on /metrics", series)
			}
		}
		delta := func(m map[string]float64, series string) float64 { return m[series] - m0[series] }

		station := e.MkUser(t, e.Root, "acme", "m-station", "api_user", nil)
		basic := e.MkUser(t, e.Root, "acme", "m-basic", "api_basic", nil)
		for range 3 {
			e.GatewayOK(t, "allowed", "/m/x", station.Key, "m-station")
		}
		e.GatewayDenied(t, "forbidden", "/m/x", basic.Key, http.StatusForbidden)
		bad := station.Key[:len(station.Key)-2] + "zz"
		for range 3 {
			e.GatewayDenied(t, "bad key", "/m/x", bad, http.StatusUnauthorized)
		}
		if res, body, _ := e.Gateway(t, "/m/x", bad); res.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("a fourth bad key: %d %s, want 429", res.StatusCode, body)
		}
		e.GatewayOK(t, "limited, first", "/limited/x", station.Key, "m-station")
		if res, body, _ := e.Gateway(t, "/limited/x", station.Key); res.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("limited, second: %d %s, want 429", res.StatusCode, body)
		}
		e.GatewayOK(t, "recorded", "/recorded/x", station.Key, "m-station")

		m := scrape(t, e)
		for series, want := range map[string]float64{
			`apiusers_gateway_requests_total{outcome="allowed",route="m-api"}`:      3,
			`apiusers_gateway_requests_total{outcome="403",route="m-api"}`:          1,
			`apiusers_gateway_requests_total{outcome="401",route="m-api"}`:          3,
			`apiusers_gateway_requests_total{outcome="429",route="m-api"}`:          1,
			`apiusers_gateway_requests_total{outcome="allowed",route="m-limited"}`:  1,
			`apiusers_gateway_requests_total{outcome="limited",route="m-limited"}`:  1,
			`apiusers_gateway_requests_total{outcome="allowed",route="m-recorded"}`: 1,
			`apiusers_gateway_limited_total{limit="user",route="m-limited"}`:        1,
		} {
			if got := delta(m, series); got != want {
				t.Errorf("%s moved by %v, want %v", series, got, want)
			}
		}
		if delta(m, `apiusers_cache_lookups_total{result="hit"}`) < 3 || delta(m, `apiusers_cache_lookups_total{result="miss"}`) < 1 {
			t.Errorf("cache lookups: hits +%v, misses +%v", delta(m, `apiusers_cache_lookups_total{result="hit"}`), delta(m, `apiusers_cache_lookups_total{result="miss"}`))
		}
		if delta(m, `apiusers_store_round_trip_seconds_count{op="load_principal"}`) < 1 || m[`apiusers_store_round_trip_seconds_sum{op="load_principal"}`] <= 0 {
			t.Errorf("store round trips not observed: %v", delta(m, `apiusers_store_round_trip_seconds_count{op="load_principal"}`))
		}
		apitest.Poll(t, "the recorded message counted", 5*time.Second, func() bool {
			return delta(scrape(t, e), `apiusers_messages_recorded_total`) >= 1
		})

		if e.redis == nil {
			return
		}
		// Another instance's invalidation arrives: counted, with its lag.
		rc := redis.NewClient(&redis.Options{Addr: e.redis.Addr})
		t.Cleanup(func() { rc.Close() })
		msg, _ := json.Marshal(map[string]any{"from": "another-instance", "ws": "acme", "users": []string{station.ID},
			"at": time.Now().Add(-40 * time.Millisecond).UnixNano()})
		if err := rc.Publish(context.Background(), "apiusers:invalidate", msg).Err(); err != nil {
			t.Fatal(err)
		}
		apitest.Poll(t, "the invalidation counted", 5*time.Second, func() bool {
			m := scrape(t, e)
			return delta(m, `apiusers_fleet_invalidations_received_total`) >= 1 && delta(m, `apiusers_fleet_invalidation_lag_seconds_count`) >= 1 &&
				delta(m, `apiusers_fleet_invalidation_lag_seconds_sum`) >= 0.04
		})
		// The store away: an uncached principal is a 503.
		fresh := e.MkUser(t, e.Root, "acme", "m-fresh", "api_user", nil)
		e.redis.Stop()
		if res, body, _ := e.Gateway(t, "/m/x", fresh.Key); res.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("store down: %d %s, want 503", res.StatusCode, body)
		}
		if got := delta(scrape(t, e), `apiusers_gateway_requests_total{outcome="503",route="m-api"}`); got != 1 {
			t.Errorf("503 moved by %v, want 1", got)
		}
	})
}
