package admin

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/ids"
)

// TestForgedCursors: every list answers a cursor it did not hand out —
// made up, edited, or another list's — with the same 400, and pages on
// with its own.
func TestForgedCursors(t *testing.T) {
	st := openStore(t)
	e := newTestEnvOn(t, st, Options{})
	u := e.createUser("cur-a", authz.RoleAPIUser)
	e.createUser("cur-b", authz.RoleAPIUser)
	other := e.createUser("cur-c", authz.RoleAPIUser)
	for _, name := range []string{"t1", "t2"} {
		e.ok(req{method: "POST", path: "/workspaces/ws/teams", key: e.root, body: `{"name":"` + name + `"}`}, http.StatusCreated, nil)
	}
	e.ok(req{method: "POST", path: "/workspaces", key: e.root, body: `{"id":"ws2"}`}, http.StatusCreated, nil)
	for _, who := range []*authz.CreatedUser{&u, &other} {
		e.ok(req{method: "POST", path: "/workspaces/ws/users/" + who.ID + "/keys", key: e.root, body: `{"name":"second"}`}, http.StatusCreated, nil)
	}
	now := time.Now()
	var msgs []authz.Message
	for i := range 3 {
		msgs = append(msgs, authz.Message{ID: ids.NewestFirst("msg_", now.Add(time.Duration(i)*time.Millisecond)), Workspace: "ws",
			UserID: u.ID, KeyID: u.KeyID, Time: now, Method: "GET", Path: "/x", Status: 200})
	}
	if err := st.(authz.MessageStore).AppendMessages(context.Background(), msgs, authz.Retention{}); err != nil {
		t.Fatal(err)
	}

	lists := map[string]string{
		"users":      "/workspaces/ws/users",
		"teams":      "/workspaces/ws/teams",
		"audit":      "/workspaces/ws/audit",
		"messages":   "/workspaces/ws/messages",
		"workspaces": "/workspaces",
		"keys":       "/workspaces/ws/users/" + u.ID + "/keys",
		"other keys": "/workspaces/ws/users/" + other.ID + "/keys",
	}
	cursors := map[string]string{}
	for name, path := range lists {
		var l struct {
			Items      []map[string]any `json:"items"`
			NextCursor string           `json:"next_cursor"`
		}
		e.ok(req{method: "GET", path: path + "?limit=1", key: e.root}, http.StatusOK, &l)
		if l.NextCursor == "" || len(l.Items) != 1 {
			t.Fatalf("%s: no second page to forge a cursor for (%d items)", name, len(l.Items))
		}
		cursors[name] = l.NextCursor
		id, _ := l.Items[0]["id"].(string)
		if id == "" {
			t.Fatalf("%s: item without an id", name)
		}
		// The cursor resumes.
		e.ok(req{method: "GET", path: path + "?limit=1&cursor=" + url.QueryEscape(l.NextCursor), key: e.root}, http.StatusOK, nil)
		forged := []string{
			base64.RawURLEncoding.EncodeToString([]byte(id)),             // the last id, as cursors once were
			base64.RawURLEncoding.EncodeToString([]byte("usr_zzzzzzzz")), // an id that does not exist
			"!!!", "a.b", ".", l.NextCursor + "A",
			flipLast(l.NextCursor),
			strings.Replace(l.NextCursor, ".", "=.", 1), // another spelling
		}
		for _, c := range forged {
			w := e.do(req{method: "GET", path: path + "?limit=1&cursor=" + url.QueryEscape(c), key: e.root})
			if p := problemOf(t, w, http.StatusBadRequest); p.Field != "cursor" {
				t.Errorf("%s, cursor %q: field %q", name, c, p.Field)
			}
		}
	}
	// One list's cursor is no other list's.
	for name, path := range lists {
		for from, c := range cursors {
			if from == name {
				continue
			}
			w := e.do(req{method: "GET", path: path + "?limit=1&cursor=" + url.QueryEscape(c), key: e.root})
			problemOf(t, w, http.StatusBadRequest)
		}
	}
}

// flipLast changes the last character of s to another one of the base64url
// alphabet.
func flipLast(s string) string {
	last := s[len(s)-1]
	if last == 'A' {
		return s[:len(s)-1] + "B"
	}
	return s[:len(s)-1] + "A"
}
