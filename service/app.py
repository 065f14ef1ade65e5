"""The price service's ASGI app: ``create_app(settings)``.

The lifespan owns the process's resources (:class:`~service.runtime.ServiceRuntime`:
the Redis client, the configs, the in-process price book and its sync thread) and
closes them on shutdown. Two pure-ASGI layers sit in front of FastAPI
(:mod:`service.middleware`): the price-read fast path and the request context
(request id, metrics, JSON access log). Route modules live in ``service/routes/``
and are registered in :func:`include_routers`, one line each.

Run it with ``dropprice serve`` or any ASGI server::

    uvicorn --factory service.app:create_app
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from service.limits import (
    DEFAULT_MAX_HEADER_BYTES,
    headers_too_large,
    install_query_check,
    install_request_limits,
    send_headers_too_large,
)
from service.logs import AccessLog, configure_logging
from service.metrics import Metrics, mark_process_dead
from service.middleware import PRICE_PREFIX, PriceFastPath, RequestContext
from service.openapi import build_openapi
from service.problems import install_error_handlers
from service.runtime import ServiceRuntime, load_bundle
from service.settings import Settings
from service.tracing import start_otel

__all__ = ["create_app", "include_routers"]

log = logging.getLogger("dropprice.app")


class DroppriceAPI(FastAPI):
    """FastAPI with the price-read fast path in front of its whole stack.

    ``GET /v1/prices/{sku}`` is offered to :class:`~service.middleware.PriceFastPath`
    before Starlette's middleware stack runs; everything else (and every read the
    fast path hands back) goes through FastAPI as usual, inside the request context
    (:class:`~service.middleware.RequestContext`: request id, trace, metrics, access
    log), which thus also sees the answers of the outer limits (413, 415, 429).
    """

    fast_path: PriceFastPath | None = None
    context: RequestContext | None = None
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            fast = self.fast_path
            if (
                fast is not None
                and scope["method"] == "GET"
                and scope["path"].startswith(PRICE_PREFIX)
                and await fast.serve(scope, send)  # hands on oversized headers unread
            ):
                return
            # Before the key check and every log line (service.limits).
            size = headers_too_large(scope, self.max_header_bytes)
            if size is not None:
                await send_headers_too_large(scope, send, size, self.max_header_bytes)
                return
        context = self.context
        if context is not None:
            await context(scope, receive, send, super().__call__)
        else:
            await super().__call__(scope, receive, send)


def _installed_rate_limiter(app: FastAPI) -> Any:
    """The token-bucket limiter of the rate-limit middleware, if one is installed."""
    for middleware in app.user_middleware:
        limiter = middleware.kwargs.get("limiter")
        if limiter is not None:
            return limiter
    return None


def include_routers(app: FastAPI) -> None:
    """Register every route module (one ``include_router`` line each)."""
    from service.routes import events, health, intensity, operator, prices

    app.include_router(health.router)
    app.include_router(prices.router)
    app.include_router(events.router)
    app.include_router(intensity.router)
    app.include_router(operator.router)
    from service.routes import admin

    app.include_router(admin.router)
    from service.routes import signals

    app.include_router(signals.router)
    from service.routes import deadletters

    app.include_router(deadletters.router)
    from service.routes import console

    app.include_router(console.router)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service app.

    Args:
        settings: defaults to :class:`Settings` read from ``DROPPRICE_*`` variables.

    Raises:
        ConfigError: the operator configs are invalid (raised on startup).
    """
    settings = settings or Settings()
    configure_logging(settings.log_level)
    if settings.auth_disabled:
        log.warning("authentication is DISABLED (DROPPRICE_AUTH_DISABLED=true): development only")
    metrics = Metrics()
    access_log = AccessLog(settings.access_log, sample=settings.access_log_sample)
    access_log.on_flush.append(metrics.fold)  # the price reads' counts, every interval
    otel = start_otel(settings.otel_enabled)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        bundle = load_bundle(settings.config_dir)
        runtime = ServiceRuntime(settings, metrics, bundle)
        access_log.start()
        runtime.start()
        app.state.service = runtime
        fast = getattr(app, "fast_path", None)
        if fast is not None:
            fast.runtime = runtime
        # Everything loaded so far lives as long as the process: keep it out of the
        # collector's full passes (over 200,000 objects: 100 ms and more each, a
        # pause every request in flight would wait through).
        gc.collect()
        gc.freeze()
        log.info(
            "service started",
            extra={"redis": settings.redis_url.split("@")[-1], "skus": len(runtime.book.catalog)},
        )
        try:
            yield
        finally:
            if fast is not None:
                fast.runtime = None
            await runtime.aclose()
            access_log.close()
            mark_process_dead()  # with several workers: retire this one's live gauges
            gc.unfreeze()
            del app.state.service

    app = DroppriceAPI(
        title="dropprice",
        version="0.1.0",
        description="Inventory-aware prices for limited drops, served in about a millisecond.",
        lifespan=lifespan,
        docs_url="/docs",
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.access_log = access_log
    install_error_handlers(app, settings)
    install_query_check(app)
    include_routers(app)
    app.context = RequestContext(app.state, access_log, otel)
    # Outermost of all: body-size limit, then per-key rate limiting (service.limits).
    install_request_limits(app, settings)
    # The fast path runs in front of all of it (DroppriceAPI.__call__), with the same
    # per-key rate limit as the middleware when one is installed.
    app.fast_path = PriceFastPath(
        app.state, access_log, _installed_rate_limiter(app), otel, settings.max_header_bytes
    )
    app.max_header_bytes = settings.max_header_bytes
    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]
    return app
