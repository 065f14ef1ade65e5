-- Take the re-fit lock with a new fencing token.
-- KEYS[1] lock, KEYS[2] fence counter; ARGV[1] ttl (ms), ARGV[2] owner.
-- Returns the token, or false when another worker holds the lock.
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token .. ' ' .. ARGV[2], 'PX', ARGV[1])
return token
