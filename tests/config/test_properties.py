"""Property tests: numeric bounds of every guarded field, merges, line tracking, diffs."""

from __future__ import annotations

import math
from typing import Any

import pytest
import yaml
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from pricing.guardrails import MIN_PRICE
from pricing.money import compare_money
from service.config.checks import bundle_problems
from service.config.diff import diff_bundles
from service.config.loader import parse_drop, validation_issues
from service.config.models import ConfigBundle, Defaults, DropConfig, Guardrails
from service.config.yamlio import load_yaml_with_lines

money = st.floats(min_value=0, max_value=1_000_000, allow_nan=False)
any_float = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-10, max_value=10),
)


def _drop(**sku_fields: Any) -> dict[str, Any]:
    sku = {"sku": "S1", "category": "c", "list_price": 10.0, "inventory": {"m": 5}}
    sku.update(sku_fields)
    return {
        "id": "d",
        "markets": ["m"],
        "windows": [{"start": "2026-12-05T10:00:00Z", "end": "2026-12-05T12:00:00Z"}],
        "skus": [sku],
    }


@given(floor=money, ceiling=money)
def test_floor_and_ceiling_valid_iff_ordered(floor: float, ceiling: float) -> None:
    try:
        g = Guardrails(floor=floor, ceiling=ceiling)
    except ValidationError as exc:
        issues = validation_issues(exc, model=Guardrails)
        if compare_money(floor, ceiling) > 0:
            assert [i.path for i in issues] == ["floor"]
            assert f"floor {floor:g} is above ceiling {ceiling:g}" in issues[0].message
        else:  # no price of at least one cent fits under the ceiling
            assert compare_money(MIN_PRICE, ceiling) > 0
            assert [i.path for i in issues] == ["ceiling"]
            assert "at least the lowest price 0.01, got" in issues[0].message
    else:
        assert g.floor is not None and g.ceiling is not None
        assert compare_money(g.floor, g.ceiling) <= 0
        assert compare_money(MIN_PRICE, g.ceiling) <= 0


@pytest.mark.parametrize(
    ("field", "lo", "lo_open", "hi", "hi_open"),
    [
        ("max_change_pct", 0.0, True, 100.0, False),
        ("price_ending", 0.0, False, 1.0, True),
        ("approval_band_pct", 0.0, True, 1000.0, False),
        ("floor", 0.0, False, 1_000_000.0, False),
        ("ceiling", 0.0, False, 1_000_000.0, False),
    ],
)
@settings(max_examples=60)
@given(value=any_float)
def test_guardrail_numeric_bounds(
    field: str, lo: float, lo_open: bool, hi: float, hi_open: bool, value: float
) -> None:
    allowed = (
        math.isfinite(value)
        and (value > lo if lo_open else value >= lo)
        and (value < hi if hi_open else value <= hi)
        # no price of at least one cent fits under a ceiling below it
        and (field != "ceiling" or compare_money(MIN_PRICE, value) <= 0)
    )
    drop, issues, _ = parse_drop({**_drop(), "guardrails": {field: value}})
    assert (drop is not None) == allowed, issues
    if not allowed:
        assert [i.path for i in issues] == [f"guardrails.{field}"]
        assert "got" in issues[0].message  # says what was received


@pytest.mark.parametrize(
    ("field", "lo", "lo_open", "hi"),
    [
        ("list_price", 0.0, True, 1_000_000.0),
        ("unit_cost", 0.0, False, 1_000_000.0),
        ("salvage_value", 0.0, False, 1_000_000.0),
    ],
)
@settings(max_examples=60)
@given(value=any_float)
def test_sku_money_bounds(field: str, lo: float, lo_open: bool, hi: float, value: float) -> None:
    allowed = math.isfinite(value) and (value > lo if lo_open else value >= lo) and value <= hi
    drop, issues, _ = parse_drop(_drop(**{field: value}))
    assert (drop is not None) == allowed, issues
    if not allowed:
        assert [i.path for i in issues] == [f"skus[0].{field}"]


@settings(max_examples=60)
@given(units=st.integers(min_value=-(10**9), max_value=10**9))
def test_inventory_bounds(units: int) -> None:
    drop, issues, _ = parse_drop(_drop(inventory={"m": units}))
    assert (drop is not None) == (0 <= units <= 10_000_000)
    if drop is None:
        assert [i.path for i in issues] == ["skus[0].inventory.m"]


@settings(max_examples=60)
@given(minutes=st.integers(min_value=-100, max_value=20_000))
def test_period_and_no_touch_bounds(minutes: int) -> None:
    drop, _, _ = parse_drop({**_drop(), "period_minutes": minutes})
    assert (drop is not None) == (1 <= minutes <= 7 * 24 * 60)
    drop, _, _ = parse_drop({**_drop(), "guardrails": {"no_touch_minutes": minutes}})
    assert (drop is not None) == (0 <= minutes <= 24 * 60)


