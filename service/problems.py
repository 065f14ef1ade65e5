"""Error answers of the HTTP API as RFC 7807 problem details (``application/problem+json``).

Every error the service sends, from a route, from FastAPI's own request validation or
from the pure-ASGI layers in front of it (413, 415, 429, 431), has one shape::

    {
      "type": "urn:dropprice:problem:invalid_request",
      "title": "Unprocessable Content",
      "status": 422,
      "detail": "events[0].quantity: Input should be a valid integer",
      "code": "invalid_request",
      "request_id": "9b1f...",
      "errors": [{"field": "events[0].quantity", "message": "...", "got": true}]
    }

``detail`` is always one readable string; ``code`` is the machine-readable error code
(``unknown_sku``, ``store_unavailable``, ...); ``request_id`` equals the answer's
``X-Request-ID`` header; ``errors`` lists each field problem of a refused request
(empty for errors that are not about fields).

Routes raise ``HTTPException(status, detail={"error": code, "detail": text or
[field problems]})``; :func:`install_error_handlers` turns that, pydantic's validation
errors and :class:`~service.exceptions.StoreUnavailable` into problem answers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from pricing.events import EVENT_TYPES
from service.exceptions import StoreUnavailable
from service.logs import request_id_var
from service.settings import Settings

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "ProblemResponse",
    "field_errors",
    "install_error_handlers",
    "problem",
    "problem_bytes",
]

log = logging.getLogger("dropprice.app")

PROBLEM_MEDIA_TYPE = "application/problem+json"

_DEFAULT_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    # A chunked body passing the limit while a route reads it (service.limits).
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    431: "headers_too_large",
}
_LOCATIONS = frozenset({"body", "query", "path", "header", "cookie"})
_UNION_TAGS = frozenset(EVENT_TYPES)
"""pydantic names the member of a tagged union in an error's location
(``events.0.sale.quantity``); the field path leaves it out."""


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _echo(got: Any) -> Any:
    """The offending input as it can be echoed back: scalars only, JSON-safe, short."""
    if isinstance(got, int) and not isinstance(got, bool) and not -(2**63) <= got < 2**64:
        text = str(got)
        return text[:40] + ("..." if len(text) > 40 else "")
    if isinstance(got, str) and len(got) > 200:
        return got[:200] + "..."
    return got if isinstance(got, str | int | float | bool) or got is None else None


def _field_problem(item: Any) -> dict[str, Any]:
    """One ``{field, message, got}`` entry (plus ``line``/``text`` when a config error
    knows them) from a route's own problem dict or a bare message."""
    if not isinstance(item, Mapping):
        return {"field": "body", "message": str(item), "got": None}
    out = {
        "field": str(item.get("field") or "body"),
        "message": str(item.get("message") or item.get("text") or "invalid"),
        "got": _echo(item.get("got")),
    }
    for extra in ("line", "text"):
        if item.get(extra) is not None:
            out[extra] = item[extra]
    return out


def field_errors(errors: Iterable[Mapping[str, Any]], prefix: str = "") -> list[dict[str, Any]]:
    """``[{"field": "events[3].quantity", "message": ..., "got": ...}]`` from pydantic's
    error list (``ValidationError.errors()`` or FastAPI's ``RequestValidationError``).

    Args:
        errors: pydantic error dicts (``loc``, ``msg``, ``input``).
        prefix: path of the validated value in the request (``"events[3]"``).
    """
    out = []
    for err in errors:
        path = prefix
        for part in err.get("loc", ()):
            if isinstance(part, int):
                path += f"[{part}]"
            elif part in _LOCATIONS and not path or part in _UNION_TAGS:
                continue
            else:
                path += f".{part}" if path else str(part)
        out.append(
            {
                "field": path or "body",
                "message": str(err.get("msg", "invalid")).removeprefix("Value error, "),
                "got": _echo(err.get("input")),
            }
        )
    return out


def _summary(errors: Sequence[Mapping[str, Any]]) -> str:
    """The field problems as one line: ``"a: msg; b: msg"`` (at most 10, then a count)."""
    parts = [f"{e['field']}: {e['message']}" for e in errors[:10]]
    if len(errors) > 10:
        parts.append(f"and {len(errors) - 10} more")
    return "; ".join(parts) or "invalid request"


def problem(
    status: int,
    code: str,
    detail: Any,
    *,
    request_id: str | None = None,
    errors: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """The problem-details body of an error answer.

    Args:
        status: HTTP status code.
        code: machine-readable error code (``unknown_sku``).
        detail: a string, or a list of field problems (then ``errors`` is that list
            and ``detail`` their summary).
        request_id: the request's id (default: the one of the request being served).
        errors: field problems, when ``detail`` is a string.
    """
    if isinstance(detail, list | tuple):
        errors = [_field_problem(d) for d in detail] if errors is None else list(errors)
        detail = _summary(errors)
    elif detail is None:
        detail = _title(status)
    elif not isinstance(detail, str):
        detail = str(detail)
    return {
        "type": f"urn:dropprice:problem:{code}",
        "title": _title(status),
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": request_id if request_id is not None else request_id_var.get(),
        "errors": [_field_problem(e) for e in errors or ()],
    }


def problem_bytes(status: int, code: str, detail: Any, *, request_id: str) -> bytes:
    """:func:`problem` serialised, for the ASGI layers that answer before FastAPI."""
    return orjson.dumps(problem(status, code, detail, request_id=request_id))


class ProblemResponse(Response):
    """An ``application/problem+json`` answer serialised with orjson."""

    media_type = PROBLEM_MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, default=str)


def problem_response(
    status: int,
    code: str,
    detail: Any,
    headers: Mapping[str, str] | None = None,
) -> ProblemResponse:
    """A problem answer for the request being served."""
    return ProblemResponse(problem(status, code, detail), status_code=status, headers=headers)


def install_error_handlers(app: FastAPI, settings: Settings) -> None:
    """Answer every error raised in the app as a problem (see the module docstring)."""

    # Starlette's class, so FastAPI's own refusals (a body it cannot decode) get the same shape.
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> ProblemResponse:
        detail = exc.detail
        if exc.status_code == 400 and detail == "There was an error parsing the body":
            # Not UTF-8 or not JSON: the documented 422, naming the body.
            bad = {"field": "body", "message": "body is not valid UTF-8 JSON", "got": None}
            return problem_response(422, "invalid_json", [bad])
        if isinstance(detail, Mapping) and "error" in detail:
            return problem_response(
                exc.status_code, str(detail["error"]), detail.get("detail"), exc.headers
            )
        code = _DEFAULT_CODES.get(exc.status_code, "error")
        return problem_response(exc.status_code, code, detail, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> ProblemResponse:
        return problem_response(422, "invalid_request", field_errors(exc.errors()))

    @app.exception_handler(ValidationError)
    async def model_error(request: Request, exc: ValidationError) -> ProblemResponse:
        return problem_response(422, "invalid_request", field_errors(exc.errors()))

    @app.exception_handler(StoreUnavailable)
    async def store_down(request: Request, exc: StoreUnavailable) -> ProblemResponse:
        log.warning("redis unavailable on a request", extra={"error": str(exc)})
        runtime = getattr(request.app.state, "service", None)
        if runtime is not None:
            runtime.sync.mark_unavailable(str(exc))
        return problem_response(
            503,
            "store_unavailable",
            f"Redis is unreachable; nothing was changed that a retry with the same "
            f"event ids would not complete. Retry after {settings.retry_after_s}s. ({exc})",
            {"Retry-After": str(settings.retry_after_s)},
        )
