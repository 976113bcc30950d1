-- Start a workflow (or add one chunk of a group's members to it): writes the workflow hash, lists
-- the step ids, and enqueues the tasks given, each marked with the workflow and its index.
-- KEYS[1] pending list, KEYS[2] scheduled zset, KEYS[3] stats hash
-- ARGV[1] now (ms), ARGV[2] key prefix of the queue, ARGV[3] queue name, ARGV[4] workflow id,
-- ARGV[5] h, then h values: field/value pairs of the workflow hash (the first call only),
-- then r, then r step ids to append to the list, then 7 values per task to enqueue now:
-- id, index, kind, args, max_attempts, run_at (ms, 0 = now), owner ('' = none)
-- The hash (with `n`, the number of steps) is written before any task, so no step can finish
-- before its workflow exists. Returns the number of tasks enqueued.
local now, kp, queue, wf = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4]
local wk = kp .. 'wf:' .. wf
local h = tonumber(ARGV[5])
if h > 0 then redis.call('HSET', wk, unpack(ARGV, 6, 5 + h)) end
local at = 6 + h
local r = tonumber(ARGV[at])
if r > 0 then redis.call('RPUSH', wk .. ':ids', unpack(ARGV, at + 1, at + r)) end
local added = 0
for i = at + 1 + r, #ARGV, 7 do
  local id, idx, kind, args, max, run_at, owner = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3], ARGV[i+4], tonumber(ARGV[i+5]), ARGV[i+6]
  local rk = kp .. 't:' .. id
  if run_at > now then
    redis.call('HSET', rk, 'kind', kind, 'queue', queue, 'args', args, 'state', 'SCHEDULED',
      'attempts', 0, 'max_attempts', max, 'enqueued_at', now, 'next_run_at', run_at, 'wf', wf, 'wf_i', idx)
    redis.call('ZADD', KEYS[2], run_at, id)
  else
    redis.call('HSET', rk, 'kind', kind, 'queue', queue, 'args', args, 'state', 'PENDING',
      'attempts', 0, 'max_attempts', max, 'enqueued_at', now, 'queued', 1, 'wf', wf, 'wf_i', idx)
    redis.call('RPUSH', KEYS[1], id)
  end
  if owner ~= '' then redis.call('HSET', rk, 'owner', owner) end
  added = added + 1
end
if added > 0 then redis.call('HINCRBY', KEYS[3], 'enqueued', added) end
-- The queue carries workflow steps from now on: finish.lua reads each outcome's `wf` only then.
redis.call('HSET', KEYS[3], 'workflows', 1)
return added
