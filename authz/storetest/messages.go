package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apiusers/apiusers/authz"
)

// RunMessages runs the authz.MessageStore part of the suite. open is the
// same as Run's; the store it returns must implement authz.MessageStore.
func RunMessages(t *testing.T, open func(t *testing.T) authz.Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, authz.MessageStore)
	}{
		{"NewestFirst", testMessagesNewestFirst},
		{"Paging", testMessagesPaging},
		{"UserFilter", testMessagesUserFilter},
		{"TimeBounds", testMessagesTimeBounds},
		{"RetentionByCount", testMessagesRetentionCount},
		{"RetentionByAge", testMessagesRetentionAge},
		{"Sweep", testMessagesSweep},
		{"Erase", testMessagesErase},
		{"WorkspacesIsolated", testMessagesWorkspaces},
		{"Burst", testMessagesBurst},
		{"Invalid", testMessagesInvalid},
		{"CanceledContext", testMessagesCanceled},
		{"Closed", testMessagesClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { _ = s.Close() })
			ms, ok := s.(authz.MessageStore)
			if !ok {
				t.Fatalf("%T does not implement authz.MessageStore", s)
			}
			tc.fn(t, ms)
		})
	}
}

// t0 is the time of the first message of most tests.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// message makes a message of user in ws at time at. Make messages in time
// order: ids of one millisecond sort by creation.
func message(ws, user string, at time.Time) authz.Message {
	return authz.Message{
		ID: authz.NewMessageID(at), Workspace: ws, UserID: user, KeyID: "key_" + user, Time: at,
		Method: "POST", Path: "/v1/events", Status: 202, DurationMS: 1.25, BytesIn: 42, BytesOut: 7,
		ClientIP: "192.0.2.7",
	}
}

func appendMessages(t *testing.T, ms authz.MessageStore, msgs []authz.Message, keep authz.Retention) {
	t.Helper()
	if err := ms.AppendMessages(ctx(t), msgs, keep); err != nil {
		t.Fatalf("AppendMessages(%d messages, %+v): %v", len(msgs), keep, err)
	}
}

func listMessages(t *testing.T, ms authz.MessageStore, ws string, q authz.MessageQuery) []authz.Message {
	t.Helper()
	out, err := ms.ListMessages(ctx(t), ws, q)
	if err != nil {
		t.Fatalf("ListMessages(%q, %+v): %v", ws, q, err)
	}
	if q.Limit > 0 && len(out) > q.Limit {
		t.Fatalf("ListMessages(%q, %+v) returned %d messages, more than the limit", ws, q, len(out))
	}
	return out
}

// listAll pages through q with pages of size page and returns every id.
func listAll(t *testing.T, ms authz.MessageStore, ws string, q authz.MessageQuery, page int) []string {
	t.Helper()
	q.Limit = page
	var ids []string
	for {
		out := listMessages(t, ms, ws, q)
		ids = append(ids, messageIDs(out)...)
		if len(out) < page {
			return ids
		}
		q.After = out[len(out)-1].ID
	}
}

func messageIDs(msgs []authz.Message) []string {
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	return ids
}

