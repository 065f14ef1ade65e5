"""The signal detectors on shop-like streams (tests/utils/shop_streams.py), drawn with
baskets, day-to-day over-dispersion, unequal markets, national lifts, irregular
creators, scheduled restocks, missing hours and local time across the November
daylight-saving switch; the generator shares none of the detectors' assumptions.

Measured over many more seeds in benchmarks/bench_signal_recall.py (figures in
benchmarks/RESULTS.md); the seeds here pin behaviour an analyst would notice.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pricing.exceptions import InputError
from pricing.signals import (
    ARCHETYPES,
    SignalParams,
    _scheduled_restocks,
    build_signal_panel,
    detect_signals,
    scan_signals,
)
from pricing.synthetic import CreatorLed, simulate_event_stream
from tests.utils.shop_streams import (
    MARKETS,
    Creator,
    Edge,
    Nuisances,
    Spike,
    draw_shop_stream,
    only,
    plant_of,
)


def _found(stream, archetype=None):
    found = detect_signals(stream.events, stream.lookups, timezones=stream.timezones)
    return [d for d in found if archetype is None or d.archetype == archetype]


@pytest.mark.parametrize("seed", [2, 3])
def test_a_spike_in_the_smallest_market_is_found_with_every_nuisance_on(seed):
    # Atlanta holds about 2 % of the orders; it sells 4x on weekend afternoons.
    stream = draw_shop_stream(seed=seed, plant=(Spike("atlanta", 4.0),))
    (spike,) = _found(stream, "regional_spike")
    assert spike.market == "atlanta"
    assert (spike.stats["pattern"], spike.stats["days"]) == ("weekend", "Sat-Sun")
    assert spike.stats["spike_days"] >= 3
    for e in spike.evidence:
        local = pd.Timestamp(e.detail["local_start"])
        assert local.day_of_week >= 5 and 11 <= local.hour <= 14


@pytest.mark.parametrize("seed", [1, 2])
def test_friday_evening_on_the_west_coast_is_a_friday_across_the_dst_switch(seed):
    stream = draw_shop_stream(seed=seed, plant=(Spike("la", 5.0, "friday", (18, 22)),))
    (spike,) = _found(stream, "regional_spike")
    assert (spike.market, spike.stats["days"], spike.stats["pattern"]) == ("la", "Fri", "weekday")
    assert spike.stats["timezone"] == "America/Los_Angeles"
    local = [pd.Timestamp(e.detail["local_start"]) for e in spike.evidence]
    assert {t.day_of_week for t in local} == {4} and len({t.hour for t in local}) == 1
    # In UTC those evenings are Saturdays, and the block moves an hour when Los Angeles
    # leaves daylight saving on 1 November: the detector followed the local clock.
    utc = [e.start for e in spike.evidence]
    assert {t.day_of_week for t in utc} == {5}
    before = [t.hour for t in utc if t < pd.Timestamp("2026-11-01T09:00Z")]
    after = [t.hour for t in utc if t > pd.Timestamp("2026-11-01T09:00Z")]
    assert before and after and {h + 1 for h in before} == set(after)
    # Taken in UTC (no time zones given), the same spike reads as a Saturday one.
    (in_utc,) = [
        d for d in detect_signals(stream.events, stream.lookups) if d.archetype == "regional_spike"
    ]
    assert in_utc.stats["pattern"] == "weekend"


@pytest.mark.parametrize("seed", [1, 2])
def test_a_lift_in_every_market_at_once_is_not_regional(seed):
    # Every market sells 4x on the same weekend afternoons, at the same instant (UTC
    # markets), on top of holidays, TV spots and claims bursts.
    plant = tuple(Spike(m, 4.0) for m in MARKETS)
    stream = draw_shop_stream(seed=seed, nuisances=Nuisances(local_time=False), plant=plant)
    assert _found(stream, "regional_spike") == []


@pytest.mark.parametrize(
    ("nuisances", "seed"),
    [(Nuisances(), 100), (Nuisances(), 101), (Nuisances(), 102)]
    + [(only("baskets"), 200 + i) for i in range(2)]
    + [(only("overdispersion"), 300 + i) for i in range(2)],
)
def test_a_quiet_stream_with_baskets_and_overdispersion_gives_no_detection(nuisances, seed):
    stream = draw_shop_stream(seed=seed, nuisances=nuisances)
    assert _found(stream) == []


def test_too_few_weeks_is_said_not_silent():
    stream = draw_shop_stream(seed=4, weeks=1, plant=(Spike("chicago", 5.0),))
    report = scan_signals(stream.events, stream.lookups, timezones=stream.timezones)
    assert [d for d in report.detections if d.archetype == "regional_spike"] == []
    (note,) = [n for n in report.not_judged if n.archetype == "regional_spike"]
    assert note.needs == "2 weeks of data"
    assert "days of data" in note.reason


def test_two_lifting_posts_are_said_to_be_too_few():
    stream = draw_shop_stream(seed=2, plant=(Creator("mika", "hoodie", 5.0, flop=0.0),))
    ev = stream.events
    posts = ev.index[(ev["type"] == "announcement") & (ev["creator"] == "mika")]
    report = scan_signals(ev.drop(posts[2:]), stream.lookups, timezones=stream.timezones)
    assert [d for d in report.detections if d.creator == "mika"] == []
    (note,) = [n for n in report.not_judged if n.creator == "mika"]
    assert (note.sku, note.archetype) == ("hoodie", "creator_led")
    assert note.needs.startswith("3 posts")


def test_one_flop_does_not_erase_a_creator():
    stream = simulate_event_stream(key=2, plant=(CreatorLed("ava", "SKU-B"),))
    flop = pd.DataFrame(
        {"event_id": ["ava-flop"], "ts": pd.to_datetime(["2026-11-19T20:00Z"]),
         "type": "announcement", "sku": "SKU-B", "market": None, "reach": 5e4, "creator": "ava"}
    )  # fmt: skip
    events = pd.concat([stream.events, flop], ignore_index=True)
    (ava,) = [d for d in detect_signals(events, stream.lookups) if d.archetype == "creator_led"]
    assert ava.creator == "ava" and ava.stats["announcements"] == 6
    flopped = [e for e in ava.evidence if e.detail["event_id"] == "ava-flop"]
    assert len(flopped) == 1 and not flopped[0].detail["lifted"]
    # Seen at the end of the last post that lifted, not at the end of the flop.
    assert ava.detected_at == max(e.end for e in ava.evidence if e.detail["lifted"])


@pytest.mark.parametrize("seed", [1, 2])
def test_conversion_must_clear_the_effect_size_floor(seed):
    # Both react within hours of every shock; only the clearly better converter is an
    # edge market, however many look-ups make a 10 % gap "significant".
    small = _found(draw_shop_stream(seed=seed, plant=(Edge("chicago", 1.1),)), "edge_acceleration")
    assert small == []
    (edge,) = _found(
        draw_shop_stream(seed=seed, plant=(Edge("chicago", 1.7),)), "edge_acceleration"
    )
    assert edge.market == "chicago"
    assert edge.stats["conversion_ratio"] >= SignalParams().edge_min_conversion_ratio
    assert edge.stats["median_reaction_hours"] <= 3


def test_scheduled_and_wave_restocks_are_not_reactions():
    days = pd.date_range("2026-10-26T06:10", periods=10, freq="D", tz="America/Chicago")
    sales = pd.DataFrame(
        {"ts": days + pd.Timedelta(hours=3), "type": "sale", "sku": "S", "market": "chi",
         "quantity": 1.0, "unit_price": 10.0}
    )  # fmt: skip
    restocks = pd.DataFrame(
        {
            "event_id": [f"r{i}" for i in range(10)] + ["wave-d-chi-1", "off-schedule"],
            "ts": [*days, pd.Timestamp("2026-10-28T13:40", tz="America/Chicago"),
                   pd.Timestamp("2026-10-29T22:15", tz="America/Chicago")],
            "type": "restock", "sku": "S", "market": "chi", "quantity": 20.0,
        }
    )  # fmt: skip
    events = pd.concat([sales, restocks], ignore_index=True)
    panel = build_signal_panel(events, timezones={"chi": "America/Chicago"})
    scheduled = _scheduled_restocks(panel, SignalParams())
    at = {
        pd.Timestamp(t).tz_convert("UTC").floor("h"): bool(s)
        for t, s in zip(panel.hours, scheduled[0], strict=True)
    }
    # 06:10 Chicago every day, across the daylight-saving switch (11:00 then 12:00 UTC).
    for d in days:
        assert at[d.tz_convert("UTC").floor("h")]
    assert at[pd.Timestamp("2026-10-28T18:00Z")]  # the wave release
    assert not at[pd.Timestamp("2026-10-30T03:00Z")]  # the off-schedule restock
    assert int(np.sum(scheduled)) == 11


def test_an_unknown_time_zone_is_refused_naming_the_market():
    stream = draw_shop_stream(seed=0, weeks=1)
    with pytest.raises(InputError, match="timezones\\['nyc'\\]"):
        build_signal_panel(stream.events, timezones={"nyc": "Eastern"})


@pytest.mark.parametrize("archetype", ["regional_spike", "creator_led", "edge_acceleration"])
def test_recall_on_a_small_draw_of_the_benchmark(archetype):
    # The benchmark's first three moderate and three strong plants of each archetype
    # (its seeds), every nuisance on: at least 5 of 6 found (issue 20 asks 80 %).
    # The full draw is in benchmarks/RESULTS.md.
    found = 0
    for strength in ("moderate", "strong"):
        for i in range(3):
            seed = (
                10_000 + 100 * ARCHETYPES.index(archetype) + i + (50 if strength == "strong" else 0)
            )
            plant = plant_of(archetype, strength, seed=i)
            stream = draw_shop_stream(seed=seed, plant=(plant,))
            subject = (plant.creator, plant.sku) if isinstance(plant, Creator) else plant.market
            found += any(
                (d.creator, d.sku) == subject if isinstance(plant, Creator) else d.market == subject
                for d in _found(stream, archetype)
            )
    assert found >= 5
