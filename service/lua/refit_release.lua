-- Release the re-fit lock if it still holds this worker's value.
-- KEYS[1] lock; ARGV[1] expected lock value. Returns the keys deleted (0 or 1).
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
