"""Request and response bodies of the price service's HTTP API.

Requests reject unknown fields (a typo such as ``quantitiy`` is an error, not a
silently ignored field) and carry field constraints; a 422 answer lists every
problem as ``{"field": "events[3].quantity", "message": ..., "got": ...}``.
Responses are separate models so the OpenAPI schema documents exactly what POS
integrations receive.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from pricing.fields import AS_WHOLE_NUMBER, IDENTIFIER_PATTERN, Identifier, WholeNumber

__all__ = [
    "MAX_BATCH_EVENTS",
    "MAX_BATCH_PRICES",
    "AnnouncementEvent",
    "AnyEvent",
    "ClaimEvent",
    "ErrorBody",
    "Event",
    "EventBatchIn",
    "EventBatchOut",
    "EventResult",
    "FieldError",
    "IntensityOut",
    "IntensityPoint",
    "ListingEvent",
    "PriceBatchIn",
    "PriceBatchItemIn",
    "PriceBatchOut",
    "PriceError",
    "PriceOut",
    "RestockEvent",
    "ReturnEvent",
    "SaleEvent",
    "event_adapter",
    "events_adapter",
]

MAX_BATCH_PRICES = 500
MAX_BATCH_EVENTS = 1000

EventId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        pattern=IDENTIFIER_PATTERN,
        description="Idempotency key: a replay with the same id changes nothing. Kept per "
        "SKU: the same id sent for two SKUs records two events (one per SKU).",
    ),
]
# Numbers are JSON numbers only (strict): ``true`` is not 1 and ``"3"`` is not 3, so
# nothing but a canonical number reaches the event stream (see :mod:`service.codec`).
# A whole number may be written ``3.0`` (JSON Schema's ``integer`` allows it).
Units = Annotated[int, Field(ge=1, le=100_000, strict=True), AS_WHOLE_NUMBER]
UnitPrice = Annotated[float, Field(gt=0, le=1_000_000, allow_inf_nan=False, strict=True)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, str_strip_whitespace=False)


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------- prices
class PriceOut(_Out):
    """The price of one SKU in one market, now."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "sku": "TEE-1",
                    "market": "nyc",
                    "price": 34.99,
                    "currency": "USD",
                    "version": "v2026-12-04T09",
                    "inventory": 41,
                    "source": "surface",
                    "quote_id": "q1.TEE-1.nyc.34.99.1764842400.5f0c",
                    "expires_at": "2026-12-04T10:02:00Z",
                }
            ]
        }
    )

    sku: str
    market: str
    price: float = Field(description="Price to charge; guardrails applied.")
    currency: str = Field(description="ISO 4217 code.")
    version: str | None = Field(description="Surface version served; null for the list price.")
    inventory: int | None = Field(description="Units left in this market (null if unknown).")
    source: Literal["surface", "base", "stale"] = Field(
        description="surface: the live price surface; base: list price (no surface yet); "
        "stale: Redis is unreachable, last surfaces held by the service."
    )
    quote_id: str | None = Field(
        description="Send with the sale to be charged this price until expires_at."
    )
    expires_at: str | None = Field(description="End of the quote lock (ISO 8601, UTC).")


class PriceBatchItemIn(_In):
    """One SKU (and its market, optional when the SKU is sold in one market only)."""

    sku: Identifier
    market: Identifier | None = None


class PriceBatchIn(_In):
    """Up to 500 SKUs, priced in request order."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"items": [{"sku": "TEE-1", "market": "nyc"}]}]}
    )

    items: list[PriceBatchItemIn] = Field(min_length=1, max_length=MAX_BATCH_PRICES)


class PriceError(_Out):
    """A batch item that has no price (unknown SKU or market)."""

    sku: str
    market: str | None
    error: Literal["unknown_sku", "unknown_market"]
    detail: str


class PriceBatchOut(_Out):
    """Prices in request order; an item without a price says why in its own entry."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "prices": [
                        {
                            "sku": "TEE-1",
                            "market": "nyc",
                            "price": 34.99,
                            "currency": "USD",
                            "version": "v2026-12-04T09",
                            "inventory": 41,
                            "source": "surface",
                            "quote_id": "q1.TEE-1.nyc.34.99.1764842400.5f0c",
                            "expires_at": "2026-12-04T10:02:00Z",
                        },
                        {
                            "sku": "NOPE-9",
                            "market": None,
                            "error": "unknown_sku",
                            "detail": "no drop sells SKU 'NOPE-9'",
                        },
                    ]
                }
            ]
        }
    )

    prices: list[PriceOut | PriceError]


