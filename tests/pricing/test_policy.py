"""The price-surface DP: closed form, structure, and agreement with a plain reference solver."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from pricing import solve_surfaces
from pricing.exceptions import InputError
from pricing.policy import (
    MAX_TRUNCATIONS,
    _shared_truncations,
    demand_truncation,
    exponential_demand_price,
    exponential_demand_value,
    solve_surfaces_numpy,
)
from pricing.policy_blocks import _COMPILED

A, ALPHA, HORIZON = 20.0, 1.0, 1.0


def _exponential_problem(periods: int, step: float, inventory: int):
    ladder = np.arange(0.5, 8.0, step)[None, :]
    per_period = A * np.exp(-ALPHA * ladder) * HORIZON / periods
    rates = np.broadcast_to(per_period[:, None, :], (1, periods, ladder.shape[1]))
    return rates, ladder, solve_surfaces(rates, ladder, inventory)


def test_value_matches_gallego_van_ryzin_closed_form_as_step_shrinks():
    n = np.arange(1, 16)
    exact = exponential_demand_value(n, HORIZON, A, ALPHA)
    errors = []
    for periods in (10, 40, 400):
        _, _, sol = _exponential_problem(periods, 0.01, 15)
        value = np.asarray(sol.value[0, 1:, 0])
        errors.append(np.max(np.abs(value - exact) / exact))
    assert errors[-1] < 0.005
    assert errors[0] > errors[-1]  # the discretisation error shrinks with the step


def test_prices_match_closed_form():
    _, ladder, sol = _exponential_problem(400, 0.01, 15)
    n = np.arange(1, 16)
    exact = exponential_demand_price(n, HORIZON, A, ALPHA)
    np.testing.assert_allclose(np.asarray(sol.price[0, 1:, 0]), exact, atol=0.03)


def test_price_falls_with_inventory_and_with_time_running_out():
    _, _, sol = _exponential_problem(100, 0.1, 30)
    price = np.asarray(sol.price[0, 1:])  # [n, t]
    assert np.all(np.diff(price, axis=0) <= 0)  # more units left -> lower price
    # Fewer periods to go at the same stock -> lower price (p*(n, t) rises with time to go).
    assert np.all(np.diff(price, axis=1) <= 0)
    assert price[0, 0] > price[-1, 0]  # and the surface is not flat
    value = np.asarray(sol.value[0])
    assert np.all(np.diff(value, axis=0) >= -1e-4)  # a unit more is never worth less
    assert np.all(np.diff(value, axis=1) <= 1e-4)  # time is worth something


def test_agrees_with_reference_solver_with_cost_salvage_and_per_sku_inventory():
    rng = np.random.default_rng(7)
    s, t, k = 3, 10, 5
    prices = rng.uniform(5, 20, (s, k))  # unsorted ladders on purpose
    rates = rng.uniform(0, 3, (s, t, k))
    inventory = np.array([6, 2, 9])
    cost = np.array([1.0, 0.0, 2.5])
    sol = solve_surfaces(rates, prices, inventory, unit_cost=cost, salvage=0.5)
    ref_price, ref_value = solve_surfaces_numpy(
        rates, prices, inventory, unit_cost=cost, salvage=0.5
    )
    assert sol.price.shape == (s, 10, t) and sol.value.shape == (s, 10, t + 1)
    np.testing.assert_allclose(np.asarray(sol.value), ref_value, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(np.asarray(sol.price), ref_price)
    index = np.asarray(sol.index)
    np.testing.assert_allclose(
        np.take_along_axis(prices, index.reshape(s, -1), axis=1).reshape(index.shape),
        np.asarray(sol.price),
    )
    np.testing.assert_allclose(
        np.asarray(sol.value[:, :, -1]), 0.5 * np.arange(10)[None, :].repeat(3, 0)
    )


def test_jit_and_eager_agree():
    rng = np.random.default_rng(3)
    rates = rng.uniform(0, 2, (2, 6, 4))
    prices = np.sort(rng.uniform(1, 10, (2, 4)), axis=1)
    jitted = solve_surfaces(rates, prices, 5)
    with jax.disable_jit():
        eager = solve_surfaces(rates, prices, 5)
    np.testing.assert_allclose(np.asarray(jitted.value), np.asarray(eager.value), rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(jitted.index), np.asarray(eager.index))


def test_no_demand_holds_highest_price_and_values_salvage():
    rates = np.zeros((1, 4, 3))
    sol = solve_surfaces(rates, np.array([[3.0, 9.0, 5.0]]), 4, salvage=1.25)
    assert np.all(np.asarray(sol.price) == 9.0)
    np.testing.assert_allclose(np.asarray(sol.value[0, :, 0]), 1.25 * np.arange(5))


def test_several_units_per_period_are_priced():
    # One period, demand far above stock: the DP must price high, not sell one unit at a time.
    ladder = np.array([[10.0, 20.0, 40.0]])
    rates = np.array([[[60.0, 30.0, 12.0]]])
    sol = solve_surfaces(rates, ladder, 10)
    assert float(sol.price[0, 10, 0]) == 40.0
    assert float(sol.value[0, 10, 0]) == pytest.approx(40.0 * 9.6, rel=0.02)


def test_demand_truncation_tail():
    assert demand_truncation(0.0, 50) == 1
    assert demand_truncation(100.0, 5) == 5
    d = demand_truncation(2.0, 1000, tail=1e-9)
    from scipy.stats import poisson

    assert poisson.sf(d, 2.0) < 1e-9 <= poisson.sf(d - 2, 2.0)


@pytest.mark.parametrize(
    ("rates", "prices", "inventory", "match"),
    [
        (np.ones((2, 3)), np.ones((2, 3)), 2, "rates must have shape"),
        (np.ones((2, 3, 4)), np.ones((2, 3)), 2, "prices must have shape"),
        (-np.ones((1, 3, 2)), np.ones((1, 2)), 2, "rates must be finite and >= 0"),
        (np.full((1, 3, 2), np.nan), np.ones((1, 2)), 2, "rates must be finite"),
        (np.ones((1, 3, 2)), np.zeros((1, 2)), 2, "prices must be finite and > 0"),
        (np.ones((1, 3, 2)), np.ones((1, 2)), -1, "inventory must be whole numbers >= 0"),
        (np.ones((2, 3, 2)), np.ones((2, 2)), np.array([1, 2, 3]), "inventory must be an int"),
    ],
)
def test_bad_inputs_are_refused_with_what_was_received(rates, prices, inventory, match):
    with pytest.raises(InputError, match=match):
        solve_surfaces(rates, prices, inventory)


def test_row_blocks_do_not_change_the_solution():
    rng = np.random.default_rng(11)
    rates = rng.uniform(0, 2, (7, 5, 4))
    prices = rng.uniform(1, 9, (7, 4))
    whole = solve_surfaces(rates, prices, np.arange(7), chunk_rows=None)
    blocks = solve_surfaces(rates, prices, np.arange(7), chunk_rows=3)
    np.testing.assert_array_equal(np.asarray(whole.index), np.asarray(blocks.index))
    np.testing.assert_allclose(np.asarray(whole.value), np.asarray(blocks.value), rtol=1e-6)


def test_one_solve_compiles_at_most_max_truncations_programs():
    # Rates spread from calm to busy: the blocks' own truncations take five or more values,
    # each its own compiled program; a cold solve compiled them all.
    rng = np.random.default_rng(3)
    scale = np.linspace(0.2, 20.0, 40)
    rates = scale[:, None, None] * rng.uniform(0.5, 1.0, (40, 3, 4))
    prices = np.sort(rng.uniform(1, 9, (40, 4)), axis=1)
    before = set(_COMPILED)
    sol = solve_surfaces(rates, prices, 60, chunk_rows=4, workers=2)
    programs = {key for key in _COMPILED - before if key[1:3] == (3, 4)}
    assert 1 < len(programs) <= MAX_TRUNCATIONS
    ref_price, ref_value = solve_surfaces_numpy(rates, prices, 60)
    np.testing.assert_allclose(np.asarray(sol.value), ref_value, rtol=1e-5, atol=1e-4)
    assert np.mean(np.isclose(np.asarray(sol.price), ref_price, rtol=1e-6)) > 0.99


def test_shared_truncations_keep_the_least_work():
    assert _shared_truncations([23, 31, 39, 47, 50, 50], limit=2) == [31, 31, 50, 50, 50, 50]
    # No more values than the limit: each block keeps its own.
    assert _shared_truncations([7, 15, 7], limit=3) == [7, 15, 7]
    many = [15] * 3 + [23] * 193 + [31] * 115 + [39] * 2
    shared = _shared_truncations(many, limit=3)
    assert all(s >= d for s, d in zip(shared, many, strict=True))
    assert sorted(set(shared)) == [23, 31, 39]


def test_blocks_with_their_own_truncation_agree_with_one_solve():
    # Calm and busy rows mixed: sorted into blocks, the calm ones truncate demand much lower.
    rng = np.random.default_rng(5)
    scale = np.where(np.arange(12) % 3 == 0, 12.0, 0.3)
    rates = scale[:, None, None] * rng.uniform(0.2, 1.0, (12, 6, 5))
    prices = rng.uniform(1, 9, (12, 5))
    whole = solve_surfaces(rates, prices, 60, chunk_rows=None)
    blocks = solve_surfaces(rates, prices, 60, chunk_rows=4)
    assert blocks.d_max == whole.d_max > 8
    ref_price, ref_value = solve_surfaces_numpy(rates, prices, 60)
    np.testing.assert_allclose(np.asarray(blocks.value), ref_value, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(np.asarray(blocks.value), np.asarray(whole.value), rtol=1e-6)
    assert np.mean(np.isclose(np.asarray(blocks.price), ref_price, rtol=1e-6)) > 0.99


@pytest.fixture(scope="module")
def drop_fit():
    """A fit on a small simulated hourly panel with known elasticities."""
    import pandas as pd

    from pricing.model import fit_elasticity

    rng = np.random.default_rng(0)
    start = pd.Timestamp("2026-01-05", tz="UTC")
    rows = []
    for sku, beta, base, ref in (("A", -2.0, 2.0, 20.0), ("B", -1.5, 1.0, 50.0)):
        for h in range(96):
            price = ref * rng.choice([0.8, 1.0, 1.25])
            lam = base * (price / ref) ** beta
            rows.append((sku, start + pd.Timedelta(hours=h), price, rng.poisson(lam), 0.0))
    panel = pd.DataFrame(rows, columns=["sku", "period", "price", "quantity", "intensity"])
    return fit_elasticity(panel, intensity="intensity", daily_profile=False)


def test_surfaces_from_fit_price_the_fitted_demand_inside_guardrails(drop_fit):
    from pricing.guardrails import GuardrailSpec
    from pricing.policy import price_surfaces_from_fit

    ladder = np.array([[14.99, 17.99, 19.99, 24.99, 29.99], [39.99, 44.99, 49.99, 59.99, 69.99]])
    spec = GuardrailSpec(price_ending=0.99, max_change_pct=20)
    out = price_surfaces_from_fit(
        drop_fit,
        ladder,
        np.array([12, 6]),
        10,
        intensity=np.array([1.0, 0.0]),
        hours=9,
        guardrails=spec,
    )
    assert out.price.shape == (2, 13, 10) and np.all(np.isfinite(out.price))
    expected = solve_surfaces(
        drop_fit.demand_rates(ladder, intensity=np.zeros((2, 10))), ladder, np.array([12, 6])
    )
    # Intensity 1 with no fitted intensity effect is the zero-intensity demand.
    if np.allclose(drop_fit.params.intensity_lift, 0) and np.allclose(
        drop_fit.params.intensity_shift, 0
    ):
        np.testing.assert_allclose(out.value, np.asarray(expected.value), rtol=1e-5)
    cents = out.price - np.floor(out.price + 1e-9)
    np.testing.assert_allclose(cents, 0.99, atol=1e-6)
    step = np.abs(np.diff(out.price, axis=2)) / out.price[:, :, :-1]
    assert np.all(step <= 0.2 + 1e-9)
    assert out.keys == drop_fit.keys


def test_thompson_exploration_draws_from_the_posterior(drop_fit):
    import jax

    from pricing.policy import price_surfaces_from_fit

    ladder = np.geomspace(10.0, 80.0, 12)
    mean = price_surfaces_from_fit(drop_fit, ladder, 8, 6)
    draws = [
        price_surfaces_from_fit(drop_fit, ladder, 8, 6, explore=True, key=jax.random.key(i))
        for i in range(4)
    ]
    assert any(not np.allclose(d.rates, mean.rates) for d in draws)
    for d in draws:
        assert np.all(np.isin(d.price, ladder))
    with pytest.raises(InputError, match="pass key"):
        price_surfaces_from_fit(drop_fit, ladder, 8, 6, explore=True)


def test_threads_and_blocks_give_one_solution_and_compile_once():
    from pricing.policy_blocks import _solve

    rng = np.random.default_rng(21)
    rates = rng.uniform(0, 3, (70, 6, 5))
    prices = np.sort(rng.uniform(1, 9, (70, 5)), axis=1)
    one = solve_surfaces(rates, prices, 12, chunk_rows=16, workers=1)
    compiled = _solve._cache_size()
    # A re-fit whose rates move a little: same blocks and truncations, nothing new to compile.
    two = solve_surfaces(rates * 1.01, prices, 12, chunk_rows=16, workers=3)
    assert _solve._cache_size() == compiled
    again = solve_surfaces(rates, prices, 12, chunk_rows=16, workers=3)
    np.testing.assert_array_equal(again.index, one.index)
    np.testing.assert_array_equal(again.value, one.value)
    assert not np.array_equal(two.value, one.value)


def test_a_caller_inside_a_default_device_context_compiles_each_program_once():
    # The re-fit solves inside `with jax.default_device(...)`; the worker threads that run the
    # blocks must run the program the caller compiled, not compile it again for their context.
    from pricing.policy_blocks import _solve

    rates = np.broadcast_to(np.linspace(0.5, 2.0, 7)[None, None, :], (40, 5, 7))
    prices = np.broadcast_to(np.linspace(2.0, 9.0, 7)[None, :], (40, 7))
    compiled = _solve._cache_size()
    with jax.default_device(jax.devices()[0]):
        sol = solve_surfaces(rates, prices, 17, chunk_rows=8, workers=2)
    assert _solve._cache_size() == compiled + 1  # five blocks, one shape and truncation
    np.testing.assert_array_equal(sol.index, np.broadcast_to(sol.index[:1], sol.index.shape))


def test_surfaces_are_host_arrays_with_a_compact_ladder_index():
    rng = np.random.default_rng(4)
    rates = rng.uniform(0, 2, (3, 4, 6))
    sol = solve_surfaces(rates, rng.uniform(1, 9, (3, 6)), 5)
    assert all(isinstance(a, np.ndarray) for a in (sol.price, sol.value, sol.index))
    assert sol.index.dtype == np.int8 and sol.price.shape == (3, 6, 4)
    wide = solve_surfaces(np.ones((1, 2, 200)), np.linspace(1, 50, 200)[None], 2)
    assert wide.index.dtype == np.int16 and int(wide.index.max()) < 200
