package redisstore

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/apiusers/apiusers/authz"
	"github.com/redis/go-redis/v9"
)

// tx implements authz.Tx for View (rtx nil: reads only) and Update (reads
// through the WATCHing connection, writes buffered until commit). It is not
// safe for concurrent use, like the fn it is handed to.
type tx struct {
	s   *Store
	ctx context.Context
	ws  string
	r   redis.Cmdable // reads go here: the client in View, rtx in Update
	rtx *redis.Tx     // the WATCHing connection; nil in View

	watched map[string]bool        // collection names WATCHed so far
	pending map[string]*collWrites // buffered writes by collection name
	ops     []op                   // buffered writes in call order
}

// collWrites is the buffered state of one collection: what the tx will
// have written once it commits. Reads overlay it on what Redis holds.
type collWrites struct {
	dropped bool                // Drop was called: Redis content is gone
	puts    map[string][]byte   // id -> value written
	dels    map[string]struct{} // ids deleted (and not put again)
}

type opKind uint8

const (
	opPut opKind = iota
	opDelete
	opDrop
)

type op struct {
	kind  opKind
	coll  string
	id    string
	value []byte
}

func (t *tx) check(c authz.Collection) error {
	if c.Workspace != t.ws {
		return fmt.Errorf("collection %q of workspace %q used in a transaction over workspace %q: %w", c.Name, c.Workspace, t.ws, authz.ErrInvalid)
	}
	if c.Name == "" {
		return fmt.Errorf("empty collection name: %w", authz.ErrInvalid)
	}
	return nil
}

// watch WATCHes the keys of collection name the first time an Update reads
// it, so a concurrent change makes EXEC fail and fn run again.
func (t *tx) watch(name string) error {
	if t.rtx == nil || t.watched[name] {
		return nil
	}
	err := t.rtx.Watch(t.ctx, t.s.key(t.ws, 'h', name), t.s.key(t.ws, 'z', name)).Err()
	if err != nil {
		return t.s.mapErr(fmt.Sprintf("watching collection %s of workspace %q", name, t.ws), err)
	}
	if t.watched == nil {
		t.watched = make(map[string]bool)
	}
	t.watched[name] = true
	return nil
}

// writes returns the buffered state of collection name, creating it.
func (t *tx) writes(name string) *collWrites {
	w := t.pending[name]
	if w == nil {
		if t.pending == nil {
			t.pending = make(map[string]*collWrites)
		}
		w = &collWrites{puts: make(map[string][]byte), dels: make(map[string]struct{})}
		t.pending[name] = w
	}
	return w
}

func (t *tx) writable(what string) error {
	if t.rtx == nil {
		return fmt.Errorf("%s: write in a read-only transaction", what)
	}
	return nil
}

