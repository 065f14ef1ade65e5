"""``POST /v1/events``: sales, returns, restocks and demand signals, each on its own.

Each event is validated alone, so valid events in a batch are recorded even when
others are rejected (the result list has one entry per event, in order). Every
SKU event then runs through the event script in Redis (dedupe by ``event_id``,
quote-locked or surface price, inventory, stream), pipelined for the batch. If
Redis is unreachable the answer is ``503`` with ``Retry-After``; each event is
atomic, so retrying the same batch (same ``event_id`` values) applies exactly
the events that had not been applied and reports the others ``duplicate``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from service.auth import Caller
from service.codec import encode_fields
from service.deps import PosCaller, RuntimeDep
from service.exceptions import UnknownMarket, UnknownSku
from service.limits import check_price_decimals
from service.pricebook import PriceBook
from service.schemas import (
    MAX_BATCH_EVENTS,
    AnnouncementEvent,
    ClaimEvent,
    ErrorBody,
    EventBatchOut,
    ListingEvent,
    RestockEvent,
    ReturnEvent,
    SaleEvent,
    event_adapter,
)
from service.settings import Role
from service.store import EventKind, EventOutcome, EventRecord

__all__ = ["format_validation_errors", "router"]

router = APIRouter(tags=["events"])

AnyEvent = SaleEvent | ReturnEvent | RestockEvent | AnnouncementEvent | ClaimEvent | ListingEvent


def format_validation_errors(exc: ValidationError, prefix: str = "") -> list[dict[str, Any]]:
    """``[{"field": "events[3].quantity", "message": ..., "got": ...}]`` from pydantic."""
    out = []
    for err in exc.errors(include_url=False):
        path = prefix
        for part in err["loc"]:
            if isinstance(part, int):
                path += f"[{part}]"
            elif part not in {"sale", "return", "restock", "announcement", "claim", "listing"}:
                path += f".{part}" if path else str(part)
        got = err.get("input")
        out.append(
            {
                "field": path or "body",
                "message": err["msg"],
                "got": got if isinstance(got, str | int | float | bool) or got is None else None,
            }
        )
    return out


_KIND: Mapping[str, EventKind] = {
    "sale": "sale",
    "return": "return",
    "restock": "restock",
    "announcement": "signal",
    "claim": "signal",
    "listing": "signal",
}


def _plan(
    index: int, ev: AnyEvent, book: PriceBook, now: float, caller: Caller
) -> tuple[list[EventRecord], dict[str, Any] | None, str | None]:
    """Records for one event, or a rejection; also the quote status of a sale."""
    if isinstance(ev, RestockEvent) and not caller.role.allows(Role.operator):
        # A till cannot add stock: only deliveries an operator books can.
        return (
            [],
            _rejected(
                index,
                ev,
                f"events[{index}].type: a restock needs role 'operator' or higher; this "
                f"key has role {caller.role.value!r} (a till reports sales and returns)",
            ),
            None,
        )
    skus = ev.sku if isinstance(ev.sku, list) else [ev.sku]
    records: list[EventRecord] = []
    quote_status: str | None = None
    for sku in dict.fromkeys(skus):
        try:
            entry, market = book.resolve_market(sku, ev.market)
        except (UnknownSku, UnknownMarket) as exc:
            return [], _rejected(index, ev, str(exc)), None
        unit_price = getattr(ev, "unit_price", None)
        if unit_price is not None:
            try:  # no more decimals than the SKU's currency has minor units
                check_price_decimals(
                    unit_price, entry.currency, field=f"events[{index}].unit_price"
                )
            except ValueError as exc:
                return [], _rejected(index, ev, str(exc)), None
        quoted: float | None = None
        if isinstance(ev, SaleEvent) and ev.quote_id:
            if book.signer is None:
                return [], _rejected(index, ev, "quote_id cannot be checked yet; retry"), None
            check = book.signer.check(ev.quote_id, sku, market, now)
            if check.status == "invalid":
                return (
                    [],
                    _rejected(index, ev, f"quote_id is not a valid quote for {sku} in {market}"),
                    None,
                )
            quote_status = check.status
            quoted = check.price if check.status == "honoured" else None
        records.append(
            EventRecord(
                event_id=ev.event_id,
                kind=_KIND[ev.type],
                sku=sku,
                market=market,
                quantity=getattr(ev, "quantity", 0),
                fields=encode_fields(ev, sku),
                quoted_price=quoted,
                list_price=entry.base_price,
            )
        )
    return records, None, quote_status


def _entry(
    index: int,
    event_id: str | None,
    kind: str | None,
    status: str,
    detail: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One result, with every field of :class:`~service.schemas.EventResult`."""
    return {
        "index": index,
        "event_id": event_id,
        "type": kind,
        "status": status,
        "detail": detail,
        "first_status": extra.get("first_status"),
        "charged_price": extra.get("charged_price"),
        "quote": extra.get("quote"),
        "inventory": extra.get("inventory"),
        "version": extra.get("version"),
        "price_check": extra.get("price_check"),
    }


