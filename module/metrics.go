package module

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/mail"
)

// The plugin's metrics, all in this file, registered on Caddy's
// metrics registry (ctx.GetMetricsRegistry(), so a `metrics` handler in the
// Caddyfile serves them). They are process-wide: their values survive
// config reloads, and every configuration registers the same collectors.
//
//	apiusers_gateway_requests_total{route,outcome}   gateway decisions: allowed, 401, 403,
//	                                                 429 (auth_failures), limited (rate_limit,
//	                                                 credits), 503
//	apiusers_gateway_limited_total{route,limit}      the limited ones by what refused them: a
//	                                                 rate_limit line's name, or credits
//	apiusers_cache_lookups_total{result}             principal lookups: hit (in process), miss (store)
//	apiusers_cache_evictions_total{cache}            keys, principals pushed out by the bounds
//	apiusers_store_round_trip_seconds{op}            store round trips: load_principal
//	apiusers_fleet_invalidations_received_total      invalidations from other instances (Redis)
//	apiusers_fleet_invalidation_lag_seconds          from their commit to their arrival here
//	apiusers_messages_recorded_total                 API messages stored (record)
//	apiusers_messages_dropped_total                  API messages lost (queue full, store failed)
//	apiusers_sign_ins_total{outcome}                 POST /login: ok, failed, throttled, error
//	apiusers_mails_sent_total{kind}                  invitation, password_reset
//	apiusers_mails_failed_total{kind}
//
// A new series goes here: its collector in metricsCollectors, its help
// text saying what it counts, and its labels' values made up front (so a
// series shows as 0 before its first event).

// Gateway outcomes.
const (
	outcomeAllowed     = "allowed"
	outcomeUnauth      = "401"
	outcomeForbidden   = "403"
	outcomeThrottled   = "429"
	outcomeLimited     = "limited"
	outcomeUnavailable = "503"
)

var gatewayOutcomes = [...]string{outcomeAllowed, outcomeUnauth, outcomeForbidden, outcomeThrottled, outcomeLimited, outcomeUnavailable}

var (
	gatewayRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "apiusers",
		Name:      "gateway_requests_total",
		Help:      "Gateway decisions by route (the apiusers block's name, else the digest its rate limits count under) and outcome: allowed, 401, 403, 429 (failed authentication throttled), limited (rate limit or credits), 503.",
	}, []string{"route", "outcome"})

	cacheLookups = prometheus.NewCounterFunc(prometheus.CounterOpts{
		Namespace:   "apiusers",
		Name:        "cache_lookups_total",
		Help:        "Principal lookups by result: hit (answered in process), miss (a store round trip).",
		ConstLabels: prometheus.Labels{"result": "hit"},
	}, func() float64 { return float64(cacheStats().hits) })
	cacheMisses = prometheus.NewCounterFunc(prometheus.CounterOpts{
		Namespace:   "apiusers",
		Name:        "cache_lookups_total",
		Help:        "Principal lookups by result: hit (answered in process), miss (a store round trip).",
		ConstLabels: prometheus.Labels{"result": "miss"},
	}, func() float64 { return float64(cacheStats().misses) })
	keyEvictions = prometheus.NewCounterFunc(prometheus.CounterOpts{
		Namespace:   "apiusers",
		Name:        "cache_evictions_total",
		Help:        "Cache entries pushed out to keep the cache within its bounds, by cache: keys (verified keys), principals.",
		ConstLabels: prometheus.Labels{"cache": "keys"},
	}, func() float64 { return float64(cacheStats().keyEvictions) })
	principalEvictions = prometheus.NewCounterFunc(prometheus.CounterOpts{
		Namespace:   "apiusers",
		Name:        "cache_evictions_total",
		Help:        "Cache entries pushed out to keep the cache within its bounds, by cache: keys (verified keys), principals.",
		ConstLabels: prometheus.Labels{"cache": "principals"},
	}, func() float64 { return float64(cacheStats().principalEvictions) })

	storeRoundTrips = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "apiusers",
		Name:      "store_round_trip_seconds",
		Help:      "Store round trips by operation: load_principal (a gateway cache miss).",
		Buckets:   []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"op"})

	fleetReceived = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "apiusers",
		Name:      "fleet_invalidations_received_total",
		Help:      "Cache invalidations received from other instances of the fleet (Redis pub/sub).",
	})
	fleetLag = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "apiusers",
		Name:      "fleet_invalidation_lag_seconds",
		Help:      "Time from another instance's commit of a change to its invalidation arriving here (clocks of the instances compared).",
		Buckets:   []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	})

	// limitedRequests counts the requests gateways answered 429, the
	// outcome "limited" of their decisions, by route (the apiusers block's
	// name, else the digest its limits' counters go by) and by what
	// refused them: a rate_limit line's name, or "credits".
	limitedRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "apiusers",
		Name:      "gateway_limited_total",
		Help:      "Requests a gateway answered 429 (outcome limited), by route and by the limit that refused them (a rate_limit line's name, or credits).",
	}, []string{"route", "limit"})

	messagesRecorded = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "apiusers",
		Name:      "messages_recorded_total",
		Help:      "API messages stored (routes with record).",
	})
	messagesDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "apiusers",
		Name:      "messages_dropped_total",
		Help:      "API messages lost because the queue was full or the store failed.",
	})

	signIns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "apiusers",
		Name:      "sign_ins_total",
		Help:      "Sign-in attempts (POST /login) by outcome: ok, failed, throttled, error.",
	}, []string{"outcome"})

	mailsSent = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "apiusers",
		Name:      "mails_sent_total",
		Help:      "Mails the SMTP server accepted, by kind.",
	}, []string{"kind"})
	mailsFailed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "apiusers",
		Name:      "mails_failed_total",
		Help:      "Mails given up after every attempt, refused for good, or dropped because the queue was full, by kind.",
	}, []string{"kind"})
)

