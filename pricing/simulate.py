"""Closed-loop drop simulator: policies price a simulated drop on common random demand.

A :class:`~pricing.scenario.Scenario` gives every SKU-market row its true demand (see the
scenario module for the formula), its stock, the selling windows and an event schedule.
:func:`simulate` builds the world for each seed, then runs every policy through the same
hours against the same demand draws (common random numbers: period ``t`` of row ``r`` uses
the same uniform ``u_rt`` in every policy and demand is the Poisson quantile
``D = F⁻¹(u_rt; λ_r(p_t, t))``, so a policy that charges more sees fewer units from the same
shoppers). Served prices pass the path guardrails (:func:`pricing.guardrails.guard_served`).

Policies:

- ``fixed``: the list price (inside guardrails), all drop long.
- ``oracle``: the DP (:func:`pricing.policy.solve_surfaces`) on the **true** demand, with the
  intensity forecast from the events seen so far (it learns of an event when it happens,
  never before) and re-solved whenever one happens.
- ``engine``: what the product does. Explores prices around the list price for the first
  ``warmup_hours``, then fits :func:`pricing.model.fit_elasticity` (category priors,
  censoring at sell-outs, intensity terms, daily profile) on what it observed, prices from
  the DP surfaces of the fit, re-fits every ``refit_every_hours`` and when a window opens,
  and re-solves when an event happens.
- ``thompson``: Thompson sampling with inventory, TS-update of Ferreira, Simchi-Levi & Wang
  (2018): each period draw per-price demand means from independent Gamma-Poisson
  posteriors, solve the LP ``max Σ p_k d_k x_k  s.t.  Σ d_k x_k ≤ n_t / (T − t),
  Σ x_k ≤ 1`` and offer price ``k`` with probability ``x_k``; the highest ladder price stands
  in for the paper's "no sale" price.

The report per policy: revenue, units, sell-through, stock-outs, the objective as a percent
of the oracle's (per seed, then averaged), each with a 95 % t-interval over seeds.

References:
    Gallego, G. and van Ryzin, G. (1994). Management Science 40(8), 999-1020.
    Ferreira, K. J., Simchi-Levi, D. and Wang, H. (2018). Online network revenue management
    using Thompson sampling. Operations Research 66(6), 1586-1602.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NamedTuple, Protocol

import numpy as np
import pandas as pd
from scipy import stats

from pricing.exceptions import GuardrailError, ScenarioError
from pricing.guardrails import (
    GuardrailSpec,
    GuardrailTable,
    candidate_ladder,
    guard_served,
    initial_served_state,
    stack_guardrails,
)
from pricing.intensity import forecast_intensity
from pricing.policy import solve_surfaces
from pricing.scenario import Scenario

__all__ = [
    "POLICIES",
    "PolicyRun",
    "PolicySummary",
    "SimulationReport",
    "World",
    "build_world",
    "run_policy",
    "simulate",
]

POLICIES: tuple[str, ...] = ("fixed", "oracle", "engine", "thompson")
_START = pd.Timestamp("2026-01-05 00:00", tz="UTC")  # hour 0 of every simulated drop
_PAD_PERIODS = 24


class World(NamedTuple):
    """One scenario made concrete: ``R`` SKU-market rows over ``P`` open hours.

    Attributes:
        sku, market, category: ``[R]`` row keys.
        list_price, unit_cost, salvage: ``[R]``.
        inventory: ``[R]`` units at the start.
        log_base: ``[R]`` log units/hour at list price, intensity 0, average hour.
        elasticity, intensity_lift, intensity_shift: ``[R]`` true β, γ, δ.
        log_profile: ``[24]`` log daily profile (mean of its exp is one).
        hours: ``[P]`` clock hour of each open period.
        window_opens: ``[P]`` True where a selling window opens.
        components: ``[C, R, P]`` intensity per event type at each open period (events seen
            by the period's start).
        half_lives: ``[C]`` hours.
        new_event: ``[P]`` True where an event became visible since the previous period.
        specs: ``R`` guardrail specs; guardrails: the same stacked as arrays.
        ladder: ``[R, K]`` DP ladder per row (inside the static guardrails; padded by
            repeating the top price).
        profit: True when the objective is profit net of unit cost.
    """

    sku: np.ndarray
    market: np.ndarray
    category: np.ndarray
    list_price: np.ndarray
    unit_cost: np.ndarray
    salvage: np.ndarray
    inventory: np.ndarray
    log_base: np.ndarray
    elasticity: np.ndarray
    intensity_lift: np.ndarray
    intensity_shift: np.ndarray
    log_profile: np.ndarray
    hours: np.ndarray
    window_opens: np.ndarray
    components: np.ndarray
    half_lives: np.ndarray
    new_event: np.ndarray
    specs: tuple[GuardrailSpec, ...]
    guardrails: GuardrailTable
    ladder: np.ndarray
    profit: bool

    @property
    def intensity(self) -> np.ndarray:
        """``[R, P]`` true intensity at each open period."""
        return self.components.sum(axis=0)

    def true_rate(self, price: np.ndarray, period: int) -> np.ndarray:
        """Expected units of each row in open period ``period`` at ``price`` ``[R]``."""
        inten = self.intensity[:, period]
        x = np.log(price / self.list_price)
        eta = (
            self.log_base
            + self.log_profile[self.hours[period] % 24]
            + self.intensity_lift * inten
            + (self.elasticity + self.intensity_shift * inten) * x
        )
        return np.exp(eta)

    def intensity_forecast(self, period: int) -> np.ndarray:
        """``[R, P - period]`` intensity expected for the rest of the drop, from events seen.

        Each event type's current component decays with its half-life
        (:func:`pricing.intensity.forecast_intensity`); future events are unknown.
        """
        offsets = (self.hours[period:] - self.hours[period]).astype(np.float64)
        out = np.zeros((self.components.shape[1], offsets.size))
        for c, half in enumerate(self.half_lives):
            out += forecast_intensity(self.components[c, :, period], offsets, float(half))
        return out


def build_world(scenario: Scenario, *, source: str = "<scenario>") -> World:
    """Expand a scenario into arrays (rows are SKU-markets with stock).

    Raises:
        ScenarioError: a SKU's guardrails cannot be satisfied (names the SKU).
    """
    markets = {m.name: m for m in scenario.markets}
    rows: list[tuple[Any, Any]] = []
    skus = scenario.all_skus()
    for sku in skus:
        for mname in markets:
            if sku.inventory.get(mname, 0) > 0:
                rows.append((sku, markets[mname]))
    if not rows:
        raise ScenarioError(f"{source}: skus.*.inventory: no SKU has stock in any market")
    r = len(rows)
    windows = scenario.selling_windows
    hours = np.concatenate([np.arange(w.start_hour, w.end_hour) for w in windows])
    opens = np.isin(hours, [w.start_hour for w in windows])
    types = sorted(scenario.event_types)
    comp = np.zeros((len(types), r, hours.size))
    row_sku = np.array([s.sku for s, _ in rows])
    row_mkt = np.array([m.name for _, m in rows])
    window = scenario.intensity_window_hours
    new_event = np.zeros(hours.size, dtype=bool)
    for ev in scenario.events:
        c = types.index(ev.type)
        et = scenario.event_types[ev.type]
        hit = np.ones(r, dtype=bool)
        if ev.skus is not None:
            hit &= np.isin(row_sku, ev.skus)
        if ev.markets is not None:
            hit &= np.isin(row_mkt, ev.markets)
        age = hours - ev.hour
        live = (age >= 0) & (age <= window)
        decay = np.where(
            live, et.weight * ev.size * np.exp2(-np.maximum(age, 0) / et.half_life_hours), 0.0
        )
        comp[c] += hit[:, None] * decay[None, :]
        first = np.argmax(age >= 0) if np.any(age >= 0) else None
        if first is not None and hit.any():
            new_event[first] = True
    new_event[0] = True
    guard = scenario.guardrails
    specs: list[GuardrailSpec] = []
    ladders: list[np.ndarray] = []
    eng = scenario.engine
    for sku, _ in rows:
        try:
            spec = guard.merged(sku.guardrails).to_spec(sku.unit_cost)
        except GuardrailError as err:
            raise ScenarioError(f"{source}: skus[{sku.sku}].guardrails: {err}") from None
        specs.append(spec)
        ladders.append(
            candidate_ladder(spec, sku.list_price, size=eng.ladder_size, spread=eng.ladder_spread)
        )
    k = max(lad.size for lad in ladders)
    ladder = np.stack([np.pad(lad, (0, k - lad.size), mode="edge") for lad in ladders])
    profile = scenario.profile
    return World(
        sku=row_sku,
        market=row_mkt,
        category=np.array([s.category for s, _ in rows]),
        list_price=np.array([s.list_price for s, _ in rows]),
        unit_cost=np.array([s.unit_cost for s, _ in rows]),
        salvage=np.array([s.salvage_value for s, _ in rows]),
        inventory=np.array([s.inventory[m.name] for s, m in rows], dtype=np.int64),
        log_base=np.log([s.demand.base_rate * m.demand_scale for s, m in rows]),
        elasticity=np.array([s.demand.elasticity + m.elasticity_shift for s, m in rows]),
        intensity_lift=np.array([s.demand.intensity_lift for s, _ in rows]),
        intensity_shift=np.array([s.demand.intensity_elasticity for s, _ in rows]),
        log_profile=np.log(profile),
        hours=hours.astype(np.int64),
        window_opens=opens,
        components=comp,
        half_lives=np.array([scenario.event_types[t].half_life_hours for t in types]),
        new_event=new_event,
        specs=tuple(specs),
        guardrails=stack_guardrails(specs, r),
        ladder=ladder,
        profit=scenario.objective == "profit",
    )


# ---------------------------------------------------------------------------- policies


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


class _SurfacePolicy:
    """Serves ``surface[n, t]`` of the last DP solve; subclasses supply the rates."""

    name = "surface"

    def __init__(self, world: World) -> None:
        self.world = world
        self.surface: np.ndarray | None = None
        self.solved_at = 0
        self.rows = np.arange(world.inventory.size)

    def rates(self, period: int) -> np.ndarray:  # [R, P - period, K]
        raise NotImplementedError

    def needs_solve(self, period: int) -> bool:
        return self.surface is None or bool(self.world.new_event[period])

    def solve(self, period: int, stock: np.ndarray) -> None:
        w = self.world
        rates = self.rates(period)
        # Zero-demand periods after the end leave every value unchanged (V(n, t) = V(n, t+1)),
        # so padding to the full horizon and the opening stock keeps one compiled shape.
        rates = np.pad(rates, ((0, 0), (0, w.hours.size - rates.shape[1]), (0, 0)))
        sol = solve_surfaces(
            rates,
            w.ladder,
            np.maximum(w.inventory, stock),
            unit_cost=w.unit_cost if w.profit else 0.0,
            salvage=w.salvage,
        )
        # Exact (float64) ladder prices from the index, not the float32 price surface.
        index = np.asarray(sol.index)
        self.surface = np.take_along_axis(
            w.ladder, index.reshape(index.shape[0], -1), axis=1
        ).reshape(index.shape)
        self.solved_at = period

    def propose(self, period: int, stock: np.ndarray) -> np.ndarray:
        if self.needs_solve(period):
            self.solve(period, stock)
        assert self.surface is not None
        return self.surface[self.rows, stock, period - self.solved_at]

    def observe(self, period: int, price: np.ndarray, sold: np.ndarray, stock: np.ndarray) -> None:
        return None


class OraclePolicy(_SurfacePolicy):
    """DP on the true demand with the intensity forecast from events seen so far."""

    name = "oracle"

    def rates(self, period: int) -> np.ndarray:
        w = self.world
        inten = w.intensity_forecast(period)[:, :, None]  # [R, T, 1]
        x = np.log(w.ladder / w.list_price[:, None])[:, None, :]  # [R, 1, K]
        prof = w.log_profile[w.hours[period:] % 24][None, :, None]
        eta = (
            w.log_base[:, None, None]
            + prof
            + w.intensity_lift[:, None, None] * inten
            + (w.elasticity[:, None, None] + w.intensity_shift[:, None, None] * inten) * x
        )
        return np.exp(eta)


class EnginePolicy(_SurfacePolicy):
    """Warm-up exploration, then fit → DP surfaces, re-fit on a cadence and at window opens."""

    name = "engine"

    def __init__(
        self,
        world: World,
        *,
        priors: dict[str, float],
        refit_every: int,
        warmup: int,
        multipliers: Sequence[float],
        prior_sd: float,
        use_intensity: bool = True,
        compiled_fit_max_rows: int = 200,
        history_hours: int = 0,
        rng: np.random.Generator | None = None,
        fitter: Callable[..., Any] | None = None,
    ) -> None:
        super().__init__(world)
        if fitter is None:
            from pricing.model import fit_elasticity

            # The compiled fit specialises on the number of sold-out cells, so a drop with
            # many rows selling out at different hours would compile at almost every re-fit;
            # above ``compiled_fit_max_rows`` rows the same fit runs eagerly instead.
            compiled = world.inventory.size <= compiled_fit_max_rows
            fitter = partial(fit_elasticity, jit=compiled)
        self.fitter = fitter
        self.use_intensity = use_intensity
        self.priors = {c: (m, prior_sd) for c, m in priors.items()}
        self.refit_every = refit_every
        self.warmup = warmup
        mult = np.asarray(multipliers, dtype=np.float64)
        r = world.inventory.size
        # Rows start at different points of the cycle so every hour sees every multiplier.
        cycle = np.stack([np.roll(mult, i) for i in range(r)])
        self.explore = world.guardrails.snap(world.list_price[:, None] * cycle)  # [R, M]
        self.fit: Any = None
        self.fit_rows: np.ndarray | None = None
        self.last_fit = -1
        self.log: list[pd.DataFrame] = []
        self.keys = list(zip(world.sku.tolist(), world.market.tolist(), strict=True))
        if history_hours:
            self._observe_history(history_hours, rng or np.random.default_rng(0))

    def _observe_history(self, hours: int, rng: np.random.Generator) -> None:
        """Sales of the ``hours`` before the drop: true demand at intensity 0, no stock-outs."""
        w = self.world
        first = int(w.hours[0]) - hours
        for h in range(first, int(w.hours[0])):
            price = self.explore[self.rows, (h - first) % self.explore.shape[1]]
            x = np.log(price / w.list_price)
            lam = np.exp(w.log_base + w.log_profile[h % 24] + w.elasticity * x)
            self.log.append(
                pd.DataFrame(
                    {
                        "sku": w.sku,
                        "market": w.market,
                        "period": _START + pd.Timedelta(hours=h),
                        "price": price,
                        "quantity": rng.poisson(lam).astype(np.float64),
                        "intensity": 0.0,
                        "sold_out": False,
                    }
                )
            )

    def propose(self, period: int, stock: np.ndarray) -> np.ndarray:
        w = self.world
        if period < self.warmup:
            return self.explore[self.rows, period % self.explore.shape[1]]
        due = (
            self.fit is None
            or period - self.last_fit >= self.refit_every
            or bool(w.window_opens[period])
        )
        if due:
            self.refit(period)
            self.solve(period, stock)
        return super().propose(period, stock)

    def refit(self, period: int) -> None:
        panel = self._padded_panel(period)
        cats = dict(zip(self.world.sku.tolist(), self.world.category.tolist(), strict=True))
        self.fit = self.fitter(
            panel,
            sku="sku",
            market="market",
            period="period",
            price="price",
            quantity="quantity",
            intensity="intensity" if self.use_intensity else None,
            sold_out="sold_out",
            priors=self.priors or None,
            categories=cats,
            init=self.fit,
        )
        index = {k: i for i, k in enumerate(self.fit.keys)}
        self.fit_rows = np.array([index[k] for k in self.keys])
        self.last_fit = period

    def _padded_panel(self, period: int) -> pd.DataFrame:
        """Observed panel plus zero-information cells up to a fixed number of periods.

        The fit compiles one program per panel shape; padding every row to the next
        multiple of ``_PAD_PERIODS`` observed periods keeps the shape fixed between re-fits
        (one compile per bucket, reused across seeds). A pad cell is a sold-out period with
        zero units, whose likelihood is P(D ≥ 0) = 1: it carries no information.
        """
        panel = pd.concat(self.log, ignore_index=True)
        counts = panel.groupby(["sku", "market"], sort=False).size()
        target = int(-(-counts.max() // _PAD_PERIODS) * _PAD_PERIODS)
        need = target - counts
        need = need[need > 0]
        if need.empty:
            return panel
        last = panel.groupby(["sku", "market"], sort=False).last()
        pads = []
        for (sku, market), k in need.items():
            row = last.loc[(sku, market)]
            pads.append(
                pd.DataFrame(
                    {
                        "sku": sku,
                        "market": market,
                        "period": row["period"] + pd.to_timedelta(10_000 + np.arange(k), "h"),
                        "price": row["price"],
                        "quantity": 0.0,
                        "intensity": 0.0,
                        "sold_out": True,
                    }
                )
            )
        return pd.concat([panel, *pads], ignore_index=True)

    def rates(self, period: int) -> np.ndarray:
        w = self.world
        assert self.fit is not None and self.fit_rows is not None
        inten = w.intensity_forecast(period) if self.use_intensity else None
        # demand_rates runs over the fit's rows; place our rows in its order.
        order = np.empty_like(self.fit_rows)
        order[self.fit_rows] = np.arange(self.fit_rows.size)
        rates = self.fit.demand_rates(
            w.ladder[order],
            intensity=None if inten is None else inten[order],
            hours=w.hours[period:] % 24,
        )
        return np.asarray(rates)[self.fit_rows]

    def observe(self, period: int, price: np.ndarray, sold: np.ndarray, stock: np.ndarray) -> None:
        w = self.world
        was_open = stock + sold > 0  # a row with nothing to sell tells nothing
        if not was_open.any():
            return
        self.log.append(
            pd.DataFrame(
                {
                    "sku": w.sku[was_open],
                    "market": w.market[was_open],
                    "period": _START + pd.Timedelta(hours=int(w.hours[period])),
                    "price": price[was_open],
                    "quantity": sold[was_open].astype(np.float64),
                    "intensity": w.intensity[was_open, period],
                    "sold_out": stock[was_open] == 0,
                }
            )
        )


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
        u = self.rng.random(x.shape[0])
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


# ---------------------------------------------------------------------------- running


class PolicyRun(NamedTuple):
    """One policy on one seed.

    Attributes:
        revenue: sales revenue; objective: revenue (or profit) plus salvage of what is left.
        units: units sold; sell_through: units / starting stock.
        stockouts: rows that sold out with open hours still to go.
        price_path: ``[R, P]`` served prices; sales_path: ``[R, P]`` units sold.
        bound_share: share of served prices a guardrail moved.
    """

    revenue: float
    objective: float
    units: float
    sell_through: float
    stockouts: int
    price_path: np.ndarray
    sales_path: np.ndarray
    bound_share: float


def run_policy(world: World, policy: Policy, uniforms: np.ndarray) -> PolicyRun:
    """Run one policy through every open hour of ``world`` on the demand draws ``uniforms``.

    Args:
        world: from :func:`build_world`.
        policy: the policy (fresh: policies keep state).
        uniforms: ``[R, P]`` uniforms in (0, 1) (common random numbers across policies).

    Returns:
        :class:`PolicyRun`.
    """
    r, p_len = uniforms.shape
    stock = world.inventory.copy()
    state = initial_served_state(r)
    prices = np.zeros((r, p_len))
    sales = np.zeros((r, p_len))
    bound = 0
    soldout_at = np.full(r, p_len)
    for t in range(p_len):
        if world.window_opens[t]:
            state = initial_served_state(r)
        proposal = policy.propose(t, stock)
        price, code, state = guard_served(proposal, state, world.guardrails)
        bound += int(np.count_nonzero(code))
        lam = world.true_rate(price, t)
        demand = stats.poisson.ppf(uniforms[:, t], lam)
        sold = np.minimum(demand, stock).astype(np.int64)
        stock = stock - sold
        soldout_at = np.where((stock == 0) & (soldout_at == p_len) & (sold > 0), t, soldout_at)
        prices[:, t] = price
        sales[:, t] = sold
        policy.observe(t, price, sold, stock)
    revenue = float(np.sum(prices * sales))
    units = float(sales.sum())
    margin = revenue - (float(np.sum(world.unit_cost * sales.sum(axis=1))) if world.profit else 0.0)
    objective = margin + float(np.sum(world.salvage * stock))
    return PolicyRun(
        revenue=revenue,
        objective=objective,
        units=units,
        sell_through=units / float(world.inventory.sum()),
        stockouts=int(np.sum(soldout_at < p_len - 1)),
        price_path=prices,
        sales_path=sales,
        bound_share=bound / float(r * p_len),
    )


def _make_policy(name: str, world: World, scenario: Scenario, seed: int) -> Policy:
    if name == "fixed":
        return FixedPolicy(world)
    if name == "oracle":
        return OraclePolicy(world)
    if name == "thompson":
        return ThompsonPolicy(world, rng=np.random.default_rng([seed, 7]))
    if name == "engine":
        e = scenario.engine
        return EnginePolicy(
            world,
            priors=dict(scenario.priors),
            refit_every=e.refit_every_hours,
            warmup=e.warmup_hours,
            multipliers=e.warmup_multipliers,
            prior_sd=e.prior_sd,
            use_intensity=e.use_intensity,
            compiled_fit_max_rows=e.compiled_fit_max_rows,
            history_hours=e.history_hours,
            rng=np.random.default_rng([seed, 11]),
        )
    raise ScenarioError(f"unknown policy {name!r}, allowed {list(POLICIES)}")


def _interval(values: np.ndarray) -> tuple[float, float]:
    n = values.size
    mean = float(values.mean())
    if n < 2:
        return mean, mean
    half = float(stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / np.sqrt(n))
    return mean - half, mean + half


@dataclass(frozen=True)
class PolicySummary:
    """One policy over all seeds (means and 95 % t-intervals)."""

    revenue: float
    revenue_ci: tuple[float, float]
    objective: float
    pct_of_oracle: float | None
    pct_of_oracle_ci: tuple[float, float] | None
    units: float
    sell_through: float
    stockouts: float
    guardrail_bound_share: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping."""
        return {
            "revenue": self.revenue,
            "revenue_ci": list(self.revenue_ci),
            "objective": self.objective,
            "pct_of_oracle": self.pct_of_oracle,
            "pct_of_oracle_ci": None
            if self.pct_of_oracle_ci is None
            else list(self.pct_of_oracle_ci),
            "units": self.units,
            "sell_through": self.sell_through,
            "stockouts": self.stockouts,
            "guardrail_bound_share": self.guardrail_bound_share,
        }


@dataclass(frozen=True)
class SimulationReport:
    """Results of :func:`simulate`: summaries per policy and the raw per-seed runs."""

    scenario: str
    seeds: int
    rows: int
    hours: int
    policies: dict[str, PolicySummary]
    runs: dict[str, list[PolicyRun]] = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """``{"scenario", "seeds", "rows", "hours", "policies": {name: {...}}}``."""
        return {
            "scenario": self.scenario,
            "seeds": self.seeds,
            "rows": self.rows,
            "hours": self.hours,
            "policies": {k: v.to_dict() for k, v in self.policies.items()},
        }

    def __str__(self) -> str:
        lines = [f"{self.scenario}: {self.seeds} seed(s), {self.rows} rows, {self.hours} h"]
        for name, s in self.policies.items():
            pct = "" if s.pct_of_oracle is None else f"  {s.pct_of_oracle:6.1f}% of oracle"
            lines.append(
                f"  {name:9s} revenue {s.revenue:12.2f} [{s.revenue_ci[0]:.2f}, "
                f"{s.revenue_ci[1]:.2f}]  sell-through {s.sell_through:5.1%}{pct}"
            )
        return "\n".join(lines)


def simulate(
    scenario: Scenario,
    *,
    seeds: int | Sequence[int] = 5,
    policies: Sequence[str] = POLICIES,
    source: str = "<scenario>",
    progress: Callable[[str, int], None] | None = None,
) -> SimulationReport:
    """Run ``policies`` on ``scenario`` for each seed, on common random numbers.

    Args:
        scenario: a validated scenario (:func:`pricing.scenario.load_scenario`).
        seeds: number of seeds (``0..n-1``) or explicit seeds.
        policies: names from :data:`POLICIES`; ``pct_of_oracle`` needs ``oracle``.
        source: file name for error messages.
        progress: called with (policy, seed) before each run.

    Returns:
        :class:`SimulationReport`.

    Raises:
        ScenarioError: an unknown policy, or guardrails a SKU cannot satisfy.

    Example:
        >>> report = simulate(load_scenario(path), seeds=3, policies=["fixed", "oracle"])  # doctest: +SKIP
        >>> report.policies["fixed"].pct_of_oracle  # doctest: +SKIP
    """
    unknown = [p for p in policies if p not in POLICIES]
    if unknown:
        raise ScenarioError(f"unknown policy {unknown}, allowed {list(POLICIES)}")
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise ScenarioError("seeds must be at least 1")
    world = build_world(scenario, source=source)
    runs: dict[str, list[PolicyRun]] = {p: [] for p in policies}
    for seed in seed_list:
        uniforms = np.random.default_rng([seed, 1]).random((world.inventory.size, world.hours.size))
        uniforms = np.clip(uniforms, 1e-12, 1 - 1e-12)
        for name in policies:
            if progress is not None:
                progress(name, seed)
            runs[name].append(
                run_policy(world, _make_policy(name, world, scenario, seed), uniforms)
            )
    oracle = np.array([r.objective for r in runs["oracle"]]) if "oracle" in runs else None
    summaries: dict[str, PolicySummary] = {}
    for name, rs in runs.items():
        rev = np.array([r.revenue for r in rs])
        obj = np.array([r.objective for r in rs])
        pct = ci = None
        if oracle is not None:
            ratio = 100.0 * obj / np.where(oracle > 0, oracle, np.nan)
            pct = float(np.nanmean(ratio))
            ci = _interval(ratio[np.isfinite(ratio)]) if np.isfinite(ratio).any() else None
        summaries[name] = PolicySummary(
            revenue=float(rev.mean()),
            revenue_ci=_interval(rev),
            objective=float(obj.mean()),
            pct_of_oracle=pct,
            pct_of_oracle_ci=ci,
            units=float(np.mean([r.units for r in rs])),
            sell_through=float(np.mean([r.sell_through for r in rs])),
            stockouts=float(np.mean([r.stockouts for r in rs])),
            guardrail_bound_share=float(np.mean([r.bound_share for r in rs])),
        )
    return SimulationReport(
        scenario=scenario.name,
        seeds=len(seed_list),
        rows=int(world.inventory.size),
        hours=int(world.hours.size),
        policies=summaries,
        runs=runs,
    )
