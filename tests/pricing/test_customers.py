"""30-day repeat value of a drop's new customers: a planted arm effect is recovered within
its cluster-bootstrap interval, and a report made before 30 days have passed says so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pricing.customers import drop_customers, plant_repeat_purchases, repeat_value
from pricing.exceptions import InputError

SCENARIO = Path(__file__).resolve().parents[2] / "configs/scenarios/adjacent-towns.yaml"
ARMS = {"town-a": "control", "town-b": "control", "town-c": "control"}
ARMS |= {"town-d": "scarce", "town-e": "scarce", "town-f": "scarce"}
RATE = {"control": 0.20, "scarce": 0.35}
SPEND = {"control": 30.0, "scarce": 30.0}


def _simulated_drop(seeds: int) -> tuple[pd.DataFrame, pd.Timestamp, pd.Timestamp]:
    """The six-town scenario at fixed prices, each unit sold to a new customer."""
    from pricing.baselines import FixedPolicy
    from pricing.scenario import load_scenario
    from pricing.simulate import run_policy
    from pricing.world import START, build_world

    world = build_world(load_scenario(SCENARIO))
    rows = list(zip(world.sku.tolist(), world.market.tolist(), strict=True))
    frames = []
    for seed in range(seeds):
        u = np.random.default_rng([seed, 1]).random(world.truth.intensity.shape)
        run = run_policy(world, FixedPolicy(world), np.clip(u, 1e-12, 1 - 1e-12))
        times = [START + pd.Timedelta(hours=int(h)) for h in world.hours]
        sales = drop_customers(run.sales_path, run.price_path, rows, times)
        sales["customer_id"] = f"s{seed}-" + sales["customer_id"]
        frames.append(sales)
    start = START + pd.Timedelta(hours=int(world.hours[0]))
    end = START + pd.Timedelta(hours=int(world.hours[-1]) + 1)
    return pd.concat(frames, ignore_index=True), start, end


def test_a_planted_repeat_purchase_effect_is_recovered_within_its_interval() -> None:
    drop, start, end = _simulated_drop(seeds=3)
    cohort = pd.DataFrame({"customer_id": drop["customer_id"], "arm": drop["market"].map(ARMS)})
    later = plant_repeat_purchases(cohort, rate=RATE, spend=SPEND, after=end, key=7)
    # A customer seen before the drop is not new: planted noise the cohort must drop.
    regular = drop.iloc[:50].assign(ts=start - pd.Timedelta(days=3))
    events = pd.concat([regular, drop, later], ignore_index=True)
    rep = repeat_value(
        events,
        drop_start=start,
        drop_end=end,
        market_arm=ARMS,
        now=end + pd.Timedelta(days=45),
        n_boot=2000,
        key=1,
    )
    assert rep.complete and not rep.notes
    arms = rep.arms.set_index("arm")
    assert arms["customers"].sum() == len(drop) - 50
    for arm in ("control", "scarce"):
        revenue = 1.5 * RATE[arm] * SPEND[arm]  # E[1 + Poisson(0.5)] purchases of mean spend
        lo, hi = arms.loc[arm, "repeat_rate_ci"]
        assert lo <= RATE[arm] <= hi, (arm, lo, hi)
        lo, hi = arms.loc[arm, "repeat_revenue_ci"]
        assert lo <= revenue <= hi, (arm, lo, hi)
    diff = rep.differences.set_index("metric")
    planted = {"repeat_rate": 0.15, "repeat_revenue": 1.5 * 0.15 * 30.0}
    for metric, effect in planted.items():
        lo, hi = diff.loc[metric, ["ci_low", "ci_high"]]
        assert lo <= effect <= hi, (metric, lo, hi)
        assert lo > 0, (metric, lo)  # and the effect is told apart from none


def test_no_effect_gives_an_interval_around_zero_and_an_early_report_says_so() -> None:
    drop, start, end = _simulated_drop(seeds=1)
    cohort = pd.DataFrame({"customer_id": drop["customer_id"], "arm": drop["market"].map(ARMS)})
    same = {"control": 0.3, "scarce": 0.3}
    later = plant_repeat_purchases(cohort, rate=same, spend=SPEND, after=end, key=3)
    events = pd.concat([drop, later], ignore_index=True)
    early = repeat_value(
        events, drop_start=start, drop_end=end, market_arm=ARMS, now=end + pd.Timedelta(days=12)
    )
    assert not early.complete and early.days_observed == pytest.approx(12.0)
    assert "30 days have not passed yet" in early.notes[0] and "12.0 of 30" in str(early)
    full = repeat_value(
        events, drop_start=start, drop_end=end, market_arm=ARMS, now=end + pd.Timedelta(days=30)
    )
    assert full.complete
    lo, hi = full.differences.set_index("metric").loc["repeat_rate", ["ci_low", "ci_high"]]
    assert lo < 0 < hi
    # Twelve days hold fewer repeat purchases than thirty.
    assert early.arms["repeat_revenue"].sum() < full.arms["repeat_revenue"].sum()
    with pytest.raises(InputError, match="customer_id"):
        repeat_value(events.drop(columns="customer_id"), drop_start=start, drop_end=end,
                     market_arm=ARMS)  # fmt: skip
