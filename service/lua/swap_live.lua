-- Point a SKU's markets at a surface version in one step (a reader sees the old
-- version or the new one for every market of the SKU, never a mix).
--
-- KEYS[1] dp:{sku}:live
-- ARGV[1] surface key prefix dp:{sku}:surface:
-- ARGV[2] update channel
-- ARGV[3] sku
-- ARGV[4..] market, version pairs
--
-- Fails without writing anything when a target surface header is missing.
-- Returns the number of markets switched.

for i = 4, #ARGV, 2 do
  if redis.call('EXISTS', ARGV[1] .. ARGV[i + 1] .. ':' .. ARGV[i]) == 0 then
    return redis.error_reply('surface ' .. ARGV[i + 1] .. ' of ' .. ARGV[3] .. ' in ' .. ARGV[i] .. ' is missing')
  end
end
local pairs_ = {}
for i = 4, #ARGV do pairs_[#pairs_ + 1] = ARGV[i] end
if #pairs_ > 0 then
  redis.call('HSET', KEYS[1], unpack(pairs_))
end
redis.call('PUBLISH', ARGV[2], 'live\t' .. ARGV[3])
return #pairs_ / 2
