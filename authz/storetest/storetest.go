// Package storetest is the conformance suite every authz.Store passes: the
// embedded file store and the Redis store behave the same because both run
// these tests.
package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiusers/apiusers/authz"
)

// Run runs the suite. open must return a new, empty store each call; Run
// closes it when the subtest ends (stores must tolerate a second Close).
func Run(t *testing.T, open func(t *testing.T) authz.Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, authz.Store)
	}{
		{"GetMissing", testGetMissing},
		{"PutGetDelete", testPutGetDelete},
		{"ValuesAreCopies", testValuesAreCopies},
		{"ValuesRoundTrip", testValuesRoundTrip},
		{"Drop", testDrop},
		{"Scan", testScan},
		{"ScanEmpty", testScanEmpty},
		{"ReadYourWrites", testReadYourWrites},
		{"ReadYourWritesScan", testReadYourWritesScan},
		{"FnErrorWritesNothing", testFnErrorWritesNothing},
		{"ViewIsReadOnly", testViewIsReadOnly},
		{"WorkspacesIsolated", testWorkspacesIsolated},
		{"GlobalWorkspaceIsolated", testGlobalWorkspaceIsolated},
		{"CrossWorkspaceCollectionRejected", testCrossWorkspace},
		{"InvalidWorkspaceRejected", testInvalidWorkspace},
		{"LoadPrincipal", testLoadPrincipal},
		{"LoadPrincipalMissingUser", testLoadPrincipalMissing},
		{"LoadPrincipalBare", testLoadPrincipalBare},
		{"LoadPrincipalBadUser", testLoadPrincipalBadUser},
		{"LoadPrincipalTeamsForms", testLoadPrincipalTeamsForms},
		{"ConcurrentUpdates", testConcurrentUpdates},
		{"CanceledContext", testCanceledContext},
		{"Closed", testClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { _ = s.Close() })
			tc.fn(t, s)
		})
	}
}

const ws = "acme"

var (
	users = authz.Collection{Workspace: ws, Name: authz.CollUsers}
	teams = authz.Collection{Workspace: ws, Name: authz.CollTeams}
	names = authz.Collection{Workspace: ws, Name: authz.CollNames}
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// put commits id=value in c.
func put(t *testing.T, s authz.Store, c authz.Collection, id, value string) {
	t.Helper()
	err := s.Update(ctx(t), c.Workspace, func(tx authz.Tx) error {
		return tx.Put(c, id, []byte(value))
	})
	if err != nil {
		t.Fatalf("Update put %s/%s: %v", c.Name, id, err)
	}
}

// get reads id from c in a View; ok is false when it is missing.
func get(t *testing.T, s authz.Store, c authz.Collection, id string) (value string, ok bool) {
	t.Helper()
	var v []byte
	err := s.View(ctx(t), c.Workspace, func(tx authz.Tx) error {
		var err error
		v, err = tx.Get(c, id)
		return err
	})
	if errors.Is(err, authz.ErrNotFound) {
		return "", false
	}
	if err != nil {
		t.Fatalf("View get %s/%s: %v", c.Name, id, err)
	}
	return string(v), true
}

func mustGet(t *testing.T, s authz.Store, c authz.Collection, id, want string) {
	t.Helper()
	got, ok := get(t, s, c, id)
	if !ok {
		t.Fatalf("get %s/%s in %q: not found, want %q", c.Name, id, c.Workspace, want)
	}
	if got != want {
		t.Fatalf("get %s/%s in %q = %q, want %q", c.Name, id, c.Workspace, got, want)
	}
}

func mustMiss(t *testing.T, s authz.Store, c authz.Collection, id string) {
	t.Helper()
	if got, ok := get(t, s, c, id); ok {
		t.Fatalf("get %s/%s in %q = %q, want not found", c.Name, id, c.Workspace, got)
	}
}

// scan scans c in a View.
func scan(t *testing.T, s authz.Store, c authz.Collection, prefix, after string, limit int) []authz.Entry {
	t.Helper()
	var out []authz.Entry
	err := s.View(ctx(t), c.Workspace, func(tx authz.Tx) error {
		var err error
		out, err = tx.Scan(c, prefix, after, limit)
		return err
	})
	if err != nil {
		t.Fatalf("View scan %s prefix %q after %q limit %d: %v", c.Name, prefix, after, limit, err)
	}
	return out
}

// render shows entries as "id=value id=value" for comparisons.
func render(es []authz.Entry) string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = fmt.Sprintf("%q=%q", e.ID, e.Value)
	}
	return strings.Join(parts, " ")
}

func testGetMissing(t *testing.T, s authz.Store) {
	// Missing collection.
	mustMiss(t, s, users, "usr_1")
	// Missing id in an existing collection.
	put(t, s, users, "usr_1", "one")
	mustMiss(t, s, users, "usr_2")
	// Inside Update too.
	err := s.Update(ctx(t), ws, func(tx authz.Tx) error {
		_, err := tx.Get(teams, "tm_1")
		return err
	})
	if !errors.Is(err, authz.ErrNotFound) {
		t.Fatalf("Update Get missing: %v, want ErrNotFound", err)
	}
}

