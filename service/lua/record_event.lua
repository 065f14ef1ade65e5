-- Record one event of one SKU atomically: dedupe, price, inventory, stream, notice.
--
-- KEYS[1] dp:{sku}:seen:<event_id>   idempotency record (string, PX ttl)
-- KEYS[2] dp:{sku}:inv:<market>      units left (string integer)
-- KEYS[3] dp:{sku}:events            the SKU's event stream
-- KEYS[4] dp:{sku}:live              market -> live surface version
-- ARGV[1] kind: sale | return | restock | signal
-- ARGV[2] quantity (integer >= 0)
-- ARGV[3] idempotency ttl in ms
-- ARGV[4] quoted unit price of a valid quote, or ''
-- ARGV[5] list price served when no surface is live, or ''
-- ARGV[6] market
-- ARGV[7] surface key prefix dp:{sku}:surface:
-- ARGV[8] approximate stream MAXLEN
-- ARGV[9] update channel
-- ARGV[10] sku
-- ARGV[11..] field, value pairs appended to the stream entry
--
-- Returns {status, first_status, unit_price, units_left, stream_id, version}:
-- status is accepted | duplicate | sold_out | no_inventory; first_status repeats
-- the original outcome for a duplicate. A sale is charged the quoted price when
-- ARGV[4] is set, else the live surface's cell at (units left before the sale,
-- period now), else the list price. All keys share the SKU's hash tag.

local seen = redis.call('GET', KEYS[1])
if seen then
  local parts = {}
  for part in string.gmatch(seen, '([^\t]*)\t?') do
    parts[#parts + 1] = part
  end
  return {'duplicate', parts[1] or '', parts[2] or '', parts[3] or '', parts[4] or '', parts[5] or ''}
end

local kind = ARGV[1]
local qty = tonumber(ARGV[2])
local market = ARGV[6]
local raw_units = redis.call('GET', KEYS[2])
local units = -1
if raw_units then units = tonumber(raw_units) end

local function remember(status, price, left, id, version)
  redis.call('SET', KEYS[1], status .. '\t' .. price .. '\t' .. left .. '\t' .. id .. '\t' .. version,
             'PX', ARGV[3])
  return {status, status, price, left, id, version}
end

local version = redis.call('HGET', KEYS[4], market) or ''
local price = ''

if kind == 'sale' then
  if units < 0 then
    return remember('no_inventory', '', '', '', version)
  end
  if units < qty then
    return remember('sold_out', '', tostring(units), '', version)
  end
  if ARGV[4] ~= '' then
    price = ARGV[4]
  else
    if version ~= '' then
      local header = ARGV[7] .. version .. ':' .. market
      local h = redis.call('HMGET', header, 'rows', 'cols', 'period_start_ms', 'period_ms')
      if h[1] then
        local rows, cols = tonumber(h[1]), tonumber(h[2])
        local now = redis.call('TIME')
        local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
        local t = math.floor((now_ms - tonumber(h[3])) / tonumber(h[4]))
        if t < 0 then t = 0 end
        if t > cols - 1 then t = cols - 1 end
        local n = units
        if n > rows - 1 then n = rows - 1 end
        local offset = (n * cols + t) * 8
        local cell = redis.call('GETRANGE', header .. ':p', offset, offset + 7)
        if string.len(cell) == 8 then
          price = string.format('%.17g', struct.unpack('<d', cell))
        end
      end
    end
    if price == '' then price = ARGV[5] end
  end
  units = redis.call('DECRBY', KEYS[2], qty)
elseif kind == 'return' or kind == 'restock' then
  units = redis.call('INCRBY', KEYS[2], qty)
end

local fields = {'kind', kind, 'charged_price', price, 'units_left', tostring(units), 'version', version}
for i = 11, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
local id = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[8], '*', unpack(fields))
if kind ~= 'signal' then
  redis.call('PUBLISH', ARGV[9], 'inv\t' .. ARGV[10] .. '\t' .. market .. '\t' .. tostring(units))
end
local left = ''
if units >= 0 then left = tostring(units) end
return remember('accepted', price, left, id, version)
