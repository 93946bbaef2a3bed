package module

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/apiusers/apiusers/internal/apitest"
	"github.com/apiusers/apiusers/mail/mailtest"
)

// TestE2EPeopleExample walks caddyfile-examples/people/README.md on the
// file store and on Redis, with the example's mail option pointed at a
// real SMTP server the test runs.
func TestE2EPeopleExample(t *testing.T) {
	var smtp *mailtest.Server
	site := e2eSite{example: "people", rewrite: func(t *testing.T, cf string) string {
		smtp = mailtest.Start(t, mailtest.Options{})
		if !strings.Contains(cf, "mail smtp://localhost:1025 {") {
			t.Fatal("people Caddyfile: no mail smtp://localhost:1025 line")
		}
		return strings.Replace(cf, "mail smtp://localhost:1025 {", "mail "+smtp.URL()+" {", 1)
	}}
	forEachStore(t, site, func(t *testing.T, x *e2e) {
		const pw, pw2, pw3 = "glacier orbit lantern 42 mosaic", "saffron quarry 88 nebula drift", "tundra velvet compass 7 harbor"
		call := func(method, path, cookie, origin string, body any, status int) *http.Response {
			t.Helper()
			var rd io.Reader
			if body != nil {
				b, _ := json.Marshal(body)
				rd = strings.NewReader(string(b))
			}
			req, err := http.NewRequest(method, x.Base+"/admin"+path, rd)
			if err != nil {
				t.Fatal(err)
			}
			if body != nil {
				req.Header.Set("Content-Type", "application/json")
			}
			if cookie != "" {
				req.Header.Set("Cookie", "apiusers_session="+cookie)
			}
			if origin != "" {
				req.Header.Set("Origin", origin)
			}
			res, err := x.Client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != status {
				t.Fatalf("%s %s: %d %s, want %d", method, path, res.StatusCode, b, status)
			}
			return res
		}
		cookieOf := func(res *http.Response) string {
			t.Helper()
			for _, c := range res.Cookies() {
				if c.Name == "apiusers_session" && c.Value != "" {
					return c.Value
				}
			}
			t.Fatal("no session cookie")
			return ""
		}
		linkToken := func(to, page string) string {
			t.Helper()
			m := smtp.Next(t)
			if len(m.To) != 1 || m.To[0] != to {
				t.Fatalf("mail to %v, want %s", m.To, to)
			}
			for _, l := range m.Parse(t).Links() {
				// public_url is the site: the link leads to its console.
				if strings.HasPrefix(l, x.Base+"/admin/"+page+"?token=") {
					u, _ := url.Parse(l)
					return u.Query().Get("token")
				}
			}
			t.Fatalf("no %s link in the mail", page)
			return ""
		}

		// 3-5: invite, the mail, accept, signed in.
		b := x.Admin(t, x.Root, "POST", "/workspaces/acme/invitations", map[string]any{"email": "ana@example.com", "role": "admin"}, http.StatusCreated)
		if strings.Contains(string(b), "accept_url") {
			t.Fatalf("with a mailer the answer carries the link: %s", b)
		}
		cookie := cookieOf(call("POST", "/invitations/accept", "", "", map[string]any{"token": linkToken("ana@example.com", "accept"), "name": "Ana", "password": pw}, http.StatusOK))
		call("GET", "/me", cookie, "", nil, http.StatusOK)
		// 6: sign in again.
		cookie = cookieOf(call("POST", "/login", "", "", map[string]string{"email": "ana@example.com", "password": pw}, http.StatusOK))
		// 7: change the password from the console's origin; a foreign one is refused.
		call("POST", "/me/password", cookie, x.Base, map[string]string{"current_password": pw, "new_password": pw2}, http.StatusNoContent)
		call("POST", "/logout", cookie, "https://evil.example", nil, http.StatusForbidden)
		// 8: forgot the password.
		call("POST", "/password-reset", "", "", map[string]string{"email": "ana@example.com"}, http.StatusAccepted)
		call("POST", "/password-reset/confirm", "", "", map[string]string{"token": linkToken("ana@example.com", "reset"), "new_password": pw3}, http.StatusNoContent)
		call("POST", "/login", "", "", map[string]string{"email": "ana@example.com", "password": pw2}, http.StatusUnauthorized)
		call("POST", "/login", "", "", map[string]string{"email": "ana@example.com", "password": pw3}, http.StatusOK)
		// 9: an API user with a password, its session token at the gateway.
		var dev apitest.User
		if err := json.Unmarshal(x.Admin(t, x.Root, "POST", "/workspaces/acme/users", map[string]any{"username": "device", "kind": "api", "role": "api_user", "password": "copper meadow 19 lighthouse"}, http.StatusCreated), &dev); err != nil {
			t.Fatal(err)
		}
		var tok struct {
			Token string `json:"token"`
		}
		code, body := x.Send(t, "", "POST", "/admin/login", `{"workspace":"acme","username":"device","password":"copper meadow 19 lighthouse"}`)
		if code != http.StatusOK || json.Unmarshal(body, &tok) != nil || tok.Token == "" {
			t.Fatalf("API user sign-in: %d %s", code, body)
		}
		dev.Key = tok.Token
		x.Want(t, http.StatusOK, dev, "GET", "/api/hello")
		if kid := x.Upstream.Last(t).Header.Get("X-Api-Key-Id"); !strings.HasPrefix(kid, "ses_") {
			t.Fatalf("X-Api-Key-Id %q, want the session id", kid)
		}
		// 10: its sessions; ending it is a 401 at the gateway.
		var ss struct {
			Items []struct{ ID string } `json:"items"`
		}
		if err := json.Unmarshal(x.Admin(t, x.Root, "GET", "/workspaces/acme/users/"+dev.ID+"/sessions", nil, http.StatusOK), &ss); err != nil || len(ss.Items) != 1 {
			t.Fatalf("sessions: %v %+v", err, ss)
		}
		x.Admin(t, x.Root, "DELETE", "/workspaces/acme/users/"+dev.ID+"/sessions/"+ss.Items[0].ID, nil, http.StatusNoContent)
		x.Want(t, http.StatusUnauthorized, dev, "GET", "/api/hello")
	})
}
