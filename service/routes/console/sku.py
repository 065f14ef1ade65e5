"""``GET /v1/console/skus/{sku}``: the live surface with the cell served now, and the SKU's timeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from pricing.events import EVENT_KINDS, STOCK_KINDS
from pricing.guardrails import GUARDRAIL_FIELDS
from service.deps import OperatorCaller, RuntimeDep
from service.exceptions import StoreUnavailable, UnknownMarket, UnknownSku
from service.routes.console.board import WindowOut, _window
from service.routes.params import MarketQuery, SkuPath
from service.schemas import ErrorBody

__all__ = ["router"]

router = APIRouter(tags=["console"])


# -- SKU page --------------------------------------------------------------------------------


class SurfaceOut(BaseModel):
    version: str
    period_start: datetime
    period_seconds: int
    price: list[list[float]] = Field(description="Prices [units left][period].")
    guardrail_codes: list[list[int]] | None
    guardrail_names: dict[int, str | None]
    cell: dict[str, int] = Field(description="{units_left, period}: the cell served now.")


class SaleOut(BaseModel):
    ts: datetime
    kind: str
    quantity: int
    unit_price: float | None
    units_left: int | None = Field(description="Units left after this event.")


class SignalOut(BaseModel):
    ts: datetime
    type: str
    detail: str


class SkuOut(BaseModel):
    sku: str
    name: str
    drop: str
    market: str
    markets: list[str]
    currency: str
    list_price: float
    start_stock: int | None
    units_left: int | None
    window: WindowOut | None
    surface: SurfaceOut | None
    sales: list[SaleOut] = Field(description="Sales, returns and restocks, oldest first.")
    signals: list[SignalOut] = Field(description="Announcements, claims, listing changes.")


_STOCK_SIGN = {name: EVENT_KINDS[name].stock_sign for name in STOCK_KINDS}
"""How each stock-moving kind changes the units left (:data:`pricing.events.EVENT_KINDS`)."""
_SIGNAL_DETAIL = (
    "creator",
    *dict.fromkeys(k.size_field for k in EVENT_KINDS.values() if not k.moves_stock),
    "platform",
)
"""Fields a signal's line shows: its creator and every signal kind's size field."""
_DAY = timedelta(days=1)


@router.get(
    "/v1/console/skus/{sku}",
    response_model=SkuOut,
    responses={404: {"model": ErrorBody}},
    summary="A SKU's live surface and its timeline of sales and events",
)
def get_sku(
    sku: SkuPath,
    caller: OperatorCaller,
    runtime: RuntimeDep,
    market: MarketQuery = None,
) -> SkuOut:
    """The surface served now and the events of the current (or last) window."""
    book = runtime.book
    try:
        entry, market = book.resolve_market(sku, market)
    except UnknownSku as exc:
        raise HTTPException(404, detail={"error": "unknown_sku", "detail": str(exc)}) from exc
    except UnknownMarket as exc:
        raise HTTPException(404, detail={"error": "unknown_market", "detail": str(exc)}) from exc
    now = datetime.now(UTC)
    found = runtime.config.find_sku(sku)
    name, start_stock, window = "", None, None
    since = None
    if found is not None:
        drop_cfg, sku_cfg = found
        name, start_stock = sku_cfg.name, sku_cfg.inventory.get(market)
        window = _window(drop_cfg, now)
        # The timeline starts a day before the window shown (the lead-in the fit sees).
        if window.start is not None:
            since = min(window.start.astimezone(UTC), now) - _DAY
    units = book.units(sku, market)
    surface = None
    live = None if market in entry.fixed_markets else book.surface(sku, market)
    if live is not None:
        version, rec = live
        rows, cols = rec.price.shape
        t = int((now - rec.period_start).total_seconds() // rec.period_seconds)
        surface = SurfaceOut(
            version=version,
            period_start=rec.period_start,
            period_seconds=rec.period_seconds,
            price=rec.price.tolist(),
            guardrail_codes=rec.guardrail_codes.tolist()
            if rec.guardrail_codes is not None
            else None,
            guardrail_names=GUARDRAIL_FIELDS,
            cell={
                "units_left": min(max(units or 0, 0), rows - 1),
                "period": min(max(t, 0), cols - 1),
            },
        )
    try:
        entries = runtime.store.recent_events(sku, since=since, limit=5000)
    except StoreUnavailable:
        entries = []
    moves: list[tuple[datetime, str, int, float | None]] = []
    signals: list[SignalOut] = []
    for e in entries:
        f = e.fields
        if not isinstance(f.get("type"), str) or f.get("market") != market:
            continue
        try:
            ts = datetime.fromisoformat(str(f.get("ts") or "")).astimezone(UTC)
        except ValueError:
            ts = datetime.fromtimestamp(int(e.entry_id.split("-", 1)[0]) / 1000, UTC)
        kind = str(f["type"])
        if kind in _STOCK_SIGN:
            try:
                qty = int(str(f.get("quantity") or 0))
                price = float(str(f["unit_price"])) if f.get("unit_price") else None
            except ValueError:
                continue
            moves.append((ts, kind, qty, price))
        else:
            detail = ", ".join(f"{k} {f[k]}" for k in _SIGNAL_DETAIL if f.get(k))
            signals.append(SignalOut(ts=ts, type=kind, detail=detail))
    moves.sort(key=lambda m: m[0])
    # Units left after each move, counted back from the units left now.
    left = units
    after: list[int | None] = []
    for _, kind, qty, _ in reversed(moves):
        after.append(left)
        if left is not None:
            left -= _STOCK_SIGN[kind] * qty
    after.reverse()
    sales = [
        SaleOut(ts=ts, kind=kind, quantity=qty, unit_price=price, units_left=a)
        for (ts, kind, qty, price), a in zip(moves, after, strict=True)
    ]
    return SkuOut(
        sku=sku,
        name=name,
        drop=entry.drop_id,
        market=market,
        markets=list(entry.markets),
        currency=entry.currency,
        list_price=entry.list_price,
        start_stock=start_stock,
        units_left=units,
        window=window,
        surface=surface,
        sales=sales,
        signals=sorted(signals, key=lambda s: s.ts),
    )
