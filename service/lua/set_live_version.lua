-- Move the global live-version pointer unless a later publish already moved it.
-- All keys share the {_refit} hash slot.
--
-- KEYS[1] dp:{_refit}:live, KEYS[2] dp:{_refit}:live:seq, KEYS[3] version record
-- ARGV[1] version, ARGV[2] sequence number, ARGV[3..] field, value pairs for the record
--
-- Returns 1 when moved, 0 when superseded (nothing written).

if tonumber(redis.call('GET', KEYS[2]) or '0') > tonumber(ARGV[2]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
local fields = {}
for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
if #fields > 0 then
  redis.call('HSET', KEYS[3], unpack(fields))
end
return 1
