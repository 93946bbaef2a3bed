package redisstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/apiusers/apiusers/authz"
	"github.com/redis/go-redis/v9"
)

// touchScript records credentials' uses (authz.Toucher) in the packed keys
// hash KEYS[1] of one workspace. ARGV is a list of groups, one per user:
// the user id, n, then n pairs of a credential id and the Unix second of
// its use. It reads the blobs (layout.go) of all the run's users with one
// HMGET, and for each pair whose credential is in its user's blob sets the
// entry use_<id> to {"id":"use_<id>","at":<at>} (stored as tag 1 and the
// rest, as encodeBlob writes it), unless that entry holds a later or equal
// time; then it writes the blobs that changed back with one HSET. (A
// command called from a script costs the server about as much as the
// script's own work for a touch: two calls a run, not two a user.) A user
// named in two groups has the second applied to what the first left. A
// credential that is not in the blob gets no entry, and a blob this store
// cannot read is left alone. Ids are compared byte by byte (Lua's <
// follows the server's locale). It returns how many entries it set.
var touchScript = redis.NewScript(`
local byte, sub, char, floor = string.byte, string.sub, string.char, math.floor
local function uvarint(b, i)
  local c = byte(b, i)
  if not c or c < 128 then return c, i + 1 end
  local v, m = c - 128, 128
  while true do
    i = i + 1
    c = byte(b, i)
    if not c then return nil, i end
    if c < 128 then return v + c * m, i + 1 end
    v, m = v + (c - 128) * m, m * 128
  end
end
local function varint(n)
  if n < 128 then return char(n) end
  local s = ''
  while n >= 128 do
    s = s .. char(n % 128 + 128)
    n = floor(n / 128)
  end
  return s .. char(n)
end
local function before(a, b)
  local x, y = byte(a, 1), byte(b, 1)
  if x ~= y then return x < y end
  for i = 2, math.min(#a, #b) do
    x, y = byte(a, i), byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
-- parse returns the ids of blob's entries and where each starts (and,
-- one past the last, where the blob ends), or nil when it is malformed.
local function parse(blob)
  local ids, at = {}, {}
  local i, k, n = 1, 0, #blob
  while i <= n do
    local l, j = uvarint(blob, i)
    if not l or j + l - 1 > n then return nil end
    local id = sub(blob, j, j + l - 1)
    local h
    h, j = uvarint(blob, j + l)
    if not h then return nil end
    k = k + 1
    ids[k], at[k] = id, i
    i = j + floor(h / 4)
    if i - 1 > n then return nil end
  end
  at[k + 1] = i
  return ids, at
end
local users, firsts, ns = {}, {}, {}
local a = 1
while a <= #ARGV do
  local n = tonumber(ARGV[a + 1])
  users[#users + 1], firsts[#users + 1], ns[#users + 1] = ARGV[a], a + 2, n
  a = a + 2 + 2 * n
end
if #users == 0 then return 0 end
local stored = redis.call('HMGET', KEYS[1], unpack(users))
local cur, order = {}, {} -- blobs as changed so far, and the users changed
local set = 0
for g = 1, #users do
  local user, first = users[g], firsts[g]
  local last = first + 2 * ns[g] - 1
  local blob = cur[user]
  if blob == nil then blob = stored[g] end
  local ids, at
  if blob then ids, at = parse(blob) end
  local changed = false
  if ids then
    for p = first, last, 2 do
      local cred, k, has = ARGV[p], #ids + 1, false
      local u = 'use_' .. cred
      for j = 1, #ids do
        local id = ids[j]
        if id == cred then has = true end
        if k > #ids and (id == u or before(u, id)) then k = j end
      end
      if has then
        local when = tonumber(ARGV[p + 1])
        local write = true
        if ids[k] == u then
          -- The time the entry holds, if it reads as a use record.
          local l, j = uvarint(blob, at[k])
          local h
          h, j = uvarint(blob, j + l)
          local rest, old = sub(blob, j, at[k + 1] - 1), nil
          if h % 4 == 1 then
            old = string.match(rest, '^,"at":(%d+)}$')
          elseif h % 4 == 0 then
            local head = '{"id":"' .. u .. '","at":'
            if sub(rest, 1, #head) == head then old = string.match(rest, '^(%d+)}$', #head + 1) end
          end
          write = not old or tonumber(old) < when
        end
        if write then
          local rest = ',"at":' .. ARGV[p + 1] .. '}'
          local e = varint(#u) .. u .. varint(#rest * 4 + 1) .. rest
          local tail = k
          if ids[k] == u then tail = k + 1 end
          blob = sub(blob, 1, at[k] - 1) .. e .. sub(blob, at[tail])
          changed, set = true, set + 1
          if p + 2 <= last then ids, at = parse(blob) end
        end
      end
    end
  end
  if changed then
    if cur[user] == nil then order[#order + 1] = user end
    cur[user] = blob
  end
end
if #order > 0 then
  local kv = {}
  for i, user in ipairs(order) do
    kv[2 * i - 1], kv[2 * i] = user, cur[user]
  end
  redis.call('HSET', KEYS[1], unpack(kv))
end
return set
`)

// touchesPerRun bounds the touches one script run applies, so that a
// large batch does not hold the server for long at a time; the runs of a
// batch go in one pipeline.
const touchesPerRun = 128

// Touch implements authz.Toucher: one pipeline of script runs (touchScript,
// one per workspace and up to touchesPerRun touches) for the whole batch,
// so a batch costs one round trip per node. It does not wait for replicas
// (Options.WaitReplicas): a last use is a hint.
func (s *Store) Touch(ctx context.Context, ts []authz.Touch) error {
	if len(ts) == 0 {
		return nil
	}
	if err := s.begin(ctx, ""); err != nil {
		return err
	}
	slices.SortFunc(ts, func(a, b authz.Touch) int {
		return cmp.Or(cmp.Compare(a.Workspace, b.Workspace), cmp.Compare(a.User, b.User))
	})
	var runs []scriptRun
	count := 0 // where the current group's count is in the last run's args
	n := 0     // touches in the last run
	for i, t := range ts {
		if t.Workspace == "" || !authz.ValidWorkspaceID(t.Workspace) {
			return fmt.Errorf("recording last uses: workspace id %q: %w", t.Workspace, authz.ErrInvalid)
		}
		newRun := i == 0 || t.Workspace != ts[i-1].Workspace || n == touchesPerRun
		if newRun {
			runs = append(runs, scriptRun{keys: []string{s.place(t.Workspace, keysFamily).key}})
			n = 0
		}
		n++
		r := &runs[len(runs)-1]
		if newRun || t.User != ts[i-1].User {
			r.args = append(r.args, t.User, 0)
			count = len(r.args) - 1
		}
		r.args[count] = r.args[count].(int) + 1
		r.args = append(r.args, t.ID, strconv.FormatInt(t.At, 10))
	}
	return s.mapErr(fmt.Sprintf("recording %d last uses", len(ts)), s.runPipelined(ctx, touchScript, runs))
}

// Interface guards
var _ authz.Toucher = (*Store)(nil)