@settings(max_examples=80)
# 50.0 and 49.99999999999999 are the same 5,000 cents: the list price keeps to the ceiling.
@example(
    drop_floor=None,
    drop_ceiling=None,
    sku_floor=None,
    sku_ceiling=49.99999999999999,
    list_price=50.0,
)
@given(
    drop_floor=st.none() | st.floats(1, 50),
    drop_ceiling=st.none() | st.floats(1, 50),
    sku_floor=st.none() | st.floats(1, 50),
    sku_ceiling=st.none() | st.floats(1, 50),
    list_price=st.floats(1, 50),
)
def test_merged_bounds_are_checked_on_the_overriding_level(
    drop_floor: float | None,
    drop_ceiling: float | None,
    sku_floor: float | None,
    sku_ceiling: float | None,
    list_price: float,
) -> None:
    drop_g = {k: v for k, v in (("floor", drop_floor), ("ceiling", drop_ceiling)) if v is not None}
    sku_g = {k: v for k, v in (("floor", sku_floor), ("ceiling", sku_ceiling)) if v is not None}
    # Each level is valid on its own; only the merge may conflict.
    for lo, hi in ((drop_floor, drop_ceiling), (sku_floor, sku_ceiling)):
        assume(lo is None or hi is None or compare_money(lo, hi) <= 0)
    data = {**_drop(list_price=list_price, guardrails=sku_g or None), "guardrails": drop_g}
    drop = DropConfig.model_validate(data)
    bundle = ConfigBundle(defaults=Defaults(), drops=(drop,))
    floor = sku_floor if sku_floor is not None else drop_floor
    ceiling = sku_ceiling if sku_ceiling is not None else drop_ceiling
    problems = bundle_problems(bundle)
    # The oracle compares money by the one rule (pricing.money): at the cent.
    bounds_ok = floor is None or ceiling is None or compare_money(floor, ceiling) <= 0
    price_ok = (floor is None or compare_money(list_price, floor) >= 0) and (
        ceiling is None or compare_money(list_price, ceiling) <= 0
    )
    assert (not problems) == (bounds_ok and price_ok), problems
    if not bounds_ok:
        assert problems[0].path[:3] == ("skus", 0, "guardrails")
    if problems == []:
        g = bundle.guardrails_for(drop, drop.skus[0])
        assert (g.floor, g.ceiling) == (floor, ceiling)


yaml_keys = st.text(alphabet="abcdefghij_", min_size=1, max_size=6)
yaml_leaves = st.one_of(st.integers(-1000, 1000), st.booleans(), st.text("xyz ", max_size=5))
yaml_docs = st.recursive(
    yaml_leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(yaml_keys, children, max_size=4)
    ),
    max_leaves=25,
)


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(data, dict):
        for k, v in data.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += _paths(v, (*prefix, i))
    return out


@given(data=st.dictionaries(yaml_keys, yaml_docs, min_size=1, max_size=5), flow=st.booleans())
def test_line_tracking_parses_like_safe_load_and_locates_every_field(
    data: dict[str, Any], flow: bool
) -> None:
    text = yaml.safe_dump(data, default_flow_style=flow, sort_keys=False)
    doc = load_yaml_with_lines(text)
    assert doc.data == yaml.safe_load(text)
    n_lines = text.count("\n") + 1
    for path in _paths(data):
        line = doc.lines.line_of(path)
        assert path in doc.lines and line is not None and 1 <= line <= n_lines
    assert doc.duplicate_keys == ()


@settings(max_examples=40)
@given(a=st.floats(1, 100), b=st.floats(1, 100))
def test_diff_is_empty_iff_equal_and_names_the_field(a: float, b: float) -> None:
    one = ConfigBundle(drops=(DropConfig.model_validate(_drop(list_price=a)),))
    two = ConfigBundle(drops=(DropConfig.model_validate(_drop(list_price=b)),))
    changes = diff_bundles(one, two)
    if a == b:
        assert changes == []
    else:
        assert [str(c) for c in changes] == [f"~ drops[d].skus[S1].list_price: {a!r} -> {b!r}"]


def test_model_copy_keeps_the_sku_index_in_step() -> None:
    drop = DropConfig.model_validate(_drop(list_price=10.0))
    cheaper = drop.skus[0].model_copy(update={"list_price": 7.5})
    copy = drop.model_copy(update={"skus": (cheaper,)})
    assert copy.sku_config("S1") is not None and copy.sku_config("S1").list_price == 7.5  # type: ignore[union-attr]
    bundle = ConfigBundle(drops=(drop,)).model_copy(update={"drops": (copy,)})
    assert bundle.find_sku("S1")[1].list_price == 7.5  # type: ignore[index]
    assert bundle == ConfigBundle.model_validate_json(bundle.model_dump_json())
