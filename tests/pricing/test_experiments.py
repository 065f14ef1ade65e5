"""Drop experiments: metrics by hand, known differences recovered within their intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pricing.exceptions import InputError
from pricing.experiments import (
    METRICS,
    ArmSpec,
    arm_for_market,
    experiment_report,
    randomise_arms,
    release_schedule,
)
from pricing.synthetic import ArmEffect, simulate_event_stream

TREATED = ("queens", "harlem", "newark")


def _tiny():
    ts = pd.Timestamp("2026-12-05T18:00Z")
    events = pd.DataFrame(
        [
            # control: market a (SKU X, Y); treatment: market b (SKU X, Y)
            ("sale", "X", "a", 2, 10.0, ts),
            ("sale", "Y", "a", 1, 20.0, ts),
            ("sale", "X", "b", 3, 9.0, ts),
            ("sale", "Y", "b", 4, 18.0, ts + pd.Timedelta(hours=1)),
            ("return", "Y", "b", 1, np.nan, ts + pd.Timedelta(hours=2)),
            ("announcement", "X", "b", np.nan, np.nan, ts),
        ],
        columns=["type", "sku", "market", "quantity", "unit_price", "ts"],
    )
    lookups = pd.DataFrame(
        {"sku": ["X", "Y", "X", "Y"], "market": ["a", "a", "b", "b"], "lookups": [10, 5, 10, 10]}
    )
    inventory = {("X", "a"): 10, ("Y", "a"): 10, ("X", "b"): 10, ("Y", "b"): 10}
    return events, lookups, inventory


def test_arm_metrics_by_hand():
    events, lookups, inventory = _tiny()
    rep = experiment_report(
        events,
        lookups,
        arms={"a": "control", "b": "treatment"},
        inventory=inventory,
        n_boot=200,
    )
    arms = rep.arms.set_index("arm")
    c, t = arms.loc["control"], arms.loc["treatment"]
    assert (c.revenue, c.units, t.revenue, t.units) == (40.0, 3.0, 99.0, 7.0)
    assert c.sell_through == pytest.approx(3 / 20) and t.sell_through == pytest.approx(7 / 20)
    assert c.avg_price == pytest.approx(40 / 3) and t.avg_price == pytest.approx(99 / 7)
    assert c.conversion == pytest.approx(3 / 15) and t.conversion == pytest.approx(7 / 20)
    assert c.returns_rate == 0.0 and t.returns_rate == pytest.approx(1 / 7)
    assert t.revenue_per_cluster == pytest.approx(99 / 2)
    d = rep.difference("units_per_cluster")
    assert d["difference"] == pytest.approx(7 / 2 - 3 / 2)
    assert list(rep.differences["metric"]) == list(METRICS)
    vel = rep.returns_velocity.set_index(["sku", "arm"])
    assert vel.loc[("Y", "treatment"), "returned"] == 1.0
    # First Y sale in b at 19:00, last event at 20:00: one hour -> 24 returns/day.
    assert vel.loc[("Y", "treatment"), "returns_per_day"] == pytest.approx(24.0)
    assert "treatment − control" in str(rep)
    assert rep.to_dict()["arms"][0]["arm"] == "control"


def test_known_demand_difference_is_recovered_within_the_interval():
    """Treatment markets sell 1.3x: the true difference in units per SKU-market is the
    generator's expected units; 95 % intervals cover it and exclude zero."""
    covered = excluded_zero = 0
    n = 30
    for seed in range(n):
        s = simulate_event_stream(
            key=seed, hours=7 * 24, plant=(ArmEffect("treatment", TREATED, 1.3),)
        )
        rep = experiment_report(s.events, s.lookups, arms=s.truth.arms, n_boot=500, key=seed)
        lam = s.truth.expected_units.sum(1)
        treated = s.truth.keys["market"].isin(TREATED).to_numpy()
        truth = lam[treated].mean() - lam[~treated].mean()
        d = rep.difference("units_per_cluster", "treatment")
        covered += d["ci_low"] <= truth <= d["ci_high"]
        excluded_zero += d["ci_low"] > 0
        assert d["ci_high"] - d["ci_low"] < 1.5 * truth  # informative, not just wide
    assert covered >= 0.9 * n
    assert excluded_zero >= 0.9 * n


def test_aa_experiment_rarely_finds_a_difference():
    metrics = (
        "revenue_per_cluster",
        "units_per_cluster",
        "conversion",
        "avg_price",
        "returns_rate",
    )
    false_alarms = 0
    n = 30
    for seed in range(n):
        s = simulate_event_stream(
            key=100 + seed, hours=7 * 24, plant=(ArmEffect("b", TREATED, 1.0),)
        )
        rep = experiment_report(s.events, s.lookups, arms=s.truth.arms, n_boot=500, key=seed)
        for metric in metrics:
            d = rep.difference(metric, "b")
            false_alarms += not (d["ci_low"] <= 0.0 <= d["ci_high"])
    # Nominal 5 %; percentile intervals over 15 clusters per arm run a little narrow.
    assert false_alarms <= 0.12 * len(metrics) * n


