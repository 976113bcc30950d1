-- Extend the leases a worker holds, each only while its token is the job's latest lease and the job
-- is still leased. KEYS[1] leased zset, KEYS[2] stats hash
-- ARGV[1] new deadline (ms), ARGV[2] key prefix of the queue, then pairs: id, token
-- Returns the ids whose lease is lost (expired and taken back, or leased again): their runners must
-- stop and not acknowledge.
local deadline, kp = ARGV[1], ARGV[2]
local lost = {}
for i = 3, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i+1]
  local rk = kp .. 't:' .. id
  if redis.call('HGET', rk, 'token') == token and redis.call('ZSCORE', KEYS[1], id) then
    redis.call('ZADD', KEYS[1], 'XX', deadline, id)
  else
    lost[#lost+1] = id
  end
end
if #lost > 0 then redis.call('HINCRBY', KEYS[2], 'stale', #lost) end
return lost
