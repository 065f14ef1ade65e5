"""The drop calendar: which window a surface prices, its periods, and each SKU's prices.

A drop sells in windows (``DropConfig.windows``) cut into periods of
``period_minutes``, aligned on the window start. A re-fit computed at ``now`` prices the
window open at ``now`` (from the current period to its end) or else the next one; a
preview, explain and the stock planner price the same horizon with the same guardrail
spec and price ladder, so they agree with what the re-fit publishes.

- :func:`drop_horizon`: the window and periods a surface computed at ``now`` covers;
- :func:`guardrail_spec`: a SKU's :class:`pricing.guardrails.GuardrailSpec` over it;
- :func:`sku_ladder`, :func:`grid_ladders`: the prices the DP chooses from, and
  :func:`trusted_ladder` those of them near the prices a fit has seen;
- :func:`drop_rates`: the demand a policy prices at those prices (the re-fit and preview);
- :func:`open_drops`, :func:`frozen_skus`: drops selling now, and the SKUs a re-fit
  leaves alone while their window is open.

Example:
    >>> horizon = drop_horizon(drop, now)  # doctest: +SKIP
    >>> horizon.periods, horizon.last_window  # doctest: +SKIP
    (4, False)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from service.config.models import ConfigBundle, DropConfig, DropWindow, Guardrails, SkuConfig

__all__ = [
    "LADDER_SIZE",
    "Horizon",
    "drop_horizon",
    "drop_rates",
    "frozen_skus",
    "grid_ladders",
    "guardrail_spec",
    "open_drops",
    "period_seconds",
    "sku_ladder",
    "trusted_ladder",
    "window_horizons",
]

LADDER_SIZE = 16
"""Grid prices per SKU when its guardrails give no ladder."""


@dataclass(frozen=True)
class Horizon:
    """The periods a surface covers: ``periods`` of ``period_seconds`` from ``start``.

    The period length is whole seconds everywhere in the service (a surface's
    ``period_seconds``, :func:`period_seconds` of a drop); Redis keeps a surface's clock
    in milliseconds only because the sale script reads Redis's clock that way
    (:mod:`service.store.cells`).
    """

    start: datetime
    periods: int
    period_seconds: int
    window: DropWindow
    last_window: bool

    def period_start(self, t: int) -> datetime:
        """Start of period ``t`` (0 is ``start``)."""
        return self.start + timedelta(seconds=self.period_seconds * t)

    def starts(self) -> list[datetime]:
        """Start of every period, in order."""
        return [self.period_start(t) for t in range(self.periods)]

    def period_at(self, now: datetime) -> int:
        """The period ``now`` falls in, clamped to ``[0, periods - 1]``."""
        t = math.floor((now - self.start).total_seconds() / self.period_seconds)
        return min(max(t, 0), self.periods - 1)

    @property
    def period_hours(self) -> float:
        """The period length in hours (the fit's rates are per hour)."""
        return self.period_seconds / 3600


def period_seconds(drop: DropConfig) -> int:
    """A drop's period length in seconds (the config says ``period_minutes``)."""
    return int(drop.period_minutes) * 60


def _periods_between(start: datetime, end: datetime, seconds: int) -> int:
    """Periods of ``seconds`` from ``start`` to ``end``, a last partial one counted."""
    return max(1, math.ceil((end - start).total_seconds() / seconds))


def drop_horizon(drop: DropConfig, now: datetime) -> Horizon | None:
    """The window a surface computed at ``now`` prices: the open one (from the current
    period to its end) or else the next one (whole); ``None`` when all have closed.

    Periods are aligned on the window start (:func:`period_seconds` each); a last
    partial period counts as a period.
    """
    step = period_seconds(drop)
    for i, w in enumerate(drop.windows):
        if now >= w.end:
            continue
        start = w.start
        if now > w.start:
            elapsed = math.floor((now - w.start).total_seconds() / step)
            start = w.start + timedelta(seconds=step * elapsed)
        periods = _periods_between(start, w.end, step)
        return Horizon(start, periods, step, w, i == len(drop.windows) - 1)
    return None


def window_horizons(drop: DropConfig) -> list[Horizon]:
    """Every window of the drop as a whole horizon, in order (the stock planner's)."""
    step = period_seconds(drop)
    last = len(drop.windows) - 1
    return [
        Horizon(w.start, _periods_between(w.start, w.end, step), step, w, i == last)
        for i, w in enumerate(drop.windows)
    ]


def guardrail_spec(rails: Guardrails, sku: SkuConfig, drop: DropConfig, horizon: Horizon) -> Any:
    """:class:`pricing.guardrails.GuardrailSpec` for one SKU over one horizon.

    The no-touch minutes count from the window's opening, so a surface that starts
    later in an open window holds only the no-touch periods it still covers.
    """
    from pricing.guardrails import GuardrailSpec

    no_touch_end = horizon.window.start + timedelta(minutes=rails.no_touch_minutes)
    no_touch = max(
        0, math.ceil((no_touch_end - horizon.start).total_seconds() / horizon.period_seconds)
    )
    return GuardrailSpec.from_rules(
        rails, no_touch_periods=min(no_touch, horizon.periods), unit_cost=sku.unit_cost
    )


def sku_ladder(spec: Any, rails: Guardrails, sku: SkuConfig, size: int = LADDER_SIZE) -> np.ndarray:
    """The prices the DP chooses from: the guardrail ladder, else a geometric grid
    between floor and ceiling (0.5x and 2x the list price where unset)."""
    from pricing.guardrails import candidate_ladder

    lo = rails.floor if rails.floor is not None else 0.5 * sku.list_price
    hi = rails.ceiling if rails.ceiling is not None else 2.0 * sku.list_price
    spread = (lo / sku.list_price, max(hi, lo) / sku.list_price)
    return np.asarray(candidate_ladder(spec, sku.list_price, size=size, spread=spread))


def trusted_ladder(ladder: np.ndarray, spec: Any, fit: Any, row: int, size: int) -> np.ndarray:
    """The row's ladder prices within the trust region around the prices its fit has seen,
    padded to ``size`` by repeating the top one (the solver allows repeats).

    A fit knows its demand curve only where the row sold (:func:`~pricing.guardrails.trust_region`,
    as the simulator's engine prices); each re-fit may step a factor ``TRUST`` further. Where no
    ladder price lies inside, the one nearest to it is kept. Fits saved without their price
    ranges keep the whole ladder.
    """
    from pricing.guardrails import trust_region

    seen = getattr(fit, "log_price_range", None)
    if seen is not None and np.all(np.isfinite(seen[row])):
        lo, hi = trust_region(spec, *np.exp(seen[row]).tolist())
        inside = ladder[(ladder >= lo - 1e-9) & (ladder <= hi + 1e-9)]
        if inside.size == 0:
            gap = np.maximum(lo - ladder, ladder - hi)
            inside = ladder[[int(np.argmin(gap))]]
        ladder = inside
    return np.pad(ladder, (0, size - len(ladder)), mode="edge")


def drop_rates(
    fit: Any,
    rows: Sequence[int],
    prices: np.ndarray,
    intensity: np.ndarray,
    hours: np.ndarray,
    replace: Mapping[int, float],
) -> np.ndarray:
    """Posterior expected units per fit period ``[len(rows), T, K]`` for the given rows.

    Rows in ``replace`` use the replacement elasticity; the fit's ``x = log(p/p_ref)``
    is centred at the row's reference price, so the level there is kept.
    """
    from pricing.guardrails import POLICY_EXTRAPOLATION
    from pricing.model import DemandParams

    s_all = len(fit.keys)
    full_prices = np.ones((s_all, prices.shape[1]))
    full_prices[list(rows)] = prices
    full_int = np.zeros((s_all, intensity.shape[1]))
    full_int[list(rows)] = intensity
    params = fit.params
    if replace:
        beta = np.array(params.elasticity, dtype=float, copy=True)
        for i, value in replace.items():
            beta[i] = value
        params = DemandParams(params.alpha, beta, params.intensity_lift, params.intensity_shift)
    # The posterior expected demand (the same rates the simulator's engine prices):
    # E[λ] over the fit's Laplace posterior, not the plug-in λ(θ̂).
    with np.errstate(over="ignore", invalid="ignore"):
        rates = np.asarray(
            fit.posterior_rates(
                full_prices,
                intensity=full_int,
                hours=hours,
                params=params,
                extrapolation=POLICY_EXTRAPOLATION,
            )
        )
    return rates[list(rows)].astype(np.float64)


def grid_ladders(
    specs: Sequence[Any],
    rails: Sequence[Guardrails],
    skus: Sequence[SkuConfig],
    size: int = LADDER_SIZE,
) -> np.ndarray:
    """:func:`sku_ladder` for many SKUs without a guardrail ladder at once: ``[n, size]``.

    The same geometric grid between floor and ceiling (0.5x and 2x the list price
    where unset) as :func:`pricing.guardrails.candidate_ladder`, snapped to each
    spec's bounds and price ending with one
    :func:`~pricing.guardrails.stack_guardrails` table. Rows may repeat a price (the
    solver allows it).
    """
    list_price = np.array([s.list_price for s in skus], dtype=float)
    lo = np.array([r.floor if r.floor is not None else 0.5 * s.list_price
                   for r, s in zip(rails, skus, strict=True)])  # fmt: skip
    hi = np.array([r.ceiling if r.ceiling is not None else 2.0 * s.list_price
                   for r, s in zip(rails, skus, strict=True)])  # fmt: skip
    hi = np.maximum(hi, lo)
    frac = np.linspace(0.0, 1.0, size)[None, :]
    grid = list_price[:, None] * np.exp(
        np.log(lo / list_price)[:, None] * (1 - frac) + np.log(hi / list_price)[:, None] * frac
    )
    from pricing.guardrails import stack_guardrails

    return np.asarray(stack_guardrails(list(specs), len(specs)).snap(np.round(grid, 2)))


def open_drops(bundle: ConfigBundle, now: datetime) -> list[DropConfig]:
    """Drops with a window open at ``now`` (``start <= now < end``)."""
    return [d for d in bundle.drops if any(w.start <= now < w.end for w in d.windows)]


def frozen_skus(bundle: ConfigBundle, now: datetime) -> frozenset[str]:
    """SKUs a re-fit at ``now`` must not touch: those of open drops without
    ``refit_during_window``."""
    return frozenset(
        s.sku for d in open_drops(bundle, now) if not d.refit_during_window for s in d.skus
    )
