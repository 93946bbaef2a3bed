package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/apiusers/apiusers/authz/limit"
)

// Rate-limit counts and credit accounts (authz/limit's Tallier and
// Ledger), used by the gateways of a fleet off the request path:
//
//	<prefix>:rl:{<counter>}   HASH  slot number -> the fleet's requests in
//	                                that slot; "d" -> the fleet's demand
//	                                (requests that came, admitted or not);
//	                                expires a window after its last use
//	<prefix>:{<ws>}:c:<id>    HASH  one credit account (limit.LedgerState):
//	                                serial, period, balance, and per holder
//	                                "h:<holder>" -> "serial,period,granted,
//	                                spent,returned,seen-ms"; "dropped" -> 1
//	                                when closed (DropCredits), which
//	                                expires it limit.DropTTL later; no
//	                                expiry otherwise
//
// Every exchange is one script run per counter or account, all of a batch
// in one pipeline: one round trip per sync for the whole instance.

// tallyScript adds this instance's requests (ARGV[5…], one per slot from
// ARGV[1]-ARGV[2]+1 to ARGV[1]) and demand (ARGV[4]) to counter KEYS[1],
// forgets slots that left the window, keeps the counter ARGV[3] ms, and
// returns {demand, count of each slot}. With nothing to add it only reads.
var tallyScript = redis.NewScript(`
local key = KEYS[1]
local head, n = tonumber(ARGV[1]), tonumber(ARGV[2])
local first = head - n + 1
local wrote = false
for i = 0, n - 1 do
  local a = tonumber(ARGV[5 + i])
  if a > 0 then
    redis.call('HINCRBY', key, tostring(first + i), a)
    wrote = true
  end
end
local d = tonumber(ARGV[4])
if d > 0 then
  d = redis.call('HINCRBY', key, 'd', d)
  wrote = true
else
  d = tonumber(redis.call('HGET', key, 'd') or '0')
end
if wrote then
  for _, f in ipairs(redis.call('HKEYS', key)) do
    if f ~= 'd' and tonumber(f) < first then redis.call('HDEL', key, f) end
  end
  redis.call('PEXPIRE', key, ARGV[3])
end
local fields = {}
for i = 0, n - 1 do fields[#fields + 1] = tostring(first + i) end
local out = {d}
for _, v in ipairs(redis.call('HMGET', key, unpack(fields))) do
  out[#out + 1] = tonumber(v or '0')
end
return out
`)

func (s *Store) counterKey(name string) string {
	return s.prefix + ":rl:{" + strings.NewReplacer("{", "(", "}", ")").Replace(name) + "}"
}

// Tally implements limit.Tallier.
func (s *Store) Tally(ctx context.Context, batch []*limit.Tally) error {
	if len(batch) == 0 {
		return nil
	}
	if err := s.begin(ctx, ""); err != nil {
		return err
	}
	cmds, err := s.pipeScript(ctx, tallyScript, func(p redis.Pipeliner) {
		for _, t := range batch {
			args := make([]any, 0, 4+len(t.Add))
			args = append(args, t.Head, len(t.Add), max(t.TTL.Milliseconds(), 1), t.Demand)
			for _, a := range t.Add {
				args = append(args, a)
			}
			tallyScript.EvalSha(ctx, p, []string{s.counterKey(t.Name)}, args...)
		}
	})
	for i, c := range cmds {
		vals, cerr := c.(*redis.Cmd).Int64Slice()
		if cerr != nil || len(vals) != 1+len(batch[i].Totals) {
			continue
		}
		t := batch[i]
		t.DemandTotal = vals[0]
		copy(t.Totals[:], vals[1:])
		t.Done = true
	}
	return s.mapErr("exchanging rate-limit counts", err)
}

