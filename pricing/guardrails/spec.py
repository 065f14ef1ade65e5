"""The pricing core's guardrails: one SKU's :class:`GuardrailSpec` and a rows' table of them.

:class:`GuardrailSpec` is the shared declaration (:class:`~pricing.guardrails.rules.GuardrailRules`)
with the time rule in periods and the SKU's unit cost; :class:`GuardrailTable` holds many
specs as arrays so every static rule runs vectorised over rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple

import numpy as np
from pydantic import Field, ValidationError

from pricing.exceptions import GuardrailError, InputError
from pricing.guardrails.rules import (
    MIN_PRICE,
    FieldIssues,
    GuardrailCode,
    GuardrailRules,
    Money,
    Problem,
    guardrail_problems,
)
from pricing.money import compare_money, to_minor

__all__ = ["GuardrailSpec", "GuardrailTable", "stack_guardrails"]

_TOL = 1e-9


def _describe(err: ValidationError) -> str:
    """One line per problem of a failed spec: the field, what is allowed, what was given."""
    lines: list[str] = []
    for e in err.errors():
        cause = (e.get("ctx") or {}).get("error")
        if isinstance(cause, FieldIssues):
            lines += [msg for _, msg in cause.issues]
            continue
        where = ".".join(str(p) for p in e["loc"]) or "guardrails"
        lines.append(f"{where}: {e['msg']}, got {e.get('input')!r}")
    return "; ".join(lines)


class GuardrailSpec(GuardrailRules):
    """One SKU's guardrails: the shared rules, the no-touch time in periods, the unit cost.

    Attributes:
        floor, ceiling, ladder, price_ending, max_change_pct, max_changes_per_window,
        allow_below_cost: as in :class:`~pricing.guardrails.rules.GuardrailRules` (the
            fields an operator writes; a ladder is strictly ascending).
        no_touch_periods: periods after a window opens during which the opening price holds.
        unit_cost: cost of one unit; the never-below-cost bound.

    Raises:
        GuardrailError: a field is out of range or no price satisfies the bounds together.

    Example:
        >>> spec = GuardrailSpec(floor=20.0, ceiling=60.0, price_ending=0.99)
        >>> spec.bounds
        (20.0, 60.0)
    """

    no_touch_periods: int = Field(default=0, ge=0, strict=True)
    """Periods after a window opens during which the opening price holds."""
    unit_cost: Money = 0.0
    """Cost of one unit; the never-below-cost bound (unless ``allow_below_cost``)."""

    inherits: ClassVar[bool] = False

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as err:
            raise GuardrailError(_describe(err)) from None

    @classmethod
    def from_rules(
        cls, rules: GuardrailRules, *, unit_cost: float = 0.0, no_touch_periods: int = 0
    ) -> GuardrailSpec:
        """The spec of a config's or a scenario's guardrail block for one SKU.

        Raises:
            GuardrailError: the unit cost leaves no price inside the bounds.
        """
        return cls(**rules.rule_values(), unit_cost=unit_cost, no_touch_periods=no_touch_periods)

    def problems(self) -> list[Problem]:
        """The shared checks, with this SKU's unit cost in the lower bound."""
        return guardrail_problems(self, unit_cost=self.unit_cost)

    @property
    def cost_binds(self) -> bool:
        """Whether the unit cost (not the floor) sets the lowest price."""
        return not self.allow_below_cost and self.unit_cost > (self.floor or 0.0)

    @property
    def bounds(self) -> tuple[float, float]:
        """``(lo, hi)``: the lowest and highest price this spec lets through.

        A floor a hair above the ceiling as floats but the same cent (``20.004`` and
        ``20.0``, :mod:`pricing.money`) leaves one price, the floor: ``hi`` is raised to it.
        """
        lo = max(self.floor or 0.0, MIN_PRICE)
        if not self.allow_below_cost:
            lo = max(lo, self.unit_cost)
        hi = self.ceiling if self.ceiling is not None else np.inf
        if lo > hi and compare_money(lo, hi) == 0:
            hi = lo
        return lo, float(hi)

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
        return np.asarray(steps[keep])

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
        return np.asarray(stack_guardrails(self, 1).snap(x[None, ...], mode)[0])

    def static_code(self, proposed: np.ndarray, snapped: np.ndarray) -> np.ndarray:
        """Code of the static rule that moved each proposal (NONE where it passed)."""
        table = stack_guardrails(self, 1)
        code = table.static_code(np.asarray(proposed)[None, ...], np.asarray(snapped)[None, ...])
        return np.asarray(code[0])

    def within_band(self, previous: np.ndarray, target: np.ndarray) -> np.ndarray:
        """The allowed value nearest ``target`` within ``max_change_pct`` of ``previous``."""
        table = stack_guardrails(self, 1)
        prev = np.asarray(previous, dtype=np.float64)[None, ...]
        return np.asarray(
            table.within_band(prev, np.asarray(target, dtype=np.float64)[None, ...])[0]
        )


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
        cost_binds=np.array([sp.cost_binds for sp in specs], dtype=bool),
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
