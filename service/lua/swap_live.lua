-- Point a SKU's markets at a surface version in one step (a reader sees the old
-- version or the new one for every market of the SKU, never a mix).
--
-- KEYS[1] dp:{sku}:live
-- KEYS[2] dp:{sku}:live:seq (sequence number of the publish that set the pointers)
-- ARGV[1] surface key prefix dp:{sku}:surface:
-- ARGV[2] update channel
-- ARGV[3] sku
-- ARGV[4] sequence number of this publish or rollback (dp:{_refit}:publish:seq)
-- ARGV[5..] market, version pairs
--
-- Refuses, writing nothing, when the SKU's pointers were already moved by a later
-- publish (a higher sequence number): a slow publisher never goes back over a newer
-- version. Fails without writing anything when a target surface header is missing.
-- Returns the number of markets switched, or -1 when superseded.

local current = tonumber(redis.call('GET', KEYS[2]) or '0')
local seq = tonumber(ARGV[4])
if current > seq then
  return -1
end
for i = 5, #ARGV, 2 do
  if redis.call('EXISTS', ARGV[1] .. ARGV[i + 1] .. ':' .. ARGV[i]) == 0 then
    return redis.error_reply('surface ' .. ARGV[i + 1] .. ' of ' .. ARGV[3] .. ' in ' .. ARGV[i] .. ' is missing')
  end
end
local pairs_ = {}
for i = 5, #ARGV do pairs_[#pairs_ + 1] = ARGV[i] end
if #pairs_ > 0 then
  redis.call('HSET', KEYS[1], unpack(pairs_))
end
redis.call('SET', KEYS[2], ARGV[4])
redis.call('PUBLISH', ARGV[2], 'live\t' .. ARGV[3])
return #pairs_ / 2
