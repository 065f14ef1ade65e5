"""The surface cell at (units left, now): one rule for Python and Lua.

A surface's cell for ``n`` units left at time ``now`` is row ``n`` and period
``t = ⌊(now − t₀) / Δ⌋``, both clamped to the surface: ``n > N`` reads row ``N``
(a negative or unknown count row 0), periods before period 0 read column 0 and after
the last column ``T − 1``. Times are whole milliseconds since the epoch, as Redis
stores a surface's ``period_start_ms`` and ``period_ms`` and as the sale script reads
its clock (``TIME``), so Python and Lua floor the same integers.

The sale script's copy of the rule is ``service/lua/cell.lua`` (included by
``record_events.lua``); a test runs that Lua on a real Redis over a grid of inputs and
compares it with :func:`cell`.

Example:
    >>> grid = CellGrid(rows=11, cols=4, start_ms=0, period_ms=3_600_000)
    >>> cell(25, 7_200_000, grid), cell(-1, -5, grid)
    ((10, 2), (0, 0))
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import NamedTuple

__all__ = ["CellGrid", "cell", "epoch_ms"]


class CellGrid(NamedTuple):
    """A surface's shape and clock: ``rows`` (N+1) x ``cols`` (T) periods of
    ``period_ms`` from ``start_ms``."""

    rows: int
    cols: int
    start_ms: int
    period_ms: int


def cell(units_left: int | None, now_ms: int, grid: CellGrid) -> tuple[int, int]:
    """``(row, period)`` of the cell served with ``units_left`` units at ``now_ms``.

    Args:
        units_left: units left (``None``: unknown, read as 0).
        now_ms: milliseconds since the epoch (:func:`epoch_ms`).
        grid: the surface's shape and clock.
    """
    t = (now_ms - grid.start_ms) // grid.period_ms
    t = 0 if t < 0 else (grid.cols - 1 if t >= grid.cols else t)
    n = 0 if units_left is None or units_left < 0 else units_left
    if n >= grid.rows:
        n = grid.rows - 1
    return n, t


def epoch_ms(when: datetime | float) -> int:
    """Whole milliseconds since the epoch of an aware datetime or Unix seconds (floored,
    as the sale script floors Redis's clock)."""
    seconds = when.timestamp() if isinstance(when, datetime) else when
    return math.floor(seconds * 1000)
