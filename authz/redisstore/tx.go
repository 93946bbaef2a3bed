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

	watched map[string]bool          // Redis keys WATCHed so far
	blobs   map[string][]authz.Entry // packed collections read in Update, by key and field
	pending map[string]*collWrites   // buffered writes by collection name
	ops     []op                     // buffered writes in call order
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

// watch WATCHes the key of collection name the first time an Update reads
// it (or, for a packed collection, commits to it), so a concurrent change
// makes EXEC fail and fn run again. It returns where the collection lives.
func (t *tx) watch(name string) (place, error) {
	p := t.s.place(t.ws, name)
	if t.rtx == nil || t.watched[p.key] {
		return p, nil
	}
	if err := t.rtx.Watch(t.ctx, p.key).Err(); err != nil {
		return p, t.s.mapErr(fmt.Sprintf("watching collection %s of workspace %q", name, t.ws), err)
	}
	if t.watched == nil {
		t.watched = make(map[string]bool)
	}
	t.watched[p.key] = true
	return p, nil
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
	p, err := t.watch(c.Name)
	if err != nil {
		return nil, err
	}
	v, ok, err := t.getRedis(p, id)
	if err != nil {
		return nil, t.s.mapErr(fmt.Sprintf("getting %s/%s in workspace %q", c.Name, id, t.ws), err)
	}
	if !ok {
		return nil, t.notFound(c, id)
	}
	return v, nil
}

// getRedis reads id from the collection at p as committed.
func (t *tx) getRedis(p place, id string) ([]byte, bool, error) {
	switch p.layout {
	case layoutHash:
		v, err := t.r.HGet(t.ctx, p.key, id).Bytes()
		if err == redis.Nil {
			return nil, false, nil
		}
		if v == nil {
			v = []byte{}
		}
		return v, err == nil, err
	case layoutPacked:
		es, err := t.readBlob(p)
		if err != nil {
			return nil, false, err
		}
		i, ok := slices.BinarySearchFunc(es, id, func(e authz.Entry, id string) int { return strings.Compare(e.ID, id) })
		if !ok {
			return nil, false, nil
		}
		return es[i].Value, true, nil
	default:
		lo, hi := idRange(id)
		ms, err := t.r.ZRangeByLex(t.ctx, p.key, &redis.ZRangeBy{Min: lo, Max: hi, Count: 1}).Result()
		if err != nil || len(ms) == 0 {
			return nil, false, err
		}
		e, err := decodeMember(t.ws, ms[0])
		return e.Value, err == nil, err
	}
}

// readBlob reads the entries of the packed collection at p, in id order.
// In an Update it keeps what it read: the key is watched, so should it
// change, EXEC fails anyway. The entries are the caller's to change.
func (t *tx) readBlob(p place) ([]authz.Entry, error) {
	if es, ok := t.blobs[p.where()]; ok {
		return cloneEntries(es), nil
	}
	b, err := t.r.HGet(t.ctx, p.key, p.field).Bytes()
	if err != nil && err != redis.Nil {
		return nil, err
	}
	es, err := decodeBlob(t.ws, b)
	if err != nil {
		return nil, err
	}
	t.keepBlob(p, es)
	return es, nil
}

func (t *tx) keepBlob(p place, es []authz.Entry) {
	if t.rtx == nil {
		return
	}
	if t.blobs == nil {
		t.blobs = make(map[string][]authz.Entry)
	}
	t.blobs[p.where()] = cloneEntries(es)
}

