-- Takes or renews a lease (beat's leadership, a named lock such as `sale:<id>`).
-- KEYS[1] the lease key; ARGV[1] the holder, ARGV[2] the time to live in ms.
-- Returns 1 when the holder has the lease now, 0 when another holder has it.
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
elseif not cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
