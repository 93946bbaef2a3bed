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
// its use. For each user it reads the user's blob (layout.go) once, and
// for each pair whose credential is in it sets the entry use_<id> to
// {"id":"use_<id>","at":<at>} (stored as tag 1 and the rest, as encodeBlob
// writes it), unless that entry holds a later or equal time; then it
// writes the blob back when anything changed. A credential that is not in
// the blob gets no entry, and a blob this store cannot read is left alone.
// Ids are compared byte by byte (Lua's < follows the server's locale). It
// returns how many entries it set.
var touchScript = redis.NewScript(`
local function uvarint(b, i)
  local v, m = 0, 1
  while true do
    local c = string.byte(b, i)
    if not c then return nil end
    i = i + 1
    if c < 128 then return v + c * m, i end
    v, m = v + (c - 128) * m, m * 128
  end
end
local function varint(n)
  local s = ''
  while n >= 128 do
    s = s .. string.char(n % 128 + 128)
    n = math.floor(n / 128)
  end
  return s .. string.char(n)
end
local function before(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
local function parse(blob)
  local ids, ents, rests, tags, has = {}, {}, {}, {}, {}
  local i = 1
  while i <= #blob do
    local start, n = i
    n, i = uvarint(blob, i)
    if not n or i + n - 1 > #blob then return nil end
    local id = string.sub(blob, i, i + n - 1)
    i = i + n
    n, i = uvarint(blob, i)
    if not n then return nil end
    local l = math.floor(n / 4)
    if i + l - 1 > #blob then return nil end
    local k = #ids + 1
    ids[k], tags[k], rests[k] = id, n % 4, string.sub(blob, i, i + l - 1)
    i = i + l
    ents[k], has[id] = string.sub(blob, start, i - 1), true
  end
  return ids, ents, rests, tags, has
end
local set = 0
local a = 1
while a <= #ARGV do
  local user, n = ARGV[a], tonumber(ARGV[a + 1])
  local first = a + 2
  a = first + 2 * n
  local blob = redis.call('HGET', KEYS[1], user)
  local ids, ents, rests, tags, has
  if blob then ids, ents, rests, tags, has = parse(blob) end
  if ids then
    local changed = false
    for p = first, a - 1, 2 do
      local cred, at = ARGV[p], tonumber(ARGV[p + 1])
      if has[cred] then
        local u = 'use_' .. cred
        local rest = ',"at":' .. ARGV[p + 1] .. '}'
        local e = varint(#u) .. u .. varint(#rest * 4 + 1) .. rest
        local k = #ids + 1
        for j = 1, #ids do
          if ids[j] == u or before(u, ids[j]) then k = j break end
        end
        if ids[k] == u then
          local old = tags[k] == 1 and string.match(rests[k], '^,"at":(%d+)}$')
            or tags[k] == 0 and string.match(rests[k], '^{"id":"[^"]*","at":(%d+)}$')
          if not old or tonumber(old) < at then
            ents[k], rests[k], tags[k] = e, rest, 1
            changed, set = true, set + 1
          end
        else
          table.insert(ids, k, u)
          table.insert(ents, k, e)
          table.insert(rests, k, rest)
          table.insert(tags, k, 1)
          changed, set = true, set + 1
        end
      end
    end
    if changed then redis.call('HSET', KEYS[1], user, table.concat(ents)) end
  end
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
