package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/apiusers/apiusers/authz"
)

// RunTouch runs the suite of authz.Toucher against the store's own
// Touch, and against authz.TouchByUpdate over the same store: both must
// leave the same records.
func RunTouch(t *testing.T, open func(t *testing.T) authz.Store) {
	for _, impl := range []struct {
		name string
		of   func(authz.Store) authz.Toucher // nil: the store is none
	}{
		{"Native", func(s authz.Store) authz.Toucher {
			tc, _ := s.(authz.Toucher)
			return tc
		}},
		{"ByUpdate", authz.TouchByUpdate},
	} {
		t.Run(impl.name, func(t *testing.T) {
			for _, tc := range []struct {
				name string
				fn   func(*testing.T, authz.Store, authz.Toucher)
			}{
				{"Records", testTouchRecords},
				{"NeverBackwards", testTouchNeverBackwards},
				{"MissingCredential", testTouchMissing},
				{"Loaded", testTouchLoaded},
				{"LargeBatch", testTouchLargeBatch},
				{"Closed", testTouchClosed},
			} {
				t.Run(tc.name, func(t *testing.T) {
					s := open(t)
					t.Cleanup(func() { _ = s.Close() })
					touches := impl.of(s)
					if touches == nil {
						t.Skip("the store is no authz.Toucher")
					}
					tc.fn(t, s, touches)
				})
			}
		})
	}
}

func touch(t *testing.T, tc authz.Toucher, ts ...authz.Touch) {
	t.Helper()
	if err := tc.Touch(ctx(t), slices.Clone(ts)); err != nil {
		t.Fatalf("Touch: %v", err)
	}
}

func use(s string, at int64) string { return string(authz.UseValue(s, at)) }

// The use records sit beside the credentials, in id order, and the
// credentials are left as they were.
func testTouchRecords(t *testing.T, s authz.Store, tc authz.Toucher) {
	keys := authz.KeysCollection(ws, "usr_1")
	put(t, s, keys, "key_b", `{"id":"key_b","n":"ci"}`)
	put(t, s, keys, "key_a", `{"id":"key_a","l":5}`)
	put(t, s, keys, "ses_a", `{"id":"ses_a"}`)
	other := authz.KeysCollection("other", "usr_1")
	put(t, s, other, "key_a", `{"id":"key_a"}`)
	touch(t, tc,
		authz.Touch{Workspace: ws, User: "usr_1", ID: "key_b", At: 1_700_000_200},
		authz.Touch{Workspace: "other", User: "usr_1", ID: "key_a", At: 1_700_000_300},
		authz.Touch{Workspace: ws, User: "usr_1", ID: "ses_a", At: 1_700_000_100},
	)
	want := fmt.Sprintf("%q=%q %q=%q %q=%q %q=%q", "key_a", `{"id":"key_a","l":5}`, "key_b", `{"id":"key_b","n":"ci"}`,
		"ses_a", `{"id":"ses_a"}`, "use_key_b", use("key_b", 1_700_000_200))
	want += fmt.Sprintf(" %q=%q", "use_ses_a", use("ses_a", 1_700_000_100))
	if got := render(scan(t, s, keys, "", "", 0)); got != want {
		t.Fatalf("keys collection after touches:\n got %s\nwant %s", got, want)
	}
	// A use record sorts among the others: key_a's comes before key_b's.
	touch(t, tc, authz.Touch{Workspace: ws, User: "usr_1", ID: "key_a", At: 1_700_000_400})
	got := scan(t, s, keys, "use_", "", 0)
	var ids []string
	for _, e := range got {
		ids = append(ids, e.ID)
	}
	if !slices.Equal(ids, []string{"use_key_a", "use_key_b", "use_ses_a"}) {
		t.Fatalf("use records = %s, want use_key_a, use_key_b, use_ses_a", render(got))
	}
	mustGet(t, s, keys, "use_key_a", use("key_a", 1_700_000_400))
	// Whatever the ids, the collection stays in id order.
	put(t, s, keys, "zz_1", `{"id":"zz_1"}`)
	touch(t, tc, authz.Touch{Workspace: ws, User: "usr_1", ID: "zz_1", At: 1_700_000_500})
	ids = nil
	for _, e := range scan(t, s, keys, "", "", 0) {
		ids = append(ids, e.ID)
	}
	if want := []string{"key_a", "key_b", "ses_a", "use_key_a", "use_key_b", "use_ses_a", "use_zz_1", "zz_1"}; !slices.Equal(ids, want) {
		t.Fatalf("ids = %v, want %v", ids, want)
	}
	mustGet(t, s, keys, "use_zz_1", use("zz_1", 1_700_000_500))
	mustGet(t, s, other, "use_key_a", use("key_a", 1_700_000_300))
	mustGet(t, s, keys, "key_a", `{"id":"key_a","l":5}`)
}

