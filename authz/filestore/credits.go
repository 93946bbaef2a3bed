package filestore

import (
	"context"
	"encoding/json"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/apiusers/apiusers/authz"
	"github.com/apiusers/apiusers/authz/limit"
)

// Credit accounts (limit.Ledger): one record per account in the
// workspace's "_credits" bucket, account id -> limit.LedgerState JSON.
// One process owns the file, so the gateway's settlements are this
// process's only; they are applied, a batch per transaction, with
// limit.Apply.
const creditsBucket = "_credits"

// Settle implements limit.Ledger: the whole batch in one transaction.
func (s *Store) Settle(ctx context.Context, batch []*limit.Settlement) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, st := range batch {
		if err := checkWorkspace(st.Workspace); err != nil || st.Workspace == "" {
			return fmt.Errorf("settling credits of workspace %q: %w", st.Workspace, authz.ErrInvalid)
		}
	}
	err := s.db.Update(func(btx *bbolt.Tx) error {
		for _, st := range batch {
			wsb, err := btx.CreateBucketIfNotExists(bucketName(st.Workspace))
			if err != nil {
				return err
			}
			cb, err := wsb.CreateBucketIfNotExists([]byte(creditsBucket))
			if err != nil {
				return err
			}
			state, err := decodeLedger(cb.Get([]byte(st.ID)))
			if err != nil {
				return fmt.Errorf("credits %s: %w", st.ID, err)
			}
			b, err := json.Marshal(limit.Apply(state, st))
			if err != nil {
				return err
			}
			if err := cb.Put([]byte(st.ID), b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		for _, st := range batch {
			st.Done = false
		}
		return s.backendErr(err)
	}
	return nil
}

// Balances implements limit.Ledger.
func (s *Store) Balances(ctx context.Context, accounts []limit.Credits, now int64) ([]int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]int64, len(accounts))
	err := s.db.View(func(btx *bbolt.Tx) error {
		for i, c := range accounts {
			var raw []byte
			if cb := bucket(btx.Bucket(bucketName(c.Workspace)), creditsBucket); cb != nil {
				raw = cb.Get([]byte(c.ID))
			}
			state, err := decodeLedger(raw)
			if err != nil {
				return fmt.Errorf("credits %s: %w", c.ID, err)
			}
			out[i] = limit.Remaining(state, c, now)
		}
		return nil
	})
	if err != nil {
		return nil, s.backendErr(err)
	}
	return out, nil
}

// DropCredits implements limit.Ledger: each account the bucket holds is
// marked closed, at the store's time, and the workspace's accounts closed
// longer than limit.DropTTL ago are deleted.
func (s *Store) DropCredits(ctx context.Context, ws string, ids ...string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := s.now().UnixNano()
	err := s.db.Update(func(btx *bbolt.Tx) error {
		cb := bucket(btx.Bucket(bucketName(ws)), creditsBucket)
		if cb == nil {
			return nil
		}
		var expired [][]byte
		err := cb.ForEach(func(k, v []byte) error {
			st, err := decodeLedger(v)
			if err == nil && st != nil && st.Dropped != 0 && now-st.Dropped > int64(limit.DropTTL) {
				expired = append(expired, k)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range expired {
			if err := cb.Delete(k); err != nil {
				return err
			}
		}
		for _, id := range ids {
			st, err := decodeLedger(cb.Get([]byte(id)))
			if err != nil {
				return fmt.Errorf("credits %s: %w", id, err)
			}
			if st == nil || st.Dropped != 0 {
				continue
			}
			st.Dropped = now
			b, err := json.Marshal(st)
			if err != nil {
				return err
			}
			if err := cb.Put([]byte(id), b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return s.backendErr(err)
	}
	return nil
}

func decodeLedger(raw []byte) (*limit.LedgerState, error) {
	if raw == nil {
		return nil, nil
	}
	st := new(limit.LedgerState)
	if err := json.Unmarshal(raw, st); err != nil {
		return nil, err
	}
	return st, nil
}

var _ limit.Ledger = (*Store)(nil)
