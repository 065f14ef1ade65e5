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
``dropprice signals`` prints and exports (:mod:`service.signal_feed`).
It answers to any key (``pos`` and up), like the intensity endpoint, and reuses an
answer for the same hours, market and history for ``DROPPRICE_INTENSITY_CACHE_S``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, HTTPException, Query
from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from pricing.fields import ZONED_TIME_PATTERN, zoned_time
from service.deps import PosCaller, RuntimeDep
from service.routes.params import MarketQuery
from service.schemas import ErrorBody
from service.signal_feed import (
    DEFAULT_HISTORY_HOURS,
    MAX_SPAN_HOURS,
    build_feed,
    events_from_entries,
    iso_hour,
    load_events,
    load_store_lookups,
)

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
        BeforeValidator(zoned_time),
        AfterValidator(_in_stream_range),
        Query(
            description="First hour shown (zoned); default 24 hours before `until`. At most "
            f"{MAX_SPAN_HOURS} hours before `until` and not after it (else 422 naming since).",
            json_schema_extra={"pattern": ZONED_TIME_PATTERN},
        ),
    ] = None,
    until: Annotated[
        AwareDatetime | None,
        BeforeValidator(_iso_timestamp),
        BeforeValidator(zoned_time),
        AfterValidator(_in_stream_range),
        Query(
            description="Last hour shown (zoned); default now.",
            json_schema_extra={"pattern": ZONED_TIME_PATTERN},
        ),
    ] = None,
    market: MarketQuery = None,
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
                "detail": [
                    {
                        "field": "since",
                        "message": f"since must be before until and at most {MAX_SPAN_HOURS} "
                        f"hours earlier, got since={since_ts.isoformat()} "
                        f"until={until_ts.isoformat()}",
                        "got": since_ts.isoformat(),
                    }
                ],
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
        since=iso_hour(pd.Timestamp(since_ts).floor("h")),
        until=iso_hour(pd.Timestamp(until_ts).floor("h")),
        market=market,
        window_hours=window,
        history_hours=history_hours,
        events_used=feed["events_used"],
        index=[IndexRow(**r) for r in feed["index"]],
        markets=[MarketRow(**r) for r in feed["markets"]],
        detections=[DetectionOut(**d) for d in feed["detections"]],
        not_judged=[NotJudgedOut(**n) for n in feed["not_judged"]],
        computed_at=iso_hour(now),
    )
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = (time.monotonic(), out)
    return out
