"""Stock planner: greedy is optimal on concave curves, the knapsack DP where they are not,
and the plan moves the way costs, salvage, demand and returns say it should."""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pandas as pd
import pytest

from pricing.allocation import (
    SlotDemand,
    allocate,
    allocate_exact,
    allocate_greedy,
    is_concave,
    plan_stock,
    planned_intensity,
    prior_rates,
    value_curves,
)
from pricing.exceptions import InputError
from pricing.policy import solve_surfaces

LADDER = np.array([8.0, 10.0, 12.0, 14.0])
PERIODS = 12
N = 20


def _rates(scale: float | list[float], periods: int = PERIODS) -> np.ndarray:
    """``[J, T, K]`` demand ``scale · 0.5 · e^(−0.12 p)`` per period: about ``scale · 1.5``
    units per window at the middle of the ladder."""
    s = np.atleast_1d(np.asarray(scale, dtype=float))
    per_period = s[:, None] * 0.5 * np.exp(-0.12 * LADDER)[None, :]
    return np.broadcast_to(per_period[:, None, :], (s.size, periods, LADDER.size)).copy()


def _ladders(j: int) -> np.ndarray:
    return np.broadcast_to(LADDER, (j, LADDER.size)).copy()


def _brute_force(value: np.ndarray, total: int, holdback: float = 0.0) -> float:
    j_len, top = value.shape[0], value.shape[1] - 1
    best = -np.inf
    for units in itertools.product(range(min(top, total) + 1), repeat=j_len):
        if sum(units) <= total:
            got = sum(value[j, n] for j, n in enumerate(units)) + holdback * (total - sum(units))
            best = max(best, got)
    return best


def _random_concave(rng: np.random.Generator, j_len: int, top: int) -> np.ndarray:
    marginals = -np.sort(-rng.normal(2.0, 3.0, size=(j_len, top)), axis=1)
    return np.concatenate([np.zeros((j_len, 1)), np.cumsum(marginals, axis=1)], axis=1)


@pytest.mark.parametrize("seed", range(25))
def test_greedy_equals_brute_force_on_concave_curves(seed: int) -> None:
    rng = np.random.default_rng(seed)
    j_len, top = int(rng.integers(2, 5)), int(rng.integers(2, 6))
    value = _random_concave(rng, j_len, top)
    total = int(rng.integers(0, j_len * top + 2))
    holdback = float(rng.choice([0.0, 0.5, 2.0]))
    assert is_concave(value).all()
    got = allocate(value, total, holdback_value=holdback)
    assert got.method == "greedy"
    assert got.units.sum() + got.held_back == total
    assert got.objective == pytest.approx(_brute_force(value, total, holdback), abs=1e-9)


def test_greedy_equals_brute_force_on_the_dp_value_of_three_markets() -> None:
    curves = value_curves(_rates([0.6, 1.5, 3.0]), _ladders(3), 6, unit_cost=2.0, salvage=1.0)
    assert is_concave(curves.value).all()
    for total in range(0, 13):
        got = allocate(curves.value, total)
        assert got.method == "greedy"
        assert got.objective == pytest.approx(_brute_force(curves.value, total), abs=1e-6)


def test_a_non_concave_curve_is_planned_exactly() -> None:
    # Slot 0 is worth nothing below a display minimum of 3 units, then a lot: greedy on
    # marginals never starts it; the knapsack DP does.
    value = np.array(
        [
            [0.0, 0.0, 0.0, 12.0, 13.0],
            [0.0, 3.0, 5.0, 6.0, 6.5],
        ]
    )
    assert not is_concave(value)[0]
    got = allocate(value, 4)
    assert got.method == "exact"
    assert got.units.tolist() == [3, 1]
    assert got.objective == pytest.approx(_brute_force(value, 4))
    assert allocate_greedy(value, 4).objective < got.objective  # the fallback matters