func cloneEntries(es []authz.Entry) []authz.Entry {
	out := make([]authz.Entry, len(es))
	for i, e := range es {
		out[i] = authz.Entry{ID: e.ID, Value: clone(e.Value)}
	}
	return out
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

// Scan returns up to limit entries of c with ids starting with prefix and
// sorting after `after`, merging this tx's buffered writes over Redis.
func (t *tx) Scan(c authz.Collection, prefix, after string, limit int) ([]authz.Entry, error) {
	if err := t.check(c); err != nil {
		return nil, err
	}
	w := t.pending[c.Name]
	var base []authz.Entry
	if w == nil || !w.dropped {
		p, err := t.watch(c.Name)
		if err != nil {
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
		if base, err = t.scanRedis(p, prefix, after, n); err != nil {
			return nil, t.s.mapErr(fmt.Sprintf("scanning %s in workspace %q", c.Name, t.ws), err)
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

// scanRedis returns up to n entries (n <= 0: all) of the collection at p as
// committed, with ids starting with prefix and sorting after `after`.
func (t *tx) scanRedis(p place, prefix, after string, n int) ([]authz.Entry, error) {
	switch p.layout {
	case layoutHash:
		m, err := t.r.HGetAll(t.ctx, p.key).Result()
		if err != nil {
			return nil, err
		}
		es := make([]authz.Entry, 0, len(m))
		for id, v := range m {
			if strings.HasPrefix(id, prefix) && id > after {
				es = append(es, authz.Entry{ID: id, Value: []byte(v)})
			}
		}
		sortEntries(es)
		return filterEntries(es, prefix, after, n), nil
	case layoutPacked:
		es, err := t.readBlob(p)
		if err != nil {
			return nil, err
		}
		return filterEntries(es, prefix, after, n), nil
	default:
		lo, hi := scanRange(prefix, after)
		by := &redis.ZRangeBy{Min: lo, Max: hi}
		if n > 0 {
			by.Count = int64(n)
		}
		ms, err := t.r.ZRangeByLex(t.ctx, p.key, by).Result()
		if err != nil || len(ms) == 0 {
			return nil, err
		}
		out := make([]authz.Entry, len(ms))
		for i, m := range ms {
			if out[i], err = decodeMember(t.ws, m); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
}

// commit applies the buffered writes in MULTI/EXEC. EXEC fails with
// redis.TxFailedErr when a WATCHed key changed since it was watched.
//
// Nothing queued can fail at run time (a MULTI would not roll the rest
// back): a packed collection is written whole, as computed here from what
// Redis holds (read under WATCH) and the buffered writes.
func (t *tx) commit() error {
	if len(t.ops) == 0 {
		return nil
	}
	packed, err := t.packedWrites()
	if err != nil {
		return err
	}
	cmds, err := t.rtx.TxPipelined(t.ctx, func(pl redis.Pipeliner) error {
		for _, o := range t.ops {
			p := t.s.place(t.ws, o.coll)
			switch {
			case p.layout == layoutPacked:
				// Written whole below.
			case p.layout == layoutHash && o.kind == opPut:
				pl.HSet(t.ctx, p.key, o.id, o.value)
			case p.layout == layoutHash && o.kind == opDelete:
				pl.HDel(t.ctx, p.key, o.id)
			case o.kind == opPut:
				lo, hi := idRange(o.id)
				pl.ZRemRangeByLex(t.ctx, p.key, lo, hi)
				pl.ZAdd(t.ctx, p.key, redis.Z{Member: encodeMember(t.ws, o.id, o.value)})
			case o.kind == opDelete:
				lo, hi := idRange(o.id)
				pl.ZRemRangeByLex(t.ctx, p.key, lo, hi)
			case o.kind == opDrop:
				pl.Del(t.ctx, p.key)
			}
		}
		for _, pw := range packed {
			if pw.blob == nil {
				pl.HDel(t.ctx, pw.p.key, pw.p.field)
			} else {
				pl.HSet(t.ctx, pw.p.key, pw.p.field, pw.blob)
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

// packedWrite is the new content of one packed collection.
type packedWrite struct {
	p    place
	blob []byte // nil: remove the field
}

// packedWrites computes what commit writes for the packed collections this
// tx wrote: what Redis holds, read under WATCH (WATCH and the reads in one
// round trip), with the buffered writes applied.
func (t *tx) packedWrites() ([]packedWrite, error) {
	var names []string
	for name := range t.pending {
		if strings.HasPrefix(name, keysFamily) {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return nil, nil
	}
	slices.Sort(names)
	places := make([]place, len(names))
	reads := make([]*redis.StringCmd, len(names))
	var watch []string
	_, err := t.rtx.Pipelined(t.ctx, func(pl redis.Pipeliner) error {
		for i, name := range names {
			places[i] = t.s.place(t.ws, name)
			if _, ok := t.blobs[places[i].where()]; ok || t.pending[name].dropped {
				continue // read already, or written whole without looking
			}
			if p := places[i]; !t.watched[p.key] && !slices.Contains(watch, p.key) {
				watch = append(watch, p.key)
				pl.Do(t.ctx, "WATCH", p.key)
			}
			reads[i] = pl.HGet(t.ctx, places[i].key, places[i].field)
		}
		return nil
	})
	if err != nil && err != redis.Nil {
		return nil, t.s.mapErr(fmt.Sprintf("reading the keys of workspace %q", t.ws), err)
	}
	if t.watched == nil {
		t.watched = make(map[string]bool)
	}
	for _, k := range watch {
		t.watched[k] = true
	}
	out := make([]packedWrite, len(names))
	for i, name := range names {
		w := t.pending[name]
		var es []authz.Entry
		switch {
		case w.dropped:
		case reads[i] != nil:
			b, err := reads[i].Bytes()
			if err == nil || err == redis.Nil {
				es, err = decodeBlob(t.ws, b)
			}
			if err != nil {
				return nil, t.s.mapErr(fmt.Sprintf("reading %s in workspace %q", name, t.ws), err)
			}
		default:
			es = cloneEntries(t.blobs[places[i].where()])
		}
		merged := es[:0]
		for _, e := range es {
			_, put := w.puts[e.ID]
			_, del := w.dels[e.ID]
			if !put && !del {
				merged = append(merged, e)
			}
		}
		for id, v := range w.puts {
			merged = append(merged, authz.Entry{ID: id, Value: v})
		}
		sortEntries(merged)
		out[i] = packedWrite{p: places[i]}
		if len(merged) > 0 {
			out[i].blob = encodeBlob(t.ws, merged)
		}
	}
	return out, nil
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
