-- Give back jobs a stopping worker leased but never started: the attempt it counted is returned.
-- KEYS[1] pending, KEYS[2] leased, KEYS[3] the worker's inflight list
-- ARGV[1] key prefix of the queue, then ids
local kp = ARGV[1]
local back = 0
for i = 2, #ARGV do
  local id = ARGV[i]
  if redis.call('ZREM', KEYS[2], id) == 1 then
    local rk = kp .. 't:' .. id
    redis.call('HSET', rk, 'state', 'PENDING')
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