// Get returns the value of id in c, seeing this tx's buffered writes.
func (t *tx) Get(c authz.Collection, id string) ([]byte, error) {
	if err := t.check(c); err != nil {
		return nil, err
	}
	if w := t.pending[c.Name]; w != nil {
		if v, ok := w.puts[id]; ok {
			return clone(v), nil
		}
		if _, ok := w.dels[id]; ok || w.dropped {
			return nil, t.notFound(c, id)
		}
	}
	if err := t.watch(c.Name); err != nil {
		return nil, err
	}
	v, err := t.r.HGet(t.ctx, t.s.key(t.ws, 'h', c.Name), id).Bytes()
	if err == redis.Nil {
		return nil, t.notFound(c, id)
	}
	if err != nil {
		return nil, t.s.mapErr(fmt.Sprintf("getting %s/%s in workspace %q", c.Name, id, t.ws), err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

func (t *tx) notFound(c authz.Collection, id string) error {
	return fmt.Errorf("record %s/%s in workspace %q: %w", c.Name, id, t.ws, authz.ErrNotFound)
}

// Put buffers setting id in c.
func (t *tx) Put(c authz.Collection, id string, value []byte) error {
	if err := t.check(c); err != nil {
		return err
	}
	if err := t.writable(fmt.Sprintf("putting %s/%s", c.Name, id)); err != nil {
		return err
	}
	if id == "" {
		return fmt.Errorf("putting into %s: empty record id: %w", c.Name, authz.ErrInvalid)
	}
	v := clone(value)
	w := t.writes(c.Name)
	w.puts[id] = v
	delete(w.dels, id)
	t.ops = append(t.ops, op{kind: opPut, coll: c.Name, id: id, value: v})
	return nil
}

// Delete buffers removing id from c.
func (t *tx) Delete(c authz.Collection, id string) error {
	if err := t.check(c); err != nil {
		return err
	}
	if err := t.writable(fmt.Sprintf("deleting %s/%s", c.Name, id)); err != nil {
		return err
	}
	w := t.writes(c.Name)
	delete(w.puts, id)
	w.dels[id] = struct{}{}
	t.ops = append(t.ops, op{kind: opDelete, coll: c.Name, id: id})
	return nil
}

// Drop buffers removing collection c.
func (t *tx) Drop(c authz.Collection) error {
	if err := t.check(c); err != nil {
		return err
	}
	if err := t.writable(fmt.Sprintf("dropping %s", c.Name)); err != nil {
		return err
	}
	w := t.writes(c.Name)
	w.dropped = true
	clear(w.puts)
	clear(w.dels)
	t.ops = append(t.ops, op{kind: opDrop, coll: c.Name})
	return nil
}

// scanScript returns, in one round trip, up to ARGV[3] (-1: all) entries of
// the collection whose zset is KEYS[1] and hash KEYS[2], with ids in the
// ZRANGEBYLEX range [ARGV[1], ARGV[2]], as a flat id, value, id, value...
// array. Ids present in the zset but not in the hash are skipped.
var scanScript = redis.NewScript(`
local ids = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
if #ids == 0 then return {} end
local vals = redis.call('HMGET', KEYS[2], unpack(ids))
local out = {}
for i = 1, #ids do
  if vals[i] then
    out[#out + 1] = ids[i]
    out[#out + 1] = vals[i]
  end
end
return out
`)

// Scan returns up to limit entries of c with ids starting with prefix and
// sorting after `after`, merging this tx's buffered writes over Redis.
func (t *tx) Scan(c authz.Collection, prefix, after string, limit int) ([]authz.Entry, error) {
	if err := t.check(c); err != nil {
		return nil, err
	}
	w := t.pending[c.Name]
	var base []authz.Entry
	if w == nil || !w.dropped {
		if err := t.watch(c.Name); err != nil {
			return nil, err
		}
		// Buffered deletes may hide up to len(dels) stored entries: fetch
		// that many more so the page is still full after merging.
		n := -1
		if limit > 0 {
			n = limit
			if w != nil {
				n += len(w.dels)
			}
		}
		var err error
		if base, err = t.scanRedis(c.Name, prefix, after, n); err != nil {
			return nil, err
		}
	}
	if w == nil {
		return base, nil
	}
	merged := base[:0:0]
	for _, e := range base {
		if _, gone := w.dels[e.ID]; gone {
			continue
		}
		if _, put := w.puts[e.ID]; put {
			continue // added below with the buffered value
		}
		merged = append(merged, e)
	}
	for id, v := range w.puts {
		if strings.HasPrefix(id, prefix) && id > after {
			merged = append(merged, authz.Entry{ID: id, Value: clone(v)})
		}
	}
	slices.SortFunc(merged, func(a, b authz.Entry) int { return strings.Compare(a.ID, b.ID) })
	if limit > 0 && len(merged) > limit {
		merged = merged[:limit]
	}
	if len(merged) == 0 {
		return nil, nil
	}
	return merged, nil
}

func (t *tx) scanRedis(coll, prefix, after string, n int) ([]authz.Entry, error) {
	lo := "-"
	switch {
	case after != "" && after >= prefix:
		lo = "(" + after
	case prefix != "":
		lo = "[" + prefix
	}
	hi := "+"
	if succ, ok := successor(prefix); ok {
		hi = "(" + succ
	}
	keys := []string{t.s.key(t.ws, 'z', coll), t.s.key(t.ws, 'h', coll)}
	res, err := scanScript.Run(t.ctx, t.r, keys, lo, hi, n).Slice()
	if err != nil {
		return nil, t.s.mapErr(fmt.Sprintf("scanning %s in workspace %q", coll, t.ws), err)
	}
	if len(res) == 0 {
		return nil, nil
	}
	out := make([]authz.Entry, 0, len(res)/2)
	for i := 0; i+1 < len(res); i += 2 {
		id, ok1 := res[i].(string)
		v, ok2 := res[i+1].(string)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("scanning %s in workspace %q: unexpected reply %T, %T", coll, t.ws, res[i], res[i+1])
		}
		out = append(out, authz.Entry{ID: id, Value: []byte(v)})
	}
	return out, nil
}

// successor returns the smallest string greater than every string starting
// with prefix, or false when there is none (empty prefix, or all 0xff).
func successor(prefix string) (string, bool) {
	b := []byte(prefix)
	for len(b) > 0 && b[len(b)-1] == 0xff {
		b = b[:len(b)-1]
	}
	if len(b) == 0 {
		return "", false
	}
	b[len(b)-1]++
	return string(b), true
}

// commit applies the buffered writes in MULTI/EXEC. EXEC fails with
// redis.TxFailedErr when a WATCHed key changed since it was watched.
func (t *tx) commit() error {
	if len(t.ops) == 0 {
		return nil
	}
	cmds, err := t.rtx.TxPipelined(t.ctx, func(p redis.Pipeliner) error {
		for _, o := range t.ops {
			h, z := t.s.key(t.ws, 'h', o.coll), t.s.key(t.ws, 'z', o.coll)
			switch o.kind {
			case opPut:
				p.HSet(t.ctx, h, o.id, o.value)
				p.ZAdd(t.ctx, z, redis.Z{Member: o.id})
			case opDelete:
				p.HDel(t.ctx, h, o.id)
				p.ZRem(t.ctx, z, o.id)
			case opDrop:
				p.Del(t.ctx, h, z)
			}
		}
		return nil
	})
	if redis.HasErrorPrefix(err, "EXECABORT") {
		// A command was refused as it was queued (READONLY when the
		// master just became a replica, OOM, ...): that is the cause.
		for _, c := range cmds {
			if cerr := c.Err(); cerr != nil && !redis.HasErrorPrefix(cerr, "EXECABORT") {
				return fmt.Errorf("transaction aborted: %w", cerr)
			}
		}
	}
	return err
}

// clone copies b, returning a non-nil slice even when b is empty.
func clone(b []byte) []byte {
	return append(make([]byte, 0, len(b)), b...)
}

// Interface guards
var (
	_ authz.Tx       = (*tx)(nil)
	_ redis.Scripter = (*redis.Tx)(nil)
)