# --------------------------------------------------------------------- events
class _Event(_In):
    event_id: EventId
    ts: AwareDatetime = Field(description="When it happened, with a time zone.")


class SaleEvent(_Event):
    """Units sold at a terminal (decrements inventory; refused when short)."""

    type: Literal["sale"]
    sku: Identifier
    market: Identifier
    quantity: Units
    unit_price: UnitPrice = Field(description="Unit price the terminal charged.")
    quote_id: str | None = Field(default=None, max_length=512)
    customer_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="Optional pseudonymous customer reference (a loyalty id, a hashed "
        "e-mail). Replaced by a keyed hash as it arrives; never stored as sent.",
    )


class ReturnEvent(_Event):
    """Units returned to stock."""

    type: Literal["return"]
    sku: Identifier
    market: Identifier
    quantity: Units
    unit_price: UnitPrice | None = None
    sale_event_id: EventId | None = Field(
        default=None,
        description="The sale returned: at most its units net of earlier returns "
        "against it. Without it, at most the units sold net of returns of the SKU in the "
        "market.",
    )


class RestockEvent(_Event):
    """Units added to stock (a delivery, a released wave)."""

    type: Literal["restock"]
    sku: Identifier
    market: Identifier
    quantity: Units


class AnnouncementEvent(_Event):
    """A creator's drop announcement reaching ``reach`` people."""

    type: Literal["announcement"]
    sku: Identifier | Annotated[list[Identifier], Field(min_length=1, max_length=500)] = Field(
        description="One SKU or a list (1 to 500)."
    )
    market: Identifier
    reach: WholeNumber = Field(ge=0, le=10_000_000_000)
    creator: str | None = Field(default=None, max_length=200)


class ClaimEvent(_Event):
    """Reservations / claims of the SKU."""

    type: Literal["claim"]
    sku: Identifier
    market: Identifier
    count: WholeNumber = Field(default=1, ge=1, le=1_000_000)


class ListingEvent(_Event):
    """A listing or packaging change (new photos, promo placement, restyle)."""

    type: Literal["listing"]
    sku: Identifier
    market: Identifier
    change: str = Field(default="listing", min_length=1, max_length=64)
    weight: float = Field(default=1.0, ge=0, le=1000, allow_inf_nan=False, strict=True)


AnyEvent = SaleEvent | ReturnEvent | RestockEvent | AnnouncementEvent | ClaimEvent | ListingEvent
"""One event of any kind (the kinds of :data:`pricing.events.EVENT_KINDS`)."""
Event = Annotated[AnyEvent, Field(discriminator="type")]
event_adapter: TypeAdapter[Any] = TypeAdapter(Event)
events_adapter: TypeAdapter[list[Any]] = TypeAdapter(list[Event])
"""A list of events validated in one call (the same rules as :data:`event_adapter`)."""


