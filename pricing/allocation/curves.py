"""What ``n`` units are worth in a slot: the engine's DP value, sales and revenue for every ``n``.

See :mod:`pricing.allocation` for the objective. Also the demand inputs of a plan: the
cold-start prior rates and the intensity path with planned announcements.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from pricing.exceptions import InputError
from pricing.policy import demand_truncation, solve_surfaces

__all__ = ["ValueCurves", "planned_intensity", "prior_rates", "value_curves"]


class ValueCurves(NamedTuple):
    """Expected outcomes of placing ``n = 0..N`` units in each of ``J`` slots.

    Attributes:
        value: ``[J, N+1]`` the objective ``f_j(n)``: revenue net of returns, plus salvage
            of unsold and returned units, minus unit and transfer costs.
        revenue: ``[J, N+1]`` expected revenue net of refunded returns.
        sold: ``[J, N+1]`` expected units sold (before returns).
        price: ``[J, N+1]`` the policy's opening price with ``n`` units (``n = 0`` repeats
            ``n = 1``).
    """

    value: np.ndarray
    revenue: np.ndarray
    sold: np.ndarray
    price: np.ndarray


# ------------------------------------------------------------------ demand inputs


def planned_intensity(
    current: float | Sequence[float] | np.ndarray,
    hours_ahead: np.ndarray | Sequence[float],
    half_life: float,
    announcements: Sequence[tuple[float, float]] = (),
) -> np.ndarray:
    """The intensity path with planned announcements on top of today's decaying index.

    .. math::

        \\hat I(t) = I_{now}\\,2^{-t/h} + \\sum_e g_e\\,2^{-(t - t_e)/h}\\,1[t \\ge t_e]

    Each announcement is an event of size ``g_e`` at ``t_e`` hours from now, decaying with
    the same half-life as the index (:func:`pricing.intensity.forecast_intensity` for each).

    Args:
        current: intensity now, scalar or ``[S]``.
        hours_ahead: ``[T]`` offsets in hours of each period from now (≥ 0).
        half_life: hours (> 0).
        announcements: ``(hours_from_now, size)`` pairs, ``size ≥ 0``.

    Returns:
        ``[S, T]`` intensity path.

    Raises:
        InputError: a negative size or time, or what ``forecast_intensity`` rejects.

    Example:
        >>> planned_intensity(0.0, [0.0, 1.0, 2.0], 1.0, [(1.0, 2.0)]).tolist()
        [[0.0, 2.0, 1.0]]
    """
    from pricing.intensity import forecast_intensity

    offsets = np.asarray(hours_ahead, dtype=float)
    path = forecast_intensity(current, offsets, half_life)
    for at, size in announcements:
        if not (math.isfinite(at) and math.isfinite(size) and at >= 0 and size >= 0):
            raise InputError(
                f"an announcement needs hours_from_now >= 0 and size >= 0, got ({at}, {size})"
            )
        after = offsets >= at
        lift = forecast_intensity(size, np.maximum(offsets - at, 0.0), half_life)[0]
        path = path + np.where(after, lift, 0.0)[None, :]
    return path


def prior_rates(
    prices: np.ndarray,
    list_price: np.ndarray,
    level: np.ndarray,
    *,
    elasticity_mean: np.ndarray,
    elasticity_sd: np.ndarray,
    periods: int,
    intensity: np.ndarray | None = None,
    level_sd: float = 1.0,
    lift: float = 0.25,
) -> np.ndarray:
    """Cold-start expected demand ``[S, T, K]`` from category priors and a level guess.

    The prior expected demand the engine prices before any sale (:mod:`pricing.engine`):
    ``log λ = log L + β x + γ I`` with ``x = log(p / p_list)``, the level ``log L`` and the
    elasticity ``β`` log-normal / normal around their guesses, so

    .. math:: E[λ] = L\\,e^{μ_β x + γ I}\\,\\exp\\big(\\tfrac12(σ_L^2 + σ_β^2 x^2)\\big)

    where ``L`` is the median level (the engine's neutral guess lowers the mean by half
    the log variance, so passing ``mean · e^{−σ_L²/2}`` keeps the level's mean at ``mean``).

    Args:
        prices: ``[S, K]`` ladder per row.
        list_price: ``[S]`` reference (list) price.
        level: ``[S]`` median units per period at list price (> 0).
        elasticity_mean, elasticity_sd: ``[S]`` category prior of ``β``.
        periods: ``T``.
        intensity: ``[S, T]`` intensity path, or ``None`` (0).
        level_sd: sd of the log level.
        lift: log-demand lift per unit of intensity.

    Returns:
        ``[S, T, K]`` rates.
    """
    lad = np.asarray(prices, dtype=float)
    s = lad.shape[0]
    lvl = np.broadcast_to(np.asarray(level, dtype=float), (s,))
    if np.any(~np.isfinite(lvl) | (lvl <= 0)):
        raise InputError(f"level must be > 0 units per period, got {lvl[lvl <= 0][:5].tolist()}")
    x = np.log(lad / np.broadcast_to(np.asarray(list_price, dtype=float), (s,))[:, None])
    mean = np.broadcast_to(np.asarray(elasticity_mean, dtype=float), (s,))[:, None]
    sd = np.broadcast_to(np.asarray(elasticity_sd, dtype=float), (s,))[:, None]
    log_rate = np.log(lvl)[:, None] + mean * x + 0.5 * (level_sd**2 + (sd * x) ** 2)  # [S, K]
    path = np.zeros((s, periods)) if intensity is None else np.asarray(intensity, dtype=float)
    if path.shape != (s, periods):
        raise InputError(f"intensity must have shape [S={s}, T={periods}], got {path.shape}")
    return np.asarray(np.exp(log_rate[:, None, :] + lift * path[:, :, None]))


# ------------------------------------------------------------------ value of n units


def _rows(x: float | np.ndarray, j: int, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if arr.ndim == 0:
        arr = np.full(j, float(arr))
    if arr.shape != (j,) or not np.all(np.isfinite(arr)):
        raise InputError(f"{name} must be a finite scalar or shape [J]=({j},), got {arr!r}")
    return arr


def _evaluate_policy(
    rates: np.ndarray, price_index: np.ndarray, prices: np.ndarray, n_max: int
) -> tuple[np.ndarray, np.ndarray]:
    """Expected units sold and gross revenue ``[J, N+1]`` of the policy from ``t = 0``.

    The same recursion as the DP with the price fixed by ``price_index``:
    ``W(n, t) = Σ_d P(D = d) · (g(min(d, n)) + W(n − min(d, n), t + 1))``, ``W(·, T) = 0``.
    """
    from scipy.stats import poisson

    j_len, t_len, _ = rates.shape
    d_max = demand_truncation(float(rates.max()), n_max, tail=1e-10)
    n = np.arange(n_max + 1)
    d = np.arange(d_max + 1)
    take = np.minimum(d[None, :], n[:, None])  # [N+1, D+1] units sold
    left = n[:, None] - take
    sold = np.zeros((j_len, n_max + 1))
    revenue = np.zeros((j_len, n_max + 1))
    rows = np.arange(j_len)[:, None, None]
    for t in range(t_len - 1, -1, -1):
        k = price_index[:, :, t]  # [J, N+1]
        lam = np.take_along_axis(rates[:, t, :], k, axis=1)
        price = np.take_along_axis(prices, k, axis=1)
        pmf = poisson.pmf(d[None, None, :], lam[..., None])  # [J, N+1, D+1]
        # Lump the truncated tail on d_max: exact when d_max >= n (it sells out either way).
        pmf[..., -1] += np.clip(1.0 - pmf.sum(axis=-1), 0.0, None)
        sold = np.einsum("jnd,nd->jn", pmf, take) + np.einsum(
            "jnd,jnd->jn", pmf, sold[rows, left[None]]
        )
        revenue = price * np.einsum("jnd,nd->jn", pmf, take) + np.einsum(
            "jnd,jnd->jn", pmf, revenue[rows, left[None]]
        )
    return sold, revenue


def value_curves(
    rates: np.ndarray,
    prices: np.ndarray,
    max_units: int | np.ndarray,
    *,
    salvage: float | np.ndarray = 0.0,
    unit_cost: float | np.ndarray = 0.0,
    pricing_cost: float | np.ndarray = 0.0,
    transfer_cost: float | np.ndarray = 0.0,
    on_hand: int | np.ndarray | None = None,
    returns_rate: float | np.ndarray = 0.0,
) -> ValueCurves:
    """Expected value of placing ``n = 0..N`` units in each slot, under the engine's DP.

    One :func:`~pricing.policy.solve_surfaces` call prices every slot; its value function
    at ``t = 0`` is ``V(n) = E[(p − c_p) S + s (n − S)]`` under the optimal policy. The
    policy's expected sales ``S(n)`` are evaluated exactly with its own price index, which
    gives the gross revenue ``R(n) = V(n) + c_p S(n) − s (n − S(n))`` and the sell-through.

    Args:
        rates: ``[J, T, K]`` expected demand per period at each ladder price.
        prices: ``[J, K]`` ladders.
        max_units: largest ``n`` of every slot (int) or ``[J]``; the curves are padded to
            the largest (rows beyond a slot's own are valid values for that stock).
        salvage: value of a unit left unsold (or returned), scalar or ``[J]``.
        unit_cost: cost of each unit placed, scalar or ``[J]``.
        pricing_cost: cost per sale the engine's DP prices with (the unit cost on
            ``objective: profit`` drops, 0 on revenue drops), scalar or ``[J]``.
        transfer_cost: cost per unit shipped into the slot's market beyond ``on_hand``.
        on_hand: units the slot's market already holds (``None``: 0, every unit shipped).
        returns_rate: share of sold units returned, refunded and recovered at salvage.

    Returns:
        :class:`ValueCurves`.

    Raises:
        InputError: shapes disagree or a cost/rate is out of range.

    Example:
        >>> ladder = np.array([[8.0, 10.0, 12.0]])
        >>> rates = np.broadcast_to(0.4 * np.exp(-0.1 * ladder)[:, None, :], (1, 12, 3))
        >>> curves = value_curves(rates, ladder, 10, unit_cost=3.0)
        >>> curves.value.shape
        (1, 11)
    """
    r = np.asarray(rates, dtype=float)
    p = np.asarray(prices, dtype=float)
    if r.ndim != 3 or p.shape != (r.shape[0], r.shape[2]):
        raise InputError(
            f"rates must be [J, T, K] and prices [J, K] to match, got {r.shape} and {p.shape}"
        )
    j_len = r.shape[0]
    cap = np.broadcast_to(np.asarray(max_units), (j_len,)).astype(np.int64)
    if np.any(cap < 0):
        raise InputError(f"max_units must be >= 0, got {cap[cap < 0][:5].tolist()}")
    n_max = int(cap.max())
    salv = _rows(salvage, j_len, "salvage")
    cost = _rows(unit_cost, j_len, "unit_cost")
    c_p = _rows(pricing_cost, j_len, "pricing_cost")
    tau = _rows(transfer_cost, j_len, "transfer_cost")
    held = _rows(0.0 if on_hand is None else on_hand, j_len, "on_hand")
    rho = _rows(returns_rate, j_len, "returns_rate")
    if np.any((rho < 0) | (rho >= 1)):
        raise InputError(f"returns_rate must lie in [0, 1), got {rho.tolist()}")
    if np.any(tau < 0) or np.any(held < 0):
        raise InputError("transfer_cost and on_hand must be >= 0")
    n = np.arange(n_max + 1, dtype=float)
    if n_max == 0:
        zeros = np.zeros((j_len, 1))
        return ValueCurves(zeros, zeros, zeros, p.max(axis=1, keepdims=True))
    sol = solve_surfaces(r, p, np.full(j_len, n_max), unit_cost=c_p, salvage=salv)
    v0 = np.asarray(sol.value, dtype=float)[:, :, 0]
    index = np.asarray(sol.index)
    sold, _ = _evaluate_policy(r, index, p, n_max)
    gross = v0 + c_p[:, None] * sold - salv[:, None] * (n[None, :] - sold)
    revenue = (1.0 - rho[:, None]) * gross
    kept = (1.0 - rho[:, None]) * sold
    value = (
        revenue
        + salv[:, None] * (n[None, :] - kept)
        - cost[:, None] * n[None, :]
        - tau[:, None] * np.maximum(n[None, :] - held[:, None], 0.0)
    )
    opening = np.asarray(sol.price, dtype=float)[:, :, 0]
    return ValueCurves(value=value, revenue=revenue, sold=sold, price=opening)
