-- Apply a re-fit's writes only while the lock holds this worker's value (fencing).
-- KEYS[1] lock, KEYS[2..] targets; ARGV[1] lock value, then three arguments per target
-- (target i >= 2 uses ARGV[3i-4], ARGV[3i-3], ARGV[3i-2]): an operation and two operands
--   SET  value  ''       SET target value
--   DEL  ''     ''       DEL target
--   ZADD score  member   ZADD target score member
--   ZREM member ''       ZREM target member
-- Returns 1 when written, 0 (nothing written) when the lock no longer holds ARGV[1].
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
for i = 2, #KEYS do
  local op, a, b = ARGV[3 * i - 4], ARGV[3 * i - 3], ARGV[3 * i - 2]
  if op == 'SET' then
    redis.call('SET', KEYS[i], a)
  elseif op == 'DEL' then
    redis.call('DEL', KEYS[i])
  elseif op == 'ZADD' then
    redis.call('ZADD', KEYS[i], a, b)
  elseif op == 'ZREM' then
    redis.call('ZREM', KEYS[i], a)
  else
    return redis.error_reply('unknown fenced operation ' .. tostring(op))
  end
end
return 1
