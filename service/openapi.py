"""The service's OpenAPI document: what the server enforces, stated in the schema.

FastAPI derives most of it from the routes and the pydantic models (patterns, ranges,
list sizes, the event union discriminated by ``type``). :func:`build_openapi` adds
what the routes cannot say themselves:

- the bodies routes read themselves, by reference: ``PriceBatchIn``, ``DropConfig``;
- the event batch body of ``POST /v1/events``, which the route validates event by
  event (each event is accepted or ``rejected`` on its own, documented as such);
- every error answer as ``application/problem+json`` (:mod:`service.problems`): the
  errors any route can give (401/403/429 where a key is needed, 404 under a path
  parameter, 413/415 with a body, 431 everywhere) where a route did not declare them;
- the ``X-Request-ID`` header on every operation, sent (optional) and answered;
- an example for every request body and answer that has none in its model.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from service.config.models import DropConfig
from service.middleware import REQUEST_ID_MAX_LENGTH, REQUEST_ID_PATTERN
from service.problems import PROBLEM_MEDIA_TYPE
from service.schemas import ErrorBody, EventBatchIn, PriceBatchIn

__all__ = ["build_openapi"]

_REF = "#/components/schemas/{model}"
_PROBLEM = {"$ref": "#/components/schemas/ErrorBody"}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}}
_REQUEST_ID_HEADER = {
    "description": "The request's id: the one sent in X-Request-ID, else a new one. Error "
    "bodies carry it as request_id; the access log names it.",
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": REQUEST_ID_MAX_LENGTH,
        "pattern": REQUEST_ID_PATTERN,
    },
}
_REQUEST_ID_PARAMETER = {
    "name": "X-Request-ID",
    "in": "header",
    "required": False,
    "description": "Your id for this request (a new one is made when absent); answered "
    "in the X-Request-ID header and in error bodies, and logged. 1 to "
    f"{REQUEST_ID_MAX_LENGTH} visible ASCII characters (no spaces); any other value is "
    "refused with 422 naming X-Request-ID.",
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": REQUEST_ID_MAX_LENGTH,
        "pattern": REQUEST_ID_PATTERN,
    },
}
_PROBLEM_EXAMPLE = {
    "type": "urn:dropprice:problem:invalid_request",
    "title": "Unprocessable Content",
    "status": 422,
    "detail": "events[0].quantity: Input should be a valid integer",
    "code": "invalid_request",
    "request_id": "2f1c6a0e9b7d4c55",
    "errors": [
        {"field": "events[0].quantity", "message": "Input should be a valid integer", "got": True}
    ],
}


def _add_components(components: dict[str, Any], model: Any, name: str) -> dict[str, Any]:
    schema: dict[str, Any] = model.model_json_schema(ref_template=_REF)
    for sub_name, sub in schema.pop("$defs", {}).items():
        components.setdefault(sub_name, sub)
    components[name] = schema
    return schema


def _event_batch_body(components: dict[str, Any]) -> dict[str, Any]:
    """The body of ``POST /v1/events``: a list of 1 to 1,000 items, each answered on its
    own. An item that is an :class:`~service.schemas.Event` is recorded (or refused for
    stock, role or price reasons); any other item is answered ``rejected`` in its result,
    naming the field, while the rest of the batch is recorded: the outcome is per event,
    so the body schema bounds the batch and documents the event, it does not refuse it."""
    batch = _add_components(components, EventBatchIn, "EventBatchIn")
    events = batch["properties"]["events"]
    components["Event"] = events["items"]
    body = {k: v for k, v in batch.items() if k not in {"properties", "title"}}
    body["title"] = "EventBatchRequest"
    body["properties"] = {
        "events": {
            **{k: v for k, v in events.items() if k != "items"},
            "description": "Each item is validated on its own: an Event is recorded; "
            "anything else gets status 'rejected' in its result, with the field named.",
            "items": {
                "anyOf": [
                    {"$ref": "#/components/schemas/Event"},
                    {"description": "Not an Event: answered 'rejected' in its result."},
                ]
            },
        }
    }
    components["EventBatchRequest"] = body
    return {"$ref": "#/components/schemas/EventBatchRequest"}


def _problem_content(example: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"schema": _PROBLEM}
    if example is not None:
        body["example"] = example
    return {PROBLEM_MEDIA_TYPE: body}


def _errors_as_problems(operation: dict[str, Any]) -> None:
    """Every 4xx/5xx answer of the operation is a problem document."""
    for code, response in operation.get("responses", {}).items():
        if code[:1] not in {"4", "5"}:
            continue
        example = _PROBLEM_EXAMPLE if code == "422" else None
        response["content"] = _problem_content(example)


def _shared_errors(path: str, operation: dict[str, Any]) -> None:
    """Declare the errors any route can answer, where a route did not already.

    Auth (401/403) and the per-key rate limit (429 + ``Retry-After``) apply to every
    route with a security requirement, the body-size and body-type limits (413, 415) to
    every route with a body, the header limit (431) to all, a path naming something that
    does not exist is a 404, and a malformed query or path parameter a 422.
    """
    responses = operation.setdefault("responses", {})
    wanted: list[tuple[str, str, dict[str, Any] | None]] = []
    if operation.get("security"):
        wanted += [
            ("401", "Missing or unknown API key.", None),
            ("403", "This API key's role may not call this route.", None),
            ("429", "Rate limit of this API key exceeded.", _RETRY_AFTER),
        ]
    if "{" in path:
        wanted.append(("404", "Nothing of that name.", None))
    if "requestBody" in operation:
        wanted.append(("413", "Request body over the size limit.", None))
        wanted.append(("415", "Request body not declared application/json.", None))
    if "requestBody" in operation or operation.get("parameters"):
        wanted.append(("422", "The request is invalid; errors[] names each field.", None))
    wanted.append(("431", "Request header fields over the size limit.", None))
    for code, description, headers in wanted:
        if code not in responses:
            responses[code] = {"description": description}
            if headers:
                responses[code]["headers"] = headers


def _plain_parameters(operation: dict[str, Any]) -> None:
    """An optional parameter is one with ``required: false``: drop the ``null`` branch
    pydantic writes for ``str | None`` (a query string or header cannot be null)."""
    for parameter in operation.get("parameters", []):
        schema = parameter.get("schema", {})
        branches = schema.get("anyOf")
        if not branches:
            continue
        kept = [b for b in branches if b.get("type") != "null"]
        if len(kept) == 1 and len(kept) < len(branches):
            schema.pop("anyOf")
            parameter["schema"] = {**kept[0], **schema}


def _request_id_parameter(operation: dict[str, Any]) -> None:
    """``X-Request-ID`` may be sent to every operation (so every one may answer 422)."""
    parameters = operation.setdefault("parameters", [])
    if not any(p.get("name", "").lower() == "x-request-id" for p in parameters):
        parameters.append(dict(_REQUEST_ID_PARAMETER))


def _request_id(operation: dict[str, Any]) -> None:
    """``X-Request-ID`` answered on every response."""
    for response in operation.get("responses", {}).values():
        response.setdefault("headers", {})["X-Request-ID"] = _REQUEST_ID_HEADER


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document of ``app`` (built once, then cached on the app)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    events_body = _event_batch_body(components)
    _add_components(components, ErrorBody, "ErrorBody")
    _add_components(components, PriceBatchIn, "PriceBatchIn")
    _add_components(components, DropConfig, "DropConfig")
    post_events = schema.get("paths", {}).get("/v1/events", {}).get("post")
    if post_events is not None:
        post_events["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": events_body}},
        }
    # FastAPI's default 422 shape is never sent: the handlers answer problems.
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    for path, item in schema.get("paths", {}).items():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            _request_id_parameter(operation)
            _shared_errors(path, operation)
            _errors_as_problems(operation)
            _plain_parameters(operation)
            _request_id(operation)
    app.openapi_schema = schema
    return schema
