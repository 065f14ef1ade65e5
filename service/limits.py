"""Limits on what a request may carry: headers, body size and type, and prices in a
currency's minor units.

What lives here:

- :func:`headers_too_large`: the total size of a request's header names and values is
  bounded by ``max_header_bytes``; :class:`service.app.DroppriceAPI` answers ``431``
  before anything else runs (before the price fast path and the API-key check).
- :class:`BodySizeLimitMiddleware`, a pure ASGI middleware that refuses a request body
  over ``max_body_bytes`` with ``413`` before the app parses it: at once when the
  ``Content-Length`` header says so, and while streaming for a chunked body (the
  request is cut off as soon as the running total passes the limit, so a client cannot
  make a worker buffer an unbounded body). Either way the answer is a problem
  document with ``"code": "body_too_large"`` (:mod:`service.problems`).
- :class:`ContentTypeMiddleware`: a request carrying a body must say it is JSON
  (``application/json`` or ``application/<x>+json``), or YAML where a route takes YAML
  (``PUT /v1/drops/{id}``); anything else is ``415`` before a route reads the body. A
  body sent without any ``Content-Type`` is read as JSON, as FastAPI does.
- :func:`refuse_unknown_query`: a query parameter the route does not declare is
  ``422`` naming it (:func:`install_query_check` makes it an app-wide dependency).
- :func:`check_price_decimals`: a price may not carry more decimals than its currency
  has minor units (:func:`pricing.money.minor_units`, ISO 4217: JPY 0, USD 2, KWD 3),
  so ``19.999`` USD is refused rather than rounded behind the operator's back. How
  prices then compare is :mod:`pricing.money`'s rule.

The per-field limits (batch sizes, string lengths, numeric ranges, unknown fields) are
constraints on the request schemas in :mod:`service.schemas`; the reliability suite
(``tests/reliability/test_input_limits.py``) checks that every one answers 4xx naming
the field.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

from fastapi import Depends, Request
from fastapi import HTTPException as RequestRefused
from fastapi.security.base import SecurityBase
from starlette.exceptions import HTTPException

from pricing.money import minor_units
from service.middleware import new_request_id
from service.problems import PROBLEM_MEDIA_TYPE, problem_bytes

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_HEADER_BYTES",
    "YAML_TYPES",
    "BodySizeLimitMiddleware",
    "BodyTooLarge",
    "ContentTypeMiddleware",
    "headers_too_large",
    "check_price_decimals",
    "check_query",
    "install_query_check",
    "install_request_limits",
    "refuse_unknown_query",
    "minor_units",
]

ASGIApp = Callable[..., Any]

DEFAULT_MAX_BODY_BYTES = 1 << 20
"""1 MiB: a full batch of 1,000 events is about 250 KiB of JSON."""
DEFAULT_MAX_HEADER_BYTES = 16 * 1024
"""16 KiB of header names and values: a POS request sends well under 1 KiB."""
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
"""Media types of a YAML body (``PUT /v1/drops/{id}`` takes one)."""
_YAML_ROUTES = (("PUT", "/v1/drops/"),)
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


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
    # A problem document like every other error answer (service.problems).
    request_id = (
        next(
            (v.decode("latin-1")[:128] for k, v in scope["headers"] if k == b"x-request-id"),
            None,
        )
        or new_request_id()
    )
    body = problem_bytes(status, error, detail, request_id=request_id)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"x-request-id", request_id.encode("latin-1")),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def headers_too_large(scope: dict[str, Any], limit: int) -> int | None:
    """The size of the request's header names and values when over ``limit``, else None.

    The ASGI server has already read the headers; this bounds what the service does
    with them (no key lookup, no parsing, no logging of megabyte values), and the
    answer closes the connection.
    """
    total = 0
    for name, value in scope["headers"]:
        total += len(name) + len(value)
    return total if total > limit else None


async def send_headers_too_large(scope: dict[str, Any], send: Any, size: int, limit: int) -> None:
    """Answer ``431`` with the shape of every other error."""
    await _send_json(
        scope,
        send,
        431,
        "headers_too_large",
        f"request headers too large: got {size} bytes of header names and values, the "
        f"limit is {limit} bytes (DROPPRICE_MAX_HEADER_BYTES)",
    )


def _media_type(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"content-type":
            return value.decode("latin-1").split(";", 1)[0].strip().lower()
    return None


def _has_body(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name == b"transfer-encoding":
            return True
        if name == b"content-length":
            return value.strip() not in (b"0", b"")
    return False


class ContentTypeMiddleware:
    """Refuse a request body that is not declared JSON (or YAML where taken) with ``415``.

    Args:
        app: the wrapped ASGI app.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]
        media = _media_type(headers)
        if media is None or not _has_body(headers) or _is_json(media):
            await self.app(scope, receive, send)
            return
        yaml_ok = any(
            scope["method"] == method and scope["path"].startswith(prefix)
            for method, prefix in _YAML_ROUTES
        )
        if yaml_ok and media in YAML_TYPES:
            await self.app(scope, receive, send)
            return
        allowed = "application/json" + (" or application/yaml" if yaml_ok else "")
        await _send_json(
            scope,
            send,
            415,
            "unsupported_media_type",
            f"Content-Type must be {allowed}, got {media!r}; nothing was recorded",
        )


