package module

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// TestServedByName: a Host counts only when every route on the way to the
// admin handler names it exactly (with the port the request came in on).
func TestServedByName(t *testing.T) {
	a := new(Admin)
	other := new(Admin)
	host := func(names ...string) caddyhttp.MatcherSets {
		m := caddyhttp.MatchHost(names)
		return caddyhttp.MatcherSets{{&m}}
	}
	path := caddyhttp.MatcherSets{{caddyhttp.MatchPath{"/admin/*"}}}
	sub := func(rs ...caddyhttp.Route) *caddyhttp.Subroute { return &caddyhttp.Subroute{Routes: rs} }
	for _, c := range []struct {
		name   string
		routes caddyhttp.RouteList
		named  map[string]*caddyhttp.Route
		host   string
		want   bool
	}{
		{"a named site", caddyhttp.RouteList{{MatcherSets: host("console.example.com"), Handlers: []caddyhttp.MiddlewareHandler{sub(caddyhttp.Route{MatcherSets: path, Handlers: []caddyhttp.MiddlewareHandler{a}})}}}, nil, "Console.Example.com", true},
		{"another host", caddyhttp.RouteList{{MatcherSets: host("console.example.com"), Handlers: []caddyhttp.MiddlewareHandler{a}}}, nil, "evil.example", false},
		{"the named host on the local port", caddyhttp.RouteList{{MatcherSets: host("console.example.com"), Handlers: []caddyhttp.MiddlewareHandler{a}}}, nil, "console.example.com:8443", true},
		{"the named host on another port", caddyhttp.RouteList{{MatcherSets: host("console.example.com"), Handlers: []caddyhttp.MiddlewareHandler{a}}}, nil, "console.example.com:1", false},
		{"a catch-all site", caddyhttp.RouteList{{MatcherSets: path, Handlers: []caddyhttp.MiddlewareHandler{a}}}, nil, "console.example.com", false},
		{"a wildcard", caddyhttp.RouteList{{MatcherSets: host("*.example.com"), Handlers: []caddyhttp.MiddlewareHandler{a}}}, nil, "console.example.com", false},
		{"a placeholder", caddyhttp.RouteList{{MatcherSets: host("{env.HOST}"), Handlers: []caddyhttp.MiddlewareHandler{a}}}, nil, "console.example.com", false},
		{"also reached without a host", caddyhttp.RouteList{
			{MatcherSets: host("console.example.com"), Handlers: []caddyhttp.MiddlewareHandler{a}},
			{Handlers: []caddyhttp.MiddlewareHandler{a}},
		}, nil, "console.example.com", false},
		{"a host of another handler", caddyhttp.RouteList{{MatcherSets: host("console.example.com"), Handlers: []caddyhttp.MiddlewareHandler{other}}}, nil, "console.example.com", false},
		{"through a named route", caddyhttp.RouteList{{MatcherSets: host("console.example.com"), Handlers: []caddyhttp.MiddlewareHandler{&caddyhttp.Invoke{Name: "api"}}}},
			map[string]*caddyhttp.Route{"api": {Handlers: []caddyhttp.MiddlewareHandler{a}}}, "console.example.com", true},
		{"nested hosts that disagree", caddyhttp.RouteList{{MatcherSets: host("console.example.com"), Handlers: []caddyhttp.MiddlewareHandler{sub(caddyhttp.Route{MatcherSets: host("other.example.com"), Handlers: []caddyhttp.MiddlewareHandler{a}})}}}, nil, "console.example.com", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := &caddyhttp.Server{Routes: c.routes, NamedRoutes: c.named}
			r := httptest.NewRequest("POST", "http://x/admin/password-reset", nil)
			r.Host = c.host
			ctx := context.WithValue(r.Context(), caddyhttp.ServerCtxKey, srv)
			ctx = context.WithValue(ctx, http.LocalAddrContextKey, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8443})
			if got := servedByName(r.WithContext(ctx), a); got != c.want {
				t.Fatalf("servedByName(%q) = %v, want %v", c.host, got, c.want)
			}
		})
	}
}
