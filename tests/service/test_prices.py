"""Price reads through the real app, on a single node and on a 3-master cluster."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from asgi_client import AppClient, auth, settings_for, write_configs

from service.app import create_app
from service.store import PriceStore, SurfaceRecord, connect


@pytest.fixture
def client(any_redis_url: str, tmp_path) -> Iterator[AppClient]:
    app = create_app(settings_for(any_redis_url, write_configs(tmp_path)))
    with AppClient(app) as c:
        yield c


@pytest.fixture
def store(any_redis_url: str) -> Iterator[PriceStore]:
    s = PriceStore(connect(any_redis_url, timeout=2.0))
    yield s
    s.close()


def scarcity_surface(units: int, periods: int = 12) -> SurfaceRecord:
    """Price rises by 1.0 per unit sold; period 0 started a minute ago."""
    n = np.arange(units + 1, dtype=float)[:, None]
    return SurfaceRecord(
        price=np.repeat(50.0 - n, periods, axis=1),
        period_start=datetime.now(UTC) - timedelta(minutes=1),
        period_seconds=3600,
        currency="USD",
    )


def wait_for(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Poll until ``check()`` is truthy (bounded; a correctness wait, not a timing test)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


def sale(event_id: str, sku: str = "TEE-1", market: str = "nyc", qty: int = 1, **extra: Any):
    return {
        "type": "sale",
        "event_id": event_id,
        "ts": "2026-01-01T10:30:00+00:00",
        "sku": sku,
        "market": market,
        "quantity": qty,
        "unit_price": 30.0,
        **extra,
    }


def test_list_price_before_any_surface(client: AppClient) -> None:
    r = client.get("/v1/prices/TEE-1", headers=auth())
    assert r.status_code == 200
    body = r.json()
    assert body | {"quote_id": None, "expires_at": None} == {
        "sku": "TEE-1",
        "market": "nyc",
        "price": 30.0,
        "currency": "USD",
        "version": None,
        "inventory": 12,
        "source": "base",
        "quote_id": None,
        "expires_at": None,
    }
    assert body["quote_id"].startswith("q1.")
    r = client.get("/v1/prices/CAP-2?market=paris", headers=auth())
    assert (r.json()["price"], r.json()["currency"], r.json()["inventory"]) == (150.0, "EUR", 7)


def test_price_follows_inventory_sale_by_sale(client: AppClient, store: PriceStore) -> None:
    surface = scarcity_surface(12)
    store.publish_surfaces("v1", {("TEE-1", "nyc"): surface})
    assert wait_for(lambda: client.get("/v1/prices/TEE-1", headers=auth()).json()["version"])
    for i in range(12):
        before = client.get("/v1/prices/TEE-1", headers=auth()).json()
        assert before["source"] == "surface"
        assert before["inventory"] == 12 - i
        assert before["price"] == surface.price[12 - i, 0] == 38.0 + i
        result = client.post("/v1/events", headers=auth(), json={"events": [sale(f"s{i}")]})
        assert result.json()["results"][0]["charged_price"] == before["price"]
    last = client.get("/v1/prices/TEE-1", headers=auth()).json()
    assert last["inventory"] == 0 and last["price"] == 50.0
    refused = client.post("/v1/events", headers=auth(), json={"events": [sale("s-extra")]})
    assert refused.json()["results"][0]["status"] == "sold_out"


def test_sales_by_another_host_reach_this_process(client: AppClient, store: PriceStore) -> None:
    from service.store import EventRecord

    store.publish_surfaces("v1", {("TEE-1", "nyc"): scarcity_surface(12)})
    store.record_events(
        [EventRecord(f"h{i}", "sale", "TEE-1", "nyc", 1, {"type": "sale"}) for i in range(3)]
    )
    body = wait_for(
        lambda: (b := client.get("/v1/prices/TEE-1", headers=auth()).json())["inventory"] == 9 and b
    )
    assert body and body["price"] == 41.0 and body["version"] == "v1"
    store.publish_surfaces(
        "v2",
        {("TEE-1", "nyc"): scarcity_surface(12)._replace(price=scarcity_surface(12).price + 100)},
    )
    body = wait_for(
        lambda: (
            (b := client.get("/v1/prices/TEE-1", headers=auth()).json())["version"] == "v2" and b
        )
    )
    assert body and body["price"] == 141.0
    store.rollback()
    assert wait_for(
        lambda: client.get("/v1/prices/TEE-1", headers=auth()).json()["version"] == "v1"
    )


def test_batch_answers_in_order_and_reports_unknown_items(client: AppClient) -> None:
    r = client.post(
        "/v1/prices:batch",
        headers=auth(),
        json={
            "items": [
                {"sku": "CAP-2", "market": "paris"},
                {"sku": "NOPE"},
                {"sku": "TEE-1"},
                {"sku": "TEE-1", "market": "paris"},
                {"sku": "CAP-2"},
            ]
        },
    )
    assert r.status_code == 200
    prices = r.json()["prices"]
    assert [p.get("price") for p in prices] == [150.0, None, 30.0, None, None]
    assert [p.get("error") for p in prices] == [
        None,
        "unknown_sku",
        None,
        "unknown_market",
        "unknown_market",
    ]
    too_many = client.post(
        "/v1/prices:batch", headers=auth(), json={"items": [{"sku": "TEE-1"}] * 501}
    )
    assert too_many.status_code == 422
    assert too_many.json()["errors"][0]["field"] == "items"


def test_unknown_sku_market_and_bad_input(client: AppClient) -> None:
    r = client.get("/v1/prices/NOPE", headers=auth())
    assert (r.status_code, r.json()["code"]) == (404, "unknown_sku")
    assert "NOPE" in r.json()["detail"]
    r = client.get("/v1/prices/CAP-2", headers=auth())
    assert (r.status_code, r.json()["code"]) == (404, "unknown_market")
    assert "nyc" in r.json()["detail"] and "paris" in r.json()["detail"]
    r = client.get("/v1/prices/TEE-1?market=bad%20market", headers=auth())
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "market"


def test_request_id_is_echoed(client: AppClient) -> None:
    r = client.get("/v1/prices/TEE-1", headers=auth() | {"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = client.get("/v1/prices/NOPE", headers=auth() | {"X-Request-ID": "abc-124"})
    assert r.headers["x-request-id"] == "abc-124"
    assert r.json()["request_id"] == "abc-124"
    assert client.get("/healthz").headers["x-request-id"]


def test_fast_path_and_route_give_the_same_answer(client: AppClient) -> None:
    fast = client.get("/v1/prices/CAP-2?market=paris", headers=auth()).json()
    # A repeated query parameter makes the fast path hand over to the FastAPI route.
    routed = client.get("/v1/prices/CAP-2?market=paris&market=paris", headers=auth()).json()
    for body in (fast, routed):
        body.pop("quote_id"), body.pop("expires_at")
    assert fast == routed


def test_openapi_documents_the_contract(client: AppClient) -> None:
    schema = client.get("/openapi.json").json()
    assert {
        "/v1/prices/{sku}",
        "/v1/prices:batch",
        "/v1/events",
        "/v1/skus/{sku}/intensity",
        "/healthz",
        "/readyz",
        "/metrics",
    } <= set(schema["paths"])
    assert "EventBatchIn" in schema["components"]["schemas"]
    assert set(schema["components"]["schemas"]["PriceOut"]["required"]) >= {
        "sku",
        "market",
        "price",
        "currency",
        "version",
        "inventory",
        "source",
    }
    assert client.get("/docs").status_code == 200
