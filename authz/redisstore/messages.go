package redisstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/apiusers/apiusers/authz"
	"github.com/redis/go-redis/v9"
)

// API messages use three keys per workspace, hash-tagged like the
// collections (one Cluster slot per workspace), and one more per user:
//
//	<prefix>:{<ws>}:m:data        HASH  message id -> message JSON
//	<prefix>:{<ws>}:m:all         ZSET  score 0, every message id of ws
//	<prefix>:{<ws>}:m:u:<user id> ZSET  score 0, the message ids of one user
//
// Message ids sort newest first (authz.NewMessageID), so ZRANGEBYLEX on a
// user's zset lists that user's messages newest first and a page costs
// O(log n + page) whatever the other users hold; m:all does the same for
// the whole workspace. The oldest ids sit at the end, where retention
// trims them (by rank for the count, by lex range for the age). See
// messageRange for how time bounds become id bounds. Every change to the
// three keys happens inside one script run, so no reader ever sees an id
// in a zset without its message.

// Script limits: a script run blocks the server, so each does a bounded
// amount of work. AppendMessages sends at most appendChunk messages per
// run; a run trims at most trimCap messages (retention catches up on later
// writes when a bound was lowered a lot); EraseMessages deletes eraseChunk
// messages per run, in as many runs as it takes.
const (
	appendChunk = 256
	trimCap     = 10000
	eraseChunk  = 10000
)

// appendScript stores messages of one user and applies retention to that
// user. KEYS: data hash, workspace zset, user zset. ARGV[1]: the most
// messages kept (0: no bound); ARGV[2]: the first id too old to keep ("":
// no bound); ARGV[3]: the most messages trimmed in this run; ARGV[4..]: id,
// JSON pairs. It returns how many messages it trimmed.
var appendScript = redis.NewScript(`
local data, all, user = KEYS[1], KEYS[2], KEYS[3]
local max, oldest, cap = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local hset, zadd = {}, {}
for i = 4, #ARGV, 2 do
  hset[#hset + 1] = ARGV[i]
  hset[#hset + 1] = ARGV[i + 1]
  zadd[#zadd + 1] = 0
  zadd[#zadd + 1] = ARGV[i]
end
if #hset > 0 then
  redis.call('HSET', data, unpack(hset))
  redis.call('ZADD', all, unpack(zadd))
  redis.call('ZADD', user, unpack(zadd))
end
local trimmed = 0
local function drop(ids)
  if #ids > 0 then
    redis.call('ZREM', user, unpack(ids))
    redis.call('ZREM', all, unpack(ids))
    redis.call('HDEL', data, unpack(ids))
    trimmed = trimmed + #ids
  end
  return #ids > 0
end
-- The oldest ids are the last ones: beyond rank max, or from oldest on.
while max > 0 and trimmed < cap do
  if not drop(redis.call('ZRANGE', user, max, max + math.min(1000, cap - trimmed) - 1)) then break end
end
while oldest ~= '' and trimmed < cap do
  if not drop(redis.call('ZRANGEBYLEX', user, '[' .. oldest, '+', 'LIMIT', 0, math.min(1000, cap - trimmed))) then break end
end
return trimmed
`)

// AppendMessages stores msgs with one pipeline: one script run per user
// (and per appendChunk messages) that adds the messages to the three keys
// and applies keep to that user, dropping its messages beyond the
// keep.MaxPerUser newest and those older than keep.MaxAge (at millisecond
// precision) from every key at once. Each run is atomic; the batch as a
// whole is not. Storing a message id again replaces the message. A batch
// with an invalid message stores nothing.
func (s *Store) AppendMessages(ctx context.Context, msgs []authz.Message, keep authz.Retention) error {
	if err := s.begin(ctx, ""); err != nil {
		return err
	}
	if len(msgs) == 0 {
		return nil
	}
	type owner struct{ ws, user string }
	var order []owner
	args := make(map[owner][]any)
	for i := range msgs {
		m := &msgs[i]
		if err := m.Validate(); err != nil {
			return err
		}
		v, err := json.Marshal(m)
		if err != nil {
			return fmt.Errorf("encoding message %s: %w", m.ID, err)
		}
		o := owner{m.Workspace, m.UserID}
		if _, ok := args[o]; !ok {
			order = append(order, o)
		}
		args[o] = append(args[o], m.ID, v)
	}
	max, dropFrom := keep.MaxPerUser, ""
	if max < 0 {
		max = 0
	}
	if keep.MaxAge > 0 {
		dropFrom = authz.MessageIDsOlderThan(s.now().Add(-keep.MaxAge))
	}
	var runs []scriptRun
	for _, o := range order {
		keys := []string{s.key(o.ws, 'm', "data"), s.key(o.ws, 'm', "all"), s.userMessagesKey(o.ws, o.user)}
		pairs := args[o]
		for len(pairs) > 0 {
			n := min(len(pairs), 2*appendChunk)
			runs = append(runs, scriptRun{keys: keys, args: append([]any{max, dropFrom, trimCap}, pairs[:n]...)})
			pairs = pairs[n:]
		}
	}
	if err := s.runPipelined(ctx, appendScript, runs); err != nil {
		return s.mapErr(fmt.Sprintf("appending %d messages", len(msgs)), err)
	}
	return nil
}

