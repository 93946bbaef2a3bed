// Package audit is the audit log's vocabulary: an Entry records one admin
// change with the Changes of its fields, Diff finds those changes between
// two versions of a record, and Encode and Decode give an entry the
// compact form it is stored in (codec.go). It knows nothing of users or
// stores: authz writes an entry in the same transaction as its change.
package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Entry records one admin change. It never holds a key or a secret.
type Entry struct {
	ID        string    `json:"id"`
	Time      time.Time `json:"time"`
	Workspace string    `json:"workspace"`
	// Actor is the user id of the caller ("system:bootstrap" for the
	// bootstrap command).
	Actor  string `json:"actor"`
	Action string `json:"action"`
	// Target is the id of what changed (user, key, team, workspace); for
	// memberships "team_…/usr_…".
	Target  string            `json:"target"`
	Changes map[string]Change `json:"changes,omitempty"`
}

// Change is the old and new value of one field (JSON; absent when there
// was none).
type Change struct {
	Old json.RawMessage `json:"old,omitempty"`
	New json.RawMessage `json:"new,omitempty"`
}

// Changed is the change of one field from old to new; nil stands for no
// value.
func Changed(old, new any) Change {
	var c Change
	if old != nil {
		c.Old, _ = json.Marshal(old)
	}
	if new != nil {
		c.New, _ = json.Marshal(new)
	}
	return c
}

// bookkeeping are the fields Diff leaves out: they change with every
// change and say nothing about it.
var bookkeeping = []string{"version", "updated_at", "created_at"}

// Diff returns the fields of old and new (values that encode as JSON
// objects of the same type) that differ, leaving out the bookkeeping
// fields version, updated_at and created_at, and those named in skip. A
// nil old lists every field of new.
func Diff(old, new any, skip ...string) (map[string]Change, error) {
	var o, n map[string]json.RawMessage
	if old != nil {
		if err := remarshal(old, &o); err != nil {
			return nil, err
		}
	}
	if new != nil {
		if err := remarshal(new, &n); err != nil {
			return nil, err
		}
	}
	out := map[string]Change{}
	for _, k := range bookkeeping {
		delete(o, k)
		delete(n, k)
	}
	for _, k := range skip {
		delete(o, k)
		delete(n, k)
	}
	for k, nv := range n {
		if ov, ok := o[k]; !ok || !bytes.Equal(ov, nv) {
			out[k] = Change{Old: o[k], New: nv}
		}
	}
	for k, ov := range o {
		if _, ok := n[k]; !ok {
			out[k] = Change{Old: ov}
		}
	}
	return out, nil
}

func remarshal(v any, into *map[string]json.RawMessage) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding audit change: %w", err)
	}
	return json.Unmarshal(b, into)
}
