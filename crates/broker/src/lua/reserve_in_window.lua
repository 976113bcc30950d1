-- Counts one event under every counter if each is below its limit, else under none (failed logins,
-- counted before the password is checked, so parallel attempts cannot all pass the check). Each
-- counter's window starts with its first event.
-- KEYS the counters; ARGV[1] the window in ms, ARGV[1 + i] the limit of KEYS[i].
-- Returns {0, 0} when counted, or {i, ms} when KEYS[i] holds its limit and resets in ms.
local window = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local n = tonumber(redis.call('GET', key) or '0')
  if n >= tonumber(ARGV[i + 1]) then
    local left = redis.call('PTTL', key)
    if left < 0 then
      -- A counter without a deadline (never written so by this script) would never reset.
      redis.call('PEXPIRE', key, window)
      left = window
    end
    return {i, left}
  end
end
for _, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 then redis.call('PEXPIRE', key, window) end
end
return {0, 0}