// metricsCollectors are every collector registerMetrics registers.
var metricsCollectors = []prometheus.Collector{
	gatewayRequests, limitedRequests, cacheLookups, cacheMisses, keyEvictions, principalEvictions, storeRoundTrips,
	fleetReceived, fleetLag, messagesRecorded, messagesDropped, signIns, mailsSent, mailsFailed,
}

func init() {
	for _, k := range []mail.Kind{mail.KindInvitation, mail.KindPasswordReset} {
		mailsSent.WithLabelValues(string(k))
		mailsFailed.WithLabelValues(string(k))
	}
	for _, o := range []string{"ok", "failed", "throttled", "error"} {
		signIns.WithLabelValues(o)
	}
}

// registerMetrics registers every collector in reg (Caddy's registry of
// the configuration); one that is already there is fine.
func registerMetrics(reg *prometheus.Registry) error {
	if reg == nil {
		return nil
	}
	for _, c := range metricsCollectors {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return fmt.Errorf("registering metrics: %w", err)
			}
		}
	}
	return nil
}

func countSignIn(outcome string) { signIns.WithLabelValues(outcome).Inc() }

// observeStore records one store round trip.
func observeStore(op string, d time.Duration) {
	if op == "load_principal" {
		loadPrincipalTrips.Observe(d.Seconds()) // every miss: no label lookup
		return
	}
	storeRoundTrips.WithLabelValues(op).Observe(d.Seconds())
}

// loadPrincipalTrips is storeRoundTrips' series of load_principal.
var loadPrincipalTrips = storeRoundTrips.WithLabelValues("load_principal")

// gatewayCounters are one route's outcome counters, made at provision so
// the request path increments without a label lookup (or an allocation).
type gatewayCounters [len(gatewayOutcomes)]prometheus.Counter

func newGatewayCounters(route string) *gatewayCounters {
	var gc gatewayCounters
	for i, o := range gatewayOutcomes {
		gc[i] = gatewayRequests.WithLabelValues(route, o)
	}
	return &gc
}

// inc counts outcome i (an index of gatewayOutcomes); a gateway that was
// not provisioned (unit tests) counts nothing.
func (gc *gatewayCounters) inc(i int) {
	if gc != nil {
		gc[i].Inc()
	}
}

func (gc *gatewayCounters) allowed()     { gc.inc(0) }
func (gc *gatewayCounters) unauth()      { gc.inc(1) }
func (gc *gatewayCounters) forbidden()   { gc.inc(2) }
func (gc *gatewayCounters) throttled()   { gc.inc(3) }
func (gc *gatewayCounters) limited()     { gc.inc(4) }
func (gc *gatewayCounters) unavailable() { gc.inc(5) }

// routeLabel is the route label of a gateway's metrics: its name, else
// the digest its rate limits count under (routeIdent), so that its series
// here and in apiusers_gateway_limited_total go by one label.
func routeLabel(g *Gateway) string {
	id, err := routeIdent(g)
	if err != nil {
		return "unnamed"
	}
	return id
}

// The cache counters of every live backend, plus those of backends gone
// (so the counters never go down across reloads).
var (
	cachesMu     sync.Mutex
	liveCaches   = map[*authz.Cache]struct{}{}
	retiredStats cacheCounts
)

type cacheCounts struct {
	hits, misses, keyEvictions, principalEvictions uint64
}

func countsOf(c *authz.Cache) cacheCounts {
	h, m := c.Lookups()
	ke, pe := c.Evictions()
	return cacheCounts{hits: h, misses: m, keyEvictions: ke, principalEvictions: pe}
}

func (a *cacheCounts) add(b cacheCounts) {
	a.hits += b.hits
	a.misses += b.misses
	a.keyEvictions += b.keyEvictions
	a.principalEvictions += b.principalEvictions
}

// watchCache counts c in the cache metrics until forgetCache.
func watchCache(c *authz.Cache) {
	cachesMu.Lock()
	liveCaches[c] = struct{}{}
	cachesMu.Unlock()
}

// forgetCache keeps c's final counts and stops reading it.
func forgetCache(c *authz.Cache) {
	cachesMu.Lock()
	defer cachesMu.Unlock()
	if _, ok := liveCaches[c]; ok {
		retiredStats.add(countsOf(c))
		delete(liveCaches, c)
	}
}

func cacheStats() cacheCounts {
	cachesMu.Lock()
	defer cachesMu.Unlock()
	sum := retiredStats
	for c := range liveCaches {
		sum.add(countsOf(c))
	}
	return sum
}
