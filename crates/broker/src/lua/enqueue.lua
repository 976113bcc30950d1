-- Enqueue a batch of jobs into one queue.
-- KEYS[1] pending list, KEYS[2] scheduled zset, KEYS[3] stats hash
-- ARGV[1] now (ms), ARGV[2] key prefix of the queue (`{p:q:queue}:`), ARGV[3] idempotency ttl (s),
-- ARGV[4] queue name, then 7 values per job: id, kind, args, max_attempts, run_at (ms, 0 = now), idempotency key ('' = none),
-- owner ('' = none)
-- `queued` = 1 marks a record whose id sits in the pending list (fetch clears it), so a retry after a
-- cancel never pushes the id a second time.
-- Returns one id per job: the new id, or the id of the earlier job holding the same idempotency key.
local now = tonumber(ARGV[1])
local kp = ARGV[2]
local ttl = tonumber(ARGV[3])
local queue = ARGV[4]
local out = {}
local added = 0
for i = 5, #ARGV, 7 do
  local id, kind, args, max, run_at, idem, owner = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3], tonumber(ARGV[i+4]), ARGV[i+5], ARGV[i+6]
  local existing = false
  if idem ~= '' then
    local ik = kp .. 'idem:' .. idem
    local prev = redis.call('GET', ik)
    if prev then
      out[#out+1] = prev
      existing = true
    else
      -- The key outlives the job's own time: a job a year away stays deduplicated until then + ttl.
      local wait = 0
      if run_at > now then wait = math.ceil((run_at - now) / 1000) end
      redis.call('SET', ik, id, 'EX', ttl + wait)
    end
  end
  if not existing then
    local rk = kp .. 't:' .. id
    if run_at > now then
      redis.call('HSET', rk, 'kind', kind, 'queue', queue, 'args', args, 'state', 'SCHEDULED',
        'attempts', 0, 'max_attempts', max, 'enqueued_at', now, 'next_run_at', run_at)
      redis.call('ZADD', KEYS[2], run_at, id)
    else
      redis.call('HSET', rk, 'kind', kind, 'queue', queue, 'args', args, 'state', 'PENDING',
        'attempts', 0, 'max_attempts', max, 'enqueued_at', now, 'queued', 1)
      redis.call('RPUSH', KEYS[1], id)
    end
    if idem ~= '' then redis.call('HSET', rk, 'idempotency_key', idem) end
    if owner ~= '' then redis.call('HSET', rk, 'owner', owner) end
    out[#out+1] = id
    added = added + 1
  end
end
if added > 0 then redis.call('HINCRBY', KEYS[3], 'enqueued', added) end
return out
