"""Every error answer is an RFC 7807 problem document, whoever answers it.

Routes, FastAPI's request validation, the limits in front of the app (413, 415, 431)
and the rate limit (429) all answer ``application/problem+json`` with ``type``,
``title``, ``status``, ``detail`` (a string), ``code``, ``request_id`` (the
``X-Request-ID`` of the answer) and one ``errors`` list of ``{field, message, got}``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from asgi_client import AppClient, auth, settings_for, write_configs

from service.app import create_app


@pytest.fixture
def client(redis_url: str, tmp_path: Any) -> Iterator[AppClient]:
    settings = settings_for(
        redis_url,
        write_configs(tmp_path),
        rate_limit_pos_per_second=1.0,
        rate_limit_pos_burst=30,
        max_body_bytes=2048,
    )
    with AppClient(create_app(settings)) as c:
        yield c


def assert_problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = r.json()
    assert set(body) == {"type", "title", "status", "detail", "code", "request_id", "errors"}
    assert body["status"] == status and body["code"] == code
    assert body["type"] == f"urn:dropprice:problem:{code}"
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert body["request_id"] == r.headers["x-request-id"]
    assert isinstance(body["errors"], list)
    for e in body["errors"]:
        assert {"field", "message", "got"} <= set(e)
    return body


def sale(**fields: Any) -> dict[str, Any]:
    return {
        "type": "sale",
        "event_id": "e-1",
        "ts": "2026-01-01T10:00:00Z",
        "sku": "TEE-1",
        "market": "nyc",
        "quantity": 1,
        "unit_price": 30.0,
    } | fields


def test_validation_errors_list_each_field_with_what_was_sent(client: AppClient) -> None:
    r = client.post(
        "/v1/prices:batch", headers=auth(), json={"items": [{"sku": "has space"}], "x": 1}
    )
    body = assert_problem(r, 422, "invalid_request")
    fields = {e["field"]: e["got"] for e in body["errors"]}
    assert fields == {"items[0].sku": "has space", "x": 1}
    assert "items[0].sku" in body["detail"] and "x" in body["detail"]

    r = client.get("/v1/prices/TEE-1?market=nyc&markte=nyc", headers=auth())
    body = assert_problem(r, 422, "invalid_request")
    assert [(e["field"], e["got"]) for e in body["errors"]] == [("markte", "nyc")]

    r = client.post(
        "/v1/events",
        headers={**auth(), "Content-Type": "application/json"},
        content=b"{not json",
    )
    assert_problem(r, 422, "invalid_json")
    r = client.post("/v1/events", headers=auth(), json={"events": []})
    body = assert_problem(r, 422, "invalid_request")
    assert body["errors"][0]["field"] == "events" and body["errors"][0]["got"] == 0


def test_route_and_auth_errors(client: AppClient) -> None:
    body = assert_problem(client.get("/v1/prices/NOPE-1", headers=auth()), 404, "unknown_sku")
    assert body["errors"] == [] and "NOPE-1" in body["detail"]
    assert_problem(client.get("/v1/prices/TEE-1"), 401, "unauthorized")
    assert_problem(client.get("/v1/admin/refits", headers=auth()), 403, "forbidden")
    r = client.get("/v1/prices/NOPE-1", headers={**auth(), "X-Request-ID": "till-7-abc"})
    assert assert_problem(r, 404, "unknown_sku")["request_id"] == "till-7-abc"


@pytest.mark.parametrize("path", ["/v1/prices/TEE-1", "/v1/prices/NOPE-1"])
def test_a_malformed_request_id_is_refused(client: AppClient, path: str) -> None:
    """X-Request-ID is 1 to 128 visible ASCII characters, as the schema says; any other
    value is a 422 naming the header (on the price fast path as on the full stack), not
    accepted and echoed (empty) or cut short."""
    longest = "r" * 128
    assert (
        client.get(path, headers={**auth(), "X-Request-ID": longest}).headers["x-request-id"]
        == longest
    )
    for bad in ("", "till 7", "r" * 129, "caf\xe9"):
        r = client.get(path, headers={**auth(), "X-Request-ID": bad.encode("latin-1")})
        body = assert_problem(r, 422, "invalid_request")
        assert [e["field"] for e in body["errors"]] == ["X-Request-ID"], body
        assert body["request_id"] == r.headers["x-request-id"] != bad


def test_errors_answered_before_the_app(client: AppClient) -> None:
    r = client.post(
        "/v1/events",
        headers={**auth(), "Content-Type": "text/plain"},
        content=b'{"events": []}',
    )
    assert_problem(r, 415, "unsupported_media_type")
    r = client.post("/v1/events", headers=auth(), json={"events": [sale()] * 20})
    assert_problem(r, 413, "body_too_large")
    r = client.get("/v1/prices/TEE-1", headers={**auth(), "X-Big": "x" * 20_000})
    assert_problem(r, 431, "headers_too_large")
    answers = [client.get("/v1/prices/TEE-1", headers=auth()) for _ in range(40)]
    limited = [a for a in answers if a.status_code == 429]
    assert limited, [a.status_code for a in answers]
    assert_problem(limited[0], 429, "rate_limited")


def test_the_openapi_document_declares_problems_and_the_request_id(client: AppClient) -> None:
    schema = client.get("/openapi.json").json()
    problem = schema["components"]["schemas"]["ErrorBody"]
    assert set(problem["required"]) == {
        "type", "title", "status", "detail", "code", "request_id", "errors"
    }  # fmt: skip
    assert problem["properties"]["detail"]["type"] == "string"
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            names = [p["name"] for p in operation.get("parameters", [])]
            assert "X-Request-ID" in names, (method, path)
            for code, response in operation["responses"].items():
                assert "X-Request-ID" in response.get("headers", {}), (method, path, code)
                if code[0] in "45":
                    assert list(response["content"]) == ["application/problem+json"], (
                        method,
                        path,
                        code,
                    )


def test_every_route_with_a_body_refuses_a_body_not_declared_json(client: AppClient) -> None:
    """Walks the OpenAPI document: each operation with a request body answers 415 to a
    text/plain body, before any route reads it."""
    schema = client.get("/openapi.json").json()
    checked = []
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if "requestBody" not in operation:
                continue
            url = path
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path":
                    url = url.replace("{" + parameter["name"] + "}", "x1")
            r = client.request(
                method.upper(),
                url,
                content=b'{"events": []}',
                headers={**auth("admin"), "Content-Type": "text/plain"},
            )
            assert_problem(r, 415, "unsupported_media_type")
            checked.append(f"{method.upper()} {path}")
    assert {"POST /v1/events", "POST /v1/prices:batch", "PUT /v1/drops/{drop_id}"} <= set(
        checked
    ), checked
