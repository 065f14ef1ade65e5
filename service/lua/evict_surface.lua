-- Delete one surface of an old version unless a market still serves it.
--
-- KEYS[1] dp:{sku}:live
-- KEYS[2] header, KEYS[3] prices, KEYS[4] guardrail codes of the surface
-- ARGV[1] market, ARGV[2] version
--
-- Returns 1 when deleted, 0 when kept because it is live.

if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return 0
end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
return 1
