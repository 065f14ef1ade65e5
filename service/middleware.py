"""Pure-ASGI layers of the service: the price-read fast path and request context.

:class:`PriceFastPath` answers ``GET /v1/prices/{sku}`` for an authorised caller
and a known SKU straight from the in-process :class:`~service.pricebook.PriceBook`
with orjson. :class:`service.app.DroppriceAPI` calls it before anything else, so
the read skips FastAPI's and Starlette's middleware stack, routing, dependency
injection and response validation (see ``benchmarks/bench_service.py``). It
applies the same per-key rate limit as :mod:`service.ratelimit` when one is
installed. Anything unusual (no or bad key, unknown SKU or market, an odd query,
a key over its rate, the service not started) is handed to the full stack and the
FastAPI route of the same path, which gives the documented answer; that route is
also what the OpenAPI schema shows, so the two cannot disagree on the contract.

:class:`RequestContextMiddleware` gives every other request an ``X-Request-ID``
(echoed when the client sent one), a latency observation per route template and
one JSON access-log line.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote

import orjson

from service.exceptions import UnknownMarket, UnknownSku
from service.logs import AccessLog, request_id_var

__all__ = ["PriceFastPath", "RequestContextMiddleware", "new_request_id"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PRICE_PREFIX = "/v1/prices/"
_IDENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_ids = itertools.count(1)
_PID = f"{os.getpid():x}-{int(time.time()) & 0xFFFFFF:x}"


def new_request_id() -> str:
    """A process-unique request id (cheaper than a UUID on the hot path)."""
    return f"{_PID}-{next(_ids):x}"


def _request_id(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == b"x-request-id":
            return value.decode("latin-1")[:128]
    return new_request_id()


class PriceFastPath:
    """Serve the happy path of ``GET /v1/prices/{sku}`` without FastAPI.

    Args:
        state: the FastAPI app's ``state`` (``service`` holds the runtime once the
            lifespan has started).
        access_log: where the request's access line goes.
        limiter: the per-key rate limiter of :mod:`service.ratelimit`, if installed.
    """

    def __init__(self, state: Any, access_log: AccessLog, limiter: Any = None) -> None:
        self.state = state
        self.access_log = access_log
        self.limiter = limiter

    async def serve(self, scope: Scope, send: Send) -> bool:
        """Answer the request and return ``True``, or return ``False`` untouched."""
        runtime = getattr(self.state, "service", None)
        if runtime is None:
            return False
        started = time.perf_counter()
        sku = scope["path"][len(PRICE_PREFIX) :]
        key: bytes | None = None
        rid: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"x-api-key":
                key = value
            elif name == b"x-request-id":
                rid = value
        market: str | None = None
        query: bytes = scope["query_string"]
        if query:
            name_, sep, value_ = query.partition(b"=")
            if name_ != b"market" or not sep or b"&" in value_:
                return False
            market = unquote(value_.decode("latin-1"))
            if _IDENT.fullmatch(market) is None:
                return False
        if _IDENT.fullmatch(sku) is None:
            return False
        presented = key.decode("latin-1") if key is not None else None
        caller = runtime.keys.caller(presented)
        if caller is None:
            return False
        if (
            self.limiter is not None
            and presented is not None
            and self.limiter.check(presented, caller.role.value) > 0.0
        ):
            return False  # the full stack's rate-limit middleware answers 429
        try:
            view = runtime.book.price(sku, market)
        except (UnknownSku, UnknownMarket):
            return False
        body = orjson.dumps(view._asdict())
        request_id = rid[:128] if rid is not None else new_request_id().encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-request-id", request_id),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
        metrics = runtime.metrics
        elapsed = time.perf_counter() - started
        metrics.price_read_ok.observe(elapsed)
        metrics.source_children[view.source].inc()
        if self.access_log.enabled:
            self.access_log.write(
                {
                    "request_id": request_id.decode("latin-1"),
                    "method": "GET",
                    "path": scope["path"],
                    "route": "/v1/prices/{sku}",
                    "status": 200,
                    "duration_ms": round(elapsed * 1000, 3),
                    "key_id": caller.key_id,
                }
            )
        return True


class RequestContextMiddleware:
    """Request id, latency metric and access log for every HTTP request.

    Args:
        app: the inner ASGI stack.
        service_app: the FastAPI app whose ``state`` holds ``metrics`` and ``access_log``.
    """

    def __init__(self, app: ASGIApp, service_app: Any) -> None:
        self.app = app
        self.state = service_app.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope["headers"])
        token = request_id_var.set(request_id)
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            metrics = getattr(self.state, "metrics", None)
            if metrics is not None:
                metrics.request_seconds.labels(template, scope["method"], str(status)).observe(
                    elapsed
                )
            access_log: AccessLog | None = getattr(self.state, "access_log", None)
            if access_log is not None and access_log.enabled:
                caller = scope.get("state", {}).get("caller")
                access_log.write(
                    {
                        "request_id": request_id,
                        "method": scope["method"],
                        "path": scope["path"],
                        "route": template,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 3),
                        "key_id": getattr(caller, "key_id", None),
                    }
                )
            request_id_var.reset(token)
