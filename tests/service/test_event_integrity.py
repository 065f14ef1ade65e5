"""What a terminal sends cannot poison the books (issue 15), through the real app.

Strict numbers at the edge and a canonical stream, stock that moves only as the key's
role allows, the JSON content type, header and body limits that answer with their
code and request id, and sales whose reported price is off the charged one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from asgi_client import AppClient, auth, settings_for, write_configs

from service.app import create_app
from service.store import PriceStore, connect


@pytest.fixture
def store(redis_url: str) -> Iterator[PriceStore]:
    s = PriceStore(connect(redis_url, timeout=2.0))
    yield s
    s.close()


def make_client(url: str, tmp_path: Any, **overrides: Any) -> AppClient:
    return AppClient(create_app(settings_for(url, write_configs(tmp_path), **overrides)))


@pytest.fixture
def client(redis_url: str, tmp_path: Any) -> Iterator[AppClient]:
    with make_client(redis_url, tmp_path) as c:
        yield c


def event(kind: str, event_id: str, **fields: Any) -> dict[str, Any]:
    base = {"type": kind, "event_id": event_id, "ts": "2026-01-01T10:30:00-05:00"}
    defaults: dict[str, Any] = {"sku": "TEE-1", "market": "nyc"}
    if kind in {"sale", "return", "restock"}:
        defaults["quantity"] = 1
    if kind == "sale":
        defaults["unit_price"] = 30.0
    return base | defaults | fields


def post(client: AppClient, *events: dict[str, Any], role: str = "pos") -> list[dict[str, Any]]:
    r = client.post("/v1/events", headers=auth(role), json={"events": list(events)})
    assert r.status_code == 200, r.text
    results: list[dict[str, Any]] = r.json()["results"]
    return results


def units(store: PriceStore) -> int | None:
    return store.get_inventory("TEE-1", "nyc")


# -------------------------------------------------------------- strict numbers
@pytest.mark.parametrize(
    ("kind", "field", "value"),
    [
        ("sale", "quantity", True),
        ("sale", "quantity", "2"),
        ("sale", "unit_price", True),
        ("sale", "unit_price", "30.0"),
        ("return", "quantity", True),
        ("claim", "count", True),
        ("claim", "count", "3"),
        ("announcement", "reach", "5000"),
        ("listing", "weight", False),
    ],
)
def test_booleans_and_strings_are_not_numbers(
    client: AppClient, store: PriceStore, kind: str, field: str, value: Any
) -> None:
    before = units(store)
    stream_before = len(store.recent_events("TEE-1"))
    (result,) = post(client, event(kind, f"bad-{kind}-{field}", **{field: value}))
    assert result["status"] == "rejected"
    assert f"events[0].{field}" in result["detail"]
    assert units(store) == before
    assert len(store.recent_events("TEE-1")) == stream_before


def test_the_stream_holds_canonical_numbers(client: AppClient, store: PriceStore) -> None:
    results = post(
        client,
        event("sale", "canon-sale", quantity=2, unit_price=30),
        event("claim", "canon-claim"),
    )
    assert [r["status"] for r in results] == ["accepted", "accepted"]
    fields = {e.fields["event_id"]: e.fields for e in store.recent_events("TEE-1")}
    assert (fields["canon-sale"]["quantity"], fields["canon-sale"]["unit_price"]) == ("2", "30.0")
    assert fields["canon-claim"]["count"] == "1"
    assert fields["canon-sale"]["ts"] == "2026-01-01T10:30:00-05:00"


def test_operator_bodies_refuse_booleans_as_numbers(client: AppClient) -> None:
    r = client.post("/v1/skus/TEE-1/preview", headers=auth("operator"), json={"units_left": True})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "units_left"


# -------------------------------------------------------------- stock by role
def test_a_pos_key_cannot_restock(client: AppClient, store: PriceStore) -> None:
    (pos,) = post(client, event("restock", "pos-restock", quantity=100_000))
    assert pos["status"] == "rejected"
    assert "operator" in pos["detail"]
    assert units(store) == 12
    (op,) = post(client, event("restock", "op-restock", quantity=3), role="operator")
    assert (op["status"], op["inventory"]) == ("accepted", 15)


def test_a_return_takes_back_at_most_the_units_sold(client: AppClient, store: PriceStore) -> None:
    (first,) = post(client, event("return", "ret-0", quantity=5))
    assert first["status"] == "rejected"
    assert "0 unit(s) of TEE-1 in nyc" in first["detail"]
    assert units(store) == 12
    results = post(
        client,
        event("sale", "s-1", quantity=2),
        event("return", "ret-1", quantity=1),
        event("return", "ret-2", quantity=2),
        event("return", "ret-3", quantity=1),
    )
    assert [r["status"] for r in results] == ["accepted", "accepted", "rejected", "accepted"]
    assert "1 unit(s)" in results[2]["detail"]
    assert units(store) == 12
    # A replay of the refused return stays refused and changes nothing.
    (again,) = post(client, event("return", "ret-2", quantity=2))
    assert (again["status"], again["first_status"]) == ("duplicate", "return_exceeds_sales")
    assert units(store) == 12


# -------------------------------------------------------------- content type
def test_a_sale_sent_as_text_plain_is_refused(client: AppClient, store: PriceStore) -> None:
    body = b'{"events": [' + str(event("sale", "txt")).replace("'", '"').encode() + b"]}"
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        r = client.post(
            "/v1/events", content=body, headers={**auth(), "Content-Type": content_type}
        )
        assert r.status_code == 415, r.text
        assert r.json()["code"] == "unsupported_media_type"
        assert r.json()["request_id"]
    assert units(store) == 12
    assert store.recent_events("TEE-1") == []
    r = client.post(
        "/v1/events",
        content=body,
        headers={**auth(), "Content-Type": "application/json; charset=utf-8"},
    )
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    assert units(store) == 11


# -------------------------------------------------------------- limits
def test_oversized_headers_are_refused_before_the_key_check(client: AppClient) -> None:
    r = client.get("/v1/prices/TEE-1", headers={"X-Padding": "x" * 20_000})
    assert r.status_code == 431, r.text
    assert r.json()["code"] == "headers_too_large"
    assert r.json()["request_id"] == r.headers["x-request-id"]
    ok = client.get("/v1/prices/TEE-1?market=nyc", headers={**auth(), "X-Padding": "x" * 2_000})
    assert ok.status_code == 200


def test_chunked_body_over_the_limit_answers_body_too_large(
    redis_url: str, tmp_path: Any, store: PriceStore
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"events": ['
        for i in range(400):
            yield (str(event("sale", f"big-{i}")).replace("'", '"') + ",").encode()
        yield b"{}]}"

    with make_client(redis_url, tmp_path, max_body_bytes=16 * 1024) as c:
        r = c.post(
            "/v1/events", content=chunks(), headers={**auth(), "Content-Type": "application/json"}
        )
    assert r.status_code == 413, r.text
    assert r.json()["code"] == "body_too_large"
    assert units(store) == 12


def test_rate_limited_answers_carry_a_request_id(redis_url: str, tmp_path: Any) -> None:
    with make_client(
        redis_url, tmp_path, rate_limit_pos_per_second=0.001, rate_limit_pos_burst=1
    ) as c:
        answers = [c.get("/v1/prices/TEE-1?market=nyc", headers=auth()) for _ in range(3)]
    limited = [r for r in answers if r.status_code == 429]
    assert limited, [r.status_code for r in answers]
    for r in limited:
        assert r.json()["request_id"], r.text
        assert r.json()["request_id"] == r.headers["x-request-id"]


# -------------------------------------------------------------- price integrity
def _mismatches(client: AppClient) -> float:
    text = client.get("/metrics").text
    line = next(x for x in text.splitlines() if x.startswith("dropprice_price_mismatch_total"))
    return float(line.split()[-1])


def test_a_reported_price_far_from_the_charged_one_is_flagged(client: AppClient) -> None:
    before = _mismatches(client)
    results = post(
        client,
        event("sale", "fair", unit_price=30.0),
        event("sale", "close", unit_price=30.3),
        event("sale", "far", unit_price=5.0),
    )
    assert [r["status"] for r in results] == ["accepted"] * 3
    assert [r["charged_price"] for r in results] == [30.0] * 3
    assert [r["price_check"] for r in results] == ["ok", "ok", "mismatch"]
    assert results[2]["detail"] is not None and "83.3%" in results[2]["detail"]
    assert _mismatches(client) == before + 1
