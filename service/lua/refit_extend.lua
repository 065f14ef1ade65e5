-- Extend the re-fit lock while it still holds this worker's value.
-- KEYS[1] lock; ARGV[1] expected lock value, ARGV[2] ttl (ms). Returns 1, else 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
