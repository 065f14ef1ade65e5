"""Guardrails: the operator's bounds, applied after the optimum and always winning.

A price leaves the policy only after these steps, in this order:

1. **static bounds** — clip to ``[lo, hi]`` with ``lo = max(floor, unit_cost unless
   allow_below_cost, MIN_PRICE)`` and ``hi = ceiling``;
2. **allowed values** — snap to the nearest step of the ``ladder`` (only steps inside
   ``[lo, hi]`` that carry the ``price_ending`` when both are set), or, without a ladder, round
   down to the ``price_ending`` (``x.99``), up when rounding down would cross ``lo``;
3. **time rules** — hold the opening price during the ``no_touch_periods`` after a window opens;
   move at most ``max_change_pct`` % from the previous price (to the allowed value nearest the
   optimum inside that band, else hold); change at most ``max_changes_per_window`` times.

On a published surface ``p(n, t)`` the time rules run along ``t`` at each stock level ``n``
(:func:`apply_guardrails`); on the sequence of prices actually served (stock moving with
sales) they run on the path (:func:`guard_served`, :func:`guard_path`), which also enforces the
change cap. Every served price carries a :class:`GuardrailCode` saying which rule bound it.

The operator's amounts (floor, ceiling, cost, ladder steps, ending) compare by the money
rule of :mod:`pricing.money`: at the cent, as written. A floor of ``20.004`` and a ceiling
of ``20.0`` are the same price; ``20.01`` over ``20.0`` is a contradiction.

Contradictory bounds (cost above the ceiling, a ladder with no step inside the bounds, an
ending that never falls inside them) raise :class:`~pricing.exceptions.GuardrailError` when the
spec is built, so an impossible spec never reaches a terminal. A non-finite proposal on a
surface raises :class:`~pricing.exceptions.InputError`; on a served path it holds the previous
served price.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

import numpy as np

from pricing.exceptions import GuardrailError, InputError
from pricing.money import compare_money, to_minor

__all__ = [
    "GRID_SIZE",
    "MIN_PRICE",
    "TRUST",
    "GuardrailCode",
    "GuardrailSpec",
    "GuardrailTable",
    "ServedState",
    "apply_guardrails",
    "candidate_ladder",
    "guard_path",
    "guard_served",
    "initial_served_state",
    "price_grid",
    "stack_guardrails",
    "trust_region",
]

MIN_PRICE = 0.01
"""No price below one cent ever leaves the policy."""

_TOL = 1e-9
_CELLS_PER_CHUNK = 4_000_000


class GuardrailCode(IntEnum):
    """Which guardrail bound a served price (0 = the optimum passed unchanged)."""

    NONE = 0
    FLOOR = 1
    CEILING = 2
    COST = 3
    LADDER = 4
    ENDING = 5
    MAX_CHANGE = 6
    CHANGE_CAP = 7
    NO_TOUCH = 8
    HELD = 9
    """The proposal was not a finite number; the previous served price was held."""


@dataclass(frozen=True)
class GuardrailSpec:
    """One SKU's guardrails (mirrors ``service.config.models.Guardrails``, in periods).

    Attributes:
        floor: lowest price, ``None`` for none.
        ceiling: highest price, ``None`` for none.
        ladder: allowed prices (any order; duplicates ignored), ``None`` for any price.
        price_ending: cents every price ends with, e.g. ``0.99``; ``None`` for any.
        max_change_pct: largest move between consecutive prices, percent of the previous one.
        max_changes_per_window: cap on the number of price changes in one drop window.
        no_touch_periods: periods after a window opens during which the opening price holds.
        allow_below_cost: allow prices under ``unit_cost`` (clearance).
        unit_cost: cost of one unit; the never-below-cost bound.

    Raises:
        GuardrailError: a field is out of range or no price satisfies the bounds together.

    Example:
        >>> spec = GuardrailSpec(floor=20.0, ceiling=60.0, price_ending=0.99)
        >>> spec.bounds
        (20.0, 60.0)
    """

    floor: float | None = None
    ceiling: float | None = None
    ladder: tuple[float, ...] | None = None
    price_ending: float | None = None
    max_change_pct: float | None = None
    max_changes_per_window: int | None = None
    no_touch_periods: int = 0
    allow_below_cost: bool = False
    unit_cost: float = 0.0

    def __post_init__(self) -> None:
        def finite(name: str, value: float | None, *, lo: float = 0.0) -> None:
            if value is not None and not (math.isfinite(value) and value >= lo):
                raise GuardrailError(f"{name} must be a finite number >= {lo}, got {value!r}")

        finite("floor", self.floor)
        finite("ceiling", self.ceiling)
        finite("unit_cost", self.unit_cost)
        if self.price_ending is not None and not (0.0 <= self.price_ending < 1.0):
            raise GuardrailError(
                f"price_ending must be in [0, 1) (the cents, e.g. 0.99), got {self.price_ending!r}"
            )
        if self.max_change_pct is not None and not (
            math.isfinite(self.max_change_pct) and self.max_change_pct > 0.0
        ):
            raise GuardrailError(f"max_change_pct must be > 0, got {self.max_change_pct!r}")
        if self.max_changes_per_window is not None and self.max_changes_per_window < 0:
            raise GuardrailError(
                f"max_changes_per_window must be >= 0, got {self.max_changes_per_window!r}"
            )
        if self.no_touch_periods < 0:
            raise GuardrailError(f"no_touch_periods must be >= 0, got {self.no_touch_periods!r}")
        if self.ladder is not None:
            steps = tuple(float(p) for p in self.ladder)
            if not steps or not all(math.isfinite(p) and p > 0 for p in steps):
                raise GuardrailError(
                    f"ladder must list finite prices > 0, got {list(self.ladder)!r}"
                )
            object.__setattr__(self, "ladder", tuple(sorted(set(steps))))
        lo, hi = self._raw_bounds
        if compare_money(lo, hi) > 0:
            what = "unit_cost" if self._cost_binds else "floor"
            raise GuardrailError(
                f"no price satisfies the bounds: {what} {lo} is above ceiling {hi} "
                "(raise the ceiling, lower the floor, or set allow_below_cost)"
            )
        if self.ladder is not None and self.allowed_ladder.size == 0:
            raise GuardrailError(
                f"no ladder step lies in [{lo}, {hi}]"
                + (f" with ending {self.price_ending}" if self.price_ending is not None else "")
                + f", ladder {list(self.ladder)}"
            )
        if self.ladder is None and self.price_ending is not None:
            # The first price at or above lo carrying the ending, in whole cents.
            lo_c, end_c = to_minor(lo), to_minor(self.price_ending)
            first = (lo_c + (end_c - lo_c) % 100) / 100
            if compare_money(first, hi) > 0:
                raise GuardrailError(
                    f"no price ending in {self.price_ending} lies in [{lo}, {hi}]: "
                    "widen the bounds or change the ending"
                )

    @property
    def _cost_binds(self) -> bool:
        return not self.allow_below_cost and self.unit_cost > (self.floor or 0.0)

    @property
    def _raw_bounds(self) -> tuple[float, float]:
        lo = max(self.floor or 0.0, MIN_PRICE)
        if not self.allow_below_cost:
            lo = max(lo, self.unit_cost)
        hi = self.ceiling if self.ceiling is not None else math.inf
        return lo, hi

    @property
    def bounds(self) -> tuple[float, float]:
        """``(lo, hi)``: the lowest and highest price this spec lets through.

        A floor a hair above the ceiling as floats but the same cent (``20.004`` and
        ``20.0``, :mod:`pricing.money`) leaves one price, the floor: ``hi`` is raised to it.
        """
        lo, hi = self._raw_bounds
        if lo > hi and compare_money(lo, hi) == 0:
            hi = lo
        return lo, hi

    @property
    def allowed_ladder(self) -> np.ndarray:
        """Ladder steps inside the bounds (with the ending when one is set), ascending."""
        if self.ladder is None:
            return np.empty(0)
        lo, hi = self.bounds
        steps = np.asarray(self.ladder, dtype=np.float64)
        ending = None if self.price_ending is None else to_minor(self.price_ending)
        keep = np.array(
            [
                compare_money(lo, p) <= 0
                and compare_money(p, hi) <= 0
                and (ending is None or to_minor(p) % 100 == ending)
                for p in self.ladder
            ],
            dtype=bool,
        )
        return steps[keep]

    def snap(self, price: np.ndarray, mode: str = "nearest") -> np.ndarray:
        """Allowed value for each price, after clipping to the bounds.

        Args:
            price: finite prices (any shape).
            mode: ``"nearest"`` (ladder: nearest step, ties down; ending: round down, up if
                that crosses the floor), ``"down"`` (largest allowed value ≤ price, else the
                smallest allowed) or ``"up"`` (smallest allowed ≥ price, else the largest).

        Returns:
            Prices that satisfy every static bound of this spec.
        """
        x = np.asarray(price, dtype=np.float64)
        return stack_guardrails(self, 1).snap(x[None, ...], mode)[0]

    def static_code(self, proposed: np.ndarray, snapped: np.ndarray) -> np.ndarray:
        """Code of the static rule that moved each proposal (NONE where it passed)."""
        table = stack_guardrails(self, 1)
        return table.static_code(np.asarray(proposed)[None, ...], np.asarray(snapped)[None, ...])[0]

    def within_band(self, previous: np.ndarray, target: np.ndarray) -> np.ndarray:
        """The allowed value nearest ``target`` within ``max_change_pct`` of ``previous``."""
        table = stack_guardrails(self, 1)
        prev = np.asarray(previous, dtype=np.float64)[None, ...]
        return table.within_band(prev, np.asarray(target, dtype=np.float64)[None, ...])[0]


class GuardrailTable(NamedTuple):
    """Guardrails of ``R`` rows as arrays, so every rule runs vectorised over rows.

    Build with :func:`stack_guardrails`. Array arguments of the methods have the row axis
    first (``[R, ...]``).

    Attributes:
        lo, hi: ``[R]`` static bounds (``hi`` may be ``inf``).
        cost_binds: ``[R]`` True where the unit cost (not the floor) sets ``lo``.
        ladder: ``[R, L]`` allowed ladder steps ascending, NaN-padded.
        has_ladder: ``[R]`` False: any price (or any with the ending).
        ending: ``[R]`` price ending, NaN for none.
        change: ``[R]`` max change as a fraction of the previous price, NaN for none.
        cap: ``[R]`` max changes per window, -1 for none.
        no_touch: ``[R]`` no-touch periods.
    """

    lo: np.ndarray
    hi: np.ndarray
    cost_binds: np.ndarray
    ladder: np.ndarray
    has_ladder: np.ndarray
    ending: np.ndarray
    change: np.ndarray
    cap: np.ndarray
    no_touch: np.ndarray

    @property
    def rows(self) -> int:
        """Number of rows."""
        return int(self.lo.shape[0])

    @staticmethod
    def _b(a: np.ndarray, ndim: int) -> np.ndarray:
        return a.reshape(a.shape[:1] + (1,) * (ndim - 1))

    def snap(self, price: np.ndarray, mode: str = "nearest") -> np.ndarray:
        """Allowed value for each price ``[R, ...]`` (see :meth:`GuardrailSpec.snap`)."""
        x = np.asarray(price, dtype=np.float64)
        nd = x.ndim
        lo, hi = self._b(self.lo, nd), self._b(self.hi, nd)
        x = np.clip(x, lo, hi)
        out = x
        if np.any(np.isfinite(self.ending)):
            e = self._b(self.ending, nd)
            ee = np.where(np.isfinite(e), e, 0.0)
            down = np.floor(x - ee + _TOL) + ee
            up = np.ceil(x - ee - _TOL) + ee
            down = np.where(down < lo - _TOL, up, down)
            up = np.where(up > hi + _TOL, down, up)
            out = np.where(np.isfinite(e), up if mode == "up" else down, out)
        if self.has_ladder.any():
            lad = self.ladder.reshape(
                self.ladder.shape[:1] + (1,) * (nd - 1) + self.ladder.shape[1:]
            )
            xs = x[..., None]
            valid = np.isfinite(lad)
            first = np.min(np.where(valid, lad, np.inf), axis=-1)
            last = np.max(np.where(valid, lad, -np.inf), axis=-1)
            below = np.max(np.where(valid & (lad <= xs + _TOL), lad, -np.inf), axis=-1)
            above = np.min(np.where(valid & (lad >= xs - _TOL), lad, np.inf), axis=-1)
            below = np.where(np.isfinite(below), below, first)  # nothing below: go up
            above = np.where(np.isfinite(above), above, last)  # nothing above: go down
            if mode == "down":
                lad_val = below
            elif mode == "up":
                lad_val = above
            else:
                lad_val = np.where(x - below <= above - x + _TOL, below, above)
            out = np.where(self._b(self.has_ladder, nd), lad_val, out)
        return out

    def static_code(self, proposed: np.ndarray, snapped: np.ndarray) -> np.ndarray:
        """Code of the static rule that moved each proposal ``[R, ...]``."""
        nd = np.ndim(proposed)
        lo, hi = self._b(self.lo, nd), self._b(self.hi, nd)
        moved = ~np.isclose(snapped, proposed, rtol=1e-9, atol=1e-9)
        shape_code = np.where(
            self._b(self.has_ladder, nd), GuardrailCode.LADDER, GuardrailCode.ENDING
        )
        code = np.where(moved, shape_code, GuardrailCode.NONE)
        low_code = np.where(self._b(self.cost_binds, nd), GuardrailCode.COST, GuardrailCode.FLOOR)
        code = np.where(moved & (proposed < lo - _TOL), low_code, code)
        code = np.where(moved & (proposed > hi + _TOL), GuardrailCode.CEILING, code)
        return code.astype(np.int8)

    def within_band(self, previous: np.ndarray, target: np.ndarray) -> np.ndarray:
        """The allowed value nearest ``target`` within the max change of ``previous``.

        ``previous`` must itself be allowed; when no other allowed value lies in the band
        the previous price is returned (holding always satisfies the band). Rows without a
        max change get ``target``.
        """
        nd = np.ndim(target)
        r = self._b(self.change, nd)
        has = np.isfinite(r)
        r = np.where(has, r, 0.0)
        band_lo = previous * (1.0 - r)
        band_hi = previous * (1.0 + r)
        y = np.clip(target, band_lo, band_hi)
        toward = np.where(y > previous, self.snap(y, "down"), self.snap(y, "up"))
        ok = (toward >= band_lo - 1e-7 * previous) & (toward <= band_hi + 1e-7 * previous)
        return np.where(has, np.where(ok, toward, previous), target)


def stack_guardrails(
    specs: GuardrailSpec | Sequence[GuardrailSpec] | GuardrailTable, rows: int
) -> GuardrailTable:
    """Arrays of the guardrails of ``rows`` rows (one spec for all, or one per row).

    Build it once per drop and pass it to :func:`apply_guardrails` / :func:`guard_served`
    on hot loops.

    Raises:
        InputError: a sequence whose length is not ``rows``.
    """
    if isinstance(specs, GuardrailTable):
        if specs.rows == rows:
            return specs
        if specs.rows == 1:
            return GuardrailTable(*(np.repeat(a, rows, axis=0) for a in specs))
        raise InputError(f"guardrail table has {specs.rows} rows, expected {rows}")
    if isinstance(specs, GuardrailSpec):
        return stack_guardrails(stack_guardrails([specs], 1), rows)
    if len(specs) != rows:
        raise InputError(f"give one GuardrailSpec or one per row ({rows}), got {len(specs)}")
    bounds = [sp.bounds for sp in specs]
    ladders = [sp.allowed_ladder for sp in specs]
    width = max([lad.size for lad in ladders] + [1])
    ladder = np.full((rows, width), np.nan)
    for i, lad in enumerate(ladders):
        ladder[i, : lad.size] = lad
    return GuardrailTable(
        lo=np.array([b[0] for b in bounds], dtype=np.float64),
        hi=np.array([b[1] for b in bounds], dtype=np.float64),
        cost_binds=np.array([sp._cost_binds for sp in specs], dtype=bool),
        ladder=ladder,
        has_ladder=np.array([sp.ladder is not None for sp in specs], dtype=bool),
        ending=np.array([np.nan if sp.price_ending is None else sp.price_ending for sp in specs]),
        change=np.array(
            [np.nan if sp.max_change_pct is None else sp.max_change_pct / 100.0 for sp in specs]
        ),
        cap=np.array(
            [
                -1 if sp.max_changes_per_window is None else sp.max_changes_per_window
                for sp in specs
            ],
            dtype=np.int64,
        ),
        no_touch=np.array([sp.no_touch_periods for sp in specs], dtype=np.int64),
    )


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


def candidate_ladder(
    spec: GuardrailSpec,
    reference_price: float,
    *,
    size: int = 16,
    spread: tuple[float, float] = (0.5, 2.0),
) -> np.ndarray:
    """Price ladder for the DP that already satisfies the spec's static bounds.

    The operator's ladder when one is set (steps inside the bounds); otherwise ``size``
    geometrically spaced prices from ``spread[0]·reference`` to ``spread[1]·reference``,
    clipped to the bounds and snapped to the price ending (duplicates removed). Solving the
    DP on this ladder means guardrails only bind through the time rules.

    Args:
        spec: the row's guardrails.
        reference_price: the list price (centre of the grid).
        size: number of grid prices when the spec has no ladder.
        spread: grid span as multiples of the reference price.

    Returns:
        Ascending allowed prices (at least one).
    """
    if spec.ladder is not None:
        return spec.allowed_ladder
    if not (math.isfinite(reference_price) and reference_price > 0):
        raise InputError(f"reference_price must be finite and > 0, got {reference_price!r}")
    grid = reference_price * np.geomspace(spread[0], spread[1], size)
    return np.unique(spec.snap(np.round(grid, 2)))


TRUST = 1.5
"""Offered prices stay within this factor of the prices a row has been seen at."""
GRID_SIZE = 24
"""Prices on each row's DP grid when the operator gives no ladder."""


