"""What the DP is checked against: the Gallego & van Ryzin closed form and a plain reference solver.

- :func:`exponential_demand_value` and :func:`exponential_demand_price`: the optimal revenue and
  price for exponential demand ``λ(p) = a·e^(−αp)`` in continuous time, the limit the discrete
  DP approaches as its periods shrink.
- :func:`solve_surfaces_numpy`: the recursion of :func:`pricing.policy.solve_surfaces` as a
  float64 loop per SKU with the exact (untruncated) Poisson tail, used by the tests as an
  independent check and by ``benchmarks/bench_policy.py`` as the baseline.

References:
    Gallego, G. and van Ryzin, G. (1994). Optimal dynamic pricing of inventories with
    stochastic demand over finite horizons. Management Science 40(8), 999-1020.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["exponential_demand_price", "exponential_demand_value", "solve_surfaces_numpy"]


def exponential_demand_value(n: np.ndarray, t: float, a: float, alpha: float) -> np.ndarray:
    """Closed-form optimal revenue for exponential demand ``λ(p) = a·e^(−αp)``, continuous time.

    .. math::

        J^*(n, t) = \\frac{1}{\\alpha}\\Big[\\lambda^* t + \\ln P(\\text{Poisson}(\\lambda^* t) \\le n)\\Big],
        \\quad \\lambda^* = a / e

    (the stable form of ``(1/α) ln Σ_{i≤n} (λ* t)^i / i!``).

    Args:
        n: inventory levels (array of ints ≥ 0).
        t: time to go, in the units of ``a``.
        a: demand rate at price 0.
        alpha: price sensitivity (> 0).

    Returns:
        ``J*(n, t)`` for each ``n``.

    References:
        Gallego & van Ryzin (1994), section 3.1.
    """
    from scipy.stats import poisson

    lam_t = a / math.e * t
    n_arr = np.asarray(n)
    return (lam_t + poisson.logcdf(n_arr, lam_t)) / alpha


def exponential_demand_price(n: np.ndarray, t: float, a: float, alpha: float) -> np.ndarray:
    """Closed-form optimal price ``p*(n, t) = J*(n, t) − J*(n − 1, t) + 1/α`` for ``n ≥ 1``."""
    n_arr = np.asarray(n)
    return (
        exponential_demand_value(n_arr, t, a, alpha)
        - exponential_demand_value(n_arr - 1, t, a, alpha)
        + 1.0 / alpha
    )


def solve_surfaces_numpy(
    rates: np.ndarray,
    prices: np.ndarray,
    inventory: int | np.ndarray,
    *,
    unit_cost: float | np.ndarray = 0.0,
    salvage: float | np.ndarray = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Reference solver: the recursion of :func:`pricing.policy.solve_surfaces`, a loop per SKU.

    Float64 numpy, untruncated Poisson demand (``min(D, n)`` with the exact tail). Used by the
    tests as an independent check and by ``benchmarks/bench_policy.py`` as the baseline.

    Returns:
        ``(price [S, N+1, T], value [S, N+1, T+1])`` with the same conventions (ties to the
        higher price, row ``n = 0`` repeats ``n = 1``).
    """
    from scipy.stats import poisson

    rates = np.asarray(rates, dtype=np.float64)
    prices = np.asarray(prices, dtype=np.float64)
    s, t_len, k_len = rates.shape
    inv = np.broadcast_to(np.asarray(inventory), (s,))
    n_max = int(inv.max())
    cost = np.broadcast_to(np.asarray(unit_cost, dtype=np.float64), (s,))
    salv = np.broadcast_to(np.asarray(salvage, dtype=np.float64), (s,))
    price = np.zeros((s, n_max + 1, t_len))
    value = np.zeros((s, n_max + 1, t_len + 1))
    units = np.arange(n_max + 1)
    below = units[None, :] < units[:, None]  # [n, d]: d < n sells d units exactly
    shift = np.maximum(units[:, None] - units[None, :], 0)
    for i in range(s):
        value[i, :, t_len] = salv[i] * units
        margin = prices[i] - cost[i]  # [K]
        for t in range(t_len - 1, -1, -1):
            lam = rates[i, t][:, None]  # [K, 1]
            pmf = poisson.pmf(units[None, :], lam)  # [K, d]
            sf = poisson.sf(units[None, :] - 1, lam)  # [K, n]: P(D >= n)
            v_next = value[i, :, t + 1]
            exact = np.where(
                below[None], pmf[:, None, :] * (margin[:, None, None] * units + v_next[shift]), 0.0
            ).sum(axis=-1)  # [K, n]
            q = exact + sf * (margin[:, None] * units[None, :] + v_next[0])
            # Ties go to the higher price: scan prices from the top.
            order = np.argsort(-prices[i], kind="stable")
            best = order[np.argmax(q[order] >= q[order].max(axis=0) - 1e-12, axis=0)]
            value[i, :, t] = q.max(axis=0)
            price[i, :, t] = prices[i, best]
        if n_max >= 1:
            price[i, 0, :] = price[i, 1, :]
    return price, value
