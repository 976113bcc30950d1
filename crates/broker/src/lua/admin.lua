-- Operator actions on one task. KEYS[1] pending, KEYS[2] scheduled, KEYS[3] dead, KEYS[4] stats
-- ARGV[1] action (retry | cancel), ARGV[2] id, ARGV[3] key prefix of the queue, ARGV[4] now (ms), ARGV[5] result ttl (s)
-- Returns the state after the action, or the unchanged state when the action does not apply.
local action, id, kp, now, rttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local rk = kp .. 't:' .. id
local st = redis.call('HGET', rk, 'state')
if not st then return 'MISSING' end
if action == 'retry' then
  if st ~= 'DEAD' and st ~= 'CANCELLED' then return st end
  redis.call('ZREM', KEYS[3], id)
  redis.call('PERSIST', rk)
  -- A job cancelled while PENDING still has its id in the pending list (`queued` = 1): making it
  -- PENDING again is enough; pushing it again would run it twice.
  local queued = redis.call('HGET', rk, 'queued') == '1'
  redis.call('HSET', rk, 'state', 'PENDING', 'attempts', 0, 'queued', 1)
  redis.call('HDEL', rk, 'finished_at', 'next_run_at')
  if not queued then redis.call('RPUSH', KEYS[1], id) end
  return 'PENDING'
elseif action == 'cancel' then
  if st ~= 'PENDING' and st ~= 'SCHEDULED' then return st end
  -- The id stays in the pending list; fetch drops it when it sees CANCELLED (O(1) here).
  redis.call('ZREM', KEYS[2], id)
  redis.call('HSET', rk, 'state', 'CANCELLED', 'finished_at', now)
  redis.call('EXPIRE', rk, rttl)
  -- workflows: begin (a cancelled step moves its workflow: lua/workflow.lua)
  local wf = redis.call('HGET', rk, 'wf')
  if wf then wf_step(kp, KEYS[1], KEYS[4], id, wf, 'CANCELLED', '', now, rttl) end
  -- workflows: end
  return 'CANCELLED'
end
return redis.error_reply('unknown action ' .. action)
