-- Purge one chunk of a queue's waiting or DEAD jobs. Only records in a purgeable state are deleted:
-- an id whose job is RUNNING or finished (a stale copy in the list) is dropped from the list and its
-- record kept, so a purge never removes a running job.
-- KEYS[1] the source: the pending list, the scheduled zset or the dead zset
-- ARGV[1] 'list' or 'zset', ARGV[2] key prefix of the queue, ARGV[3] chunk size,
-- ARGV[4..] the states whose records are deleted
-- Returns {ids taken from the source, records deleted}
local kind, kp, n = ARGV[1], ARGV[2], tonumber(ARGV[3])
local allowed = {}
for i = 4, #ARGV do allowed[ARGV[i]] = true end
local ids = {}
if kind == 'list' then
  ids = redis.call('LPOP', KEYS[1], n) or {}
else
  local popped = redis.call('ZPOPMIN', KEYS[1], n)
  for i = 1, #popped, 2 do ids[#ids+1] = popped[i] end
end
local removed = 0
for _, id in ipairs(ids) do
  local rk = kp .. 't:' .. id
  local st = redis.call('HGET', rk, 'state')
  if st and allowed[st] then
    redis.call('DEL', rk)
    removed = removed + 1
  elseif st == 'CANCELLED' then
    redis.call('HSET', rk, 'queued', '')
  end
end
return {#ids, removed}
