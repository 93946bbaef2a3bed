package module

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
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
			t.Run("no secret in the access log", h.testAccessLog)
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

// accessLine is what the test reads of an access log line.
type accessLine struct {
	Msg     string `json:"msg"`
	Logger  string `json:"logger"`
	Status  int    `json:"status"`
	UserID  string `json:"user_id"`
	Request struct {
		Method  string              `json:"method"`
		URI     string              `json:"uri"`
		Headers map[string][]string `json:"headers"`
	} `json:"request"`
}

// testAccessLog: with a plain log directive, Caddy's access log holds no
// key from any source the gateway reads, and no one-time token of the
// console's links, for admitted and refused calls alike; every call still
// has its line.
func (h *hard) testAccessLog(t *testing.T) {
	live := h.MkUser(t, h.Root, "acme", "log-live", "api_user", nil)
	revoked := h.MkUser(t, h.Root, "acme", "log-revoked", "api_user", nil)
	basic := h.MkUser(t, h.Root, "acme", "log-basic", "api_basic", nil)
	res, body := h.Call(t, http.MethodDelete, "/admin/workspaces/acme/users/"+revoked.ID+"/keys/"+revoked.KeyID, h.Root, nil)
	if res.StatusCode != http.StatusNoContent {
		t.Fatalf("revoking: %d %s", res.StatusCode, body)
	}
	const token = "one-time-token-0123456789abcdefghij"
	secrets := []string{live.Key, revoked.Key, basic.Key, token, "not-a-key-but-secret-0123456789"}

	type call struct {
		what, path string
		hdr        http.Header
		status     int
		redacted   string // where the line must say REDACTED: a header name, or "uri"
	}
	var calls []call
	for _, k := range []struct {
		key    string
		status int
	}{{live.Key, http.StatusOK}, {revoked.Key, http.StatusUnauthorized}, {secrets[4], http.StatusUnauthorized}} {
		calls = append(calls,
			call{"bearer", "/multi/x", http.Header{"Authorization": {"Bearer " + k.key}}, k.status, "Authorization"},
			call{"X-API-Key", "/multi/x", http.Header{"X-Api-Key": {k.key}}, k.status, "X-Api-Key"},
			call{"query", "/multi/x?page=1&api_key=" + url.QueryEscape(k.key), nil, k.status, "uri"},
			call{"cookie", "/multi/x", http.Header{"Cookie": {"apikey=" + k.key}}, k.status, "Cookie"},
			call{"X-API-Key at the admin API", "/admin/me", http.Header{"X-Api-Key": {k.key}}, k.status, "X-Api-Key"},
		)
	}
	calls = append(calls,
		call{"X-API-Key, forbidden", "/api/x", http.Header{"X-Api-Key": {basic.Key}}, http.StatusForbidden, "X-Api-Key"},
		call{"a console link's token", "/admin/accept?token=" + token, nil, 0, "uri"},
	)
	marks := map[string]call{}
	for _, c := range calls {
		res, _, m := h.getWith(t, c.path, c.hdr)
		if c.status != 0 && res.StatusCode != c.status {
			t.Errorf("%s %s: %d, want %d", c.what, c.path, res.StatusCode, c.status)
		}
		c.status = res.StatusCode
		marks[m] = c
	}

	// Each line is written once its request is done.
	var lines map[string]accessLine
	var raw []byte
	apitest.Poll(t, "an access log line for every call", 10*time.Second, func() bool {
		var err error
		if raw, err = os.ReadFile(h.accessLog); err != nil {
			return false
		}
		lines = map[string]accessLine{}
		for _, l := range bytes.Split(raw, []byte("\n")) {
			var al accessLine
			if json.Unmarshal(l, &al) != nil {
				continue
			}
			if m := al.Request.Headers[apitest.MarkHeader]; len(m) == 1 {
				if _, ours := marks[m[0]]; ours {
					if _, twice := lines[m[0]]; twice {
						t.Errorf("two access log lines for %s", marks[m[0]].what)
					}
					lines[m[0]] = al
				}
			}
		}
		return len(lines) == len(marks)
	})
	for _, s := range secrets {
		apitest.NoSecrets(t, "the access log", raw, s)
		if strings.Contains(string(raw), url.QueryEscape(s)) {
			t.Errorf("the access log holds a secret, escaped: %.12q…", s)
		}
	}
	for m, c := range marks {
		al := lines[m]
		if al.Msg != "handled request" || !strings.HasPrefix(al.Logger, "http.log.access") || al.Status != c.status || al.Request.Method != http.MethodGet {
			t.Errorf("%s: line %+v, want a handled request with status %d", c.what, al, c.status)
		}
		switch c.redacted {
		case "uri":
			if !strings.Contains(al.Request.URI, "=REDACTED") || !strings.HasPrefix(al.Request.URI, strings.SplitN(c.path, "?", 2)[0]) {
				t.Errorf("%s: uri %q, want the path with its secret REDACTED", c.what, al.Request.URI)
			}
		default:
			if v := al.Request.Headers[c.redacted]; len(v) != 1 || v[0] != "REDACTED" {
				t.Errorf("%s: header %s = %q, want REDACTED", c.what, c.redacted, v)
			}
		}
		if c.status == http.StatusOK && strings.HasPrefix(c.path, "/multi") && al.UserID != live.ID {
			t.Errorf("%s: user_id %q, want %s", c.what, al.UserID, live.ID)
		}
	}
}
