"""The surface cell at (units left, now): Python's rule and the sale script's are one.

:func:`service.store.cells.cell` and ``service/lua/cell.lua`` (which the sale script
includes) are run on the same grid of inputs, the Lua on a real Redis; then a sale
without a quote is charged the cell the Python rule names.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from service.store import EventRecord, PriceStore, SkuMeta, SurfaceRecord, connect, scripts
from service.store.cells import CellGrid, cell, epoch_ms

# Every input of one grid point travels as 6 ARGV values; the script returns (n, t) each.
_PROBE = """
local out = {}
for i = 1, #ARGV, 6 do
  local n, t = surface_cell(tonumber(ARGV[i]), tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]),
                            tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5]))
  out[#out + 1] = n
  out[#out + 1] = t
end
return out
"""


@pytest.fixture
def client(redis_url: str) -> Iterator[object]:
    c = connect(redis_url, timeout=5.0)
    yield c
    c.close()


def _grid_inputs() -> list[tuple[int, int, CellGrid]]:
    start = 1_767_225_600_000  # 2026-01-01T00:00:00Z in ms: a real epoch scale
    out = []
    for rows, cols, period_ms in itertools.product((1, 2, 11), (1, 3, 8), (1, 999, 600_000)):
        grid = CellGrid(rows, cols, start, period_ms)
        offsets = {-period_ms - 1, -1, 0, 1, period_ms - 1, period_ms, period_ms + 1}
        offsets |= {k * period_ms + d for k in (cols - 1, cols, cols + 5) for d in (-1, 0, 1)}
        for units, offset in itertools.product((-3, -1, 0, 1, rows - 1, rows, rows + 7), offsets):
            out.append((units, start + offset, grid))
    return out


def test_python_cell_equals_the_lua_cell_over_a_grid(client: object) -> None:
    cases = _grid_inputs()
    probe = scripts.load("cell") + _PROBE
    lua: list[int] = []
    for i in range(0, len(cases), 500):  # a few hundred cases per call
        args = [
            v
            for units, now_ms, g in cases[i : i + 500]
            for v in (units, now_ms, g.rows, g.cols, g.start_ms, g.period_ms)
        ]
        lua.extend(int(x) for x in client.eval(probe, 0, *args))  # type: ignore[attr-defined]
    python = [v for units, now_ms, g in cases for v in cell(units, now_ms, g)]
    assert len(cases) > 1000
    assert python == lua
    # The clamps are really exercised: first and last row and column all appear.
    cells = set(zip(python[::2], python[1::2], strict=True))
    assert {(0, 0), (10, 7), (0, 7), (10, 0)} <= cells


def test_unknown_units_read_row_zero_and_times_floor_to_whole_milliseconds() -> None:
    grid = CellGrid(rows=4, cols=5, start_ms=1_000, period_ms=1_000)
    assert cell(None, 2_500, grid) == (0, 1)
    assert epoch_ms(1.9999) == 1999
    assert epoch_ms(datetime(2026, 1, 1, tzinfo=UTC) + timedelta(microseconds=1999)) == (
        1_767_225_600_001
    )


def test_a_sale_without_a_quote_is_charged_the_cell_python_names(redis_url: str) -> None:
    store = PriceStore(connect(redis_url, timeout=5.0))
    try:
        sku, market, rows, cols = "CELL-1", "m", 6, 5
        store.register_sku(SkuMeta(sku, 10.0, "USD", (market,)))
        store.seed_inventory(sku, market, 9)  # more units than rows: the last row is read
        # Each cell's price says where it is: 100 + 10 n + t. Now is mid-way through
        # period 2, far from a boundary, so the clock Redis reads gives the same period.
        price = 100.0 + 10.0 * np.arange(rows)[:, None] + np.arange(cols)[None, :]
        start = datetime.now(UTC) - timedelta(hours=2, minutes=30)
        record = SurfaceRecord(price=price, period_start=start, period_seconds=3600)
        store.publish_surfaces("v1", {(sku, market): record})
        grid = CellGrid(rows, cols, epoch_ms(start), 3_600_000)

        for i, units_before in enumerate((9, 8, 7, 6, 5)):
            n, t = cell(units_before, epoch_ms(datetime.now(UTC)), grid)
            out = store.record_events(
                [
                    EventRecord(
                        event_id=f"s{i}",
                        kind="sale",
                        sku=sku,
                        market=market,
                        quantity=1,
                        fields={"type": "sale", "event_id": f"s{i}"},
                        list_price=10.0,
                    )
                ]
            )[0]
            assert out.status == "accepted"
            assert out.unit_price == pytest.approx(100.0 + 10 * n + t)
            assert store.live_prices([(sku, market)], {(sku, market): units_before - 1},
                                     datetime.now(UTC))[(sku, market)] == record.price_at(
                units_before - 1, datetime.now(UTC))  # fmt: skip
        assert (n, t) == (5, 2)
    finally:
        store.close()
