-- Lease up to N jobs to one worker: first the id a blocking BLMOVE parked in the worker's inflight list,
-- then ids from the pending list. O(N): never touches the rest of the backlog.
-- Each lease gets a fencing token, unique in the queue for ever (the stats hash's `lease_seq`): finish,
-- renew and release apply only with the token of the live lease, so a stale attempt changes nothing.
-- KEYS[1] pending list, KEYS[2] leased zset, KEYS[3] this worker's inflight list, KEYS[4] paused flag,
-- KEYS[5] stats hash
-- ARGV[1] now (ms, the caller's clock: started_at), ARGV[2] lease (ms; the deadline is on Redis's clock,
-- like every lease deadline, so the hosts' clocks never decide a lease), ARGV[3] N, ARGV[4] worker id, ARGV[5] key prefix of the queue
-- Returns 'PAUSED', or 8 values per leased job: id, kind, args, attempts (this one included),
-- max_attempts, enqueued_at, token, next_run_at (when a delayed job or a retry became due; '' for
-- none: the worker's history latency starts at the later of the two). A leased job's next_run_at is
-- cleared: a RUNNING job has no next run.
if redis.call('EXISTS', KEYS[4]) == 1 then
  local parked = redis.call('LRANGE', KEYS[3], 0, -1)
  for i = #parked, 1, -1 do redis.call('LPUSH', KEYS[1], parked[i]) end
  redis.call('DEL', KEYS[3])
  return {ok = 'PAUSED'}
end
local n = tonumber(ARGV[3])
local ids = redis.call('LPOP', KEYS[3], n) or {}
if #ids < n then
  local more = redis.call('LPOP', KEYS[1], n - #ids)
  if more then for _, id in ipairs(more) do ids[#ids+1] = id end end
end
if #ids == 0 then return {} end
local now, worker, kp = ARGV[1], ARGV[4], ARGV[5]
local t = redis.call('TIME')
local deadline = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[2])
local token = redis.call('HINCRBY', KEYS[5], 'lease_seq', #ids) - #ids
local out = {}
for _, id in ipairs(ids) do
  local rk = kp .. 't:' .. id
  local v = redis.call('HMGET', rk, 'state', 'kind', 'args', 'attempts', 'max_attempts', 'enqueued_at',
    'next_run_at')
  -- A cancelled job, or one whose record is gone, is dropped here: cancel never scans the list.
  -- (A record without attempts is foreign or half-written: dropped too, never a failed script.)
  if v[1] == 'PENDING' and tonumber(v[4]) then
    local attempts = tonumber(v[4]) + 1
    token = token + 1
    if v[7] and v[7] ~= '' then
      -- A delayed job or a retry: it runs now, so it has no next run any more (an empty next_run_at
      -- reads as none). Cleared here, where it is read anyway, so finish writes nothing for it.
      redis.call('HSET', rk, 'state', 'RUNNING', 'attempts', attempts, 'started_at', now, 'worker', worker,
        'token', token, 'queued', '', 'next_run_at', '')
    else
      redis.call('HSET', rk, 'state', 'RUNNING', 'attempts', attempts, 'started_at', now, 'worker', worker,
        'token', token, 'queued', '')
    end
    redis.call('ZADD', KEYS[2], deadline, id)
    out[#out+1] = id; out[#out+1] = v[2]; out[#out+1] = v[3]
    out[#out+1] = attempts; out[#out+1] = v[5]; out[#out+1] = v[6]; out[#out+1] = token
    out[#out+1] = v[7] or ''
  elseif v[1] == 'CANCELLED' then
    -- The id has left the pending list: a retry must push it again.
    redis.call('HSET', rk, 'queued', '')
  end
end
return out
