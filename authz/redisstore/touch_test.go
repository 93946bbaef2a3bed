package redisstore

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/redisstore/redistest"
)

// The script reads a run's blobs at once and writes them back at once: a
// user named in two groups of one run (Touch never sends that, but the
// script takes it) gets both groups, the second applied to what the first
// left; a user with nothing to set is not written, and one without a
// blob, or with a blob this store cannot read, gets nothing.
func TestTouchScriptUserTwice(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := newStore(t, Options{URL: srv.URL()})
	keys := authz.KeysCollection("acme", "usr_1")
	mustUpdate(t, s, "acme", func(tx authz.Tx) error {
		return errors.Join(
			tx.Put(keys, "key_1", []byte(`{"id":"key_1"}`)),
			tx.Put(keys, "key_2", []byte(`{"id":"key_2"}`)),
			tx.Put(authz.KeysCollection("acme", "usr_2"), "key_3", []byte(`{"id":"key_3"}`)),
		)
	})
	ctx := context.Background()
	hash := s.place("acme", keysFamily).key
	const garbage = "\xff\xffnot a blob"
	if err := s.Client().HSet(ctx, hash, "usr_bad", garbage).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := touchScript.Run(ctx, s.Client(), []string{hash}).Int(); err != nil || n != 0 {
		t.Fatalf("touchScript of nothing = %d, %v; want 0", n, err)
	}
	// Nothing to set, for users with a blob, without one, with one this
	// store cannot read: the hash is not written (a transaction that
	// watches it still commits).
	err := s.Client().Watch(ctx, func(tx *redis.Tx) error {
		n, err := touchScript.Run(ctx, s.Client(), []string{hash},
			"usr_2", 1, "key_9", 50, "usr_none", 1, "key_1", 5, "usr_bad", 1, "key_1", 5).Int()
		if err != nil || n != 0 {
			return fmt.Errorf("touchScript = %d, %v; want 0 entries set", n, err)
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error { return p.Ping(ctx).Err() })
		return err
	}, hash)
	if err != nil {
		t.Fatalf("a run that sets nothing: %v", err)
	}
	n, err := touchScript.Run(ctx, s.Client(), []string{hash},
		"usr_none", 1, "key_1", 5,
		"usr_1", 2, "key_1", 100, "key_9", 100,
		"usr_bad", 1, "key_1", 5,
		"usr_2", 1, "key_9", 50,
		"usr_1", 2, "key_2", 200, "key_1", 90,
	).Int()
	if err != nil || n != 2 {
		t.Fatalf("touchScript = %d, %v; want 2 entries set", n, err)
	}
	if v, err := s.Client().HGet(ctx, hash, "usr_bad").Result(); err != nil || v != garbage {
		t.Errorf("the unreadable blob is now %q, %v; want it left alone", v, err)
	}
	if ok, err := s.Client().HExists(ctx, hash, "usr_none").Result(); err != nil || ok {
		t.Errorf("a user with no blob got one (%v, %v)", ok, err)
	}
	want := map[authz.Collection]map[string]string{
		keys: {
			"key_1": `{"id":"key_1"}`, "key_2": `{"id":"key_2"}`,
			"use_key_1": `{"id":"use_key_1","at":100}`, "use_key_2": `{"id":"use_key_2","at":200}`,
		},
		authz.KeysCollection("acme", "usr_2"): {"key_3": `{"id":"key_3"}`},
	}
	err = s.View(ctx, "acme", func(tx authz.Tx) error {
		for coll, records := range want {
			es, err := tx.Scan(coll, "", "", 0)
			if err != nil {
				return err
			}
			got := map[string]string{}
			for _, e := range es {
				got[e.ID] = string(e.Value)
			}
			if len(got) != len(records) {
				t.Errorf("%s holds %v, want %v", coll.Name, got, records)
			}
			for id, v := range records {
				if got[id] != v {
					t.Errorf("%s/%s = %q, want %q", coll.Name, id, got[id], v)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
