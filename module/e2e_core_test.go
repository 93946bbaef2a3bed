package module

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/internal/apitest"
)

// The acceptance suite: one in-process Caddy per store (the
// embedded file store, then a real redis-server), configured with the
// quickstart's admin API and gateway plus routes that exercise workspace,
// roles and require, proxying to a recording upstream. The scenarios that
// share a Caddy run as parallel subtests, each with its own users, so the
// waits for expiry and grace overlap; what takes the store away (a reload,
// Redis stopped) runs alone afterwards.

// accRoutes are the acceptance Caddy's routes: the quickstart's, and one
// per gateway rule.
const accRoutes = `
	# The quickstart's route.
	handle /api/* {
		apiusers {
			require listeners.invoke
		}
		reverse_proxy UPSTREAM
	}

	# Any active user with a live key.
	handle /any/* {
		apiusers
		reverse_proxy UPSTREAM
	}

	# Only workspace acme.
	handle /acme-only/* {
		apiusers {
			workspace acme
		}
		reverse_proxy UPSTREAM
	}

	# Only admins.
	handle /admins/* {
		apiusers {
			roles admin superadmin
		}
		reverse_proxy UPSTREAM
	}
`

// startAcc starts the acceptance Caddy on store (storeFile or
// storeRedis; a persistent Redis, so the data outlives a stop and
// restart).
func startAcc(t *testing.T, store string) *e2e {
	t.Helper()
	return startE2E(t, e2eSite{routes: accRoutes, store: store, redisArgs: persistentRedis})
}

