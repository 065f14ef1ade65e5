"""Inventory-aware price surfaces: the finite-horizon dynamic programme of Gallego & van Ryzin.

For one SKU(-market) with ``n`` units left at the start of period ``t`` (``t = 0..T-1``), a
price ladder ``p_0 < ... < p_{K-1}`` and Poisson demand ``D ~ Poisson(λ_{t,k})`` per period
at ladder price ``k`` (several units may sell in one period; sales are ``min(D, n)``)::

    V(n, T) = salvage · n
    V(n, t) = max_k  E[ (p_k − c) · min(D, n) + V(n − min(D, n), t + 1) ]

and the price surface is the maximising ladder price ``p*(n, t)``. The recursion runs
backwards over ``t`` in one ``lax.scan`` per block of rows, vectorised over the block's rows,
inventory levels and ladder prices.

Each step is two matrix products, so the CPU's (or accelerator's) GEMM does the work rather
than gathers and elementwise operations:

    E[V(n − min(D, n))]    = Σ_d P(D = d) · V(max(n − d, 0))       pmf [K, D+1] @ Toeplitz(V) [D+1, N+1]
    (p − c) E[min(D, n)]   = (p − c) Σ_d P(D = d) · min(d, n)      one [D+1, D+1] matrix for all rows

(``V(0, t) = 0``, so the Toeplitz window is ``V`` padded with zeros on the left, built from
``D+1`` shifted slices; for ``n > d_max`` the expected sales no longer depend on ``n``.)

Demand is truncated at ``d_max`` (chosen per block of rows from the block's largest rate so
that the tail mass is below ``tail``, rounded up to one less than a multiple of 8, and left
out). Where the stock ``N`` caps the truncation, ``P(D ≥ N)`` is lumped on ``N`` so
``min(D, n)`` stays exact.

The blocks' truncations are then merged into at most :data:`MAX_TRUNCATIONS` shared values
(each is a compiled program). How the blocks run (row blocks of ``chunk_rows``, one thread
per core, one compiled program per block shape and truncation) is
:mod:`pricing.policy_blocks`; the closed form and the
reference solver the tests check against are in :mod:`pricing.policy_reference`.

References:
    Gallego, G. and van Ryzin, G. (1994). Optimal dynamic pricing of inventories with
    stochastic demand over finite horizons. Management Science 40(8), 999-1020.
    Talluri, K. and van Ryzin, G. (2004). The Theory and Practice of Revenue Management,
    ch. 5 (discrete-time dynamic pricing).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import jax
import numpy as np

from pricing.exceptions import InputError
from pricing.policy_blocks import default_device, solve_blocks
from pricing.policy_reference import (
    exponential_demand_price,
    exponential_demand_value,
    solve_surfaces_numpy,
)

if TYPE_CHECKING:
    from pricing.guardrails import GuardrailSpec, GuardrailTable
    from pricing.model import ElasticityFit

__all__ = [
    "MAX_TRUNCATIONS",
    "PolicySurfaces",
    "Surfaces",
    "demand_truncation",
    "exponential_demand_value",
    "exponential_demand_price",
    "price_surfaces_from_fit",
    "solve_surfaces",
    "solve_surfaces_numpy",
]


class Surfaces(NamedTuple):
    """Price surfaces and value functions for ``S`` SKU(-market) rows, as host (numpy) arrays.

    Attributes:
        price: ``[S, N+1, T]`` ladder price to charge with ``n`` units left at the start of
            period ``t``. Row ``n = 0`` has no sale; it repeats the ``n = 1`` price so a
            terminal that reads a sold-out row still shows a sensible number.
        value: ``[S, N+1, T+1]`` expected revenue (or profit) to go, ``value[:, n, T]`` is the
            salvage value of ``n`` unsold units.
        index: ``[S, N+1, T]`` position of ``price`` in the SKU's ladder (as given, before
            any internal sorting), in the smallest integer type that holds it (int8 for
            ladders of up to 127 prices).
        inventory: ``[S]`` each row's own starting inventory. Rows ``n > inventory[s]`` are
            valid DP values for that larger stock (the arrays are padded to ``N = max``) and
            are never reached from the row's own start.
        d_max: the largest demand truncation used (units one period can sell); each block of
            rows uses its own, one less than a multiple of 8, raised to one of at most
            :data:`MAX_TRUNCATIONS` values shared by the call (see ``solve_surfaces``).
    """

    price: np.ndarray
    value: np.ndarray
    index: np.ndarray
    inventory: np.ndarray
    d_max: int


def demand_truncation(max_rate: float, n_max: int, *, tail: float = 1e-9) -> int:
    """Smallest ``d`` with ``P(Poisson(max_rate) > d) < tail``, capped at ``n_max``.

    Periods never sell more than the stock, so truncating at ``n_max`` is exact; below that
    the demand mass left out is smaller than ``tail``.

    Args:
        max_rate: the largest expected demand per period over all rows, periods and prices.
        n_max: the largest inventory (``N``).
        tail: allowed truncated probability mass.

    Returns:
        ``d_max`` with ``1 ≤ d_max ≤ max(n_max, 1)``.
    """
    n_cap = max(int(n_max), 1)
    lam = float(max_rate)
    if lam <= 0.0:
        return 1
    # Walk the pmf in log space (stable for large rates) until the survival drops below tail.
    log_p = -lam
    cdf = math.exp(log_p)
    d = 0
    while d < n_cap:
        if 1.0 - cdf < tail and d >= 1:
            return d
        d += 1
        log_p += math.log(lam) - math.log(d)
        cdf += math.exp(log_p)
    return n_cap


def _truncation_step(d_max: int, n_max: int, *, step: int = 8) -> int:
    """Round a demand truncation up to one less than a multiple of ``step`` (at most ``max(n_max, 1)``).

    ``d_max`` is a compile-time shape: rounding it lets re-fits whose largest rate moves a
    little reuse the compiled solve instead of compiling a new one, and ``d_max + 1`` pmf
    columns that are a multiple of 8 fill whole vector registers (measured about 10 % faster
    than ``d_max`` itself a multiple of 8). A larger truncation only leaves out less mass, so
    results change by less than ``tail``.
    """
    return min(-(-(int(d_max) + 1) // step) * step - 1, max(int(n_max), 1))


MAX_TRUNCATIONS = 3
"""Distinct demand truncations (compiled programs) one :func:`solve_surfaces` call uses.

