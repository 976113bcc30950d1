-- Periodic upkeep of one queue, bounded by ARGV[2] items per step so any backlog drains in chunks:
-- promote due scheduled jobs, take back jobs whose lease expired, trim DEAD ids past retention.
-- KEYS[1] pending, KEYS[2] scheduled, KEYS[3] leased, KEYS[4] dead, KEYS[5] stats
-- ARGV[1] now (ms, the caller's clock: etas), ARGV[2] limit, ARGV[3] key prefix of the queue,
-- ARGV[4] dead ttl (s), ARGV[5] stall (ms)
-- A lease taken back counts in the queue's per-minute history (history.lua, prepended) as retried
-- (requeued) or dead, and failed, and is written in the record as its attempt's entry (`at:<token>`).
-- Returns {promoted, requeued, dead, score of the next scheduled job or -1, leases shifted}
--
-- Leases are judged on Redis's clock. Time in which no upkeep of this queue ran at all for longer
-- than the stall (Redis paused or cut off, or every worker stopped) does not count against them:
-- the first pass after it moves every deadline forward by the gap, so the holders' renewals, stuck
-- in the same pause, get their turn before anyone takes their jobs. (After every worker was down,
-- their jobs come back within one lease of the first worker's return.)
local now, limit, kp, dttl = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local t = redis.call('TIME')
local rnow = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local last = tonumber(redis.call('HGET', KEYS[5], 'upkeep_at')) or rnow
redis.call('HSET', KEYS[5], 'upkeep_at', rnow)
local shifted = 0
if rnow - last > tonumber(ARGV[5]) then
  local gap = rnow - last
  local all = redis.call('ZRANGE', KEYS[3], 0, -1, 'WITHSCORES')
  for i = 1, #all, 2 do
    redis.call('ZADD', KEYS[3], tonumber(all[i + 1]) + gap, all[i])
  end
  shifted = #all / 2
end
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, limit)
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[2], id)
  local rk = kp .. 't:' .. id
  if redis.call('HGET', rk, 'state') == 'SCHEDULED' then
    redis.call('HSET', rk, 'state', 'PENDING', 'queued', 1)
    redis.call('RPUSH', KEYS[1], id)
  end
end
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', rnow, 'LIMIT', 0, limit)
local requeued, dead = 0, 0
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[3], id)
  local rk = kp .. 't:' .. id
  local v = redis.call('HMGET', rk, 'state', 'attempts', 'max_attempts', 'worker', 'wf', 'token')
  if v[1] == 'RUNNING' then
    local msg = 'lease expired: worker ' .. tostring(v[4]) .. ' stopped renewing it (killed or stuck)'
    if tonumber(v[2]) >= tonumber(v[3]) then
      local h = attempt_fields(rk)
      history_add(h[1], nil, 0, 0, 1) -- history (issue 18)
      redis.call('HSET', rk, 'state', 'DEAD', 'finished_at', now, 'error', msg, 'error_class', 'lease_expired',
        'at:' .. tostring(v[6]), attempt_entry(h, 'D', now, 'lease_expired', msg))
      redis.call('ZADD', KEYS[4], now, id)
      redis.call('EXPIRE', rk, dttl)
      redis.call('HINCRBY', KEYS[5], 'dead', 1)
      dead = dead + 1
      -- workflows: begin (a step that died of its lease moves its workflow: lua/workflow.lua)
      if v[5] then wf_step(kp, KEYS[1], KEYS[5], id, v[5], 'DEAD', '', now, dttl) end
      -- workflows: end
    else
      local h = attempt_fields(rk)
      history_add(h[1], nil, 0, 1, 0) -- history (issue 18)
      redis.call('HSET', rk, 'state', 'PENDING', 'error', msg, 'error_class', 'lease_expired', 'queued', 1,
        'at:' .. tostring(v[6]), attempt_entry(h, 'R', now, 'lease_expired', msg))
      redis.call('RPUSH', KEYS[1], id)
      requeued = requeued + 1
    end
    redis.call('HINCRBY', KEYS[5], 'failed', 1)
  end
end
history_flush(kp, now) -- history (issue 18)
local old = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now - dttl * 1000, 'LIMIT', 0, limit)
for _, id in ipairs(old) do redis.call('ZREM', KEYS[4], id) end
local nxt = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
local next_at = -1
if nxt[2] then next_at = tonumber(nxt[2]) end
return {#due, requeued, dead, next_at, shifted}
