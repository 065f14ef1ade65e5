"""Event ingestion through the real app: idempotency, no oversell, quote locks.

Runs on a single node and on a 3-master cluster.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from asgi_client import AppClient, auth, settings_for, write_configs

from service.app import create_app
from service.store import PriceStore, SurfaceRecord, connect


@pytest.fixture
def store(any_redis_url: str) -> Iterator[PriceStore]:
    s = PriceStore(connect(any_redis_url, timeout=2.0))
    yield s
    s.close()


def make_client(url: str, tmp_path, **overrides: Any) -> AppClient:
    return AppClient(create_app(settings_for(url, write_configs(tmp_path), **overrides)))


@pytest.fixture
def client(any_redis_url: str, tmp_path) -> Iterator[AppClient]:
    with make_client(any_redis_url, tmp_path) as c:
        yield c


def event(kind: str, event_id: str, **fields: Any) -> dict[str, Any]:
    base = {"type": kind, "event_id": event_id, "ts": "2026-01-01T10:30:00-05:00"}
    defaults: dict[str, Any] = {"sku": "TEE-1", "market": "nyc"}
    if kind in {"sale", "return", "restock"}:
        defaults["quantity"] = 1
    if kind == "sale":
        defaults["unit_price"] = 30.0
    return base | defaults | fields


def post(client: AppClient, *events: dict[str, Any], role: str = "pos") -> dict[str, Any]:
    r = client.post("/v1/events", headers=auth(role), json={"events": list(events)})
    assert r.status_code == 200, r.text
    return r.json()


def units(client: AppClient, sku: str = "TEE-1", market: str = "nyc") -> int:
    return client.get(f"/v1/prices/{sku}?market={market}", headers=auth()).json()["inventory"]


def flat_surface(price: float, rows: int = 13) -> SurfaceRecord:
    return SurfaceRecord(
        price=np.full((rows, 4), price),
        period_start=datetime.now(UTC) - timedelta(minutes=1),
        period_seconds=3600,
    )


def test_replays_are_reported_duplicate_and_change_nothing(
    client: AppClient, store: PriceStore
) -> None:
    batch = [event("sale", "a", quantity=2), event("restock", "b", quantity=5), event("sale", "c")]
    first = post(client, *batch, role="operator")  # a restock needs an operator key
    assert [r["status"] for r in first["results"]] == ["accepted"] * 3
    assert units(client) == 12 - 2 + 5 - 1
    stream_len = len(store.recent_events("TEE-1"))
    again = post(client, *batch, role="operator")
    assert [r["status"] for r in again["results"]] == ["duplicate"] * 3
    assert [r["first_status"] for r in again["results"]] == ["accepted"] * 3
    assert (again["accepted"], again["duplicates"]) == (0, 3)
    assert units(client) == 14
    assert store.get_inventory("TEE-1", "nyc") == 14
    assert len(store.recent_events("TEE-1")) == stream_len


def test_an_event_id_is_kept_per_sku(client: AppClient, store: PriceStore) -> None:
    """The same ``event_id`` on two SKUs records one event for each (dedupe is per
    (SKU, event_id), as the API documents); a replay of either changes nothing."""
    tee = event("sale", "till-1-0001", sku="TEE-1", market="nyc")
    cap = event("sale", "till-1-0001", sku="CAP-2", market="paris", unit_price=150.0)
    first = post(client, tee, cap)
    assert [r["status"] for r in first["results"]] == ["accepted", "accepted"]
    assert (store.get_inventory("TEE-1", "nyc"), store.get_inventory("CAP-2", "paris")) == (11, 6)
    again = post(client, cap, tee)
    assert [r["status"] for r in again["results"]] == ["duplicate", "duplicate"]
    assert (store.get_inventory("TEE-1", "nyc"), store.get_inventory("CAP-2", "paris")) == (11, 6)
    assert len(store.recent_events("TEE-1")) == len(store.recent_events("CAP-2")) == 1
    schema = client.get("/openapi.json").json()
    described = schema["paths"]["/v1/events"]["post"]["description"]
    assert "per SKU" in described and "records one event for each" in described


def test_valid_events_are_kept_when_others_in_the_batch_are_invalid(client: AppClient) -> None:
    out = post(
        client,
        event("sale", "ok-1"),
        event("sale", "bad-qty", quantity=0),
        event("sale", "bad-sku", sku="NOPE"),
        event("sale", "bad-field", quantitiy=3),
        event("sale", "bad-ts", ts="2026-01-01T10:30:00"),
        {"type": "teleport", "event_id": "bad-type"},
        event("claim", "ok-2", count=3),
    )
    statuses = [r["status"] for r in out["results"]]
    assert statuses == ["accepted"] + ["rejected"] * 5 + ["accepted"]
    details = [r["detail"] or "" for r in out["results"]]
    assert "events[1].quantity" in details[1]
    assert "NOPE" in details[2]
    assert "events[3].quantitiy" in details[3]
    assert "events[4].ts" in details[4]
    assert "type" in details[5]
    assert [r["event_id"] for r in out["results"]][:2] == ["ok-1", "bad-qty"]
    assert units(client) == 11


def test_whole_request_errors_name_the_field(client: AppClient) -> None:
    r = client.post("/v1/events", headers=auth(), json={"evnts": []})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "events"
    r = client.post("/v1/events", headers=auth(), json={"events": [event("claim", "x")] * 1001})
    assert r.status_code == 422 and "1000" in r.json()["errors"][0]["message"]
    r = client.post("/v1/events", headers=auth(), content=b"{not json")
    assert r.status_code == 422 and r.json()["code"] == "invalid_json"


def test_sold_out_refuses_without_changing_anything(client: AppClient) -> None:
    out = post(client, event("sale", "big", quantity=13), event("sale", "all", quantity=12))
    assert [r["status"] for r in out["results"]] == ["sold_out", "accepted"]
    assert "12" in out["results"][0]["detail"]
    assert units(client) == 0
    out = post(client, event("sale", "one-more"), event("return", "ret"), event("sale", "after"))
    assert [r["status"] for r in out["results"]] == ["sold_out", "accepted", "accepted"]
    assert units(client) == 0


def test_concurrent_sales_from_many_clients_never_oversell(
    any_redis_url: str, tmp_path, store: PriceStore
) -> None:
    """Two service processes' worth of apps, eight client threads, 40 units."""
    store.client.delete("dp:{CAP-2}:inv:paris")
    with (
        make_client(any_redis_url, tmp_path / "a") as a,
        make_client(any_redis_url, tmp_path / "b") as b,
    ):
        store.set_inventory("CAP-2", "paris", 40)
        accepted: list[int] = []
        lock = threading.Lock()

        def terminal(t: int) -> None:
            c = a if t % 2 else b
            got = 0
            for i in range(0, 12, 3):
                batch = [
                    event("sale", f"t{t}-{i + j}", sku="CAP-2", market="paris") for j in range(3)
                ]
                got += post(c, *batch)["accepted"]
            with lock:
                accepted.append(got)

        threads = [threading.Thread(target=terminal, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(accepted) == 40  # 96 attempts, exactly the 40 units sold
        assert store.get_inventory("CAP-2", "paris") == 0
        sales = [e for e in store.recent_events("CAP-2") if e.fields["type"] == "sale"]
        assert len(sales) == 40


def test_quote_lock_is_honoured_then_expires(any_redis_url: str, tmp_path) -> None:
    with make_client(any_redis_url, tmp_path, quote_ttl_seconds=1) as client:
        store = client.app.state.service.store
        store.publish_surfaces("v1", {("TEE-1", "nyc"): flat_surface(25.0)})
        deadline = time.monotonic() + 5
        while client.get("/v1/prices/TEE-1", headers=auth()).json()["version"] != "v1":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        quoted = client.get("/v1/prices/TEE-1", headers=auth()).json()
        assert quoted["price"] == 25.0
        store.publish_surfaces("v2", {("TEE-1", "nyc"): flat_surface(35.0)})
        while client.get("/v1/prices/TEE-1", headers=auth()).json()["version"] != "v2":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        out = post(client, event("sale", "q1", quote_id=quoted["quote_id"]))
        assert out["results"][0]["charged_price"] == 25.0
        assert out["results"][0]["quote"] == "honoured"
        no_quote = post(client, event("sale", "q2"))
        assert no_quote["results"][0]["charged_price"] == 35.0
        time.sleep(1.2)  # ttl 1 s, expiry rounded up to the next 0.1 s
        late = post(client, event("sale", "q3", quote_id=quoted["quote_id"]))
        assert late["results"][0]["status"] == "accepted"
        assert late["results"][0]["quote"] == "expired"
        assert late["results"][0]["charged_price"] == 35.0
        stream = {e.fields["event_id"]: e.fields for e in store.recent_events("TEE-1")}
        assert stream["q1"]["charged_price"] == "25.0"
        assert float(stream["q3"]["charged_price"]) == 35.0


def test_forged_or_foreign_quotes_are_rejected(client: AppClient) -> None:
    quote = client.get("/v1/prices/CAP-2?market=nyc", headers=auth()).json()["quote_id"]
    tampered = quote[:-3] + ("AAA" if not quote.endswith("AAA") else "BBB")
    out = post(
        client,
        event("sale", "f1", quote_id=quote),  # a CAP-2 quote used for TEE-1
        event("sale", "f2", quote_id=tampered),
        event("sale", "f3", quote_id="not-a-quote"),
    )
    assert [r["status"] for r in out["results"]] == ["rejected"] * 3
    assert units(client) == 12


def test_announcement_for_several_skus_reaches_each_stream(
    client: AppClient, store: PriceStore
) -> None:
    out = post(client, event("announcement", "ann-1", sku=["TEE-1", "CAP-2"], reach=50_000))
    assert out["results"][0]["status"] == "accepted"
    for sku in ("TEE-1", "CAP-2"):
        (entry,) = store.recent_events(sku)
        assert entry.fields["type"] == "announcement" and entry.fields["reach"] == "50000"
    again = post(client, event("announcement", "ann-1", sku=["TEE-1", "CAP-2"], reach=50_000))
    assert again["results"][0]["status"] == "duplicate"


def test_metrics_count_sales_and_sources(client: AppClient) -> None:
    post(client, event("sale", "m1"), event("sale", "m2", quantity=99))
    client.get("/v1/prices/TEE-1", headers=auth())
    text = client.get("/metrics").text
    assert 'dropprice_sales_total{status="accepted"} 1.0' in text
    assert 'dropprice_sales_total{status="sold_out"} 1.0' in text
    assert 'dropprice_price_source_total{source="base"}' in text
    assert (
        'dropprice_request_duration_seconds_bucket{le="0.001",method="GET",route="/v1/prices/{sku}"'
        in text
    )
