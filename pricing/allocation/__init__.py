"""Stock planning: how many units of each SKU to place in each market and window.

The engine prices whatever stock a market holds with the inventory-aware DP of
:func:`pricing.policy.solve_surfaces`. Its value function ``V(n, 0)`` is the expected
revenue (plus salvage of what is left) of starting a window with ``n`` units under that
policy, so the expected value of placing ``n`` units in one *slot* (a SKU in a market
for a window) is read straight off the DP, for every ``n`` at once:

.. math::

    f_j(n) = (1 - ρ)\\,R_j(n) + s_j\\,\\big(n - (1 - ρ) S_j(n)\\big)
             - (c_j + τ_j^{unit})\\,n - τ_j\\,\\max(0,\\, n - h_j)

where ``R_j(n)`` is the expected gross revenue and ``S_j(n)`` the expected units sold
under the policy (evaluated exactly from the policy's price index, see
:func:`value_curves`), ``ρ`` the returns rate (a returned sale is refunded and the unit
recovered at its salvage value ``s``), ``c`` the unit cost of a placed unit, and ``τ``
the transfer (restock) cost of each unit shipped into a market beyond the ``h`` units it
already holds.

A SKU's plan maximises ``Σ_j f_j(n_j) + b · (N − Σ_j n_j)`` subject to
``Σ_j n_j ≤ N``, where ``b`` is the value of a unit held back (not placed anywhere:
0 when an unplaced unit is simply not bought, its salvage value net of cost when the
stock is already on hand). A later window is a slot of its own, so holding a unit back
from the first window for the second is priced like any other placement: the option
value of a later window is that window's marginal value.

**Greedy is exact on concave curves.** With Poisson demand and the optimal policy the
marginal value of one more unit falls as stock rises (Gallego & van Ryzin 1994, Thm 1),
so each ``f_j`` is concave and handing out units one at a time to the slot with the
largest marginal value is optimal for the separable objective (Gross 1956; Ibaraki &
Katoh 1988, ch. 4). :func:`allocate` checks concavity on the curves it is given and falls
back to an exact dynamic programme over slots (a small knapsack, ``O(J N²)``) where it
fails. It does fail in practice: on ``objective: profit`` drops the engine's DP prices with
the cost per *sale* (``pricing_cost``), so the policy's expected sales jump where its
price switches and the value of *placed* units (cost paid per unit placed) has bumps.

Windows are planned as separate slots: units left unsold when a window closes are
valued at salvage (the operator re-plans the next window with them), so the plan is a
feasible policy whose value is a lower bound on carrying them over.

References:
    Gallego, G. and van Ryzin, G. (1994). Optimal dynamic pricing of inventories with
    stochastic demand over finite horizons. Management Science 40(8), 999-1020.
    Gross, O. (1956). A class of discrete-type minimization problems. RAND RM-1644.
    Ibaraki, T. and Katoh, N. (1988). Resource Allocation Problems. MIT Press.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from pricing.exceptions import InputError
from pricing.policy import demand_truncation, solve_surfaces

__all__ = [
    "Allocation",
    "SlotDemand",
    "StockPlan",
    "ValueCurves",
    "allocate",
    "allocate_exact",
    "allocate_greedy",
    "is_concave",
    "plan_stock",
    "planned_intensity",
    "prior_rates",
    "value_curves",
]

CONCAVITY_TOL = 1e-6
"""Relative slack of the concavity check (the DP solves in float32 by default)."""


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


class Allocation(NamedTuple):
    """Units per slot for one SKU and what they are expected to earn.

    Attributes:
        units: ``[J]`` units placed in each slot.
        held_back: units of the total not placed anywhere.
        objective: ``Σ f_j(n_j) + holdback_value · held_back``.
        marginal: ``[J]`` marginal value of the last unit placed in each slot,
            ``f_j(n_j) − f_j(n_j − 1)`` (``nan`` where no unit is placed).
        next_marginal: ``[J]`` value of one more unit, ``f_j(n_j + 1) − f_j(n_j)``
            (``nan`` past the curve).
        method: ``"greedy"`` (every curve concave) or ``"exact"`` (knapsack DP).
    """

    units: np.ndarray
    held_back: int
    objective: float
    marginal: np.ndarray
    next_marginal: np.ndarray
    method: str


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


# ------------------------------------------------------------------ allocation


def is_concave(value: np.ndarray, *, tol: float = CONCAVITY_TOL) -> np.ndarray:
    """``[J]`` whether each curve's marginal values never rise (up to ``tol`` × its scale).

    Args:
        value: ``[J, N+1]`` curves.
        tol: relative slack, scaled by each curve's largest absolute value.

    Returns:
        Boolean ``[J]``.
    """
    v = np.atleast_2d(np.asarray(value, dtype=float))
    if v.shape[1] < 3:
        return np.ones(v.shape[0], dtype=bool)
    second = np.diff(v, n=2, axis=1)
    scale = np.maximum(np.abs(v).max(axis=1), 1.0)
    return np.asarray(np.all(second <= tol * scale[:, None], axis=1))


def _check(value: np.ndarray, total: int, caps: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    v = np.atleast_2d(np.asarray(value, dtype=float))
    if v.ndim != 2 or v.shape[1] < 1 or not np.all(np.isfinite(v)):
        raise InputError(f"value must be finite curves [J, N+1], got shape {v.shape}")
    if not (isinstance(total, int | np.integer) and total >= 0):
        raise InputError(f"total must be a whole number of units >= 0, got {total!r}")
    n_top = v.shape[1] - 1
    cap = np.full(v.shape[0], n_top) if caps is None else np.asarray(caps, dtype=np.int64)
    if cap.shape != (v.shape[0],) or np.any(cap < 0) or np.any(cap > n_top):
        raise InputError(f"caps must be [J] in [0, {n_top}], got {cap!r}")
    return v, cap


def _result(v: np.ndarray, units: np.ndarray, total: int, b: float, method: str) -> Allocation:
    j = np.arange(v.shape[0])
    n_top = v.shape[1] - 1
    with np.errstate(invalid="ignore"):
        last = np.where(units > 0, v[j, units] - v[j, np.maximum(units - 1, 0)], np.nan)
        nxt = np.where(units < n_top, v[j, np.minimum(units + 1, n_top)] - v[j, units], np.nan)
    held = int(total - units.sum())
    objective = float(v[j, units].sum() + b * held)
    return Allocation(units.astype(np.int64), held, objective, last, nxt, method)


def allocate_greedy(
    value: np.ndarray,
    total: int,
    *,
    holdback_value: float = 0.0,
    caps: np.ndarray | None = None,
) -> Allocation:
    """Hand out units one at a time to the slot whose next unit is worth most.

    Places a unit only while its marginal value beats ``holdback_value``. Exact when every
    curve is concave (marginal values non-increasing); the marginals are made monotone
    (running minimum) so float noise below the concavity tolerance cannot split a slot's
    units. Equivalent to, and computed as, taking the ``total`` largest marginals.

    Args:
        value: ``[J, N+1]`` slot curves ``f_j(n)``.
        total: units available.
        holdback_value: value of a unit not placed.
        caps: ``[J]`` most units a slot may take (default ``N``).

    Returns:
        :class:`Allocation` with ``method="greedy"``.
    """
    v, cap = _check(value, total, caps)
    gain = np.minimum.accumulate(np.diff(v, axis=1), axis=1) - holdback_value  # [J, N]
    gain = np.where(np.arange(gain.shape[1])[None, :] < cap[:, None], gain, -np.inf)
    flat = gain.ravel()
    # Largest first; ties to the lower slot then the earlier unit (stable on the flat order).
    order = np.argsort(-flat, kind="stable")[: int(total)]
    chosen = order[flat[order] > 0]
    units = np.bincount(chosen // gain.shape[1], minlength=v.shape[0])
    return _result(v, units, int(total), holdback_value, "greedy")


def allocate_exact(
    value: np.ndarray,
    total: int,
    *,
    holdback_value: float = 0.0,
    caps: np.ndarray | None = None,
) -> Allocation:
    """The optimal allocation for any curves: a dynamic programme over slots.

    ``B_j(u) = max_{k ≤ min(u, cap_j)} B_{j−1}(u − k) + f_j(k) − b k``, ``u ≤ total``;
    the plan is the best ``B_J(u)`` over ``u``, traced back. ``O(J · total · N)``.

    Args, Returns: as :func:`allocate_greedy` (``method="exact"``).
    """
    v, cap = _check(value, total, caps)
    b = float(holdback_value)
    u_len = int(total) + 1
    u = np.arange(u_len)
    best = np.zeros(u_len)
    choices = []
    for j in range(v.shape[0]):
        k_top = int(min(cap[j], total))
        k = np.arange(k_top + 1)
        gain = v[j, : k_top + 1] - v[j, 0] - b * k  # relative to placing nothing
        prev = u[:, None] - k[None, :]
        cand = np.where(prev >= 0, best[np.maximum(prev, 0)] + gain[None, :], -np.inf)
        pick = np.argmax(cand, axis=1)  # ties to fewer units
        best = cand[u, pick]
        choices.append(pick)
    units = np.zeros(v.shape[0], dtype=np.int64)
    at = int(np.argmax(best))
    for j in range(v.shape[0] - 1, -1, -1):
        units[j] = choices[j][at]
        at -= int(units[j])
    return _result(v, units, int(total), b, "exact")


def allocate(
    value: np.ndarray,
    total: int,
    *,
    holdback_value: float = 0.0,
    caps: np.ndarray | None = None,
    tol: float = CONCAVITY_TOL,
) -> Allocation:
    """Optimal units per slot: greedy where every curve is concave, else the exact DP.

    Args:
        value: ``[J, N+1]`` slot curves ``f_j(n)`` (e.g. :attr:`ValueCurves.value`).
        total: units available for these slots (one SKU).
        holdback_value: value of a unit not placed.
        caps: ``[J]`` most units per slot (default ``N``).
        tol: concavity slack (:func:`is_concave`).

    Returns:
        :class:`Allocation`.

    Raises:
        InputError: non-finite curves, a negative total or bad caps.

    Example:
        >>> allocate(np.array([[0, 5, 9, 12], [0, 4, 7, 9]]), 3).units.tolist()
        [2, 1]
    """
    v, _ = _check(value, total, caps)
    if bool(np.all(is_concave(v, tol=tol))):
        return allocate_greedy(v, total, holdback_value=holdback_value, caps=caps)
    return allocate_exact(v, total, holdback_value=holdback_value, caps=caps)


# ------------------------------------------------------------------ the plan


@dataclass(frozen=True)
class SlotDemand:
    """One slot to plan: a SKU in a market for one window, with its demand and costs.

    Attributes:
        sku, market, window: the slot's key (``window`` counts from 0).
        rates: ``[T, K]`` expected demand per period at each ladder price.
        prices: ``[K]`` the ladder the engine prices from.
        unit_cost, salvage, pricing_cost, transfer_cost, returns_rate: as
            :func:`value_curves`.
        on_hand: units the market already holds for this slot.
    """

    sku: str
    market: str
    window: int
    rates: np.ndarray
    prices: np.ndarray
    unit_cost: float = 0.0
    salvage: float = 0.0
    pricing_cost: float = 0.0
    transfer_cost: float = 0.0
    on_hand: int = 0
    returns_rate: float = 0.0


@dataclass(frozen=True)
class StockPlan:
    """Units per SKU x market x window and their expected outcome (see :func:`plan_stock`).

    Attributes:
        rows: one dict per slot: ``sku``, ``market``, ``window``, ``units``,
            ``expected_sold``, ``sell_through``, ``expected_revenue``, ``expected_profit``,
            ``marginal_value`` (of the last unit placed), ``next_unit_value``,
            ``opening_price``; in the order of the slots given.
        skus: one dict per SKU: ``total``, ``placed``, ``held_back``, ``holdback_value``,
            ``expected_profit`` (the objective), ``method``.
        curves: ``(sku, market, window)`` -> ``[N+1]`` slot value curve (for figures).
    """

    rows: list[dict[str, Any]]
    skus: dict[str, dict[str, Any]]
    curves: dict[tuple[str, str, int], np.ndarray] = field(repr=False)

    @property
    def expected_profit(self) -> float:
        """Sum of the SKUs' objectives."""
        return float(sum(s["expected_profit"] for s in self.skus.values()))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready plan (``nan`` becomes ``None``)."""

        def clean(x: Any) -> Any:
            return None if isinstance(x, float) and not math.isfinite(x) else x

        return {
            "expected_profit": round(self.expected_profit, 2),
            "skus": {k: {f: clean(v) for f, v in s.items()} for k, s in self.skus.items()},
            "rows": [{k: clean(v) for k, v in r.items()} for r in self.rows],
        }

    def __str__(self) -> str:
        head = f"StockPlan: {len(self.skus)} SKUs, {len(self.rows)} slots, "
        head += f"expected profit {self.expected_profit:,.2f}"
        lines = [head]
        for r in self.rows[:20]:
            lines.append(
                f"  {r['sku']:<14} {r['market']:<20} w{r['window']} {r['units']:>6} units  "
                f"profit {r['expected_profit']:>10,.2f}  last unit {r['marginal_value']}"
            )
        return "\n".join(lines)


def plan_stock(
    slots: Sequence[SlotDemand],
    totals: Mapping[str, int],
    *,
    holdback_value: Mapping[str, float] | float = 0.0,
    tol: float = CONCAVITY_TOL,
) -> StockPlan:
    """Plan every SKU's stock over its slots: one DP solve for all slots, then :func:`allocate`.

    Slots of one SKU compete for its ``totals[sku]`` units; SKUs are independent. Slots
    with different horizons or ladder sizes are padded (zero demand after a short window,
    the last ladder step repeated).

    Args:
        slots: the slots to plan.
        totals: units available per SKU (every SKU of ``slots``).
        holdback_value: value of a unit not placed, per SKU or one for all.
        tol: concavity slack.

    Returns:
        :class:`StockPlan`.

    Raises:
        InputError: a SKU without a total, a negative total, or malformed demand.
    """
    if not slots:
        raise InputError("plan_stock needs at least one slot")
    missing = sorted({s.sku for s in slots} - set(totals))
    if missing:
        raise InputError(f"totals has no units for SKU(s) {missing}")
    bad = {k: v for k, v in totals.items() if not (isinstance(v, int) and v >= 0)}
    if bad:
        raise InputError(f"totals must be whole numbers of units >= 0, got {bad}")
    t_len = max(np.asarray(s.rates).shape[0] for s in slots)
    k_len = max(np.asarray(s.prices).shape[0] for s in slots)
    rates = np.zeros((len(slots), t_len, k_len))
    prices = np.zeros((len(slots), k_len))
    for j, s in enumerate(slots):
        r, p = np.asarray(s.rates, dtype=float), np.asarray(s.prices, dtype=float)
        if r.ndim != 2 or p.ndim != 1 or r.shape[1] != p.shape[0]:
            raise InputError(
                f"{s.sku}/{s.market}/w{s.window}: rates must be [T, K] and prices [K], "
                f"got {r.shape} and {p.shape}"
            )
        rates[j, : r.shape[0]] = np.pad(r, ((0, 0), (0, k_len - p.size)), mode="edge")
        prices[j] = np.pad(p, (0, k_len - p.size), mode="edge")
    caps = np.array([totals[s.sku] for s in slots], dtype=np.int64)

    def per_slot(name: str) -> np.ndarray:
        return np.array([float(getattr(s, name)) for s in slots])

    curves = value_curves(
        rates,
        prices,
        caps,
        salvage=per_slot("salvage"),
        unit_cost=per_slot("unit_cost"),
        pricing_cost=per_slot("pricing_cost"),
        transfer_cost=per_slot("transfer_cost"),
        on_hand=per_slot("on_hand"),
        returns_rate=per_slot("returns_rate"),
    )
    rows: list[dict[str, Any]] = [{} for _ in slots]  # in the order of ``slots``
    skus: dict[str, dict[str, Any]] = {}
    for sku in dict.fromkeys(s.sku for s in slots):
        idx = np.array([j for j, s in enumerate(slots) if s.sku == sku])
        total = int(totals[sku])
        b = float(holdback_value[sku] if isinstance(holdback_value, Mapping) else holdback_value)
        alloc = allocate(curves.value[idx, : total + 1], total, holdback_value=b, tol=tol)
        skus[sku] = {
            "total": total,
            "placed": int(alloc.units.sum()),
            "held_back": alloc.held_back,
            "holdback_value": b,
            "expected_profit": alloc.objective,
            "method": alloc.method,
        }
        for pos, j in enumerate(idx):
            n = int(alloc.units[pos])
            s = slots[int(j)]
            sold = float(curves.sold[j, n])
            rows[int(j)].update(
                {
                    "sku": s.sku,
                    "market": s.market,
                    "window": s.window,
                    "units": n,
                    "expected_sold": sold,
                    "sell_through": sold / n if n else float("nan"),
                    "expected_revenue": float(curves.revenue[j, n]),
                    "expected_profit": float(curves.value[j, n]),
                    "marginal_value": float(alloc.marginal[pos]),
                    "next_unit_value": float(alloc.next_marginal[pos]),
                    "opening_price": float(curves.price[j, n]),
                }
            )
    keyed = {
        (s.sku, s.market, s.window): curves.value[j, : totals[s.sku] + 1]
        for j, s in enumerate(slots)
    }
    return StockPlan(rows=rows, skus=skus, curves=keyed)