class EventBatchIn(_In):
    """Up to 1,000 events; each is accepted or rejected on its own."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "events": [
                        {
                            "type": "sale",
                            "event_id": "till-7-000123",
                            "ts": "2026-12-04T10:00:05+01:00",
                            "sku": "TEE-1",
                            "market": "nyc",
                            "quantity": 1,
                            "unit_price": 34.99,
                        },
                        {
                            "type": "announcement",
                            "event_id": "post-42",
                            "ts": "2026-12-04T09:00:00Z",
                            "sku": ["TEE-1", "CAP-2"],
                            "market": "nyc",
                            "reach": 250000,
                            "creator": "@maker",
                        },
                    ]
                }
            ]
        }
    )

    events: list[Event] = Field(min_length=1, max_length=MAX_BATCH_EVENTS)


class EventResult(_Out):
    """What happened to one event of the batch (in request order)."""

    index: int
    event_id: str | None
    type: str | None
    status: Literal["accepted", "duplicate", "sold_out", "rejected"]
    detail: str | None = Field(
        default=None,
        description="Why an event was refused; for an accepted sale, a price mismatch.",
    )
    first_status: str | None = Field(
        default=None, description="For a duplicate: the outcome of the first delivery."
    )
    charged_price: float | None = Field(default=None, description="Unit price charged (sales).")
    quote: Literal["honoured", "expired"] | None = None
    inventory: int | None = Field(default=None, description="Units left after the event.")
    version: str | None = None
    price_check: Literal["ok", "mismatch"] | None = Field(
        default=None,
        description="Accepted sales: whether the reported unit_price is within "
        "DROPPRICE_PRICE_TOLERANCE_PCT of the charged price (mismatch: detail says by how much).",
    )


class EventBatchOut(_Out):
    """One result per event, in request order, and the counts."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "results": [
                        {
                            "index": 0,
                            "event_id": "till-7-000123",
                            "type": "sale",
                            "status": "accepted",
                            "detail": None,
                            "first_status": None,
                            "charged_price": 34.99,
                            "quote": None,
                            "inventory": 40,
                            "version": "v2026-12-04T09",
                            "price_check": "ok",
                        },
                        {
                            "index": 1,
                            "event_id": "post-42",
                            "type": "announcement",
                            "status": "rejected",
                            "detail": "events[1].market: Field required",
                            "first_status": None,
                            "charged_price": None,
                            "quote": None,
                            "inventory": None,
                            "version": None,
                            "price_check": None,
                        },
                    ],
                    "accepted": 1,
                    "duplicates": 0,
                    "refused": 1,
                }
            ]
        }
    )

    results: list[EventResult]
    accepted: int
    duplicates: int
    refused: int = Field(description="Events sold_out or rejected.")


# ------------------------------------------------------------------ intensity
class IntensityPoint(_Out):
    hour: str = Field(description="Start of the hour (UTC, ISO 8601).")
    intensity: float
    components: dict[str, float]


class IntensityOut(_Out):
    sku: str
    market: str
    current: float = Field(description="Index in the current hour.")
    window_hours: int
    hours: list[IntensityPoint] = Field(description="Oldest first; the last is the current hour.")
    events_used: int
    computed_at: str


# --------------------------------------------------------------------- errors
class FieldError(_Out):
    """One problem with one field of a refused request."""

    field: str = Field(description="Path of the field in the request: ``events[3].quantity``.")
    message: str = Field(description="What is wrong and what is allowed.")
    got: Any = Field(default=None, description="The value received (scalars only, shortened).")
    line: int | None = Field(default=None, description="Line in the sent document, if known.")
    text: str | None = Field(default=None, description="The problem as one readable line.")


class ErrorBody(_Out):
    """An error answer: RFC 7807 problem details (``application/problem+json``)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "urn:dropprice:problem:unknown_sku",
                    "title": "Not Found",
                    "status": 404,
                    "detail": "no drop sells SKU 'NOPE-9'",
                    "code": "unknown_sku",
                    "request_id": "2f1c6a0e9b7d4c55",
                    "errors": [],
                }
            ]
        }
    )

    type: str = Field(description="URI naming the problem kind: ``urn:dropprice:problem:<code>``.")
    title: str = Field(description="Short summary of the HTTP status.")
    status: int = Field(ge=400, le=599, description="The HTTP status code of the answer.")
    detail: str = Field(description="What went wrong, in one readable string.")
    code: str = Field(description="Machine-readable error code (``unknown_sku``, ...).")
    request_id: str | None = Field(
        description="The request's id, the same as the answer's ``X-Request-ID`` header."
    )
    errors: list[FieldError] = Field(
        description="Each field problem of a refused request; empty for other errors."
    )
