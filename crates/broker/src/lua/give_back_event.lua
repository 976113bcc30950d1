-- Takes back one event counted by reserve_in_window.lua (an attempt that turned out not to be a
-- failure); the window keeps its deadline, and a counter back at zero is deleted.
-- KEYS[1] the counter. Returns the count before.
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 1 then
  redis.call('DECR', KEYS[1])
elseif n == 1 then
  redis.call('DEL', KEYS[1])
end
return n
