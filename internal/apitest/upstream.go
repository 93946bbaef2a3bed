package apitest

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// MarkHeader is the request header Site.Gateway sets to a fresh value, so
// that a request can be found at the upstream among those of parallel
// subtests (Upstream.ByMark).
const MarkHeader = "X-Test-Mark"

// Upstream is a real HTTP server standing for the API behind the gateway.
// It reads each request's body, remembers the request, and answers 200
// "hello <X-Api-User-Name>" as text.
type Upstream struct {
	// URL is http://127.0.0.1:<port>; Addr is the host:port alone.
	URL, Addr string

	mu   sync.Mutex
	reqs []*http.Request
}

// StartUpstream starts an upstream that is closed when tb ends.
func StartUpstream(tb testing.TB) *Upstream {
	tb.Helper()
	u := &Upstream{}
	srv := httptest.NewServer(u)
	tb.Cleanup(srv.Close)
	u.URL = srv.URL
	u.Addr = strings.TrimPrefix(srv.URL, "http://")
	return u
}

// ServeHTTP implements http.Handler.
func (u *Upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	u.mu.Lock()
	u.reqs = append(u.reqs, r.Clone(r.Context()))
	u.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintf(w, "hello %s", r.Header.Get("X-Api-User-Name"))
}

// Last returns the last request the upstream received, failing tb when it
// received none.
func (u *Upstream) Last(tb testing.TB) *http.Request {
	tb.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.reqs) == 0 {
		tb.Fatal("the upstream saw no request")
	}
	return u.reqs[len(u.reqs)-1]
}

// ByMark returns the request the upstream received with MarkHeader m, or
// nil.
func (u *Upstream) ByMark(m string) *http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, r := range u.reqs {
		if r.Header.Get(MarkHeader) == m {
			return r
		}
	}
	return nil
}
