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

What the read does per request is kept to look-ups: the parsed target of each
path and query, the caller of each key and the body of each served price
(:class:`~service.pricebook.PriceView`) are remembered (bounded); its latency and
source are counted into plain integers (:class:`~service.metrics.ReadCounts`) and
its access line is appended to a buffer (:class:`~service.logs.AccessLog`).

:class:`RequestContext` wraps every other request, outside every other layer: an
``X-Request-ID`` (echoed when the client sent one, else the trace id), W3C trace
context (:mod:`service.tracing`: a ``traceparent`` is answered with one), a latency
observation per route template, the 429 count and one JSON access-log line.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote

import orjson

from pricing.fields import IDENTIFIER_RE
from service.exceptions import UnknownMarket, UnknownSku
from service.logs import AccessLog, request_id_var
from service.problems import PROBLEM_MEDIA_TYPE, problem_bytes
from service.tracing import Otel, TraceIds, format_traceparent, new_trace, response_ids

__all__ = [
    "REQUEST_ID_MAX_LENGTH",
    "REQUEST_ID_PATTERN",
    "PriceFastPath",
    "RequestContext",
    "new_request_id",
    "valid_request_id",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PRICE_PREFIX = "/v1/prices/"
_IDENT = IDENTIFIER_RE
_JSON = (b"content-type", b"application/json")
_CACHE_LIMIT = 8192
"""Entries kept in each of the fast path's look-up tables before it starts afresh."""


REQUEST_ID_MAX_LENGTH = 128
"""Longest ``X-Request-ID`` a client may send (a UUID is 36, a trace id 32)."""
REQUEST_ID_PATTERN = "^[!-~]+$"
"""What an ``X-Request-ID`` is made of: visible ASCII, no spaces (it is echoed in a
header, in error bodies and in the access log as sent). The OpenAPI document states it
with :data:`REQUEST_ID_MAX_LENGTH`; a request with any other value is refused with 422."""
_REQUEST_ID = re.compile(rb"[!-~]{1,%d}" % REQUEST_ID_MAX_LENGTH)


def valid_request_id(value: bytes) -> bool:
    """Whether a sent ``X-Request-ID`` is 1 to 128 visible ASCII characters."""
    return _REQUEST_ID.fullmatch(value) is not None


def new_request_id() -> str:
    """A new request id: a new trace id (what a request without ``X-Request-ID`` gets)."""
    return new_trace(None).trace_id


def _target(path: str, query: bytes) -> tuple[str, str | None] | None:
    """``(sku, market)`` of a price read's path and query, or ``None`` when either is
    not a plain identifier or the query holds anything but ``market=``."""
    sku = path[len(PRICE_PREFIX) :]
    if _IDENT.fullmatch(sku) is None:
        return None
    if not query:
        return sku, None
    name, sep, value = query.partition(b"=")
    if name != b"market" or not sep or b"&" in value:
        return None
    market = unquote(value.decode("latin-1"))
    if _IDENT.fullmatch(market) is None:
        return None
    return sku, market


class PriceFastPath:
    """Serve the happy path of ``GET /v1/prices/{sku}`` without FastAPI.

    Args:
        state: the FastAPI app's ``state`` (``service`` holds the runtime once the
            lifespan has started; the lifespan also sets :attr:`runtime`).
        access_log: where the request's access line goes.
        limiter: the per-key rate limiter of :mod:`service.ratelimit`, if installed.
        otel: OpenTelemetry spans, when enabled (:func:`service.tracing.start_otel`).
        max_header_bytes: a request with larger headers is handed on (the full stack
            answers 431 before looking at the key).
    """

    def __init__(
        self,
        state: Any,
        access_log: AccessLog,
        limiter: Any = None,
        otel: Otel | None = None,
        max_header_bytes: int = 16 * 1024,
    ) -> None:
        self.state = state
        self.access_log = access_log
        self.limiter = limiter
        self.otel = otel
        self.max_header_bytes = max_header_bytes
        self.runtime: Any = None
        self._targets: dict[tuple[str, bytes], tuple[str, str | None]] = {}
        # API key -> (caller, role, the limiter's bucket key); known keys only.
        self._callers: dict[bytes, tuple[Any, str, bytes | None]] = {}
        self._callers_of: Any = None
        self._bodies: dict[Any, tuple[bytes, tuple[bytes, bytes]]] = {}

    def _caller(self, keys: Any, key: bytes | None) -> tuple[Any, str, bytes | None] | None:
        """The caller of an API key, its role and its rate-limit bucket (remembered per
        key set)."""
        if keys is not self._callers_of:
            self._callers, self._callers_of = {}, keys
        if key is None:
            caller = keys.caller(None)
            return (caller, caller.role.value, None) if caller is not None else None
        found = self._callers.get(key)
        if found is None:
            presented = key.decode("latin-1")
            caller = keys.caller(presented)
            if caller is None:
                return None
            limiter = self.limiter
            bucket = limiter.key_digest(presented) if limiter is not None else None
            found = (caller, caller.role.value, bucket)
            if len(self._callers) >= _CACHE_LIMIT:
                self._callers = {}
            self._callers[key] = found
        return found

    def _target(self, path: str, query: bytes) -> tuple[str, str | None] | None:
        """Parse and remember a valid target (odd ones go to the full stack unremembered)."""
        target = _target(path, query)
        if target is not None:
            if len(self._targets) >= _CACHE_LIMIT:
                self._targets = {}
            self._targets[(path, query)] = target
        return target

    async def serve(self, scope: Scope, send: Send) -> bool:
        """Answer the request and return ``True``, or return ``False`` untouched."""
        runtime = self.runtime
        if runtime is None:
            return False
        started = time.perf_counter()
        key: bytes | None = None
        rid: bytes | None = None
        parent: bytes | None = None
        size = 0
        for name, value in scope["headers"]:
            size += len(name) + len(value)
            if name == b"x-api-key":
                key = value
            elif name == b"x-request-id":
                rid = value
            elif name == b"traceparent":
                parent = value
        if size > self.max_header_bytes:
            return False  # 431 from the full stack, before the key is looked at
        if rid is not None and not valid_request_id(rid):
            return False  # 422 from the full stack
        path: str = scope["path"]
        target = self._targets.get((path, scope["query_string"]))
        if target is None:
            target = self._target(path, scope["query_string"])
            if target is None:
                return False
        found = self._callers.get(key) if runtime.keys is self._callers_of else None  # type: ignore[arg-type]
        if found is None:
            found = self._caller(runtime.keys, key)
            if found is None:
                return False
        caller, role, bucket = found
        if bucket is not None and self.limiter.spend(bucket, role) > 0.0:
            return False  # the full stack's rate-limit middleware answers 429
        try:
            view = runtime.book.price(target[0], target[1])
        except (UnknownSku, UnknownMarket):
            return False
        answer = self._bodies.get(view)
        if answer is None:
            answer = self._answer(view)
        body, length = answer
        if self.otel is not None:
            trace_id = await self._send_traced(send, body, length, rid, parent)
        else:
            trace_id, traceparent = response_ids(parent)
            headers = [_JSON, length, (b"x-request-id", rid if rid is not None else trace_id)]
            if traceparent is not None:
                headers.append((b"traceparent", traceparent))
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        elapsed = time.perf_counter() - started
        runtime.metrics.reads.observe(elapsed, view.source)
        log = self.access_log
        if log.enabled and (log.sample >= 1.0 or random.random() < log.sample):
            log.write_read(time.time(), rid, path, elapsed, caller.key_id, trace_id)
        return True

    def _answer(self, view: Any) -> tuple[bytes, tuple[bytes, bytes]]:
        """The body of a served price and its ``content-length`` header (remembered)."""
        body = orjson.dumps(view._asdict())
        answer = body, (b"content-length", b"%d" % len(body))
        if len(self._bodies) >= _CACHE_LIMIT:
            self._bodies = {}
        self._bodies[view] = answer
        return answer

    async def _send_traced(
        self,
        send: Send,
        body: bytes,
        length: tuple[bytes, bytes],
        rid: bytes | None,
        parent: bytes | None,
    ) -> bytes:
        """Send the answer inside an OpenTelemetry span; returns the trace id."""
        assert self.otel is not None
        with self.otel.span(
            "GET /v1/prices/{sku}", new_trace(parent), {"http.route": "/v1/prices/{sku}"}
        ) as trace:
            trace_id = trace.trace_id.encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        _JSON,
                        length,
                        (b"x-request-id", rid if rid is not None else trace_id),
                        (b"traceparent", format_traceparent(trace)),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
        return trace_id


class RequestContext:
    """Request id, trace context, latency metric, 429 count and access log for every
    request the fast path did not answer (it wraps the whole stack).

    Args:
        state: the FastAPI app's ``state`` (``metrics``).
        access_log: where the request's access line goes.
        otel: OpenTelemetry spans, when enabled.
    """

    def __init__(self, state: Any, access_log: AccessLog, otel: Otel | None = None) -> None:
        self.state = state
        self.access_log = access_log
        self.otel = otel

    async def __call__(self, scope: Scope, receive: Receive, send: Send, app: ASGIApp) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        rid: str | None = None
        parent: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                if valid_request_id(value):
                    rid = value.decode("ascii")
                else:
                    app = _refuse_request_id(value)
            elif name == b"traceparent":
                parent = value
        trace = new_trace(parent)
        if rid is None:
            # Inner layers that answer by themselves (413, 429) echo the header: give
            # them this request's id.
            rid = trace.trace_id
            scope["headers"] = [*scope["headers"], (b"x-request-id", rid.encode())]
        token = request_id_var.set(rid)
        status = 500

        async def send_with_context(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"x-request-id" for name, _ in headers):
                    headers.append((b"x-request-id", rid.encode("latin-1")))
                if parent is not None or self.otel is not None:
                    headers.append((b"traceparent", format_traceparent(trace)))
                message["headers"] = headers
            await send(message)

        try:
            if self.otel is not None:
                span_name = f"{scope['method']} {scope['path']}"
                with self.otel.span(span_name, trace, {"http.method": scope["method"]}) as trace:
                    await app(scope, receive, send_with_context)
            else:
                await app(scope, receive, send_with_context)
        finally:
            self._record(scope, status, time.perf_counter() - started, rid, trace)
            request_id_var.reset(token)

    def _record(self, scope: Scope, status: int, elapsed: float, rid: str, trace: TraceIds) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        metrics = getattr(self.state, "metrics", None)
        if metrics is not None:
            metrics.request_duration.labels(template, scope["method"], str(status)).observe(elapsed)
            if status == 429:
                metrics.rate_limited.inc()
        log = self.access_log
        if log.enabled and (status >= 400 or log.sampled()):
            caller = scope.get("state", {}).get("caller")
            log.write(
                {
                    "request_id": rid,
                    "method": scope["method"],
                    "path": scope["path"],
                    "route": template,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 3),
                    "key_id": getattr(caller, "key_id", None),
                    "trace_id": trace.trace_id,
                }
            )


def _refuse_request_id(value: bytes) -> ASGIApp:
    """An ASGI app answering 422 for an ``X-Request-ID`` that is not 1 to 128 visible
    ASCII characters (the answer carries a new id instead)."""

    async def refuse(scope: Scope, receive: Receive, send: Send) -> None:
        problem = {
            "field": "X-Request-ID",
            "message": f"must be 1 to {REQUEST_ID_MAX_LENGTH} visible ASCII characters (no spaces)",
            "got": value.decode("latin-1"),
        }
        body = problem_bytes(422, "invalid_request", [problem], request_id=request_id_var.get())
        headers = [
            (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
            (b"content-length", b"%d" % len(body)),
        ]
        await send({"type": "http.response.start", "status": 422, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return refuse
