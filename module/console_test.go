package module

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/apiusers/apiusers/internal/apitest"
	"github.com/apiusers/apiusers/mail/mailtest"
)

// The console end to end: a real Caddy (in process) serves the admin API
// and the console at /admin/, a protected API route that records calls
// (/api/*, listeners.invoke) and device routes (/devices/<id>, rights read
// and control), proxying to a real upstream; a real headless Chromium
// drives the console.

// consoleEnv is the console Caddy: the end-to-end harness's Caddy with the
// console routes, a mailer and a person superadmin.
type consoleEnv struct {
	*e2e
	console   string // http://localhost:<port>/admin/
	accessLog string // Caddy's access log of the site
	smtp      *mailtest.Server

	// The first superadmin, a person bootstrapped with --email: its
	// one-time setup link, and its password once set.
	ownerEmail    string
	setupLink     string
	ownerPassword string
	ownerSession  string // a session of the owner's, for more tabs
}

// consolePassword is a password the policy accepts (long, uncommon).
const consolePassword = "correct horse battery staple 42"

// consoleRoutes are the site's routes besides the admin API and console:
// a protected API route that records calls, and device routes.
const consoleRoutes = `
	handle /api/* {
		apiusers {
			require listeners.invoke
			record
		}
		reverse_proxy UPSTREAM
	}

	@device path_regexp dev ^/devices/([a-z0-9][a-z0-9_-]*)(/.*)?$
	handle @device {
		@read method GET HEAD
		apiusers @read {
			require read on device:{re.dev.1}
		}
		@control not method GET HEAD
		apiusers @control {
			require control on device:{re.dev.1}
		}
		reverse_proxy UPSTREAM
	}`

// startConsole starts the console Caddy on the file store with a mailer
// (a real SMTP server the test runs) and an access log, bootstrapped with
// an API superadmin root (for the tests' own API calls) and a person
// superadmin (its setup link) in workspace acme.
func startConsole(t *testing.T) *consoleEnv {
	t.Helper()
	smtp := mailtest.Start(t, mailtest.Options{})
	accessLog := filepath.Join(t.TempDir(), "access.log")
	c := &consoleEnv{smtp: smtp, accessLog: accessLog, ownerEmail: "owner@acme.example"}
	c.e2e = startE2E(t, e2eSite{
		apiusers: []string{"mail " + smtp.URL() + " {\n\t\t\tfrom \"Acme Console <console@acme.example>\"\n\t\t}"},
		top:      "\tlog {\n\t\toutput file " + accessLog + "\n\t}",
		routes:   consoleRoutes,
		beforeStart: func(e *e2e) {
			var stdout, stderr bytes.Buffer
			if _, err := bootstrapPerson(&stdout, &stderr, e.cfgPath, "caddyfile", "acme", c.ownerEmail, e.Base+"/admin/"); err != nil {
				t.Fatalf("bootstrap --email: %v\n%s", err, stderr.String())
			}
			c.setupLink = strings.TrimSpace(stdout.String())
		},
	})
	c.console = c.Base + "/admin/"
	return c
}

// mailTo waits for the next mail to addr (skipping others) and returns it.
func (c *consoleEnv) mailTo(t *testing.T, addr string) mailtest.Message {
	t.Helper()
	for i := 0; i < 20; i++ {
		m := c.smtp.Next(t)
		if slices.Contains(m.To, addr) {
			return m.Parse(t)
		}
	}
	t.Fatalf("no mail to %s", addr)
	return mailtest.Message{}
}

// linkIn returns the one link of a mail.
func linkIn(t *testing.T, m mailtest.Message) string {
	t.Helper()
	l := slices.Compact(m.Links())
	if len(l) != 1 {
		t.Fatalf("the mail %q has the links %q", m.Subject, l)
	}
	return l[0]
}

// ensureOwner sets the owner's first password through the API when no
// test has done it in the browser yet (so that any test can run alone).
func (c *consoleEnv) ensureOwner(t *testing.T) {
	t.Helper()
	if c.ownerPassword != "" {
		return
	}
	token := strings.TrimPrefix(c.setupLink[strings.Index(c.setupLink, "?"):], "?token=")
	tok, err := url.QueryUnescape(token)
	if err != nil {
		t.Fatal(err)
	}
	c.mustAPI(t, 200, "POST", "/invitations/accept", "", map[string]any{"token": tok, "name": "Olga Owner", "password": consolePassword}, nil)
	c.ownerPassword = consolePassword
}

// signIn signs in on the tab's sign-in screen.
func (c *consoleEnv) signIn(t *testing.T, tb *tab, email, password string) {
	t.Helper()
	tb.open("")
	tb.find("main h1", "Sign in")
	tb.fill("Email", email)
	tb.fill("Password", password)
	tb.clickSel("Sign in", tb.find("form button", "Sign in"))
	tb.waitFor("signed in", `!!document.querySelector('nav.side')`)
	tb.settle()
}

// ownerTab opens a tab (with its own cookies) where the owner is signed
// in: the first time through the sign-in screen, then with the session that
// sign-in made (each sign-in hashes a password, and the process shares one
// budget of hashing time).
func (c *consoleEnv) ownerTab(t *testing.T, b *browser) *tab {
	t.Helper()
	c.ensureOwner(t)
	tb := b.newPerson(t, c.console)
	if c.ownerSession != "" {
		tb.setCookie("apiusers_session", c.ownerSession)
		tb.open("")
		if tb.has("nav.side h2", "Administration") {
			return tb
		}
	}
	c.signIn(t, tb, c.ownerEmail, c.ownerPassword)
	c.ownerSession = tb.cookie("apiusers_session")
	return tb
}

// person invites email into acme with role (and extra permissions) and
// accepts the invitation in a tab of its own, choosing a password; it
// returns the tab, where the person is signed in.
func (c *consoleEnv) person(t *testing.T, b *browser, email, role string, perms ...string) *tab {
	t.Helper()
	body := map[string]any{"email": email, "role": role}
	if len(perms) > 0 {
		body["permissions"] = perms
	}
	c.mustAPI(t, http.StatusCreated, "POST", "/workspaces/acme/invitations", c.Root, body, nil)
	tb := b.newPerson(t, c.console)
	c.openLink(t, tb, linkIn(t, c.mailTo(t, email)), "Accept invitation")
	tb.fill("New Password", consolePassword)
	tb.fill("New Password Again", consolePassword)
	tb.clickSel("Accept", tb.find("form button", "Accept invitation"))
	tb.waitFor("signed in", `!!document.querySelector('nav.side')`)
	tb.settle()
	return tb
}

// api calls the admin API with key and decodes a JSON answer into out (when
// not nil); it returns the status.
func (c *consoleEnv) api(t *testing.T, method, path, key string, body, out any) int {
	t.Helper()
	res, b := c.API(t, method, path, key, body)
	if out != nil && res.StatusCode < 300 && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return res.StatusCode
}

// mustAPI is api that fails the test unless the status is want.
func (c *consoleEnv) mustAPI(t *testing.T, want int, method, path, key string, body, out any) {
	t.Helper()
	res, b := c.API(t, method, path, key, body)
	if res.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, res.StatusCode, want, b)
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
}

// call calls a gateway route with key and returns the status.
func (c *consoleEnv) call(t *testing.T, method, path, key string) int {
	t.Helper()
	res, _ := c.Call(t, method, path, key, nil)
	return res.StatusCode
}

// mkUser creates a user in acme as root.
func (c *consoleEnv) mkUser(t *testing.T, body map[string]any) apitest.User {
	t.Helper()
	var u apitest.User
	c.mustAPI(t, http.StatusCreated, "POST", "/workspaces/acme/users", c.Root, body, &u)
	return u
}

func TestConsoleBrowser(t *testing.T) {
	c := startConsole(t)
	b := startBrowser(t)

	t.Run("set the first password from the bootstrap link and sign in", func(t *testing.T) { c.testBootstrapLink(t, b) })
	t.Run("landing", func(t *testing.T) {
		tb := c.ownerTab(t, b)
		tb.open("")
		if h := tb.heading(); h != "API Users" {
			t.Fatalf("heading %q, want API Users", h)
		}
		tb.axe("API Users")
		tb.noErrors()
	})
	t.Run("add an API user with device rights, use its key, deactivate it", func(t *testing.T) { c.testAddUser(t, b) })
	t.Run("trash, restore, trash, delete", func(t *testing.T) { c.testLifecycle(t, b) })
	t.Run("keys: generate, regenerate with grace, reveal, revoke", func(t *testing.T) { c.testKeys(t, b) })
	t.Run("dialogs trap the focus, close on Esc and give the focus back", func(t *testing.T) { c.testDialogKeyboard(t, b) })
	t.Run("German and another time zone", func(t *testing.T) { c.testLanguageAndZone(t, b) })
	t.Run("only what the caller may do is offered", func(t *testing.T) { c.testOffered(t, b) })
	t.Run("an admin is offered only the users within its rights", func(t *testing.T) { c.testWithinRights(t, b) })
	t.Run("teams with team-wide access to all devices", func(t *testing.T) { c.testTeams(t, b) })
	t.Run("messages: an api_user sees only its own", func(t *testing.T) { c.testMessages(t, b) })
	t.Run("the audit log, filtered", func(t *testing.T) { c.testAudit(t, b) })
	t.Run("members: edit, deactivate, activate", func(t *testing.T) { c.testMembers(t, b) })
	t.Run("search by prefix and page with cursors", func(t *testing.T) { c.testSearchAndPaging(t, b) })
	t.Run("invite a member, send a new invite, accept in the browser, sign in", func(t *testing.T) { c.testInvite(t, b) })
	t.Run("reset a password, forgot password, change a password", func(t *testing.T) { c.testPasswords(t, b) })
	t.Run("sessions: End session signs the person out", func(t *testing.T) { c.testSessions(t, b) })
	t.Run("the workspace switcher", func(t *testing.T) { c.testWorkspaces(t, b) })
	t.Run("a cross-site form post with the cookie changes nothing", func(t *testing.T) { c.testCrossSite(t, b) })
	t.Run("no one-time token reaches the access log", func(t *testing.T) { c.testAccessLog(t) })
	t.Run("the main screens (make screenshots)", func(t *testing.T) { c.testMainScreens(t, b) })
}

