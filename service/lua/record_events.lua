-- Record a group of events atomically, one after the other. One call carries
-- many events so a batch costs one script dispatch per group, not one per event;
-- on a cluster a group holds the events of one SKU (one hash slot).
--
-- Per event: dedupe by event_id (a replay returns 'duplicate' with the first
-- outcome); a sale is refused 'sold_out' when fewer units are left (or
-- 'no_inventory' without a counter), else charged the quoted price when one is
-- given, else the live surface's cell at (units left before the sale, period now),
-- else the list price, and the counter is decremented, the units sold net of
-- returns incremented and the sale's units recorded as returnable under its
-- event_id; a return that names a sale (ref) is refused 'return_unknown_sale' when
-- no sale of that event_id was recorded for the SKU in the market, and
-- 'return_exceeds_sale' when it would take back more than that sale's units net of
-- earlier returns against it; any return is refused 'return_exceeds_sales' when it
-- would take back more units than were sold (net of earlier returns) of the SKU in
-- the market; else it increments the counter and decrements the units sold (and
-- the named sale's returnable units); a restock
-- increments the counter (the route lets operator keys only send one); the event
-- is appended to the SKU's stream and the outcome is remembered for the ttl. The
-- new counts are published on the update channel once per call, one line per
-- SKU-market (its last count and stream id), lines joined by newlines.
--
-- KEYS: six per event, in order:
--   dp:{sku}:seen:<event_id>, dp:{sku}:inv:<market>, dp:{sku}:events, dp:{sku}:live,
--   dp:{sku}:sold:<market>, dp:{sku}:sales:<market>
-- ARGV[1] idempotency ttl in ms, ARGV[2] approximate stream MAXLEN, ARGV[3] channel,
-- then per event: kind (sale | return | restock | signal), quantity, quoted price or
-- '', list price or '', market, surface key prefix dp:{sku}:surface:, sku, ref (a
-- sale: its own event_id; a return: the event_id of the sale it returns, or ''),
-- n (number of stream fields), then n field, value pairs.
--
-- Returns one {status, first_status, unit_price, units_left, stream_id, version,
-- returnable} per event, in order (returnable: the units a refused return could
-- take back: of the SKU in the market with 'return_exceeds_sales', of the named
-- sale with 'return_exceeds_sale').

-- @include cell.lua

local ttl, maxlen, channel = ARGV[1], ARGV[2], ARGV[3]
local notices, noticed = {}, {}
local now_ms = nil

-- Milliseconds now, read once per call (a call holds Redis for about 2 ms at most).
local function clock_ms()
  if not now_ms then
    local now = redis.call('TIME')
    now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  end
  return now_ms
end

-- The live version and surface header of each SKU-market, read once per call: the
-- script holds Redis, so neither can change between the events of one call.
local versions, headers = {}, {}

local function live_version(k_live, market)
  local key = k_live .. '\t' .. market
  local version = versions[key]
  if not version then
    version = redis.call('HGET', k_live, market) or ''
    versions[key] = version
  end
  return version
end

-- {key, rows, cols, period_start_ms, period_ms} of a surface, or false without one.
local function surface_header(header)
  local h = headers[header]
  if h == nil then
    local got = redis.call('HMGET', header, 'rows', 'cols', 'period_start_ms', 'period_ms')
    h = false
    if got[1] then
      h = {header .. ':p', tonumber(got[1]), tonumber(got[2]), tonumber(got[3]),
           tonumber(got[4])}
    end
    headers[header] = h
  end
  return h
end

local function record(k_seen, k_inv, k_events, k_live, k_sold, k_sales, kind, qty, quoted,
                      list_price, market, prefix, sku, ref, first_field, n_fields)
  local seen = redis.call('GET', k_seen)
  if seen then
    local parts = {}
    for part in string.gmatch(seen, '([^\t]*)\t?') do
      parts[#parts + 1] = part
    end
    return {'duplicate', parts[1] or '', parts[2] or '', parts[3] or '', parts[4] or '',
            parts[5] or '', parts[6] or ''}
  end
  local raw_units = redis.call('GET', k_inv)
  local units = -1
  if raw_units then units = tonumber(raw_units) end
  local version = live_version(k_live, market)
  local function remember(status, price, left, id, returnable)
    returnable = returnable or ''
    redis.call('SET', k_seen, status .. '\t' .. price .. '\t' .. left .. '\t' .. id .. '\t' ..
               version .. '\t' .. returnable, 'PX', ttl)
    return {status, status, price, left, id, version, returnable}
  end
  local price = ''
  if kind == 'sale' then
    if units < 0 then
      return remember('no_inventory', '', '', '')
    end
    if units < qty then
      return remember('sold_out', '', tostring(units), '')
    end
    if quoted ~= '' then
      price = quoted
    else
      if version ~= '' then
        local h = surface_header(prefix .. version .. ':' .. market)
        if h then
          local cols = h[3]
          local n, t = surface_cell(units, clock_ms(), h[2], cols, h[4], h[5])
          local offset = (n * cols + t) * 8
          local cell = redis.call('GETRANGE', h[1], offset, offset + 7)
          if string.len(cell) == 8 then
            price = string.format('%.17g', struct.unpack('<d', cell))
          end
        end
      end
      if price == '' then price = list_price end
    end
    units = redis.call('DECRBY', k_inv, qty)
    redis.call('INCRBY', k_sold, qty)
    redis.call('HSET', k_sales, ref, qty)
  elseif kind == 'return' then
    local left = ''
    if units >= 0 then left = tostring(units) end
    if ref ~= '' then
      local returnable = redis.call('HGET', k_sales, ref)
      if not returnable then
        return remember('return_unknown_sale', '', left, '')
      end
      if tonumber(returnable) < qty then
        return remember('return_exceeds_sale', '', left, '', returnable)
      end
    end
    local sold = tonumber(redis.call('GET', k_sold) or '0')
    if sold < qty then
      return remember('return_exceeds_sales', '', left, '', tostring(sold))
    end
    redis.call('DECRBY', k_sold, qty)
    if ref ~= '' then redis.call('HINCRBY', k_sales, ref, -qty) end
    units = redis.call('INCRBY', k_inv, qty)
  elseif kind == 'restock' then
    units = redis.call('INCRBY', k_inv, qty)
  end
  local fields = {'kind', kind, 'charged_price', price, 'units_left', tostring(units),
                  'version', version}
  for j = first_field, first_field + 2 * n_fields - 1 do
    fields[#fields + 1] = ARGV[j]
  end
  local id = redis.call('XADD', k_events, 'MAXLEN', '~', maxlen, '*', unpack(fields))
  if kind ~= 'signal' then
    -- The stream id orders the counts of a SKU: a reader applies only newer ones.
    local where = sku .. '\t' .. market
    if not noticed[where] then
      notices[#notices + 1] = where
    end
    noticed[where] = 'inv\t' .. where .. '\t' .. tostring(units) .. '\t' .. id
  end
  local left = ''
  if units >= 0 then left = tostring(units) end
  return remember('accepted', price, left, id)
end

local results = {}
local a = 4
for i = 0, #KEYS / 6 - 1 do
  local n_fields = tonumber(ARGV[a + 8])
  results[#results + 1] = record(
    KEYS[6 * i + 1], KEYS[6 * i + 2], KEYS[6 * i + 3], KEYS[6 * i + 4], KEYS[6 * i + 5],
    KEYS[6 * i + 6], ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2], ARGV[a + 3], ARGV[a + 4],
    ARGV[a + 5], ARGV[a + 6], ARGV[a + 7], a + 9, n_fields)
  a = a + 9 + 2 * n_fields
end
if #notices > 0 then
  for i, where in ipairs(notices) do
    notices[i] = noticed[where]
  end
  redis.call('PUBLISH', channel, table.concat(notices, '\n'))
end
return results
