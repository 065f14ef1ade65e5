"""Event intake: from a batch of raw events to the results a terminal reads back.

Each event is validated on its own (:data:`service.schemas.event_adapter`), then
planned: a restock needs an operator key, a price may carry no more decimals than its
currency has, a sale's ``quote_id`` is checked against the price book, and every SKU
the event names becomes one :class:`~service.store.EventRecord`. The planned records of
the whole batch go to Redis in one call (:meth:`PriceStore.record_events_async`: one
round trip for the batch on a single node, awaited without a thread), and each event's result is built from the
outcomes of its records, in request order.

An event that fails validation or planning is ``rejected`` in its own result, naming the
field; the others are recorded. Nothing here speaks HTTP: the route parses the body
and answers (:mod:`service.routes.events`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from pydantic import ValidationError

from pricing.events import EVENT_KINDS
from service.auth import Caller
from service.codec import encode_fields
from service.exceptions import UnknownMarket, UnknownSku
from service.limits import check_price_decimals
from service.pricebook import PriceBook
from service.problems import field_errors
from service.schemas import (
    AnyEvent,
    RestockEvent,
    SaleEvent,
    event_adapter,
    events_adapter,
)
from service.settings import Role
from service.store import EventKind, EventOutcome, EventRecord, PriceStore

__all__ = ["PlannedEvent", "plan_batch", "record_batch", "results_body"]

STORE_KIND: Mapping[str, EventKind] = {
    name: name if kind.moves_stock else "signal"  # type: ignore[misc]
    for name, kind in EVENT_KINDS.items()
}
"""How the event script treats each kind: stock moves by name, every other kind is a
demand signal recorded in the stream only (from :data:`pricing.events.EVENT_KINDS`)."""


class PlannedEvent(NamedTuple):
    """A valid event of the batch and the records it becomes (one per SKU it names)."""

    position: int
    """Where the event stands in the batch (its result's ``index``)."""
    event: AnyEvent
    records: list[EventRecord]
    quote: str | None
    """For a sale with a ``quote_id``: ``honoured`` or ``expired``."""


def _result(
    index: int,
    event_id: str | None,
    kind: str | None,
    status: str,
    detail: str | None = None,
    *,
    first_status: str | None = None,
    charged_price: float | None = None,
    quote: str | None = None,
    inventory: int | None = None,
    version: str | None = None,
    price_check: str | None = None,
) -> dict[str, Any]:
    """One result, with every field of :class:`~service.schemas.EventResult`."""
    return {
        "index": index,
        "event_id": event_id,
        "type": kind,
        "status": status,
        "detail": detail,
        "first_status": first_status,
        "charged_price": charged_price,
        "quote": quote,
        "inventory": inventory,
        "version": version,
        "price_check": price_check,
    }


def _rejected(index: int, event: AnyEvent | None, detail: str, raw: Any = None) -> dict[str, Any]:
    """A ``rejected`` result; the id and type come from the raw item when it did not parse."""
    if event is not None:
        return _result(index, event.event_id, event.type, "rejected", detail)
    event_id = kind = None
    if isinstance(raw, dict):
        event_id = raw.get("event_id") if isinstance(raw.get("event_id"), str) else None
        kind = raw.get("type") if isinstance(raw.get("type"), str) else None
    return _result(index, event_id, kind, "rejected", detail)


@functools.lru_cache(maxsize=16_384)
def _decimals_fit(price: float, currency: str) -> bool:
    """Whether ``price`` has no more decimals than ``currency`` allows
    (:func:`~service.limits.check_price_decimals`, kept per price: a drop's sales
    repeat a few prices, and the check reads the price through ``Decimal``)."""
    try:
        check_price_decimals(price, currency)
    except ValueError:
        return False
    return True


def _plan_event(
    index: int, event: AnyEvent, book: PriceBook, now: float, caller: Caller
) -> PlannedEvent | dict[str, Any]:
    """The records of one event, or its ``rejected`` result."""
    if isinstance(event, RestockEvent) and not caller.role.allows(Role.operator):
        # A till cannot add stock: only deliveries an operator books can.
        return _rejected(
            index,
            event,
            f"events[{index}].type: a restock needs role 'operator' or higher; this key "
            f"has role {caller.role.value!r} (a till reports sales and returns)",
        )
    skus = event.sku if isinstance(event.sku, list) else [event.sku]
    records: list[EventRecord] = []
    quote: str | None = None
    for sku in dict.fromkeys(skus):
        try:
            entry, market = book.resolve_market(sku, event.market)
        except (UnknownSku, UnknownMarket) as exc:
            return _rejected(index, event, str(exc))
        unit_price = getattr(event, "unit_price", None)
        if unit_price is not None and not _decimals_fit(unit_price, entry.currency):
            try:  # no more decimals than the SKU's currency has minor units
                check_price_decimals(
                    unit_price, entry.currency, field=f"events[{index}].unit_price"
                )
            except ValueError as exc:
                return _rejected(index, event, str(exc))
        quoted: float | None = None
        if isinstance(event, SaleEvent) and event.quote_id:
            if book.signer is None:
                return _rejected(index, event, "quote_id cannot be checked yet; retry")
            check = book.signer.check(event.quote_id, sku, market, now)
            if check.status == "invalid":
                return _rejected(
                    index, event, f"quote_id is not a valid quote for {sku} in {market}"
                )
            quote = check.status
            quoted = check.price if check.status == "honoured" else None
        records.append(
            EventRecord(
                event_id=event.event_id,
                kind=STORE_KIND[event.type],
                sku=sku,
                market=market,
                quantity=getattr(event, "quantity", 0),
                fields=encode_fields(event, sku),
                quoted_price=quoted,
                list_price=entry.base_price,
            )
        )
    return PlannedEvent(index, event, records, quote)


def _validated(raw_events: Sequence[Any]) -> list[AnyEvent | ValidationError]:
    """Each raw event validated (:data:`~service.schemas.event_adapter`), or the error
    that refuses it, in order.

    The batch is validated in one call over the list (a batch of valid events, the
    common case, costs one validator call, not one an event); when any event fails,
    each is validated again on its own, so an error names its own event only.
    """
    try:
        events: list[AnyEvent] = events_adapter.validate_python(raw_events)
    except ValidationError:
        pass
    else:
        return list(events)
    out: list[AnyEvent | ValidationError] = []
    for raw in raw_events:
        try:
            out.append(event_adapter.validate_python(raw))
        except ValidationError as exc:
            out.append(exc)
    return out


def plan_batch(
    raw_events: Sequence[Any], book: PriceBook, caller: Caller, now: float | None = None
) -> tuple[list[PlannedEvent], list[dict[str, Any] | None]]:
    """Validate and plan each raw event on its own.

    Returns:
        The planned events, and the result list with the rejected events filled in
        (``None`` where an event was planned).
    """
    now = time.time() if now is None else now
    results: list[dict[str, Any] | None] = [None] * len(raw_events)
    planned: list[PlannedEvent] = []
    for i, event in enumerate(_validated(raw_events)):
        if isinstance(event, ValidationError):
            problems = field_errors(event.errors(include_url=False), f"events[{i}]")
            text = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
            results[i] = _rejected(i, None, text, raw_events[i])
            continue
        plan = _plan_event(i, event, book, now, caller)
        if isinstance(plan, PlannedEvent):
            planned.append(plan)
        else:
            results[i] = plan
    return planned, results


def _price_check(
    event: AnyEvent, charged: float | None, tolerance_pct: float
) -> tuple[str | None, str | None]:
    """``("mismatch", why)`` when a sale's reported price is off the charged one by more
    than ``tolerance_pct`` percent of the charged price; ``("ok", None)`` when within."""
    if not isinstance(event, SaleEvent) or charged is None or charged <= 0:
        return None, None
    off = abs(event.unit_price - charged) / charged * 100.0
    if off <= tolerance_pct + 1e-9:
        return "ok", None
    return "mismatch", (
        f"reported unit_price {event.unit_price:g} differs from the charged price "
        f"{charged:g} by {off:.1f}% (tolerance {tolerance_pct:g}%)"
    )


def _outcome_result(
    plan: PlannedEvent, outcomes: Sequence[EventOutcome], tolerance_pct: float
) -> dict[str, Any]:
    """The result of one recorded event from the outcomes of its records."""
    event = plan.event
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
            f"sale_event_id {getattr(event, 'sale_event_id', None)!r} names no recorded sale "
            f"of {first.sku} in {first.market}"
        )
    elif status == "rejected" and first.status == "return_exceeds_sale":
        detail = (
            f"a return takes back at most the units of the sale it names net of earlier "
            f"returns against it: {first.returnable or 0} unit(s) of sale "
            f"{getattr(event, 'sale_event_id', None)!r}, got quantity "
            f"{getattr(event, 'quantity', None)}"
        )
    elif status == "rejected" and first.status == "return_exceeds_sales":
        detail = (
            f"a return takes back at most the units sold net of returns: "
            f"{first.returnable or 0} unit(s) of {first.sku} in {first.market}, "
            f"got quantity {getattr(event, 'quantity', None)}"
        )
    elif status == "rejected":
        detail = f"no inventory counter for {first.sku} in {first.market}"
    elif status == "accepted":
        check, detail = _price_check(event, first.unit_price, tolerance_pct)
    return _result(
        plan.position,
        event.event_id,
        event.type,
        status,
        detail,
        first_status=first.first_status if status == "duplicate" else None,
        charged_price=first.unit_price if event.type == "sale" else None,
        quote=plan.quote if status == "accepted" else None,
        inventory=first.units_left if len(outcomes) == 1 else None,
        version=first.version,
        price_check=check,
    )


