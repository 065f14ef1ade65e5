"""The analysts' feed of micro-event signals, shared by ``GET /v1/signals`` and
``dropprice signals``.

For the hours ``[since, until]`` the feed carries the hourly micro-event index per
SKU-market (:func:`pricing.intensity.build_intensity_index`, with one window of lead-in so
the first hours are complete), its per-market roll-up
(:func:`pricing.intensity.market_rollup`), the archetypes :func:`pricing.signals.scan_signals`
finds in the last ``history_hours`` of events and served-price look-ups
(:mod:`service.served`), and what the detectors could not judge.

:func:`load_events` and :func:`load_store_lookups` read the store; :func:`build_feed` turns
what they read into plain records. The route and the command both call these, so the
command never goes through the HTTP layer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import pandas as pd

from pricing.intensity import EVENT_TYPES as INDEX_TYPES
from pricing.intensity import build_intensity_index, market_rollup
from pricing.signals import scan_signals
from service.codec import readable_events
from service.panel import dedupe_events
from service.store import PriceStore, StreamEvent

__all__ = [
    "DEFAULT_HISTORY_HOURS",
    "MAX_SPAN_HOURS",
    "build_feed",
    "events_from_entries",
    "iso_hour",
    "load_events",
    "load_store_lookups",
]

MAX_SPAN_HOURS = 7 * 24
"""Longest ``[since, until]`` span one answer covers (the index is hourly per SKU-market)."""
DEFAULT_HISTORY_HOURS = 21 * 24
"""Hours of events the detectors read by default (three weeks of baselines)."""


def iso_hour(ts: pd.Timestamp | datetime) -> str:
    """A timestamp in UTC, ISO 8601 with a ``Z``."""
    text: str = pd.Timestamp(ts).tz_convert("UTC").isoformat()
    return text.replace("+00:00", "Z")


def events_from_entries(entries: Iterable[StreamEvent]) -> pd.DataFrame:
    """Stream entries as the events table of :mod:`pricing.signals`, by the one stream
    decoder (:func:`service.codec.readable_events`), first of each ``(event_id, sku)``
    kept, oldest first. Entries that cannot be decoded are left out; the frame's
    ``attrs["poisoned"]`` says how many.
    """
    frame = readable_events(list(entries))
    poisoned = frame.attrs["poisoned"]
    frame = dedupe_events(frame).sort_values("ts", kind="stable").reset_index(drop=True)
    frame.attrs["poisoned"] = poisoned
    return frame


def load_events(
    store: PriceStore, *, since: datetime | None, skus: Iterable[str] | None = None
) -> pd.DataFrame:
    """Every SKU's events recorded at or after ``since`` (all kept ones when ``None``),
    one stream read per SKU."""
    names = list(skus) if skus is not None else store.skus()
    entries: list[StreamEvent] = []
    for sku in names:
        entries.extend(store.recent_events(sku, since=since))
    return events_from_entries(entries)


def load_store_lookups(store: PriceStore) -> pd.DataFrame:
    """The served-price look-ups of every catalogued SKU-market (:mod:`service.served`)."""
    from service.served import load_lookups

    pairs = [(sku, m) for sku, meta in store.catalog().items() for m in meta.markets]
    return load_lookups(store, pairs)


def build_feed(
    events: pd.DataFrame,
    *,
    since: datetime,
    until: datetime,
    market: str | None = None,
    window_hours: int = 72,
    history_hours: int = DEFAULT_HISTORY_HOURS,
    lookups: pd.DataFrame | None = None,
    timezones: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The feed as plain data: ``index``, ``markets``, ``detections`` and
    ``not_judged`` records.

    Args:
        events: events from at least ``since − history_hours`` (see :func:`load_events`).
        since, until: the hours shown (zoned; floored to the hour, both included).
        market: keep only this market.
        window_hours: the index's rolling window (24–72).
        history_hours: hours of events before ``until`` the detectors read.
        lookups: optional price look-ups (``hour, sku, market, lookups, price``).
        timezones: market -> IANA zone (the configs' ``markets.*.timezone``): the
            detectors take days and hours there.

    Returns:
        ``{"index": [...], "markets": [...], "detections": [...], "not_judged": [...],
        "events_used": n}``.
    """
    start = pd.Timestamp(since).tz_convert("UTC").floor("h")
    end = pd.Timestamp(until).tz_convert("UTC").floor("h")
    index_rows: list[dict[str, Any]] = []
    market_rows: list[dict[str, Any]] = []
    usable = events[events["type"].isin(INDEX_TYPES) & events["market"].notna()]
    usable = usable[usable["ts"] >= start - pd.Timedelta(hours=window_hours)]
    if market is not None:
        usable = usable[usable["market"] == market]
    components = [*INDEX_TYPES, "spike"]
    if len(usable):
        index = build_intensity_index(usable, window_hours=window_hours, start=start, end=end)
        index = index[(index["hour"] >= start) & (index["hour"] <= end)]
        comps = [c for c in components if c in index.columns]
        for r in index.itertuples(index=False):
            index_rows.append(
                {
                    "sku": str(r.sku),
                    "market": str(r.market),
                    "hour": iso_hour(r.hour),
                    "intensity": float(r.intensity),
                    "components": {c: float(getattr(r, c)) for c in comps},
                }
            )
        for r in market_rollup(index).itertuples(index=False):
            market_rows.append(
                {
                    "market": str(r.market),
                    "hour": iso_hour(r.hour),
                    "intensity": float(r.intensity),
                    "intensity_mean": float(r.intensity_mean),
                    "intensity_max": float(r.intensity_max),
                    "n_skus": int(r.n_skus),
                }
            )
    history = events[events["ts"] >= end - pd.Timedelta(hours=history_hours)]
    history = history[history["ts"] < end + pd.Timedelta(hours=1)]
    detections: list[dict[str, Any]] = []
    not_judged: list[dict[str, Any]] = []
    if lookups is not None and len(lookups):
        hours = pd.to_datetime(lookups["hour"], utc=True)
        lookups = lookups[(hours >= end - pd.Timedelta(hours=history_hours)) & (hours <= end)]
        lookups = lookups if len(lookups) else None
    if len(history):
        report = scan_signals(history, lookups, since=start, market=market, timezones=timezones)
        detections = [d.to_dict() for d in report.detections]
        not_judged = [n.to_dict() for n in report.not_judged]
    return {
        "index": index_rows,
        "markets": market_rows,
        "detections": detections,
        "not_judged": not_judged,
        "events_used": int(len(history)),
    }
