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

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.exceptions import StoreUnavailable
from service.limits import (
    DEFAULT_MAX_HEADER_BYTES,
    headers_too_large,
    install_request_limits,
    send_headers_too_large,
)
from service.logs import AccessLog, configure_logging, request_id_var
from service.metrics import Metrics
from service.middleware import PRICE_PREFIX, PriceFastPath, RequestContextMiddleware
from service.runtime import ServiceRuntime, load_bundle
from service.schemas import ErrorBody, EventBatchIn
from service.settings import Settings

__all__ = ["create_app", "include_routers"]

log = logging.getLogger("dropprice.app")


class JsonError(Response):
    """An error body serialised with orjson."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, default=str)


class DroppriceAPI(FastAPI):
    """FastAPI with the price-read fast path in front of its whole stack.

    ``GET /v1/prices/{sku}`` is offered to :class:`~service.middleware.PriceFastPath`
    before Starlette's middleware stack runs; everything else (and every read the
    fast path hands back) goes through FastAPI as usual.
    """

    fast_path: PriceFastPath | None = None
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            # Before the fast path, the key check and every log line (service.limits).
            size = headers_too_large(scope, self.max_header_bytes)
            if size is not None:
                await send_headers_too_large(scope, send, size, self.max_header_bytes)
                return
        fast = self.fast_path
        if (
            fast is not None
            and scope["type"] == "http"
            and scope["method"] == "GET"
            and scope["path"].startswith(PRICE_PREFIX)
            and await fast.serve(scope, send)
        ):
            return
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


def _error(
    status: int, code: str, detail: Any, headers: Mapping[str, str] | None = None
) -> JsonError:
    return JsonError(
        {"error": code, "detail": detail, "request_id": request_id_var.get()},
        status_code=status,
        headers=headers,
    )


def _echo(got: Any) -> Any:
    """The offending input as it can be echoed back: scalars only, JSON-safe, short."""
    if isinstance(got, int) and not isinstance(got, bool) and not -(2**63) <= got < 2**64:
        return str(got)[:40] + ("..." if len(str(got)) > 40 else "")
    if isinstance(got, str) and len(got) > 200:
        return got[:200] + "..."
    return got if isinstance(got, str | int | float | bool) or got is None else None


def _field_errors(errors: list[Any]) -> list[dict[str, Any]]:
    out = []
    for err in errors:
        loc = [p for p in err.get("loc", ()) if p not in {"body", "query", "path", "header"}]
        field = ""
        for part in loc:
            field += f"[{part}]" if isinstance(part, int) else (f".{part}" if field else str(part))
        if not field and err.get("loc"):
            field = str(err["loc"][0])
        out.append(
            {
                "field": field or "body",
                "message": err.get("msg", "invalid"),
                "got": _echo(err.get("input")),
            }
        )
    return out


def _install_error_handlers(app: FastAPI, settings: Settings) -> None:
    # Starlette's class, so FastAPI's own refusals (a body it cannot decode) get the same shape.
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JsonError:
        detail = exc.detail
        if exc.status_code == 400 and detail == "There was an error parsing the body":
            # Not UTF-8 or not JSON: the documented 422, naming the body.
            problem = {"field": "body", "message": "body is not valid UTF-8 JSON", "got": None}
            return _error(422, "invalid_json", [problem])
        if isinstance(detail, dict) and "error" in detail:
            return _error(exc.status_code, detail["error"], detail.get("detail"), exc.headers)
        code = {
            401: "unauthorized",
            403: "forbidden",
            404: "not_found",
            405: "method_not_allowed",
            # A chunked body passing the limit while a route reads it (service.limits).
            413: "body_too_large",
        }
        return _error(exc.status_code, code.get(exc.status_code, "error"), detail, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JsonError:
        return _error(422, "invalid_request", _field_errors(list(exc.errors())))

    @app.exception_handler(ValidationError)
    async def model_error(request: Request, exc: ValidationError) -> JsonError:
        return _error(422, "invalid_request", _field_errors(list(exc.errors())))

    @app.exception_handler(StoreUnavailable)
    async def store_down(request: Request, exc: StoreUnavailable) -> JsonError:
        log.warning("redis unavailable on a request", extra={"error": str(exc)})
        runtime = getattr(request.app.state, "service", None)
        if runtime is not None:
            runtime.sync.mark_unavailable(str(exc))
        return _error(
            503,
            "store_unavailable",
            f"Redis is unreachable; nothing was changed that a retry with the same "
            f"event ids would not complete. Retry after {settings.retry_after_s}s. ({exc})",
            {"Retry-After": str(settings.retry_after_s)},
        )


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    extra = EventBatchIn.model_json_schema(ref_template="#/components/schemas/{model}")
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name, sub in extra.pop("$defs", {}).items():
        components.setdefault(name, sub)
    components["EventBatchIn"] = extra
    # Every 422 is answered by the handlers above with an ErrorBody, also on routes that
    # did not declare one: document that instead of FastAPI's default shape.
    error_body = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in error_body.pop("$defs", {}).items():
        components.setdefault(name, sub)
    components.setdefault("ErrorBody", error_body)
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            response = operation.get("responses", {}).get("422", {})
            body = response.get("content", {}).get("application/json", {})
            if body.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
                body["schema"] = {"$ref": "#/components/schemas/ErrorBody"}
    _document_shared_errors(schema)
    app.openapi_schema = schema
    return schema


def _document_shared_errors(schema: dict[str, Any]) -> None:
    """Declare the errors any route can answer, where a route did not already.

    Auth (401/403) and the per-key rate limit (429 + ``Retry-After``) apply to every
    route with a security requirement, the body-size limit (413) to every route with
    a body, and a path naming something that does not exist is a 404.
    """
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    retry_after = {
        "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}
    }
    for path, item in schema.get("paths", {}).items():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            responses = operation.setdefault("responses", {})
            wanted: list[tuple[str, str, dict[str, Any] | None]] = []
            if operation.get("security"):
                wanted += [
                    ("401", "Missing or unknown API key.", None),
                    ("403", "This API key's role may not call this route.", None),
                    ("429", "Rate limit of this API key exceeded.", retry_after),
                ]
            if "{" in path:
                wanted.append(("404", "Nothing of that name.", None))
            if "requestBody" in operation:
                wanted.append(("413", "Request body over the size limit.", None))
                wanted.append(("415", "Request body not declared application/json.", None))
            wanted.append(("431", "Request header fields over the size limit.", None))
            for code, description, headers in wanted:
                if code not in responses:
                    responses[code] = {"description": description, "content": error}
                    if headers:
                        responses[code]["headers"] = headers


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
    access_log = AccessLog(settings.access_log)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        bundle = load_bundle(settings.config_dir)
        runtime = ServiceRuntime(settings, metrics, bundle)
        access_log.start()
        runtime.start()
        app.state.service = runtime
        log.info(
            "service started",
            extra={"redis": settings.redis_url.split("@")[-1], "skus": len(runtime.book.catalog)},
        )
        try:
            yield
        finally:
            runtime.close()
            access_log.close()
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
    _install_error_handlers(app, settings)
    include_routers(app)
    app.add_middleware(RequestContextMiddleware, service_app=app)
    # Outermost of all: body-size limit, then per-key rate limiting (service.limits).
    install_request_limits(app, settings)
    # The fast path runs in front of all of it (DroppriceAPI.__call__), with the same
    # per-key rate limit as the middleware when one is installed.
    app.fast_path = PriceFastPath(app.state, access_log, _installed_rate_limiter(app))
    app.max_header_bytes = settings.max_header_bytes
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app
