package redisstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/apiusers/apiusers/authz/throttle"
)

// Failure counts of authz/throttle, shared by the fleet:
//
//	<prefix>:t:<scope>:<digest>   HASH  <bucket> -> failures, "last" -> Unix ms
//
// <digest> is a truncated SHA-256 of the throttled key (a client address,
// an identity), so that neither is written to Redis as it is. A hash
// expires ttl after its latest failure; each add drops the bucket before
// the previous one. Keys carry no hash tag: they spread over a cluster's
// slots, and each add is one script run on one key.

// throttleScript adds ARGV[2] failures to bucket ARGV[1] of KEYS[1] at
// ARGV[4] (Unix ms), keeping the latest failure time (a negative ARGV[2]
// takes failures back, never below zero, and leaves the time alone), and returns the
// counts of ARGV[1] and ARGV[3] (the bucket before) and the latest failure
// as it was before the add. ARGV[5] is the TTL (ms), ARGV[6] the bucket to
// drop.
var throttleScript = redis.NewScript(`
local last = tonumber(redis.call('HGET', KEYS[1], 'last') or '0')
local n = tonumber(ARGV[2])
if n > 0 then
  redis.call('HINCRBY', KEYS[1], ARGV[1], n)
  if tonumber(ARGV[4]) > last then redis.call('HSET', KEYS[1], 'last', ARGV[4]) end
  redis.call('HDEL', KEYS[1], ARGV[6])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
elseif n < 0 and redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  if redis.call('HINCRBY', KEYS[1], ARGV[1], n) < 0 then redis.call('HSET', KEYS[1], ARGV[1], 0) end
end
local v = redis.call('HMGET', KEYS[1], ARGV[1], ARGV[3])
return {tonumber(v[1] or '0'), tonumber(v[2] or '0'), last}
`)

func (s *Store) throttleKey(scope, key string) string {
	sum := sha256.Sum256([]byte(key))
	return s.prefix + ":t:" + scope + ":" + hex.EncodeToString(sum[:16])
}

// AddFailures implements throttle.Shared: every add is one script run, all
// of them in one pipeline.
func (s *Store) AddFailures(ctx context.Context, scope string, ttl time.Duration, adds []throttle.Add, now time.Time) ([]throttle.Counts, error) {
	if len(adds) == 0 {
		return nil, nil
	}
	ms := strconv.FormatInt(now.UnixMilli(), 10)
	ttlMS := strconv.FormatInt(max(ttl.Milliseconds(), 1), 10)
	send := func() ([]redis.Cmder, error) {
		return s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, a := range adds {
				throttleScript.EvalSha(ctx, p, []string{s.throttleKey(scope, a.Key)},
					strconv.FormatInt(a.Bucket, 10), a.N, strconv.FormatInt(a.Bucket-1, 10), ms, ttlMS,
					strconv.FormatInt(a.Bucket-2, 10))
			}
			return nil
		})
	}
	cmds, err := send()
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		if err = throttleScript.Load(ctx, s.client).Err(); err == nil {
			cmds, err = send()
		}
	}
	if err != nil {
		return nil, s.mapErr("adding failures", err)
	}
	out := make([]throttle.Counts, len(adds))
	for i, c := range cmds {
		vals, err := c.(*redis.Cmd).Int64Slice()
		if err != nil || len(vals) != 3 {
			return nil, s.mapErr("adding failures", fmt.Errorf("unexpected answer %v: %v", c, err))
		}
		out[i] = throttle.Counts{Current: vals[0], Previous: vals[1]}
		if vals[2] > 0 {
			out[i].Last = time.UnixMilli(vals[2])
		}
	}
	return out, nil
}

// ClearFailures implements throttle.Shared.
func (s *Store) ClearFailures(ctx context.Context, scope string, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.Del(ctx, s.throttleKey(scope, k))
		}
		return nil
	})
	return s.mapErr("clearing failures", err)
}

var _ throttle.Shared = (*Store)(nil)
