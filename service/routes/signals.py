"""``GET /v1/signals``: the analysts' feed of micro-event signals.

One answer carries, for the hours ``[since, until]``:

- ``index``: the hourly micro-event index per SKU-market
  (:func:`pricing.intensity.build_intensity_index` over the recorded events, with one
  window of lead-in so the first hours are complete);
- ``markets``: its per-market roll-up (:func:`pricing.intensity.market_rollup`);
- ``detections``: the archetypes :func:`pricing.signals.detect_signals` finds in the
  last ``history_hours`` of events (the baselines need weeks) and of the served-price
  look-ups (:mod:`service.served`, for conversion), keeping those that became visible
  at or after ``since``.
- ``not_judged``: what the detectors could not judge and what they would need (no
  look-ups, too few weeks of history, too few posts by a creator).

Days and hours are taken in each market's time zone from the live config
(``markets.*.timezone``).

``market`` narrows all three to one market. The same feed is what
``dropprice signals`` prints and exports (:func:`build_feed`, :func:`load_events`).
It answers to any key (``pos`` and up), like the intensity endpoint, and reuses an
answer for the same hours, market and history for ``DROPPRICE_INTENSITY_CACHE_S``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, HTTPException, Query
from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from pricing.intensity import EVENT_TYPES as INDEX_TYPES
from pricing.intensity import build_intensity_index, market_rollup
from pricing.signals import scan_signals
from service.codec import readable_events
from service.deps import PosCaller, RuntimeDep
from service.panel import dedupe_events
from service.schemas import ErrorBody
from service.store import PriceStore, StreamEvent

__all__ = [
    "DEFAULT_HISTORY_HOURS",
    "MAX_SPAN_HOURS",
    "SignalsOut",
    "build_feed",
    "events_from_entries",
    "load_events",
    "load_store_lookups",
    "router",
]

router = APIRouter(tags=["signals"])

MAX_SPAN_HOURS = 7 * 24
"""Longest ``[since, until]`` span one answer covers (the index is hourly per SKU-market)."""
DEFAULT_HISTORY_HOURS = 21 * 24
"""Hours of events the detectors read by default (three weeks of baselines)."""
_IDENT = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"
_CACHE: dict[tuple[Any, ...], tuple[float, SignalsOut]] = {}
"""Answers reused for ``DROPPRICE_INTENSITY_CACHE_S`` (same hours, market, history)."""
_CACHE_SIZE = 64


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IndexRow(_Out):
    """The index of one SKU-market in one hour."""

    sku: str
    market: str
    hour: str = Field(description="Start of the hour, UTC, ISO 8601.")
    intensity: float
    components: dict[str, float] = Field(description="Weighted contribution of each event type.")


class MarketRow(_Out):
    """The per-market roll-up of one hour."""

    market: str
    hour: str
    intensity: float = Field(description="Sum over the market's SKUs.")
    intensity_mean: float
    intensity_max: float
    n_skus: int


class EvidenceOut(_Out):
    kind: str
    start: str
    end: str
    value: float | None
    detail: dict[str, Any]


class DetectionOut(_Out):
    """One archetype detection (see :mod:`pricing.signals` for each score)."""

    archetype: str
    score: float | None
    detected_at: str
    market: str | None
    sku: str | None
    creator: str | None
    stats: dict[str, Any]
    evidence: list[EvidenceOut]


class NotJudgedOut(_Out):
    """Something a detector could not judge (no look-ups, too few weeks or posts)."""

    archetype: str
    reason: str
    needs: str
    market: str | None
    sku: str | None
    creator: str | None


class SignalsOut(_Out):
    since: str
    until: str
    market: str | None
    window_hours: int
    history_hours: int
    events_used: int
    index: list[IndexRow]
    markets: list[MarketRow]
    detections: list[DetectionOut]
    not_judged: list[NotJudgedOut] = Field(
        default_factory=list,
        description="What the detectors could not judge and what they would need.",
    )
    computed_at: str


def _iso(ts: pd.Timestamp | datetime) -> str:
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
    return load_lookups(store.client, pairs)


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
                    "hour": _iso(r.hour),
                    "intensity": float(r.intensity),
                    "components": {c: float(getattr(r, c)) for c in comps},
                }
            )
        for r in market_rollup(index).itertuples(index=False):
            market_rows.append(
                {
                    "market": str(r.market),
                    "hour": _iso(r.hour),
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


_EARLIEST = datetime(1970, 1, 2, tzinfo=UTC)
_LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _iso_timestamp(value: Any) -> Any:
    """Refuse bare numbers (pydantic would read them as Unix times): ISO 8601 only."""
    if isinstance(value, str) and value.strip().lstrip("+-").replace(".", "", 1).isdigit():
        raise ValueError(f"must be an ISO 8601 timestamp with a zone, got the number {value!r}")
    return value


def _in_stream_range(value: datetime | None) -> datetime | None:
    """Event streams and hourly indexes span 1970-2200; outside is a client error."""
    if value is not None and not _EARLIEST <= value < _LATEST:
        raise ValueError(
            f"must be between {_EARLIEST.date()} and {_LATEST.date()}, got {value.isoformat()}"
        )
    return value


@router.get(
    "/v1/signals",
    response_model=SignalsOut,
    responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    summary="Micro-event index per SKU-market and market, and archetype detections",
)
def get_signals(
    caller: PosCaller,
    runtime: RuntimeDep,
    since: Annotated[
        AwareDatetime | None,
        BeforeValidator(_iso_timestamp),
        AfterValidator(_in_stream_range),
        Query(description="First hour shown (zoned); default 24 hours before `until`."),
    ] = None,
    until: Annotated[
        AwareDatetime | None,
        BeforeValidator(_iso_timestamp),
        AfterValidator(_in_stream_range),
        Query(description="Last hour shown (zoned); default now."),
    ] = None,
    market: Annotated[str | None, Query(min_length=1, max_length=64, pattern=_IDENT)] = None,
    history_hours: Annotated[
        int, Query(ge=24, le=90 * 24, description="Hours of events the detectors read.")
    ] = DEFAULT_HISTORY_HOURS,
) -> SignalsOut:
    """The hourly index per SKU-market and per market for ``[since, until]``, and the
    regional-spike, creator-led and edge-acceleration detections visible since
    ``since`` (each with its score, evidence windows and time)."""
    now = datetime.now(UTC)
    until_ts = until or now
    since_ts = since or until_ts - timedelta(hours=24)
    span = (until_ts - since_ts).total_seconds() / 3600
    if span < 0 or span > MAX_SPAN_HOURS:
        raise HTTPException(
            422,
            detail={
                "error": "invalid_request",
                "detail": f"since must be before until and at most {MAX_SPAN_HOURS} hours "
                f"earlier, got since={since_ts.isoformat()} until={until_ts.isoformat()}",
            },
        )
    window = runtime.intensity_window_hours
    key = (
        id(runtime),
        pd.Timestamp(since_ts).floor("h"),
        pd.Timestamp(until_ts).floor("h"),
        market,
        history_hours,
        window,
    )
    cached = _CACHE.get(key)
    if cached is not None and time.monotonic() - cached[0] < runtime.settings.intensity_cache_s:
        return cached[1]
    lead = max(history_hours, span + window)
    events = load_events(runtime.store, since=until_ts - timedelta(hours=lead))
    if events.attrs.get("poisoned"):
        runtime.metrics.poisoned_skipped.labels("/v1/signals").inc(events.attrs["poisoned"])
    feed = build_feed(
        events,
        since=since_ts,
        until=until_ts,
        market=market,
        window_hours=window,
        history_hours=history_hours,
        lookups=load_store_lookups(runtime.store),
        timezones={m: c.timezone for m, c in runtime.config.defaults.markets.items() if c.timezone},
    )
    out = SignalsOut(
        since=_iso(pd.Timestamp(since_ts).floor("h")),
        until=_iso(pd.Timestamp(until_ts).floor("h")),
        market=market,
        window_hours=window,
        history_hours=history_hours,
        events_used=feed["events_used"],
        index=[IndexRow(**r) for r in feed["index"]],
        markets=[MarketRow(**r) for r in feed["markets"]],
        detections=[DetectionOut(**d) for d in feed["detections"]],
        not_judged=[NotJudgedOut(**n) for n in feed["not_judged"]],
        computed_at=_iso(now),
    )
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = (time.monotonic(), out)
    return out
