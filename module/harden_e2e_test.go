package module

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/internal/apitest"
)

// The hardening suite: a real Caddy per store, with the
// end-to-end harness (e2e), on a Caddyfile whose site writes its
// access log to a file and has a route that takes the key from every kind
// of source.

// hardRoutes are the hardening suite's routes.
const hardRoutes = `
	handle /api/* {
		apiusers {
			require listeners.invoke
		}
		reverse_proxy UPSTREAM
	}

	# Every kind of key source.
	handle /multi/* {
		apiusers {
			key_from bearer header X-API-Key query api_key cookie apikey
		}
		reverse_proxy UPSTREAM
	}
`

// hard is a running hardening Caddy.
type hard struct {
	*e2e
	accessLog string // the site's access log file
}

// startHard starts the hardening Caddy on store (storeFile or
// storeRedis); its site writes its access log, as JSON, to a file.
func startHard(t *testing.T, store string) *hard {
	t.Helper()
	accessLog := filepath.Join(t.TempDir(), "access.log")
	e := startE2E(t, e2eSite{
		top:    "\tlog {\n\t\toutput file " + accessLog + "\n\t\tformat json\n\t}",
		routes: hardRoutes, store: store,
	})
	return &hard{e2e: e, accessLog: accessLog}
}

// TestE2EHardening runs the hardening scenarios on both stores, each
// scenario with users of its own.
func TestE2EHardening(t *testing.T) {
	for _, store := range []string{"file", "redis"} {
		t.Run(store, func(t *testing.T) {
			h := startHard(t, store)
			t.Run("token strictness", h.testTokenStrictness)
			t.Run("every key source cleared", h.testEverySourceCleared)
			t.Run("identity headers survive Connection", h.testConnectionHeader)
		})
	}
}

// getWith sends GET path with the headers and returns the answer and the
// mark it carried.
func (h *hard) getWith(t *testing.T, path string, hdr http.Header) (*http.Response, []byte, string) {
	t.Helper()
	m := apitest.Mark()
	if hdr == nil {
		hdr = http.Header{}
	}
	hdr.Set(apitest.MarkHeader, m)
	res, body := h.Do(t, http.MethodGet, path, hdr, nil)
	return res, body, m
}

