-- Set a SKU's units left in one market and announce it.
--
-- KEYS[1] dp:{sku}:inv:<market>
-- ARGV[1] mode: set (overwrite) | seed (only when absent)
-- ARGV[2] units (integer >= 0)
-- ARGV[3] update channel
-- ARGV[4] sku
-- ARGV[5] market
--
-- Returns {written (1/0), units left now}.

if ARGV[1] == 'seed' and redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, tonumber(redis.call('GET', KEYS[1]))}
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('PUBLISH', ARGV[3], 'inv\t' .. ARGV[4] .. '\t' .. ARGV[5] .. '\t' .. ARGV[2])
return {1, tonumber(ARGV[2])}