// testAddUser adds an API user through the Add API User dialog with every
// kind of field, copies its key from its page, calls the device route with
// it, and deactivates it in the console.
func (c *consoleEnv) testAddUser(t *testing.T, b *browser) {
	var team struct{ ID string }
	c.mustAPI(t, http.StatusCreated, "POST", "/workspaces/acme/teams", c.Root, map[string]any{"name": "field-crew"}, &team)
	// A device the workspace's teams already name: the search offers it.
	c.mustAPI(t, http.StatusCreated, "POST", "/workspaces/acme/teams", c.Root, map[string]any{"name": "doors",
		"grants": []map[string]any{{"resource": "device:door-7", "rights": []string{"read"}}}}, nil)

	tb := c.ownerTab(t, b)
	tb.open("#/w/acme/users")
	tb.click("Add API User")
	tb.fill("Username", "lamp-app")
	if roles := tb.options("Role"); !slices.Contains(roles, "superadmin") || !slices.Contains(roles, "api_user") {
		t.Errorf("a superadmin may grant every role; offered %v", roles)
	}
	tb.choose("Role", "api_user")
	tb.fill("Email", "lamp@example.com")
	tb.fill("Organization", "Lamps Inc")
	tb.choose("Language", "de")
	tb.choose("Time zone", "Europe/Berlin")
	tb.fill("Private note", "installed in hall B")
	tb.checkIn("Add API User to existing Team", "field-crew")
	tb.checkIn("Workspace Permissions", "Run flows (flows.run)")
	tb.fill("Search devices", "door")
	tb.click("Add device door-7")
	tb.checkIn("device:door-7", "Control")
	tb.fill("Search devices", "d1")
	tb.click("Add new device d1")
	tb.checkIn("device:d1", "Read")
	tb.fill("Project", "p9")
	tb.click("Add project")
	tb.checkIn("project:p9", "Access")
	tb.checkIn("project:p9", "Capture photos")
	tb.axe("the Add API User dialog")
	tb.find("dialog[open] button", "Add API User")
	tb.click("Add API User")

	// The user's page, with the key shown once.
	tb.waitFor("the user's page", `document.querySelector('main h1') && document.querySelector('main h1').textContent === 'lamp-app'`)
	if !tb.has("p", "Copy this key now: it will not be shown again (unless someone allowed to reveals it later).") {
		t.Error("the new key is not shown with its warning")
	}
	tb.click("Copy API key to the clipboard")
	tb.status("Copied")
	var key string
	tb.eval("reading the clipboard", `navigator.clipboard.readText()`, &key)
	tb.axe("the API user's page")

	var users struct{ Items []apitest.User }
	c.mustAPI(t, 200, "GET", "/workspaces/acme/users?q=lamp-app", c.Root, nil, &users)
	if len(users.Items) != 1 {
		t.Fatalf("lamp-app: %d users", len(users.Items))
	}
	var u struct {
		ID, Username, Role, Status, Email, Organization, Language, Timezone string
		PrivateNote                                                         string `json:"private_note"`
		Permissions, Teams                                                  []string
		Grants                                                              []struct {
			Resource string
			Rights   []string
		}
	}
	c.mustAPI(t, 200, "GET", "/workspaces/acme/users/"+users.Items[0].ID, c.Root, nil, &u)
	grants := map[string][]string{}
	for _, g := range u.Grants {
		grants[g.Resource] = g.Rights
	}
	if u.Role != "api_user" || u.Status != "active" || u.Email != "lamp@example.com" || u.Organization != "Lamps Inc" ||
		u.Language != "de" || u.Timezone != "Europe/Berlin" || u.PrivateNote != "installed in hall B" ||
		!slices.Equal(u.Permissions, []string{"flows.run"}) || !slices.Equal(u.Teams, []string{team.ID}) ||
		!slices.Equal(grants["device:d1"], []string{"read"}) || !slices.Equal(grants["device:door-7"], []string{"control"}) ||
		!slices.Equal(grants["project:p9"], []string{"access", "photo.capture"}) || len(grants) != 3 {
		t.Errorf("the user as stored: %+v", u)
	}

	if !strings.HasPrefix(key, "ey") {
		t.Fatalf("the clipboard holds %q, not a key", key)
	}
	if st := c.call(t, "GET", "/devices/d1/state", key); st != 200 {
		t.Errorf("GET /devices/d1/state with the copied key: %d, want 200", st)
	}
	if st := c.call(t, "POST", "/devices/d1/state", key); st != 403 {
		t.Errorf("POST /devices/d1/state (no control right): %d, want 403", st)
	}

	tb.click("Move to Inactive")
	tb.waitFor("the inactive badge", `[...document.querySelectorAll('main .badge')].some((e) => e.textContent === 'Inactive')`)
	tb.status("Status changed to Inactive.")
	if st := c.call(t, "GET", "/devices/d1/state", key); st != 401 {
		t.Errorf("GET /devices/d1/state after Move to Inactive: %d, want 401", st)
	}
	if tb.has("p", "Copy this key now: it will not be shown again (unless someone allowed to reveals it later).") {
		t.Error("the new key is shown a second time")
	}
	tb.noErrors()
}

// testLifecycle moves an API user to the trash, restores it, trashes it
// again and deletes it with its messages, in the console.
func (c *consoleEnv) testLifecycle(t *testing.T, b *browser) {
	u := c.mkUser(t, map[string]any{"username": "old-sensor", "kind": "api", "role": "api_user", "issue_key": true})
	if st := c.call(t, "GET", "/api/ping", u.Key); st != 200 {
		t.Fatalf("a first recorded call: %d", st)
	}
	tb := c.ownerTab(t, b)
	tb.open("#/w/acme/users/" + u.ID)
	badge := func(want string) {
		t.Helper()
		tb.waitFor("the badge "+want, fmt.Sprintf(`[...document.querySelectorAll('main .badge')].some((e) => e.textContent === %s)`, js(want)))
	}
	stored := func(want string) {
		t.Helper()
		var got apitest.User
		c.mustAPI(t, 200, "GET", "/workspaces/acme/users/"+u.ID, c.Root, nil, &got)
		if got.Status != want {
			t.Errorf("status %q in the store, want %q", got.Status, want)
		}
	}
	if tb.has("button", "Delete") || tb.has("button", "Restore") {
		t.Error("an active user offers Delete or Restore")
	}
	tb.click("Move to Trash")
	badge("Trash")
	stored("trash")
	if st := c.call(t, "GET", "/api/ping", u.Key); st != 401 {
		t.Errorf("a trashed user's key: %d, want 401", st)
	}
	if tb.has("button", "Move to Trash") || tb.has("button", "Move to Inactive") {
		t.Error("a trashed user offers Move to Trash or Move to Inactive")
	}
	// In the list, under Trash.
	tb.open("#/w/acme/users?status=trash")
	tb.find("tr[data-user] a", "old-sensor")
	tb.click("Active")
	tb.waitFor("the active list", `![...document.querySelectorAll('tr[data-user]')].some((e) => e.dataset.user === 'old-sensor')`)
	tb.open("#/w/acme/users/" + u.ID)
	tb.click("Restore")
	badge("Inactive")
	stored("inactive")
	tb.click("Move to Trash")
	badge("Trash")
	tb.click("Delete")
	tb.find("dialog[open] h2", "Delete old-sensor?")
	tb.axe("the delete dialog")
	tb.check("Also erase its API messages", true)
	tb.find("dialog[open] button", "Delete")
	tb.click("Delete")
	tb.waitFor("the trash list", `document.querySelector('main h1') && document.querySelector('main h1').textContent === 'API Users' && location.hash.includes('status=trash')`)
	tb.status("old-sensor deleted.")
	if st := c.api(t, "GET", "/workspaces/acme/users/"+u.ID, c.Root, nil, nil); st != 404 {
		t.Errorf("the deleted user: %d, want 404", st)
	}
	var msgs struct{ Items []json.RawMessage }
	c.mustAPI(t, 200, "GET", "/workspaces/acme/messages?user="+u.ID, c.Root, nil, &msgs)
	if len(msgs.Items) != 0 {
		t.Errorf("%d messages left after erase messages", len(msgs.Items))
	}
	tb.noErrors()
}

