-- The surface cell served with units_left units at now_ms (clamped to the surface):
-- period t = floor((now_ms - start_ms) / period_ms) within [0, cols - 1], row n =
-- units_left within [0, rows - 1]. Scripts include this file (service.store.scripts);
-- service.store.cells.cell is the same rule in Python, pinned to this by a test.
local function surface_cell(units_left, now_ms, rows, cols, start_ms, period_ms)
  local t = math.floor((now_ms - start_ms) / period_ms)
  if t < 0 then t = 0 end
  if t > cols - 1 then t = cols - 1 end
  local n = units_left
  if n < 0 then n = 0 end
  if n > rows - 1 then n = rows - 1 end
  return n, t
end
