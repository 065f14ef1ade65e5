"""The simulator's reference policies: the list price, the full-information DP, Thompson sampling.

- ``fixed``: the list price (inside guardrails), all drop long.
- ``oracle``: the full-information policy. The DP (:func:`pricing.policy.solve_surfaces`) on
  the **true** expected demand (:meth:`pricing.truth.Truth.expected_rates`) over the whole
  allowed price range on a fine grid (:attr:`pricing.world.World.full_ladder`), with the true
  intensity forecast from the events seen so far (it learns of an event when it happens,
  never before), re-solved whenever one happens. The path guardrails apply when it serves.
- ``thompson``: Thompson sampling with inventory, TS-update of Ferreira, Simchi-Levi & Wang
  (2018): each period draw per-price demand means from independent Gamma-Poisson
  posteriors, solve the LP ``max Σ p_k d_k x_k  s.t.  Σ d_k x_k ≤ n_t / (T − t),
  Σ x_k ≤ 1`` and offer price ``k`` with probability ``x_k``; the highest ladder price stands
  in for the paper's "no sale" price. Its ladder is the baselines' (floor to ceiling where
  set, else 0.5x-2x the list price).

:func:`fluid_bound` is the upper bound every policy is measured against.

References:
    Gallego, G. and van Ryzin, G. (1994). Management Science 40(8), 999-1020.
    Ferreira, K. J., Simchi-Levi, D. and Wang, H. (2018). Operations Research 66(6), 1586-1602.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from pricing.policy import solve_surfaces
from pricing.world import World

__all__ = [
    "FixedPolicy",
    "OraclePolicy",
    "Policy",
    "SurfacePolicy",
    "ThompsonPolicy",
    "fluid_bound",
    "lp_price_mix",
]


class Policy(Protocol):
    """A pricing policy in the closed loop."""

    name: str

    def propose(self, period: int, stock: np.ndarray) -> np.ndarray:
        """Prices ``[R]`` it wants to serve in open period ``period`` with ``stock`` left."""
        ...

    def observe(self, period: int, price: np.ndarray, sold: np.ndarray, stock: np.ndarray) -> None:
        """Learn from the served prices, units sold and the stock left after the period."""
        ...


class FixedPolicy:
    """The list price, snapped inside each row's guardrails."""

    name = "fixed"

    def __init__(self, world: World) -> None:
        self.price = world.guardrails.snap(world.list_price)

    def propose(self, period: int, stock: np.ndarray) -> np.ndarray:
        return self.price

    def observe(self, period: int, price: np.ndarray, sold: np.ndarray, stock: np.ndarray) -> None:
        return None


class SurfacePolicy:
    """Serves ``surface[n, t]`` of the last DP solve on ``self.ladder``; subclasses give rates."""

    name = "surface"

    def __init__(self, world: World, ladder: np.ndarray | None = None) -> None:
        self.world = world
        self.ladder = world.ladder if ladder is None else ladder
        self.surface: np.ndarray | None = None
        self.solved_at = 0
        self.rows = np.arange(world.inventory.size)

    def rates(self, period: int) -> np.ndarray:  # [R, P - period, K]
        raise NotImplementedError

    def needs_solve(self, period: int) -> bool:
        return self.surface is None or bool(self.world.new_event[period])

    def solve(self, period: int, stock: np.ndarray, rates: np.ndarray | None = None) -> None:
        """Solve the DP from ``period`` on (``rates`` default to :meth:`rates`)."""
        w = self.world
        rates = self.rates(period) if rates is None else rates
        # Zero-demand periods after the end leave every value unchanged (V(n, t) = V(n, t+1)),
        # so padding to the full horizon and the opening stock keeps one compiled shape.
        rates = np.pad(rates, ((0, 0), (0, w.hours.size - rates.shape[1]), (0, 0)))
        sol = solve_surfaces(
            rates,
            self.ladder,
            np.maximum(w.inventory, stock),
            unit_cost=w.unit_cost if w.profit else 0.0,
            salvage=w.salvage,
        )
        # Exact (float64) ladder prices from the index, not the float32 price surface.
        index = np.asarray(sol.index)
        self.surface = np.take_along_axis(
            self.ladder, index.reshape(index.shape[0], -1), axis=1
        ).reshape(index.shape)
        self.solved_at = period

    def propose(self, period: int, stock: np.ndarray) -> np.ndarray:
        if self.needs_solve(period):
            self.solve(period, stock)
        assert self.surface is not None
        return np.asarray(self.surface[self.rows, stock, period - self.solved_at])

    def observe(self, period: int, price: np.ndarray, sold: np.ndarray, stock: np.ndarray) -> None:
        return None


class OraclePolicy(SurfacePolicy):
    """Full information: the DP on the true expected demand over the whole allowed range."""

    name = "oracle"

    def __init__(self, world: World) -> None:
        super().__init__(world, world.full_ladder)

    def rates(self, period: int) -> np.ndarray:
        w = self.world
        return w.truth.expected_rates(self.ladder, period, w.intensity_forecast(period))