func testPutGetDelete(t *testing.T, s authz.Store) {
	put(t, s, users, "usr_1", `{"v":1}`)
	mustGet(t, s, users, "usr_1", `{"v":1}`)
	put(t, s, users, "usr_1", `{"v":2}`)
	mustGet(t, s, users, "usr_1", `{"v":2}`)
	put(t, s, users, "usr_empty", "")
	mustGet(t, s, users, "usr_empty", "")
	put(t, s, users, "usr_bin", "\x00\xff\r\n")
	mustGet(t, s, users, "usr_bin", "\x00\xff\r\n")

	err := s.Update(ctx(t), ws, func(tx authz.Tx) error {
		if err := tx.Delete(users, "usr_1"); err != nil {
			return err
		}
		if err := tx.Delete(users, "usr_never"); err != nil {
			return fmt.Errorf("deleting a missing id: %w", err)
		}
		return tx.Delete(authz.Collection{Workspace: ws, Name: "nothing"}, "x")
	})
	if err != nil {
		t.Fatal(err)
	}
	mustMiss(t, s, users, "usr_1")
	mustGet(t, s, users, "usr_empty", "")
	if got := scan(t, s, users, "", "", 0); render(got) != `"usr_bin"="\x00\xff\r\n" "usr_empty"=""` {
		t.Fatalf("after delete, scan = %s", render(got))
	}
}

