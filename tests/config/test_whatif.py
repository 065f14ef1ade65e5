"""Expected-outcome evaluation and the prior swap used by preview, against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from service.config.whatif import evaluate_surface, posterior_elasticity


@settings(max_examples=30, deadline=None)
@given(
    lam=st.floats(0.05, 8.0),
    periods=st.integers(1, 12),
    units=st.integers(0, 40),
    price=st.floats(1.0, 50.0),
)
def test_fixed_price_matches_the_poisson_closed_form(
    lam: float, periods: int, units: int, price: float
) -> None:
    # Constant price and rate: units sold = min(Poisson(lam * T), n) exactly.
    surface = np.full((units + 1, periods), price)
    got = evaluate_surface(
        surface, lambda p: np.full((periods, p.size), lam), units=units, t0=0, salvage=0.5
    )
    mu = lam * periods
    k = np.arange(units)
    expected_sold = float(
        np.sum(k * stats.poisson.pmf(k, mu)) + units * stats.poisson.sf(units - 1, mu)
    )
    assert got["expected_units_sold"] == pytest.approx(expected_sold, rel=1e-7, abs=1e-9)
    assert got["expected_revenue"] == pytest.approx(price * expected_sold, rel=1e-7, abs=1e-9)
    assert got["expected_units_left"] == pytest.approx(units - expected_sold, rel=1e-7, abs=1e-7)
    if units:
        assert got["sell_through"] == pytest.approx(expected_sold / units, rel=1e-7)


def test_state_dependent_surface_matches_monte_carlo() -> None:
    rng = np.random.default_rng(3)
    units, periods = 12, 6
    # Price rises as stock falls; demand falls with price.
    surface = 10.0 + 2.0 * (units - np.arange(units + 1))[:, None] * np.ones((1, periods)) / units

    def rate(p: np.ndarray) -> np.ndarray:
        return np.broadcast_to(6.0 * np.exp(-0.12 * p), (periods, p.size))

    got = evaluate_surface(surface, rate, units=units, t0=1)
    sims, revenue, sold = 40_000, 0.0, 0.0
    n = np.full(sims, units)
    for t in range(1, periods):
        p = surface[n, t]
        d = np.minimum(rng.poisson(6.0 * np.exp(-0.12 * p)), n)
        revenue += float(np.sum(p * d))
        sold += float(np.sum(d))
        n = n - d
    assert got["expected_revenue"] == pytest.approx(revenue / sims, rel=0.01)
    assert got["expected_units_sold"] == pytest.approx(sold / sims, rel=0.01)


def test_prior_swap_keeps_the_estimate_when_the_prior_is_unchanged() -> None:
    assert posterior_elasticity(-2.3, 0.4, (-1.5, 0.8), (-1.5, 0.8)) == pytest.approx(-2.3)


def test_prior_swap_moves_toward_the_new_mean_by_the_precision_weights() -> None:
    beta, se, old, new = -2.0, 0.5, (-1.5, 1.0), (-3.0, 0.5)
    prec_lik = 1 / se**2 - 1 / old[1] ** 2
    mean_lik = (beta / se**2 - old[0] / old[1] ** 2) / prec_lik
    want = (mean_lik * prec_lik + new[0] / new[1] ** 2) / (prec_lik + 1 / new[1] ** 2)
    got = posterior_elasticity(beta, se, old, new)
    assert got == pytest.approx(want)
    assert new[0] < got < beta  # pulled toward the new, more elastic prior


def test_prior_swap_without_information_returns_the_new_mean() -> None:
    # se equal to the old prior's sd: the data added nothing.
    assert posterior_elasticity(-1.5, 1.0, (-1.5, 1.0), (-2.5, 0.3)) == pytest.approx(-2.5)
    assert posterior_elasticity(-1.5, None, None, (-2.5, 0.3)) == -2.5
    assert math.isfinite(posterior_elasticity(-1.5, 0.2, None, (-2.5, 0.3)))


def test_intensity_path_comes_from_the_surface_record_when_it_carries_one() -> None:
    from datetime import UTC, datetime, timedelta
    from types import SimpleNamespace

    from service.config.whatif import _horizon_inputs
    from service.store import SurfaceRecord

    start = datetime(2026, 12, 5, 18, tzinfo=UTC)
    record = SurfaceRecord(
        price=np.ones((3, 4)),
        period_start=start,
        period_seconds=3600,
        explain={"intensity_forecast": [4.0, 3.0, 2.0, 1.0], "intensity_now": 9.0},
    )
    row = SimpleNamespace(
        surface=record, fit=SimpleNamespace(period_hours=1.0), intensity_at_publish=9.0
    )
    # A horizon that starts one period later (a re-solve inside the window) and runs past
    # the stored path holds its last value.
    hours, path, scale = _horizon_inputs(row, start + timedelta(hours=1), 4, timedelta(hours=1))  # type: ignore[arg-type]
    assert path.tolist() == [3.0, 2.0, 1.0, 1.0] and hours.tolist() == [19, 20, 21, 22]
    assert scale == 1.0
    # Without a stored path: the centred index at solve time, held.
    record = record._replace(explain={"intensity_now": 9.0, "intensity_mean": 2.5})
    row.surface = record
    _, path, _ = _horizon_inputs(row, start, 2, timedelta(minutes=30))  # type: ignore[arg-type]
    assert path.tolist() == [6.5, 6.5]
