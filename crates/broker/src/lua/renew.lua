-- Extend the leases a worker holds, each only while its token is the job's latest lease and the job
-- is still leased. KEYS[1] leased zset, KEYS[2] stats hash
-- ARGV[1] lease (ms, from now on Redis's clock), ARGV[2] key prefix of the queue, then pairs: id, token
-- A renewal never shortens a lease (GT): one that waited in a socket while Redis was paused arrives
-- with nothing newer to say than what upkeep's stall shift already granted.
-- Returns the ids whose lease is lost (expired and taken back, or leased again): their runners must
-- stop and not acknowledge.
local t = redis.call('TIME')
local deadline = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
local kp = ARGV[2]
local lost = {}
for i = 3, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i+1]
  local rk = kp .. 't:' .. id
  if redis.call('HGET', rk, 'token') == token and redis.call('ZSCORE', KEYS[1], id) then
    redis.call('ZADD', KEYS[1], 'XX', 'GT', deadline, id)
  else
    lost[#lost+1] = id
  end
end
if #lost > 0 then redis.call('HINCRBY', KEYS[2], 'stale', #lost) end
return lost
