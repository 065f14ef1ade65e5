"""The rush and soak schedules: the users locust is asked for at each second."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loadtests.plans import RushPlan, SoakPlan, rush_users_at, soak_users_at


def test_rush_phases_baseline_spike_plateau_decay() -> None:
    plan = RushPlan.from_run(
        peak_users=100, run_time_s=100, multiple=10, ramp_s=5, idle_frac=0.2, decay_frac=0.25
    )
    assert plan.baseline_users == 10
    assert (plan.idle_s, plan.ramp_s, plan.plateau_s, plan.decay_s) == (20, 5, 50, 25)
    assert rush_users_at(plan, 0) == 10
    assert rush_users_at(plan, 19.9) == 10
    # The drop opens: peak within the 5-second ramp.
    assert rush_users_at(plan, 22.5) == 55
    assert rush_users_at(plan, 25.0) == 100
    assert rush_users_at(plan, 74.9) == 100
    assert rush_users_at(plan, 87.5) == 55
    assert rush_users_at(plan, 100.0) is None


def test_short_run_keeps_ramp_within_a_fifth() -> None:
    plan = RushPlan.from_run(peak_users=4, run_time_s=6, ramp_s=5)
    assert plan.ramp_s == pytest.approx(1.2)
    assert plan.total_s == pytest.approx(6)
    assert plan.baseline_users == 1


@given(
    peak=st.integers(1, 5000),
    run=st.floats(1, 7200),
    multiple=st.floats(1, 100),
    ramp=st.floats(0.1, 60),
    t=st.floats(0, 1),
)
def test_rush_users_stay_between_baseline_and_peak(
    peak: int, run: float, multiple: float, ramp: float, t: float
) -> None:
    plan = RushPlan.from_run(peak_users=peak, run_time_s=run, multiple=multiple, ramp_s=ramp)
    assert plan.total_s == pytest.approx(run)
    assert 1 <= plan.baseline_users <= peak
    users = rush_users_at(plan, t * run * 0.999)
    assert users is not None
    assert plan.baseline_users <= users <= peak


def test_rush_rejects_bad_parameters_with_the_value() -> None:
    with pytest.raises(ValueError, match="multiple must be >= 1.*0.5"):
        RushPlan.from_run(peak_users=10, run_time_s=60, multiple=0.5)
    with pytest.raises(ValueError, match="idle_frac=0.7 decay_frac=0.3"):
        RushPlan.from_run(peak_users=10, run_time_s=60, idle_frac=0.7, decay_frac=0.3)
    with pytest.raises(ValueError, match="peak_users must be >= 1, got 0"):
        RushPlan.from_run(peak_users=0, run_time_s=60)


def test_soak_ramps_then_holds_then_stops() -> None:
    plan = SoakPlan.from_run(users=50, run_time_s=600)
    assert plan.ramp_s == 10
    assert soak_users_at(plan, 5) == 25
    assert soak_users_at(plan, 10) == 50
    assert soak_users_at(plan, 599) == 50
    assert soak_users_at(plan, 600) is None