// A use only ever moves forward, across batches and within one.
func testTouchNeverBackwards(t *testing.T, s authz.Store, tc authz.Toucher) {
	keys := authz.KeysCollection(ws, "usr_1")
	put(t, s, keys, "key_1", `{"id":"key_1"}`)
	put(t, s, keys, "key_2", `{"id":"key_2"}`)
	touch(t, tc, authz.Touch{Workspace: ws, User: "usr_1", ID: "key_1", At: 200})
	for _, at := range []int64{199, 200, 1} {
		touch(t, tc, authz.Touch{Workspace: ws, User: "usr_1", ID: "key_1", At: at})
		mustGet(t, s, keys, "use_key_1", use("key_1", 200))
	}
	touch(t, tc, authz.Touch{Workspace: ws, User: "usr_1", ID: "key_1", At: 201})
	mustGet(t, s, keys, "use_key_1", use("key_1", 201))
	// Two uses of one key in a batch (two instances' touches, in any
	// order): the later one stays.
	touch(t, tc,
		authz.Touch{Workspace: ws, User: "usr_1", ID: "key_2", At: 70},
		authz.Touch{Workspace: ws, User: "usr_1", ID: "key_2", At: 90},
		authz.Touch{Workspace: ws, User: "usr_1", ID: "key_2", At: 80},
	)
	mustGet(t, s, keys, "use_key_2", use("key_2", 90))
	// A use record written through a transaction counts like one Touch
	// wrote.
	put(t, s, keys, "use_key_2", use("key_2", 500))
	touch(t, tc, authz.Touch{Workspace: ws, User: "usr_1", ID: "key_2", At: 400})
	mustGet(t, s, keys, "use_key_2", use("key_2", 500))
	// One that does not read as a use record is replaced.
	put(t, s, keys, "use_key_2", "garbage")
	touch(t, tc, authz.Touch{Workspace: ws, User: "usr_1", ID: "key_2", At: 401})
	mustGet(t, s, keys, "use_key_2", use("key_2", 401))
}

// A touch of a credential that is gone (revoked, ended, its user deleted)
// writes nothing at all.
func testTouchMissing(t *testing.T, s authz.Store, tc authz.Toucher) {
	keys := authz.KeysCollection(ws, "usr_1")
	put(t, s, keys, "key_1", `{"id":"key_1"}`)
	touch(t, tc,
		authz.Touch{Workspace: ws, User: "usr_1", ID: "key_gone", At: 100},
		authz.Touch{Workspace: ws, User: "usr_none", ID: "key_1", At: 100},
		authz.Touch{Workspace: "empty", User: "usr_1", ID: "key_1", At: 100},
	)
	if got, want := render(scan(t, s, keys, "", "", 0)), fmt.Sprintf("%q=%q", "key_1", `{"id":"key_1"}`); got != want {
		t.Fatalf("keys collection = %s, want %s", got, want)
	}
	for _, c := range []authz.Collection{authz.KeysCollection(ws, "usr_none"), authz.KeysCollection("empty", "usr_1")} {
		if got := scan(t, s, c, "", "", 0); len(got) != 0 {
			t.Fatalf("%s in %q after touching a missing credential: %s", c.Name, c.Workspace, render(got))
		}
	}
	// Deleted with its use record, then touched late: nothing comes back.
	touch(t, tc, authz.Touch{Workspace: ws, User: "usr_1", ID: "key_1", At: 100})
	err := s.Update(ctx(t), ws, func(tx authz.Tx) error {
		if err := tx.Delete(keys, "key_1"); err != nil {
			return err
		}
		return tx.Delete(keys, authz.UseID("key_1"))
	})
	if err != nil {
		t.Fatal(err)
	}
	touch(t, tc, authz.Touch{Workspace: ws, User: "usr_1", ID: "key_1", At: 200})
	if got := scan(t, s, keys, "", "", 0); len(got) != 0 {
		t.Fatalf("keys collection after a touch of a revoked key: %s", render(got))
	}
}

// LoadPrincipal reads use records with the credentials, in id order.
func testTouchLoaded(t *testing.T, s authz.Store, tc authz.Toucher) {
	put(t, s, users, "usr_1", userJSON(t, "usr_1", nil))
	keys := authz.KeysCollection(ws, "usr_1")
	put(t, s, keys, "key_1", `{"id":"key_1"}`)
	touch(t, tc, authz.Touch{Workspace: ws, User: "usr_1", ID: "key_1", At: 42})
	rec, err := s.LoadPrincipal(ctx(t), ws, "usr_1")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := joined(rec.Keys), `{"id":"key_1"} `+use("key_1", 42); got != want {
		t.Fatalf("Keys = %s, want %s", got, want)
	}
}

// A batch of many users (more than a store may send in one script or
// statement) is applied whole.
func testTouchLargeBatch(t *testing.T, s authz.Store, tc authz.Toucher) {
	const n = 600
	var ts []authz.Touch
	err := s.Update(ctx(t), ws, func(tx authz.Tx) error {
		for i := range n {
			if err := tx.Put(authz.KeysCollection(ws, fmt.Sprintf("usr_%03d", i)), "key_1", []byte(`{"id":"key_1"}`)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := n - 1; i >= 0; i-- {
		ts = append(ts, authz.Touch{Workspace: ws, User: fmt.Sprintf("usr_%03d", i), ID: "key_1", At: int64(1000 + i)})
		if i%3 == 0 { // and some sessions that do not exist
			ts = append(ts, authz.Touch{Workspace: ws, User: fmt.Sprintf("usr_%03d", i), ID: "ses_1", At: 5})
		}
	}
	touch(t, tc, ts...)
	for i := range n {
		c := authz.KeysCollection(ws, fmt.Sprintf("usr_%03d", i))
		got := render(scan(t, s, c, "", "", 0))
		want := fmt.Sprintf("%q=%q %q=%q", "key_1", `{"id":"key_1"}`, "use_key_1", use("key_1", int64(1000+i)))
		if got != want {
			t.Fatalf("%s = %s, want %s", c.Name, got, want)
		}
	}
}

func testTouchClosed(t *testing.T, s authz.Store, tc authz.Toucher) {
	put(t, s, authz.KeysCollection(ws, "usr_1"), "key_1", `{"id":"key_1"}`)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	err := tc.Touch(context.Background(), []authz.Touch{{Workspace: ws, User: "usr_1", ID: "key_1", At: 1}})
	if !errors.Is(err, authz.ErrUnavailable) {
		t.Fatalf("Touch on a closed store: %v, want ErrUnavailable", err)
	}
}
