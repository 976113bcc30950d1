-- Record the outcomes of a batch of attempts.
-- KEYS[1] leased zset, KEYS[2] scheduled zset, KEYS[3] dead zset, KEYS[4] stats hash
-- ARGV[1] now (ms), ARGV[2] result ttl (s), ARGV[3] dead ttl (s), ARGV[4] key prefix of the queue,
-- then 5 values per outcome: id, code, text, class, at (ms)
--   code S = succeeded (text = result), R = retry at `at`, D = dead, Z = snooze until `at` (attempt given back)
-- An outcome whose lease was lost (reaped after expiry) is ignored unless it is a success, so a late
-- failure never overrides what the job's new attempt decides.
local now, rttl, dttl, kp = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local s, r, d = 0, 0, 0
for i = 5, #ARGV, 5 do
  local id, code, text, class, at = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3], ARGV[i+4]
  local rk = kp .. 't:' .. id
  local held = redis.call('ZREM', KEYS[1], id)
  if code == 'S' then
    -- Holding the lease means the job is RUNNING: skip the read on this hot path.
    local st = 'RUNNING'
    if held == 0 then st = redis.call('HGET', rk, 'state') end
    if st == 'RUNNING' or st == 'PENDING' or st == 'SCHEDULED' then
      if st == 'SCHEDULED' then redis.call('ZREM', KEYS[2], id) end
      -- An empty next_run_at reads as "none" (cheaper than an HDEL).
      redis.call('HSET', rk, 'state', 'SUCCEEDED', 'finished_at', now, 'result', text, 'next_run_at', '')
      redis.call('EXPIRE', rk, rttl)
      s = s + 1
    end
  elseif held == 1 then
    if code == 'R' then
      redis.call('HSET', rk, 'state', 'SCHEDULED', 'next_run_at', at, 'error', text, 'error_class', class)
      redis.call('ZADD', KEYS[2], at, id)
      r = r + 1
    elseif code == 'Z' then
      redis.call('HSET', rk, 'state', 'SCHEDULED', 'next_run_at', at)
      redis.call('HINCRBY', rk, 'attempts', -1)
      redis.call('ZADD', KEYS[2], at, id)
    else
      redis.call('HSET', rk, 'state', 'DEAD', 'finished_at', now, 'error', text, 'error_class', class, 'next_run_at', '')
      redis.call('ZADD', KEYS[3], now, id)
      redis.call('EXPIRE', rk, dttl)
      d = d + 1
    end
  end
end
if s > 0 then redis.call('HINCRBY', KEYS[4], 'succeeded', s) end
if r > 0 then redis.call('HINCRBY', KEYS[4], 'retried', r); redis.call('HINCRBY', KEYS[4], 'failed', r) end
if d > 0 then redis.call('HINCRBY', KEYS[4], 'dead', d); redis.call('HINCRBY', KEYS[4], 'failed', d) end
return {s, r, d}