def test_price_experiment_on_the_drop_simulator_recovers_the_true_difference():
    """Arms on :mod:`pricing.simulate`'s world: treatment markets serve 15 % under list.
    The true expected units and revenue per SKU-market follow from the world's demand
    (no sell-outs: stock is ample), and the experiment's intervals must cover them."""
    from pricing.scenario import parse_scenario
    from pricing.simulate import build_world, run_policy

    markets = [f"m{i}" for i in range(8)]
    treated = set(markets[::2])
    scenario = parse_scenario(
        {
            "name": "arm-test",
            "horizon_hours": 48,
            "windows": [{"start_hour": 0, "end_hour": 48}],
            "markets": [{"name": m} for m in markets],
            "skus": [
                {
                    "sku": f"S{i}",
                    "list_price": 20.0 + 5 * i,
                    "inventory": {m: 10_000 for m in markets},
                    "demand": {"base_rate": 0.6 + 0.1 * i, "elasticity": -2.0},
                }
                for i in range(6)
            ],
        }
    )
    world = build_world(scenario)
    is_t = np.isin(world.market, sorted(treated))
    price = np.where(is_t, 0.85 * world.list_price, world.list_price)

    class ArmPolicy:
        name = "arms"

        def propose(self, period: int, stock: np.ndarray) -> np.ndarray:
            return price

        def observe(self, *args: object) -> None:
            return None

    rate = np.stack([world.true_rate(price, t) for t in range(world.hours.size)], axis=1)
    true_units = rate.sum(1)
    true_rev = (rate * price[:, None]).sum(1)
    truth = {
        "units_per_cluster": true_units[is_t].mean() - true_units[~is_t].mean(),
        "revenue_per_cluster": true_rev[is_t].mean() - true_rev[~is_t].mean(),
        "avg_price": true_rev[is_t].sum() / true_units[is_t].sum()
        - true_rev[~is_t].sum() / true_units[~is_t].sum(),
    }
    covered = {k: 0 for k in truth}
    n = 12
    for seed in range(n):
        u = np.clip(
            np.random.default_rng(seed).random((world.inventory.size, world.hours.size)),
            1e-12,
            1 - 1e-12,
        )
        run = run_policy(world, ArmPolicy(), u)
        r, t = np.nonzero(run.sales_path)
        events = pd.DataFrame(
            {
                "type": "sale",
                "sku": world.sku[r],
                "market": world.market[r],
                "quantity": run.sales_path[r, t],
                "unit_price": run.price_path[r, t],
            }
        )
        arms = {m: ("treatment" if m in treated else "control") for m in markets}
        rep = experiment_report(events, arms=arms, n_boot=500, key=seed)
        for metric, value in truth.items():
            d = rep.difference(metric)
            covered[metric] += d["ci_low"] <= value <= d["ci_high"]
    assert truth["units_per_cluster"] > 0  # a 15 % discount at elasticity -2 sells more
    for metric, count in covered.items():
        assert count >= n - 2, (metric, count)


def test_randomise_arms_is_balanced_deterministic_and_stratified():
    markets = [f"m{i}" for i in range(9)]
    a = randomise_arms(markets, key=3)
    assert a == randomise_arms(markets, key=3)
    counts = pd.Series(a).value_counts()
    assert sorted(counts) == [4, 5]
    strata = {m: ("east" if i < 4 else "west") for i, m in enumerate(markets)}
    b = randomise_arms(markets, ("x", "y", "z"), key=1, strata=strata)
    for region in ("east", "west"):
        sizes = pd.Series([b[m] for m in markets if strata[m] == region]).value_counts()
        assert sizes.max() - sizes.min() <= 1
    with pytest.raises(InputError, match="two distinct arms"):
        randomise_arms(markets, ("only",), key=0)


def test_arm_for_market():
    arms = (ArmSpec("engine", ("a", "b")), ArmSpec("fixed", ("c",), pricing="fixed"))
    assert arm_for_market("c", arms).pricing == "fixed"
    assert arm_for_market("z", arms) is None


@given(
    units=st.integers(min_value=0, max_value=100_000),
    waves=st.integers(min_value=1, max_value=24),
    hours=st.integers(min_value=1, max_value=200),
)
def test_release_schedule_releases_exactly_the_stock_in_order(units, waves, hours):
    start = pd.Timestamp("2026-12-05T10:00Z")
    plan = release_schedule(units, start, start + pd.Timedelta(hours=hours), waves=waves)
    assert len(plan) == waves
    assert sum(q for _, q in plan) == units
    assert plan[0][0] == start
    assert all(a[0] < b[0] for a, b in zip(plan, plan[1:], strict=False))
    assert max(q for _, q in plan) - min(q for _, q in plan) <= 1


def test_report_refuses_what_it_cannot_compute():
    events, lookups, _ = _tiny()
    with pytest.raises(InputError, match="at least two arms"):
        experiment_report(events, arms={"a": "x", "b": "x"}, n_boot=200)
    with pytest.raises(InputError, match="control arm 'nope'"):
        experiment_report(events, arms={"a": "x", "b": "y"}, control="nope", n_boot=200)
    with pytest.raises(InputError, match="n_boot"):
        experiment_report(events, arms={"a": "x", "b": "y"}, n_boot=10)
    with pytest.raises(InputError, match="cluster"):
        experiment_report(events, arms={"a": "x", "b": "y"}, cluster="market", n_boot=200)
    bad = events.assign(unit_price=events["unit_price"].where(events.index != 0, -1.0))
    with pytest.raises(InputError, match="unit_price"):
        experiment_report(bad, arms={"a": "x", "b": "y"}, n_boot=200)


def test_arms_can_come_from_the_logged_lookups():
    s = simulate_event_stream(key=5, hours=72, plant=(ArmEffect("b", TREATED, 1.5),))
    rep = experiment_report(s.events, s.lookups, n_boot=200)
    assert set(rep.arms["arm"]) == {"control", "b"}
    assert rep.propensity == {"control": 1.0, "b": 1.0}