// testKeys generates a key, regenerates it with a grace period, reveals
// and hides it, and revokes it, in the console.
func (c *consoleEnv) testKeys(t *testing.T, b *browser) {
	u := c.mkUser(t, map[string]any{"username": "key-ring", "kind": "api", "role": "api_user"})
	tb := c.ownerTab(t, b)
	tb.open("#/w/acme/users/" + u.ID)
	tb.find("p", "This user has no keys.")
	tb.click("Generate")
	tb.fill("Name", "ci")
	tb.click("Generate")
	tb.find("tr[data-key] th", "ci")
	first := c.keyFromPage(t, tb)
	if st := c.call(t, "GET", "/api/x", first); st != 200 {
		t.Fatalf("the generated key: %d", st)
	}

	tb.click("Regenerate: ci")
	tb.find("dialog[open] h2", "Regenerate ci")
	tb.choose("The old key keeps working", "1h")
	tb.axe("the regenerate dialog")
	tb.find("dialog[open] button", "Regenerate")
	tb.click("Regenerate")
	second := c.keyFromPage(t, tb)
	if second == first {
		t.Fatal("Regenerate showed the old key")
	}
	if st := c.call(t, "GET", "/api/x", second); st != 200 {
		t.Errorf("the regenerated key: %d", st)
	}
	if st := c.call(t, "GET", "/api/x", first); st != 200 {
		t.Errorf("the old key within its hour of grace: %d, want 200", st)
	}
	// The old key's row says until when it works, in UTC underneath.
	var keys struct {
		Items []struct {
			ID, Name  string
			RevokesAt string `json:"revokes_at"`
		}
	}
	c.mustAPI(t, 200, "GET", "/workspaces/acme/users/"+u.ID+"/keys", c.Root, nil, &keys)
	var newID string
	for _, k := range keys.Items {
		if k.RevokesAt == "" {
			newID = k.ID
			continue
		}
		tb.waitFor("the old key's end", fmt.Sprintf(`[...document.querySelectorAll('tr[data-key=%s] td')].some((td) => td.textContent.startsWith('stops working') && td.querySelector('time').dateTime === %s)`, k.ID, js(k.RevokesAt)))
	}
	tb.open("#/w/acme/users")
	tb.clickSel("key-ring", tb.find("tr[data-user] a", "key-ring"))
	tb.find("main h1", "key-ring")
	if tb.has("p", "Copy this key now: it will not be shown again (unless someone allowed to reveals it later).") {
		t.Error("the new key is still shown after the page was left")
	}
	row := fmt.Sprintf(`tr[data-key=%s]`, js(newID))
	tb.clickSel("Show API key", tb.find(row+" button", "Show API key: ci"))
	tb.waitFor("the revealed key", fmt.Sprintf(`(document.querySelector(%s) || {}).value === %s`, js(row+" .revealed input"), js(second)))
	tb.clickSel("Hide API key", tb.find(row+" button", "Hide API key: ci"))
	tb.waitFor("the key hidden", fmt.Sprintf(`!document.querySelector(%s)`, js(row+" .revealed input")))
	tb.clickSel("Copy", tb.find(row+" button", "Copy API key to the clipboard: ci"))
	tb.status("Copied")
	var clip string
	tb.eval("reading the clipboard", `navigator.clipboard.readText()`, &clip)
	if clip != second {
		t.Errorf("Copy put %.20q… on the clipboard, want the key", clip)
	}

	tb.clickSel("Revoke", tb.find(row+" button", "Revoke: ci"))
	tb.find("dialog[open] h2", "Revoke ci?")
	tb.find("dialog[open] button", "Revoke")
	tb.click("Revoke")
	tb.status("Key ci revoked.")
	if st := c.call(t, "GET", "/api/x", second); st != 401 {
		t.Errorf("the revoked key: %d, want 401", st)
	}
	tb.noErrors()
}

// keyFromPage copies the key shown once on the page and returns it.
func (c *consoleEnv) keyFromPage(t *testing.T, tb *tab) string {
	t.Helper()
	tb.find(".newkey p", "Copy this key now: it will not be shown again (unless someone allowed to reveals it later).")
	tb.clickSel("Show API key", tb.find(".newkey button", "Show API key"))
	var key string
	tb.eval("reading the new key", `document.querySelector('.newkey input').type === 'text' ? document.querySelector('.newkey input').value : ''`, &key)
	if !strings.HasPrefix(key, "ey") {
		t.Fatalf("the page shows %q, not a key", key)
	}
	return key
}

// testDialogKeyboard checks the Add API User dialog with the keyboard: the
// focus starts inside, Tab and Shift+Tab stay inside, Esc closes it and the
// focus returns to the button that opened it.
func (c *consoleEnv) testDialogKeyboard(t *testing.T, b *browser) {
	tb := c.ownerTab(t, b)
	tb.open("#/w/acme/users")
	tb.clickSel("Add API User", tb.find("main button", "Add API User"))
	tb.find("dialog[open] h2", "Add API User")
	if f := tb.focused(); f != "Username" {
		t.Errorf("the focus starts on %q, want Username", f)
	}
	inDialog := func() bool {
		var ok bool
		tb.eval("where the focus is", `!!document.activeElement.closest('dialog[open]')`, &ok)
		return ok
	}
	shiftTab := chromedp.KeyModifiers(input.ModifierShift)
	tb.key(kb.Tab, shiftTab)
	if f := tb.focused(); f != "Cancel" || !inDialog() {
		t.Errorf("Shift+Tab from the first field went to %q (in the dialog: %v), want Cancel", f, inDialog())
	}
	tb.key(kb.Tab)
	if f := tb.focused(); f != "Username" {
		t.Errorf("Tab from the last control went to %q, want Username", f)
	}
	for i := 0; i < 80; i++ {
		tb.key(kb.Tab)
		if !inDialog() {
			t.Fatalf("after %d Tabs the focus left the dialog for %q", i+1, tb.focused())
		}
	}
	tb.key(kb.Escape)
	tb.waitFor("the dialog to close", `!document.querySelector('dialog')`)
	if f := tb.focused(); f != "Add API User" {
		t.Errorf("after Esc the focus is on %q, want the Add API User button", f)
	}
	tb.noErrors()
}