// claimsOf decodes the payload of a key without verifying it.
func accClaims(t *testing.T, key string) map[string]any {
	t.Helper()
	parts := strings.Split(key, ".")
	if len(parts) != 3 {
		t.Fatalf("key %q is not a JWT", key)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func accB64JSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestE2EAcceptance(t *testing.T) {
	for _, store := range []string{"file", "redis"} {
		t.Run(store, func(t *testing.T) {
			a := startAcc(t, store)
			var down downUsers
			if store == "redis" {
				down = a.prepareStoreDown(t)
			}
			// Scenarios that share the Caddy, each with its own users.
			t.Run("parallel", func(t *testing.T) {
				t.Run("flow", a.testFlow)
				t.Run("unauthorized", a.testUnauthorized)
				t.Run("expires_at", a.testExpiresAt)
				t.Run("forbidden", a.testForbidden)
				t.Run("lifecycle", a.testLifecycle)
				t.Run("keys", a.testKeys)
				t.Run("grace", a.testGrace)
				t.Run("rules", a.testRules)
				t.Run("bad_input", a.testBadInput)
			})
			// Scenarios that take the store away, alone.
			switch store {
			case "file":
				t.Run("restart", a.testRestart)
			case "redis":
				t.Run("store_down", func(t *testing.T) { a.testStoreDown(t, down) })
			}
		})
	}
}

// testFlow: bootstrap → workspace → api_user → key → calls with either
// header; the upstream learns who called, never the key, never a spoofed
// identity.
func (a *e2e) testFlow(t *testing.T) {
	t.Parallel()
	// The bootstrapped superadmin.
	res, body := a.API(t, http.MethodGet, "/me", a.Root, nil)
	me := apitest.Decode[struct {
		User apitest.User `json:"user"`
	}](t, "GET /me as root", res, body, http.StatusOK)
	if me.User.Role != "superadmin" || me.User.Username != "root" || me.User.Workspace != "acme" {
		t.Fatalf("root = %s", body)
	}

	a.MkWorkspace(t, "flow")
	res, body = a.API(t, http.MethodGet, "/workspaces/flow", a.Root, nil)
	apitest.Decode[map[string]any](t, "GET the new workspace", res, body, http.StatusOK)

	// The api_user, then its key, in two steps.
	res, body = a.API(t, http.MethodPost, "/workspaces/flow/users", a.Root, map[string]any{
		"username": "station", "kind": "api", "role": "api_user",
	})
	u := apitest.Decode[apitest.User](t, "creating station", res, body, http.StatusCreated)
	if u.Key != "" || u.Status != "active" || u.Workspace != "flow" || !strings.HasPrefix(u.ID, "usr_") {
		t.Fatalf("created station = %s", body)
	}
	k := a.MkKey(t, a.Root, u, map[string]any{"name": "main"})

	wantUpstream := func(t *testing.T, m string) {
		t.Helper()
		up := a.Upstream.ByMark(m)
		if up == nil {
			t.Fatal("the upstream saw no request")
		}
		want := map[string]string{
			"X-Api-User-Id":   u.ID,
			"X-Api-User-Name": "station",
			"X-Api-Workspace": "flow",
			"X-Api-Role":      "api_user",
			"X-Api-Key-Id":    k.ID,
		}
		for h, v := range want {
			if got := up.Header.Values(h); len(got) != 1 || got[0] != v {
				t.Errorf("upstream %s = %q, want [%q]", h, got, v)
			}
		}
		for _, h := range []string{"Authorization", "X-Api-Key"} {
			if got := up.Header.Values(h); len(got) != 0 {
				t.Errorf("upstream saw %s: %q", h, got)
			}
		}
		for h, vs := range up.Header {
			for _, v := range vs {
				if strings.HasPrefix(v, "spoofed") || v == "superadmin" {
					t.Errorf("upstream saw a spoofed identity: %s: %q", h, v)
				}
				if strings.Contains(v, k.Key) || strings.Contains(v, strings.Split(k.Key, ".")[2]) {
					t.Errorf("upstream saw the key in %s", h)
				}
			}
		}
	}
	// The client claims to be someone else, in every identity header and
	// in several values.
	spoof := func(h http.Header) http.Header {
		for _, name := range []string{"X-Api-User-Id", "X-Api-User-Name", "X-Api-Workspace", "X-Api-Role", "X-Api-Key-Id"} {
			h[name] = []string{"spoofed", "spoofed-too"}
		}
		h.Set("x-api-role", "superadmin")
		// Spellings some upstreams (CGI, PHP, some proxies) read as the
		// same header.
		h["X_Api_User_Id"] = []string{"spoofed-underscore"}
		h["X.Api.Role"] = []string{"spoofed-dot"}
		return h
	}
	for _, c := range []struct {
		name string
		h    http.Header
	}{
		{"bearer", http.Header{"Authorization": {"Bearer " + k.Key}}},
		{"x-api-key", http.Header{"X-Api-Key": {k.Key}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := apitest.Mark()
			h := spoof(c.h)
			h.Set("X-Test-Mark", m)
			res, body := a.Do(t, http.MethodGet, "/api/hello", h, nil)
			a.WantOK(t, c.name, res, body, m, "station")
			wantUpstream(t, m)
		})
	}

	// The key is shown in full at creation only: reading the user and its
	// keys does not show it.
	for _, p := range []string{"/workspaces/flow/users/" + u.ID, "/workspaces/flow/users/" + u.ID + "/keys", "/workspaces/flow/users"} {
		res, body := a.API(t, http.MethodGet, p, a.Root, nil)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", p, res.StatusCode, body)
		}
		apitest.NoSecrets(t, "GET "+p, body, k.Key)
	}
	res, body = a.API(t, http.MethodGet, "/workspaces/flow/users/"+u.ID+"/keys", a.Root, nil)
	keys := apitest.Decode[struct {
		Items []apitest.Key `json:"items"`
	}](t, "listing keys", res, body, http.StatusOK)
	if len(keys.Items) != 1 || keys.Items[0].ID != k.ID || keys.Items[0].Name != "main" {
		t.Fatalf("keys = %s", body)
	}
}

// testUnauthorized: every way of not presenting a good key is a 401 with
// the invalid_token challenge, whose body never holds the key.
func (a *e2e) testUnauthorized(t *testing.T) {
	t.Parallel()
	const ws = "acme"
	live := a.MkUser(t, a.Root, ws, "unauth-live", "api_user", nil)
	a.GatewayOK(t, "the live key", "/api/x", live.Key, "unauth-live")

	parts := strings.Split(live.Key, ".")
	var hdr map[string]any
	if b, err := base64.RawURLEncoding.DecodeString(parts[0]); err != nil || json.Unmarshal(b, &hdr) != nil {
		t.Fatalf("key header: %v", err)
	}
	kid, _ := hdr["kid"].(string)
	if kid != authz.SigningKeyID(a.secret) {
		t.Fatalf("key kid %q, want the store secret's %q", kid, authz.SigningKeyID(a.secret))
	}
	cl := accClaims(t, live.Key)

	// The signature with one character changed in its middle.
	sig := []byte(parts[2])
	i := len(sig) / 2
	if sig[i] == 'A' {
		sig[i] = 'B'
	} else {
		sig[i] = 'A'
	}
	tamperedSig := parts[0] + "." + parts[1] + "." + string(sig)

	// Claims changed to the superadmin's, the signature kept.
	rootCl := accClaims(t, a.Root)
	evil := map[string]any{}
	for k, v := range cl {
		evil[k] = v
	}
	evil["sub"] = rootCl["sub"]
	tamperedClaims := parts[0] + "." + accB64JSON(t, evil) + "." + parts[2]

	// The same claims under another secret: with its own kid, and with
	// the real kid.
	other, err := authz.NewSigner(authz.SignerConfig{Secret: []byte("another-secret-0123456789abcdef0123456789")})
	if err != nil {
		t.Fatal(err)
	}
	liveClaims := authz.Claims{
		UserID: cl["sub"].(string), Workspace: cl["ws"].(string), KeyID: cl["jti"].(string),
		IssuedAt: int64(cl["iat"].(float64)),
	}
	otherSecret, err := other.Sign(liveClaims, "")
	if err != nil {
		t.Fatal(err)
	}
	forge := func(method jwt.SigningMethod, secret []byte, claims jwt.MapClaims) string {
		tok := jwt.NewWithClaims(method, claims)
		tok.Header["kid"] = kid
		s, err := tok.SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	mapClaims := jwt.MapClaims{}
	for k, v := range cl {
		mapClaims[k] = v
	}
	otherSecretRealKid := forge(jwt.SigningMethodHS256, []byte("another-secret-0123456789abcdef0123456789"), mapClaims)
	// The right secret, another HMAC algorithm: the algorithm is pinned.
	algSwitch := forge(jwt.SigningMethodHS512, a.secret, mapClaims)
	// alg none, without a signature and with the real one.
	noneHdr := accB64JSON(t, map[string]any{"alg": "none", "typ": "JWT", "kid": kid})
	algNone := noneHdr + "." + parts[1] + "."
	algNoneSig := noneHdr + "." + parts[1] + "." + parts[2]

	// Signed with the store's own secret, with an exp in the past.
	signer, err := authz.NewSigner(authz.SignerConfig{Secret: a.secret})
	if err != nil {
		t.Fatal(err)
	}
	expiredCl := liveClaims
	expiredCl.ExpiresAt = time.Now().Add(-time.Minute).Unix()
	expired, err := signer.Sign(expiredCl, "")
	if err != nil {
		t.Fatal(err)
	}
	// The same secret, claims of a key that never was.
	unknownCl := liveClaims
	unknownCl.KeyID = "key_00000000000000000000000000"
	unknown, err := signer.Sign(unknownCl, "")
	if err != nil {
		t.Fatal(err)
	}

	// Keys of users that are not active, and a revoked key.
	revoked := a.MkUser(t, a.Root, ws, "unauth-revoked", "api_user", nil)
	inactive := a.MkUser(t, a.Root, ws, "unauth-inactive", "api_user", nil)
	trashed := a.MkUser(t, a.Root, ws, "unauth-trashed", "api_user", nil)
	deleted := a.MkUser(t, a.Root, ws, "unauth-deleted", "api_user", nil)
	for _, u := range []apitest.User{revoked, inactive, trashed, deleted} {
		a.GatewayOK(t, u.Username+" before", "/api/x", u.Key, u.Username) // cached now
	}
	res, body := a.API(t, http.MethodDelete, "/workspaces/acme/users/"+revoked.ID+"/keys/"+revoked.KeyID, a.Root, nil)
	if res.StatusCode != http.StatusNoContent {
		t.Fatalf("revoking: %d %s", res.StatusCode, body)
	}
	a.SetStatus(t, a.Root, inactive, "inactive")
	a.SetStatus(t, a.Root, trashed, "trash")
	a.SetStatus(t, a.Root, deleted, "trash")
	res, body = a.API(t, http.MethodDelete, "/workspaces/acme/users/"+deleted.ID, a.Root, nil)
	if res.StatusCode != http.StatusNoContent {
		t.Fatalf("deleting: %d %s", res.StatusCode, body)
	}

	// One answer for every invalid key: only a missing and an
	// expired key say so, so a stolen key tells nothing of its account.
	const invalid = "401 invalid API key"
	cases := []struct {
		name, key, why string
	}{
		{"garbage", "not-a-key-" + strings.Repeat("x", 40), invalid},
		{"three garbage parts", "aaaa.bbbb.cccc", invalid},
		{"tampered signature", tamperedSig, invalid},
		{"tampered claims", tamperedClaims, invalid},
		{"another secret", otherSecret, invalid},
		{"another secret, real kid", otherSecretRealKid, invalid},
		{"alg HS512", algSwitch, invalid},
		{"alg none", algNone, invalid},
		{"alg none with signature", algNoneSig, invalid},
		{"expired", expired, "401 API key expired"},
		{"unknown key id", unknown, invalid},
		{"revoked", revoked.Key, invalid},
		{"inactive user", inactive.Key, invalid},
		{"trashed user", trashed.Key, invalid},
		{"deleted user", deleted.Key, invalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, path := range []string{"/api/x", "/any/x"} {
				got := a.GatewayDenied(t, c.name, path, c.key, http.StatusUnauthorized)
				if got != c.why {
					t.Errorf("%s: body %q, want %q", path, got, c.why)
				}
			}
			// The same key in X-API-Key.
			m := apitest.Mark()
			res, body := a.Do(t, http.MethodGet, "/api/x", http.Header{"X-Api-Key": {c.key}, "X-Test-Mark": {m}}, nil)
			a.WantDenied(t, "X-API-Key", res, body, m, http.StatusUnauthorized, c.key)
			if string(body) != c.why {
				t.Errorf("X-API-Key: body %q, want %q", body, c.why)
			}
			// The admin API refuses it the same way.
			res, body = a.API(t, http.MethodGet, "/me", c.key, nil)
			if p := apitest.WantProblem(t, "GET /me", res, body, http.StatusUnauthorized, c.key); p.Detail != strings.TrimPrefix(c.why, "401 ") {
				t.Errorf("GET /me: detail %q, want %q", p.Detail, strings.TrimPrefix(c.why, "401 "))
			}
		})
	}
	t.Run("no key", func(t *testing.T) {
		for _, h := range []http.Header{
			{},
			{"Authorization": {"Bearer "}},
			{"Authorization": {"Basic dXNlcjpwYXNz"}},
			{"X-Api-Key": {""}},
		} {
			m := apitest.Mark()
			h.Set("X-Test-Mark", m)
			res, body := a.Do(t, http.MethodGet, "/api/x", h, nil)
			a.WantDenied(t, fmt.Sprint(h), res, body, m, http.StatusUnauthorized)
			if string(body) != "401 no API key" {
				t.Errorf("%v: body %q", h, body)
			}
		}
		res, body := a.API(t, http.MethodGet, "/me", "", nil)
		apitest.WantProblem(t, "GET /me", res, body, http.StatusUnauthorized)
	})
	// The live key still works after all this.
	a.GatewayOK(t, "the live key after", "/api/x", live.Key, "unauth-live")
}

// testExpiresAt: a key made with expires_at works until then, and is a 401
// from then on.
func (a *e2e) testExpiresAt(t *testing.T) {
	t.Parallel()
	u := a.MkUser(t, a.Root, "acme", "expiring", "api_user", nil)
	// Two to three seconds ahead, on a whole second (the exp claim).
	at := time.Now().Add(2 * time.Second).Truncate(time.Second).Add(time.Second)
	k := a.MkKey(t, a.Root, u, map[string]any{"name": "short", "expires_at": at.Format(time.RFC3339)})
	if k.ExpiresAt == nil || !k.ExpiresAt.Equal(at) {
		t.Fatalf("expires_at = %v, want %v", k.ExpiresAt, at)
	}
	if exp, _ := accClaims(t, k.Key)["exp"].(float64); int64(exp) != at.Unix() {
		t.Fatalf("exp claim = %v, want %d", exp, at.Unix())
	}
	a.GatewayOK(t, "before expiry", "/api/x", k.Key, "expiring")
	var body []byte
	expiredAt := apitest.Poll(t, "the key expires", time.Until(at)+5*time.Second, func() bool {
		var res *http.Response
		var m string
		res, body, m = a.Gateway(t, "/api/x", k.Key)
		if res.StatusCode == http.StatusOK {
			return false
		}
		a.WantDenied(t, "expired", res, body, m, http.StatusUnauthorized, k.Key)
		return true
	})
	if expiredAt.Before(at) {
		t.Errorf("the key stopped working at %v, before its expires_at %v", expiredAt, at)
	}
	if string(body) != "401 API key expired" {
		t.Errorf("body = %q", body)
	}
	// The user's first key never expires.
	a.GatewayOK(t, "the other key", "/api/x", u.Key, "expiring")

	// An expiry in the past is refused.
	res, body := a.API(t, http.MethodPost, "/workspaces/acme/users/"+u.ID+"/keys", a.Root,
		map[string]any{"name": "past", "expires_at": time.Now().Add(-time.Hour).Format(time.RFC3339)})
	apitest.WantProblem(t, "expires_at in the past", res, body, http.StatusBadRequest)
}

// testForbidden: authenticated callers the route does not admit get 403
// with the insufficient_scope challenge.
func (a *e2e) testForbidden(t *testing.T) {
	t.Parallel()
	a.MkWorkspace(t, "elsewhere")
	outsider := a.MkUser(t, a.Root, "elsewhere", "outsider", "api_user", nil)
	station := a.MkUser(t, a.Root, "acme", "forbid-station", "api_user", nil)
	viewer := a.MkUser(t, a.Root, "acme", "forbid-viewer", "viewer", nil)
	adm := a.MkUser(t, a.Root, "acme", "forbid-admin", "admin", nil)

	t.Run("wrong workspace", func(t *testing.T) {
		got := a.GatewayDenied(t, "outsider on /acme-only", "/acme-only/x", outsider.Key, http.StatusForbidden)
		if got != "403 the API key's workspace may not use this route" {
			t.Errorf("body %q", got)
		}
		a.GatewayOK(t, "outsider on /api", "/api/x", outsider.Key, "outsider")
		a.GatewayOK(t, "acme's station on /acme-only", "/acme-only/x", station.Key, "forbid-station")
		a.GatewayOK(t, "the superadmin on /acme-only", "/acme-only/x", a.Root, "root")
	})
	t.Run("role not listed", func(t *testing.T) {
		got := a.GatewayDenied(t, "api_user on /admins", "/admins/x", station.Key, http.StatusForbidden)
		if got != "403 the API user's role may not use this route" {
			t.Errorf("body %q", got)
		}
		a.GatewayDenied(t, "viewer on /admins", "/admins/x", viewer.Key, http.StatusForbidden)
		a.GatewayOK(t, "admin on /admins", "/admins/x", adm.Key, "forbid-admin")
	})
	t.Run("permission missing", func(t *testing.T) {
		got := a.GatewayDenied(t, "viewer on /api", "/api/x", viewer.Key, http.StatusForbidden)
		if got != "403 missing permission listeners.invoke" {
			t.Errorf("body %q", got)
		}
		a.GatewayOK(t, "viewer on /any", "/any/x", viewer.Key, "forbid-viewer")
		// Given the permission, the viewer passes on its very next request.
		res, body := a.API(t, http.MethodPatch, "/workspaces/acme/users/"+viewer.ID, a.Root,
			map[string]any{"permissions": []string{"listeners.invoke"}})
		apitest.Decode[apitest.User](t, "granting listeners.invoke", res, body, http.StatusOK)
		a.GatewayOK(t, "viewer with listeners.invoke", "/api/x", viewer.Key, "forbid-viewer")
		// And taken away, it is refused again at once.
		res, body = a.API(t, http.MethodPatch, "/workspaces/acme/users/"+viewer.ID, a.Root,
			map[string]any{"permissions": []string{}})
		apitest.Decode[apitest.User](t, "removing listeners.invoke", res, body, http.StatusOK)
		a.GatewayDenied(t, "viewer without listeners.invoke", "/api/x", viewer.Key, http.StatusForbidden)
	})
}

// testLifecycle: inactive → 401; active → 200; delete while active → 409;
// trash → 401; restore → 200; delete from trash → 401 for good.
func (a *e2e) testLifecycle(t *testing.T) {
	t.Parallel()
	u := a.MkUser(t, a.Root, "acme", "cycle", "api_user", nil)
	path := "/workspaces/acme/users/" + u.ID
	a.GatewayOK(t, "new user", "/api/x", u.Key, "cycle")

	a.SetStatus(t, a.Root, u, "inactive")
	a.GatewayDenied(t, "inactive", "/api/x", u.Key, http.StatusUnauthorized)
	a.SetStatus(t, a.Root, u, "active")
	a.GatewayOK(t, "active again", "/api/x", u.Key, "cycle")

	res, body := a.API(t, http.MethodDelete, path, a.Root, nil)
	apitest.WantProblem(t, "DELETE an active user", res, body, http.StatusConflict)
	a.GatewayOK(t, "after the refused delete", "/api/x", u.Key, "cycle")

	a.SetStatus(t, a.Root, u, "trash")
	a.GatewayDenied(t, "trashed", "/api/x", u.Key, http.StatusUnauthorized)
	res, body = a.API(t, http.MethodGet, path, a.Root, nil)
	if got := apitest.Decode[apitest.User](t, "GET trashed", res, body, http.StatusOK); got.Status != "trash" {
		t.Fatalf("trashed user = %s", body)
	}
	a.SetStatus(t, a.Root, u, "active")
	a.GatewayOK(t, "restored", "/api/x", u.Key, "cycle")

	a.SetStatus(t, a.Root, u, "trash")
	res, body = a.API(t, http.MethodDelete, path, a.Root, nil)
	if res.StatusCode != http.StatusNoContent || len(body) != 0 {
		t.Fatalf("DELETE from trash: %d %s", res.StatusCode, body)
	}
	a.GatewayDenied(t, "deleted", "/api/x", u.Key, http.StatusUnauthorized)
	res, body = a.API(t, http.MethodGet, path, a.Root, nil)
	apitest.WantProblem(t, "GET deleted", res, body, http.StatusNotFound)
	res, body = a.API(t, http.MethodGet, path+"/keys", a.Root, nil)
	apitest.WantProblem(t, "GET keys of deleted", res, body, http.StatusNotFound)
	if slices.Contains(a.Usernames(t, "acme"), "cycle") {
		t.Fatal("the deleted user is still listed")
	}
	// The username is free again; the new user is another user, and the
	// old key does not come back to life with it.
	again := a.MkUser(t, a.Root, "acme", "cycle", "api_user", nil)
	if again.ID == u.ID {
		t.Fatal("the new user has the deleted one's id")
	}
	a.GatewayDenied(t, "the deleted user's key", "/api/x", u.Key, http.StatusUnauthorized)
	a.GatewayOK(t, "the new user's key", "/api/x", again.Key, "cycle")
}

// testKeys: revoke, regenerate and reveal.
func (a *e2e) testKeys(t *testing.T) {
	t.Parallel()
	u := a.MkUser(t, a.Root, "acme", "keyholder", "api_user", nil)
	keysPath := "/workspaces/acme/users/" + u.ID + "/keys/"

	t.Run("revoke", func(t *testing.T) {
		k := a.MkKey(t, a.Root, u, map[string]any{"name": "to-revoke"})
		a.GatewayOK(t, "before", "/api/x", k.Key, "keyholder") // cached
		res, body := a.API(t, http.MethodDelete, keysPath+k.ID, a.Root, nil)
		if res.StatusCode != http.StatusNoContent {
			t.Fatalf("revoking: %d %s", res.StatusCode, body)
		}
		got := a.GatewayDenied(t, "the very next request", "/api/x", k.Key, http.StatusUnauthorized)
		if got != "401 invalid API key" {
			t.Errorf("body %q", got)
		}
		a.GatewayOK(t, "the user's other key", "/api/x", u.Key, "keyholder")
		res, body = a.API(t, http.MethodDelete, keysPath+k.ID, a.Root, nil)
		apitest.WantProblem(t, "revoking again", res, body, http.StatusNotFound)
	})
	t.Run("regenerate", func(t *testing.T) {
		old := a.MkKey(t, a.Root, u, map[string]any{"name": "to-regenerate"})
		a.GatewayOK(t, "old before", "/api/x", old.Key, "keyholder")
		res, body := a.API(t, http.MethodPost, keysPath+old.ID+"/regenerate", a.Root, nil)
		nk := apitest.Decode[apitest.Key](t, "regenerating", res, body, http.StatusCreated)
		if nk.Key == "" || nk.ID == old.ID || nk.Key == old.Key {
			t.Fatalf("regenerated = %s", body)
		}
		a.GatewayDenied(t, "old after", "/api/x", old.Key, http.StatusUnauthorized)
		a.GatewayOK(t, "new", "/api/x", nk.Key, "keyholder")
		res, body = a.API(t, http.MethodPost, keysPath+old.ID+"/regenerate", a.Root, nil)
		apitest.WantProblem(t, "regenerating a revoked key", res, body, http.StatusNotFound)
	})
	t.Run("reveal", func(t *testing.T) {
		k := a.MkKey(t, a.Root, u, map[string]any{"name": "to-reveal"})
		res, body := a.API(t, http.MethodPost, keysPath+k.ID+"/reveal", a.Root, nil)
		rv := apitest.Decode[apitest.Key](t, "revealing", res, body, http.StatusOK)
		if rv.Key != k.Key || rv.ID != k.ID {
			t.Fatalf("revealed %q (id %s), created %q (id %s)", rv.Key, rv.ID, k.Key, k.ID)
		}
		// The first key, issued with the user, reveals the same too.
		res, body = a.API(t, http.MethodPost, keysPath+u.KeyID+"/reveal", a.Root, nil)
		if rv := apitest.Decode[apitest.Key](t, "revealing the first key", res, body, http.StatusOK); rv.Key != u.Key {
			t.Fatalf("revealed the first key as %q, created %q", rv.Key, u.Key)
		}
		// An editor may not reveal; the user itself neither.
		ed := a.MkUser(t, a.Root, "acme", "key-editor", "editor", nil)
		res, body = a.API(t, http.MethodPost, keysPath+k.ID+"/reveal", ed.Key, nil)
		apitest.WantProblem(t, "reveal as editor", res, body, http.StatusForbidden, k.Key)
		res, body = a.API(t, http.MethodPost, keysPath+k.ID+"/reveal", u.Key, nil)
		apitest.WantProblem(t, "reveal as the user", res, body, http.StatusForbidden, k.Key)
		// A revoked key is not revealed again.
		res, body = a.API(t, http.MethodDelete, keysPath+k.ID, a.Root, nil)
		if res.StatusCode != http.StatusNoContent {
			t.Fatalf("revoking: %d %s", res.StatusCode, body)
		}
		res, body = a.API(t, http.MethodPost, keysPath+k.ID+"/reveal", a.Root, nil)
		apitest.WantProblem(t, "revealing a revoked key", res, body, http.StatusNotFound, k.Key)
	})
}

// testGrace: a key regenerated with a grace period keeps working until it
// ends, beside the new one.
func (a *e2e) testGrace(t *testing.T) {
	t.Parallel()
	u := a.MkUser(t, a.Root, "acme", "graceful", "api_user", nil)
	a.GatewayOK(t, "old before", "/api/x", u.Key, "graceful")
	start := time.Now()
	res, body := a.API(t, http.MethodPost, "/workspaces/acme/users/"+u.ID+"/keys/"+u.KeyID+"/regenerate", a.Root,
		map[string]string{"grace": "3s"})
	nk := apitest.Decode[apitest.Key](t, "regenerating with grace", res, body, http.StatusCreated)
	if nk.Key == "" || nk.ID == u.KeyID {
		t.Fatalf("regenerated = %s", body)
	}
	a.GatewayOK(t, "old in the grace period", "/api/x", u.Key, "graceful")
	a.GatewayOK(t, "new in the grace period", "/api/x", nk.Key, "graceful")

	res, body = a.API(t, http.MethodGet, "/workspaces/acme/users/"+u.ID+"/keys", a.Root, nil)
	keys := apitest.Decode[struct {
		Items []apitest.Key `json:"items"`
	}](t, "listing keys", res, body, http.StatusOK)
	var oldMeta *apitest.Key
	for i := range keys.Items {
		if keys.Items[i].ID == u.KeyID {
			oldMeta = &keys.Items[i]
		}
	}
	if oldMeta == nil || oldMeta.RevokesAt == nil || oldMeta.RevokesAt.Before(start.Add(3*time.Second-time.Second)) {
		t.Fatalf("the old key's metadata in the grace period: %s", body)
	}

	ended := apitest.Poll(t, "the grace period ends", 8*time.Second, func() bool {
		res, body, m := a.Gateway(t, "/api/x", u.Key)
		if res.StatusCode == http.StatusOK {
			return false
		}
		a.WantDenied(t, "old after the grace period", res, body, m, http.StatusUnauthorized, u.Key)
		return true
	})
	if d := ended.Sub(start); d < 3*time.Second {
		t.Errorf("the old key stopped after %v, before the 3s grace period ended", d)
	}
	a.GatewayOK(t, "new after the grace period", "/api/x", nk.Key, "graceful")

	// A grace that is not a duration is a 400, and changes nothing.
	res, body = a.API(t, http.MethodPost, "/workspaces/acme/users/"+u.ID+"/keys/"+nk.ID+"/regenerate", a.Root,
		map[string]string{"grace": "soon"})
	apitest.WantProblem(t, "bad grace", res, body, http.StatusBadRequest)
	a.GatewayOK(t, "new after a bad regenerate", "/api/x", nk.Key, "graceful")
}

// testRules: who may manage whom, over HTTP.
func (a *e2e) testRules(t *testing.T) {
	t.Parallel()
	const ws = "rules"
	a.MkWorkspace(t, ws)
	users := "/workspaces/" + ws + "/users"

	t.Run("editor cannot manage users", func(t *testing.T) {
		t.Parallel()
		// The editor is "as admin, but cannot manage users": not even
		// api_basic ones, which api_business and api_registration manage.
		ed := a.MkUser(t, a.Root, ws, "rule-editor", "editor", nil)
		basic := a.MkUser(t, a.Root, ws, "editor-target", "api_basic", nil)
		// Each attempt on its own, so that every one that passes is told.
		for _, role := range []string{"api_user", "viewer", "api_basic"} {
			t.Run("create "+role, func(t *testing.T) {
				res, body := a.API(t, http.MethodPost, users, ed.Key, map[string]any{"username": "by-editor-" + role, "kind": "api", "role": role})
				apitest.WantProblem(t, "editor creates "+role, res, body, http.StatusForbidden, ed.Key)
			})
		}
		t.Run("update api_basic", func(t *testing.T) {
			res, body := a.API(t, http.MethodPatch, users+"/"+basic.ID, ed.Key, map[string]any{"email": "edited@example.com"})
			apitest.WantProblem(t, "editor updates an api_basic user", res, body, http.StatusForbidden)
		})
		t.Run("key for api_basic", func(t *testing.T) {
			res, body := a.API(t, http.MethodPost, users+"/"+basic.ID+"/keys", ed.Key, map[string]any{"name": "by-editor"})
			apitest.WantProblem(t, "editor makes a key for an api_basic user", res, body, http.StatusForbidden)
		})
		t.Run("disable api_basic", func(t *testing.T) {
			res, body := a.API(t, http.MethodPost, users+"/"+basic.ID+"/status", ed.Key, map[string]string{"status": "inactive"})
			apitest.WantProblem(t, "editor disables an api_basic user", res, body, http.StatusForbidden)
		})
		for _, name := range a.Usernames(t, ws) {
			if strings.HasPrefix(name, "by-editor-") {
				t.Errorf("refused user %s was stored", name)
			}
		}
		a.GatewayOK(t, "the api_basic user", "/any/x", basic.Key, "editor-target")
	})
	t.Run("admin limits", func(t *testing.T) {
		t.Parallel()
		adm := a.MkUser(t, a.Root, ws, "rule-admin", "admin", nil)
		res, body := a.API(t, http.MethodPost, users, adm.Key, map[string]any{"username": "by-admin-super", "kind": "api", "role": "superadmin"})
		apitest.WantProblem(t, "admin creates a superadmin", res, body, http.StatusForbidden)
		res, body = a.API(t, http.MethodPost, users, adm.Key, map[string]any{
			"username": "by-admin-wsm", "kind": "api", "role": "api_user", "permissions": []string{"workspaces.manage"},
		})
		apitest.WantProblem(t, "admin grants workspaces.manage", res, body, http.StatusForbidden)
		// Nor on an existing user, nor by promoting one.
		target := a.MkUser(t, adm.Key, ws, "by-admin-ok", "api_user", nil)
		res, body = a.API(t, http.MethodPatch, users+"/"+target.ID, adm.Key, map[string]any{"permissions": []string{"workspaces.manage"}})
		apitest.WantProblem(t, "admin grants workspaces.manage by PATCH", res, body, http.StatusForbidden)
		res, body = a.API(t, http.MethodPatch, users+"/"+target.ID, adm.Key, map[string]any{"role": "superadmin"})
		apitest.WantProblem(t, "admin promotes to superadmin", res, body, http.StatusForbidden)
		res, body = a.API(t, http.MethodPost, "/workspaces", adm.Key, map[string]any{"id": "by-admin"})
		apitest.WantProblem(t, "admin creates a workspace", res, body, http.StatusForbidden)
		names := a.Usernames(t, ws)
		if slices.Contains(names, "by-admin-super") || slices.Contains(names, "by-admin-wsm") {
			t.Fatalf("a refused user was stored: %v", names)
		}
		res, body = a.API(t, http.MethodGet, users+"/"+target.ID, a.Root, nil)
		if got := apitest.Decode[apitest.User](t, "GET the target", res, body, http.StatusOK); got.Role != "api_user" || len(got.Permissions) != 0 {
			t.Fatalf("the target changed: %s", body)
		}
		a.GatewayOK(t, "the admin's user", "/api/x", target.Key, "by-admin-ok")
	})
	t.Run("api_registration", func(t *testing.T) {
		t.Parallel()
		reg := a.MkUser(t, a.Root, ws, "rule-registrar", "api_registration", nil)
		b := a.MkUser(t, reg.Key, ws, "registered-basic", "api_basic", nil)
		// The key works: at the admin API and at the gateway.
		res, body := a.API(t, http.MethodGet, "/me", b.Key, nil)
		me := apitest.Decode[struct {
			User apitest.User `json:"user"`
		}](t, "GET /me as the registered user", res, body, http.StatusOK)
		if me.User.ID != b.ID || me.User.Role != "api_basic" {
			t.Fatalf("me = %s", body)
		}
		a.GatewayOK(t, "the registered user's key", "/any/x", b.Key, "registered-basic")

		for _, role := range []string{"api_user", "api_business", "admin"} {
			res, body = a.API(t, http.MethodPost, users, reg.Key, map[string]any{"username": "reg-" + role, "kind": "api", "role": role, "issue_key": true})
			apitest.WantProblem(t, "registrar creates "+role, res, body, http.StatusForbidden)
		}
		res, body = a.API(t, http.MethodPost, users, reg.Key, map[string]any{
			"username": "reg-perms", "kind": "api", "role": "api_basic", "permissions": []string{"events.write"},
		})
		apitest.WantProblem(t, "registrar grants a permission", res, body, http.StatusForbidden)
		res, body = a.API(t, http.MethodPost, users+"/"+b.ID+"/keys", reg.Key, map[string]any{"name": "more"})
		apitest.WantProblem(t, "registrar makes another key", res, body, http.StatusForbidden)
		res, body = a.API(t, http.MethodPost, users+"/"+b.ID+"/keys/"+b.KeyID+"/regenerate", reg.Key, nil)
		apitest.WantProblem(t, "registrar regenerates the key", res, body, http.StatusForbidden)
		res, body = a.API(t, http.MethodPost, users+"/"+b.ID+"/keys/"+b.KeyID+"/reveal", reg.Key, nil)
		apitest.WantProblem(t, "registrar reveals the key", res, body, http.StatusForbidden, b.Key)
		names := a.Usernames(t, ws)
		for _, n := range []string{"reg-api_user", "reg-api_business", "reg-admin", "reg-perms"} {
			if slices.Contains(names, n) {
				t.Errorf("refused user %s was stored", n)
			}
		}
		res, body = a.API(t, http.MethodGet, users+"/"+b.ID+"/keys", a.Root, nil)
		keys := apitest.Decode[struct {
			Items []apitest.Key `json:"items"`
		}](t, "the registered user's keys", res, body, http.StatusOK)
		if len(keys.Items) != 1 {
			t.Fatalf("registered user's keys = %s", body)
		}
	})
	t.Run("api_business", func(t *testing.T) {
		t.Parallel()
		biz := a.MkUser(t, a.Root, ws, "rule-business", "api_business", nil)
		basic := a.MkUser(t, a.Root, ws, "biz-basic", "api_basic", nil)
		plain := a.MkUser(t, a.Root, ws, "biz-api-user", "api_user", nil)
		res, body := a.API(t, http.MethodPatch, users+"/"+basic.ID, biz.Key, map[string]any{"email": "basic@example.com", "organization": "Acme Devices"})
		if got := apitest.Decode[apitest.User](t, "business updates api_basic", res, body, http.StatusOK); got.Email != "basic@example.com" {
			t.Fatalf("updated = %s", body)
		}
		res, body = a.API(t, http.MethodPatch, users+"/"+plain.ID, biz.Key, map[string]any{"email": "plain@example.com"})
		apitest.WantProblem(t, "business updates api_user", res, body, http.StatusForbidden)
		res, body = a.API(t, http.MethodGet, users+"/"+plain.ID, a.Root, nil)
		if got := apitest.Decode[apitest.User](t, "GET the api_user", res, body, http.StatusOK); got.Email != "" {
			t.Fatalf("the api_user changed: %s", body)
		}
		// It also disables and enables api_basic users, not others.
		a.SetStatus(t, biz.Key, basic, "inactive")
		a.GatewayDenied(t, "disabled by business", "/any/x", basic.Key, http.StatusUnauthorized)
		a.SetStatus(t, biz.Key, basic, "active")
		a.GatewayOK(t, "enabled by business", "/any/x", basic.Key, "biz-basic")
		res, body = a.API(t, http.MethodPost, users+"/"+plain.ID+"/status", biz.Key, map[string]string{"status": "inactive"})
		apitest.WantProblem(t, "business disables api_user", res, body, http.StatusForbidden)
		a.GatewayOK(t, "the api_user", "/api/x", plain.Key, "biz-api-user")
	})
	t.Run("api_basic self", func(t *testing.T) {
		t.Parallel()
		me := a.MkUser(t, a.Root, ws, "self-basic", "api_basic", nil)
		other := a.MkUser(t, a.Root, ws, "other-basic", "api_basic", nil)
		res, body := a.API(t, http.MethodPost, users+"/"+other.ID+"/status", me.Key, map[string]string{"status": "inactive"})
		apitest.WantProblem(t, "api_basic disables another", res, body, http.StatusForbidden)
		a.GatewayOK(t, "the other is still active", "/any/x", other.Key, "other-basic")
		res, body = a.API(t, http.MethodPatch, users+"/"+me.ID, me.Key, map[string]any{"role": "api_business"})
		apitest.WantProblem(t, "api_basic promotes itself", res, body, http.StatusForbidden)
		res, body = a.API(t, http.MethodPost, users+"/"+me.ID+"/status", me.Key, map[string]string{"status": "trash"})
		apitest.WantProblem(t, "api_basic trashes itself", res, body, http.StatusForbidden)
		// It may update its own profile.
		res, body = a.API(t, http.MethodPatch, "/me", me.Key, map[string]any{"email": "self@example.com", "timezone": "Europe/Paris"})
		if got := apitest.Decode[apitest.User](t, "PATCH /me", res, body, http.StatusOK); got.Email != "self@example.com" {
			t.Fatalf("PATCH /me = %s", body)
		}
		a.SetStatus(t, me.Key, me, "inactive")
		a.GatewayDenied(t, "after disabling itself", "/any/x", me.Key, http.StatusUnauthorized)
		res, body = a.API(t, http.MethodGet, "/me", me.Key, nil)
		apitest.WantProblem(t, "GET /me after disabling itself", res, body, http.StatusUnauthorized, me.Key)
	})
	t.Run("private note", func(t *testing.T) {
		t.Parallel()
		const note = "owes us 3 invoices"
		adm := a.MkUser(t, a.Root, ws, "note-admin", "admin", nil)
		u := a.MkUser(t, a.Root, ws, "noted", "api_user", map[string]any{"private_note": note})
		for who, key := range map[string]string{"root": a.Root, "admin": adm.Key} {
			res, body := a.API(t, http.MethodGet, users+"/"+u.ID, key, nil)
			if got := apitest.Decode[apitest.User](t, "GET as "+who, res, body, http.StatusOK); got.PrivateNote != note {
				t.Errorf("GET as %s: private_note missing: %s", who, body)
			}
		}
		res, body := a.API(t, http.MethodGet, users+"?q=noted", adm.Key, nil)
		if res.StatusCode != http.StatusOK || !strings.Contains(string(body), note) {
			t.Errorf("list as admin: %d %s", res.StatusCode, body)
		}
		res, body = a.API(t, http.MethodGet, "/me", u.Key, nil)
		if res.StatusCode != http.StatusOK || strings.Contains(string(body), note) || strings.Contains(string(body), "private_note") {
			t.Errorf("GET /me as the user shows the note: %d %s", res.StatusCode, body)
		}
		res, body = a.API(t, http.MethodGet, users+"/"+u.ID, u.Key, nil)
		if res.StatusCode != http.StatusOK || strings.Contains(string(body), note) || strings.Contains(string(body), "private_note") {
			t.Errorf("GET the user as itself shows the note: %d %s", res.StatusCode, body)
		}
		res, body = a.API(t, http.MethodPatch, "/me", u.Key, map[string]any{"language": "fr-CA"})
		if res.StatusCode != http.StatusOK || strings.Contains(string(body), note) {
			t.Errorf("PATCH /me answer shows the note: %d %s", res.StatusCode, body)
		}
		res, body = a.API(t, http.MethodPatch, "/me", u.Key, map[string]any{"private_note": "mine"})
		apitest.WantProblem(t, "the user sets its note", res, body, http.StatusBadRequest)
	})
	t.Run("same username in two workspaces", func(t *testing.T) {
		t.Parallel()
		a.MkWorkspace(t, "twin-ws")
		one := a.MkUser(t, a.Root, ws, "twin", "api_user", nil)
		two := a.MkUser(t, a.Root, "twin-ws", "twin", "api_user", nil)
		if one.ID == two.ID {
			t.Fatal("the same user in two workspaces")
		}
		a.SetStatus(t, a.Root, one, "inactive")
		a.GatewayDenied(t, "twin in rules, inactive", "/api/x", one.Key, http.StatusUnauthorized)
		a.GatewayOK(t, "twin in twin-ws", "/api/x", two.Key, "twin")
		res, body := a.API(t, http.MethodGet, "/workspaces/twin-ws/users/"+two.ID, a.Root, nil)
		if got := apitest.Decode[apitest.User](t, "GET the other twin", res, body, http.StatusOK); got.Status != "active" || got.Workspace != "twin-ws" {
			t.Fatalf("the other twin = %s", body)
		}
		// One's key does not reach the other's workspace by its id.
		res, body = a.API(t, http.MethodGet, "/workspaces/twin-ws/users/"+one.ID, a.Root, nil)
		apitest.WantProblem(t, "one's id in the other workspace", res, body, http.StatusNotFound)
	})
	t.Run("usernames unique case-insensitively", func(t *testing.T) {
		t.Parallel()
		a.MkUser(t, a.Root, ws, "CaseUser", "api_user", nil)
		for _, name := range []string{"caseuser", "CASEUSER", "CaseUser"} {
			res, body := a.API(t, http.MethodPost, users, a.Root, map[string]any{"username": name, "kind": "api", "role": "api_user", "issue_key": true})
			apitest.WantProblem(t, "creating "+name, res, body, http.StatusConflict)
		}
		n := 0
		for _, name := range a.Usernames(t, ws) {
			if strings.EqualFold(name, "caseuser") {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%d users named caseuser", n)
		}
		// Renaming onto a taken name is refused too.
		other := a.MkUser(t, a.Root, ws, "case-other", "api_user", nil)
		res, body := a.API(t, http.MethodPatch, users+"/"+other.ID, a.Root, map[string]any{"username": "CASEuser"})
		apitest.WantProblem(t, "renaming onto a taken name", res, body, http.StatusConflict)
	})
}

// testBadInput: malformed requests are 400 or 413 problems and store
// nothing.
func (a *e2e) testBadInput(t *testing.T) {
	t.Parallel()
	const ws = "bad-input"
	a.MkWorkspace(t, ws)
	victim := a.MkUser(t, a.Root, ws, "victim", "api_user", nil)
	users := "/workspaces/" + ws + "/users"
	before := a.Usernames(t, ws)
	res, body := a.API(t, http.MethodGet, users+"/"+victim.ID, a.Root, nil)
	victimBefore := apitest.Decode[apitest.User](t, "GET victim", res, body, http.StatusOK)

	big := `{"username":"big","kind":"api","role":"api_user","private_note":"` + strings.Repeat("a", 2<<20) + `"}`
	cases := []struct {
		name, method, path string
		body               any
		status             int
		field              string
	}{
		{"malformed JSON", http.MethodPost, users, `{"username": "broken", "kind": "api",`, 400, ""},
		{"not an object", http.MethodPost, users, `["username", "broken"]`, 400, ""},
		{"trailing data", http.MethodPost, users, `{"username":"trail","kind":"api","role":"api_user"} {}`, 400, ""},
		{"unknown field", http.MethodPost, users, map[string]any{"username": "unknown", "kind": "api", "role": "api_user", "colour": "red"}, 400, "colour"},
		{"wrong type", http.MethodPost, users, map[string]any{"username": 42, "kind": "api", "role": "api_user"}, 400, "username"},
		{"2 MiB body", http.MethodPost, users, big, 413, ""},
		{"bad username (space)", http.MethodPost, users, map[string]any{"username": "has space", "kind": "api", "role": "api_user"}, 400, "username"},
		{"bad username (usr_)", http.MethodPost, users, map[string]any{"username": "usr_fake", "kind": "api", "role": "api_user"}, 400, "username"},
		{"bad username (empty)", http.MethodPost, users, map[string]any{"username": "", "kind": "api", "role": "api_user"}, 400, "username"},
		{"bad username (65 chars)", http.MethodPost, users, map[string]any{"username": strings.Repeat("u", 65), "kind": "api", "role": "api_user"}, 400, "username"},
		{"bad timezone", http.MethodPost, users, map[string]any{"username": "tz", "kind": "api", "role": "api_user", "timezone": "Mars/Olympus_Mons"}, 400, "timezone"},
		{"unknown role", http.MethodPost, users, map[string]any{"username": "wizard", "kind": "api", "role": "wizard"}, 400, "role"},
		{"bad kind", http.MethodPost, users, map[string]any{"username": "robot", "kind": "robot", "role": "api_user"}, 400, "kind"},
		{"empty body", http.MethodPost, users, "", 400, ""},
		{"PATCH unknown field", http.MethodPatch, users + "/" + victim.ID, map[string]any{"nickname": "v"}, 400, "nickname"},
		{"PATCH bad timezone", http.MethodPatch, users + "/" + victim.ID, map[string]any{"timezone": "Nowhere/Town"}, 400, "timezone"},
		{"PATCH bad username", http.MethodPatch, users + "/" + victim.ID, map[string]any{"username": "usr_victim"}, 400, "username"},
		{"PATCH 2 MiB body", http.MethodPatch, users + "/" + victim.ID, `{"private_note":"` + strings.Repeat("b", 2<<20) + `"}`, 413, ""},
		{"bad status", http.MethodPost, users + "/" + victim.ID + "/status", map[string]any{"status": "sleeping"}, 400, "status"},
		{"bad workspace id", http.MethodPost, "/workspaces", map[string]any{"id": "Bad_WS"}, 400, "id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, body := a.API(t, c.method, c.path, a.Root, c.body)
			p := apitest.WantProblem(t, c.name, res, body, c.status)
			if c.field != "" && p.Field != c.field {
				t.Errorf("field = %q, want %q (%s)", p.Field, c.field, body)
			}
		})
	}
	t.Run("2 MiB chunked body", func(t *testing.T) {
		// No Content-Length: the limit holds while reading.
		req, err := http.NewRequest(http.MethodPost, a.Base+"/admin"+users, io.MultiReader(strings.NewReader(big)))
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = -1
		req.Header.Set("Authorization", "Bearer "+a.Root)
		req.Header.Set("Content-Type", "application/json")
		res, err := a.tester.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		apitest.WantProblem(t, "chunked", res, body, http.StatusRequestEntityTooLarge)
	})
	t.Run("nothing stored", func(t *testing.T) {
		if after := a.Usernames(t, ws); !slices.Equal(before, after) {
			t.Fatalf("users before %v, after %v", before, after)
		}
		res, body := a.API(t, http.MethodGet, users+"/"+victim.ID, a.Root, nil)
		after := apitest.Decode[apitest.User](t, "GET victim", res, body, http.StatusOK)
		if after.Version != victimBefore.Version || after.Timezone != "" || after.Username != "victim" || after.Status != "active" || after.PrivateNote != "" {
			t.Fatalf("victim changed: %s", body)
		}
		res, body = a.API(t, http.MethodGet, "/workspaces/bad_ws", a.Root, nil)
		if res.StatusCode == http.StatusOK {
			t.Fatalf("the bad workspace exists: %s", body)
		}
	})
}

// testRestart: with the embedded store, users and keys survive Caddy
// stopping (the config unloaded, the store closed) and starting again.
func (a *e2e) testRestart(t *testing.T) {
	u := a.MkUser(t, a.Root, "acme", "survivor", "api_user", map[string]any{"private_note": "kept"})
	k := a.MkKey(t, a.Root, u, map[string]any{"name": "second"})
	a.GatewayOK(t, "before", "/api/x", k.Key, "survivor")

	a.unload()
	if t.Failed() {
		t.FailNow()
	}
	// The site is down, and the database closed: the bootstrap command
	// opens it at once (it would wait for the lock and fail otherwise).
	if _, err := a.tester.Client.Get(a.Base + "/api/x"); err == nil {
		t.Fatal("the site still answers with the config unloaded")
	}
	var stdout, stderr bytes.Buffer
	if _, err := bootstrap(&stdout, &stderr, a.cfgPath, "caddyfile", "acme", "root2"); err != nil {
		t.Fatalf("bootstrap with the config unloaded: %v\n%s", err, stderr.String())
	}
	root2 := strings.TrimSpace(stdout.String())

	a.tester.InitServer(a.cf, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	a.GatewayOK(t, "the second key after", "/api/x", k.Key, "survivor")
	a.GatewayOK(t, "the first key after", "/api/x", u.Key, "survivor")
	res, body := a.API(t, http.MethodGet, "/workspaces/acme/users/"+u.ID, a.Root, nil)
	if got := apitest.Decode[apitest.User](t, "GET survivor", res, body, http.StatusOK); got.PrivateNote != "kept" || got.Status != "active" {
		t.Fatalf("survivor = %s", body)
	}
	res, body = a.API(t, http.MethodGet, "/me", root2, nil)
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"root2"`) {
		t.Fatalf("the superadmin bootstrapped while Caddy was stopped: %d %s", res.StatusCode, body)
	}
}

// downUsers are the users of testStoreDown.
type downUsers struct{ cached, uncached apitest.User }

// prepareStoreDown makes the users of testStoreDown ahead of time. An
// instance hears its own changes back from Redis pub/sub some time after
// it made them, and drops the user's cached principal then: made right
// before Redis stops, the principal warmed up could be dropped again just
// before the test needs it cached.
func (a *e2e) prepareStoreDown(t *testing.T) downUsers {
	t.Helper()
	return downUsers{
		cached:   a.MkUser(t, a.Root, "acme", "down-cached", "api_user", nil),
		uncached: a.MkUser(t, a.Root, "acme", "down-uncached", "api_user", nil),
	}
}

// testStoreDown: Redis stopped, a cached principal still passes, an
// uncached one is a 503 with Retry-After, admin writes are 503 problems;
// Redis back, everything works again without touching Caddy.
func (a *e2e) testStoreDown(t *testing.T, d downUsers) {
	cached, uncached := d.cached, d.uncached
	a.GatewayOK(t, "warming the cache", "/api/x", cached.Key, "down-cached")

	a.redis.Stop()
	a.GatewayOK(t, "cached principal, store down", "/api/x", cached.Key, "down-cached")

	res, body, m := a.Gateway(t, "/api/x", uncached.Key)
	a.WantDenied(t, "uncached principal, store down", res, body, m, http.StatusServiceUnavailable, uncached.Key)
	if got := res.Header.Get("Retry-After"); got == "" {
		t.Error("503 without Retry-After")
	} else if n, err := strconv.Atoi(got); err != nil || n <= 0 {
		t.Errorf("Retry-After = %q", got)
	}
	if res.Header.Get("WWW-Authenticate") != "" {
		t.Errorf("503 with WWW-Authenticate %q", res.Header.Get("WWW-Authenticate"))
	}
	if strings.Contains(string(body), a.redis.Addr) || string(body) != "503 authorization store unavailable" {
		t.Errorf("503 body = %q", body)
	}

	res, body = a.API(t, http.MethodPost, "/workspaces/acme/users", a.Root, map[string]any{"username": "down-new", "kind": "api", "role": "api_user"})
	apitest.WantProblem(t, "admin write, store down", res, body, http.StatusServiceUnavailable, a.Root)
	if strings.Contains(string(body), a.redis.Addr) {
		t.Errorf("problem names the store: %s", body)
	}
	res, body = a.API(t, http.MethodPost, "/workspaces/acme/users/"+cached.ID+"/status", a.Root, map[string]string{"status": "inactive"})
	apitest.WantProblem(t, "status change, store down", res, body, http.StatusServiceUnavailable, a.Root)
	res, body = a.API(t, http.MethodGet, "/me", uncached.Key, nil)
	apitest.WantProblem(t, "admin call by an uncached principal, store down", res, body, http.StatusServiceUnavailable, uncached.Key)

	a.redis.Restart()
	apitest.Poll(t, "the uncached principal passes once Redis is back", 10*time.Second, func() bool {
		res, _, _ := a.Gateway(t, "/api/x", uncached.Key)
		return res.StatusCode == http.StatusOK
	})
	a.GatewayOK(t, "uncached principal, store back", "/api/x", uncached.Key, "down-uncached")
	a.GatewayOK(t, "cached principal, store back", "/api/x", cached.Key, "down-cached")
	created := a.MkUser(t, a.Root, "acme", "down-new", "api_user", nil)
	a.GatewayOK(t, "a user created once the store is back", "/api/x", created.Key, "down-new")
	// The refused status change did not happen.
	res, body = a.API(t, http.MethodGet, "/workspaces/acme/users/"+cached.ID, a.Root, nil)
	if got := apitest.Decode[apitest.User](t, "GET the cached user", res, body, http.StatusOK); got.Status != "active" {
		t.Fatalf("cached user = %s", body)
	}
}
