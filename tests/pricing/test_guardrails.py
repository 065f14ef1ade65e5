"""Guardrails always win: property tests over random specs and random (even wild) proposals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pricing.exceptions import GuardrailError, InputError
from pricing.guardrails import (
    MIN_PRICE,
    GuardrailCode,
    GuardrailSpec,
    apply_guardrails,
    candidate_ladder,
    guard_path,
)
from pricing.money import compare_money, to_minor

money = st.floats(min_value=0.0, max_value=500.0, allow_nan=False, allow_infinity=False)


@st.composite
def specs(draw) -> GuardrailSpec:
    floor = draw(st.none() | money)
    ceiling = draw(st.none() | money)
    ladder = draw(
        st.none()
        # A ladder is strictly ascending at the cent, as an operator writes it.
        | st.lists(st.floats(0.05, 500.0, allow_nan=False), min_size=1, max_size=8).map(
            lambda steps: tuple(sorted({round(p, 2) for p in steps}))
        )
    )
    ending = draw(st.none() | st.sampled_from([0.0, 0.49, 0.95, 0.99]))
    try:
        return GuardrailSpec(
            floor=floor,
            ceiling=ceiling,
            ladder=ladder,
            price_ending=ending,
            max_change_pct=draw(st.none() | st.floats(0.5, 80.0)),
            max_changes_per_window=draw(st.none() | st.integers(0, 5)),
            no_touch_periods=draw(st.integers(0, 3)),
            allow_below_cost=draw(st.booleans()),
            unit_cost=draw(money),
        )
    except GuardrailError:
        assume(False)
        raise


proposals = st.floats(min_value=-1e6, max_value=1e9, allow_nan=False, allow_infinity=False)


def assert_allowed(spec: GuardrailSpec, prices: np.ndarray) -> None:
    """Every price keeps to the spec, money compared at the cent (pricing.money)."""
    assert np.all(np.isfinite(prices))
    for price in np.ravel(prices).tolist():
        if spec.floor is not None:
            assert compare_money(price, spec.floor) >= 0, (price, spec)
        if spec.ceiling is not None:
            assert compare_money(price, spec.ceiling) <= 0, (price, spec)
        assert compare_money(price, MIN_PRICE) >= 0, (price, spec)
        if not spec.allow_below_cost:
            assert compare_money(price, spec.unit_cost) >= 0, (price, spec)
        if spec.ladder is not None:
            assert any(compare_money(price, step) == 0 for step in spec.allowed_ladder)
        elif spec.price_ending is not None:
            assert to_minor(price) % 100 == to_minor(spec.price_ending), (price, spec)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(spec=specs(), raw=st.lists(proposals, min_size=12, max_size=12), n0=st.integers(0, 2))
def test_no_out_of_guardrail_price_leaves_a_surface(spec, raw, n0):
    surface = np.asarray(raw).reshape(1, 3, 4)
    guarded, code = apply_guardrails(surface, spec, inventory=n0)
    assert_allowed(spec, guarded)
    assert np.all(
        (code == GuardrailCode.NONE) == np.isclose(guarded, surface, rtol=1e-9, atol=1e-9)
    )
    if spec.no_touch_periods:
        hold = min(spec.no_touch_periods, 4)
        assert np.all(guarded[0, :, :hold] == guarded[0, n0, 0])
    if spec.max_change_pct is not None:
        prev, nxt = guarded[0, :, :-1], guarded[0, :, 1:]
        assert np.all(np.abs(nxt - prev) <= spec.max_change_pct / 100 * prev * (1 + 1e-7) + 1e-9)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(
    spec=specs(),
    raw=st.lists(proposals | st.just(math.nan) | st.just(math.inf), min_size=2, max_size=10),
    first=proposals,
)
def test_no_nan_or_out_of_guardrail_price_leaves_a_served_path(spec, raw, first):
    path = np.asarray([first, *raw])[None, :]
    served, code = guard_path(path, spec)
    assert_allowed(spec, served)
    changes = np.sum(~np.isclose(served[0, 1:], served[0, :-1], rtol=1e-12, atol=1e-12))
    if spec.max_changes_per_window is not None:
        assert changes <= spec.max_changes_per_window
    if spec.max_change_pct is not None:
        prev, nxt = served[0, :-1], served[0, 1:]
        assert np.all(np.abs(nxt - prev) <= spec.max_change_pct / 100 * prev * (1 + 1e-7) + 1e-9)
    hold = min(spec.no_touch_periods, path.shape[1])
    assert np.all(served[0, :hold] == served[0, 0]) if hold else True
    assert np.all(code[0, ~np.isfinite(path[0])] == GuardrailCode.HELD)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(spec=specs(), reference=st.floats(0.5, 400.0))
def test_candidate_ladder_is_inside_the_guardrails(spec, reference):
    ladder = candidate_ladder(spec, reference)
    assert ladder.size >= 1 and np.all(np.diff(ladder) > 0)
    assert_allowed(spec, ladder)


def test_codes_name_the_binding_rule():
    spec = GuardrailSpec(floor=10.0, ceiling=50.0, price_ending=0.99, unit_cost=12.0)
    surface = np.array([[[5.0, 60.0, 30.99, 25.5]]])
    guarded, code = apply_guardrails(surface, spec)
    np.testing.assert_allclose(guarded[0, 0], [12.99, 49.99, 30.99, 24.99])
    assert code[0, 0].tolist() == [
        GuardrailCode.COST,
        GuardrailCode.CEILING,
        GuardrailCode.NONE,
        GuardrailCode.ENDING,
    ]


def test_served_path_rules_in_order():
    spec = GuardrailSpec(max_change_pct=20, max_changes_per_window=2, no_touch_periods=2)
    served, code = guard_path(np.array([[10.0, 30.0, 30.0, 30.0, 30.0, 5.0, math.nan]]), spec)
    np.testing.assert_allclose(served[0], [10.0, 10.0, 12.0, 14.4, 14.4, 14.4, 14.4])
    assert code[0].tolist() == [0, 8, 6, 6, 7, 7, 9]


def test_non_finite_surface_is_refused():
    with pytest.raises(InputError, match="non-finite"):
        apply_guardrails(np.array([[[1.0, math.nan]]]), GuardrailSpec())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"floor": 30.0, "ceiling": 20.0}, "floor 30 is above ceiling 20"),
        ({"unit_cost": 25.0, "ceiling": 20.0}, "unit_cost 25 is above ceiling 20"),
        ({"ladder": (5.0, 6.0), "floor": 10.0}, "no ladder price lies between floor 10"),
        ({"price_ending": 0.99, "floor": 10.0, "ceiling": 10.5}, "no price ending in 0.99"),
        ({"price_ending": 1.5}, "price_ending: Input should be less than 1, got 1.5"),
        ({"max_change_pct": 0.0}, "max_change_pct: Input should be greater than 0, got 0.0"),
        ({"ladder": ()}, "ladder must list"),
    ],
)
def test_contradictory_specs_are_refused(kwargs, match):
    with pytest.raises(GuardrailError, match=match):
        GuardrailSpec(**kwargs)


def test_below_cost_allowed_for_clearance():
    spec = GuardrailSpec(unit_cost=25.0, ceiling=20.0, allow_below_cost=True)
    guarded, _ = apply_guardrails(np.array([[[30.0, 5.0]]]), spec)
    np.testing.assert_allclose(guarded[0, 0], [20.0, 5.0])


def test_per_row_specs_match_each_spec_alone_and_chunking_is_invisible():
    rng = np.random.default_rng(5)
    row_specs = [
        GuardrailSpec(floor=10.0, ceiling=40.0, price_ending=0.99, max_change_pct=15),
        GuardrailSpec(ladder=(9.0, 12.0, 15.0, 19.0), no_touch_periods=2),
        GuardrailSpec(unit_cost=14.0, max_change_pct=5),
    ]
    surface = rng.uniform(1.0, 60.0, (3, 5, 8))
    together, codes = apply_guardrails(surface, row_specs, inventory=np.array([4, 2, 3]))
    for i, spec in enumerate(row_specs):
        alone, alone_codes = apply_guardrails(surface[i : i + 1], spec, inventory=[4, 2, 3][i])
        np.testing.assert_array_equal(together[i], alone[0])
        np.testing.assert_array_equal(codes[i], alone_codes[0])
    big = rng.uniform(1.0, 60.0, (400, 30, 40))
    spec = row_specs[1]
    whole, whole_codes = apply_guardrails(big, spec)
    import pricing.guardrails.apply as g

    old, g._CELLS_PER_CHUNK = g._CELLS_PER_CHUNK, 10_000
    try:
        chunked, chunked_codes = apply_guardrails(big, spec)
    finally:
        g._CELLS_PER_CHUNK = old
    np.testing.assert_array_equal(whole, chunked)
    np.testing.assert_array_equal(whole_codes, chunked_codes)