async def record_batch(
    store: PriceStore,
    book: PriceBook,
    planned: Sequence[PlannedEvent],
    results: list[dict[str, Any] | None],
    *,
    tolerance_pct: float,
) -> list[dict[str, Any]]:
    """Record the planned events (one store call, one round trip for the batch) and fill
    in their results, in request order.

    Units left after each accepted stock move are written to the price book at once,
    so this process's next price read sees them.

    Raises:
        StoreUnavailable: Redis did not answer within its budget; a retry with the same
            event ids applies exactly the events not applied yet.
    """
    flat = [record for plan in planned for record in plan.records]
    # Awaited on the store's asyncio client: the loop (and the price reads it serves)
    # stays free while Redis answers, and no thread is used (a cluster: one thread hop).
    outcomes = await store.record_events_async(flat) if flat else []
    pos = 0
    for plan in planned:
        mine = outcomes[pos : pos + len(plan.records)]
        pos += len(plan.records)
        for o in mine:
            if o.status == "accepted" and o.units_left is not None:
                book.set_units(o.sku, o.market, o.units_left, seq=o.stream_id)
        results[plan.position] = _outcome_result(plan, mine, tolerance_pct)
    return [r for r in results if r is not None]


def results_body(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The :class:`~service.schemas.EventBatchOut` body: the results and their counts."""
    statuses = [r["status"] for r in results]
    return {
        "results": list(results),
        "accepted": statuses.count("accepted"),
        "duplicates": statuses.count("duplicate"),
        "refused": statuses.count("sold_out") + statuses.count("rejected"),
    }
