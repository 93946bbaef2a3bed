package module

import (
	"net"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Hosts a handler is served at. A link in a mail that anyone can cause
// (the self-service password reset) must not take its host from the
// request, which the client writes: when public_url is not set, the admin
// API builds such links only from a host the Caddy config itself names
// for the route that reaches the handler (its host matchers), never from a
// catch-all site, a wildcard or a placeholder.

// servedByName reports whether r's Host is a name the HTTP server
// handling r reaches handler h under by an exact host matcher on every
// route on the way (and, when the Host carries a port, that it is the port
// the request came in on).
func servedByName(r *http.Request, h caddyhttp.MiddlewareHandler) bool {
	srv, ok := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if !ok || srv == nil {
		return false
	}
	host, port, err := net.SplitHostPort(r.Host)
	if err != nil {
		host, port = r.Host, ""
	}
	if port != "" {
		local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
		if !ok {
			return false
		}
		_, lport, err := net.SplitHostPort(local.String())
		if err != nil || lport != port {
			return false
		}
	}
	host = strings.ToLower(host)
	w := hostWalk{target: h, named: srv.NamedRoutes, seen: map[string]bool{}}
	w.routes(srv.Routes, nil)
	if !w.found || w.catchAll {
		return false
	}
	return w.names[host]
}

// hostWalk finds the host constraints of every route path to target.
type hostWalk struct {
	target   caddyhttp.MiddlewareHandler
	named    map[string]*caddyhttp.Route
	seen     map[string]bool // named routes entered (no cycles)
	found    bool
	catchAll bool            // a path to target with no host constraint
	names    map[string]bool // exact names target is reached under
}

// routes walks rs under the host constraint outer (nil: any host).
func (w *hostWalk) routes(rs caddyhttp.RouteList, outer map[string]bool) {
	for i := range rs {
		w.route(&rs[i], outer)
	}
}

func (w *hostWalk) route(rt *caddyhttp.Route, outer map[string]bool) {
	hosts := intersect(outer, routeHosts(rt))
	for _, h := range rt.Handlers {
		switch h := h.(type) {
		case *caddyhttp.Subroute:
			w.routes(h.Routes, hosts)
		case *caddyhttp.Invoke:
			if nr := w.named[h.Name]; nr != nil && !w.seen[h.Name] {
				w.seen[h.Name] = true
				w.route(nr, hosts)
				delete(w.seen, h.Name)
			}
		default:
			if h != w.target {
				continue
			}
			w.found = true
			if hosts == nil {
				w.catchAll = true
				continue
			}
			if w.names == nil {
				w.names = map[string]bool{}
			}
			for n := range hosts {
				w.names[n] = true
			}
		}
	}
}

// routeHosts is the host constraint of one route: nil when some matcher
// set of it (or none at all) lets any host through; else the exact names
// its host matchers list (a wildcard or a placeholder constrains, but
// names nothing a link may use).
func routeHosts(rt *caddyhttp.Route) map[string]bool {
	if len(rt.MatcherSets) == 0 {
		return nil
	}
	out := map[string]bool{}
	for _, set := range rt.MatcherSets {
		var hm caddyhttp.MatchHost
		found := false
		for _, m := range set {
			switch m := m.(type) {
			case caddyhttp.MatchHost:
				hm, found = m, true
			case *caddyhttp.MatchHost:
				hm, found = *m, true
			}
		}
		if !found {
			return nil
		}
		for _, n := range hm {
			if !strings.ContainsAny(n, "*{") {
				out[strings.ToLower(n)] = true
			}
		}
	}
	return out
}

// intersect is the constraint of two nested ones (nil: any host).
func intersect(a, b map[string]bool) map[string]bool {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	out := map[string]bool{}
	for n := range a {
		if b[n] {
			out[n] = true
		}
	}
	return out
}