// settleScript applies one settlement (limit.Settlement) to account
// KEYS[1]: a transcription of limit.Apply. ARGV: holder, serial, set,
// set period, refill amount (0: none), period, spent, returned, want,
// now (ms), hold TTL (ms). It returns {granted, balance, outstanding,
// serial, period, fresh}.
var settleScript = redis.NewScript(`
local key = KEYS[1]
local inst = ARGV[1]
local serial, set, setPeriod = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local refill, period = tonumber(ARGV[5]), tonumber(ARGV[6])
local spent, returned, want = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local now, holdTTL = tonumber(ARGV[10]), tonumber(ARGV[11])

local h = redis.call('HGETALL', key)
local exists = #h > 0
local stSerial, stPeriod, stBal = 0, 0, 0
local dropped = false
local holders = {}
for i = 1, #h, 2 do
  local f, v = h[i], h[i + 1]
  if f == 'serial' then stSerial = tonumber(v)
  elseif f == 'period' then stPeriod = tonumber(v)
  elseif f == 'balance' then stBal = tonumber(v)
  elseif f == 'dropped' then dropped = true
  elseif string.sub(f, 1, 2) == 'h:' then
    local x = {}
    for n in string.gmatch(v, '[^,]+') do x[#x + 1] = tonumber(n) end
    if #x == 6 then holders[string.sub(f, 3)] = x end
  end
end
local function out(x) return x[3] - x[4] - x[5] end
-- A closed account (DropCredits) grants and refills nothing to its
-- setting or an older one, and says its balance is 0.
local closed = dropped and serial <= stSerial
local ttl = 0
if closed then ttl = redis.call('PTTL', key) end

-- 1. A newer setting (it opens a closed account again).
if not exists or stSerial < serial then
  local held = 0
  for id, x in pairs(holders) do
    if x[1] == stSerial and x[2] == stPeriod then held = held + out(x) else holders[id] = nil end
  end
  stSerial, stPeriod, stBal = serial, setPeriod, set - held
end
local current = serial == stSerial
-- 2. A later refill period.
if current and not closed and refill > 0 and period > stPeriod then
  stPeriod, stBal, holders = period, refill, {}
end
-- 3. Holders not heard of for the hold TTL.
for id, x in pairs(holders) do
  if id ~= inst and now - x[6] > holdTTL then holders[id] = nil end
end
-- 4. The instance's holding.
local epoch = current and period == stPeriod
local x = holders[inst]
local fresh, granted = 0, 0
local skip = false
if x ~= nil and (x[1] ~= serial or x[2] ~= period) then
  if not epoch then
    fresh, skip = 1, true
  else
    x = nil
  end
end
if not skip then
  if x == nil then fresh = 1 end
  if x == nil and not epoch then
    skip = true
  elseif x == nil then
    x = {serial, period, 0, 0, 0, 0}
    holders[inst] = x
  end
end
if not skip then
  if spent > x[4] then x[4] = math.min(spent, x[3] - x[5]) end
  if returned > x[5] then
    local r = math.min(returned, x[3] - x[4])
    if r > x[5] then
      stBal = stBal + r - x[5]
      x[5] = r
    end
  end
  if epoch and not closed and want > 0 and stBal > 0 then
    local g = math.min(want, stBal)
    stBal = stBal - g
    x[3] = x[3] + g
  end
  x[6] = now
  granted = x[3]
end

redis.call('DEL', key)
local args = {'serial', string.format('%d', stSerial), 'period', string.format('%d', stPeriod), 'balance', string.format('%d', stBal)}
local outstanding = 0
for id, y in pairs(holders) do
  outstanding = outstanding + out(y)
  args[#args + 1] = 'h:' .. id
  args[#args + 1] = string.format('%d,%d,%d,%d,%d,%d', y[1], y[2], y[3], y[4], y[5], y[6])
end
if closed then
  args[#args + 1] = 'dropped'
  args[#args + 1] = '1'
end
redis.call('HSET', key, unpack(args))
local told = stBal
if closed then
  told = 0
  if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
end
return {granted, told, outstanding, stSerial, stPeriod, fresh}
`)

func (s *Store) creditsKey(ws, id string) string { return s.key(ws, 'c', id) }

// Settle implements limit.Ledger.
func (s *Store) Settle(ctx context.Context, batch []*limit.Settlement) error {
	if len(batch) == 0 {
		return nil
	}
	for _, st := range batch {
		if err := s.begin(ctx, st.Workspace); err != nil {
			return err
		}
	}
	cmds, err := s.pipeScript(ctx, settleScript, func(p redis.Pipeliner) {
		for _, st := range batch {
			settleScript.EvalSha(ctx, p, []string{s.creditsKey(st.Workspace, st.ID)},
				st.Instance, st.Serial, st.Set, st.SetPeriod(), st.Refill.Amount, st.Period,
				st.Spent, st.Returned, st.Want, st.Now/int64(time.Millisecond), limit.HoldTTL.Milliseconds())
		}
	})
	for i, c := range cmds {
		vals, cerr := c.(*redis.Cmd).Int64Slice()
		if cerr != nil || len(vals) != 6 {
			continue
		}
		st := batch[i]
		st.Granted, st.Balance, st.Outstanding = vals[0], vals[1], vals[2]
		st.LedgerSerial, st.LedgerPeriod, st.Fresh = vals[3], vals[4], vals[5] == 1
		st.Done = true
	}
	return s.mapErr("settling credits", err)
}

