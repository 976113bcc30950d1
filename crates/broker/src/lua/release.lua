-- Give back jobs a stopping worker holds: leased but never started, or aborted at the stop timeout.
-- The attempt it counted is returned. Only leases whose token is still the job's latest are given back.
-- KEYS[1] pending, KEYS[2] leased, KEYS[3] the worker's inflight list
-- ARGV[1] key prefix of the queue, then pairs: id, token
local kp = ARGV[1]
local back = 0
for i = 2, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i+1]
  local rk = kp .. 't:' .. id
  if redis.call('HGET', rk, 'token') == token and redis.call('ZREM', KEYS[2], id) == 1 then
    redis.call('HSET', rk, 'state', 'PENDING', 'queued', '1')
    redis.call('HINCRBY', rk, 'attempts', -1)
    redis.call('HDEL', rk, 'started_at', 'worker')
    redis.call('LPUSH', KEYS[1], id)
    back = back + 1
  end
end
local parked = redis.call('LRANGE', KEYS[3], 0, -1)
for i = #parked, 1, -1 do redis.call('LPUSH', KEYS[1], parked[i]) end
redis.call('DEL', KEYS[3])
return back + #parked
