"""The hourly panel the re-fit learns from: dedupe, prices, stock, censoring."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.exceptions import PanelError
from service.panel import attach_intensity, build_panel, frame_from_records

T0 = pd.Timestamp("2026-03-01T10:00:00Z")


def _sale(eid: str, minutes: int, qty: int, price: float, sku: str = "A") -> dict[str, object]:
    ts = (T0 + pd.Timedelta(minutes=minutes)).isoformat()
    return {
        "event_id": eid,
        "ts": ts,
        "type": "sale",
        "sku": sku,
        "market": "m",
        "quantity": qty,
        "unit_price": price,
    }


def test_replayed_events_count_once() -> None:
    recs = [_sale("a", 5, 2, 10.0), _sale("a", 5, 2, 10.0), _sale("b", 70, 1, 12.0)]
    panel = build_panel(frame_from_records(recs))
    assert panel["quantity"].tolist() == [2.0, 1.0]
    # The same events twice in the table (a crash re-read) give the same panel.
    twice = pd.concat([frame_from_records(recs)] * 2, ignore_index=True)
    pd.testing.assert_frame_equal(build_panel(twice), panel)


def test_prices_are_weighted_and_carried_forward() -> None:
    recs = [_sale("a", 5, 1, 10.0), _sale("b", 6, 3, 14.0), _sale("c", 185, 1, 12.0)]
    panel = build_panel(frame_from_records(recs))
    assert panel["period"].tolist() == [T0 + pd.Timedelta(hours=h) for h in range(4)]
    assert panel["price"].tolist() == [13.0, 13.0, 13.0, 12.0]
    assert panel["quantity"].tolist() == [4.0, 0.0, 0.0, 1.0]


def test_sold_out_hours_are_censored_and_empty_shelves_dropped() -> None:
    recs = [_sale("a", 5, 3, 10.0), _sale("b", 65, 2, 10.0)]
    end = T0 + pd.Timedelta(hours=5)
    panel = build_panel(frame_from_records(recs), inventory_now={("A", "m"): 0}, end=end)
    # Hour 1 sold the last two units: censored; hours 2-4 had nothing to sell.
    assert panel["sold_out"].tolist() == [False, True]
    assert len(panel) == 2
    restocked = recs + [
        {
            "event_id": "r",
            "ts": (T0 + pd.Timedelta(hours=3)).isoformat(),
            "type": "restock",
            "sku": "A",
            "market": "m",
            "quantity": 5,
        }
    ]
    panel = build_panel(frame_from_records(restocked), inventory_now={("A", "m"): 5}, end=end)
    assert panel["period"].dt.hour.tolist() == [10, 11, 13, 14]


def test_list_of_skus_is_one_event_per_sku() -> None:
    recs = [
        {
            "event_id": "x",
            "ts": T0.isoformat(),
            "type": "announcement",
            "sku": ["A", "B"],
            "market": "m",
            "reach": 100,
        }
    ]
    frame = frame_from_records(recs)
    assert sorted(frame["sku"]) == ["A", "B"]


def test_bad_events_name_the_problem() -> None:
    bad = frame_from_records([_sale("a", 5, 1, -3.0)])
    with pytest.raises(PanelError, match="unit_price > 0"):
        build_panel(bad)
    naive = pd.DataFrame(
        {
            "event_id": ["a"],
            "ts": [pd.Timestamp("2026-01-01")],
            "type": ["sale"],
            "sku": ["A"],
            "market": ["m"],
            "quantity": [1],
            "unit_price": [1.0],
        }
    )
    with pytest.raises(PanelError, match="tz-aware"):
        build_panel(naive)


def test_attach_intensity_fills_missing_hours_with_zero() -> None:
    panel = build_panel(frame_from_records([_sale("a", 5, 1, 10.0), _sale("b", 65, 1, 10.0)]))
    index = pd.DataFrame({"sku": ["A"], "market": ["m"], "hour": [T0], "intensity": [2.5]})
    assert attach_intensity(panel, index)["intensity"].tolist() == [2.5, 0.0]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 400), st.integers(0, 4)), min_size=1, max_size=30),
    st.integers(0, 20),
)
def test_units_sold_are_conserved(sales: list[tuple[int, int]], left: int) -> None:
    recs = [_sale(f"e{i}", m, q, 10.0) for i, (m, q) in enumerate(sales)]
    panel = build_panel(frame_from_records(recs + recs[:3]), inventory_now={("A", "m"): left})
    assert panel["quantity"].sum() == sum(q for _, q in sales)
    assert not panel["sold_out"].any() or left == 0


def test_the_hour_under_way_is_left_out_but_counts_in_the_stock() -> None:
    recs = [_sale("a", 5, 2, 10.0), _sale("b", 65, 3, 10.0), _sale("c", 125, 1, 10.0)]
    end = T0 + pd.Timedelta(hours=2)  # the 12:00 hour is still under way
    panel = build_panel(frame_from_records(recs), inventory_now={("A", "m"): 0}, end=end)
    assert panel["quantity"].tolist() == [2.0, 3.0]
    # One unit sold after ``end`` was still on the shelf at 12:00: 11:00 did not sell out.
    assert panel["sold_out"].tolist() == [False, False]
