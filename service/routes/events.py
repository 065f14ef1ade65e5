"""``POST /v1/events``: sales, returns, restocks and demand signals, each on its own.

The route reads the body (orjson) and checks its shape: an object with one field,
``events``, a list of 1 to 1,000 items (else ``422``). Each event is then validated,
planned and recorded by :mod:`service.intake`: valid events in a batch are recorded even
when others are rejected, and the result list has one entry per event, in order. If
Redis is unreachable the answer is ``503`` with ``Retry-After``; each event is atomic,
so retrying the same batch (same ``event_id`` values) applies exactly the events that
had not been applied and reports the others ``duplicate``.

The handler and its dependencies are coroutines: parsing, validation and planning run
on the event loop, and the batch's one Redis round trip is awaited on the store's
asyncio client, so no request of this route uses a thread (on a cluster the store call
takes one).
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Request, Response

from service import intake
from service.deps import PosCaller, RuntimeDep
from service.metrics import Metrics
from service.schemas import MAX_BATCH_EVENTS, ErrorBody, EventBatchOut

__all__ = ["router"]

router = APIRouter(tags=["events"])


def _invalid_batch(message: str, got: Any) -> HTTPException:
    problem = {"field": "events", "message": message, "got": got}
    return HTTPException(422, detail={"error": "invalid_request", "detail": [problem]})


def _raw_events(body: bytes) -> list[Any]:
    """The ``events`` list of the body, or a 422 naming what is wrong with the body."""
    try:
        payload = orjson.loads(body)
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
        raise _invalid_batch(
            "body must be an object with exactly one field, 'events': a list of events",
            str(got),
        )
    if not 1 <= len(raw_events) <= MAX_BATCH_EVENTS:
        raise _invalid_batch(f"a batch holds 1 to {MAX_BATCH_EVENTS} events", len(raw_events))
    return raw_events


def _count(metrics: Metrics, results: list[dict[str, Any]]) -> None:
    counts: dict[tuple[str, str], int] = {}
    for r in results:
        label = (r["type"] or "unknown", r["status"])
        counts[label] = counts.get(label, 0) + 1
    for (kind, status), count in counts.items():
        metrics.events.labels(kind, status).inc(count)
        if kind == "sale":
            metrics.sales.labels(status).inc(count)
    mismatched = sum(1 for r in results if r["price_check"] == "mismatch")
    if mismatched:
        metrics.price_mismatch.inc(mismatched)
    for r in results:
        if r.get("quote") in ("honoured", "expired"):
            metrics.quotes.labels(r["quote"]).inc()


@router.post(
    "/v1/events",
    response_model=EventBatchOut,
    summary="Report sales and demand signals (up to 1,000 events)",
    responses={
        200: {
            "description": "One result per event, in request order: each event is "
            "accepted, duplicate, sold_out or rejected on its own (an invalid event is "
            "rejected in its result, naming the field, and the rest are recorded)."
        },
        422: {"model": ErrorBody, "description": "The body is not a batch of 1 to 1,000."},
        503: {"model": ErrorBody, "description": "Redis unreachable; retry after Retry-After."},
    },
)
async def post_events(request: Request, caller: PosCaller, runtime: RuntimeDep) -> Response:
    """Record events; the result list says what happened to each (``accepted``,
    ``duplicate`` (a replay: nothing changed), ``sold_out`` (fewer units left than
    sold: nothing changed) or ``rejected`` (invalid, with the field named)). A sale
    carrying a valid ``quote_id`` is charged the quoted price (``quote:
    honoured``); an expired quote is charged the current price (``quote:
    expired``).

    ``event_id`` is the idempotency key of an event per SKU: a replay of the same id for
    the same SKU is a ``duplicate`` and changes nothing, while the same id sent for two
    SKUs records one event for each.

    A ``restock`` needs an ``operator`` key (a ``pos`` key's is ``rejected``); a
    ``return`` takes back at most the units of the SKU sold in the market net of earlier
    returns (more is ``rejected`` with that number). A sale whose reported
    ``unit_price`` is off the charged price by more than ``DROPPRICE_PRICE_TOLERANCE_PCT``
    percent is recorded and flagged ``price_check: mismatch``. The body must be JSON
    (``Content-Type: application/json``; another type is ``415``)."""
    raw_events = _raw_events(await request.body())
    planned, results = intake.plan_batch(raw_events, runtime.book, caller)
    recorded = await intake.record_batch(
        runtime.store,
        runtime.book,
        planned,
        results,
        tolerance_pct=runtime.settings.price_tolerance_pct,
    )
    _count(runtime.metrics, recorded)
    # Serialised directly (the shape is EventBatchOut, documented by response_model).
    return Response(orjson.dumps(intake.results_body(recorded)), media_type="application/json")
