-- Number a publish or rollback, and register a new version, behind an optional fence.
-- All keys share the {_refit} hash slot (one node of a cluster).
--
-- KEYS[1] dp:{_refit}:publish:seq (counter)
-- KEYS[2] dp:{_refit}:version:<v> (version record)
-- KEYS[3] the fencing lock (optional), holding '<token> <owner>'
-- ARGV[1] 'publish' (create the record; refused if it exists) or 'rollback' (the
--         record must exist)
-- ARGV[2] fencing token ('' without a fence)
-- ARGV[3..] field, value pairs written into a new version record
--
-- Returns {'ok', seq}, {'fence', <lock value or ''>}, {'exists'} or {'missing'};
-- nothing is written unless it returns 'ok'.

if #KEYS >= 3 then
  local held = redis.call('GET', KEYS[3])
  if (not held) or string.match(held, '^%S+') ~= ARGV[2] then
    return {'fence', held or ''}
  end
end
local exists = redis.call('EXISTS', KEYS[2])
if ARGV[1] == 'publish' and exists == 1 then
  return {'exists'}
end
if ARGV[1] == 'rollback' and exists == 0 then
  return {'missing'}
end
local seq = redis.call('INCR', KEYS[1])
if ARGV[1] == 'publish' then
  local fields = {}
  for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
  redis.call('HSET', KEYS[2], 'seq', seq, unpack(fields))
end
return {'ok', seq}