// testTokenStrictness: a key has one accepted spelling, and nbf is
// honoured.
func (h *hard) testTokenStrictness(t *testing.T) {
	u := h.MkUser(t, h.Root, "acme", "strict", "api_user", nil)
	h.GatewayOK(t, "the key as issued", "/api/x", u.Key, "strict")

	// The last character of an HS256 signature (43 characters) carries
	// four bits and two unused ones: three other characters decode to the
	// same bytes, and each is another spelling of the key.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, u.Key[len(u.Key)-1])
	if last < 0 || last&3 != 0 {
		t.Fatalf("the key's last character %q has its unused bits set", u.Key[len(u.Key)-1])
	}
	for extra := 1; extra <= 3; extra++ {
		variant := u.Key[:len(u.Key)-1] + string(alphabet[last|extra])
		if got := h.GatewayDenied(t, "a variant spelling", "/api/x", variant, http.StatusUnauthorized); got != "401 invalid API key" {
			t.Errorf("variant %d: body %q", extra, got)
		}
		res, body := h.API(t, http.MethodGet, "/me", variant, nil)
		apitest.WantProblem(t, "GET /me with a variant spelling", res, body, http.StatusUnauthorized, variant)
	}
	// Padding is another spelling too.
	h.GatewayDenied(t, "a padded signature", "/api/x", u.Key+"=", http.StatusUnauthorized)

	// nbf: signed with the real secret, a key not valid yet is refused;
	// one whose nbf has passed works.
	cl := accClaims(t, u.Key)
	forge := func(extra map[string]any) string {
		claims := jwt.MapClaims{}
		for k, v := range cl {
			claims[k] = v
		}
		for k, v := range extra {
			claims[k] = v
		}
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
		tok.Header["kid"] = authz.SigningKeyID(h.secret)
		s, err := tok.SignedString(h.secret)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	future := forge(map[string]any{"nbf": time.Now().Add(time.Hour).Unix()})
	if got := h.GatewayDenied(t, "nbf in the future", "/api/x", future, http.StatusUnauthorized); got != "401 invalid API key" {
		t.Errorf("nbf in the future: body %q", got)
	}
	res, body := h.API(t, http.MethodGet, "/me", future, nil)
	apitest.WantProblem(t, "GET /me with nbf in the future", res, body, http.StatusUnauthorized, future)
	h.GatewayOK(t, "nbf passed", "/api/x", forge(map[string]any{"nbf": time.Now().Add(-time.Minute).Unix()}), "strict")
}

// testEverySourceCleared: with several key sources, the key leaves every
// one of them before the upstream, whichever the gateway read it from.
func (h *hard) testEverySourceCleared(t *testing.T) {
	u := h.MkUser(t, h.Root, "acme", "sources", "api_user", nil)
	hdr := http.Header{
		"Authorization": {"Bearer " + u.Key},
		"X-Api-Key":     {u.Key},
		"Cookie":        {"apikey=" + u.Key + "; theme=dark"},
	}
	res, body, m := h.getWith(t, "/multi/x?api_key="+u.Key+"&page=2", hdr)
	h.WantOK(t, "the key in every source", res, body, m, "sources")
	got := h.Upstream.ByMark(m)
	if v := got.Header.Values("Authorization"); len(v) != 0 {
		t.Errorf("Authorization reached the upstream: %q", v)
	}
	if v := got.Header.Values("X-Api-Key"); len(v) != 0 {
		t.Errorf("X-API-Key reached the upstream: %q", v)
	}
	if got.URL.RawQuery != "page=2" {
		t.Errorf("query at the upstream %q, want page=2", got.URL.RawQuery)
	}
	if v := got.Header.Values("Cookie"); len(v) != 1 || v[0] != "theme=dark" {
		t.Errorf("Cookie at the upstream %q, want theme=dark", v)
	}
	// A value in a source the key was not read from goes too (it might be
	// another key).
	other := h.MkUser(t, h.Root, "acme", "sources-other", "api_user", nil)
	res, body, m = h.getWith(t, "/multi/x?api_key="+other.Key, http.Header{"Authorization": {"Bearer " + u.Key}})
	h.WantOK(t, "two keys", res, body, m, "sources")
	if got := h.Upstream.ByMark(m); strings.Contains(got.URL.RawQuery, other.Key) || got.URL.RawQuery != "" {
		t.Errorf("the other key reached the upstream: %q", got.URL.RawQuery)
	}
}

// testConnectionHeader: naming the identity headers in Connection does not
// keep them from the upstream.
func (h *hard) testConnectionHeader(t *testing.T) {
	u := h.MkUser(t, h.Root, "acme", "conn", "api_user", nil)
	for _, conn := range []string{
		"X-Api-User-Id, X-Api-User-Name, X-Api-Workspace, X-Api-Role, X-Api-Key-Id",
		"keep-alive, x-api-role",
	} {
		res, body, m := h.getWith(t, "/api/x", http.Header{"Authorization": {"Bearer " + u.Key}, "Connection": {conn}})
		h.WantOK(t, "Connection: "+conn, res, body, m, "conn")
		got := h.Upstream.ByMark(m)
		for name, want := range map[string]string{
			"X-Api-User-Id": u.ID, "X-Api-User-Name": "conn", "X-Api-Workspace": "acme", "X-Api-Role": "api_user", "X-Api-Key-Id": u.KeyID,
		} {
			if v := got.Header.Values(name); len(v) != 1 || v[0] != want {
				t.Errorf("Connection: %s: %s at the upstream = %q, want %q", conn, name, v, want)
			}
		}
	}
}