def _rejected(index: int, ev: AnyEvent | None, detail: str, raw: Any = None) -> dict[str, Any]:
    event_id = ev.event_id if ev is not None else None
    kind = ev.type if ev is not None else None
    if ev is None and isinstance(raw, dict):
        event_id = raw.get("event_id") if isinstance(raw.get("event_id"), str) else None
        kind = raw.get("type") if isinstance(raw.get("type"), str) else None
    return _entry(index, event_id, kind, "rejected", detail)


def _price_check(
    ev: AnyEvent, charged: float | None, tolerance_pct: float
) -> tuple[str | None, str | None]:
    """``("mismatch", why)`` when a sale's reported price is off the charged one by more
    than ``tolerance_pct`` percent of the charged price; ``("ok", None)`` when within."""
    if not isinstance(ev, SaleEvent) or charged is None or charged <= 0:
        return None, None
    off = abs(ev.unit_price - charged) / charged * 100.0
    if off <= tolerance_pct + 1e-9:
        return "ok", None
    return "mismatch", (
        f"reported unit_price {ev.unit_price:g} differs from the charged price {charged:g} "
        f"by {off:.1f}% (tolerance {tolerance_pct:g}%)"
    )


def _result(
    index: int,
    ev: AnyEvent,
    outcomes: list[EventOutcome],
    quote: str | None,
    tolerance_pct: float,
) -> dict[str, Any]:
    statuses = {o.status for o in outcomes}
    if "accepted" in statuses:
        status = "accepted"
    elif statuses == {"duplicate"}:
        status = "duplicate"
    else:
        status = "sold_out" if "sold_out" in statuses else "rejected"
    first = outcomes[0]
    detail = None
    check: str | None = None
    if status == "sold_out":
        detail = f"only {first.units_left} unit(s) left of {first.sku} in {first.market}"
    elif status == "rejected" and first.status == "return_unknown_sale":
        detail = (
            f"sale_event_id {getattr(ev, 'sale_event_id', None)!r} names no recorded sale "
            f"of {first.sku} in {first.market}"
        )
    elif status == "rejected" and first.status == "return_exceeds_sale":
        detail = (
            f"a return takes back at most the units of the sale it names net of earlier "
            f"returns against it: {first.returnable or 0} unit(s) of sale "
            f"{getattr(ev, 'sale_event_id', None)!r}, got quantity "
            f"{getattr(ev, 'quantity', None)}"
        )
    elif status == "rejected" and first.status == "return_exceeds_sales":
        detail = (
            f"a return takes back at most the units sold net of returns: "
            f"{first.returnable or 0} unit(s) of {first.sku} in {first.market}, "
            f"got quantity {getattr(ev, 'quantity', None)}"
        )
    elif status == "rejected":
        detail = f"no inventory counter for {first.sku} in {first.market}"
    elif status == "accepted":
        check, detail = _price_check(ev, first.unit_price, tolerance_pct)
    return _entry(
        index,
        ev.event_id,
        ev.type,
        status,
        detail,
        first_status=first.first_status if status == "duplicate" else None,
        charged_price=first.unit_price if ev.type == "sale" else None,
        quote=quote if status == "accepted" else None,
        inventory=first.units_left if len(outcomes) == 1 else None,
        version=first.version,
        price_check=check,
    )


