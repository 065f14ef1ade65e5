"""Closed-loop drop simulator: policies price a simulated drop on common random demand.

A :class:`~pricing.scenario.Scenario` describes a drop and the data a shop has;
:func:`~pricing.world.build_world` makes it concrete (the truth on one side, what production
sees on the other). :func:`simulate` runs every policy through the same hours against the
same shoppers for each seed (common random numbers: period ``t`` of row ``r`` uses the same
uniform ``u_rt`` in every policy and demand is the quantile ``D = F⁻¹(u_rt; λ_r(p_t, t))``
of the truth's distribution, so a policy that charges more sees fewer units from the same
shoppers). Served prices pass the path guardrails (:func:`pricing.guardrails.guard_served`).

Policies: ``fixed``, ``oracle`` (full information) and ``thompson`` are in
:mod:`pricing.baselines`; ``engine`` is the product at its defaults (:mod:`pricing.engine`),
which sees the event log, its sales and stock-outs, never the truth.

The report per policy: revenue, units, sell-through, stock-outs, the objective as a percent
of the full-information policy's (``pct_of_oracle``, per seed on the same shoppers, then
averaged) and of the fluid upper bound (``pct_of_bound``,
:func:`pricing.baselines.fluid_bound`), each with a 95 % t-interval over seeds. The bound
holds for the expected objective: a single lucky seed may land above it, a mean over seeds
of any policy does not (up to sampling error).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from scipy import stats

from pricing.baselines import (
    FixedPolicy,
    OraclePolicy,
    Policy,
    ThompsonPolicy,
    fluid_bound,
    lp_price_mix,
)
from pricing.engine import EnginePolicy
from pricing.exceptions import ScenarioError
from pricing.guardrails import guard_served, initial_served_state
from pricing.scenario import Scenario
from pricing.world import World, build_world, shop_history

__all__ = [
    "POLICIES",
    "EnginePolicy",
    "FixedPolicy",
    "OraclePolicy",
    "PolicyRun",
    "PolicySummary",
    "SimulationReport",
    "ThompsonPolicy",
    "World",
    "build_world",
    "fluid_bound",
    "lp_price_mix",
    "run_policy",
    "simulate",
]

POLICIES: tuple[str, ...] = ("fixed", "oracle", "engine", "thompson")


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


def run_policy(
    world: World,
    policy: Policy,
    uniforms: np.ndarray,
    returns: np.ndarray | None = None,
    releases: np.ndarray | None = None,
) -> PolicyRun:
    """Run one policy through every open hour of ``world`` on the demand draws ``uniforms``.

    Args:
        world: from :func:`build_world`.
        policy: the policy (fresh: policies keep state).
        uniforms: ``[R, P]`` uniforms in (0, 1) (common random numbers across policies).
        returns: ``[R, P]`` uniforms for the returns of each period's sales (default 0.5).
        releases: ``[R, P]`` units put on the shelf as period ``t`` opens, on top of
            ``world.inventory`` at the start (stock released in waves; default none).

    Returns:
        :class:`PolicyRun`. Revenue is net of refunds; returned units go back on the shelf
        (those due after the drop count at their salvage value).
    """
    r, p_len = uniforms.shape
    truth = world.truth
    u_ret = np.full((r, p_len), 0.5) if returns is None else returns
    stock = world.inventory.copy()
    state = initial_served_state(r)
    shoppers = truth.initial_state()
    prices = np.zeros((r, p_len))
    sales = np.zeros((r, p_len))
    refunds = 0.0
    returned = np.zeros(r, dtype=np.int64)
    bound = 0
    soldout_at = np.full(r, p_len)
    for t in range(p_len):
        if world.window_opens[t]:
            state = initial_served_state(r)
            shoppers = truth.open_window(shoppers)
        back = shoppers.returns_due[:, t]
        stock = stock + back + (0 if releases is None else releases[:, t].astype(np.int64))
        returned += back
        refunds += float(shoppers.refunds_due[:, t].sum())
        proposal = policy.propose(t, stock)
        price, code, state = guard_served(proposal, state, world.guardrails)
        bound += int(np.count_nonzero(code))
        lam = truth.rates(price, t, stock, shoppers)
        sold = np.minimum(truth.draw(lam, uniforms[:, t]), stock).astype(np.int64)
        stock = stock - sold
        shoppers = truth.after_sales(shoppers, t, price, lam, sold, u_ret[:, t])
        soldout_at = np.where((stock == 0) & (soldout_at == p_len) & (sold > 0), t, soldout_at)
        prices[:, t] = price
        sales[:, t] = sold
        policy.observe(t, price, sold, stock)
    late = shoppers.returns_due[:, p_len:].sum(axis=1)
    stock = stock + late
    refunds += float(shoppers.refunds_due[:, p_len:].sum())
    net_units = sales.sum(axis=1) - returned - late
    revenue = float(np.sum(prices * sales)) - refunds
    units = float(net_units.sum())
    cost = float(np.sum(world.unit_cost * net_units)) if world.profit else 0.0
    objective = revenue - cost + float(np.sum(world.salvage * stock))
    return PolicyRun(
        revenue=revenue,
        objective=objective,
        units=units,
        sell_through=units
        / float(world.inventory.sum() + (0 if releases is None else releases.sum())),
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
        history = (
            shop_history(world, e.history_hours, np.random.default_rng([seed, 11]))
            if e.history_hours
            else None
        )
        return EnginePolicy(
            world,
            history=history,
            compiled_fit_max_rows=e.compiled_fit_max_rows,
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
    pct_of_bound: float
    pct_of_bound_ci: tuple[float, float]
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
            "pct_of_bound": self.pct_of_bound,
            "pct_of_bound_ci": list(self.pct_of_bound_ci),
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
    bound: float
    policies: dict[str, PolicySummary]
    runs: dict[str, list[PolicyRun]] = field(repr=False)
    row_keys: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    """``(sku, market)`` of each row of the runs' price and sales paths."""
    inventory: tuple[int, ...] = field(default=(), repr=False)
    """Units each row starts with."""
    event_periods: tuple[int, ...] = field(default=(), repr=False)
    """Open periods where an event became visible (the first period excluded)."""

    def to_dict(self) -> dict[str, Any]:
        """``{"scenario", "seeds", "rows", "hours", "bound", "policies": {name: {...}}}``."""
        return {
            "scenario": self.scenario,
            "seeds": self.seeds,
            "rows": self.rows,
            "hours": self.hours,
            "bound": self.bound,
            "policies": {k: v.to_dict() for k, v in self.policies.items()},
        }

    def __str__(self) -> str:
        lines = [
            f"{self.scenario}: {self.seeds} seed(s), {self.rows} rows, {self.hours} h, "
            f"upper bound {self.bound:.2f}"
        ]
        for name, s in self.policies.items():
            pct = "" if s.pct_of_oracle is None else f"  {s.pct_of_oracle:6.1f}% of oracle"
            pct += f"  {s.pct_of_bound:6.1f}% of bound"
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
    bound = fluid_bound(world)
    runs: dict[str, list[PolicyRun]] = {p: [] for p in policies}
    shape = (world.inventory.size, world.hours.size)
    for seed in seed_list:
        rng = np.random.default_rng([seed, 1])
        uniforms = np.clip(rng.random(shape), 1e-12, 1 - 1e-12)
        returns = rng.random(shape)
        for name in policies:
            if progress is not None:
                progress(name, seed)
            policy = _make_policy(name, world, scenario, seed)
            runs[name].append(run_policy(world, policy, uniforms, returns))
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
        share = 100.0 * obj / bound if bound > 0 else np.full(obj.size, np.nan)
        summaries[name] = PolicySummary(
            revenue=float(rev.mean()),
            revenue_ci=_interval(rev),
            objective=float(obj.mean()),
            pct_of_oracle=pct,
            pct_of_oracle_ci=ci,
            pct_of_bound=float(share.mean()),
            pct_of_bound_ci=_interval(share),
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
        bound=bound,
        policies=summaries,
        runs=runs,
        row_keys=tuple(zip(world.sku.tolist(), world.market.tolist(), strict=True)),
        inventory=tuple(int(n) for n in world.inventory),
        event_periods=tuple(int(t) for t in np.flatnonzero(world.new_event[1:]) + 1),
    )
