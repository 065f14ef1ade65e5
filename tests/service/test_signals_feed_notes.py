"""The signals feed says what could not be judged and takes days in local time."""

from __future__ import annotations

import pandas as pd

from service.routes.signals import SignalsOut, build_feed
from tests.utils.shop_streams import Spike, draw_shop_stream


def test_the_feed_carries_notes_and_local_days():
    stream = draw_shop_stream(seed=1, plant=(Spike("la", 5.0, "friday", (18, 22)),))
    until = stream.events["ts"].max()
    since = until - pd.Timedelta(hours=21 * 24 - 1)
    feed = build_feed(
        stream.events, since=since, until=until, history_hours=21 * 24,
        timezones=stream.timezones,
    )  # fmt: skip
    # No look-ups given: edge acceleration is said to be unjudged, not silently absent.
    (note,) = [n for n in feed["not_judged"] if n["archetype"] == "edge_acceleration"]
    assert "look-ups" in note["reason"]
    (spike,) = [d for d in feed["detections"] if d["archetype"] == "regional_spike"]
    assert (spike["market"], spike["stats"]["days"]) == ("la", "Fri")
    # The response model accepts the new field next to the old ones.
    out = SignalsOut(
        since="s", until="u", market=None, window_hours=72, history_hours=504,
        events_used=feed["events_used"], index=[], markets=[], detections=feed["detections"],
        not_judged=feed["not_judged"], computed_at="c",
    )  # fmt: skip
    assert out.not_judged[0].needs