// newest returns the ids of the messages keep picks, newest first (id
// order).
func newest(msgs []authz.Message, keep func(authz.Message) bool) []string {
	var ids []string
	for _, m := range msgs {
		if keep == nil || keep(m) {
			ids = append(ids, m.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

func ofUser(user string) func(authz.Message) bool {
	return func(m authz.Message) bool { return m.UserID == user }
}

func sameIDs(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s: got %d ids, want %d\n got %s\nwant %s", what, len(got), len(want), shortIDs(got), shortIDs(want))
	}
}

// shortIDs shows ids in failure messages without their common prefix.
func shortIDs(ids []string) string {
	if len(ids) > 20 {
		return shortIDs(ids[:20]) + fmt.Sprintf(" ... (%d more)", len(ids)-20)
	}
	return strings.Join(ids, " ")
}

func testMessagesNewestFirst(t *testing.T, ms authz.MessageStore) {
	var msgs []authz.Message
	for i := range 30 {
		msgs = append(msgs, message(ws, fmt.Sprintf("usr_%d", i%3), t0.Add(time.Duration(i)*time.Minute)))
	}
	full := &msgs[17]
	full.Body, full.BodyTruncated, full.Time = `{"temp":21.5}`, true, full.Time.Add(123456789*time.Nanosecond)
	// Written out of order, in three batches.
	shuffled := slices.Clone(msgs)
	rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for b := range 3 {
		appendMessages(t, ms, shuffled[b*10:(b+1)*10], authz.Retention{})
	}

	got := listMessages(t, ms, ws, authz.MessageQuery{})
	sameIDs(t, "all messages", messageIDs(got), newest(msgs, nil))
	for i := 1; i < len(got); i++ {
		if got[i].Time.After(got[i-1].Time) {
			t.Fatalf("message %d (%s) is newer than message %d (%s)", i, got[i].Time, i-1, got[i-1].Time)
		}
	}
	if got[0].ID != msgs[29].ID {
		t.Fatalf("first message %s, want the newest %s", got[0].ID, msgs[29].ID)
	}
	// Every field comes back.
	for _, m := range got {
		if m.ID != full.ID {
			continue
		}
		g, w := m, *full
		if !g.Time.Equal(w.Time) {
			t.Fatalf("time %s, want %s", g.Time, w.Time)
		}
		g.Time, w.Time = time.Time{}, time.Time{}
		if g != w {
			t.Fatalf("message read back\n got %+v\nwant %+v", g, w)
		}
		return
	}
	t.Fatalf("message %s missing", full.ID)
}

func testMessagesPaging(t *testing.T, ms authz.MessageStore) {
	var msgs []authz.Message
	for i := range 50 {
		msgs = append(msgs, message(ws, []string{"usr_a", "usr_b"}[i%2], t0.Add(time.Duration(i)*time.Second)))
	}
	appendMessages(t, ms, msgs, authz.Retention{})

	for _, tc := range []struct {
		user  string
		limit int
		sizes []int
	}{
		{"usr_a", 9, []int{9, 9, 7}},
		{"", 20, []int{20, 20, 10}},
	} {
		var keep func(authz.Message) bool
		if tc.user != "" {
			keep = ofUser(tc.user)
		}
		want := newest(msgs, keep)
		q := authz.MessageQuery{UserID: tc.user, Limit: tc.limit}
		var paged []string
		for i, size := range tc.sizes {
			page := listMessages(t, ms, ws, q)
			if len(page) != size {
				t.Fatalf("user %q page %d: %d messages, want %d", tc.user, i+1, len(page), size)
			}
			paged = append(paged, messageIDs(page)...)
			q.After = page[len(page)-1].ID
		}
		if rest := listMessages(t, ms, ws, q); len(rest) != 0 {
			t.Fatalf("user %q: %d messages after the last page", tc.user, len(rest))
		}
		sameIDs(t, fmt.Sprintf("user %q in pages of %d", tc.user, tc.limit), paged, want)
	}
}

func testMessagesUserFilter(t *testing.T, ms authz.MessageStore) {
	// "usr_a" is a prefix of "usr_a2": a layout joining strings carelessly
	// would mix them.
	var msgs []authz.Message
	for i := range 12 {
		msgs = append(msgs, message(ws, []string{"usr_a", "usr_a2", "usr_b"}[i%3], t0.Add(time.Duration(i)*time.Second)))
	}
	appendMessages(t, ms, msgs, authz.Retention{})
	for _, user := range []string{"usr_a", "usr_a2", "usr_b"} {
		got := listMessages(t, ms, ws, authz.MessageQuery{UserID: user})
		sameIDs(t, "messages of "+user, messageIDs(got), newest(msgs, ofUser(user)))
		for _, m := range got {
			if m.UserID != user {
				t.Fatalf("listing %s returned a message of %s", user, m.UserID)
			}
		}
	}
	if got := listMessages(t, ms, ws, authz.MessageQuery{UserID: "usr_nobody"}); len(got) != 0 {
		t.Fatalf("unknown user: %d messages", len(got))
	}
}

func testMessagesTimeBounds(t *testing.T, ms authz.MessageStore) {
	// Several messages per millisecond (every 300µs), two users, then a few
	// far apart: bounds must be exact inside a millisecond too.
	var msgs []authz.Message
	for i := range 40 {
		msgs = append(msgs, message(ws, []string{"usr_a", "usr_b"}[i%2], t0.Add(time.Duration(i)*300*time.Microsecond)))
	}
	for i := range 5 {
		msgs = append(msgs, message(ws, "usr_a", t0.Add(time.Duration(i+1)*time.Hour)))
	}
	appendMessages(t, ms, msgs, authz.Retention{})

	at := func(i int) time.Time { return msgs[i].Time }
	for _, tc := range []struct {
		name         string
		user         string
		since, until time.Time
	}{
		{"since is inclusive", "", at(10), time.Time{}},
		{"until is exclusive", "", time.Time{}, at(10)},
		{"window", "", at(7), at(23)},
		{"window of one user", "usr_b", at(7), at(23)},
		{"bounds inside a millisecond", "", t0.Add(2150 * time.Microsecond), t0.Add(7450 * time.Microsecond)},
		{"bounds on milliseconds", "", t0.Add(2 * time.Millisecond), t0.Add(7 * time.Millisecond)},
		{"since only, far", "usr_a", t0.Add(2 * time.Hour), time.Time{}},
		{"until only, far", "", time.Time{}, t0.Add(3 * time.Hour)},
		{"since equals until", "", at(10), at(10)},
		{"since after until", "", at(20), at(10)},
		{"before everything", "", time.Time{}, t0},
		{"after everything", "", t0.Add(6 * time.Hour), time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := newest(msgs, func(m authz.Message) bool {
				return (tc.user == "" || m.UserID == tc.user) &&
					(tc.since.IsZero() || !m.Time.Before(tc.since)) &&
					(tc.until.IsZero() || m.Time.Before(tc.until))
			})
			q := authz.MessageQuery{UserID: tc.user, Since: tc.since, Until: tc.until}
			sameIDs(t, "one page", messageIDs(listMessages(t, ms, ws, q)), want)
			sameIDs(t, "pages of 3", listAll(t, ms, ws, q, 3), want)
		})
	}
}

func testMessagesRetentionCount(t *testing.T, ms authz.MessageStore) {
	keep := authz.Retention{MaxPerUser: 5}
	var a, b []authz.Message
	for i := range 15 {
		at := t0.Add(time.Duration(i) * time.Minute)
		if i < 3 {
			b = append(b, message(ws, "usr_b", at))
		}
		a = append(a, message(ws, "usr_a", at.Add(time.Second)))
	}
	// A late batch of messages older than every kept one.
	late := []authz.Message{message(ws, "usr_a", t0.Add(-2*time.Hour)), message(ws, "usr_a", t0.Add(-time.Hour))}

	appendMessages(t, ms, append(slices.Clone(a[:4]), b...), keep)
	appendMessages(t, ms, a[4:8], keep)
	appendMessages(t, ms, a[8:12], keep)
	check := func(what string, wantA []string) {
		t.Helper()
		sameIDs(t, what+": usr_a", messageIDs(listMessages(t, ms, ws, authz.MessageQuery{UserID: "usr_a"})), wantA)
		sameIDs(t, what+": usr_b", messageIDs(listMessages(t, ms, ws, authz.MessageQuery{UserID: "usr_b"})), newest(b, nil))
		// The workspace listing drops the same messages: nothing dangles.
		all := append(slices.Clone(wantA), newest(b, nil)...)
		slices.Sort(all)
		sameIDs(t, what+": workspace", listAll(t, ms, ws, authz.MessageQuery{}, 4), all)
	}
	check("after 12", newest(a[7:12], nil))

	appendMessages(t, ms, late, keep)
	check("after late old messages", newest(a[7:12], nil))

	// Storing kept messages again changes nothing; the next one still
	// pushes out exactly one.
	appendMessages(t, ms, a[7:12], keep)
	check("after storing the same messages again", newest(a[7:12], nil))
	appendMessages(t, ms, a[12:13], keep)
	check("after one more", newest(a[8:13], nil))

	// A tighter bound applies on the next write.
	appendMessages(t, ms, a[13:15], authz.Retention{MaxPerUser: 2})
	check("after lowering the bound", newest(a[13:15], nil))
}

func testMessagesRetentionAge(t *testing.T, ms authz.MessageStore) {
	now := time.Now()
	keep := authz.Retention{MaxAge: time.Hour}
	var a []authz.Message
	for _, ago := range []time.Duration{5 * time.Hour, 3 * time.Hour, 2 * time.Hour, 50 * time.Minute, 10 * time.Minute} {
		a = append(a, message(ws, "usr_a", now.Add(-ago)))
	}
	b := []authz.Message{message(ws, "usr_b", now.Add(-4*time.Hour)), message(ws, "usr_b", now.Add(-time.Minute))}
	// Written without bounds first, then bounded writes of each user.
	appendMessages(t, ms, a[:3], authz.Retention{})
	appendMessages(t, ms, b, authz.Retention{})
	appendMessages(t, ms, a[3:], keep)
	sameIDs(t, "usr_a", messageIDs(listMessages(t, ms, ws, authz.MessageQuery{UserID: "usr_a"})), newest(a[3:], nil))

	c := message(ws, "usr_b", now)
	appendMessages(t, ms, []authz.Message{c}, keep)
	wantB := newest([]authz.Message{b[1], c}, nil)
	sameIDs(t, "usr_b", messageIDs(listMessages(t, ms, ws, authz.MessageQuery{UserID: "usr_b"})), wantB)

	all := append(newest(a[3:], nil), wantB...)
	slices.Sort(all)
	sameIDs(t, "workspace", listAll(t, ms, ws, authz.MessageQuery{}, 2), all)

	// A message already too old is not kept.
	appendMessages(t, ms, []authz.Message{message(ws, "usr_c", now.Add(-2*time.Hour))}, keep)
	if got := listMessages(t, ms, ws, authz.MessageQuery{UserID: "usr_c"}); len(got) != 0 {
		t.Fatalf("a message older than the retention was kept: %v", messageIDs(got))
	}
	sameIDs(t, "workspace after an expired message", listAll(t, ms, ws, authz.MessageQuery{}, 2), all)
}

// SweepMessages applies the age bound to every user of every workspace,
// including users who write nothing more, oldest first and at most limit
// per call, and leaves the counts that retention by number relies on right.
func testMessagesSweep(t *testing.T, ms authz.MessageStore) {
	sw, ok := ms.(authz.MessageSweeper)
	if !ok {
		t.Fatalf("%T does not implement authz.MessageSweeper", ms)
	}
	st := ms.(authz.Store)
	for _, w := range []string{ws, "other"} {
		if err := st.Update(ctx(t), "", func(tx authz.Tx) error {
			return tx.Put(authz.Collection{Name: authz.CollWorkspaces}, w, []byte(`{"id":"`+w+`"}`))
		}); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	var old, young []authz.Message
	add := func(w, user string, ago time.Duration) {
		m := message(w, user, now.Add(-ago))
		if ago > time.Hour {
			old = append(old, m)
		} else {
			young = append(young, m)
		}
	}
	// In time order: ids of one millisecond sort by creation.
	add(ws, "usr_a", 5*time.Hour)
	add(ws, "usr_gone", 4*time.Hour) // every message of this user is old
	add("other", "usr_a", 4*time.Hour)
	add(ws, "usr_a", 3*time.Hour)
	add(ws, "usr_gone", 3*time.Hour)
	add(ws, "usr_a", 2*time.Hour)
	add(ws, "usr_a", 30*time.Minute)
	add("other", "usr_a", 20*time.Minute)
	add(ws, "usr_b", 10*time.Minute)
	add(ws, "usr_a", time.Minute)
	appendMessages(t, ms, append(append([]authz.Message(nil), old...), young...), authz.Retention{})

	total := 0
	for range len(old) + 1 {
		n, err := sw.SweepMessages(ctx(t), now.Add(-time.Hour), 2)
		if err != nil {
			t.Fatal(err)
		}
		if n > 2 {
			t.Fatalf("a sweep with limit 2 deleted %d messages", n)
		}
		total += n
		if n < 2 {
			break
		}
	}
	if total != len(old) {
		t.Fatalf("sweeps deleted %d messages, want %d", total, len(old))
	}
	for _, w := range []string{ws, "other"} {
		want := newest(young, func(m authz.Message) bool { return m.Workspace == w })
		sameIDs(t, w, listAll(t, ms, w, authz.MessageQuery{}, 2), want)
		for _, user := range []string{"usr_a", "usr_b", "usr_gone"} {
			want := newest(young, func(m authz.Message) bool { return m.Workspace == w && m.UserID == user })
			sameIDs(t, w+" "+user, messageIDs(listMessages(t, ms, w, authz.MessageQuery{UserID: user})), want)
		}
	}
	if n, err := sw.SweepMessages(ctx(t), now.Add(-time.Hour), 100); err != nil || n != 0 {
		t.Fatalf("sweeping again: %d deleted, %v", n, err)
	}
	// usr_a of ws holds 2 messages now; with room for 3, one more keeps all.
	extra := message(ws, "usr_a", time.Now())
	appendMessages(t, ms, []authz.Message{extra}, authz.Retention{MaxPerUser: 3})
	want := append([]string{extra.ID}, newest(young, func(m authz.Message) bool { return m.Workspace == ws && m.UserID == "usr_a" })...)
	sameIDs(t, "usr_a after a bounded write", messageIDs(listMessages(t, ms, ws, authz.MessageQuery{UserID: "usr_a"})), want)

	if _, err := sw.SweepMessages(ctx(t), now, 0); !errors.Is(err, authz.ErrInvalid) {
		t.Fatalf("limit 0: %v, want ErrInvalid", err)
	}
}

func testMessagesErase(t *testing.T, ms authz.MessageStore) {
	var msgs, other []authz.Message
	for i := range 20 {
		msgs = append(msgs, message(ws, []string{"usr_a", "usr_b"}[i%2], t0.Add(time.Duration(i)*time.Second)))
		other = append(other, message("other", "usr_a", t0.Add(time.Duration(i)*time.Second)))
	}
	appendMessages(t, ms, msgs, authz.Retention{})
	appendMessages(t, ms, other, authz.Retention{})

	for range 2 { // erasing twice is fine
		if err := ms.EraseMessages(ctx(t), ws, "usr_a"); err != nil {
			t.Fatal(err)
		}
	}
	if err := ms.EraseMessages(ctx(t), ws, "usr_nobody"); err != nil {
		t.Fatalf("erasing a user without messages: %v", err)
	}
	if got := listMessages(t, ms, ws, authz.MessageQuery{UserID: "usr_a"}); len(got) != 0 {
		t.Fatalf("erased user still has %d messages", len(got))
	}
	sameIDs(t, "workspace after erase", listAll(t, ms, ws, authz.MessageQuery{}, 3), newest(msgs, ofUser("usr_b")))
	sameIDs(t, "usr_b after erase", messageIDs(listMessages(t, ms, ws, authz.MessageQuery{UserID: "usr_b"})), newest(msgs, ofUser("usr_b")))
	sameIDs(t, "the same user in another workspace", messageIDs(listMessages(t, ms, "other", authz.MessageQuery{UserID: "usr_a"})), newest(other, nil))

	// The user can be recorded again, and retention counts from zero.
	again := []authz.Message{message(ws, "usr_a", t0.Add(time.Hour)), message(ws, "usr_a", t0.Add(2*time.Hour))}
	appendMessages(t, ms, again, authz.Retention{MaxPerUser: 2})
	sameIDs(t, "usr_a recorded again", messageIDs(listMessages(t, ms, ws, authz.MessageQuery{UserID: "usr_a"})), newest(again, nil))
}

func testMessagesWorkspaces(t *testing.T, ms authz.MessageStore) {
	// "alpha-2" shares a prefix with "alpha".
	spaces := []string{"alpha", "alpha-2", "beta"}
	byWS := map[string][]authz.Message{}
	var batch []authz.Message
	for i := range 30 {
		w := spaces[i%3]
		m := message(w, "usr_1", t0.Add(time.Duration(i)*time.Second))
		byWS[w] = append(byWS[w], m)
		batch = append(batch, m)
	}
	appendMessages(t, ms, batch, authz.Retention{MaxPerUser: 8}) // one batch, three workspaces
	for _, w := range spaces {
		want := newest(byWS[w], nil)[:8]
		sameIDs(t, w, messageIDs(listMessages(t, ms, w, authz.MessageQuery{})), want)
		sameIDs(t, w+" usr_1", messageIDs(listMessages(t, ms, w, authz.MessageQuery{UserID: "usr_1"})), want)
	}
	if err := ms.EraseMessages(ctx(t), "alpha", "usr_1"); err != nil {
		t.Fatal(err)
	}
	if got := listMessages(t, ms, "alpha", authz.MessageQuery{}); len(got) != 0 {
		t.Fatalf("alpha after erase: %d messages", len(got))
	}
	sameIDs(t, "alpha-2 after erasing in alpha", messageIDs(listMessages(t, ms, "alpha-2", authz.MessageQuery{UserID: "usr_1"})), newest(byWS["alpha-2"], nil)[:8])
	if got := listMessages(t, ms, "gamma", authz.MessageQuery{}); len(got) != 0 {
		t.Fatalf("workspace without messages: %d messages", len(got))
	}
}

func testMessagesBurst(t *testing.T, ms authz.MessageStore) {
	const n, batch, users = 10000, 256, 10
	start := time.Now().Add(-time.Minute)
	msgs := make([]authz.Message, n)
	for i := range msgs {
		msgs[i] = message(ws, fmt.Sprintf("usr_%02d", i%users), start.Add(time.Duration(i)*time.Millisecond))
	}
	for i := 0; i < n; i += batch {
		appendMessages(t, ms, msgs[i:min(i+batch, n)], authz.Retention{MaxPerUser: n, MaxAge: time.Hour})
	}
	all := listAll(t, ms, ws, authz.MessageQuery{}, 500)
	if len(all) != n {
		t.Fatalf("stored %d messages, want %d", len(all), n)
	}
	sameIDs(t, "burst", all, newest(msgs, nil))
	for u := range users {
		user := fmt.Sprintf("usr_%02d", u)
		if got := listAll(t, ms, ws, authz.MessageQuery{UserID: user}, 500); len(got) != n/users {
			t.Fatalf("%s has %d messages, want %d", user, len(got), n/users)
		}
	}
}

func testMessagesInvalid(t *testing.T, ms authz.MessageStore) {
	good := message(ws, "usr_a", t0)
	for name, bad := range map[string]authz.Message{
		"no user":           {ID: authz.NewMessageID(t0), Workspace: ws, Time: t0},
		"no id":             {Workspace: ws, UserID: "usr_a", Time: t0},
		"foreign id":        {ID: "usr_1", Workspace: ws, UserID: "usr_a", Time: t0},
		"invalid workspace": {ID: authz.NewMessageID(t0), Workspace: "Acme", UserID: "usr_a", Time: t0},
	} {
		err := ms.AppendMessages(ctx(t), []authz.Message{good, bad}, authz.Retention{})
		if !errors.Is(err, authz.ErrInvalid) {
			t.Errorf("AppendMessages with a message with %s: %v, want ErrInvalid", name, err)
		}
	}
	if got := listMessages(t, ms, ws, authz.MessageQuery{}); len(got) != 0 {
		t.Fatalf("a rejected batch stored %d messages", len(got))
	}
	if err := ms.AppendMessages(ctx(t), nil, authz.Retention{}); err != nil {
		t.Fatalf("appending no messages: %v", err)
	}
	if _, err := ms.ListMessages(ctx(t), "Acme", authz.MessageQuery{}); !errors.Is(err, authz.ErrInvalid) {
		t.Errorf("ListMessages of an invalid workspace: %v, want ErrInvalid", err)
	}
	if err := ms.EraseMessages(ctx(t), "a}b", "usr_a"); !errors.Is(err, authz.ErrInvalid) {
		t.Errorf("EraseMessages of an invalid workspace: %v, want ErrInvalid", err)
	}
}

func testMessagesCanceled(t *testing.T, ms authz.MessageStore) {
	c, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ms.AppendMessages(c, []authz.Message{message(ws, "usr_a", t0)}, authz.Retention{}); err == nil {
		t.Error("AppendMessages with a canceled context succeeded")
	}
	if _, err := ms.ListMessages(c, ws, authz.MessageQuery{}); err == nil {
		t.Error("ListMessages with a canceled context succeeded")
	}
	if err := ms.EraseMessages(c, ws, "usr_a"); err == nil {
		t.Error("EraseMessages with a canceled context succeeded")
	}
	if got := listMessages(t, ms, ws, authz.MessageQuery{}); len(got) != 0 {
		t.Fatalf("a canceled append stored %d messages", len(got))
	}
}

func testMessagesClosed(t *testing.T, ms authz.MessageStore) {
	appendMessages(t, ms, []authz.Message{message(ws, "usr_a", t0)}, authz.Retention{})
	if err := ms.(authz.Store).Close(); err != nil {
		t.Fatal(err)
	}
	if err := ms.AppendMessages(ctx(t), []authz.Message{message(ws, "usr_a", t0)}, authz.Retention{}); !errors.Is(err, authz.ErrUnavailable) {
		t.Errorf("AppendMessages after Close: %v, want ErrUnavailable", err)
	}
	if _, err := ms.ListMessages(ctx(t), ws, authz.MessageQuery{}); !errors.Is(err, authz.ErrUnavailable) {
		t.Errorf("ListMessages after Close: %v, want ErrUnavailable", err)
	}
	if err := ms.EraseMessages(ctx(t), ws, "usr_a"); !errors.Is(err, authz.ErrUnavailable) {
		t.Errorf("EraseMessages after Close: %v, want ErrUnavailable", err)
	}
}

// MessageChurn writes, trims and erases messages of workspace ws and leaves
// usr_keep with its 3 newest messages, usr_trim with 2 and usr_gone with
// none. Store tests run it, then check their indexes agree: nothing
// dangles after retention and erase.
func MessageChurn(t *testing.T, ms authz.MessageStore, ws string) {
	t.Helper()
	now := time.Now()
	var batch []authz.Message
	for i := range 30 {
		at := now.Add(time.Duration(i-30) * time.Minute)
		batch = append(batch, message(ws, []string{"usr_keep", "usr_trim", "usr_gone"}[i%3], at))
	}
	appendMessages(t, ms, batch, authz.Retention{MaxPerUser: 6})
	appendMessages(t, ms, batch, authz.Retention{MaxPerUser: 3}) // again: replaces, trims
	appendMessages(t, ms, []authz.Message{message(ws, "usr_trim", now)}, authz.Retention{MaxAge: 4 * time.Minute})
	if err := ms.EraseMessages(ctx(t), ws, "usr_gone"); err != nil {
		t.Fatal(err)
	}
	for user, want := range map[string]int{"usr_keep": 3, "usr_trim": 2, "usr_gone": 0} {
		if got := listMessages(t, ms, ws, authz.MessageQuery{UserID: user}); len(got) != want {
			t.Fatalf("%s keeps %d messages, want %d", user, len(got), want)
		}
	}
	if got := listMessages(t, ms, ws, authz.MessageQuery{}); len(got) != 5 {
		t.Fatalf("workspace keeps %d messages, want 5", len(got))
	}
}