func testValuesAreCopies(t *testing.T, s authz.Store) {
	in := []byte("original")
	err := s.Update(ctx(t), ws, func(tx authz.Tx) error {
		if err := tx.Put(users, "usr_1", in); err != nil {
			return err
		}
		copy(in, "MUTATED!") // the caller reuses its buffer before commit
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	mustGet(t, s, users, "usr_1", "original")

	err = s.View(ctx(t), ws, func(tx authz.Tx) error {
		v, err := tx.Get(users, "usr_1")
		if err != nil {
			return err
		}
		copy(v, "XXXX")
		es, err := tx.Scan(users, "", "", 0)
		if err != nil {
			return err
		}
		copy(es[0].Value, "YYYY")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	mustGet(t, s, users, "usr_1", "original")

	// Values stay valid after the transaction ended.
	var kept []byte
	var keptScan []authz.Entry
	_ = s.View(ctx(t), ws, func(tx authz.Tx) error {
		kept, _ = tx.Get(users, "usr_1")
		keptScan, _ = tx.Scan(users, "", "", 0)
		return nil
	})
	for i := range 50 {
		put(t, s, users, fmt.Sprintf("usr_fill_%02d", i), strings.Repeat("z", 512))
	}
	if string(kept) != "original" || len(keptScan) != 1 || string(keptScan[0].Value) != "original" {
		t.Fatalf("values read in a finished transaction changed: %q, %s", kept, render(keptScan))
	}
}

// testValuesRoundTrip stores values a store might be tempted to shorten
// (the domain's records start with {"id":"<id>","workspace":"<ws>"), and
// look-alikes that must come back unchanged, in collections of every kind
// the domain has: users, names, a user's keys, any other.
func testValuesRoundTrip(t *testing.T, s authz.Store) {
	colls := []authz.Collection{users, names, authz.KeysCollection(ws, "usr_1"), {Workspace: ws, Name: "other"}}
	ids := []string{"x", `q"uote`, "\x00", "\x03", "é"}
	values := func(id string) []string {
		return []string{
			"", "\x00\x01\x02\x03\xff",
			`{"id":"` + id + `"`, `{"id":"` + id + `"}`, `{"id":"` + id + `","n":1}`,
			`{"id":"` + id + `","workspace":"` + ws + `"`, `{"id":"` + id + `","workspace":"` + ws + `"}`,
			`{"id":"` + id + `","workspace":"` + ws + `","n":1}`, `{"id":"` + id + `","workspace":"other"}`,
			`{"id":"` + id + `","workspace":""}`, `{"id":"` + id + `x"}`, `{"id":"y"}`, `{"id": "` + id + `"}`,
			` {"id":"` + id + `"}`,
		}
	}
	for _, c := range colls {
		for i := range values("") {
			err := s.Update(ctx(t), ws, func(tx authz.Tx) error {
				for _, id := range ids {
					if err := tx.Put(c, id, []byte(values(id)[i])); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, id := range ids {
				mustGet(t, s, c, id, values(id)[i])
				want = append(want, fmt.Sprintf("%q=%q", id, values(id)[i]))
			}
			slices.Sort(want)
			if got := render(scan(t, s, c, "", "", 0)); got != strings.Join(want, " ") {
				t.Fatalf("%s: scan\n got %s\nwant %s", c.Name, got, strings.Join(want, " "))
			}
		}
	}
	// The global workspace: an empty workspace field.
	global := authz.Collection{Name: authz.CollWorkspaces}
	for _, v := range []string{`{"id":"acme","workspace":""}`, `{"id":"acme","workspace":"","n":1}`, `{"id":"acme"}`} {
		put(t, s, global, "acme", v)
		mustGet(t, s, global, "acme", v)
	}
	// A principal's records come back whole too.
	user := `{"id":"usr_1","workspace":"` + ws + `","teams":["tm_1","tm_2"]}`
	put(t, s, users, "usr_1", user)
	put(t, s, teams, "tm_1", `{"id":"tm_1","workspace":"`+ws+`"}`)
	put(t, s, teams, "tm_2", `{"id":"tm_2"}`)
	keys := authz.KeysCollection(ws, "usr_1")
	err := s.Update(ctx(t), ws, func(tx authz.Tx) error {
		if err := tx.Drop(keys); err != nil {
			return err
		}
		return errors.Join(tx.Put(keys, "key_1", []byte(`{"id":"key_1","workspace":"`+ws+`"}`)), tx.Put(keys, "key_2", []byte(`{"id":"key_2"}`)))
	})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := s.LoadPrincipal(ctx(t), ws, "usr_1")
	if err != nil {
		t.Fatal(err)
	}
	if string(rec.User) != user {
		t.Errorf("User = %s, want %s", rec.User, user)
	}
	if got, want := joined(rec.Keys), `{"id":"key_1","workspace":"`+ws+`"} {"id":"key_2"}`; got != want {
		t.Errorf("Keys = %s, want %s", got, want)
	}
	if got, want := joined(rec.Teams), `{"id":"tm_1","workspace":"`+ws+`"} {"id":"tm_2"}`; got != want {
		t.Errorf("Teams = %s, want %s", got, want)
	}
}

func testDrop(t *testing.T, s authz.Store) {
	keysA := authz.KeysCollection(ws, "usr_a")
	keysB := authz.KeysCollection(ws, "usr_b")
	for _, id := range []string{"key_1", "key_2", "key_3"} {
		put(t, s, keysA, id, "a-"+id)
		put(t, s, keysB, id, "b-"+id)
	}
	err := s.Update(ctx(t), ws, func(tx authz.Tx) error {
		if err := tx.Drop(keysA); err != nil {
			return err
		}
		return tx.Drop(authz.Collection{Workspace: ws, Name: "never-existed"})
	})
	if err != nil {
		t.Fatal(err)
	}
	mustMiss(t, s, keysA, "key_1")
	if got := scan(t, s, keysA, "", "", 0); len(got) != 0 {
		t.Fatalf("dropped collection scans %s", render(got))
	}
	if got := scan(t, s, keysB, "", "", 0); render(got) != `"key_1"="b-key_1" "key_2"="b-key_2" "key_3"="b-key_3"` {
		t.Fatalf("sibling collection after drop: %s", render(got))
	}
	// A dropped collection can be filled again.
	put(t, s, keysA, "key_9", "again")
	if got := scan(t, s, keysA, "", "", 0); render(got) != `"key_9"="again"` {
		t.Fatalf("refilled collection: %s", render(got))
	}
}

// scanIDs is a set of ids whose byte order differs from naive expectations:
// prefixes of each other, unicode, bytes 0x00, 0x01, 0xff.
var scanIDs = []string{
	"a", "a\x00", "a\x00b", "a\x01", "a\x02", "a\x03", "a\x03\x00", "a\x04", "ab", "abc", "abd", "ab\xff", "ab\xff\xff", "ac",
	"b", "ba", "é", "éa", "日本", "日本語", "\x01", "\x03", "\xff", "\xff\xff", "\xff\xfe", "z",
}

func testScan(t *testing.T, s authz.Store) {
	coll := authz.Collection{Workspace: ws, Name: "scan"}
	err := s.Update(ctx(t), ws, func(tx authz.Tx) error {
		for _, id := range scanIDs {
			if err := tx.Put(coll, id, []byte("v:"+id)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// A neighbour collection must never leak into scans.
	put(t, s, authz.Collection{Workspace: ws, Name: "scan2"}, "ab0", "other")
	put(t, s, authz.Collection{Workspace: ws, Name: "sca"}, "ab1", "other")

	sorted := slices.Clone(scanIDs)
	slices.Sort(sorted) // byte order
	want := func(prefix, after string, limit int) []authz.Entry {
		var out []authz.Entry
		for _, id := range sorted {
			if strings.HasPrefix(id, prefix) && id > after && (limit <= 0 || len(out) < limit) {
				out = append(out, authz.Entry{ID: id, Value: []byte("v:" + id)})
			}
		}
		return out
	}

	// Full order first, stated literally so the reference itself is checked.
	all := scan(t, s, coll, "", "", 0)
	var ids []string
	for _, e := range all {
		ids = append(ids, e.ID)
	}
	wantOrder := []string{"\x01", "\x03", "a", "a\x00", "a\x00b", "a\x01", "a\x02", "a\x03", "a\x03\x00", "a\x04",
		"ab", "abc", "abd", "ab\xff", "ab\xff\xff", "ac", "b", "ba", "z", "é", "éa", "日本", "日本語", "\xff", "\xff\xfe", "\xff\xff"}
	if !slices.Equal(ids, wantOrder) {
		t.Fatalf("full scan order\n got %q\nwant %q", ids, wantOrder)
	}

	prefixes := []string{"", "a", "a\x00", "a\x03", "ab", "ab\xff", "abc", "b", "é", "日本", "\xff", "\xff\xff", "q", "zz"}
	afters := []string{"", "a", "a\x00", "a\x02", "a\x03", "aa", "ab", "ab\xff", "abz", "b", "c", "é", "日", "\xff", "\xff\xff\xff"}
	limits := []int{0, 1, 2, 3, 100}
	for _, p := range prefixes {
		for _, a := range afters {
			for _, l := range limits {
				got := scan(t, s, coll, p, a, l)
				if w := want(p, a, l); render(got) != render(w) {
					t.Errorf("Scan(prefix %q, after %q, limit %d)\n got %s\nwant %s", p, a, l, render(got), render(w))
				}
			}
		}
	}

	// Paging with after visits every entry exactly once.
	var paged []string
	after := ""
	for range len(scanIDs) + 1 {
		page := scan(t, s, coll, "", after, 4)
		if len(page) == 0 {
			break
		}
		if len(page) > 4 {
			t.Fatalf("page of %d entries, limit 4", len(page))
		}
		for _, e := range page {
			paged = append(paged, e.ID)
		}
		after = page[len(page)-1].ID
	}
	if !slices.Equal(paged, wantOrder) {
		t.Fatalf("paging\n got %q\nwant %q", paged, wantOrder)
	}
}

func testScanEmpty(t *testing.T, s authz.Store) {
	if got := scan(t, s, authz.Collection{Workspace: ws, Name: "none"}, "", "", 10); len(got) != 0 {
		t.Fatalf("scan of a missing collection: %s", render(got))
	}
	put(t, s, users, "usr_1", "x")
	if got := scan(t, s, users, "grp_", "", 10); len(got) != 0 {
		t.Fatalf("scan with an unmatched prefix: %s", render(got))
	}
}

func testReadYourWrites(t *testing.T, s authz.Store) {
	put(t, s, users, "usr_old", "old")
	put(t, s, users, "usr_gone", "gone")
	keys := authz.KeysCollection(ws, "usr_old")
	put(t, s, keys, "key_1", "k1")

	err := s.Update(ctx(t), ws, func(tx authz.Tx) error {
		if err := tx.Put(users, "usr_new", []byte("new")); err != nil {
			return err
		}
		if v, err := tx.Get(users, "usr_new"); err != nil || string(v) != "new" {
			return fmt.Errorf("get after put = %q, %v; want new", v, err)
		}
		if err := tx.Put(users, "usr_old", []byte("old2")); err != nil {
			return err
		}
		if v, err := tx.Get(users, "usr_old"); err != nil || string(v) != "old2" {
			return fmt.Errorf("get after overwrite = %q, %v; want old2", v, err)
		}
		if err := tx.Delete(users, "usr_gone"); err != nil {
			return err
		}
		if _, err := tx.Get(users, "usr_gone"); !errors.Is(err, authz.ErrNotFound) {
			return fmt.Errorf("get after delete: %v, want ErrNotFound", err)
		}
		// Delete then put again.
		if err := tx.Delete(users, "usr_new"); err != nil {
			return err
		}
		if _, err := tx.Get(users, "usr_new"); !errors.Is(err, authz.ErrNotFound) {
			return fmt.Errorf("get after put+delete: %v, want ErrNotFound", err)
		}
		if err := tx.Put(users, "usr_new", []byte("new2")); err != nil {
			return err
		}
		if v, err := tx.Get(users, "usr_new"); err != nil || string(v) != "new2" {
			return fmt.Errorf("get after put+delete+put = %q, %v; want new2", v, err)
		}
		// Drop then read, then put into the dropped collection.
		if err := tx.Drop(keys); err != nil {
			return err
		}
		if _, err := tx.Get(keys, "key_1"); !errors.Is(err, authz.ErrNotFound) {
			return fmt.Errorf("get after drop: %v, want ErrNotFound", err)
		}
		return tx.Put(keys, "key_2", []byte("k2"))
	})
	if err != nil {
		t.Fatal(err)
	}
	mustGet(t, s, users, "usr_new", "new2")
	mustGet(t, s, users, "usr_old", "old2")
	mustMiss(t, s, users, "usr_gone")
	mustMiss(t, s, keys, "key_1")
	mustGet(t, s, keys, "key_2", "k2")
}

func testReadYourWritesScan(t *testing.T, s authz.Store) {
	coll := authz.Collection{Workspace: ws, Name: "rw"}
	for _, id := range []string{"b", "d", "f", "h", "j"} {
		put(t, s, coll, id, "old-"+id)
	}
	dropped := authz.Collection{Workspace: ws, Name: "rwdrop"}
	put(t, s, dropped, "x", "x")
	put(t, s, dropped, "y", "y")

	err := s.Update(ctx(t), ws, func(tx authz.Tx) error {
		steps := []func() error{
			func() error { return tx.Delete(coll, "b") },
			func() error { return tx.Delete(coll, "d") },
			func() error { return tx.Put(coll, "a", []byte("new-a")) },
			func() error { return tx.Put(coll, "f", []byte("new-f")) },
			func() error { return tx.Put(coll, "g", []byte("new-g")) },
			func() error { return tx.Put(coll, "z", []byte("new-z")) },
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return err
			}
		}
		checks := []struct {
			prefix, after string
			limit         int
			want          string
		}{
			{"", "", 0, `"a"="new-a" "f"="new-f" "g"="new-g" "h"="old-h" "j"="old-j" "z"="new-z"`},
			// The two deleted entries must not shorten the page.
			{"", "", 3, `"a"="new-a" "f"="new-f" "g"="new-g"`},
			{"", "a", 2, `"f"="new-f" "g"="new-g"`},
			{"", "f", 2, `"g"="new-g" "h"="old-h"`},
			{"g", "", 0, `"g"="new-g"`},
			{"", "j", 0, `"z"="new-z"`},
			{"b", "", 0, ``},
		}
		for _, c := range checks {
			got, err := tx.Scan(coll, c.prefix, c.after, c.limit)
			if err != nil {
				return err
			}
			if render(got) != c.want {
				return fmt.Errorf("in-tx Scan(%q, %q, %d)\n got %s\nwant %s", c.prefix, c.after, c.limit, render(got), c.want)
			}
		}
		// Drop then put: only the new entry is visible.
		if err := tx.Drop(dropped); err != nil {
			return err
		}
		if err := tx.Put(dropped, "y2", []byte("fresh")); err != nil {
			return err
		}
		got, err := tx.Scan(dropped, "", "", 0)
		if err != nil {
			return err
		}
		if render(got) != `"y2"="fresh"` {
			return fmt.Errorf("in-tx scan after drop+put: %s", render(got))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := render(scan(t, s, coll, "", "", 0)); got != `"a"="new-a" "f"="new-f" "g"="new-g" "h"="old-h" "j"="old-j" "z"="new-z"` {
		t.Fatalf("after commit: %s", got)
	}
	if got := render(scan(t, s, dropped, "", "", 0)); got != `"y2"="fresh"` {
		t.Fatalf("dropped collection after commit: %s", got)
	}
}

func testFnErrorWritesNothing(t *testing.T, s authz.Store) {
	put(t, s, users, "usr_1", "u1")
	put(t, s, teams, "tm_1", "t1")
	keys := authz.KeysCollection(ws, "usr_1")
	put(t, s, keys, "key_1", "k1")

	boom := errors.New("boom")
	err := s.Update(ctx(t), ws, func(tx authz.Tx) error {
		for _, w := range []struct {
			c      authz.Collection
			id, to string
		}{
			{users, "usr_1", "changed"},
			{users, "usr_2", "u2"},
			{teams, "tm_2", "t2"},
			{names, "alice", "usr_2"},
		} {
			if err := tx.Put(w.c, w.id, []byte(w.to)); err != nil {
				return err
			}
		}
		if err := tx.Delete(teams, "tm_1"); err != nil {
			return err
		}
		if err := tx.Drop(keys); err != nil {
			return err
		}
		return fmt.Errorf("validating: %w", boom)
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
	mustGet(t, s, users, "usr_1", "u1")
	mustMiss(t, s, users, "usr_2")
	mustGet(t, s, teams, "tm_1", "t1")
	mustMiss(t, s, teams, "tm_2")
	mustMiss(t, s, names, "alice")
	mustGet(t, s, keys, "key_1", "k1")

	// View passes fn's error through too.
	err = s.View(ctx(t), ws, func(authz.Tx) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("View returned %v, want fn's error", err)
	}
}

func testViewIsReadOnly(t *testing.T, s authz.Store) {
	put(t, s, users, "usr_1", "u1")
	err := s.View(ctx(t), ws, func(tx authz.Tx) error {
		if err := tx.Put(users, "usr_2", []byte("u2")); err == nil {
			return errors.New("tx.Put in View succeeded")
		}
		if err := tx.Delete(users, "usr_1"); err == nil {
			return errors.New("tx.Delete in View succeeded")
		}
		if err := tx.Drop(users); err == nil {
			return errors.New("tx.Drop in View succeeded")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	mustGet(t, s, users, "usr_1", "u1")
	mustMiss(t, s, users, "usr_2")
}

func testWorkspacesIsolated(t *testing.T, s authz.Store) {
	a := authz.Collection{Workspace: "alpha", Name: authz.CollUsers}
	b := authz.Collection{Workspace: "beta", Name: authz.CollUsers}
	// "alpha-2" shares a prefix with "alpha": a layout joining strings
	// carelessly would mix them.
	a2 := authz.Collection{Workspace: "alpha-2", Name: authz.CollUsers}
	put(t, s, a, "usr_1", "alpha")
	put(t, s, b, "usr_1", "beta")
	put(t, s, a2, "usr_1", "alpha-2")
	put(t, s, b, "usr_2", "beta only")
	mustGet(t, s, a, "usr_1", "alpha")
	mustGet(t, s, b, "usr_1", "beta")
	mustGet(t, s, a2, "usr_1", "alpha-2")
	mustMiss(t, s, a, "usr_2")
	if got := render(scan(t, s, a, "", "", 0)); got != `"usr_1"="alpha"` {
		t.Fatalf("scan alpha: %s", got)
	}

	// Changing or dropping one workspace's collection leaves the others be.
	put(t, s, a, "usr_1", "alpha v2")
	mustGet(t, s, b, "usr_1", "beta")
	err := s.Update(ctx(t), "beta", func(tx authz.Tx) error { return tx.Drop(b) })
	if err != nil {
		t.Fatal(err)
	}
	mustMiss(t, s, b, "usr_1")
	mustGet(t, s, a, "usr_1", "alpha v2")
	mustGet(t, s, a2, "usr_1", "alpha-2")
}

func testGlobalWorkspaceIsolated(t *testing.T, s authz.Store) {
	global := authz.Collection{Workspace: "", Name: authz.CollWorkspaces}
	globalUsers := authz.Collection{Workspace: "", Name: authz.CollUsers}
	// Workspace ids a careless name for the global bucket or tag could hit.
	for _, id := range []string{"global", "0"} {
		put(t, s, authz.Collection{Workspace: id, Name: authz.CollUsers}, "usr_1", "in "+id)
	}
	put(t, s, global, "acme", `{"id":"acme"}`)
	put(t, s, globalUsers, "usr_1", "global")
	put(t, s, users, "usr_1", "acme")
	mustGet(t, s, global, "acme", `{"id":"acme"}`)
	mustGet(t, s, globalUsers, "usr_1", "global")
	mustGet(t, s, users, "usr_1", "acme")
	mustGet(t, s, authz.Collection{Workspace: "global", Name: authz.CollUsers}, "usr_1", "in global")
	mustMiss(t, s, authz.Collection{Workspace: ws, Name: authz.CollWorkspaces}, "acme")
	if got := render(scan(t, s, globalUsers, "", "", 0)); got != `"usr_1"="global"` {
		t.Fatalf("scan global users: %s", got)
	}
	err := s.Update(ctx(t), "", func(tx authz.Tx) error { return tx.Drop(globalUsers) })
	if err != nil {
		t.Fatal(err)
	}
	mustGet(t, s, users, "usr_1", "acme")
	mustGet(t, s, authz.Collection{Workspace: "0", Name: authz.CollUsers}, "usr_1", "in 0")
}

func testCrossWorkspace(t *testing.T, s authz.Store) {
	other := authz.Collection{Workspace: "other", Name: authz.CollUsers}
	err := s.Update(ctx(t), ws, func(tx authz.Tx) error {
		return tx.Put(other, "usr_1", []byte("x"))
	})
	if err == nil {
		t.Fatal("Put into another workspace's collection succeeded")
	}
	mustMiss(t, s, other, "usr_1")
	err = s.View(ctx(t), ws, func(tx authz.Tx) error {
		_, err := tx.Get(other, "usr_1")
		return err
	})
	if err == nil || errors.Is(err, authz.ErrNotFound) {
		t.Fatalf("Get from another workspace's collection: %v, want a rejection", err)
	}
}

func testInvalidWorkspace(t *testing.T, s authz.Store) {
	for _, bad := range []string{"_", "Acme", "-x", "a/b", "a}b", "{a}", strings.Repeat("a", 64)} {
		called := false
		err := s.Update(ctx(t), bad, func(authz.Tx) error { called = true; return nil })
		if !errors.Is(err, authz.ErrInvalid) || called {
			t.Errorf("Update(ws %q): err %v, fn called %v; want ErrInvalid without calling fn", bad, err, called)
		}
		if _, err := s.LoadPrincipal(ctx(t), bad, "usr_1"); !errors.Is(err, authz.ErrInvalid) {
			t.Errorf("LoadPrincipal(ws %q): %v, want ErrInvalid", bad, err)
		}
	}
}

// userJSON is a user record as the domain stores it.
func userJSON(t *testing.T, id string, teamIDs []string) string {
	t.Helper()
	b, err := json.Marshal(authz.User{ID: id, Workspace: ws, Username: "u-" + id, Kind: authz.KindAPI, Status: authz.StatusActive, Teams: teamIDs})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func testLoadPrincipal(t *testing.T, s authz.Store) {
	user := userJSON(t, "usr_1", []string{"tm_b", "tm_missing", "tm_a"})
	put(t, s, users, "usr_1", user)
	put(t, s, users, "usr_2", userJSON(t, "usr_2", nil))
	keys := authz.KeysCollection(ws, "usr_1")
	put(t, s, keys, "key_2", `{"id":"key_2"}`)
	put(t, s, keys, "key_1", `{"id":"key_1"}`)
	put(t, s, authz.KeysCollection(ws, "usr_2"), "key_9", `{"id":"key_9"}`)
	put(t, s, teams, "tm_a", `{"id":"tm_a"}`)
	put(t, s, teams, "tm_b", `{"id":"tm_b"}`)
	put(t, s, teams, "tm_c", `{"id":"tm_c"}`)
	// The same team id in another workspace must not leak in.
	put(t, s, authz.Collection{Workspace: "other", Name: authz.CollTeams}, "tm_missing", `{"id":"wrong"}`)

	rec, err := s.LoadPrincipal(ctx(t), ws, "usr_1")
	if err != nil {
		t.Fatal(err)
	}
	if string(rec.User) != user {
		t.Errorf("User = %s, want %s", rec.User, user)
	}
	if got, want := joined(rec.Keys), `{"id":"key_1"} {"id":"key_2"}`; got != want {
		t.Errorf("Keys = %s, want %s (key id order)", got, want)
	}
	if got, want := joined(rec.Teams), `{"id":"tm_b"} {"id":"tm_a"}`; got != want {
		t.Errorf("Teams = %s, want %s (listed order, missing skipped)", got, want)
	}

	// The record is the caller's: changing it changes nothing stored.
	rec.User[0] = 'X'
	again, err := s.LoadPrincipal(ctx(t), ws, "usr_1")
	if err != nil {
		t.Fatal(err)
	}
	if string(again.User) != user {
		t.Errorf("stored user changed through a returned record: %s", again.User)
	}
}

func joined(bs [][]byte) string { return string(bytes.Join(bs, []byte(" "))) }

func testLoadPrincipalMissing(t *testing.T, s authz.Store) {
	if _, err := s.LoadPrincipal(ctx(t), ws, "usr_none"); !errors.Is(err, authz.ErrNotFound) {
		t.Fatalf("LoadPrincipal of a missing user (empty store): %v, want ErrNotFound", err)
	}
	// Keys without a user are not a principal.
	put(t, s, authz.KeysCollection(ws, "usr_none"), "key_1", "{}")
	put(t, s, users, "usr_other", userJSON(t, "usr_other", nil))
	if _, err := s.LoadPrincipal(ctx(t), ws, "usr_none"); !errors.Is(err, authz.ErrNotFound) {
		t.Fatalf("LoadPrincipal of a missing user: %v, want ErrNotFound", err)
	}
	// A user of another workspace is not found here.
	if _, err := s.LoadPrincipal(ctx(t), "other", "usr_other"); !errors.Is(err, authz.ErrNotFound) {
		t.Fatalf("LoadPrincipal in the wrong workspace: %v, want ErrNotFound", err)
	}
}

func testLoadPrincipalBadUser(t *testing.T, s authz.Store) {
	put(t, s, users, "usr_1", "not json")
	_, err := s.LoadPrincipal(ctx(t), ws, "usr_1")
	if err == nil || errors.Is(err, authz.ErrNotFound) || errors.Is(err, authz.ErrUnavailable) {
		t.Fatalf("LoadPrincipal of a user that is not JSON: %v, want a decoding error", err)
	}
}

// However a user's JSON lists its teams (as json.Marshal writes it, or
// otherwise), LoadPrincipal finds them.
func testLoadPrincipalTeamsForms(t *testing.T, s authz.Store) {
	put(t, s, teams, "tm_a", `{"id":"tm_a"}`)
	put(t, s, teams, "tm_b", `{"id":"tm_b"}`)
	for _, tc := range []struct{ user, want string }{
		{`{"id":"usr_1","teams":["tm_a","tm_b"]}`, `{"id":"tm_a"} {"id":"tm_b"}`},
		{`{"id":"usr_1","teams":["tm_b"],"e":"x"}`, `{"id":"tm_b"}`},
		{`{"id":"usr_1","username":"teams","teams":["tm_a"]}`, `{"id":"tm_a"}`},
		{`{"id":"usr_1","username":"x\"teams","teams":["tm_b"]}`, `{"id":"tm_b"}`},
		{`{"id":"usr_1","n":"\"teams\":[\"tm_a\"]","teams":["tm_b"]}`, `{"id":"tm_b"}`},
		{`{"id":"usr_1", "teams" : [ "tm_a" , "tm_b" ] }`, `{"id":"tm_a"} {"id":"tm_b"}`},
		{`{"id":"usr_1","teams":["tm_\u0061"]}`, `{"id":"tm_a"}`},
		{`{"id":"usr_1","teams":null}`, ``},
		{`{"id":"usr_1","teams":[]}`, ``},
		{`{"id":"usr_1","n":"teams"}`, ``},
		{`{"id":"usr_1","teams":["tm_missing","tm_a"]}`, `{"id":"tm_a"}`},
	} {
		put(t, s, users, "usr_1", tc.user)
		rec, err := s.LoadPrincipal(ctx(t), ws, "usr_1")
		if err != nil {
			t.Fatalf("user %s: %v", tc.user, err)
		}
		if got := joined(rec.Teams); got != tc.want {
			t.Errorf("user %s: teams %s, want %s", tc.user, got, tc.want)
		}
	}
}

func testLoadPrincipalBare(t *testing.T, s authz.Store) {
	for _, u := range []string{
		userJSON(t, "usr_1", nil),
		`{"id":"usr_1","teams":[]}`,
		`{"id":"usr_1"}`,
	} {
		put(t, s, users, "usr_1", u)
		rec, err := s.LoadPrincipal(ctx(t), ws, "usr_1")
		if err != nil {
			t.Fatalf("user %s: %v", u, err)
		}
		if string(rec.User) != u || len(rec.Keys) != 0 || len(rec.Teams) != 0 {
			t.Fatalf("user %s: got user %s, %d keys, %d teams; want the user alone", u, rec.User, len(rec.Keys), len(rec.Teams))
		}
	}
}

func testConcurrentUpdates(t *testing.T, s authz.Store) {
	const workers, rounds = 20, 10
	counter := authz.Collection{Workspace: ws, Name: "counters"}
	put(t, s, counter, "c", "0")

	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for range workers {
		wg.Go(func() {
			for range rounds {
				err := s.Update(ctx(t), ws, func(tx authz.Tx) error {
					v, err := tx.Get(counter, "c")
					if err != nil {
						return err
					}
					var n int
					if err := json.Unmarshal(v, &n); err != nil {
						return err
					}
					return tx.Put(counter, "c", fmt.Appendf(nil, "%d", n+1))
				})
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent Update: %v", err)
	}
	mustGet(t, s, counter, "c", fmt.Sprint(workers*rounds))

	// Blind writes of different ids into one user's keys, and into another
	// user's, all at once: none is lost (a store that writes a collection
	// whole must not write back a stale copy).
	keys := []authz.Collection{authz.KeysCollection(ws, "usr_1"), authz.KeysCollection(ws, "usr_2")}
	errs = make(chan error, workers*rounds)
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				err := s.Update(ctx(t), ws, func(tx authz.Tx) error {
					return tx.Put(keys[w%2], fmt.Sprintf("key_%02d_%02d", w, r), []byte("k"))
				})
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent blind Update: %v", err)
	}
	for i, c := range keys {
		if got := len(scan(t, s, c, "", "", 0)); got != workers/2*rounds {
			t.Errorf("user %d holds %d keys after %d concurrent puts", i+1, got, workers/2*rounds)
		}
	}
}

func testCanceledContext(t *testing.T, s authz.Store) {
	c, cancel := context.WithCancel(context.Background())
	cancel()
	called := false
	fn := func(authz.Tx) error { called = true; return nil }
	if err := s.Update(c, ws, fn); err == nil || called {
		t.Fatalf("Update with a canceled context: err %v, fn called %v", err, called)
	}
	if err := s.View(c, ws, fn); err == nil || called {
		t.Fatalf("View with a canceled context: err %v, fn called %v", err, called)
	}
	if _, err := s.LoadPrincipal(c, ws, "usr_1"); err == nil {
		t.Fatal("LoadPrincipal with a canceled context succeeded")
	}
}

func testClosed(t *testing.T, s authz.Store) {
	put(t, s, users, "usr_1", userJSON(t, "usr_1", nil))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	fn := func(tx authz.Tx) error {
		_, err := tx.Get(users, "usr_1")
		return err
	}
	if err := s.View(ctx(t), ws, fn); !errors.Is(err, authz.ErrUnavailable) {
		t.Errorf("View after Close: %v, want ErrUnavailable", err)
	}
	if err := s.Update(ctx(t), ws, fn); !errors.Is(err, authz.ErrUnavailable) {
		t.Errorf("Update after Close: %v, want ErrUnavailable", err)
	}
	if _, err := s.LoadPrincipal(ctx(t), ws, "usr_1"); !errors.Is(err, authz.ErrUnavailable) {
		t.Errorf("LoadPrincipal after Close: %v, want ErrUnavailable", err)
	}
}