Each distinct ``d_max`` is its own compiled program, and compiling one costs about as much
as solving 10,000 rows of a short horizon with it (1-3 s on a CPU core): with one truncation
per block a cold re-fit compiled five programs and spent most of its solve compiling. The
blocks' own truncations are merged into at most this many (:func:`_shared_truncations`),
which raises some blocks' truncation and so leaves out less demand mass, never more. Two
were measured to cost a 10,000-row, 72-period solve about 18 % more work once compiled
(blocks at 31 raised to 39); three keep that under 1 %.
"""


def _shared_truncations(block_d: Sequence[int], limit: int = MAX_TRUNCATIONS) -> list[int]:
    """Each block's truncation raised to one of at most ``limit`` shared values.

    The shared values are chosen among the blocks' own to keep the work (``d + 1`` pmf
    columns per block) smallest: an exact dynamic programme over the distinct values
    (ascending ``v_0 < ... < v_m``), where each value is served by the smallest chosen one
    at or above it and the largest is always chosen.

    Example:
        >>> _shared_truncations([23, 31, 39, 47, 50, 50], limit=2)
        [31, 31, 50, 50, 50, 50]
    """
    values, counts = np.unique(np.asarray(block_d, dtype=np.int64), return_counts=True)
    m = values.size
    if m <= limit:
        return [int(d) for d in block_d]
    # cost[j][l]: least work for values 0..j with v_j chosen and l values chosen in all.
    prefix = np.concatenate([[0], np.cumsum(counts)])
    inf = float("inf")
    cost = [[inf] * (limit + 1) for _ in range(m)]
    back = [[-1] * (limit + 1) for _ in range(m)]
    for j in range(m):
        cost[j][1] = float(prefix[j + 1] * (values[j] + 1))
        for used in range(2, limit + 1):
            for i in range(j):
                extra = float((prefix[j + 1] - prefix[i + 1]) * (values[j] + 1))
                if cost[i][used - 1] + extra < cost[j][used]:
                    cost[j][used] = cost[i][used - 1] + extra
                    back[j][used] = i
    used = min(range(1, limit + 1), key=lambda n: cost[m - 1][n])
    chosen, j = [], m - 1
    while j >= 0:
        chosen.append(int(values[j]))
        j, used = back[j][used], used - 1
    chosen.sort()
    lookup = {int(v): next(c for c in chosen if c >= v) for v in values}
    return [lookup[int(d)] for d in block_d]


def _as_rows(x: float | np.ndarray | jax.Array, s: int, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(s, float(arr))
    if arr.shape != (s,):
        raise InputError(f"{name} must be a scalar or have shape [S]=({s},), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name} must be finite, got {arr[~np.isfinite(arr)][:5].tolist()}")
    return arr


def _inventory_rows(inventory: int | np.ndarray | jax.Array, s: int) -> np.ndarray:
    inv = np.asarray(inventory)
    if inv.ndim == 0:
        inv = np.full(s, int(inv))
    if inv.shape != (s,):
        raise InputError(f"inventory must be an int or shape [S]=({s},), got shape {inv.shape}")
    if not np.all(np.isfinite(inv.astype(np.float64))) or np.any(inv < 0):
        raise InputError(f"inventory must be whole numbers >= 0, got {inv[inv < 0][:5].tolist()}")
    if np.any(inv != np.round(inv)):
        raise InputError("inventory must be whole numbers of units, got fractional values")
    return inv.astype(np.int64)


def _checked_problem(
    rates: np.ndarray | jax.Array, prices: np.ndarray | jax.Array
) -> tuple[np.ndarray, np.ndarray]:
    """``rates [S, T, K]`` and ``prices [S, K]`` as float arrays, or an InputError naming the field."""
    rates_np = np.asarray(rates)
    if rates_np.dtype.kind != "f":
        rates_np = rates_np.astype(np.float64)
    prices_np = np.asarray(prices, dtype=np.float64)
    if rates_np.ndim != 3:
        raise InputError(f"rates must have shape [S, T, K], got shape {rates_np.shape}")
    s, t_len, k_len = rates_np.shape
    if prices_np.shape != (s, k_len):
        raise InputError(
            f"prices must have shape [S, K]=({s}, {k_len}) to match rates, got {prices_np.shape}"
        )
    if t_len < 1 or k_len < 1 or s < 1:
        raise InputError(f"rates needs at least one row, period and price, got {rates_np.shape}")
    bad = ~np.isfinite(rates_np) | (rates_np < 0)
    if bad.any():
        raise InputError(
            f"rates must be finite and >= 0, got {int(bad.sum())} bad value(s), "
            f"e.g. {rates_np[bad][:3].tolist()}"
        )
    if not np.all(np.isfinite(prices_np)) or np.any(prices_np <= 0):
        raise InputError(
            "prices must be finite and > 0, got "
            f"{prices_np[~np.isfinite(prices_np) | (prices_np <= 0)][:5].tolist()}"
        )
    return rates_np, prices_np


def solve_surfaces(
    rates: np.ndarray | jax.Array,
    prices: np.ndarray | jax.Array,
    inventory: int | np.ndarray | jax.Array,
    *,
    unit_cost: float | np.ndarray = 0.0,
    salvage: float | np.ndarray = 0.0,
    tail: float = 1e-9,
    chunk_rows: int | Literal["auto"] | None = "auto",
    workers: int | None = None,
) -> Surfaces:
    """Solve the finite-horizon, finite-inventory pricing DP for every row at once.

    .. math::

        V(n, t) = \\max_k \\; E\\big[(p_k - c)\\min(D, n) + V(n - \\min(D, n), t+1)\\big],
        \\quad D \\sim \\text{Poisson}(\\lambda_{t,k}),\\quad V(n, T) = \\text{salvage}\\cdot n

    Args:
        rates: ``[S, T, K]`` expected demand per period at each ladder price (units, ≥ 0).
        prices: ``[S, K]`` each row's ladder (any order; ties in value go to the higher price).
            Rows with fewer prices can repeat their last price.
        inventory: units at the start, an int for all rows or ``[S]`` per row (``N = max``).
        unit_cost: cost per unit sold, scalar or ``[S]``: the objective is profit
            ``(p − c) · units``; 0 maximises revenue.
        salvage: value per unit left after the last period, scalar or ``[S]``.
        tail: demand truncation mass (see :func:`demand_truncation`); each block of rows
            truncates at its own largest rate's quantile, rounded up to one less than a
            multiple of 8 so that compiled programs are reused across re-fits, and raised to
            one of at most :data:`MAX_TRUNCATIONS` values shared by the call.
        chunk_rows: rows solved per compiled call (``None``: all at once; ``"auto"``: 32 on
            a CPU device, where small blocks stay in cache and truncate demand closer to
            their own rates, 4,096 on an accelerator); rows are grouped by their largest
            rate. Results depend on it only through the truncation (by less than ``tail`` in
            probability).
        workers: blocks solved at once, each on its own thread (``None``: one per CPU core
            this process may use when the default device is a CPU, else 1).

    Returns:
        :class:`Surfaces` with ``price [S, N+1, T]``, ``value [S, N+1, T+1]`` and the ladder
        ``index [S, N+1, T]``.

    Raises:
        InputError: shapes disagree, a rate is negative or not finite, a price is not finite
            or not positive, or an inventory is negative.

    Example:
        >>> import numpy as np
        >>> ladder = np.array([[8.0, 10.0, 12.0]])
        >>> rates = np.broadcast_to(5.0 * np.exp(-0.2 * ladder)[:, None, :], (1, 24, 3))
        >>> sol = solve_surfaces(rates, ladder, 10)
        >>> sol.price.shape, sol.value.shape
        ((1, 11, 24), (1, 11, 25))

    References:
        Gallego & van Ryzin (1994), Management Science 40(8); Talluri & van Ryzin (2004) §5.2.
    """
    rates_np, prices_np = _checked_problem(rates, prices)
    s, t_len, k_len = rates_np.shape
    inv = _inventory_rows(inventory, s)
    n_max = int(inv.max())
    cost = _as_rows(unit_cost, s, "unit_cost")
    salv = _as_rows(salvage, s, "salvage")

    # Sort each ladder ascending so ties in value can go to the higher (later) price; most
    # ladders arrive sorted, and then the [S, T, K] rates are not copied.
    order: np.ndarray | None = None
    if np.any(prices_np[:, 1:] < prices_np[:, :-1]):
        order = np.argsort(prices_np, axis=1, kind="stable")
        prices_np = np.take_along_axis(prices_np, order, axis=1)
        rates_np = np.take_along_axis(rates_np, order[:, None, :], axis=2)

    # Rows are taken in order of their largest rate so each block truncates demand at its own
    # d_max: calm rows do not pay for the busiest one's tail.
    if chunk_rows == "auto":
        chunk_rows = 32 if default_device().platform == "cpu" else 4096
    block = s if chunk_rows is None else max(1, min(int(chunk_rows), s))
    row_max = rates_np.max(axis=(1, 2))
    rows = np.argsort(row_max, kind="stable") if block < s else np.arange(s)
    blocks = [rows[start : start + block] for start in range(0, s, block)]
    block_d = _shared_truncations(
        [
            _truncation_step(demand_truncation(float(row_max[take].max()), n_max, tail=tail), n_max)
            for take in blocks
        ]
    )
    out = solve_blocks(
        rates_np, prices_np, cost, salv, order, blocks, block_d, n_max=n_max, workers=workers
    )
    return Surfaces(
        price=out.price, value=out.value, index=out.index, inventory=inv, d_max=max(block_d)
    )


class PolicySurfaces(NamedTuple):
    """Guarded price surfaces of a fitted model, ready to publish.

    Attributes:
        price: ``[S, N+1, T]`` float64 price to serve with ``n`` units left in period ``t``,
            after guardrails (exact ladder values, never NaN).
        code: ``[S, N+1, T]`` int8 :class:`pricing.guardrails.GuardrailCode` per cell.
        value: ``[S, N+1, T+1]`` expected revenue (profit) to go of the unguarded optimum.
        optimum: the raw :class:`Surfaces` of the DP.
        rates: ``[S, T, K]`` demand per period the DP priced against.
        keys: ``(sku, market)`` of each row, in the fit's table order.
    """

    price: np.ndarray
    code: np.ndarray
    value: np.ndarray
    optimum: Surfaces
    rates: np.ndarray
    keys: list[tuple[Any, Any]]


def price_surfaces_from_fit(
    fit: ElasticityFit,
    ladder: np.ndarray,
    inventory: int | np.ndarray,
    horizon: int,
    *,
    intensity: np.ndarray | None = None,
    half_life: float | np.ndarray = 24.0,
    hours: np.ndarray | int | None = None,
    unit_cost: float | np.ndarray = 0.0,
    salvage: float | np.ndarray = 0.0,
    guardrails: GuardrailSpec | Sequence[GuardrailSpec] | GuardrailTable | None = None,
    explore: bool = False,
    key: jax.Array | None = None,
) -> PolicySurfaces:
    """Price surfaces for every row of an :class:`~pricing.model.ElasticityFit`.

    Demand per period at each ladder price is the fit's
    ``λ = exp(α + s(h) + γ Î + (β + δ Î) log(p / p_ref))`` with the intensity forecast
    ``Î(t) = I_now · 2^(−t / half_life)`` (:func:`pricing.intensity.forecast_intensity`: the
    current index decaying, no new events assumed); the DP (:func:`solve_surfaces`) picks the
    price, then the guardrails (:func:`pricing.guardrails.apply_guardrails`) always win.

    With ``explore=True`` the demand parameters are one draw from the fit's Laplace posterior
    (``fit.sample_params``) instead of the MAP: Thompson sampling over surfaces, so prices
    vary where the elasticity is uncertain and the next re-fit learns from it; the draw goes
    through the same DP and the same guardrails.

    Args:
        fit: an ``ElasticityFit`` (``demand_rates``, ``sample_params``, ``keys``).
        ladder: ``[S, K]`` or ``[K]`` candidate prices (e.g.
            :func:`pricing.guardrails.candidate_ladder` per row).
        inventory: units left now, int or ``[S]``.
        horizon: periods left in the window (``T``).
        intensity: ``[S]`` intensity index now (``None``: 0).
        half_life: hours, scalar or ``[S]``.
        hours: hour of day of each period ``[T]``, or the hour of the first period (int);
            ``None`` uses the day's average.
        unit_cost, salvage: as in :func:`solve_surfaces` (profit when ``unit_cost`` > 0).
        guardrails: a :class:`~pricing.guardrails.GuardrailSpec`, one per row, or a
            :class:`~pricing.guardrails.GuardrailTable`; ``None`` for none.
        explore: Thompson-sample the parameters (needs ``key``).
        key: ``jax.random`` key for the posterior draw.

    Returns:
        :class:`PolicySurfaces`.

    Raises:
        InputError: shapes that do not match the fit, ``explore`` without ``key``.

    Example:
        >>> surf = price_surfaces_from_fit(fit, ladder, inventory=40, horizon=24,
        ...                                intensity=np.full(len(fit.keys), 1.5), hours=10,
        ...                                guardrails=GuardrailSpec(price_ending=0.99))  # doctest: +SKIP
    """
    from pricing.guardrails import apply_guardrails
    from pricing.intensity import forecast_intensity

    s = len(fit.keys)
    if not (isinstance(horizon, int | np.integer) and horizon >= 1):
        raise InputError(f"horizon must be a whole number of periods >= 1, got {horizon!r}")
    lad = np.asarray(ladder, dtype=np.float64)
    if lad.ndim == 1:
        lad = np.broadcast_to(lad, (s, lad.size)).copy()
    if lad.ndim != 2 or lad.shape[0] != s:
        raise InputError(f"ladder must have shape [K] or [S={s}, K], got {lad.shape}")
    if hours is None:
        hod = None
    elif isinstance(hours, int | np.integer):
        hod = (int(hours) + np.arange(horizon)) % 24
    else:
        hod = np.asarray(hours).astype(np.int64)
        if hod.shape != (horizon,):
            raise InputError(f"hours must have shape [T={horizon}], got {hod.shape}")
    forecast = None
    if intensity is not None:
        cur = np.asarray(intensity, dtype=np.float64)
        if cur.shape != (s,):
            raise InputError(f"intensity must have shape [S={s}], got {cur.shape}")
        forecast = forecast_intensity(cur, int(horizon), half_life)
    params = None
    if explore:
        if key is None:
            raise InputError("explore=True draws from the posterior: pass key=jax.random.key(...)")
        draw = fit.sample_params(1, key=key)
        params = type(draw)(*(np.asarray(a)[0] for a in draw))
    rates = np.asarray(
        fit.demand_rates(lad, intensity=forecast, hours=hod, params=params), dtype=np.float64
    )
    if forecast is None and rates.shape[1] != horizon:
        rates = np.broadcast_to(rates, (s, horizon, lad.shape[1])).copy()
    optimum = solve_surfaces(rates, lad, inventory, unit_cost=unit_cost, salvage=salvage)
    index = np.asarray(optimum.index)
    price = np.take_along_axis(lad, index.reshape(s, -1), axis=1).reshape(index.shape)
    if guardrails is not None:
        price, code = apply_guardrails(price, guardrails, inventory=np.asarray(optimum.inventory))
    else:
        code = np.zeros(price.shape, dtype=np.int8)
    return PolicySurfaces(
        price=price,
        code=code,
        value=np.asarray(optimum.value),
        optimum=optimum,
        rates=rates,
        keys=list(fit.keys),
    )
