"""The stock planner against two simple rules, on the simulator, with the same total stock.

Run::

    python benchmarks/bench_allocation.py                   # every scenario with several markets or windows
    python benchmarks/bench_allocation.py --seeds 6 configs/scenarios/adjacent-towns.yaml
    python benchmarks/bench_allocation.py --json allocation.json

For each scenario with several markets or selling windows, each SKU's total stock (its
configured inventory summed over markets) is split three ways, per seed:

- ``planner``: :func:`pricing.allocation.plan_stock` on what production would see before
  the drop: the demand model fitted to the shop's past sales (``shop_history``, the
  scenario's own history or, where it has none, 72 hours of it), the category priors, the
  planned announcements of the event log and the engine's price grid; one slot per SKU x
  market x window;
- ``proportional``: in proportion to each market's past sales (and, across windows, to the
  past sales at the window's hours of the day);
- ``equal``: the same number of units in every market and window;
- ``true_demand`` (a reference, not a rule anyone can run): the planner on the truth's
  expected demand, to tell a weak demand estimate from a weak plan.

Each allocation is then priced through the drop by the engine at its defaults
(:class:`pricing.engine.EnginePolicy`) against the simulator's truth (the scenario's
shoppers: daily profiles, choice, returns, none of which the planner's model shares), on
the same demand draws for the three (common random numbers). A window's units go on the
shelf when it opens (``run_policy(..., releases=...)``), on top of what earlier windows left.
The profit is the simulator's objective (revenue net of refunds, salvage of what is left;
on profit drops net of the unit cost of what sold) plus the salvage of units held back.

It prints each rule's mean profit with its 95 % interval over seeds and the paired
per-seed difference planner − rule with its 95 % t-interval; ``wins`` when that interval
lies above zero.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]

from pricing.allocation import SlotDemand, plan_stock  # noqa: E402
from pricing.engine import EnginePolicy, exogenous_index  # noqa: E402
from pricing.guardrails import POLICY_EXTRAPOLATION, price_grid, trust_region  # noqa: E402
from pricing.intensity import IntensityParams  # noqa: E402
from pricing.model import fit_elasticity  # noqa: E402
from pricing.scenario import Scenario, load_scenario  # noqa: E402
from pricing.simulate import run_policy  # noqa: E402
from pricing.world import World, build_world, shop_history  # noqa: E402

PLAN_HISTORY_HOURS = 72  # past sales the plan reads where the scenario gives the engine none
PRIOR_LIFT = 0.25  # log-demand lift per unit of the index when the fit has no intensity term
MAX_LOG_VAR = 1.0  # the engine's cap on the posterior log variance
RULES = ("planner", "proportional", "equal", "true_demand")
"""``true_demand`` is a reference (the planner on the truth's demand), not a rule."""


def window_periods(world: World) -> list[np.ndarray]:
    """Open periods of each selling window, in order."""
    starts = np.flatnonzero(world.window_opens)
    ends = [*starts[1:], world.hours.size]
    return [np.arange(a, b) for a, b in zip(starts, ends, strict=True)]


def largest_remainder(total: int, weights: np.ndarray) -> np.ndarray:
    """Whole units in proportion to ``weights`` summing to ``total`` (Hamilton's method)."""
    w = np.asarray(weights, dtype=float)
    w = np.ones_like(w) if w.sum() <= 0 else w
    exact = total * w / w.sum()
    units = np.floor(exact).astype(np.int64)
    extra = total - int(units.sum())
    units[np.argsort(-(exact - units), kind="stable")[:extra]] += 1
    return units


def _per_sku(world: World, weights: np.ndarray) -> np.ndarray:
    """``[R, W]`` units: each SKU's configured total split by ``weights`` ``[R, W]``."""
    units = np.zeros_like(weights, dtype=np.int64)
    for sku in dict.fromkeys(world.sku.tolist()):
        rows = np.flatnonzero(world.sku == sku)
        total = int(world.inventory[rows].sum())
        units[rows] = largest_remainder(total, weights[rows].ravel()).reshape(rows.size, -1)
    return units


def equal_split(world: World) -> np.ndarray:
    """``[R, W]`` the same units in every market and window."""
    return _per_sku(world, np.ones((world.inventory.size, len(window_periods(world)))))


def proportional_split(world: World, history: pd.DataFrame) -> np.ndarray:
    """``[R, W]`` units in proportion to past sales per market and hour of the day."""
    hist = history.assign(hour=history["period"].dt.hour)
    by_hour = hist.groupby(["sku", "market", "hour"])["quantity"].mean()
    weights = np.zeros((world.inventory.size, len(window_periods(world))))
    for r, key in enumerate(zip(world.sku.tolist(), world.market.tolist(), strict=True)):
        for w, periods in enumerate(window_periods(world)):
            weights[r, w] = sum(
                float(by_hour.get((*key, h % 24), 0.0)) for h in world.hours[periods]
            )
    return _per_sku(world, weights)


def planner_split(
    scenario: Scenario, world: World, history: pd.DataFrame
) -> tuple[np.ndarray, float]:
    """``[R, W]`` the planner's units, and the salvage value of the units it holds back.

    Demand: the model fitted to ``history`` with the scenario's category priors, priced on
    the engine's grid (its trust region around the prices the history has seen), lifted by
    the planned announcements' index as the engine lifts an unfitted index.
    """
    planned = world._replace(events=world.events[world.events["type"] == "announcement"])
    index, _ = exogenous_index(planned, IntensityParams())
    seen = history.groupby(["sku", "market"])["price"].agg(["min", "max"])
    ladders = []
    for r, key in enumerate(zip(world.sku.tolist(), world.market.tolist(), strict=True)):
        lo = min(float(world.list_price[r]), float(seen.loc[key, "min"]))
        hi = max(float(world.list_price[r]), float(seen.loc[key, "max"]))
        edges = trust_region(world.specs[r], lo, hi)
        ladders.append(price_grid(world.specs[r], *edges))
    ladder = np.stack(ladders)
    priors = {c: scenario.prior(c) for c in set(world.category.tolist())}
    fit = fit_elasticity(
        history,
        market="market",
        sold_out="sold_out",
        priors={c: p for c, p in priors.items() if p is not None} or None,
        categories=dict(zip(world.sku.tolist(), world.category.tolist(), strict=True)),
    )
    order = [fit.keys.index(k) for k in zip(world.sku.tolist(), world.market.tolist(), strict=True)]
    full = np.ones((len(fit.keys), ladder.shape[1]))
    full[order] = ladder
    rates = np.asarray(
        fit.posterior_rates(
            full,
            hours=world.hours % 24,
            max_log_var=MAX_LOG_VAR,
            extrapolation=POLICY_EXTRAPOLATION,
        )
    )[order]
    rates = rates * np.exp(PRIOR_LIFT * index)[:, :, None]
    return _plan(world, rates, ladder)


def true_demand_split(world: World) -> tuple[np.ndarray, float]:
    """``[R, W]`` the planner's units on the truth's expected demand (a reference: what the
    plan would earn if the demand were known, no production rule can see it)."""
    rates = world.truth.expected_rates(world.ladder, 0, world.intensity)
    return _plan(world, rates, world.ladder)


def _plan(world: World, rates: np.ndarray, ladder: np.ndarray) -> tuple[np.ndarray, float]:
    """Plan ``[R, W]`` units on ``rates`` ``[R, P, K]`` over ``ladder`` ``[R, K]``."""
    windows = window_periods(world)
    slots = [
        SlotDemand(
            sku=str(world.sku[r]),
            market=str(world.market[r]),
            window=w,
            rates=rates[r, periods],
            prices=ladder[r],
            salvage=float(world.salvage[r]),
            pricing_cost=float(world.unit_cost[r]) if world.profit else 0.0,
        )
        for r in range(world.inventory.size)
        for w, periods in enumerate(windows)
    ]
    skus = dict.fromkeys(world.sku.tolist())
    totals = {s: int(world.inventory[world.sku == s].sum()) for s in skus}
    salvage = {str(s): float(world.salvage[world.sku == s][0]) for s in totals}
    plan = plan_stock(slots, totals, holdback_value=salvage)
    units = np.array([row["units"] for row in plan.rows])
    held = sum(s["held_back"] * salvage[k] for k, s in plan.skus.items())
    return units.reshape(world.inventory.size, len(windows)), float(held)


def run_allocation(
    scenario: Scenario,
    world: World,
    units: np.ndarray,
    seed: int,
    engine_history: pd.DataFrame | None,
) -> float:
    """The engine's objective on ``seed`` with ``units`` ``[R, W]`` released window by window."""
    starts = np.flatnonzero(world.window_opens)
    releases = np.zeros((world.inventory.size, world.hours.size), dtype=np.int64)
    releases[:, starts[1:]] = units[:, 1:]
    # The engine prices the drop's whole stock of a row (its DP's largest n, its level guess).
    policy = EnginePolicy(
        world._replace(inventory=units.sum(axis=1)),
        history=engine_history,
        compiled_fit_max_rows=scenario.engine.compiled_fit_max_rows,
    )
    rng = np.random.default_rng([seed, 1])
    shape = (world.inventory.size, world.hours.size)
    uniforms = np.clip(rng.random(shape), 1e-12, 1 - 1e-12)
    returns = rng.random(shape)
    run = run_policy(world._replace(inventory=units[:, 0]), policy, uniforms, returns, releases)
    return run.objective


def interval(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and 95 % t-interval over seeds."""
    mean = float(values.mean())
    if values.size < 2:
        return mean, mean, mean
    half = float(stats.t.ppf(0.975, values.size - 1) * values.std(ddof=1) / np.sqrt(values.size))
    return mean, mean - half, mean + half


def bench(scenario: Scenario, seeds: list[int]) -> dict[str, Any]:
    """Profit per rule and seed, and the planner's paired differences."""
    world = build_world(scenario)
    e = scenario.engine
    profit: dict[str, list[float]] = {r: [] for r in RULES}
    placed: dict[str, np.ndarray] = {}
    oracle = true_demand_split(world)
    for seed in seeds:
        engine_history = (
            shop_history(world, e.history_hours, np.random.default_rng([seed, 11]))
            if e.history_hours
            else None
        )
        past = engine_history
        if past is None:
            past = shop_history(world, PLAN_HISTORY_HOURS, np.random.default_rng([seed, 11]))
        planner, held = planner_split(scenario, world, past)
        splits = {
            "planner": (planner, held),
            "proportional": (proportional_split(world, past), 0.0),
            "equal": (equal_split(world), 0.0),
            "true_demand": oracle,
        }
        for rule, (units, extra) in splits.items():
            profit[rule].append(
                run_allocation(scenario, world, units, seed, engine_history) + extra
            )
            placed[rule] = placed.get(rule, 0) + units / len(seeds)
        print(
            f"  seed {seed}: " + "  ".join(f"{r} {profit[r][-1]:,.0f}" for r in RULES),
            flush=True,
        )
    arr = {r: np.array(v) for r, v in profit.items()}
    rows = list(zip(world.sku.tolist(), world.market.tolist(), strict=True))
    return {
        "scenario": scenario.name,
        "seeds": len(seeds),
        "profit": {r: interval(arr[r]) for r in RULES},
        "planner_minus": {r: interval(arr["planner"] - arr[r]) for r in RULES[1:]},
        "true_demand_minus": {r: interval(arr["true_demand"] - arr[r]) for r in RULES[:3]},
        "per_seed": {r: arr[r].tolist() for r in RULES},
        "mean_units": {
            r: {f"{s}/{m}": np.round(u[i], 1).tolist() for i, (s, m) in enumerate(rows)}
            for r, u in placed.items()
        },
    }


def several(scenario: Scenario) -> bool:
    """Whether the scenario has several markets or several selling windows."""
    return len(scenario.markets) > 1 or len(scenario.selling_windows) > 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenarios", nargs="*", type=Path)
    ap.add_argument("--seeds", type=int, default=12)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    paths = args.scenarios or sorted((ROOT / "configs" / "scenarios").glob("*.yaml"))
    results = []
    for path in paths:
        scenario = load_scenario(path)
        if not several(scenario):
            continue
        print(
            f"{scenario.name} ({len(scenario.markets)} markets, "
            f"{len(scenario.selling_windows)} windows, {args.seeds} seeds)",
            flush=True,
        )
        out = bench(scenario, list(range(args.seeds)))
        results.append(out)
        for rule, (m, lo, hi) in out["profit"].items():
            line = f"  {rule:<13} profit {m:>10,.0f}  [{lo:,.0f}, {hi:,.0f}]"
            if rule in out["planner_minus"]:
                d, dlo, dhi = out["planner_minus"][rule]
                verdict = "wins" if dlo > 0 else ("loses" if dhi < 0 else "no clear difference")
                if out["seeds"] < 2:
                    verdict = "one seed: no interval"
                line += f"   planner - {rule}: {d:+,.0f} [{dlo:+,.0f}, {dhi:+,.0f}] {verdict}"
            print(line, flush=True)
        for rule, (d, dlo, dhi) in out["true_demand_minus"].items():
            print(f"  (reference) true_demand - {rule}: {d:+,.0f} [{dlo:+,.0f}, {dhi:+,.0f}]")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
