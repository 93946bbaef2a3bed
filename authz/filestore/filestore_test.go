package filestore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/storetest"
	"go.etcd.io/bbolt"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) authz.Store {
		s, err := Open(filepath.Join(t.TempDir(), "apiusers.db"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestLedgerConformance(t *testing.T) {
	storetest.RunLedger(t, func(t *testing.T) authz.Store {
		s, err := Open(filepath.Join(t.TempDir(), "apiusers.db"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestTouchConformance(t *testing.T) {
	storetest.RunTouch(t, func(t *testing.T) authz.Store {
		s, err := Open(filepath.Join(t.TempDir(), "apiusers.db"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestPeopleConformance(t *testing.T) {
	storetest.RunPeople(t, func(t *testing.T) authz.Store {
		s, err := Open(filepath.Join(t.TempDir(), "apiusers.db"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

var users = authz.Collection{Workspace: "acme", Name: authz.CollUsers}

func TestReopenKeepsData(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "data", "nested", "apiusers.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	err = s.Update(ctx, "acme", func(tx authz.Tx) error { return tx.Put(users, "usr_1", []byte("kept")) })
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("store file mode %o, want 600", perm)
	}
	di, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if perm := di.Mode().Perm(); perm != 0o700 {
		t.Errorf("created directory mode %o, want 700", perm)
	}

	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var got []byte
	err = s.View(ctx, "acme", func(tx authz.Tx) error {
		got, err = tx.Get(users, "usr_1")
		return err
	})
	if err != nil || string(got) != "kept" {
		t.Fatalf("after reopen: %q, %v; want kept", got, err)
	}
}

func TestSecondOpenSaysInUse(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "apiusers.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	start := time.Now()
	s2, err := Open(path, Options{LockTimeout: 100 * time.Millisecond})
	elapsed := time.Since(start)
	if err == nil {
		s2.Close()
		t.Fatal("second Open of a held file succeeded")
	}
	want := "store file " + path + " is in use by another process (is Caddy running with this store?)"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	if elapsed > time.Second {
		t.Errorf("second Open gave up after %s, want about the 100ms lock timeout", elapsed)
	}

	// Once the holder closes, the file opens again.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s3, err := Open(path, Options{LockTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("Open after the holder closed: %v", err)
	}
	s3.Close()
}

func TestOpenFailsOnUnwritablePath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// A path below a regular file cannot be created.
	_, err := Open(filepath.Join(file, "sub", "apiusers.db"), Options{})
	if err == nil {
		t.Fatal("Open below a regular file succeeded")
	}
	if errors.Is(err, authz.ErrUnavailable) {
		t.Fatalf("Open error %v wraps ErrUnavailable; it is a configuration error", err)
	}
}

func TestMessagesConformance(t *testing.T) {
	t.Parallel()
	storetest.RunMessages(t, func(t *testing.T) authz.Store {
		s, err := Open(filepath.Join(t.TempDir(), "apiusers.db"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestMessageBucketsAgree checks, after retention and erase, that the
// workspace index, the user buckets and the counts hold the same messages
// and that a user without messages leaves no bucket behind.
func TestMessageBucketsAgree(t *testing.T) {
	t.Parallel()
	s, err := Open(filepath.Join(t.TempDir(), "apiusers.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.MessageChurn(t, s, "acme")
	err = s.db.View(func(btx *bbolt.Tx) error {
		b, _ := messageBuckets(btx, "acme", false)
		if b == nil {
			return errors.New("no message buckets")
		}
		users := map[string]int{}
		err := b.users.ForEachBucket(func(user []byte) error {
			return b.users.Bucket(user).ForEach(func(id, _ []byte) error {
				if owner := b.all.Get(id); string(owner) != string(user) {
					return fmt.Errorf("message %s of %s is indexed as %q's", id, user, owner)
				}
				users[string(user)]++
				return nil
			})
		})
		if err != nil {
			return err
		}
		if want := map[string]int{"usr_keep": 3, "usr_trim": 2}; !maps.Equal(users, want) {
			return fmt.Errorf("user buckets hold %v, want %v", users, want)
		}
		if n := b.all.Stats().KeyN; n != 5 {
			return fmt.Errorf("workspace index holds %d ids, want 5", n)
		}
		counts := map[string]int{}
		_ = b.count.ForEach(func(user, v []byte) error {
			counts[string(user)] = int(binary.BigEndian.Uint64(v))
			return nil
		})
		if !maps.Equal(counts, users) {
			return fmt.Errorf("counts %v, want %v", counts, users)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestReservedCollectionNames(t *testing.T) {
	t.Parallel()
	s, err := Open(filepath.Join(t.TempDir(), "apiusers.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.Update(context.Background(), "acme", func(tx authz.Tx) error {
		return tx.Drop(authz.Collection{Workspace: "acme", Name: messagesBucket})
	})
	if !errors.Is(err, authz.ErrInvalid) {
		t.Fatalf("dropping %s through a Tx: %v, want ErrInvalid", messagesBucket, err)
	}
}
