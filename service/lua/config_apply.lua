-- Apply an operator config version: store it, move the live pointer, append the audit
-- record, evict old versions and announce it, in one step (all keys in {ops}).
-- Refused ({-1, live}) when ARGV[1] names a live version that is no longer live.
-- KEYS: live, versions zset, new version hash, audit stream, evicted version hashes...
-- ARGV: expected live ('' = any), n, bundle, digest, actor, at, summary,
--       audit kind, audit detail, channel, evicted version numbers...
local live = redis.call('GET', KEYS[1])
if not live then live = '0' end
if ARGV[1] ~= '' and ARGV[1] ~= live then
  return {-1, live}
end
redis.call('HSET', KEYS[3], 'bundle', ARGV[3], 'digest', ARGV[4], 'actor', ARGV[5],
           'at', ARGV[6], 'base', live, 'summary', ARGV[7], 'kind', ARGV[8])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[2])
redis.call('SET', KEYS[1], ARGV[2])
local id = redis.call('XADD', KEYS[4], '*', 'kind', ARGV[8], 'actor', ARGV[5],
                      'at', ARGV[6], 'detail', ARGV[9])
for i = 5, #KEYS do
  redis.call('DEL', KEYS[i])
  redis.call('ZREM', KEYS[2], ARGV[i + 6])
end
redis.call('PUBLISH', ARGV[10], ARGV[2])
return {tonumber(ARGV[2]), id}
