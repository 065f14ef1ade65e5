"""The archetype detectors find what pricing.synthetic planted and nothing on its
control streams.

These streams share the detectors' assumptions (Poisson units, equal markets in UTC);
the shop-like streams of tests/utils/shop_streams.py, which do not, are judged in
test_signals_shop.py and benchmarks/bench_signal_recall.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pricing.exceptions import InputError
from pricing.signals import (
    Detection,
    SignalParams,
    build_signal_panel,
    detect_creator_led,
    detect_edge_acceleration,
    detect_regional_spikes,
    detect_signals,
    detections_frame,
    scan_signals,
)
from pricing.synthetic import CreatorLed, EdgeMarket, RegionalSpike, simulate_event_stream

MARKETS = ("brooklyn", "queens", "harlem", "jersey-city", "hoboken", "newark")
PLANTED = (
    RegionalSpike("queens"),
    CreatorLed("ava", "SKU-B"),
    EdgeMarket("hoboken"),
)


@pytest.fixture(scope="module")
def planted_streams():
    return [simulate_event_stream(key=seed, plant=PLANTED) for seed in range(6)]


@pytest.fixture(scope="module")
def control_streams():
    return [simulate_event_stream(key=1000 + seed) for seed in range(8)]


def _subjects(detections: list[Detection]) -> set[tuple[str, str | None, str | None, str | None]]:
    return {(d.archetype, d.market, d.sku, d.creator) for d in detections}


def test_each_planted_archetype_is_detected_and_nothing_else(planted_streams):
    expected = {
        ("regional_spike", "queens", None, None),
        ("creator_led", None, "SKU-B", "ava"),
        ("edge_acceleration", "hoboken", None, None),
    }
    for stream in planted_streams:
        assert _subjects(detect_signals(stream.events, stream.lookups)) == expected


def test_control_streams_give_no_detection(control_streams):
    # Control streams still carry creator posts with no effect, claims shocks shared by
    # every market and slow repricing: the detectors must stay quiet.
    for stream in control_streams:
        assert detect_signals(stream.events, stream.lookups) == []


def test_a_surge_in_every_market_is_not_a_regional_spike():
    everywhere = tuple(RegionalSpike(m, multiplier=4.0) for m in MARKETS)
    for seed in range(4):
        stream = simulate_event_stream(key=500 + seed, plant=everywhere)
        panel = build_signal_panel(stream.events, stream.lookups)
        assert detect_regional_spikes(panel) == []


def test_regional_spike_evidence_pattern_and_time(planted_streams):
    stream = planted_streams[0]
    (spike,) = detect_regional_spikes(build_signal_panel(stream.events, stream.lookups))
    assert spike.stats["pattern"] == "weekend"
    # Three weekends in the stream: every spike day is a Saturday or Sunday afternoon.
    days = {e.start.date() for e in spike.evidence}
    assert len(days) >= 4
    # Planted 12:00-17:59 on Saturdays and Sundays (UTC, the markets' zone here).
    assert (spike.stats["days"], spike.stats["local_hours"]) == ("Sat-Sun", "12:00-18:00")
    assert spike.stats["mean_concentration"] >= 0.5
    for e in spike.evidence:
        assert e.start.day_of_week >= 5
        assert (e.start.hour, e.end.hour) == (12, 18)
        # Planted x5; what the other markets do is removed, so the lift is about that.
        assert 2.5 <= e.detail["lift"] <= 10
    assert spike.detected_at == max(e.end for e in spike.evidence)
    assert spike.stats["p_adjusted"] <= SignalParams().spike_alpha
    assert spike.score == pytest.approx(spike.stats["spike_days"], rel=0.5)


def test_weekday_spike_is_reported_as_weekday():
    plant = (RegionalSpike("harlem", weekdays=(1, 3), hours=(17, 21), multiplier=4.0),)
    stream = simulate_event_stream(key=7, plant=plant)
    (spike,) = detect_signals(stream.events, stream.lookups)
    assert (spike.archetype, spike.market, spike.stats["pattern"]) == (
        "regional_spike",
        "harlem",
        "weekday",
    )


def test_creator_lift_is_measured_and_sticky(planted_streams):
    stream = planted_streams[1]
    panel = build_signal_panel(stream.events, stream.lookups)
    (det,) = detect_creator_led(stream.events, panel)
    assert (det.creator, det.sku) == ("ava", "SKU-B")
    assert det.stats["stickiness"] >= 0.75
    # Planted: ×(1 + 3 e^(−Δt/12h)) → over 8 h, 1 + 3·12·(1 − e^(−2/3))/8 ≈ 3.2 at a flat
    # profile; the measured mean lift must be of that order, not a shape check.
    assert 2.2 < det.stats["mean_lift"] < 4.5
    announced = stream.events[
        (stream.events["type"] == "announcement") & (stream.events["creator"] == "ava")
    ]
    assert {e.detail["event_id"] for e in det.evidence} <= set(announced["event_id"])
    for e in det.evidence:
        assert e.end - e.start == pd.Timedelta(hours=SignalParams().lift_post_hours)


def test_a_creator_whose_lift_does_not_recur_is_not_detected():
    # One big lift, then posts that move nothing: no stickiness.
    stream = simulate_event_stream(
        key=11, plant=(CreatorLed("bo", "SKU-C", every_hours=1000, first_hour=100),)
    )
    events = stream.events.copy()
    extra = pd.DataFrame(
        {
            "event_id": [f"bo-{i}" for i in range(3)],
            "ts": pd.to_datetime(["2026-11-12T10:00Z", "2026-11-15T10:00Z", "2026-11-19T10:00Z"]),
            "type": "announcement",
            "sku": "SKU-C",
            "market": None,
            "reach": 10_000.0,
            "creator": "bo",
        }
    )
    events = pd.concat([events, extra], ignore_index=True)
    panel = build_signal_panel(events, stream.lookups)
    assert [d for d in detect_creator_led(events, panel) if d.creator == "bo"] == []
    loose = SignalParams(creator_min_stickiness=0.0, creator_min_lift=0.0, creator_alpha=1.0)
    (bo,) = [d for d in detect_creator_led(events, panel, loose) if d.creator == "bo"]
    # The mean of the four posts is lifted by the first alone: without it, nothing.
    assert bo.stats["announcements"] == 4
    assert bo.stats["p_without_best_post"] > SignalParams().creator_alpha


def test_edge_market_reaction_and_conversion(planted_streams):
    stream = planted_streams[2]
    (edge,) = detect_edge_acceleration(build_signal_panel(stream.events, stream.lookups))
    assert edge.market == "hoboken"
    assert edge.stats["median_reaction_hours"] == pytest.approx(2.0, abs=1.0)
    assert 15 <= edge.stats["peer_median_reaction_hours"] <= 30
    assert edge.stats["conversion"] == pytest.approx(0.3, abs=0.03)
    assert edge.stats["peer_conversion"] == pytest.approx(0.2, abs=0.02)


def test_edge_needs_lookups_and_says_so(planted_streams):
    stream = planted_streams[2]
    panel = build_signal_panel(stream.events)
    assert not panel.has_lookups
    assert detect_edge_acceleration(panel) == []
    report = scan_signals(stream.events)
    (note,) = [n for n in report.not_judged if n.archetype == "edge_acceleration"]
    assert "look-ups" in note.reason and note.to_dict()["needs"]
    # The other archetypes are still judged and found.
    assert {d.archetype for d in report.detections} == {"regional_spike", "creator_led"}


def test_since_and_market_filters(planted_streams):
    stream = planted_streams[0]
    everything = detect_signals(stream.events, stream.lookups)
    queens = detect_signals(stream.events, stream.lookups, market="queens")
    assert {d.archetype for d in queens} == {
        "regional_spike",
        "creator_led",
    }  # ava posts everywhere
    late = detect_signals(stream.events, stream.lookups, since=stream.truth.hours[-1])
    assert late == [] and len(everything) == 3
    with pytest.raises(InputError, match="time zone"):
        detect_signals(stream.events, stream.lookups, since="2026-11-10T00:00")


def test_panel_sums_match_the_events(planted_streams):
    stream = planted_streams[0]
    panel = build_signal_panel(stream.events, stream.lookups)
    sales = stream.events[stream.events["type"] == "sale"]
    assert panel.units.sum() == pytest.approx(sales["quantity"].sum())
    assert panel.revenue.sum() == pytest.approx((sales["quantity"] * sales["unit_price"]).sum())
    assert panel.lookups.sum() == stream.lookups["lookups"].sum()
    # Same hourly grid as the generator; rows are sorted by (sku, market), so align them.
    assert panel.units.shape == stream.truth.expected_units.shape
    order = pd.MultiIndex.from_frame(stream.truth.keys).get_indexer(
        pd.MultiIndex.from_frame(panel.keys)
    )
    total, mean = panel.units.sum(1), stream.truth.expected_units[order].sum(1)
    assert np.all(np.abs(total - mean) <= 5 * np.sqrt(mean))


def test_detections_serialise_to_json(planted_streams):
    stream = planted_streams[0]
    found = detect_signals(stream.events, stream.lookups)
    payload = json.dumps([d.to_dict() for d in found])
    back = json.loads(payload)
    assert {d["archetype"] for d in back} == {"regional_spike", "creator_led", "edge_acceleration"}
    frame = detections_frame(found)
    assert list(frame["archetype"]) == [d.archetype for d in found]
    assert detections_frame([]).empty


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda e: e.drop(columns=["market"]), "missing column"),
        (lambda e: e.assign(type=e["type"].where(e.index != 3, "refund")), "unknown value"),
        (lambda e: e.assign(ts=e["ts"].dt.tz_localize(None)), "time zone"),
        (lambda e: e.assign(quantity=e["quantity"].where(e.index != 0, -1.0)), "quantity"),
        (lambda e: e.assign(unit_price=e["unit_price"].where(e.index != 0, np.nan)), "unit_price"),
    ],
)
def test_bad_events_are_refused_with_the_offending_column(mutate, message):
    stream = simulate_event_stream(key=3, hours=72)
    events = stream.events.sort_values(
        "type", key=lambda t: t != "sale", kind="stable"
    ).reset_index(drop=True)
    with pytest.raises(InputError, match=message):
        detect_signals(mutate(events))


def test_post_window_must_be_an_hour_or_more(planted_streams):
    stream = planted_streams[0]
    panel = build_signal_panel(stream.events)
    with pytest.raises(InputError, match="lift_post_hours"):
        detect_creator_led(stream.events, panel, SignalParams(lift_post_hours=0))


def test_announcements_recorded_once_per_market_count_once(planted_streams):
    # The service stores market-scoped events: one post becomes one row per market.
    stream = planted_streams[1]
    ev = stream.events
    ann = ev[ev["type"] == "announcement"]
    per_market = pd.concat(
        [ann.assign(market=m, event_id=ann["event_id"] + f"-{m}") for m in MARKETS],
        ignore_index=True,
    )
    events = pd.concat([ev[ev["type"] != "announcement"], per_market], ignore_index=True)
    panel = build_signal_panel(events, stream.lookups)
    (det,) = detect_creator_led(events, panel)
    (ref,) = detect_creator_led(ev, build_signal_panel(ev, stream.lookups))
    assert (det.creator, det.sku) == ("ava", "SKU-B")
    assert det.stats["announcements"] == ref.stats["announcements"]
    assert det.stats["mean_lift"] == pytest.approx(ref.stats["mean_lift"])
    assert sorted(det.evidence[0].detail["markets"]) == sorted(MARKETS)


_SMALL = simulate_event_stream(key=21, hours=72)


@given(data=st.data())
@settings(max_examples=40, deadline=None)
def test_a_bad_quantity_anywhere_is_refused_naming_its_row(data):
    events = _SMALL.events
    rows = events.index[events["type"].isin(["sale", "return", "restock"])]
    row = data.draw(st.sampled_from(list(rows)))
    bad = data.draw(st.sampled_from([-1.0, -0.5, np.nan, np.inf]))
    broken = events.copy()
    broken.loc[row, "quantity"] = bad
    with pytest.raises(InputError, match=rf"quantity.*\b{row}\b"):
        build_signal_panel(broken)


@given(st.lists(st.floats(min_value=0, max_value=50, allow_nan=False), min_size=1, max_size=30))
@settings(max_examples=40, deadline=None)
def test_panel_units_are_the_sum_of_any_sales(quantities):
    ts = pd.Timestamp("2026-11-02T10:00Z") + pd.to_timedelta(
        np.arange(len(quantities)) * 17, unit="min"
    )
    events = pd.DataFrame(
        {
            "ts": ts,
            "type": "sale",
            "sku": "S",
            "market": "m",
            "quantity": quantities,
            "unit_price": 3.0,
        }
    )
    panel = build_signal_panel(events)
    assert panel.units.sum() == pytest.approx(sum(quantities))
    assert panel.revenue.sum() == pytest.approx(3.0 * sum(quantities))
    assert panel.units.shape == (1, len(panel.hours))


def test_hourly_price_is_the_lookup_weighted_mean_of_served_prices():
    hour = pd.Timestamp("2026-11-02T10:00Z")
    events = pd.DataFrame(
        {"ts": [hour], "type": ["sale"], "sku": ["S"], "market": ["m"], "quantity": [1.0],
         "unit_price": [50.0]}
    )  # fmt: skip
    lookups = pd.DataFrame(
        {"hour": [hour, hour, hour + pd.Timedelta(hours=1)], "sku": "S", "market": "m",
         "lookups": [3, 1, 2], "price": [10.0, 14.0, 12.0]}
    )  # fmt: skip
    panel = build_signal_panel(events, lookups)
    assert panel.price[0].tolist() == [pytest.approx(11.0), 12.0]
    assert panel.lookups[0].tolist() == [4.0, 2.0]


@pytest.mark.timeout(300)
def test_the_signals_notebook_runs():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    root = Path(__file__).resolve().parents[2]
    nb = nbformat.read(root / "notebooks" / "signals_and_experiments.ipynb", as_version=4)
    nbclient.NotebookClient(
        nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(root)}}
    ).execute()
    text = "".join(
        o.get("text", "") + o.get("data", {}).get("text/plain", "")
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
    )
    assert "regional_spike market=queens" in text
    assert "no detection on the control stream" in text
