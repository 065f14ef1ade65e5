"""Demand rates over a surface's horizon, a surface's expected revenue and sell-through,
and the elasticity under a new category prior."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from service.config.whatif.live import Evaluation, LiveRow

__all__ = ["evaluate_surface", "posterior_elasticity"]


def posterior_elasticity(
    beta: float,
    se: float | None,
    old_prior: tuple[float, float] | None,
    new_prior: tuple[float, float],
) -> float:
    """Swap the category prior under a Gaussian posterior (see the module docstring).

    Example:
        >>> round(posterior_elasticity(-2.0, 0.5, (-1.5, 1.0), (-1.5, 1.0)), 6)
        -2.0
    """
    mu1, tau1 = new_prior
    if se is None or not math.isfinite(se) or se <= 0:
        return mu1
    prec = 1.0 / se**2
    num = beta * prec
    if old_prior is not None:
        mu0, tau0 = old_prior
        prec -= 1.0 / tau0**2
        num -= mu0 / tau0**2
    if prec <= 1e-12:  # the data said nothing beyond the old prior
        return mu1
    return (num + mu1 / tau1**2) / (prec + 1.0 / tau1**2)


def _horizon_inputs(
    row: LiveRow, start: datetime, periods: int, period: timedelta
) -> tuple[np.ndarray, np.ndarray, float]:
    """Hours of day ``[T]``, the intensity the fit sees ``[T]`` and the rate scale.

    The intensity path is the one the surface was solved with when its record carries
    it (``explain.intensity_forecast``, one value per surface period; periods past its
    end hold the last value). Otherwise it is rebuilt from what the record does carry,
    ``intensity_now − intensity_mean`` (the index at solve time, centred as the fit
    was) held over the horizon: exact when the index is demand-driven (sales, velocity;
    the re-fit holds those at their usual level), and an upper bound while a creator
    announcement's part of it is still decaying.
    """
    explain = row.surface.explain or {}
    starts = [start + period * t for t in range(periods)]
    hours = np.array([ts.astimezone(UTC).hour for ts in starts])
    scale = (period / timedelta(hours=1)) / (getattr(row.fit, "period_hours", None) or 1.0)
    stored = explain.get("intensity_forecast")
    if isinstance(stored, list) and stored:
        path = np.asarray(stored, dtype=np.float64)
        origin = row.surface.period_start
        step = row.surface.period_seconds
        idx = [
            min(max(math.floor((ts - origin).total_seconds() / step), 0), path.size - 1)
            for ts in starts
        ]
        return hours, path[idx], scale
    centre = float(explain.get("intensity_mean", 0.0) or 0.0)
    return hours, np.full(periods, row.intensity_at_publish - centre), scale


def _rates(
    row: LiveRow,
    prices: np.ndarray,
    hours: np.ndarray,
    intensity: np.ndarray,
    scale: float,
    beta: float,
) -> np.ndarray:
    """Expected units per period ``[T, K]`` of the row at ``prices [K]``: the re-fit's own
    rates (:func:`service.drops.drop_rates`), so a preview with no change reproduces the
    published surface."""
    from service.drops import drop_rates

    fit, i = row.fit, row.fit_row
    assert fit is not None and i is not None
    rates = drop_rates(fit, [i], prices[None, :], intensity[None, :], hours, {i: beta})
    out: np.ndarray = rates[0] * scale
    return out


def evaluate_surface(
    price: np.ndarray,
    rate_of: Any,
    *,
    units: int,
    t0: int,
    unit_cost: float = 0.0,
    salvage: float = 0.0,
) -> Evaluation:
    """Expected revenue, units sold and sell-through of following ``price`` from (units, t0).

    Args:
        price: ``[N+1, T]`` surface (row = units left).
        rate_of: ``rate_of(prices [K]) -> [T, K]`` expected demand per period.
        units: units left now (rows above ``N`` use row ``N``).
        t0: current period (clamped to ``[0, T-1]``).
        unit_cost, salvage: for the expected profit and leftover value.

    Returns:
        ``expected_revenue``, ``expected_units_sold``, ``sell_through`` (of ``units``),
        ``expected_units_left`` and ``expected_value`` (revenue − cost·units + salvage·left).
    """
    from scipy.special import gammaln

    from pricing.policy import demand_truncation

    price = np.asarray(price, dtype=np.float64)
    rows, cols = price.shape
    t0 = min(max(t0, 0), cols - 1)
    n0 = max(0, int(units))
    table = price[np.minimum(np.arange(n0 + 1), rows - 1)]  # [n0+1, T]
    uniq = np.unique(table[:, t0:])
    rates_u = np.asarray(rate_of(uniq))  # [T, U]
    idx = np.searchsorted(uniq, table)
    pi = np.zeros(n0 + 1)
    pi[n0] = 1.0
    revenue = sold = 0.0
    d_max = demand_truncation(float(np.max(rates_u[t0:])) if rates_u.size else 0.0, max(n0, 1))
    d = np.arange(d_max + 1)
    n = np.arange(n0 + 1)
    for t in range(t0, cols):
        lam = rates_u[t, np.clip(idx[:, t], 0, uniq.size - 1)]  # [n0+1]
        with np.errstate(divide="ignore"):
            log_lam = np.where(lam > 0, np.log(np.maximum(lam, 1e-300)), -np.inf)
        logp = d[None, :] * log_lam[:, None] - lam[:, None] - gammaln(d + 1)[None, :]
        logp[:, 0] = -lam
        pmf = np.exp(logp)  # [n0+1, d_max+1]
        below = d[None, :] < n[:, None]
        p_below = np.where(below, pmf, 0.0)
        tail = np.clip(1.0 - p_below.sum(axis=1), 0.0, 1.0)
        e_sales = (p_below * d[None, :]).sum(axis=1) + n * tail
        revenue += float(np.sum(pi * table[:, t] * e_sales))
        sold += float(np.sum(pi * e_sales))
        nxt = np.zeros_like(pi)
        for k in range(min(d_max, n0) + 1):
            mass = pi[k:] * p_below[k:, k] if k < n0 + 1 else 0.0
            nxt[: n0 + 1 - k] += mass
        nxt[0] += float(np.sum(pi * tail))
        pi = nxt
    left = float(np.sum(pi * n))
    return Evaluation(
        expected_revenue=revenue,
        expected_units_sold=sold,
        sell_through=(sold / n0) if n0 else 0.0,
        expected_units_left=left,
        expected_value=revenue - unit_cost * sold + salvage * left,
        units_now=n0,
        period_now=t0,
    )