// Balances implements limit.Ledger: one HGETALL per account, in one
// pipeline, read with limit.Remaining.
func (s *Store) Balances(ctx context.Context, accounts []limit.Credits, now int64) ([]int64, error) {
	if len(accounts) == 0 {
		return nil, nil
	}
	for _, c := range accounts {
		if err := s.begin(ctx, c.Workspace); err != nil {
			return nil, err
		}
	}
	cmds, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, c := range accounts {
			p.HGetAll(ctx, s.creditsKey(c.Workspace, c.ID))
		}
		return nil
	})
	if err != nil {
		return nil, s.mapErr("reading credits", err)
	}
	out := make([]int64, len(accounts))
	for i, c := range cmds {
		h, err := c.(*redis.MapStringStringCmd).Result()
		if err != nil {
			return nil, s.mapErr("reading credits", err)
		}
		st, err := ledgerState(h)
		if err != nil {
			return nil, fmt.Errorf("credits %s: %w", accounts[i].ID, err)
		}
		out[i] = limit.Remaining(st, accounts[i], now)
	}
	return out, nil
}

// ledgerState reads an account's hash (nil when there is none).
func ledgerState(h map[string]string) (*limit.LedgerState, error) {
	if len(h) == 0 {
		return nil, nil
	}
	st := &limit.LedgerState{Holders: map[string]*limit.Holding{}}
	num := func(v string) int64 {
		n, _ := strconv.ParseInt(v, 10, 64)
		return n
	}
	for f, v := range h {
		switch {
		case f == "serial":
			st.Serial = num(v)
		case f == "period":
			st.Period = num(v)
		case f == "balance":
			st.Balance = num(v)
		case f == "dropped":
			st.Dropped = 1
		case strings.HasPrefix(f, "h:"):
			p := strings.Split(v, ",")
			if len(p) != 6 {
				return nil, errors.New("malformed holding")
			}
			st.Holders[f[2:]] = &limit.Holding{Serial: num(p[0]), Period: num(p[1]), Granted: num(p[2]),
				Spent: num(p[3]), Returned: num(p[4]), Seen: num(p[5]) * int64(time.Millisecond)}
		}
	}
	return st, nil
}

// dropScript closes the accounts KEYS (of one workspace, so of one hash
// slot) that exist: marks them dropped and expires them ARGV[1] ms later.
var dropScript = redis.NewScript(`
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 and redis.call('HEXISTS', key, 'dropped') == 0 then
    redis.call('HSET', key, 'dropped', '1')
    redis.call('PEXPIRE', key, ARGV[1])
  end
end
return 0
`)

// DropCredits implements limit.Ledger.
func (s *Store) DropCredits(ctx context.Context, ws string, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	if err := s.begin(ctx, ws); err != nil {
		return err
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.creditsKey(ws, id)
	}
	return s.mapErr("dropping credits", dropScript.Run(ctx, s.client, keys, limit.DropTTL.Milliseconds()).Err())
}

// pipeScript sends the script runs queue adds in one pipeline; the runs
// a server did not know the script for (after a restart or SCRIPT FLUSH;
// on a Redis Cluster, one node's while the others ran theirs) it loads
// the script for and sends again, only those: a tally run twice would
// count its requests twice. It returns every command, each with its own
// error, and the first error.
func (s *Store) pipeScript(ctx context.Context, script *redis.Script, queue func(redis.Pipeliner)) ([]redis.Cmder, error) {
	cmds, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		queue(p)
		return nil
	})
	var again []int
	for i, c := range cmds {
		if redis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
			again = append(again, i)
		}
	}
	if len(again) == 0 {
		return cmds, err
	}
	if lerr := script.Load(ctx, s.client).Err(); lerr != nil {
		return cmds, lerr
	}
	retry, rerr := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, i := range again {
			p.Do(ctx, cmds[i].Args()...)
		}
		return nil
	})
	for k, i := range again {
		cmds[i] = retry[k]
	}
	for _, c := range cmds {
		if c.Err() != nil {
			return cmds, c.Err()
		}
	}
	return cmds, rerr
}

// Interface guards
var (
	_ limit.Tallier = (*Store)(nil)
	_ limit.Ledger  = (*Store)(nil)
)
