"""``GET /v1/skus/{sku}/intensity``: the SKU's micro-event index, now and hourly.

The index is :func:`pricing.intensity.build_intensity_index` over the SKU's own
event stream (sales, announcements, claims, listing changes recorded by
``POST /v1/events``) for the last 72 hours plus one window of lead-in, in the
market asked for. Results are reused for ``DROPPRICE_INTENSITY_CACHE_S``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pandas as pd
from fastapi import APIRouter, HTTPException

from pricing.intensity import EVENT_TYPES, build_intensity_index
from service.codec import readable_events
from service.deps import PosCaller, RuntimeDep
from service.exceptions import UnknownMarket, UnknownSku
from service.routes.params import MarketQuery, SkuPath
from service.schemas import ErrorBody, IntensityOut, IntensityPoint
from service.store import StreamEvent

__all__ = ["HOURS_SHOWN", "market_events", "router"]

router = APIRouter(tags=["intensity"])

HOURS_SHOWN = 72


def market_events(entries: list[StreamEvent], market: str) -> pd.DataFrame:
    """The indexed events of one market, decoded by the one stream decoder
    (:func:`service.codec.readable_events`: entries that cannot be decoded are left
    out, and the frame's ``attrs["poisoned"]`` says how many)."""
    frame = readable_events(entries)
    kept = frame[frame["type"].isin(EVENT_TYPES) & (frame["market"] == market)]
    kept = kept.reset_index(drop=True)
    kept.attrs["poisoned"] = frame.attrs["poisoned"]
    return kept


@router.get(
    "/v1/skus/{sku}/intensity",
    response_model=IntensityOut,
    responses={404: {"model": ErrorBody}, 503: {"model": ErrorBody}},
    summary="Micro-event intensity index of a SKU (current and last 72 hours)",
)
def get_intensity(
    sku: SkuPath,
    caller: PosCaller,
    runtime: RuntimeDep,
    market: MarketQuery = None,
) -> IntensityOut:
    """The index of the current hour and the 72 hourly values up to it (oldest
    first), with each event type's weighted component."""
    try:
        _, market = runtime.book.resolve_market(sku, market)
    except UnknownSku as exc:
        raise HTTPException(404, detail={"error": "unknown_sku", "detail": str(exc)}) from exc
    except UnknownMarket as exc:
        raise HTTPException(404, detail={"error": "unknown_market", "detail": str(exc)}) from exc
    cached = runtime.intensity_cache.get((sku, market))
    if cached is not None and time.monotonic() - cached[0] < runtime.settings.intensity_cache_s:
        result: IntensityOut = cached[1]
        return result
    window = runtime.intensity_window_hours
    now = datetime.now(UTC)
    end = pd.Timestamp(now).floor("h")
    start = end - pd.Timedelta(hours=HOURS_SHOWN - 1)
    entries = runtime.store.recent_events(
        sku, since=start.to_pydatetime() - timedelta(hours=window)
    )
    frame = market_events(entries, market)
    if frame.attrs.get("poisoned"):
        runtime.metrics.poisoned_skipped.labels("/v1/skus/{sku}/intensity").inc(
            frame.attrs["poisoned"]
        )
    hours = pd.date_range(start, end, freq="h")
    components = [*EVENT_TYPES, "spike"]
    series = pd.DataFrame(0.0, index=hours, columns=["intensity", *components])
    if len(frame):
        index = build_intensity_index(frame, window_hours=window, start=start, end=end)
        mine = index[(index["sku"] == sku) & (index["market"] == market)]
        if len(mine):
            series = mine.set_index("hour")[["intensity", *components]].reindex(
                hours, fill_value=0.0
            )
    points = [
        IntensityPoint(
            hour=hour.isoformat().replace("+00:00", "Z"),
            intensity=float(row["intensity"]),
            components={c: float(row[c]) for c in components},
        )
        for hour, row in series.iterrows()
    ]
    result = IntensityOut(
        sku=sku,
        market=market,
        current=points[-1].intensity,
        window_hours=window,
        hours=points,
        events_used=len(frame),
        computed_at=now.isoformat(timespec="seconds").replace("+00:00", "Z"),
    )
    runtime.intensity_cache[(sku, market)] = (time.monotonic(), result)
    return result
