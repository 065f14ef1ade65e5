"""Limits on what a request may carry: body size, and prices in a currency's minor units.

Two things live here:

- :class:`BodySizeLimitMiddleware`, a pure ASGI middleware that refuses a request body
  over ``max_body_bytes`` with ``413`` before the app parses it: at once when the
  ``Content-Length`` header says so, and while streaming for a chunked body (the
  request is cut off as soon as the running total passes the limit, so a client cannot
  make a worker buffer an unbounded body).
- :func:`minor_units` and :func:`check_price_decimals`: a price may not carry more
  decimals than its currency has minor units (ISO 4217: JPY 0, USD 2, KWD 3), so
  ``19.999`` USD is refused rather than rounded behind the operator's back.

The per-field limits (batch sizes, string lengths, numeric ranges, unknown fields) are
constraints on the request schemas in :mod:`service.schemas`; the reliability suite
(``tests/reliability/test_input_limits.py``) checks that every one answers 4xx naming
the field.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from starlette.exceptions import HTTPException

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "BodySizeLimitMiddleware",
    "BodyTooLarge",
    "check_price_decimals",
    "install_request_limits",
    "minor_units",
]

ASGIApp = Callable[..., Any]

DEFAULT_MAX_BODY_BYTES = 1 << 20
"""1 MiB: a full batch of 1,000 events is about 250 KiB of JSON."""

# ISO 4217 currencies whose minor unit is not 2 (the rest use cents).
_MINOR_UNITS: dict[str, int] = {
    **dict.fromkeys(
        [
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "UYI",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ],
        0,
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
    "CLF": 4,
    "UYW": 4,
}


def minor_units(currency: str) -> int:
    """Decimals a price in ``currency`` may carry (ISO 4217 minor unit; 2 when unlisted).

    Example:
        >>> minor_units("USD"), minor_units("JPY"), minor_units("KWD")
        (2, 0, 3)
    """
    return _MINOR_UNITS.get(currency.upper(), 2)


def check_price_decimals(value: float, currency: str, *, field: str = "unit_price") -> None:
    """Raise ``ValueError`` when ``value`` has more decimals than ``currency`` allows.

    The float is read through its shortest repr (``19.99`` stays ``19.99``), so a price
    typed with the right number of decimals always passes.

    Raises:
        ValueError: naming ``field``, the value received and the decimals allowed.

    Example:
        >>> check_price_decimals(19.99, "USD")
        >>> check_price_decimals(19.999, "USD")
        Traceback (most recent call last):
        ...
        ValueError: unit_price: 19.999 has 3 decimals, USD allows at most 2
    """
    try:
        exponent = Decimal(repr(float(value))).normalize().as_tuple().exponent
    except (InvalidOperation, ValueError, OverflowError) as exc:
        raise ValueError(f"{field}: {value!r} is not a finite number") from exc
    if not isinstance(exponent, int):
        raise ValueError(f"{field}: {value!r} is not a finite number")
    decimals = max(0, -exponent)
    allowed = minor_units(currency)
    if decimals > allowed:
        raise ValueError(
            f"{field}: {value!r} has {decimals} decimals, {currency} allows at most {allowed}"
        )


class BodyTooLarge(HTTPException):
    """The request body is over the configured limit.

    Fix: send fewer items per request (split the batch) or raise
    ``DROPPRICE_MAX_BODY_BYTES``.
    """

    def __init__(self, limit: int, received: int | None) -> None:
        got = f"{received} bytes" if received is not None else "more than that"
        super().__init__(
            status_code=413,
            detail=f"request body too large: got {got}, the limit is {limit} bytes "
            "(split the batch or raise DROPPRICE_MAX_BODY_BYTES)",
        )
        self.limit = limit


class BodySizeLimitMiddleware:
    """Refuse request bodies over ``max_body_bytes`` with ``413`` and a JSON ``detail``.

    Args:
        app: the wrapped ASGI app.
        max_body_bytes: the largest body accepted, in bytes.
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        if max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be >= 1, got {max_body_bytes}")
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _send_json(
                        scope,
                        send,
                        400,
                        "invalid_request",
                        f"content-length: not an integer, got {value[:40]!r}",
                    )
                    return
                if declared > limit:
                    await _send_json(
                        scope, send, 413, "body_too_large", BodyTooLarge(limit, declared).detail
                    )
                    return
                break

        received = 0
        started = False

        async def limited_receive() -> dict[str, Any]:
            nonlocal received
            message: dict[str, Any] = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit, None)
            return message

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as exc:
            # A route that reads the body itself (a pure-ASGI fast path) lets the error
            # out; answer here unless a response is already under way.
            if started:
                raise
            await _send_json(scope, send, 413, "body_too_large", exc.detail)


async def _send_json(
    scope: dict[str, Any], send: Any, status: int, error: str, detail: str
) -> None:
    # The shape of every other error body (service.schemas.ErrorBody).
    request_id = next(
        (v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), None
    )
    body = orjson.dumps({"error": error, "detail": detail, "request_id": request_id})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def install_request_limits(app: Any, settings: Any) -> None:
    """Add the body-size limit and per-key rate limiting as the app's outermost layers.

    Called last in :func:`service.app.create_app`, so both run before the price-read
    fast path and before FastAPI: an oversized body or an over-limit key costs no
    parsing and no Redis call.

    Args:
        app: the FastAPI app (``add_middleware`` is used).
        settings: :class:`service.settings.Settings` (``max_body_bytes``, ``api_keys``,
            ``auth_disabled`` and the ``rate_limit_*`` fields).
    """
    from service.auth import ApiKeys
    from service.ratelimit import RateLimitMiddleware, TokenBucketLimiter, limits_from_settings

    limits = limits_from_settings(settings)
    if limits is not None and any(v is not None for v in limits.values()):
        api_keys = ApiKeys(settings.api_keys, disabled=settings.auth_disabled)
        app.add_middleware(
            RateLimitMiddleware,
            limiter=TokenBucketLimiter(limits),
            resolve_role=api_keys.role_for,
        )
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_body_bytes=getattr(settings, "max_body_bytes", DEFAULT_MAX_BODY_BYTES),
    )
