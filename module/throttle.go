package module

import (
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/throttle"
)

// The failure throttle of the gateway and the admin API (see AuthFailures),
// over authz/throttle.

// Defaults of AuthFailures.
const (
	defaultFailureLimit   = 100
	defaultFailureWindow  = time.Minute
	defaultFailureBackoff = time.Second
	// failureSyncEvery is how often an instance on Redis exchanges its
	// counts with the fleet's.
	failureSyncEvery = time.Second
)

// failurePolicy is the throttle policy af says (Limit 0: off).
func failurePolicy(af *AuthFailures) throttle.Policy {
	if af != nil && af.Off {
		return throttle.Policy{}
	}
	p := throttle.Policy{Limit: defaultFailureLimit, Window: defaultFailureWindow, Backoff: defaultFailureBackoff}
	if af != nil {
		if af.Limit != 0 {
			p.Limit = int64(af.Limit)
		}
		p.Window = durationOr(af.Window, p.Window)
		p.Backoff = durationOr(af.Backoff, p.Backoff)
	}
	return p
}

// checkFailurePolicy reports what is wrong with af, for Validate.
func checkFailurePolicy(af *AuthFailures) error {
	if af == nil || af.Off {
		return nil
	}
	if af.Limit < 0 || af.Window < 0 || af.Backoff < 0 {
		return fmt.Errorf("auth_failures: limit, window and backoff must not be negative")
	}
	if af.Backoff > 0 && af.Window > 0 && af.Backoff > af.Window {
		return fmt.Errorf("auth_failures: backoff %s is longer than the window %s", time.Duration(af.Backoff), time.Duration(af.Window))
	}
	return nil
}

// failureThrottle counts failed authentications per client address.
type failureThrottle struct {
	lim *throttle.Limiter
}

// newFailureThrottle makes the throttle of policy p over store st (the
// fleet's counts when st keeps them); nil when p is off.
func newFailureThrottle(p throttle.Policy, st authz.Store, logger *zap.Logger) (*failureThrottle, error) {
	if p.Limit == 0 {
		return nil, nil
	}
	o := throttle.Options{}
	if shared, ok := st.(throttle.Shared); ok {
		o.Shared, o.Scope, o.SyncEvery = shared, "gateway.address", failureSyncEvery
		o.OnSyncError = func(err error) {
			if c := logger.Check(zapcore.DebugLevel, "auth_failures: exchanging counts with the fleet failed"); c != nil {
				c.Write(zap.Error(err))
			}
		}
	}
	lim, err := throttle.New(p, o)
	if err != nil {
		return nil, err
	}
	return &failureThrottle{lim: lim}, nil
}

func (ft *failureThrottle) close() {
	if ft != nil {
		ft.lim.Close()
	}
}

// failed records a failed authentication of r's client, and returns the
// 429 to answer when that client was already blocked (nil otherwise).
func (ft *failureThrottle) failed(r *http.Request) error {
	if ft == nil {
		return nil
	}
	v, _ := ft.lim.Fail(r.Context(), clientKey(r))
	if !v.Refused {
		return nil
	}
	return &authz.ThrottledError{RetryAfter: v.RetryAfter, What: "authentications from this address"}
}

// clientKey is the address r's failures count against: Caddy's client_ip
// (the trusted_proxies of the server honoured), an IPv6 address by its
// /64 (one host usually holds a whole /64), else the connection's peer.
func clientKey(r *http.Request) string {
	s, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	if s == "" {
		s, _, _ = net.SplitHostPort(r.RemoteAddr)
	}
	return throttle.AddrKey(s)
}

// failuresOf returns the failure throttle of the app's serving state, for
// the admin API (nil until the store is open, or when off).
func failuresOf(app *App) *failureThrottle {
	if app == nil || app.state == nil {
		return nil
	}
	if sv := app.state.live.Load(); sv != nil {
		return sv.failures
	}
	return nil
}
