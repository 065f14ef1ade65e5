"""pricing.events: one table of event kinds, and every reader takes its view from it."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from pricing import intensity, signals
from pricing.events import (
    EVENT_KINDS,
    EVENT_TYPES,
    INDEX_KINDS,
    STIMULUS_KINDS,
    STOCK_KINDS,
    EventKind,
    _check,
)
from pricing.intensity import IntensityParams, build_intensity_index
from pricing.signals import build_signal_panel

T0 = pd.Timestamp("2026-03-01 10:00", tz="UTC")
SIZE = {"quantity": 3.0, "reach": 5000.0, "count": 2.0, "weight": 1.5}


def _event(kind: str, **extra: object) -> dict[str, object]:
    row: dict[str, object] = {"ts": T0, "type": kind, "sku": "A", "market": "nyc"}
    row[EVENT_KINDS[kind].size_field] = SIZE[EVENT_KINDS[kind].size_field]
    if kind == "sale":
        row["unit_price"] = 20.0
    return row | extra


def test_the_table_as_the_readers_knew_it() -> None:
    # Behaviour is unchanged: the same kinds, weights and half-lives as before the table.
    assert EVENT_TYPES == ("sale", "return", "restock", "announcement", "claim", "listing")
    assert INDEX_KINDS == ("sale", "announcement", "claim", "listing")
    assert STIMULUS_KINDS == ("announcement", "claim", "listing")
    assert STOCK_KINDS == ("sale", "return", "restock")
    assert [EVENT_KINDS[k].stock_sign for k in STOCK_KINDS] == [-1, 1, 1]
    assert IntensityParams() == IntensityParams(
        weight_sale=0.10,
        weight_announcement=1.0,
        weight_claim=0.25,
        weight_listing=0.5,
        half_life_sale=6.0,
        half_life_announcement=18.0,
        half_life_claim=12.0,
        half_life_listing=24.0,
    )


def test_every_reader_derives_from_the_table() -> None:
    params = IntensityParams()
    assert intensity.EVENT_TYPES == INDEX_KINDS
    for kind in INDEX_KINDS:
        assert params.weight(kind) == EVENT_KINDS[kind].weight
        assert params.half_life(kind) == EVENT_KINDS[kind].half_life_hours
    assert tuple(EVENT_KINDS) == signals.EVENT_TYPES
    assert signals._STIMULUS_TYPES == STIMULUS_KINDS


@pytest.mark.parametrize("kind", INDEX_KINDS)
def test_each_indexed_kind_scores_its_size_with_its_weight_and_half_life(kind: str) -> None:
    spec = EVENT_KINDS[kind]
    assert spec.weight is not None and spec.half_life_hours is not None
    events = pd.DataFrame([_event(kind)])
    index = build_intensity_index(events, end=T0 + pd.Timedelta(hours=1))
    value = SIZE[spec.size_field]
    size = math.log1p(value) if spec.log_size else value
    # The event sits at the start of its hour: decayed over one hour, then two.
    expected = [spec.weight * size * 2 ** (-h / spec.half_life_hours) for h in (1, 2)]
    assert index[kind].tolist() == pytest.approx(expected)
    others = [k for k in INDEX_KINDS if k != kind]
    assert (index[others].to_numpy() == 0).all()


@pytest.mark.parametrize("kind", EVENT_TYPES)
def test_each_kind_reaches_the_signal_panel_where_the_table_says(kind: str) -> None:
    rows = [_event("sale", ts=T0 - pd.Timedelta(hours=2)), _event(kind)]
    panel = build_signal_panel(pd.DataFrame(rows))
    hour = 2  # the kind's event hour, after the opening sale
    moved = {
        "sale": panel.units,
        "return": panel.returns,
        "restock": panel.restocks,
    }
    for stock_kind, grid in moved.items():
        expected = SIZE["quantity"] if stock_kind == kind else 0.0
        assert grid[0, hour] == expected, stock_kind
    assert panel.stimuli[0, hour] == (1.0 if EVENT_KINDS[kind].stimulus else 0.0)


def test_an_inconsistent_row_is_refused() -> None:
    row = EventKind("gift", "quantity", 0, True, weight=1.0)
    with pytest.raises(ValueError, match="both a weight and a half-life"):
        _check((row,))
    with pytest.raises(ValueError, match="unique"):
        _check((EVENT_KINDS["sale"], EVENT_KINDS["sale"]))
    with pytest.raises(ValueError, match="stock_sign"):
        _check((EventKind("gift", "quantity", 2, False),))