def trust_region(spec: GuardrailSpec, seen_low: float, seen_high: float) -> tuple[float, float]:
    """The prices a row may be offered next: within ``TRUST`` of the prices it has been
    seen at (its list price before any), inside the guardrails' static bounds.

    The demand model is fitted where the data are; offering a price far outside them would
    trust an extrapolation (a log-linear curve carried to a 70 % markdown). Each re-solve can
    step a factor ``TRUST`` further, so a drop whose list price is far off still gets there
    in a few hours, led by its own sales.
    """
    lo_bound, hi_bound = spec.bounds
    lo = min(max(lo_bound, seen_low / TRUST), hi_bound)
    hi = max(min(hi_bound, seen_high * TRUST), lo)
    return lo, hi


def price_grid(
    spec: GuardrailSpec, low: float, high: float, *, size: int = GRID_SIZE
) -> np.ndarray:
    """``size`` prices from ``low`` to ``high`` (geometric), snapped to the guardrails.

    The operator's ladder when one is set. Snapping may merge neighbours; the result is
    padded back to ``size`` by repeating the top price (the solver allows repeats).
    """
    if spec.ladder is not None:
        prices = spec.allowed_ladder
    else:
        prices = np.unique(spec.snap(np.round(np.geomspace(low, high, size), 2)))
    prices = prices[:size]
    return np.pad(prices, (0, size - prices.size), mode="edge")
