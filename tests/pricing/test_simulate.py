"""Scenarios and the closed-loop simulator: validation, information timing, guardrails, baselines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.optimize import linprog
from typer.testing import CliRunner

from pricing.exceptions import ScenarioError
from pricing.scenario import load_scenario, parse_scenario
from pricing.simulate import (
    FixedPolicy,
    OraclePolicy,
    ThompsonPolicy,
    build_world,
    lp_price_mix,
    run_policy,
    simulate,
)

SCENARIOS = Path(__file__).resolve().parents[2] / "configs" / "scenarios"


def tiny(**over) -> dict:
    """Two SKUs in one market for 24 hours; the list price is far too low for the rush."""
    data = {
        "name": "tiny",
        "horizon_hours": 24,
        "markets": [{"name": "m1"}],
        "daily_profile": "flat",
        "event_types": {"announcement": {"half_life_hours": 6}},
        "events": [{"hour": 8, "type": "announcement", "size": 2.0, "skus": ["A"]}],
        "guardrails": {"price_ending": 0.99, "max_change_pct": 40},
        "priors": {"general": -2.0},
        "engine": {"compiled_fit_max_rows": 0},
        "skus": [
            {
                "sku": "A",
                "category": "general",
                "list_price": 20,
                "inventory": {"m1": 15},
                "demand": {"base_rate": 1.5, "elasticity": -1.5, "intensity_lift": 0.5},
                "guardrails": {"floor": 15, "ceiling": 60},
            },
            {
                "sku": "B",
                "category": "general",
                "list_price": 10,
                "unit_cost": 4,
                "inventory": {"m1": 10},
                "demand": {"base_rate": 1.0, "elasticity": -2.0},
            },
        ],
    }
    data.update(over)
    return data


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_scenarios_load(path):
    world = build_world(load_scenario(path))
    assert world.inventory.sum() > 0 and np.all(np.isfinite(world.ladder))
    assert np.all(world.guardrails.snap(world.ladder) == world.ladder)  # DP ladder is allowed


def test_catalogue_has_a_thousand_skus():
    world = build_world(load_scenario(SCENARIOS / "catalogue-1000.yaml"))
    assert len(set(world.sku.tolist())) == 1000


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d["skus"][0]["demand"].update(elasticity=1.2), "skus.0.demand.elasticity"),
        (lambda d: d["events"][0].update(type="tweet"), "events.0.type"),
        (lambda d: d["skus"][1]["inventory"].update(nowhere=3), "skus.1.inventory"),
        (lambda d: d.update(horizon_hours="three days"), "horizon_hours"),
        (lambda d: d["skus"][0].update(colour="red"), "skus.0.colour"),
    ],
)
def test_bad_scenario_names_file_and_field(tmp_path, change, field):
    data = tiny()
    change(data)
    path = write(tmp_path, data)
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert str(path) in str(err.value) and field in str(err.value)


def test_unsatisfiable_guardrails_name_the_sku(tmp_path):
    data = tiny()
    data["skus"][1]["guardrails"] = {"ceiling": 3.0}  # unit cost 4 is above it
    with pytest.raises(
        ScenarioError, match=r"skus\[B\]\.guardrails: .*unit_cost 4 is above ceiling 3"
    ):
        build_world(parse_scenario(data), source="tiny.yaml")


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ScenarioError, match="cannot read scenario file"):
        load_scenario(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(bad)


def test_policies_learn_of_an_event_only_when_it_happens():
    world = build_world(parse_scenario(tiny()))
    assert np.all(world.intensity_forecast(0) == 0.0)  # the 08:00 announcement is unknown at 00:00
    assert world.new_event[8] and not world.new_event[7]
    at_event = world.intensity_forecast(8)
    np.testing.assert_allclose(at_event[0, :7], 2.0 * 0.5 ** (np.arange(7) / 6.0))
    assert np.all(at_event[1] == 0.0)  # the event names SKU A only


def test_oracle_beats_fixed_on_common_random_numbers_and_guardrails_hold():
    report = simulate(parse_scenario(tiny()), seeds=4, policies=["fixed", "oracle", "thompson"])
    oracle, fixed = report.policies["oracle"], report.policies["fixed"]
    assert oracle.revenue > fixed.revenue
    assert fixed.pct_of_oracle < 100.0 and oracle.pct_of_oracle == pytest.approx(100.0)
    world = build_world(parse_scenario(tiny()))
    lo, hi = world.guardrails.lo, world.guardrails.hi
    for runs in report.runs.values():
        for run in runs:
            price = run.price_path
            assert np.all(np.isfinite(price))
            assert np.all((price >= lo[:, None] - 1e-9) & (price <= hi[:, None] + 1e-9))
            cents = price - np.floor(price + 1e-9)
            np.testing.assert_allclose(cents, 0.99, atol=1e-6)
            step = np.abs(np.diff(price, axis=1)) / price[:, :-1]
            assert np.all(step <= 0.40 + 1e-9)
            assert np.all(run.sales_path.sum(axis=1) <= world.inventory)


def test_common_random_numbers_make_runs_repeatable():
    world = build_world(parse_scenario(tiny()))
    u = np.clip(np.random.default_rng(3).random((2, 24)), 1e-12, 1 - 1e-12)
    a = run_policy(world, FixedPolicy(world), u)
    b = run_policy(world, FixedPolicy(world), u)
    assert a.revenue == b.revenue
    # A higher price on the same shoppers never sells more units.
    high = FixedPolicy(world)
    high.price = world.guardrails.snap(world.list_price * 1.5)
    assert run_policy(world, high, u).units <= a.units


def test_released_stock_goes_on_the_shelf_when_its_period_opens():
    world = build_world(parse_scenario(tiny()))
    u = np.clip(np.random.default_rng(3).random((2, 24)), 1e-12, 1 - 1e-12)
    # The same 15 units of A, 5 at the start and 10 released at hour 12: nothing sells
    # beyond 5 before hour 12, and the run sells no more than the 15.
    first = world._replace(inventory=np.array([5, 10]))
    releases = np.zeros((2, 24), dtype=np.int64)
    releases[0, 12] = 10
    run = run_policy(first, FixedPolicy(first), u, releases=releases)
    sold = run.sales_path[0]
    assert sold[:12].sum() <= 5
    assert sold.sum() <= 15 and sold[12:].sum() > 0
    assert run.sell_through == pytest.approx(run.units / 25.0)
    whole = run_policy(world, FixedPolicy(world), u)
    assert whole.sales_path[0, :12].sum() > 5  # with all 15 on the shelf, more sold early


def test_lp_price_mix_matches_linprog():
    rng = np.random.default_rng(0)
    prices = np.sort(rng.uniform(5, 30, (25, 5)), axis=1)
    demand = rng.uniform(0.01, 3.0, (25, 5))
    capacity = rng.uniform(0.0, 2.5, 25)
    x = lp_price_mix(prices, demand, capacity)
    assert np.all(x >= -1e-12) and np.all(x.sum(axis=1) <= 1 + 1e-9)
    assert np.all((x * demand).sum(axis=1) <= capacity + 1e-9)
    for i in range(25):
        res = linprog(
            -(prices[i] * demand[i]),
            A_ub=np.vstack([demand[i], np.ones(5)]),
            b_ub=[capacity[i], 1.0],
            bounds=[(0, None)] * 5,
        )
        assert (prices[i] * demand[i] * x[i]).sum() == pytest.approx(-res.fun, rel=1e-7, abs=1e-9)


def test_thompson_posterior_counts_what_it_served():
    world = build_world(parse_scenario(tiny()))
    ts = ThompsonPolicy(world, rng=np.random.default_rng(0))
    shape0 = ts.shape.copy()
    price = ts.propose(0, world.inventory.copy())
    ts.observe(0, price, np.array([2, 0]), world.inventory - np.array([2, 0]))
    k = np.abs(world.ladder - price[:, None]).argmin(axis=1)
    assert ts.shape[0, k[0]] == shape0[0, k[0]] + 2 and ts.rate[1, k[1]] == pytest.approx(
        ts.rate[1, (k[1] + 1) % ts.rate.shape[1]] + 1.0
    )


def test_oracle_surface_is_the_dp_on_true_demand():
    world = build_world(parse_scenario(tiny()))
    oracle = OraclePolicy(world)
    price = oracle.propose(0, world.inventory.copy())
    assert np.all(np.isin(price[0], world.full_ladder[0]))
    # Little stock, many hours: the oracle prices above the (too low) list price.
    assert np.all(price > world.list_price)


def test_engine_runs_closed_loop_and_beats_fixed():
    data = tiny()
    report = simulate(parse_scenario(data), seeds=1, policies=["fixed", "oracle", "engine"])
    engine = report.policies["engine"]
    assert np.isfinite(engine.revenue)
    assert engine.revenue > report.policies["fixed"].revenue


def test_cli_json_and_bad_file(tmp_path):
    from service.cli import app

    path = write(tmp_path, tiny())
    runner = CliRunner()
    out = runner.invoke(
        app,
        ["simulate", "--scenario", str(path), "--seeds", "2", "--json"]
        + ["--policy", "fixed", "--policy", "oracle", "--plot", str(tmp_path / "fig.png")],
    )
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert set(data["policies"]) == {"fixed", "oracle"}
    fixed = data["policies"]["fixed"]
    assert {"revenue", "revenue_ci", "pct_of_oracle", "pct_of_bound", "sell_through"} <= set(fixed)
    assert data["bound"] > 0 and fixed["pct_of_bound"] == pytest.approx(
        100 * fixed["objective"] / data["bound"]
    )
    assert fixed["revenue_ci"][0] <= fixed["revenue"] <= fixed["revenue_ci"][1]
    assert (tmp_path / "fig.png").stat().st_size > 0
    broken = tiny()
    broken["skus"][0]["list_price"] = -5
    bad = write(tmp_path, broken)
    out = runner.invoke(app, ["simulate", "--scenario", str(bad)])
    assert out.exit_code == 2
    assert str(bad) in out.output and "skus.0.list_price" in out.output