@pytest.mark.parametrize("seed", range(10))
def test_exact_dp_equals_brute_force_on_arbitrary_curves(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    value = np.concatenate([np.zeros((3, 1)), rng.normal(0, 5, size=(3, 4))], axis=1)
    total = int(rng.integers(0, 10))
    got = allocate_exact(value, total, holdback_value=0.7)
    assert got.objective == pytest.approx(_brute_force(value, total, 0.7))


def test_curves_of_a_profit_priced_policy_are_planned_optimally() -> None:
    # The engine prices with the cost per sale while the plan pays it per unit placed:
    # whichever method allocate picks, it must match brute force.
    curves = value_curves(
        _rates([1.0, 2.5, 5.0]), _ladders(3), 7, unit_cost=5.0, pricing_cost=5.0, salvage=2.0
    )
    for total in (3, 7, 12):
        got = allocate(curves.value, total, holdback_value=2.0)
        assert got.objective == pytest.approx(_brute_force(curves.value, total, 2.0), abs=1e-6)


def test_more_units_go_where_demand_is_higher() -> None:
    curves = value_curves(_rates([0.5, 1.0, 2.0, 4.0]), _ladders(4), N, unit_cost=3.0)
    units = allocate(curves.value, N).units
    assert np.all(np.diff(units) >= 0), units
    assert units[-1] > units[0]


def test_a_higher_unit_cost_places_fewer_units() -> None:
    placed = [
        allocate(value_curves(_rates([1.0, 2.0]), _ladders(2), N, unit_cost=c).value, N).units.sum()
        for c in (1.0, 4.0, 8.0)
    ]
    assert placed[0] > placed[1] > placed[2], placed


def test_a_higher_salvage_value_places_more_units() -> None:
    placed = [
        allocate(
            value_curves(_rates([1.0, 2.0]), _ladders(2), N, unit_cost=6.0, salvage=s).value, N
        ).units.sum()
        for s in (0.0, 3.0, 5.5)
    ]
    assert placed[0] < placed[1] < placed[2], placed


def test_returns_lower_the_value_and_the_units_placed() -> None:
    plain = value_curves(_rates([10.0]), _ladders(1), N, unit_cost=4.0)
    returns = value_curves(_rates([10.0]), _ladders(1), N, unit_cost=4.0, returns_rate=0.3)
    assert np.all(returns.revenue[0, 1:] < plain.revenue[0, 1:])
    assert allocate(returns.value, N).units.sum() < allocate(plain.value, N).units.sum()


def test_a_transfer_cost_keeps_stock_where_it_already_is() -> None:
    # Two equal markets; market 0 holds all 10 units. Free transfers split them evenly, a
    # transfer cost ships fewer, a prohibitive one none.
    rates, ladders = _rates([6.0, 6.0]), _ladders(2)
    on_hand = np.array([10, 0])
    shipped = [
        allocate(
            value_curves(rates, ladders, 10, transfer_cost=tau, on_hand=on_hand).value, 10
        ).units[1]
        for tau in (0.0, 4.0, 100.0)
    ]
    assert shipped[0] == 5
    assert 0 < shipped[1] < 5
    assert shipped[2] == 0


def test_units_are_held_back_for_a_busier_later_window() -> None:
    slots = [
        SlotDemand("TEE", "town", 0, _rates(0.7)[0], LADDER, unit_cost=2.0),
        SlotDemand("TEE", "town", 1, _rates(3.0)[0], LADDER, unit_cost=2.0),
    ]
    plan = plan_stock(slots, {"TEE": 12})
    units = {r["window"]: r["units"] for r in plan.rows}
    assert units[1] > units[0]
    last = {r["window"]: r["marginal_value"] for r in plan.rows}
    nxt = {r["window"]: r["next_unit_value"] for r in plan.rows}
    # Optimality as operators read it: no slot's next unit beats another's last one.
    assert max(nxt.values()) <= min(last.values()) + 1e-6


def test_policy_evaluation_reproduces_the_dp_value() -> None:
    from pricing.allocation.curves import _evaluate_policy

    rates, ladders = _rates([0.4, 1.0, 6.0]), _ladders(3)
    sol = solve_surfaces(rates, ladders, N, unit_cost=2.0, salvage=1.0)
    sold, revenue = _evaluate_policy(rates, np.asarray(sol.index), ladders, N)
    n = np.arange(N + 1)
    assert revenue - 2.0 * sold + 1.0 * (n - sold) == pytest.approx(
        np.asarray(sol.value)[:, :, 0], abs=2e-3
    )
    assert np.all(sold <= n + 1e-9)
    assert np.all(np.diff(sold, axis=1) >= -1e-9)


def test_plan_stock_plans_each_sku_against_its_own_total() -> None:
    slots = [
        SlotDemand(sku, m, 0, _rates(scale)[0], LADDER, unit_cost=3.0, salvage=1.0)
        for sku in ("A", "B")
        for m, scale in (("north", 1.0), ("south", 3.0))
    ]
    plan = plan_stock(slots, {"A": 8, "B": 3}, holdback_value={"A": 1.0, "B": 0.0})
    placed = {k: sum(r["units"] for r in plan.rows if r["sku"] == k) for k in ("A", "B")}
    assert placed["A"] <= 8 and placed["B"] <= 3
    assert plan.skus["B"]["placed"] == 3  # scarce: every unit placed
    south = next(r for r in plan.rows if r["sku"] == "B" and r["market"] == "south")
    assert south["units"] >= 2
    assert plan.to_dict()["expected_profit"] == pytest.approx(plan.expected_profit, abs=0.01)
    with pytest.raises(InputError, match="no units for SKU"):
        plan_stock(slots, {"A": 8})


def test_planned_announcements_lift_the_intensity_path_from_their_hour() -> None:
    path = planned_intensity(1.0, np.arange(6.0), 2.0, [(3.0, 4.0)])[0]
    assert path[:3] == pytest.approx([1.0, 2**-0.5, 0.5])
    assert path[3] == pytest.approx(2**-1.5 + 4.0)
    with pytest.raises(InputError, match="hours_from_now >= 0"):
        planned_intensity(0.0, [0.0], 1.0, [(-1.0, 1.0)])


def test_prior_rates_fall_with_price_and_rise_with_intensity() -> None:
    lad = _ladders(1)
    rates = prior_rates(
        lad,
        np.array([10.0]),
        np.array([1.0]),
        elasticity_mean=np.array([-2.0]),
        elasticity_sd=np.array([0.0]),
        periods=2,
        intensity=np.array([[0.0, 2.0]]),
        level_sd=0.0,
    )
    assert rates[0, 0, 1] == pytest.approx(1.0)  # the level at list price
    assert np.all(np.diff(rates[0, 0]) < 0)
    assert rates[0, 1, 1] == pytest.approx(np.exp(0.5))


# ------------------------------------------------------------------ failover SKUs

SPILL_DROPS = 80
"""Simulated drops pooled by the spill tests (the estimate's level calibration rests on the
hours before the scarce variant sells out, a dozen or so a drop)."""


@functools.lru_cache(maxsize=1)
def _choice_drop(seeds: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The shipped three-colourway scenario (a choice truth with spill) at list prices:
    sales, the truth's expected units with every variant in stock, in-stock flags, and the
    truth's diversion share from the scarce colourway to each other one in each period."""
    from pathlib import Path

    from pricing.baselines import FixedPolicy
    from pricing.scenario import load_scenario
    from pricing.simulate import run_policy
    from pricing.world import build_world

    path = Path(__file__).resolve().parents[2] / "configs/scenarios/truth-choice-variants.yaml"
    world = build_world(load_scenario(path))
    truth = world.truth
    p_len = world.hours.size
    expected = truth.expected_rates(world.list_price[:, None], 0, world.intensity)[:, :, 0]
    # Multinomial logit at list prices: attraction b_j e^{γ_j I}, outside weight Σ b_j.
    base = np.exp(truth.log_base)
    pull = base[:, None] * np.exp(truth.intensity_lift[:, None] * world.intensity)
    diversion = pull / (base.sum() + pull.sum(axis=0) - pull[0])  # [j, t] from variant 0
    sales, stocked = [], []
    for seed in range(seeds):
        u = np.clip(np.random.default_rng([seed, 1]).random((3, p_len)), 1e-12, 1 - 1e-12)
        run = run_policy(world, FixedPolicy(world), u)
        sales.append(run.sales_path)
        stocked.append(world.inventory[:, None] - np.cumsum(run.sales_path, axis=1) > 0)
    tile = (1, seeds)
    return np.hstack(sales), np.tile(expected, tile), np.hstack(stocked), np.tile(diversion, tile)


def test_the_share_a_sold_out_variant_spills_is_recovered_from_its_stock_outs() -> None:
    from pricing.allocation import estimate_diversion, failover_table

    sales, expected, in_stock, diversion = _choice_drop(seeds=SPILL_DROPS)
    p_len = sales.shape[1] // SPILL_DROPS
    stocked = np.hstack([np.ones((3, 1), bool), in_stock[:, :-1]])
    stocked[:, ::p_len] = True  # every drop opens stocked
    shares = estimate_diversion(sales, expected, in_stock, out_of_stock=~stocked)
    # The truth's share over the hours the black jacket was out, weighted by its demand.
    out = ~stocked[0]
    weight = expected[0] * out
    truth = (diversion * weight).sum(axis=1) / weight.sum()
    assert out.sum() > 100  # it sells out early on most seeds
    assert shares[0, 1:] == pytest.approx(truth[1:], abs=0.06)
    table = failover_table(["JACKET-BLACK", "JACKET-OLIVE", "JACKET-SAND"], "shop", shares=shares)
    black = next(f for f in table if f.sku == "JACKET-BLACK")
    assert (black.absorbed_by, black.source) == ("JACKET-OLIVE", "sales")  # the bigger pull
    assert black.share == pytest.approx(truth[1], abs=0.06)


def test_a_variant_that_never_sold_out_has_no_estimate_and_keeps_a_declared_failover() -> None:
    from pricing.allocation import estimate_diversion, failover_table

    q = np.array([[2, 2, 2, 0, 0, 0, 0], [2, 2, 2, 3, 3, 3, 3], [1, 1, 1, 1, 1, 1, 1]])
    e = np.ones((3, 7)) * np.array([[2.0], [2.0], [1.0]])
    in_stock = np.array([[True] * 3 + [False] * 4, [True] * 7, [True] * 7])
    shares = estimate_diversion(q, e, in_stock)
    assert shares[0, 1] == pytest.approx(0.5)
    assert shares[0, 2] == pytest.approx(0.0)
    assert np.isnan(shares[1, 0]) and np.isnan(shares[2, 1])
    table = failover_table(
        ["A", "B", "C"], "north", shares=shares, declared=[("C", "B", 0.3), ("B", "X", 0.9)]
    )
    assert [(f.sku, f.absorbed_by, f.share, f.source) for f in table] == [
        ("A", "B", 0.5, "sales"),
        ("C", "B", 0.3, "config"),
    ]
    with pytest.raises(InputError, match="one shape"):
        estimate_diversion(q, e[:, :6], in_stock)


def test_the_plan_names_each_variants_failover_on_its_rows() -> None:
    from pricing.allocation import Failover

    slots = [
        SlotDemand(sku, "shop", 0, _rates(scale)[0], LADDER, unit_cost=3.0)
        for sku, scale in (("BLACK", 3.0), ("OLIVE", 1.0))
    ]
    plan = plan_stock(
        slots,
        {"BLACK": 4, "OLIVE": 6},
        failover=[Failover("BLACK", "shop", "OLIVE", 0.4, "config")],
    )
    black = next(r for r in plan.rows if r["sku"] == "BLACK")
    assert (black["failover_sku"], black["failover_share"]) == ("OLIVE", 0.4)
    assert "failover_sku" not in next(r for r in plan.rows if r["sku"] == "OLIVE")
    assert plan.to_dict()["failover"][0]["absorbed_by"] == "OLIVE"


def test_the_plan_per_market_and_window_sums_its_skus_and_names_the_best_next_unit() -> None:
    slots = [
        SlotDemand(sku, m, w, _rates(scale * (1 + w))[0], LADDER, unit_cost=2.0)
        for sku, scale in (("A", 1.0), ("B", 2.0))
        for m in ("north", "south")
        for w in (0, 1)
    ]
    plan = plan_stock(slots, {"A": 10, "B": 14})
    cells = {(c["market"], c["window"]): c for c in plan.by_market_window()}
    assert len(cells) == 4
    for (market, window), cell in cells.items():
        mine = [r for r in plan.rows if (r["market"], r["window"]) == (market, window)]
        assert cell["units"] == sum(r["units"] for r in mine)
        assert cell["expected_revenue"] == pytest.approx(sum(r["expected_revenue"] for r in mine))
        assert cell["sell_through"] == pytest.approx(
            sum(r["expected_sold"] for r in mine) / cell["units"]
        )
        best = max(mine, key=lambda r: r["next_unit_value"])
        assert (cell["next_unit_sku"], cell["next_unit_value"]) == (
            best["sku"],
            best["next_unit_value"],
        )
    assert sum(c["units"] for c in cells.values()) == 24
    assert len(plan.to_dict()["markets"]) == 4


def test_a_market_sales_panel_recovers_the_spill() -> None:
    from pricing.allocation import panel_diversion

    seeds = SPILL_DROPS
    sales, expected, in_stock, diversion = _choice_drop(seeds=seeds)
    # The panel a shop has: a row per variant and period, the period it sold out in
    # flagged sold_out, the periods after it out_of_stock with the model's expectation at
    # the price it would have had; the drops' periods numbered one after another.
    stocked_at_start = np.hstack([np.ones((3, 1), bool), in_stock[:, :-1]])
    p_len = sales.shape[1] // seeds
    stocked_at_start[:, ::p_len] = True  # every drop opens stocked
    r, t = np.nonzero(np.ones_like(sales, dtype=bool))
    panel = pd.DataFrame(
        {
            "sku": np.array(["BLACK", "OLIVE", "SAND"])[r],
            "period": t,
            "quantity": sales[r, t],
            "sold_out": stocked_at_start[r, t] & ~in_stock[r, t],
            "out_of_stock": ~stocked_at_start[r, t],
            "expected": expected[r, t],
        }
    )
    got = panel_diversion(panel)
    weight = expected[0] * ~stocked_at_start[0]
    truth = (diversion * weight).sum(axis=1) / weight.sum()
    assert got[0, 1:] == pytest.approx(truth[1:], abs=0.06)
    assert got[0, 1] > got[0, 2]  # the black jacket's shoppers go to olive first
