-- Gives a lease up, only if ARGV[1] holds it. KEYS[1] the lease key. Returns the keys deleted.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