@router.post(
    "/v1/events",
    response_model=EventBatchOut,
    summary="Report sales and demand signals (up to 1,000 events)",
    responses={
        401: {"model": ErrorBody},
        403: {"model": ErrorBody},
        422: {"model": ErrorBody},
        503: {"model": ErrorBody, "description": "Redis unreachable; retry after Retry-After."},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/EventBatchIn"}}
            },
        }
    },
)
async def post_events(request: Request, caller: PosCaller, runtime: RuntimeDep) -> Response:
    """Record events; the result list says what happened to each (``accepted``,
    ``duplicate`` (a replay: nothing changed), ``sold_out`` (fewer units left than
    sold: nothing changed) or ``rejected`` (invalid, with the field named)). A sale
    carrying a valid ``quote_id`` is charged the quoted price (``quote:
    honoured``); an expired quote is charged the current price (``quote:
    expired``).

    A ``restock`` needs an ``operator`` key (a ``pos`` key's is ``rejected``); a
    ``return`` takes back at most the units of the SKU sold in the market net of earlier
    returns (more is ``rejected`` with that number). A sale whose reported
    ``unit_price`` is off the charged price by more than ``DROPPRICE_PRICE_TOLERANCE_PCT``
    percent is recorded and flagged ``price_check: mismatch``. The body must be JSON
    (``Content-Type: application/json``; another type is ``415``)."""
    try:
        payload = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise HTTPException(
            422, detail={"error": "invalid_json", "detail": f"body is not valid JSON: {exc}"}
        ) from exc
    raw_events = payload.get("events") if isinstance(payload, dict) else None
    if (
        not isinstance(payload, dict)
        or set(payload) != {"events"}
        or not isinstance(raw_events, list)
    ):
        got = sorted(payload) if isinstance(payload, dict) else type(payload).__name__
        raise HTTPException(
            422,
            detail={
                "error": "invalid_request",
                "detail": [
                    {
                        "field": "events",
                        "message": "body must be an object with exactly one field, "
                        "'events': a list of events",
                        "got": str(got),
                    }
                ],
            },
        )
    if not 1 <= len(raw_events) <= MAX_BATCH_EVENTS:
        raise HTTPException(
            422,
            detail={
                "error": "invalid_request",
                "detail": [
                    {
                        "field": "events",
                        "message": f"a batch holds 1 to {MAX_BATCH_EVENTS} events",
                        "got": len(raw_events),
                    }
                ],
            },
        )
    book = runtime.book
    now = time.time()
    results: list[dict[str, Any] | None] = [None] * len(raw_events)
    planned: list[tuple[int, AnyEvent, list[EventRecord], str | None]] = []
    for i, raw in enumerate(raw_events):
        try:
            ev: AnyEvent = event_adapter.validate_python(raw)
        except ValidationError as exc:
            problems = format_validation_errors(exc, f"events[{i}]")
            text = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
            results[i] = _rejected(i, None, text, raw)
            continue
        records, rejection, quote = _plan(i, ev, book, now, caller)
        if rejection is not None:
            results[i] = rejection
        else:
            planned.append((i, ev, records, quote))
    flat = [r for _, _, records, _ in planned for r in records]
    outcomes = await run_in_threadpool(runtime.store.record_events, flat) if flat else []
    metrics = runtime.metrics
    pos = 0
    for i, ev, records, quote in planned:
        mine = outcomes[pos : pos + len(records)]
        pos += len(records)
        for o in mine:
            if o.status == "accepted" and o.units_left is not None:
                book.set_units(o.sku, o.market, o.units_left)
        results[i] = _result(i, ev, mine, quote, runtime.settings.price_tolerance_pct)
    out = [r for r in results if r is not None]
    counts: dict[tuple[str, str], int] = {}
    for r in out:
        label = (r["type"] or "unknown", r["status"])
        counts[label] = counts.get(label, 0) + 1
    for (kind, status), count in counts.items():
        metrics.events.labels(kind, status).inc(count)
        if kind == "sale":
            metrics.sales.labels(status).inc(count)
    mismatched = sum(1 for r in out if r["price_check"] == "mismatch")
    if mismatched:
        metrics.price_mismatch.inc(mismatched)
    statuses = [r["status"] for r in out]
    body = {
        "results": out,
        "accepted": statuses.count("accepted"),
        "duplicates": statuses.count("duplicate"),
        "refused": statuses.count("sold_out") + statuses.count("rejected"),
    }
    # Serialised directly (the shape is EventBatchOut, documented by response_model).
    return Response(orjson.dumps(body), media_type="application/json")
