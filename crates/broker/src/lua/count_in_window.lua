-- Counts one event in a window that starts with the first event (failed logins).
-- KEYS[1] the counter; ARGV[1] the window in ms. Returns the count so far.
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
