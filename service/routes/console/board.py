"""``GET /v1/console/board``: the drops and one row per SKU-market, sorted, filtered, paged."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from pricing.fields import IDENTIFIER_PATTERN
from pricing.guardrails import bound_by
from service.auth import Caller
from service.deps import OperatorCaller, RuntimeDep
from service.exceptions import StoreUnavailable
from service.runtime import ServiceRuntime

__all__ = ["router"]

router = APIRouter(tags=["console"])


_SORTS = (
    "sku",
    "drop",
    "market",
    "price",
    "units_left",
    "sell_through",
    "bound_by",
    "elasticity",
    "intensity",
)
_INTENSITY_PER_BOARD = 4
"""Stale intensity indices recomputed per board read (the rest show their last value)."""


# -- board -----------------------------------------------------------------------------------


class WindowOut(BaseModel):
    state: Literal["open", "next", "closed"]
    start: datetime | None
    end: datetime | None
    seconds_left: float | None = Field(
        description="Open: until it closes; next: until it opens; closed: null."
    )


class DropOut(BaseModel):
    id: str
    name: str
    markets: list[str]
    skus: int
    window: WindowOut


class BoardRowOut(BaseModel):
    sku: str
    name: str
    drop: str
    market: str
    price: float
    currency: str
    source: str = Field(description="surface, base (list price, no re-fit yet) or stale.")
    version: str | None
    units_left: int | None
    start_stock: int | None
    sell_through: float | None = Field(description="(start - left) / start.")
    bound_by: str | None = Field(description="The guardrail that bound the cell served now.")
    elasticity: float | None
    interval95: list[float] | None
    intensity: float | None
    intensity_source: str | None = Field(
        description="'events' (the analysts' index, GET /v1/skus/{sku}/intensity) or "
        "'at_publish' (the value the surface was solved at)."
    )


class BoardOut(BaseModel):
    generated_at: datetime
    live_version: str | None
    stale: bool
    drops: list[DropOut]
    rows: list[BoardRowOut]
    total: int = Field(description="Rows matching the filter, before paging.")
    offset: int
    limit: int


def _window(drop: Any, now: datetime) -> WindowOut:
    open_ = drop.window_at(now)
    if open_ is not None:
        return WindowOut(
            state="open",
            start=open_.start,
            end=open_.end,
            seconds_left=(open_.end - now).total_seconds(),
        )
    nxt = drop.next_window(now)
    if nxt is not None:
        return WindowOut(
            state="next",
            start=nxt.start,
            end=nxt.end,
            seconds_left=(nxt.start - now).total_seconds(),
        )
    last = drop.windows[-1]
    return WindowOut(state="closed", start=last.start, end=last.end, seconds_left=None)


def _intensity(
    runtime: ServiceRuntime, caller: Caller, sku: str, market: str, budget: list[int]
) -> float | None:
    """The analysts' index now, from the route's cache (recomputed within ``budget``)."""
    cached = runtime.intensity_cache.get((sku, market))
    fresh = cached is not None and time.monotonic() - cached[0] < runtime.settings.intensity_cache_s
    if not fresh and budget[0] > 0:
        budget[0] -= 1
        from service.routes.intensity import get_intensity

        try:
            return float(get_intensity(sku, caller, runtime, market).current)
        except (HTTPException, StoreUnavailable):
            pass
    return float(cached[1].current) if cached is not None else None


def _row(runtime: ServiceRuntime, sku: str, market: str, now: datetime) -> BoardRowOut:
    book = runtime.book
    entry = book.catalog[sku]
    found = runtime.config.find_sku(sku)
    name, start = "", None
    if found is not None:
        name = found[1].name
        start = found[1].inventory.get(market)
    units = book.units(sku, market)
    live = None if market in entry.fixed_markets else book.surface(sku, market)
    bound = beta = interval = intensity = None
    intensity_source = None
    if live is not None:
        version, rec = live
        rows, cols = rec.price.shape
        n = min(max(units or 0, 0), rows - 1)
        t = int((now - rec.period_start).total_seconds() // rec.period_seconds)
        t = min(max(t, 0), cols - 1)
        price = rec.price_at(units or 0, now)
        if rec.guardrail_codes is not None:
            bound = bound_by(int(rec.guardrail_codes[n, t]))
        el = dict(rec.elasticity or {})
        beta, se = el.get("beta"), el.get("beta_se")
        if beta is not None and se is not None:
            interval = [beta - 1.96 * se, beta + 1.96 * se]
        at_publish = (rec.explain or {}).get("intensity_now")
        if at_publish is not None:
            intensity, intensity_source = float(at_publish), "at_publish"
        currency = rec.currency
        source = "stale" if book.stale else "surface"
    else:
        version, price, currency = None, entry.base_price, entry.currency
        source = "stale" if book.stale else "base"
    sell = None
    if start and units is not None:
        sell = max(0.0, (start - units) / start)
    return BoardRowOut(
        sku=sku,
        name=name,
        drop=entry.drop_id,
        market=market,
        price=price,
        currency=currency,
        source=source,
        version=version,
        units_left=units,
        start_stock=start,
        sell_through=sell,
        bound_by=bound,
        elasticity=beta,
        interval95=interval,
        intensity=intensity,
        intensity_source=intensity_source,
    )


def _sort_key(field: str) -> Any:
    def key(row: BoardRowOut) -> tuple[int, Any]:
        value = getattr(row, field)
        return (1, "") if value is None else (0, value)

    return key


@router.get("/v1/console/board", response_model=BoardOut, summary="The drop board")
def get_board(
    caller: OperatorCaller,
    runtime: RuntimeDep,
    q: Annotated[
        str | None, Query(max_length=100, description="Substring of SKU, name, drop or market.")
    ] = None,
    drop: Annotated[str | None, Query(max_length=64, pattern=IDENTIFIER_PATTERN)] = None,
    sort: Annotated[str, Query(pattern="^(" + "|".join(_SORTS) + ")$")] = "sku",
    desc: bool = False,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> BoardOut:
    """Every SKU-market of the live config, from the process's own price book."""
    now = datetime.now(UTC)
    bundle = runtime.config
    rows = [_row(runtime, sku, market, now) for sku, market in runtime.book.pairs()]
    if drop:
        rows = [r for r in rows if r.drop == drop]
    if q:
        needle = q.lower()
        rows = [
            r
            for r in rows
            if needle in r.sku.lower()
            or needle in r.name.lower()
            or needle in r.drop.lower()
            or needle in r.market.lower()
        ]
    key = _sort_key(sort)
    present = sorted((r for r in rows if getattr(r, sort) is not None), key=key, reverse=desc)
    page_rows = (present + [r for r in rows if getattr(r, sort) is None])[offset : offset + limit]
    budget = [_INTENSITY_PER_BOARD]
    for r in page_rows:
        observed = _intensity(runtime, caller, r.sku, r.market, budget)
        if observed is not None:
            r.intensity, r.intensity_source = observed, "events"
    drops = [
        DropOut(
            id=d.id,
            name=d.name,
            markets=list(d.markets),
            skus=len(d.skus),
            window=_window(d, now),
        )
        for d in bundle.drops
    ]
    try:
        live_version = runtime.store.live_version()
    except StoreUnavailable:
        live_version = None
    return BoardOut(
        generated_at=now,
        live_version=live_version,
        stale=runtime.book.stale,
        drops=drops,
        rows=page_rows,
        total=len(rows),
        offset=offset,
        limit=limit,
    )
