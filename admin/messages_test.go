package admin

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/apiusers/apiusers/authz"
)

// messagesPage lists messages with query q as key and returns the page.
func (e *testEnv) messagesPage(key string, q url.Values) list[authz.Message] {
	e.t.Helper()
	var l list[authz.Message]
	e.ok(req{method: "GET", path: "/workspaces/ws/messages?" + q.Encode(), key: key}, http.StatusOK, &l)
	return l
}

// messageIDs returns the ids of msgs.
func messageIDs(msgs []authz.Message) []string {
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	return ids
}

func TestMessages(t *testing.T) {
	st := openStore(t)
	ms, ok := st.(authz.MessageStore)
	if !ok {
		t.Fatalf("%T does not implement authz.MessageStore", st)
	}
	e := newTestEnvOn(t, st, Options{})
	alice := e.createUser("alice", authz.RoleAPIUser)
	bob := e.createUser("bob", authz.RoleAPIUser)

	// Five calls: alice at t0, t0+1h, t0+2h; bob at t0+30m, t0+90m.
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	msg := func(u authz.CreatedUser, at time.Duration, path string) authz.Message {
		tm := t0.Add(at)
		return authz.Message{ID: authz.NewMessageID(tm), Workspace: "ws", UserID: u.ID, KeyID: u.KeyID, Time: tm,
			Method: "POST", Path: path, Status: 202, DurationMS: 1.5, BytesIn: 10, BytesOut: 2, ClientIP: "192.0.2.1"}
	}
	msgs := []authz.Message{
		msg(alice, 0, "/a0"), msg(bob, 30*time.Minute, "/b30"), msg(alice, time.Hour, "/a60"),
		msg(bob, 90*time.Minute, "/b90"), msg(alice, 2*time.Hour, "/a120"),
	}
	if err := ms.AppendMessages(context.Background(), msgs, authz.Retention{}); err != nil {
		t.Fatal(err)
	}
	// newest returns the ids of msgs picked by keep, newest first.
	newest := func(keep func(authz.Message) bool) []string {
		var ids []string
		for i := len(msgs) - 1; i >= 0; i-- {
			if keep(msgs[i]) {
				ids = append(ids, msgs[i].ID)
			}
		}
		return ids
	}
	all := func(authz.Message) bool { return true }
	of := func(u authz.CreatedUser) func(authz.Message) bool {
		return func(m authz.Message) bool { return m.UserID == u.ID }
	}
	rfc := func(d time.Duration) string { return t0.Add(d).Format(time.RFC3339) }

	// The superadmin (messages.read) sees every message, newest first.
	l := e.messagesPage(e.root, nil)
	if got := messageIDs(l.Items); !slices.Equal(got, newest(all)) {
		t.Fatalf("all messages %v, want %v", got, newest(all))
	}
	if m := l.Items[0]; m.Path != "/a120" || m.UserID != alice.ID || m.KeyID != alice.KeyID || m.Status != 202 ||
		!m.Time.Equal(t0.Add(2*time.Hour)) || m.ClientIP != "192.0.2.1" {
		t.Errorf("newest message %+v", m)
	}
	for _, tt := range []struct {
		name string
		q    url.Values
		want []string
	}{
		{"by user", url.Values{"user": {bob.ID}}, newest(of(bob))},
		{"since is inclusive", url.Values{"since": {rfc(time.Hour)}}, newest(func(m authz.Message) bool { return !m.Time.Before(t0.Add(time.Hour)) })},
		{"until is exclusive", url.Values{"until": {rfc(time.Hour)}}, newest(func(m authz.Message) bool { return m.Time.Before(t0.Add(time.Hour)) })},
		{"window and user", url.Values{"user": {alice.ID}, "since": {rfc(30 * time.Minute)}, "until": {rfc(2 * time.Hour)}}, []string{msgs[2].ID}},
		{"offset time", url.Values{"since": {t0.Add(90 * time.Minute).In(time.FixedZone("", 2*3600)).Format(time.RFC3339)}}, []string{msgs[4].ID, msgs[3].ID}},
		{"unknown user", url.Values{"user": {"usr_nobody"}}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := messageIDs(e.messagesPage(e.root, tt.q).Items); !slices.Equal(got, tt.want) {
				t.Errorf("messages %v, want %v", got, tt.want)
			}
		})
	}

	// Pages of 2: three pages, the same order.
	var paged []string
	cursor := ""
	for pages := 1; ; pages++ {
		q := url.Values{"limit": {"2"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		p := e.messagesPage(e.root, q)
		paged = append(paged, messageIDs(p.Items)...)
		if p.NextCursor == "" {
			if pages != 3 {
				t.Errorf("%d pages, want 3", pages)
			}
			break
		}
		if pages > 3 {
			t.Fatal("more than 3 pages")
		}
		cursor = p.NextCursor
	}
	if !slices.Equal(paged, newest(all)) {
		t.Errorf("paged %v, want %v", paged, newest(all))
	}

	// An api_user (messages.read.own) sees only its own, whatever it asks.
	for _, q := range []url.Values{nil, {"user": {bob.ID}}, {"user": {alice.ID}}} {
		got := e.messagesPage(alice.Key, q).Items
		if !slices.Equal(messageIDs(got), newest(of(alice))) {
			t.Errorf("alice asking %v sees %v, want her own %v", q, messageIDs(got), newest(of(alice)))
		}
		for _, m := range got {
			if m.UserID != alice.ID {
				t.Errorf("alice sees a message of %s", m.UserID)
			}
		}
	}
	if got := messageIDs(e.messagesPage(bob.Key, url.Values{"until": {rfc(time.Hour)}}).Items); !slices.Equal(got, []string{msgs[1].ID}) {
		t.Errorf("bob before t0+1h sees %v", got)
	}

	// Neither messages.read nor messages.read.own: 403.
	viewer := e.createUser("vic", authz.RoleViewer)
	problemOf(t, e.do(req{method: "GET", path: "/workspaces/ws/messages", key: viewer.Key}), 403)

	// Bad filters are 400s naming the parameter.
	for _, tt := range []struct {
		q     string
		field string
	}{
		{"since=yesterday", "since"},
		{"since=2025-03-01", "since"},
		{"until=2025-03-01T12:00:00", "until"},
		{"since=" + url.QueryEscape(rfc(time.Hour)) + "&until=" + url.QueryEscape(rfc(0)), "until"},
		{"since=" + url.QueryEscape(rfc(0)) + "&since=" + url.QueryEscape(rfc(0)), "since"},
		{"user=a&user=b", "user"},
		{"limit=0", "limit"},
		{"cursor=%25%25", "cursor"},
	} {
		p := problemOf(t, e.do(req{method: "GET", path: "/workspaces/ws/messages?" + tt.q, key: e.root}), 400)
		if p.Field != tt.field {
			t.Errorf("%s: field %q, want %q", tt.q, p.Field, tt.field)
		}
	}
}
