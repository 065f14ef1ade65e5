"""The time rules: guardrails along a published surface and along the prices served.

On a published surface ``p(n, t)`` the time rules run along ``t`` at each stock level ``n``
(:func:`apply_guardrails`); on the sequence of prices actually served (stock moving with
sales) they run on the path (:func:`guard_served`, :func:`guard_path`), which also enforces the
change cap. Every price carries a :class:`~pricing.guardrails.rules.GuardrailCode` saying
which rule bound it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from pricing.exceptions import InputError
from pricing.guardrails.rules import GuardrailCode
from pricing.guardrails.spec import GuardrailSpec, GuardrailTable, stack_guardrails

__all__ = [
    "ServedState",
    "apply_guardrails",
    "guard_path",
    "guard_served",
    "initial_served_state",
]

_CELLS_PER_CHUNK = 4_000_000


def apply_guardrails(
    price_surface: np.ndarray,
    specs: GuardrailSpec | Sequence[GuardrailSpec] | GuardrailTable,
    *,
    inventory: int | np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Guard a price surface ``p(n, t)``: static bounds per cell, time rules along ``t``.

    Args:
        price_surface: ``[S, N+1, T]`` optimal prices (e.g. ``Surfaces.price``).
        specs: one :class:`GuardrailSpec` for all rows, or one per row.
        inventory: each row's stock when the window opens (int or ``[S]``; default ``N``):
            during the no-touch periods every cell serves the guarded price at that stock
            and period 0.

    Returns:
        ``(guarded [S, N+1, T] float64, code [S, N+1, T] int8)`` with ``code`` a
        :class:`GuardrailCode` per cell (the last rule that moved it).

    Raises:
        InputError: a proposal is not finite, or the shapes disagree.
    """
    surface = np.asarray(price_surface, dtype=np.float64)
    if surface.ndim != 3:
        raise InputError(f"price_surface must have shape [S, N+1, T], got {surface.shape}")
    s, n_levels, t_len = surface.shape
    bad = ~np.isfinite(surface)
    if bad.any():
        raise InputError(
            f"price_surface has {int(bad.sum())} non-finite cell(s); refusing to guard "
            "(and publish) a surface with NaN or inf"
        )
    inv = np.full(s, n_levels - 1) if inventory is None else np.asarray(inventory)
    inv = np.broadcast_to(inv, (s,)).astype(np.int64)
    if np.any(inv < 0) or np.any(inv > n_levels - 1):
        raise InputError(f"inventory must be in [0, {n_levels - 1}], got {inv.min()}..{inv.max()}")
    table = stack_guardrails(specs, s)
    # Ladder snapping compares every cell with every step: bound the working set by rows.
    chunk = max(1, _CELLS_PER_CHUNK // max(1, n_levels * t_len * table.ladder.shape[1]))
    if s > chunk:
        parts = [
            apply_guardrails(
                surface[i : i + chunk],
                GuardrailTable(*(a[i : i + chunk] for a in table)),
                inventory=inv[i : i + chunk],
            )
            for i in range(0, s, chunk)
        ]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    snapped = table.snap(surface)
    code = table.static_code(surface, snapped)
    rows = np.arange(s)
    hold = np.minimum(table.no_touch, t_len)
    if np.any(hold > 0):
        opening = snapped[rows, inv, 0]
        in_window = np.arange(t_len)[None, None, :] < hold[:, None, None]
        held = np.broadcast_to(opening[:, None, None], surface.shape)
        moved = in_window & ~np.isclose(held, snapped)
        snapped = np.where(in_window, held, snapped)
        code = np.where(moved, np.int8(GuardrailCode.NO_TOUCH), code)
    if np.any(np.isfinite(table.change)):
        for t in range(1, t_len):
            banded = table.within_band(snapped[:, :, t - 1], snapped[:, :, t])
            banded = np.where((t < hold)[:, None], snapped[:, :, t], banded)
            moved = ~np.isclose(banded, snapped[:, :, t], rtol=1e-12, atol=1e-12)
            snapped[:, :, t] = banded
            code[:, :, t] = np.where(moved, np.int8(GuardrailCode.MAX_CHANGE), code[:, :, t])
    return snapped, code.astype(np.int8)


class ServedState(NamedTuple):
    """What the path guard remembers per row between served prices.

    Attributes:
        price: ``[S]`` last served price (NaN before the first).
        changes: ``[S]`` price changes served in the current window.
        period: ``[S]`` periods since the current window opened.
    """

    price: np.ndarray
    changes: np.ndarray
    period: np.ndarray


def initial_served_state(s: int) -> ServedState:
    """State for ``s`` rows at the opening of a window, before any price was served."""
    return ServedState(np.full(s, np.nan), np.zeros(s, np.int64), np.zeros(s, np.int64))


def guard_served(
    proposed: np.ndarray,
    state: ServedState,
    specs: GuardrailSpec | Sequence[GuardrailSpec] | GuardrailTable,
) -> tuple[np.ndarray, np.ndarray, ServedState]:
    """Guard the next served price of each row given what was served before.

    Rules, in order: static bounds and allowed values; hold during the no-touch periods;
    hold once ``max_changes_per_window`` changes were served; move at most
    ``max_change_pct`` % from the previous served price. A non-finite proposal holds the
    previous price (code ``HELD``).

    Args:
        proposed: ``[S]`` prices the policy wants to serve now.
        state: from :func:`initial_served_state` (new window) or the previous call.
        specs: one spec or one per row.

    Returns:
        ``(price [S], code [S] int8, next_state)``; call once per served period.

    Raises:
        InputError: a proposal is not finite before any price was served for that row.
    """
    proposed = np.asarray(proposed, dtype=np.float64)
    s = proposed.shape[0]
    first = np.isnan(state.price)
    finite = np.isfinite(proposed)
    if np.any(first & ~finite):
        raise InputError(
            f"{int(np.sum(first & ~finite))} row(s) propose a non-finite opening price; "
            "there is no previous price to hold"
        )
    table = stack_guardrails(specs, s)
    prev = state.price
    raw = np.where(finite, proposed, np.where(first, 0.0, prev))
    x = table.snap(raw)
    code = table.static_code(raw, x)
    code = np.where(finite, code, np.int8(GuardrailCode.HELD))
    has_prev = ~first
    # The previous price may predate a spec change; keep it only when still allowed.
    prev_filled = table.snap(np.where(has_prev, prev, x))
    wants_change = has_prev & ~np.isclose(x, prev_filled, rtol=1e-12, atol=1e-12)
    no_touch = has_prev & (state.period < table.no_touch)
    capped = has_prev & (table.cap >= 0) & (state.changes >= table.cap)
    banded = np.where(has_prev, table.within_band(prev_filled, x), x)
    out = banded
    code = np.where(wants_change & ~np.isclose(banded, x), np.int8(GuardrailCode.MAX_CHANGE), code)
    out = np.where(capped, prev_filled, out)
    code = np.where(wants_change & capped, np.int8(GuardrailCode.CHANGE_CAP), code)
    out = np.where(no_touch, prev_filled, out)
    code = np.where(wants_change & no_touch, np.int8(GuardrailCode.NO_TOUCH), code)
    price = out
    code = code.astype(np.int8)
    changed = ~np.isnan(state.price) & ~np.isclose(price, state.price, rtol=1e-12, atol=1e-12)
    nxt = ServedState(price, state.changes + changed, state.period + 1)
    return price, code, nxt


def guard_path(
    proposed: np.ndarray, specs: GuardrailSpec | Sequence[GuardrailSpec] | GuardrailTable
) -> tuple[np.ndarray, np.ndarray]:
    """Guard whole served sequences ``[S, T]`` of one window (see :func:`guard_served`).

    Returns:
        ``(served [S, T], code [S, T] int8)``.
    """
    proposed = np.asarray(proposed, dtype=np.float64)
    if proposed.ndim != 2:
        raise InputError(f"proposed must have shape [S, T], got {proposed.shape}")
    state = initial_served_state(proposed.shape[0])
    served = np.empty_like(proposed)
    codes = np.empty(proposed.shape, dtype=np.int8)
    for t in range(proposed.shape[1]):
        served[:, t], codes[:, t], state = guard_served(proposed[:, t], state, specs)
    return served, codes