def fluid_bound(world: World, *, multipliers: int = 400) -> float:
    r"""An upper bound on the expected objective of any policy: the fluid relaxation with
    the whole event schedule known in advance.

    For each row, with true expected demand ``λ_t(p)`` on the full-range grid, unit cost
    ``c`` (profit objective) and salvage ``s``, weak Lagrangian duality on the stock
    constraint gives, for every multiplier ``μ ≥ 0``,

    .. math:: E[\text{objective}] \le \sum_t \max\big(0, \max_p (p - c - s - μ) λ_t(p)\big)
              + (s + μ)\, n

    (sales never exceed demand, so a period's term is at most its best price's, and
    ``μ (n − Σ sales) ≥ 0``). The bound is the minimum over a grid of ``μ`` per row, summed
    over rows (Gallego & van Ryzin 1994, the deterministic problem). It holds exactly for
    memoryless demand, negative-binomial noise and returns; with a choice truth it prices
    each variant with the others at list and in stock, so spill-over can exceed it.

    Returns:
        The bound on the total objective (revenue or profit plus salvage).
    """
    w = world
    rates = w.truth.expected_rates(w.full_ladder, 0, w.intensity)  # [R, P, K]
    cost = w.unit_cost if w.profit else np.zeros_like(w.unit_cost)
    margin = w.full_ladder - (cost + w.salvage)[:, None]  # [R, K]
    top = float(w.full_ladder.max())
    mus = np.concatenate([[0.0], np.geomspace(1e-3, top, multipliers)])
    total = 0.0
    for r in range(rates.shape[0]):
        m = margin[r][None, None, :] - mus[:, None, None]  # [M, 1, K]
        per_period = np.maximum(0.0, (m * rates[r][None]).max(axis=2)).sum(axis=1)  # [M]
        values = per_period + (w.salvage[r] + mus) * w.inventory[r]
        total += float(values.min())
    return total


class ThompsonPolicy:
    """TS-update with inventory (Ferreira, Simchi-Levi & Wang 2018), Gamma-Poisson per price.

    Prior per row and ladder price: Gamma(shape=1, rate=1/m) with ``m = inventory / P`` (the
    demand per period that would just sell the stock), a neutral guess.
    """

    name = "thompson"

    def __init__(self, world: World, *, rng: np.random.Generator) -> None:
        self.world = world
        self.rng = rng
        r, k = world.ladder.shape
        mean = np.maximum(world.inventory / world.hours.size, 1e-3)
        self.shape = np.ones((r, k))
        self.rate = np.broadcast_to(1.0 / mean[:, None], (r, k)).copy()
        self.choice = np.zeros(r, dtype=np.int64)
        self.rows = np.arange(r)

    def propose(self, period: int, stock: np.ndarray) -> np.ndarray:
        w = self.world
        theta = self.rng.gamma(self.shape, 1.0 / self.rate)  # [R, K] demand per period
        capacity = stock / (w.hours.size - period)
        x = lp_price_mix(w.ladder, theta, capacity)  # [R, K]
        k = w.ladder.shape[1]
        u = np.asarray(self.rng.random(x.shape[0]))
        cum = np.cumsum(x, axis=1)
        pick = (u[:, None] < cum).argmax(axis=1)
        none = u >= cum[:, -1]  # "no sale": offer the top price
        self.choice = np.where(none, k - 1, pick)
        return w.ladder[self.rows, self.choice]

    def observe(self, period: int, price: np.ndarray, sold: np.ndarray, stock: np.ndarray) -> None:
        w = self.world
        # Learn the arm actually served (guardrails may have moved it).
        served = np.abs(w.ladder - price[:, None]).argmin(axis=1)
        live = stock + sold > 0
        self.shape[self.rows[live], served[live]] += sold[live]
        self.rate[self.rows[live], served[live]] += 1.0


def lp_price_mix(prices: np.ndarray, demand: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """Solve ``max Σ p_k d_k x_k  s.t.  Σ d_k x_k ≤ c, Σ x_k ≤ 1, x ≥ 0`` for every row.

    The optimum lies on the upper concave envelope of the points ``(d_k, p_k d_k)`` and the
    origin (no sale), at demand ``min(c, d of the revenue-maximising point)``, so it mixes at
    most two prices; every pair is enumerated (vectorised over rows).

    Args:
        prices, demand: ``[R, K]``; capacity: ``[R]`` (≥ 0).

    Returns:
        ``x [R, K]``, the probability of offering each price (``1 − Σ x`` is no sale).
    """
    r, k = prices.shape
    d = np.concatenate([np.zeros((r, 1)), demand], axis=1)  # point 0 = no sale
    rev = np.concatenate([np.zeros((r, 1)), prices * demand], axis=1)
    c = capacity[:, None, None]
    di, dj = d[:, :, None], d[:, None, :]
    ri, rj = rev[:, :, None], rev[:, None, :]
    # Single point i used with probability one (if it fits), as pair (i, i).
    # Pair (i, j) with d_i <= c < d_j: weight w on j so that demand equals c.
    span = np.where(dj > di, dj - di, 1.0)
    wgt = np.clip((c - di) / span, 0.0, 1.0)
    pair_ok = (di <= c) & (dj > c) & (dj > di)
    pair_rev = np.where(pair_ok, (1 - wgt) * ri + wgt * rj, -np.inf)
    single_ok = d <= capacity[:, None]
    single_rev = np.where(single_ok, rev, -np.inf)
    eye = np.eye(k + 1, dtype=bool)[None]
    value = np.where(eye, single_rev[:, :, None], pair_rev)
    flat = value.reshape(r, -1).argmax(axis=1)
    i, j = np.divmod(flat, k + 1)
    w_j = np.where(i == j, 0.0, wgt.reshape(r, -1)[np.arange(r), flat])
    x = np.zeros((r, k + 1))
    x[np.arange(r), i] += 1.0 - w_j
    x[np.arange(r), j] += w_j
    return x[:, 1:]