// scriptRun is one run of a script: its keys and arguments.
type scriptRun struct {
	keys []string
	args []any
}

// runPipelined runs script once per run in one pipeline of EVALSHAs. When
// the server does not know the script (first use, restart, SCRIPT FLUSH)
// it loads it and sends the whole pipeline again, which is safe because
// the runs are idempotent.
func (s *Store) runPipelined(ctx context.Context, script *redis.Script, runs []scriptRun) error {
	send := func() error {
		cmds, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, r := range runs {
				script.EvalSha(ctx, p, r.keys, r.args...)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, c := range cmds {
			if err := c.Err(); err != nil {
				return err
			}
		}
		return nil
	}
	err := send()
	if err == nil || !redis.HasErrorPrefix(err, "NOSCRIPT") {
		return err
	}
	if err := script.Load(ctx, s.client).Err(); err != nil {
		return err
	}
	return send()
}

// listScript returns up to ARGV[3] (-1: all) messages of the zset KEYS[1]
// with ids in the ZRANGEBYLEX range [ARGV[1], ARGV[2]], read from the hash
// KEYS[2], as {ids scanned, last id scanned, message, message, ...}.
var listScript = redis.NewScript(`
local ids = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
if #ids == 0 then return {0} end
local vals = redis.call('HMGET', KEYS[2], unpack(ids))
local out = {#ids, ids[#ids]}
for i = 1, #ids do
  if vals[i] then out[#out + 1] = vals[i] end
end
return out
`)

// ListMessages returns up to q.Limit messages of workspace ws (q.Limit <= 0:
// all), newest first, reading the user's zset when q.UserID is set and the
// workspace's otherwise. A page is one script run (EVALSHA); only when the
// message time excludes messages in the bounds' own milliseconds does it
// take another run to fill the page.
func (s *Store) ListMessages(ctx context.Context, ws string, q authz.MessageQuery) ([]authz.Message, error) {
	if err := s.begin(ctx, ws); err != nil {
		return nil, err
	}
	index := s.key(ws, 'm', "all")
	if q.UserID != "" {
		index = s.userMessagesKey(ws, q.UserID)
	}
	keys := []string{index, s.key(ws, 'm', "data")}
	from, to := q.IDRange()
	lo := "[" + from
	var out []authz.Message
	for {
		n := -1
		if q.Limit > 0 {
			n = q.Limit - len(out)
		}
		res, err := listScript.Run(ctx, s.client, keys, lo, "("+to, n).Slice()
		if err != nil {
			return nil, s.mapErr(fmt.Sprintf("listing messages of workspace %q", ws), err)
		}
		scanned, _ := res[0].(int64)
		if scanned == 0 {
			return out, nil
		}
		if len(res) < 2 {
			return nil, fmt.Errorf("listing messages of workspace %q: unexpected reply of %d values", ws, len(res))
		}
		for _, v := range res[2:] {
			raw, ok := v.(string)
			if !ok {
				return nil, fmt.Errorf("listing messages of workspace %q: unexpected reply %T", ws, v)
			}
			var m authz.Message
			if err := json.Unmarshal([]byte(raw), &m); err != nil {
				return nil, fmt.Errorf("decoding a message of workspace %q: %w", ws, err)
			}
			// The id bounds are exact to the millisecond; the message time
			// settles the bounds' own milliseconds.
			if q.Contains(&m) {
				out = append(out, m)
			}
		}
		if n < 0 || scanned < int64(n) || len(out) >= q.Limit {
			return out, nil
		}
		last, _ := res[1].(string)
		lo = "(" + last
	}
}

// eraseScript deletes up to ARGV[1] messages of the user whose zset is
// KEYS[3] from every key (KEYS: data hash, workspace zset, user zset) and
// returns how many it deleted.
var eraseScript = redis.NewScript(`
local ids = redis.call('ZRANGE', KEYS[3], 0, tonumber(ARGV[1]) - 1)
for i = 1, #ids, 1000 do
  local chunk = {unpack(ids, i, math.min(i + 999, #ids))}
  redis.call('ZREM', KEYS[3], unpack(chunk))
  redis.call('ZREM', KEYS[2], unpack(chunk))
  redis.call('HDEL', KEYS[1], unpack(chunk))
end
return #ids
`)

// EraseMessages deletes every message of user userID of workspace ws, in
// runs of eraseChunk messages until none is left.
func (s *Store) EraseMessages(ctx context.Context, ws, userID string) error {
	if err := s.begin(ctx, ws); err != nil {
		return err
	}
	if userID == "" {
		return fmt.Errorf("erasing messages: empty user id: %w", authz.ErrInvalid)
	}
	keys := []string{s.key(ws, 'm', "data"), s.key(ws, 'm', "all"), s.userMessagesKey(ws, userID)}
	for {
		n, err := eraseScript.Run(ctx, s.client, keys, eraseChunk).Int()
		if err != nil {
			return s.mapErr(fmt.Sprintf("erasing messages of user %s in workspace %q", userID, ws), err)
		}
		if n < eraseChunk {
			return nil
		}
	}
}

// userMessagesKey is the zset of the message ids of user in ws.
func (s *Store) userMessagesKey(ws, user string) string {
	return s.key(ws, 'm', "u:"+user)
}

// sweepPage is the most messages one step of SweepMessages reads and
// deletes in one workspace.
const sweepPage = 1000

// SweepMessages deletes up to limit messages older than before, of every
// user of every workspace (the workspaces collection names them). In each
// workspace it reads a page of the ids past the bound from m:all and the
// users of those messages, then deletes them from the three keys in one MULTI/EXEC;
// it costs O(log n) per message deleted. Two instances sweeping at once
// delete the same messages twice, which is harmless.
func (s *Store) SweepMessages(ctx context.Context, before time.Time, limit int) (int, error) {
	if err := s.begin(ctx, ""); err != nil {
		return 0, err
	}
	if limit <= 0 {
		return 0, fmt.Errorf("sweeping messages: limit %d: %w", limit, authz.ErrInvalid)
	}
	var wss []string
	for after := ""; ; {
		var page []authz.Entry
		err := s.View(ctx, "", func(tx authz.Tx) error {
			var err error
			page, err = tx.Scan(authz.Collection{Name: authz.CollWorkspaces}, "", after, 1000)
			return err
		})
		if err != nil {
			return 0, err
		}
		for _, e := range page {
			wss = append(wss, e.ID)
		}
		if len(page) < 1000 {
			break
		}
		after = page[len(page)-1].ID
	}
	dropFrom := authz.MessageIDsOlderThan(before)
	deleted := 0
	for _, ws := range wss {
		for deleted < limit {
			want := min(sweepPage, limit-deleted)
			n, err := s.sweepWorkspace(ctx, ws, dropFrom, want)
			deleted += n
			if err != nil {
				return deleted, s.mapErr(fmt.Sprintf("sweeping messages of workspace %q", ws), err)
			}
			if n < want {
				break
			}
		}
	}
	return deleted, nil
}

// sweepWorkspace deletes up to n of the oldest messages of ws whose ids are
// at or past dropFrom, and returns how many it found.
func (s *Store) sweepWorkspace(ctx context.Context, ws, dropFrom string, n int) (int, error) {
	data, all := s.key(ws, 'm', "data"), s.key(ws, 'm', "all")
	ids, err := s.client.ZRangeByLex(ctx, all, &redis.ZRangeBy{Min: "[" + dropFrom, Max: "+", Count: int64(n)}).Result()
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	vals, err := s.client.HMGet(ctx, data, ids...).Result()
	if err != nil {
		return 0, err
	}
	byUser := map[string][]any{}
	for i, v := range vals {
		raw, ok := v.(string)
		if !ok {
			continue // gone meanwhile: only the index entry is left
		}
		var m struct {
			UserID string `json:"user_id"`
		}
		if json.Unmarshal([]byte(raw), &m) != nil || m.UserID == "" {
			// Not a message this store wrote: it goes from m:data and
			// m:all all the same, so that one bad value cannot stop every
			// later sweep here.
			continue
		}
		byUser[m.UserID] = append(byUser[m.UserID], ids[i])
	}
	members := make([]any, len(ids))
	for i, id := range ids {
		members[i] = id
	}
	_, err = s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.ZRem(ctx, all, members...)
		p.HDel(ctx, data, ids...)
		for user, us := range byUser {
			p.ZRem(ctx, s.userMessagesKey(ws, user), us...)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return len(ids), nil
}

// Interface guards
var (
	_ authz.MessageStore   = (*Store)(nil)
	_ authz.MessageSweeper = (*Store)(nil)
)
