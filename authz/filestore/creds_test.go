package filestore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apiusers/apiusers/authz"
	"go.etcd.io/bbolt"
)

// TestMigrateKeysBuckets opens a file of the layout before credentials
// lived beside their users (a bucket keys:<user id> per user, in the
// workspace bucket), with more buckets than one migration transaction
// moves: every record is where the domain looks for it, the principal
// loads with its keys and use records, and no keys bucket is left.
func TestMigrateKeysBuckets(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := migrateBatch + 300
	err = db.Update(func(btx *bbolt.Tx) error {
		wsb, err := btx.CreateBucket([]byte("acme"))
		if err != nil {
			return err
		}
		ub, err := wsb.CreateBucket(usersBucket)
		if err != nil {
			return err
		}
		for i := range n {
			uid := fmt.Sprintf("usr_%05d", i)
			if err := ub.Put([]byte(uid), []byte(`{"id":"`+uid+`"}`)); err != nil {
				return err
			}
			kb, err := wsb.CreateBucket([]byte("keys:" + uid))
			if err != nil {
				return err
			}
			kid := fmt.Sprintf("key_%05d", i)
			if err := kb.Put([]byte(kid), []byte(`{"id":"`+kid+`"}`)); err != nil {
				return err
			}
			if err := kb.Put([]byte(authz.UseID(kid)), authz.UseValue(kid, int64(1000+i))); err != nil {
				return err
			}
		}
		// A member's sessions, with no user record.
		kb, err := wsb.CreateBucket([]byte("keys:mem_1"))
		if err != nil {
			return err
		}
		return kb.Put([]byte("ses_1"), []byte(`{"id":"ses_1"}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Opening a migrated file moves nothing and writes nothing.
	writes := func() int64 { st := s.db.Stats(); return st.TxStats.GetWrite() }
	before := writes()
	if moved, err := migrate(s.db); err != nil || moved != 0 || writes() != before {
		t.Fatalf("migrating again: moved %d, %v, page writes %d → %d", moved, err, before, writes())
	}
	ctx := context.Background()
	for _, i := range []int{0, 1, migrateBatch - 1, migrateBatch, n - 1} {
		uid, kid := fmt.Sprintf("usr_%05d", i), fmt.Sprintf("key_%05d", i)
		rec, err := s.LoadPrincipal(ctx, "acme", uid)
		if err != nil {
			t.Fatal(err)
		}
		if len(rec.Keys) != 2 || string(rec.Keys[0]) != `{"id":"`+kid+`"}` || string(rec.Keys[1]) != string(authz.UseValue(kid, int64(1000+i))) {
			t.Fatalf("principal %s after the migration: keys %q", uid, rec.Keys)
		}
	}
	err = s.View(ctx, "acme", func(tx authz.Tx) error {
		es, err := tx.Scan(authz.KeysCollection("acme", "mem_1"), "", "", 0)
		if err != nil || len(es) != 1 || es[0].ID != "ses_1" {
			return fmt.Errorf("the member's sessions: %v %v", es, err)
		}
		us, err := tx.Scan(authz.Collection{Workspace: "acme", Name: authz.CollUsers}, "", "", 0)
		if err != nil || len(us) != n {
			return fmt.Errorf("users after the migration: %d, %v; want %d", len(us), err, n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.db.View(func(btx *bbolt.Tx) error {
		return btx.Bucket([]byte("acme")).ForEachBucket(func(k []byte) error {
			if string(k) != authz.CollUsers {
				return fmt.Errorf("bucket %q left after the migration", k)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestCredsBesideUsers: the users collection and the keys collections
// share a bucket and stay collections apart, and what the layout cannot
// hold is refused rather than mixed up.
func TestCredsBesideUsers(t *testing.T) {
	t.Parallel()
	s := openTemp(t)
	ctx := context.Background()
	var err error
	keys := authz.KeysCollection("acme", "usr_1")
	err = s.Update(ctx, "acme", func(tx authz.Tx) error {
		for _, id := range []string{"usr_0", "usr_1", "usr_10"} {
			if err := tx.Put(users, id, []byte(id)); err != nil {
				return err
			}
		}
		// A user id extending usr_1 with a zero byte sorts between usr_1
		// and its credentials.
		if err := tx.Put(users, "usr_1\x00", []byte(`{"id":"usr_1\u0000"}`)); err != nil {
			return err
		}
		if err := tx.Put(users, "usr_1", []byte(`{"id":"usr_1"}`)); err != nil {
			return err
		}
		return tx.Put(keys, "key_a", []byte("a"))
	})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := s.LoadPrincipal(ctx, "acme", "usr_1")
	if err != nil || len(rec.Keys) != 1 || string(rec.Keys[0]) != "a" {
		t.Fatalf("LoadPrincipal(usr_1) = %+v, %v; want its one key", rec, err)
	}
	err = s.Update(ctx, "acme", func(tx authz.Tx) error {
		if err := tx.Put(users, "usr_1"+credSep+"key_a", []byte("x")); !errors.Is(err, authz.ErrInvalid) {
			return fmt.Errorf("a user id holding the separator: %v, want ErrInvalid", err)
		}
		if err := tx.Put(authz.KeysCollection("acme", "usr\x001"), "key_a", []byte("x")); !errors.Is(err, authz.ErrInvalid) {
			return fmt.Errorf("keys of a user id with a zero byte: %v, want ErrInvalid", err)
		}
		if _, err := tx.Get(users, "usr_1"+credSep+"key_a"); !errors.Is(err, authz.ErrNotFound) {
			return fmt.Errorf("a credential read as a user: %v, want ErrNotFound", err)
		}
		us, err := tx.Scan(users, "usr_1", "", 0)
		if err != nil || len(us) != 3 || us[0].ID != "usr_1" || us[1].ID != "usr_1\x00" || us[2].ID != "usr_10" {
			return fmt.Errorf("users from usr_1: %v %v", us, err)
		}
		us, err = tx.Scan(users, "", "usr_1\x00", 1)
		if err != nil || len(us) != 1 || us[0].ID != "usr_10" {
			return fmt.Errorf("the user after usr_1: %v %v", us, err)
		}
		return tx.Drop(users)
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.View(ctx, "acme", func(tx authz.Tx) error {
		us, err := tx.Scan(users, "", "", 0)
		if err != nil || len(us) != 0 {
			return fmt.Errorf("users after dropping them: %v %v", us, err)
		}
		if v, err := tx.Get(keys, "key_a"); err != nil || string(v) != "a" {
			return fmt.Errorf("a key after its users were dropped: %q %v", v, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestCredentialIDWithSeparator: only a user id may not hold credSep; a
// credential id may, like any id of any other collection (the first credSep
// of a key ends its user id), and stays a credential of its user.
func TestCredentialIDWithSeparator(t *testing.T) {
	t.Parallel()
	s := openTemp(t)
	ctx := context.Background()
	var err error
	keys := authz.KeysCollection("acme", "usr_1")
	id := "key_a" + credSep + "b"
	err = s.Update(ctx, "acme", func(tx authz.Tx) error {
		if err := tx.Put(users, "usr_1", []byte(`{"id":"usr_1"}`)); err != nil {
			return err
		}
		return tx.Put(keys, id, []byte("a"))
	})
	if err != nil {
		t.Fatalf("putting credential %q: %v", id, err)
	}
	err = s.View(ctx, "acme", func(tx authz.Tx) error {
		if v, err := tx.Get(keys, id); err != nil || string(v) != "a" {
			return fmt.Errorf("Get(%q) = %q, %v", id, v, err)
		}
		if es, err := tx.Scan(keys, "key_a", "", 0); err != nil || len(es) != 1 || es[0].ID != id {
			return fmt.Errorf("Scan of the keys: %v, %v", es, err)
		}
		if us, err := tx.Scan(users, "", "", 0); err != nil || len(us) != 1 || us[0].ID != "usr_1" {
			return fmt.Errorf("Scan of the users: %v, %v", us, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := s.LoadPrincipal(ctx, "acme", "usr_1")
	if err != nil || len(rec.Keys) != 1 || string(rec.Keys[0]) != "a" {
		t.Fatalf("LoadPrincipal(usr_1) = %+v, %v; want its one key", rec, err)
	}
}

// TestScanBesideCredentials runs the conformance suite's Scan matrix
// (prefixes, afters, limits over ids that are prefixes of each other and
// hold bytes 0x00, 0x01, 0xff) on the users collection and on keys
// collections that share its bucket, each filled with the same ids: no
// collection sees another's records, and each scans as if alone.
func TestScanBesideCredentials(t *testing.T) {
	t.Parallel()
	s := openTemp(t)
	ctx := context.Background()
	var err error
	idsIn := []string{
		"a", "a\x00", "a\x00b", "a\x01", "a\x02", "a\x03", "a\x03\x00", "a\x04", "ab", "abc", "abd", "ab\xff", "ab\xff\xff", "ac",
		"b", "ba", "é", "éa", "日本", "日本語", "\x00", "\x00a", "\x01", "\x03", "\xff", "\xff\xff", "\xff\xfe", "z",
	}
	colls := []authz.Collection{users,
		authz.KeysCollection("acme", "a"), authz.KeysCollection("acme", "ab"),
		authz.KeysCollection("acme", ""), authz.KeysCollection("acme", "q")}
	value := func(c authz.Collection, id string) string {
		if c == users {
			return `{"id":"` + fmt.Sprintf("%x", id) + `"}`
		}
		return c.Name + ":" + id
	}
	err = s.Update(ctx, "acme", func(tx authz.Tx) error {
		for _, id := range idsIn {
			for _, c := range colls {
				if err := tx.Put(c, id, []byte(value(c, id))); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sorted := slices.Clone(idsIn)
	slices.Sort(sorted)
	prefixes := []string{"", "a", "a\x00", "a\x00\x00", "a\x03", "ab", "ab\xff", "abc", "b", "é", "\xff", "q", "zz", "\x00"}
	afters := []string{"", "a", "a\x00", "a\x00\x00", "a\x00\x00z", "a\x02", "a\x03", "aa", "ab", "ab\xff", "abz", "b", "c", "\xff", "\xff\xff\xff", "\x00"}
	err = s.View(ctx, "acme", func(tx authz.Tx) error {
		for _, c := range colls {
			for _, p := range prefixes {
				for _, a := range afters {
					for _, l := range []int{0, 1, 2, 3, 100} {
						var want, got []string
						for _, id := range sorted {
							if strings.HasPrefix(id, p) && id > a && (l <= 0 || len(want) < l) {
								want = append(want, id+"="+value(c, id))
							}
						}
						es, err := tx.Scan(c, p, a, l)
						if err != nil {
							return err
						}
						for _, e := range es {
							got = append(got, e.ID+"="+string(e.Value))
						}
						if !slices.Equal(got, want) {
							t.Errorf("%s: Scan(%q, %q, %d)\n got %q\nwant %q", c.Name, p, a, l, got, want)
						}
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range idsIn {
		rec, err := s.LoadPrincipal(ctx, "acme", id)
		if err != nil {
			t.Fatalf("LoadPrincipal(%q): %v", id, err)
		}
		want := 0
		if slices.Contains(colls[1:], authz.KeysCollection("acme", id)) {
			want = len(idsIn)
		}
		if len(rec.Keys) != want {
			t.Errorf("LoadPrincipal(%q): %d keys, want %d", id, len(rec.Keys), want)
		}
	}
}

// openTemp opens a new store in a temporary directory, closed at the end
// of the test.
func openTemp(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "apiusers.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