def _is_json(media: str) -> bool:
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


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
    app.add_middleware(ContentTypeMiddleware)
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_body_bytes=getattr(settings, "max_body_bytes", DEFAULT_MAX_BODY_BYTES),
    )


class _RouteQuery(NamedTuple):
    names: frozenset[str]
    """Query parameters the route declares (its dependencies' included)."""
    keyed: bool
    """Whether the route needs an API key (then the check runs after the key's)."""


def _route_query(route: Any) -> _RouteQuery | None:
    """What ``route`` declares, or ``None`` for a route that is not a FastAPI endpoint
    (a mount, a static file)."""
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return None
    found = _ROUTE_QUERY.get(id(route))
    if found is None:
        names: set[str] = set()
        keyed = False
        pending = [dependant]
        while pending:
            current = pending.pop()
            names.update(p.alias for p in current.query_params)
            keyed = keyed or isinstance(current.call, SecurityBase)
            pending.extend(current.dependencies)
        found = _ROUTE_QUERY[id(route)] = _RouteQuery(frozenset(names), keyed)
    return found


_ROUTE_QUERY: dict[int, _RouteQuery] = {}


def check_query(request: Request) -> None:
    """Raise ``422`` naming each query parameter the route does not declare.

    A misspelt parameter (``?markte=nyc``) is an error, as an unknown body field is,
    rather than a request silently answered as if it had not been sent. Routes that
    need an API key call this after the key check (:func:`service.deps.require_role`),
    so a caller without a key learns nothing but ``401``.
    """
    declared = _route_query(request.scope.get("route"))
    if declared is None:
        return
    unknown = [name for name in request.query_params if name not in declared.names]
    if unknown:
        allowed = ", ".join(sorted(declared.names)) or "none"
        raise RequestRefused(
            422,
            detail={
                "error": "invalid_request",
                "detail": [
                    {
                        "field": name,
                        "message": f"unknown query parameter; this route takes: {allowed}",
                        "got": request.query_params.get(name),
                    }
                    for name in dict.fromkeys(unknown)
                ],
            },
        )


async def refuse_unknown_query(request: Request) -> None:
    """:func:`check_query` for the routes that need no API key (the others check after
    the key)."""
    declared = _route_query(request.scope.get("route"))
    if declared is not None and not declared.keyed:
        check_query(request)


def install_query_check(app: Any) -> None:
    """Refuse undeclared query parameters on every route added after this call
    (:func:`refuse_unknown_query`, an app-wide dependency; call before the routers)."""
    app.router.dependencies.append(Depends(refuse_unknown_query))
