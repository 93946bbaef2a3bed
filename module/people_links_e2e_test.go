package module

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/apiusers/apiusers/internal/apitest"
	"github.com/apiusers/apiusers/mail/mailtest"
)

// TestE2EPeopleResetLinks (finding 4): without public_url, the link of a
// self-service reset mail is made only from a host the Caddy config
// serves the admin API under by name, never from the Host a client sent
// to a catch-all site; a manager's mail only from such a host or a
// request of the console's origin. On both stores, with a real SMTP
// server; the site is http://localhost:<port> (host matcher localhost),
// and a second, catch-all site http://:<port2> serves the admin API too.
func TestE2EPeopleResetLinks(t *testing.T) {
	var smtp *mailtest.Server
	var open string // the catch-all site
	site := e2eSite{rewrite: func(t *testing.T, cf string) string {
		smtp = mailtest.Start(t, mailtest.Options{})
		port := strconv.Itoa(apitest.FreePort(t))
		open = "http://127.0.0.1:" + port
		mail := "\tapiusers {\n\t\tmail " + smtp.URL() + " {\n\t\t\tfrom \"apiusers <noreply@example.com>\"\n\t\t}\n"
		if !strings.Contains(cf, "\tapiusers {\n") {
			t.Fatal("no apiusers block")
		}
		return strings.Replace(cf, "\tapiusers {\n", mail, 1) +
			"\nhttp://:" + port + " {\n\thandle_path /admin/* {\n\t\tapiusers_admin\n\t}\n}\n"
	}}
	forEachStore(t, site, func(t *testing.T, e *e2e) {
		send := func(base, host, origin, key, path string, body any) int {
			t.Helper()
			b, _ := json.Marshal(body)
			req, err := http.NewRequest("POST", base+"/admin"+path, bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			if host != "" {
				req.Host = host
			}
			if origin != "" {
				req.Header.Set("Origin", origin)
			}
			if key != "" {
				req.Header.Set("Authorization", "Bearer "+key)
			}
			res, err := plainClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			return res.StatusCode
		}
		link := func(to, page string) string {
			t.Helper()
			m := smtp.Next(t)
			if len(m.To) != 1 || !strings.EqualFold(m.To[0], to) {
				t.Fatalf("mail to %v, want %s", m.To, to)
			}
			for _, l := range m.Parse(t).Links() {
				if strings.Contains(l, "/admin/"+page+"?token=") {
					return l
				}
			}
			t.Fatalf("no %s link in the mail to %s", page, to)
			return ""
		}
		x := px{e2e: e, t: t}
		var dana invitedMember
		x.want(req{key: e.Root}, "POST", "/workspaces/acme/invitations", map[string]string{"email": "dana@example.com", "role": "viewer"}, http.StatusCreated, &dana)
		dana.AcceptURL = link("dana@example.com", "accept")
		if !strings.HasPrefix(dana.AcceptURL, e.Base+"/admin/accept?token=") {
			t.Fatalf("the invitation's link %q is not under the site %s", dana.AcceptURL, e.Base)
		}
		x.accept(dana, secPassword)

		// Asked for under a Host the client chose, through the
		// catch-all site, or under the named host with another port: 202
		// and no link anywhere.
		reset := map[string]string{"email": "dana@example.com"}
		if st := send(open, "evil.example", "", "", "/password-reset", reset); st != http.StatusAccepted {
			t.Fatalf("a reset under a foreign host: %d", st)
		}
		if st := send(e.Base, "localhost:1", "", "", "/password-reset", reset); st != http.StatusAccepted {
			t.Fatalf("a reset under another port: %d", st)
		}
		// Under the site's own name: the mail comes, and it is the first.
		if st := send(e.Base, "", "", "", "/password-reset", reset); st != http.StatusAccepted {
			t.Fatalf("a reset under the site's host: %d", st)
		}
		if l := link("dana@example.com", "reset"); !strings.HasPrefix(l, e.Base+"/admin/reset?token=") {
			t.Fatalf("the reset link %q is not under the site %s", l, e.Base)
		}
		// A manager's reset through the catch-all site from a foreign
		// origin is refused before anything is made.
		if st := send(open, "evil.example", "http://other.example", e.Root, "/workspaces/acme/users/"+dana.ID+"/password-reset", nil); st != http.StatusForbidden {
			t.Fatalf("a manager's reset from a foreign origin: %d, want 403", st)
		}
		smtp.None(t)
	})
}
