package admin

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestPeopleCookieAndCrossSite: a person signed in with the console
// cookie may mutate from the console's origin (or without a browser's
// headers), never from another site (Origin, else Sec-Fetch-Site); public
// POSTs stating a foreign Origin are refused too; a key beats the cookie.
func TestPeopleCookieAndCrossSite(t *testing.T) {
	e := newTestEnv(t, Options{Mount: func(*http.Request) string { return "/admin/" }})
	const pw = "glacier orbit lantern 42 mosaic"
	var inv struct {
		ID        string `json:"id"`
		AcceptURL string `json:"accept_url"`
	}
	e.ok(req{method: "POST", path: "/workspaces/ws/invitations", key: e.root, body: `{"email":"ana@example.com","role":"admin"}`}, http.StatusCreated, &inv)
	if !strings.HasPrefix(inv.AcceptURL, "http://example.com/admin/accept?token=") {
		t.Fatalf("accept_url %q", inv.AcceptURL)
	}
	token := strings.TrimPrefix(inv.AcceptURL, "http://example.com/admin/accept?token=")
	body, _ := json.Marshal(map[string]string{"token": token, "password": pw})
	// A public POST from another site is refused before anything happens.
	problemOf(t, e.do(req{method: "POST", path: "/invitations/accept", body: string(body), header: http.Header{"Origin": {"https://evil.example"}}}), http.StatusForbidden)
	w := e.ok(req{method: "POST", path: "/invitations/accept", body: string(body), header: http.Header{"Origin": {"http://example.com"}}}, http.StatusOK, nil)
	var cookie *http.Cookie
	for _, c := range w.Result().Cookies() {
		if c.Name == SessionCookie {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/admin/" || cookie.Secure {
		t.Fatalf("session cookie %+v (over plain HTTP: not Secure)", cookie)
	}
	withCookie := func(h http.Header) http.Header {
		if h == nil {
			h = http.Header{}
		}
		h.Set("Cookie", SessionCookie+"="+cookie.Value)
		return h
	}
	patch := `{"name":"Ana"}`
	for _, tc := range []struct {
		name   string
		header http.Header
		status int
	}{
		{"foreign Origin", http.Header{"Origin": {"https://evil.example"}}, http.StatusForbidden},
		{"foreign Origin, same Sec-Fetch-Site", http.Header{"Origin": {"https://evil.example"}, "Sec-Fetch-Site": {"same-origin"}}, http.StatusForbidden},
		{"cross-site Sec-Fetch-Site", http.Header{"Sec-Fetch-Site": {"cross-site"}}, http.StatusForbidden},
		{"same-site Sec-Fetch-Site", http.Header{"Sec-Fetch-Site": {"same-site"}}, http.StatusForbidden},
		{"own Origin", http.Header{"Origin": {"http://example.com"}}, http.StatusOK},
		{"same-origin Sec-Fetch-Site", http.Header{"Sec-Fetch-Site": {"same-origin"}}, http.StatusOK},
		{"no browser headers", nil, http.StatusOK},
	} {
		w := e.do(req{method: "PATCH", path: "/me", body: patch, header: withCookie(tc.header)})
		if w.Code != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.name, w.Code, w.Body, tc.status)
		}
	}
	// A GET needs no origin check; a key beats the cookie (root's /me).
	var me struct {
		User struct {
			Username string `json:"username"`
		} `json:"user"`
		Account struct {
			Name string `json:"name"`
		} `json:"account"`
	}
	e.ok(req{method: "GET", path: "/me", header: withCookie(http.Header{"Sec-Fetch-Site": {"cross-site"}})}, http.StatusOK, &me)
	if me.Account.Name != "Ana" || me.User.Username != "ana@example.com" {
		t.Fatalf("GET /me with the cookie: %+v", me)
	}
	me.Account.Name = ""
	e.ok(req{method: "GET", path: "/me", key: e.root, header: withCookie(nil)}, http.StatusOK, &me)
	if me.User.Username != "root" || me.Account.Name != "" {
		t.Fatalf("GET /me with a key and the cookie: %+v", me)
	}
	// GET /workspaces lists the person's workspaces (a second one after
	// accepting its invitation).
	e.ok(req{method: "POST", path: "/workspaces", key: e.root, body: `{"id":"beta","name":"Beta"}`}, http.StatusCreated, nil)
	var inv2 struct {
		AcceptURL string `json:"accept_url"`
	}
	e.ok(req{method: "POST", path: "/workspaces/beta/invitations", key: e.root, body: `{"email":"ANA@example.com","role":"viewer"}`}, http.StatusCreated, &inv2)
	body, _ = json.Marshal(map[string]string{"token": strings.TrimPrefix(inv2.AcceptURL, "http://example.com/admin/accept?token=")})
	e.ok(req{method: "POST", path: "/invitations/accept", body: string(body), header: withCookie(nil)}, http.StatusOK, nil)
	var wss struct {
		Items []struct{ ID, Name string } `json:"items"`
	}
	e.ok(req{method: "GET", path: "/workspaces", header: withCookie(nil)}, http.StatusOK, &wss)
	if len(wss.Items) != 2 || wss.Items[0].ID != "beta" || wss.Items[1].ID != "ws" {
		t.Fatalf("a person's workspaces: %+v", wss)
	}
	// Logout from the console's origin ends the session and clears the cookie.
	w = e.ok(req{method: "POST", path: "/logout", header: withCookie(http.Header{"Origin": {"http://example.com"}})}, http.StatusNoContent, nil)
	if c := w.Result().Cookies(); len(c) != 1 || c[0].MaxAge >= 0 {
		t.Fatalf("logout cookies %+v", c)
	}
	problemOf(t, e.do(req{method: "GET", path: "/me", header: withCookie(nil)}), http.StatusUnauthorized)
}