// consoleStrings reads the console's strings table of lang.
func consoleStrings(t *testing.T, lang string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "admin", "console", "assets", "i18n", lang+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// labelsJS collects the labels of the screen (and of an open dialog):
// headings, legends, labels, buttons, links of the navigation, column
// headers, options of the filters, aria-labels and placeholders.
const labelsJS = `(() => {
	const norm = (s) => (s || '').replace(/\s+/g, ' ').trim();
	const root = document.querySelector('dialog[open]') || document;
	const out = [];
	root.querySelectorAll('h1, h2, h3, legend, label, button, nav a, thead th, caption, summary, p.hint, p.empty, .notice').forEach((e) => out.push(norm(e.textContent)));
	root.querySelectorAll('[aria-label]').forEach((e) => out.push(e.getAttribute('aria-label')));
	root.querySelectorAll('[placeholder]').forEach((e) => out.push(e.getAttribute('placeholder')));
	root.querySelectorAll('select[name=role] option, select[name=status] option, select[name=grace] option, select[name=action] option').forEach((e) => out.push(norm(e.textContent)));
	return out.filter(Boolean);
})()`

// englishLeft returns the labels that are still English: equal to an
// English string that German words differently (placeholders match any
// text; "label: name" counts as the label).
func englishLeft(labels []string, en, de map[string]string) []string {
	german := map[string]bool{}
	for _, v := range de {
		german[v] = true
	}
	var res []*regexp.Regexp
	for _, v := range en {
		if german[v] {
			continue // also a German label ("Name", "Teams")
		}
		pat := regexp.QuoteMeta(v)
		pat = regexp.MustCompile(`\\\{\w+\\\}`).ReplaceAllString(pat, ".+")
		res = append(res, regexp.MustCompile("^"+pat+"(: .+)?$"))
	}
	var left []string
	for _, l := range labels {
		for _, re := range res {
			if re.MatchString(l) {
				left = append(left, l)
				break
			}
		}
	}
	return left
}

// testLanguageAndZone switches a person's language to German in the
// profile (every label of every screen changes) and the time zone to Tokyo
// (the times shift; the API still answers UTC).
func (c *consoleEnv) testLanguageAndZone(t *testing.T, b *browser) {
	target := c.mkUser(t, map[string]any{"username": "zone-probe", "kind": "api", "role": "api_user", "issue_key": true})
	var team struct{ ID string }
	c.mustAPI(t, http.StatusCreated, "POST", "/workspaces/acme/teams", c.Root, map[string]any{"name": "night-shift"}, &team)
	var created struct {
		CreatedAt string `json:"created_at"`
	}
	c.mustAPI(t, 200, "GET", "/workspaces/acme/users/"+target.ID, c.Root, nil, &created)
	at, err := time.Parse(time.RFC3339Nano, created.CreatedAt)
	if err != nil || !strings.HasSuffix(created.CreatedAt, "Z") {
		t.Fatalf("created_at %q: not UTC (%v)", created.CreatedAt, err)
	}
	tb := c.person(t, b, "greta@acme.example", "admin")
	shownTime := func() (text, datetime string) {
		t.Helper()
		tb.open("#/w/acme/users?q=zone-probe")
		tb.find("tr[data-user] a", "zone-probe")
		var v [2]string
		tb.eval("reading the created time", `(() => { const e = document.querySelector('tr[data-user="zone-probe"] td:last-child time'); return [e.textContent, e.dateTime]; })()`, &v)
		return v[0], v[1]
	}
	txt, dt := shownTime()
	if !strings.Contains(txt, at.UTC().Format("15:04")) || dt != created.CreatedAt {
		t.Errorf("before: %q (datetime %q), want the UTC time %s", txt, dt, at.UTC().Format("15:04"))
	}

	tb.open("#/profile")
	tb.choose("Language", "de")
	tb.choose("Time zone", "Asia/Tokyo")
	tb.click("Save profile")
	tb.find("main h1", "Profil")
	tb.status("Profil gespeichert.")

	var me struct {
		Account struct{ Language, Timezone string }
	}
	c.withCookie(t, tb, "GET", "/me", nil, &me)
	if me.Account.Language != "de" || me.Account.Timezone != "Asia/Tokyo" {
		t.Errorf("after saving the profile, the account: %+v", me.Account)
	}

	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	txt, dt = shownTime()
	if !strings.Contains(txt, at.In(tokyo).Format("15:04")) || dt != created.CreatedAt {
		t.Errorf("in Tokyo: %q (datetime %q), want %s", txt, dt, at.In(tokyo).Format("15:04"))
	}
	c.mustAPI(t, 200, "GET", "/workspaces/acme/users/"+target.ID, c.Root, nil, &created)
	if !strings.HasSuffix(created.CreatedAt, "Z") {
		t.Errorf("the API answers created_at %q, not UTC", created.CreatedAt)
	}

	en, de := consoleStrings(t, "en"), consoleStrings(t, "de")
	german := map[string]bool{}
	for _, v := range de {
		german[v] = true
	}
	screens := []struct {
		name, frag string
		open       func()
	}{
		{"API-Benutzer", "#/w/acme/users", nil},
		{"API-Benutzer hinzufügen", "#/w/acme/users", func() { tb.clickSel("dialog", tb.find("main button", "API-Benutzer hinzufügen")) }},
		{"zone-probe", "#/w/acme/users/" + target.ID, nil},
		{"default neu erzeugen", "#/w/acme/users/" + target.ID, func() { tb.click("Neu erzeugen: default") }},
		{"Mitglieder", "#/w/acme/members", nil},
		{"Teams", "#/w/acme/teams", nil},
		{"Team anlegen", "#/w/acme/teams", func() { tb.clickSel("dialog", tb.find("main button", "Team anlegen")) }},
		{"night-shift", "#/w/acme/teams/" + team.ID, nil},
		{"Nachrichten", "#/w/acme/messages", nil},
		{"Prüfprotokoll", "#/w/acme/audit", nil},
		{"Profil", "#/profile", nil},
	}
	for _, sc := range screens {
		tb.open(sc.frag)
		if sc.open != nil {
			sc.open()
			tb.find("dialog[open] h2", sc.name)
		} else if h := tb.heading(); h != sc.name {
			t.Errorf("%s: heading %q", sc.frag, h)
		}
		var labels []string
		tb.eval("collecting labels", labelsJS, &labels)
		if left := englishLeft(labels, en, de); len(left) > 0 {
			t.Errorf("%s: still English: %q", sc.name, left)
		}
		n := 0
		for _, l := range labels {
			if german[l] {
				n++
			}
		}
		if n < 5 {
			t.Errorf("%s: only %d German labels among %q", sc.name, n, labels)
		}
		tb.axe(sc.name + " (de)")
		if sc.open != nil {
			tb.key(kb.Escape)
		}
	}
	tb.noErrors()
}

// buttonsJS lists the texts of the visible buttons of the page.
const buttonsJS = `[...document.querySelectorAll('button')].filter((e) => e.getClientRects().length > 0).map((e) => (e.getAttribute('aria-label') || e.textContent).replace(/\s+/g, ' ').trim())`

// testOffered checks that the console offers only what the caller may do:
// a viewer no mutation at all, an editor no user management, an admin no
// superadmin role.
func (c *consoleEnv) testOffered(t *testing.T, b *browser) {
	subject := c.mkUser(t, map[string]any{"username": "subject", "kind": "api", "role": "api_user", "issue_key": true})
	var team struct{ ID string }
	c.mustAPI(t, http.StatusCreated, "POST", "/workspaces/acme/teams", c.Root, map[string]any{"name": "readers"}, &team)
	c.mustAPI(t, http.StatusNoContent, "PUT", "/workspaces/acme/teams/"+team.ID+"/members/"+subject.ID, c.Root, nil, nil)
	c.mkUser(t, map[string]any{"username": "mia", "kind": "member", "role": "viewer", "email": "mia@example.com"})

	// Buttons that change nothing: paging, filters, the status tabs.
	harmless := map[string]bool{
		"Previous page": true, "Next page": true, "Apply": true,
		"Active": true, "Inactive": true, "Trash": true, "All": true, "Sign out": true,
	}
	screens := func(teamID, userID string) []string {
		return []string{"#/w/acme/users", "#/w/acme/users/" + userID, "#/w/acme/members", "#/w/acme/teams",
			"#/w/acme/teams/" + teamID, "#/w/acme/messages", "#/w/acme/audit"}
	}
	noMutation := func(t *testing.T, tb *tab, who string, frags []string) {
		t.Helper()
		for _, f := range frags {
			tb.open(f)
			var buttons []string
			tb.eval("listing buttons", buttonsJS, &buttons)
			for _, bt := range buttons {
				if !harmless[bt] {
					t.Errorf("%s on %s is offered %q", who, f, bt)
				}
			}
			if n := len(tb.texts("main input:not([type=search]):not([type=datetime-local]):not([name=user]):not([name=actor]):not([name=target]), main textarea")); n > 0 {
				t.Errorf("%s on %s is offered %d fields to edit", who, f, n)
			}
			tb.axe(who + " on " + f)
		}
	}

	t.Run("viewer", func(t *testing.T) {
		tb := c.person(t, b, "vic@acme.example", "viewer")
		tb.open("")
		if h := tb.heading(); h != "Profile" {
			t.Errorf("a viewer lands on %q, want Profile", h)
		}
		if nav := tb.texts("nav.side a"); len(nav) != 0 {
			t.Errorf("a viewer's navigation offers %q", nav)
		}
		tb.find("nav.side p", "There is nothing here you may administer.")
		// Its screens offer no mutation (its own profile aside).
		tb.open("#/w/acme/users")
		if h := tb.heading(); h != "Profile" {
			t.Errorf("a viewer opening API Users lands on %q", h)
		}
		tb.noErrors()
	})
	t.Run("viewer who may read", func(t *testing.T) {
		tb := c.person(t, b, "vera@acme.example", "viewer", "users.read", "audit.read", "messages.read")
		tb.open("")
		if h := tb.heading(); h != "API Users" {
			t.Fatalf("a reading viewer lands on %q", h)
		}
		tb.find("tr[data-user] a", "subject")
		noMutation(t, tb, "a viewer", screens(team.ID, subject.ID))
		tb.noErrors()
	})
	t.Run("editor", func(t *testing.T) {
		tb := c.person(t, b, "eddie@acme.example", "editor")
		tb.open("#/w/acme/users")
		tb.find("tr[data-user] a", "subject")
		noMutation(t, tb, "an editor", screens(team.ID, subject.ID))
		if !tb.has("nav.side a", "Audit log") || !tb.has("nav.side a", "Messages") {
			t.Error("an editor is not offered the audit log and the messages")
		}
		tb.noErrors()
	})
	t.Run("admin", func(t *testing.T) {
		tb := c.person(t, b, "ada@acme.example", "admin")
		tb.open("#/w/acme/users")
		tb.clickSel("Add API User", tb.find("main button", "Add API User"))
		roles := tb.options("Role")
		if slices.Contains(roles, "superadmin") || !slices.Contains(roles, "admin") || !slices.Contains(roles, "api_basic") {
			t.Errorf("an admin is offered the roles %v", roles)
		}
		if tb.has("label", "Manage workspaces (workspaces.manage)") {
			t.Error("an admin is offered workspaces.manage")
		}
		tb.key(kb.Escape)
		// The superadmin's page is read-only for an admin.
		var root struct{ Items []apitest.User }
		c.mustAPI(t, 200, "GET", "/workspaces/acme/users?q=root", c.Root, nil, &root)
		tb.open("#/w/acme/users/" + root.Items[0].ID)
		var buttons []string
		tb.eval("listing buttons", buttonsJS, &buttons)
		if len(buttons) != 1 || buttons[0] != "Sign out" {
			t.Errorf("an admin is offered %q on a superadmin's page", buttons)
		}
		tb.noErrors()
	})
}

// testWithinRights: an admin lacks workspaces.manage; an API user and a
// member that hold it (through a team, and of their own) are beyond the
// admin, though their roles are below its own. For them the console
// offers no Edit, no status move, no key action and no team change, as
// their "allowed" says; for users within the admin's rights it offers
// them all.
func (c *consoleEnv) testWithinRights(t *testing.T, b *browser) {
	var team struct{ ID string }
	c.mustAPI(t, http.StatusCreated, "POST", "/workspaces/acme/teams", c.Root, map[string]any{"name": "workspace managers", "permissions": []string{"workspaces.manage"}}, &team)
	within := c.mkUser(t, map[string]any{"username": "within-1", "kind": "api", "role": "api_user", "issue_key": true})
	beyond := c.mkUser(t, map[string]any{"username": "beyond-1", "kind": "api", "role": "api_user", "issue_key": true})
	c.mustAPI(t, http.StatusNoContent, "PUT", "/workspaces/acme/teams/"+team.ID+"/members/"+beyond.ID, c.Root, nil, nil)
	c.mkUser(t, map[string]any{"username": "wanda", "kind": "member", "role": "viewer", "email": "wanda@example.com"})
	c.mkUser(t, map[string]any{"username": "will", "kind": "member", "role": "viewer", "email": "will@example.com", "permissions": []string{"workspaces.manage"}})

	tb := c.person(t, b, "adele@acme.example", "admin")
	buttons := func() []string {
		var out []string
		tb.eval("listing buttons", buttonsJS, &out)
		return out
	}
	// Within its rights: everything an API user's page has.
	tb.open("#/w/acme/users/" + within.ID)
	tb.find("main h2", "API keys")
	got := buttons()
	for _, want := range []string{"Move to Inactive", "Move to Trash", "Generate", "Show API key: default", "Copy API key to the clipboard: default",
		"Regenerate: default", "Revoke: default", "Save API User", "Set password"} {
		if !slices.Contains(got, want) {
			t.Errorf("on a user within its rights an admin is not offered %q (offered %q)", want, got)
		}
	}
	// Beyond them: the page reads, and offers nothing.
	tb.open("#/w/acme/users/" + beyond.ID)
	tb.find("main h1", "beyond-1")
	tb.find("dl.details dt", "Role")
	if got := buttons(); !slices.Equal(got, []string{"Sign out"}) {
		t.Errorf("on a user holding a right through a team that the admin lacks, it is offered %q", got)
	}
	if tb.has("main h2", "API keys") || len(tb.texts("main input, main select, main textarea")) > 0 {
		t.Error("a user beyond the admin's rights shows its keys or fields to edit")
	}
	tb.axe("a user beyond the caller's rights")
	// The Members screen: the same, row by row.
	tb.open("#/w/acme/members")
	tb.find("tr[data-user] a", "will@example.com")
	got = buttons()
	for _, want := range []string{"Edit: wanda@example.com", "Deactivate: wanda@example.com"} {
		if !slices.Contains(got, want) {
			t.Errorf("on a member within its rights an admin is not offered %q (offered %q)", want, got)
		}
	}
	for _, bt := range got {
		if strings.HasSuffix(bt, ": will@example.com") {
			t.Errorf("on a member holding workspaces.manage an admin is offered %q", bt)
		}
	}
	// The team's page: no Remove from team for a member beyond it, and, as
	// the team gives what the admin lacks, no adding members either.
	tb.open("#/w/acme/teams/" + team.ID)
	tb.find("tr[data-user] a", "beyond-1")
	if tb.has("tr[data-user] button", "Remove from team: beyond-1") {
		t.Error("an admin is offered to remove a member beyond its rights from a team")
	}
	if tb.has("label", "Add a member") {
		t.Error("an admin is offered to add members to a team that gives what it lacks")
	}
	tb.noErrors()
}

// testTeams creates a team with a permission and team-wide access to all
// devices, adds a member, renames the team, removes the member and deletes
// the team, in the console; the member's key gains and loses the rights.
func (c *consoleEnv) testTeams(t *testing.T, b *browser) {
	u := c.mkUser(t, map[string]any{"username": "tech-1", "kind": "api", "role": "api_user", "issue_key": true})
	if st := c.call(t, "POST", "/devices/pump-3/restart", u.Key); st != 403 {
		t.Fatalf("before the team: %d, want 403", st)
	}
	tb := c.ownerTab(t, b)
	tb.open("#/w/acme/teams")
	tb.clickSel("Create team", tb.find("main button", "Create team"))
	tb.fill("Name", "technicians")
	tb.checkIn("Workspace Permissions", "View statistics (stats.read)")
	tb.checkIn("Team-wide access to all devices", "Control")
	tb.axe("the Create team dialog")
	tb.find("dialog[open] button", "Create team")
	tb.click("Create team")
	tb.find("main h1", "technicians")
	tb.status("Team technicians created.")
	var teams struct {
		Items []struct {
			ID, Name    string
			Permissions []string
			Grants      []struct {
				Resource string
				Rights   []string
			}
		}
	}
	c.mustAPI(t, 200, "GET", "/workspaces/acme/teams?limit=500", c.Root, nil, &teams)
	var tid string
	for _, tm := range teams.Items {
		if tm.Name == "technicians" {
			tid = tm.ID
			if !slices.Equal(tm.Permissions, []string{"stats.read"}) || len(tm.Grants) != 1 || tm.Grants[0].Resource != "device:*" || !slices.Equal(tm.Grants[0].Rights, []string{"control"}) {
				t.Errorf("the team as stored: %+v", tm)
			}
		}
	}
	if tid == "" {
		t.Fatal("the team was not created")
	}
	tb.fill("Add a member", "tech")
	tb.click("Add tech-1")
	tb.status("tech-1 added to the team.")
	tb.find("tr[data-user] a", "tech-1")
	if st := c.call(t, "POST", "/devices/pump-3/restart", u.Key); st != 200 {
		t.Errorf("a member of a team with device:* control: %d, want 200", st)
	}
	tb.axe("the team's page")

	tb.fill("Name", "field technicians")
	tb.click("Save team")
	tb.find("main h1", "field technicians")
	tb.clickSel("remove", tb.find("tr[data-user] button", "Remove from team: tech-1"))
	tb.status("tech-1 removed from the team.")
	if st := c.call(t, "POST", "/devices/pump-3/restart", u.Key); st != 403 {
		t.Errorf("after leaving the team: %d, want 403", st)
	}
	tb.open("#/w/acme/teams")
	tb.find("tr[data-team] a", "field technicians")
	tb.axe("Teams")
	tb.clickSel("the team", tb.find("tr[data-team] a", "field technicians"))
	tb.find("main h1", "field technicians")
	tb.clickSel("Delete team", tb.find("main button", "Delete team"))
	tb.find("dialog[open] button", "Delete team")
	tb.click("Delete team")
	tb.find("main h1", "Teams")
	if st := c.api(t, "GET", "/workspaces/acme/teams/"+tid, c.Root, nil, nil); st != 404 {
		t.Errorf("the deleted team: %d", st)
	}
	tb.noErrors()
}

// testMessages: an api_user's calls are recorded; in the console it sees
// its own messages and no user filter; an admin sees everyone's and
// filters by user and time.
func (c *consoleEnv) testMessages(t *testing.T, b *browser) {
	mine := c.mkUser(t, map[string]any{"username": "caller-a", "kind": "api", "role": "api_user", "issue_key": true})
	other := c.mkUser(t, map[string]any{"username": "caller-b", "kind": "api", "role": "api_user", "issue_key": true})
	for _, p := range []string{"/api/a-1", "/api/a-2"} {
		if st := c.call(t, "GET", p, mine.Key); st != 200 {
			t.Fatalf("%s: %d", p, st)
		}
	}
	if st := c.call(t, "GET", "/api/b-1", other.Key); st != 200 {
		t.Fatal(st)
	}
	// Messages are written off the request path: wait for them.
	apitest.Poll(t, "the messages", 5*time.Second, func() bool {
		var m struct{ Items []json.RawMessage }
		c.mustAPI(t, 200, "GET", "/workspaces/acme/messages?user="+other.ID, c.Root, nil, &m)
		var n struct{ Items []json.RawMessage }
		c.mustAPI(t, 200, "GET", "/workspaces/acme/messages?user="+mine.ID, c.Root, nil, &n)
		return len(m.Items) == 1 && len(n.Items) == 2
	})

	tb := b.newTab(t, c.console, mine.Key)
	tb.open("")
	if h := tb.heading(); h != "Messages" {
		t.Fatalf("an api_user lands on %q, want Messages", h)
	}
	tb.find("p.notice", "You see the API messages of your own calls.")
	if tb.has("label", "User") {
		t.Error("an api_user is offered a user filter")
	}
	paths := tb.texts("tbody th.path")
	if !slices.Equal(paths, []string{"/api/a-2", "/api/a-1"}) {
		t.Errorf("an api_user sees %q, want its own two calls, newest first", paths)
	}
	tb.axe("Messages (api_user)")
	tb.noErrors()

	ad := c.ownerTab(t, b)
	ad.open("#/w/acme/messages")
	if paths := ad.texts("tbody th.path"); !slices.Contains(paths, "/api/b-1") || !slices.Contains(paths, "/api/a-1") {
		t.Errorf("an admin sees %q", paths)
	}
	ad.fill("User", "caller-b")
	ad.click("Apply")
	ad.waitFor("the filtered list", `[...document.querySelectorAll('tbody th.path')].map((e) => e.textContent).join() === '/api/b-1'`)
	if users := ad.texts("tbody td:nth-child(2)"); !slices.Equal(users, []string{"caller-b"}) {
		t.Errorf("the user column shows %q", users)
	}
	// A time window in the future holds nothing.
	ad.fill("From", time.Now().Add(48*time.Hour).Format("01022006")+"\t1000AM")
	ad.click("Apply")
	ad.find("p.empty", "No messages.")
	ad.axe("Messages")
	ad.noErrors()
}

// testAudit filters the audit log by action, actor and target.
func (c *consoleEnv) testAudit(t *testing.T, b *browser) {
	ada := c.mkUser(t, map[string]any{"username": "auditor-ada", "kind": "api", "role": "admin", "issue_key": true})
	target := c.mkUser(t, map[string]any{"username": "audited", "kind": "api", "role": "api_user", "issue_key": true})
	c.mustAPI(t, 200, "POST", "/workspaces/acme/users/"+target.ID+"/status", ada.Key, map[string]any{"status": "inactive"}, nil)
	c.mustAPI(t, http.StatusNoContent, "DELETE", "/workspaces/acme/users/"+target.ID+"/keys/"+target.KeyID, ada.Key, nil, nil)

	tb := c.ownerTab(t, b)
	tb.open("#/w/acme/audit")
	if n := len(tb.texts("tbody tr")); n < 5 {
		t.Errorf("the audit log shows %d entries: %s", n, tb.pageText())
	}
	tb.choose("Action", "key.revoke")
	tb.fill("Actor", "auditor-ada")
	tb.click("Apply")
	tb.waitFor("the filtered log", `document.querySelectorAll('tbody tr').length === 1`)
	row := tb.texts("tbody tr td, tbody tr th")
	if len(row) < 4 || row[1] != "auditor-ada" || row[2] != "Key revoked" {
		t.Errorf("the filtered entry: %q", row)
	}
	tb.choose("Action", "")
	tb.fill("Actor", "")
	tb.fill("Target", "audited")
	tb.click("Apply")
	tb.waitFor("the target's entries", `document.querySelectorAll('tbody tr').length === 2`)
	if got := tb.texts("tbody th"); !slices.Equal(got, []string{"User status changed", "User created"}) {
		t.Errorf("entries of audited: %q", got)
	}
	tb.clickSel("details", tb.find("tbody summary", "Changed: status"))
	tb.find("tbody .changes dd", `"active" → "inactive"`)
	tb.axe("the audit log")
	tb.noErrors()
}

// testMembers edits a member's role and permissions and deactivates and
// activates it from the Members tab.
func (c *consoleEnv) testMembers(t *testing.T, b *browser) {
	m := c.mkUser(t, map[string]any{"username": "marta", "kind": "member", "role": "viewer", "email": "marta@example.com"})
	tb := c.ownerTab(t, b)
	tb.open("#/w/acme/members")
	tb.find("tr[data-user] a", "marta@example.com")
	tb.axe("Members")
	if tb.has("button", "Send new invite: marta@example.com") {
		t.Error("an active member is offered Send new invite")
	}
	tb.clickSel("Edit", tb.find("tr[data-user] button", "Edit: marta@example.com"))
	tb.find("dialog[open] h2", "Edit marta@example.com")
	if roles := tb.options("Role"); slices.Contains(roles, "api_user") || !slices.Contains(roles, "editor") {
		t.Errorf("a member is offered the roles %v", roles)
	}
	tb.choose("Role", "operator")
	tb.checkIn("Workspace Permissions", "Read users (users.read)")
	tb.axe("the Edit member dialog")
	tb.find("dialog[open] button", "Save")
	tb.click("Save")
	tb.status("marta@example.com saved.")
	var got apitest.User
	c.mustAPI(t, 200, "GET", "/workspaces/acme/users/"+m.ID, c.Root, nil, &got)
	if got.Role != "operator" || !slices.Equal(got.Permissions, []string{"users.read"}) {
		t.Errorf("the member as stored: role %s, permissions %v", got.Role, got.Permissions)
	}
	tb.clickSel("Deactivate", tb.find("tr[data-user] button", "Deactivate: marta@example.com"))
	tb.status("Status changed to Inactive.")
	tb.clickSel("Activate", tb.find("tr[data-user] button", "Activate: marta@example.com"))
	tb.status("Status changed to Active.")
	c.mustAPI(t, 200, "GET", "/workspaces/acme/users/"+m.ID, c.Root, nil, &got)
	if got.Status != "active" {
		t.Errorf("status %s", got.Status)
	}
	tb.noErrors()
}

// testSearchAndPaging pages through 120 API users 50 at a time and finds
// them by prefix; the server does the searching (the search asks for a
// prefix and gets only the matches).
func (c *consoleEnv) testSearchAndPaging(t *testing.T, b *browser) {
	var users []map[string]any
	for i := 0; i < 120; i++ {
		users = append(users, map[string]any{"username": fmt.Sprintf("bulk-%03d", i), "kind": "api", "role": "api_user"})
	}
	for _, u := range users {
		c.mkUser(t, u)
	}
	tb := c.ownerTab(t, b)
	tb.open("#/w/acme/users?q=bulk-")
	tb.waitFor("a full page", `document.querySelectorAll('tr[data-user]').length === 50`)
	first := tb.texts("tr[data-user] th")
	tb.click("Next page")
	tb.waitFor("page 2", `[...document.querySelectorAll('.pager span')].some((e) => e.textContent === 'Page 2')`)
	second := tb.texts("tr[data-user] th")
	tb.click("Next page")
	tb.waitFor("page 3", `[...document.querySelectorAll('.pager span')].some((e) => e.textContent === 'Page 3')`)
	third := tb.texts("tr[data-user] th")
	seen := map[string]bool{}
	for _, n := range slices.Concat(first, second, third) {
		seen[n] = true
	}
	if len(first) != 50 || len(second) != 50 || len(third) != 20 || len(seen) != 120 {
		t.Errorf("pages of %d, %d and %d users, %d different", len(first), len(second), len(third), len(seen))
	}
	if tb.has("button:not([disabled])", "Next page") {
		t.Error("the last page offers Next page")
	}
	tb.click("Previous page")
	tb.waitFor("page 2 again", `[...document.querySelectorAll('.pager span')].some((e) => e.textContent === 'Page 2')`)
	if again := tb.texts("tr[data-user] th"); !slices.Equal(again, second) {
		t.Error("Previous page shows another page 2")
	}

	tb.fill("Search", "bulk-11")
	tb.waitFor("the matches", `document.querySelectorAll('tr[data-user]').length === 10`)
	// A search lists in the order of the names.
	if got := tb.texts("tr[data-user] th"); !slices.Equal(got, []string{"bulk-110", "bulk-111", "bulk-112", "bulk-113", "bulk-114", "bulk-115", "bulk-116", "bulk-117", "bulk-118", "bulk-119"}) {
		t.Errorf("bulk-11…: %q", got)
	}
	if !strings.Contains(tb.location(), "q=bulk-11") {
		t.Errorf("the search is not in the address: %s", tb.location())
	}
	tb.fill("Search", "nobody-here")
	tb.find("p.empty", "No API user starts with “nobody-here”.")
	tb.noErrors()
}

// withCookie calls the admin API with the session cookie of the tab's
// browser (as the console's own pages would, same-origin) and decodes the
// JSON answer into out; it fails the test unless the answer is a 2xx.
func (c *consoleEnv) withCookie(t *testing.T, tb *tab, method, path string, body, out any) {
	t.Helper()
	h := http.Header{"Cookie": {"apiusers_session=" + tb.cookie("apiusers_session")}}
	if method != "GET" {
		h.Set("Origin", c.Base)
	}
	res, b := c.Do(t, method, "/admin"+path, h, body)
	if res.StatusCode >= 300 {
		t.Fatalf("%s %s with the cookie: %d %s", method, path, res.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatal(err)
		}
	}
}

// tokenOf returns the token query parameter of a one-time link.
func tokenOf(t *testing.T, link string) string {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil || u.Query().Get("token") == "" {
		t.Fatalf("%q is not a link with a token (%v)", link, err)
	}
	return u.Query().Get("token")
}

// tokens are the one-time tokens the tests saw, which the access log must
// not hold.
var consoleTokens []string

// openLink opens a one-time link (from a mail or the bootstrap command) in
// tb and waits for its page.
func (c *consoleEnv) openLink(t *testing.T, tb *tab, link, heading string) {
	t.Helper()
	consoleTokens = append(consoleTokens, tokenOf(t, link))
	tb.run("opening "+heading, chromedp.Navigate(link))
	tb.find("main h1", heading)
	tb.settle()
	if loc := tb.location(); strings.Contains(loc, "token") {
		t.Errorf("the token stays in the address bar: %s", loc)
	}
}

// testBootstrapLink: the first superadmin opens the link the bootstrap
// command printed, chooses a name and a password, is signed in, signs out
// and signs in again.
func (c *consoleEnv) testBootstrapLink(t *testing.T, b *browser) {
	if c.ownerPassword != "" {
		t.Skip("the owner is set up already")
	}
	tb := b.newPerson(t, c.console)
	c.openLink(t, tb, c.setupLink, "Accept invitation")
	tb.screenshot("accept")
	tb.axe("Accept invitation")
	tb.fill("Name", "Olga Owner")
	tb.fill("New Password", consolePassword)
	tb.fill("New Password Again", consolePassword+"!")
	tb.clickSel("Accept", tb.find("form button", "Accept invitation"))
	var msg string
	tb.eval("the mismatch", `document.querySelector('input[name=new_password_again]').validationMessage || 'none'`, &msg)
	if tb.heading() != "Accept invitation" {
		t.Fatal("two different passwords were accepted")
	}
	tb.fill("New Password Again", consolePassword)
	tb.clickSel("Accept", tb.find("form button", "Accept invitation"))
	c.ownerPassword = consolePassword
	tb.waitFor("the console", `!!document.querySelector('nav.side')`)
	tb.settle()
	if h := tb.heading(); h != "API Users" {
		t.Errorf("after accepting, the heading is %q", h)
	}
	if who := tb.texts("nav.account a"); len(who) != 1 || who[0] != "Profile: Olga Owner" {
		t.Errorf("the account link says %q", who)
	}
	// The link works once.
	c.mustAPI(t, http.StatusGone, "POST", "/invitations/accept", "", map[string]any{"token": tokenOf(t, c.setupLink), "password": consolePassword}, nil)

	tb.click("Sign out")
	tb.find("main h1", "Sign in")
	tb.screenshot("sign-in")
	tb.axe("Sign in")
	tb.fill("Email", c.ownerEmail)
	tb.fill("Password", "wrong password, surely wrong")
	tb.clickSel("Sign in", tb.find("form button", "Sign in"))
	tb.find("[role=alert]", "Wrong email or password.")
	tb.fill("Password", consolePassword)
	tb.clickSel("Sign in", tb.find("form button", "Sign in"))
	tb.find("main h1", "API Users")
	c.ownerSession = tb.cookie("apiusers_session")
	tb.noErrors()
}

// testInvite: the owner invites a member in the console; the mail arrives;
// the member accepts in the browser and is signed in. A second invitee's
// first link dies when the owner sends a new invite.
func (c *consoleEnv) testInvite(t *testing.T, b *browser) {
	owner := c.ownerTab(t, b)
	owner.open("#/w/acme/members")
	owner.clickSel("Invite member", owner.find("main button", "Invite member"))
	owner.fill("Email", "nia@acme.example")
	if roles := owner.options("Role"); slices.Contains(roles, "api_user") || !slices.Contains(roles, "superadmin") {
		t.Errorf("the invitation offers the roles %v", roles)
	}
	owner.choose("Role", "editor")
	owner.checkIn("Workspace Permissions", "Manage teams (teams.manage)")
	owner.axe("Invite member")
	owner.find("dialog[open] button", "Invite member")
	owner.click("Invite member")
	owner.status("Invitation sent to nia@acme.example.")
	owner.find("tr[data-user] a", "nia@acme.example")
	owner.find("tr[data-user] .badge", "Invited")
	m := c.mailTo(t, "nia@acme.example")
	link := linkIn(t, m)

	nia := b.newPerson(t, c.console)
	c.openLink(t, nia, link, "Accept invitation")
	nia.fill("Name", "Nia Novak")
	nia.fill("New Password", consolePassword)
	nia.fill("New Password Again", consolePassword)
	nia.clickSel("Accept", nia.find("form button", "Accept invitation"))
	nia.waitFor("the console", `!!document.querySelector('nav.side')`)
	nia.find("main h1", "API Users")
	if nia.has("main button", "Add API User") {
		t.Error("an editor is offered Add API User")
	}
	nia.click("Sign out")
	c.signIn(t, nia, "nia@acme.example", consolePassword)
	nia.find("main h1", "API Users")
	nia.noErrors()

	owner.open("#/w/acme/members")
	owner.find("tr[data-user] .badge", "Active")

	// Send new invite: the first link dies, the new one works.
	owner.clickSel("Invite member", owner.find("main button", "Invite member"))
	owner.fill("Email", "otto@acme.example")
	owner.choose("Role", "viewer")
	owner.find("dialog[open] button", "Invite member")
	owner.click("Invite member")
	owner.status("Invitation sent to otto@acme.example.")
	first := linkIn(t, c.mailTo(t, "otto@acme.example"))
	owner.clickSel("Send new invite", owner.find("tr[data-user] button", "Send new invite: otto@acme.example"))
	owner.status("Invitation sent to otto@acme.example.")
	second := linkIn(t, c.mailTo(t, "otto@acme.example"))
	if first == second {
		t.Fatal("Send new invite sent the same link")
	}
	otto := b.newPerson(t, c.console)
	c.openLink(t, otto, first, "Accept invitation")
	otto.fill("New Password", consolePassword)
	otto.fill("New Password Again", consolePassword)
	otto.clickSel("Accept", otto.find("form button", "Accept invitation"))
	otto.find("[role=alert]", "This link is no longer valid: it was used, has expired or was replaced by a newer one.")
	c.openLink(t, otto, second, "Accept invitation")
	otto.fill("New Password", consolePassword)
	otto.fill("New Password Again", consolePassword)
	otto.clickSel("Accept", otto.find("form button", "Accept invitation"))
	otto.waitFor("the console", `!!document.querySelector('nav.side')`)
	otto.settle()
	if h := otto.heading(); h != "Profile" {
		t.Errorf("a viewer lands on %q", h)
	}
	otto.noErrors()
	owner.noErrors()
}

// testPasswords: the owner sends a member a reset link; the member sets a
// new password from it; "Forgot password?" does the same from the sign-in
// screen; the profile changes a password with the current one.
func (c *consoleEnv) testPasswords(t *testing.T, b *browser) {
	pia := c.person(t, b, "pia@acme.example", "operator")
	owner := c.ownerTab(t, b)
	owner.open("#/w/acme/members")
	owner.clickSel("Reset password", owner.find("tr[data-user] button", "Reset password: pia@acme.example"))
	owner.status("A link to set a new password was sent to pia@acme.example.")
	link := linkIn(t, c.mailTo(t, "pia@acme.example"))
	if !strings.Contains(link, "/admin/reset?token=") {
		t.Fatalf("the reset link %s", link)
	}
	const second = "a second long passphrase, 2026"
	tb := b.newPerson(t, c.console)
	c.openLink(t, tb, link, "Set a new password")
	tb.axe("Set a new password")
	tb.fill("New Password", second)
	tb.fill("New Password Again", second)
	tb.clickSel("Set password", tb.find("form button", "Set password"))
	tb.find("p.notice", "Your password was changed. Sign in with the new one.")
	tb.click("Go to sign in")
	tb.find("main h1", "Sign in")
	tb.fill("Email", "pia@acme.example")
	tb.fill("Password", consolePassword)
	tb.clickSel("Sign in", tb.find("form button", "Sign in"))
	tb.find("[role=alert]", "Wrong email or password.")
	tb.fill("Password", second)
	tb.clickSel("Sign in", tb.find("form button", "Sign in"))
	tb.waitFor("the console", `!!document.querySelector('nav.side')`)
	// The reset ended pia's other session: its first tab is signed out.
	pia.reload()
	pia.find("main h1", "Sign in")

	// Forgot password?
	fp := b.newPerson(t, c.console)
	fp.open("")
	fp.click("Forgot password?")
	fp.find("main h1", "Forgot password?")
	fp.axe("Forgot password?")
	fp.fill("Email", "pia@acme.example")
	fp.clickSel("Send reset link", fp.find("form button", "Send reset link"))
	fp.find("p.notice", "If the address belongs to an account, a link to set a new password has been sent. It is valid for one hour.")
	const third = "third passphrase for pia, longer"
	c.openLink(t, fp, linkIn(t, c.mailTo(t, "pia@acme.example")), "Set a new password")
	fp.fill("New Password", third)
	fp.fill("New Password Again", third)
	fp.clickSel("Set password", fp.find("form button", "Set password"))
	fp.find("p.notice", "Your password was changed. Sign in with the new one.")
	// An unknown address gets the same answer, and no mail.
	fp.open("#/forgot")
	fp.fill("Email", "nobody@acme.example")
	fp.clickSel("Send reset link", fp.find("form button", "Send reset link"))
	fp.find("p.notice", "If the address belongs to an account, a link to set a new password has been sent. It is valid for one hour.")

	// Profile: Current Password, New Password, New Password Again.
	c.signIn(t, fp, "pia@acme.example", third)
	fp.open("#/profile")
	fp.axe("Profile")
	fp.fill("Current Password", "not the password at all")
	fp.fill("New Password", consolePassword)
	fp.fill("New Password Again", consolePassword)
	fp.clickSel("Change password", fp.find("form button", "Change password"))
	fp.find("[role=alert]", "The current password is wrong.")
	fp.fill("Current Password", third)
	fp.fill("New Password", consolePassword)
	fp.fill("New Password Again", consolePassword)
	fp.clickSel("Change password", fp.find("form button", "Change password"))
	fp.status("Password changed. Your other sessions have ended.")
	c.smtp.None(t)
	again := b.newPerson(t, c.console)
	c.signIn(t, again, "pia@acme.example", consolePassword)
	fp.noErrors()
	owner.noErrors()
}

// testSessions: the owner sees a member's console sessions on its page and
// ends one; the member's tab is signed out.
func (c *consoleEnv) testSessions(t *testing.T, b *browser) {
	raj := c.person(t, b, "raj@acme.example", "viewer")
	var list struct{ Items []apitest.User }
	c.mustAPI(t, 200, "GET", "/workspaces/acme/users?q=raj%40", c.Root, nil, &list)
	if len(list.Items) != 1 {
		t.Fatalf("raj: %d users", len(list.Items))
	}
	owner := c.ownerTab(t, b)
	owner.open("#/w/acme/users/" + list.Items[0].ID)
	owner.find("main h2", "Sessions")
	if n := len(owner.texts("tr[data-session]")); n != 1 {
		t.Fatalf("%d sessions listed, want raj's one", n)
	}
	owner.find("tr[data-session] th", "Console")
	owner.axe("a member's page with sessions")
	owner.click("End session")
	owner.status("Session ended.")
	owner.find("p.empty", "No open sessions.")
	raj.reload()
	raj.find("main h1", "Sign in")
	owner.noErrors()
}

// testWorkspaces: a person in two workspaces switches between them.
func (c *consoleEnv) testWorkspaces(t *testing.T, b *browser) {
	c.mustAPI(t, http.StatusCreated, "POST", "/workspaces", c.Root, map[string]any{"id": "beta", "name": "Beta Corp"}, nil)
	c.mustAPI(t, http.StatusCreated, "POST", "/workspaces/beta/users", c.Root, map[string]any{"username": "beta-bot", "kind": "api", "role": "api_user"}, nil)
	sam := c.person(t, b, "sam@acme.example", "admin")
	c.mustAPI(t, http.StatusCreated, "POST", "/workspaces/beta/invitations", c.Root, map[string]any{"email": "sam@acme.example", "role": "viewer", "permissions": []string{"users.read"}}, nil)
	link := linkIn(t, c.mailTo(t, "sam@acme.example"))
	// Signed in already: accepting needs no password.
	c.openLink(t, sam, link, "Accept invitation")
	sam.find("form p", "You are signed in as sam@acme.example. Accept the invitation to join the workspace.")
	sam.clickSel("Accept", sam.find("form button", "Accept invitation"))
	sam.waitFor("the console", `!!document.querySelector('nav.side')`)
	sam.settle()
	if ws := sam.options("Workspace"); !slices.Equal(ws, []string{"acme", "beta"}) {
		t.Fatalf("the switcher offers %v", ws)
	}
	sam.open("#/w/acme/users")
	if !sam.has("main button", "Add API User") {
		t.Error("an admin of acme is not offered Add API User in acme")
	}
	sam.choose("Workspace", "beta")
	sam.waitFor("beta's users", `location.hash.startsWith('#/w/beta/users')`)
	sam.settle()
	sam.find("tr[data-user] a", "beta-bot")
	if sam.has("main button", "Add API User") {
		t.Error("a viewer of beta is offered Add API User in beta")
	}
	var sel string
	sam.eval("the switcher", `document.getElementById('ws-switch').selectedOptions[0].textContent`, &sel)
	if sel != "Beta Corp (beta)" {
		t.Errorf("the switcher shows %q", sel)
	}
	sam.noErrors()
}

// testCrossSite: a page on another site posts a form to the admin API
// while the owner is signed in: nothing changes. The browser does not send
// the SameSite=Strict cookie along, and the API refuses a cookie request
// from another origin even when it has the cookie.
func (c *consoleEnv) testCrossSite(t *testing.T, b *browser) {
	owner := c.ownerTab(t, b)
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><title>prize</title>
<form id="f" method="POST" enctype="text/plain" action="%s/admin/workspaces/acme/users">
<input name='{"username":"evil-%s","kind":"api","role":"superadmin","x":"' value='"}'>
</form><script>document.getElementById('f').submit()</script>`, c.Base, "1")
	}))
	t.Cleanup(evil.Close)
	owner.run("visiting the other site", chromedp.Navigate(evil.URL))
	time.Sleep(time.Second)
	var found struct{ Items []apitest.User }
	c.mustAPI(t, 200, "GET", "/workspaces/acme/users?q=evil", c.Root, nil, &found)
	if len(found.Items) != 0 {
		t.Fatalf("the cross-site form created %v", found.Items)
	}
	// With the stolen cookie and a foreign Origin (or Sec-Fetch-Site).
	cookie := owner.cookie("apiusers_session")
	for _, h := range []http.Header{
		{"Origin": {evil.URL}},
		{"Sec-Fetch-Site": {"cross-site"}},
	} {
		h.Set("Cookie", "apiusers_session="+cookie)
		res, body := c.Do(t, "POST", "/admin/workspaces/acme/users", h, map[string]any{"username": "evil-2", "kind": "api", "role": "api_user"})
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("a cookie request with %v: %d %s", h, res.StatusCode, body)
		}
	}
	c.mustAPI(t, 200, "GET", "/workspaces/acme/users?q=evil", c.Root, nil, &found)
	if len(found.Items) != 0 {
		t.Fatalf("a cross-site request created %v", found.Items)
	}
	// The console itself, same-origin, still works with the cookie.
	owner.open("#/w/acme/users")
	owner.find("main h1", "API Users")
}

// testAccessLog: Caddy's access log holds none of the one-time tokens the
// console pages were opened with.
func (c *consoleEnv) testAccessLog(t *testing.T) {
	if len(consoleTokens) == 0 {
		t.Skip("no link was opened")
	}
	b, err := os.ReadFile(c.accessLog)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "/admin/assets/app.js") {
		t.Fatalf("the access log does not log the console at all:\n%.500s", b)
	}
	for _, tok := range consoleTokens {
		for _, form := range []string{tok, url.QueryEscape(tok)} {
			if strings.Contains(string(b), form) {
				t.Errorf("the access log holds a one-time token")
			}
		}
	}
}

// testMainScreens fills a workspace as a newcomer's would look and opens
// the main screens one after the other, checking each with axe; with
// APIUSERS_SCREENSHOTS set (make screenshots) it writes their PNGs, which
// the README shows.
func (c *consoleEnv) testMainScreens(t *testing.T, b *browser) {
	c.mustAPI(t, http.StatusCreated, "POST", "/workspaces", c.Root, map[string]any{"id": "demo", "name": "Demo Works"}, nil)
	var field, office struct{ ID string }
	c.mustAPI(t, http.StatusCreated, "POST", "/workspaces/demo/teams", c.Root, map[string]any{"name": "field-service",
		"grants": []map[string]any{{"resource": "device:*", "rights": []string{"read"}}}}, &field)
	c.mustAPI(t, http.StatusCreated, "POST", "/workspaces/demo/teams", c.Root, map[string]any{"name": "back-office", "permissions": []string{"stats.read"}}, &office)
	users := []map[string]any{
		{"username": "weather-station-1", "role": "api_user", "organization": "Northwind", "teams": []string{field.ID},
			"grants": []map[string]any{{"resource": "device:ws-1", "rights": []string{"read", "control"}}}},
		{"username": "door-sensor-7", "role": "api_user", "teams": []string{field.ID}},
		{"username": "billing-sync", "role": "api_business", "email": "billing@northwind.example", "teams": []string{office.ID}},
		{"username": "mobile-app", "role": "api_registration"},
		{"username": "kiosk-lobby", "role": "api_basic", "status": "inactive"},
		{"username": "legacy-import", "role": "api_user", "status": "trash"},
		{"username": "reporting", "role": "operator", "email": "reports@northwind.example"},
	}
	var first string
	for _, u := range users {
		u["kind"] = "api"
		u["issue_key"] = true
		var cu apitest.User
		c.mustAPI(t, http.StatusCreated, "POST", "/workspaces/demo/users", c.Root, u, &cu)
		if first == "" {
			first = cu.ID
		}
		if cu.Key != "" && u["status"] == nil {
			c.call(t, "GET", "/api/status", cu.Key)
		}
	}
	for _, m := range []map[string]any{{"email": "lena@northwind.example", "role": "admin"}, {"email": "omar@northwind.example", "role": "viewer"}} {
		c.mustAPI(t, http.StatusCreated, "POST", "/workspaces/demo/invitations", c.Root, m, nil)
		c.mailTo(t, m["email"].(string))
	}

	tb := c.ownerTab(t, b)
	shot := func(name string) {
		t.Helper()
		tb.screenshot(name)
		tb.axe(name)
	}
	tb.open("#/w/demo/users?status=all")
	tb.find("tr[data-user] a", "weather-station-1")
	shot("api-users")
	tb.clickSel("Add API User", tb.find("main button", "Add API User"))
	tb.fill("Username", "pump-controller")
	tb.fill("Organization", "Northwind")
	tb.choose("Time zone", "Europe/Berlin")
	tb.run("the top of the dialog", chromedp.Evaluate(`document.querySelector('dialog[open]').scrollTop = 0`, nil))
	shot("add-api-user")
	tb.fill("Search devices", "pump-3")
	tb.click("Add new device pump-3")
	tb.checkIn("device:pump-3", "Read")
	tb.checkIn("device:pump-3", "Control")
	tb.run("the devices", chromedp.Evaluate(`document.querySelector('dialog[open] fieldset.devices').scrollIntoView({block: 'start'})`, nil))
	shot("add-api-user-devices")
	tb.key(kb.Escape)
	tb.open("#/w/demo/users/" + first)
	tb.find("main h1", "weather-station-1")
	tb.click("Generate")
	tb.fill("Name", "backup")
	tb.click("Generate")
	tb.find(".newkey h3", "New API key")
	tb.run("the top of the page", chromedp.Evaluate(`window.scrollTo(0, 0)`, nil))
	shot("api-user")
	tb.open("#/w/demo/members")
	tb.find("tr[data-user] a", "lena@northwind.example")
	shot("members")
	tb.open("#/w/demo/teams")
	shot("teams")
	tb.open("#/w/demo/teams/" + field.ID)
	shot("team")
	tb.open("#/w/demo/messages")
	tb.find("tbody th.path", "/api/status")
	shot("messages")
	tb.open("#/w/demo/audit")
	shot("audit")
	tb.open("#/profile")
	shot("profile")
	tb.noErrors()
}

// TestConsoleWithoutMailer: with no mail option (as in the quickstart),
// inviting a member and resetting a password show the one-time link in a
// dialog to pass on; the link copied from it works.
func TestConsoleWithoutMailer(t *testing.T) {
	c := &consoleEnv{ownerEmail: "owner@acme.example"}
	c.e2e = startE2E(t, e2eSite{
		routes: consoleRoutes,
		beforeStart: func(e *e2e) {
			var stdout, stderr bytes.Buffer
			if _, err := bootstrapPerson(&stdout, &stderr, e.cfgPath, "caddyfile", "acme", c.ownerEmail, e.Base+"/admin/"); err != nil {
				t.Fatalf("bootstrap --email: %v\n%s", err, stderr.String())
			}
			c.setupLink = strings.TrimSpace(stdout.String())
		},
	})
	c.console = c.Base + "/admin/"
	b := startBrowser(t)
	owner := c.ownerTab(t, b)

	owner.open("#/w/acme/members")
	owner.clickSel("Invite member", owner.find("main button", "Invite member"))
	owner.fill("Email", "kim@acme.example")
	owner.choose("Role", "viewer")
	owner.find("dialog[open] button", "Invite member")
	owner.click("Invite member")
	owner.find("dialog[open] h2", "Invitation link")
	owner.find("dialog[open] p", "No mailer is configured, so no mail was sent. Pass this one-time link on yourself.")
	owner.axe("the invitation link")
	owner.click("Copy link to the clipboard")
	owner.status("Copied")
	var link string
	owner.eval("reading the clipboard", `navigator.clipboard.readText()`, &link)
	if !strings.HasPrefix(link, c.console+"accept?token=") {
		t.Fatalf("the clipboard holds %q", link)
	}
	owner.click("Close")
	owner.find("tr[data-user] .badge", "Invited")

	kim := b.newPerson(t, c.console)
	c.openLink(t, kim, link, "Accept invitation")
	kim.fill("New Password", consolePassword)
	kim.fill("New Password Again", consolePassword)
	kim.clickSel("Accept", kim.find("form button", "Accept invitation"))
	kim.waitFor("signed in", `!!document.querySelector('nav.side')`)

	owner.open("#/w/acme/members")
	owner.clickSel("Reset password", owner.find("tr[data-user] button", "Reset password: kim@acme.example"))
	owner.find("dialog[open] h2", "Password reset link")
	var reset string
	owner.eval("the reset link", `document.querySelector('dialog[open] input').value`, &reset)
	if !strings.HasPrefix(reset, c.console+"reset?token=") {
		t.Fatalf("the reset link %q", reset)
	}
	owner.key(kb.Escape)
	c.openLink(t, kim, reset, "Set a new password")
	kim.fill("New Password", "another long passphrase for kim")
	kim.fill("New Password Again", "another long passphrase for kim")
	kim.clickSel("Set password", kim.find("form button", "Set password"))
	kim.find("p.notice", "Your password was changed. Sign in with the new one.")
	owner.noErrors()
	kim.noErrors()
}
