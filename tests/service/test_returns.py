"""A return takes back at most the sale it names, or what was sold (issue 15).

A ``return`` may name the sale it returns (``sale_event_id``): the sale must have been
recorded for that SKU in that market, and the units returned against it may not exceed
its units. Without ``sale_event_id`` the cap is the units sold net of returns of the
SKU in the market. On the store (the sale script) and over HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from asgi_client import AppClient, auth, settings_for, write_configs

from service.app import create_app
from service.store import EventRecord, PriceStore, SkuMeta, connect

SKU, MARKET, OTHER = "TEE-1", "nyc", "la"


def record(
    kind: str, event_id: str, qty: int, *, market: str = MARKET, **fields: str
) -> EventRecord:
    return EventRecord(
        event_id=event_id,
        kind=kind,  # type: ignore[arg-type]
        sku=SKU,
        market=market,
        quantity=qty,
        fields={"type": kind, "event_id": event_id, **fields},
        list_price=30.0,
    )


@pytest.fixture
def store(redis_url: str) -> Iterator[PriceStore]:
    s = PriceStore(connect(redis_url, timeout=2.0))
    s.register_sku(SkuMeta(SKU, 30.0, "USD", (MARKET, OTHER)))
    s.seed_inventory(SKU, MARKET, 10)
    s.seed_inventory(SKU, OTHER, 10)
    yield s
    s.close()


def statuses(store: PriceStore, *events: EventRecord) -> list[tuple[str, int | None]]:
    return [(o.status, o.returnable) for o in store.record_events(list(events))]


def test_a_return_naming_a_sale_takes_back_at_most_that_sale(store: PriceStore) -> None:
    out = statuses(
        store,
        record("sale", "s1", 2),
        record("sale", "s2", 3),
        record("return", "r1", 1, sale_event_id="s1"),
        record("return", "r2", 2, sale_event_id="s1"),  # 1 left of s1: refused
        record("return", "r3", 1, sale_event_id="s1"),
        record("return", "r4", 1, sale_event_id="s1"),  # s1 fully returned
        record("return", "r5", 3, sale_event_id="s2"),
    )
    assert out == [
        ("accepted", None),
        ("accepted", None),
        ("accepted", None),
        ("return_exceeds_sale", 1),
        ("accepted", None),
        ("return_exceeds_sale", 0),
        ("accepted", None),
    ]
    assert store.get_inventory(SKU, MARKET) == 10


def test_a_return_naming_an_unknown_or_other_market_sale_is_refused(store: PriceStore) -> None:
    out = statuses(
        store,
        record("sale", "s-la", 4, market=OTHER),
        record("sale", "s-nyc", 4),
        record("return", "r1", 1, sale_event_id="never-sold"),
        record("return", "r2", 1, sale_event_id="s-la"),  # a sale, but in another market
        record("return", "r3", 1, sale_event_id="r1"),  # an event that is not a sale
    )
    assert [s for s, _ in out] == [
        "accepted",
        "accepted",
        "return_unknown_sale",
        "return_unknown_sale",
        "return_unknown_sale",
    ]
    assert store.get_inventory(SKU, MARKET) == 6
    assert store.get_inventory(SKU, OTHER) == 6


def test_without_a_sale_the_cap_is_the_units_sold_net_of_returns(store: PriceStore) -> None:
    out = statuses(
        store,
        record("sale", "s1", 2),
        record("return", "r1", 3),
        record("return", "r2", 2),
        record("return", "r3", 1, sale_event_id="s1"),  # the sale's own cap holds ...
    )
    # ... and so does the SKU-market's: both of its units came back without naming it.
    assert out == [
        ("accepted", None),
        ("return_exceeds_sales", 2),
        ("accepted", None),
        ("return_exceeds_sales", 0),
    ]
    assert store.get_inventory(SKU, MARKET) == 10


def test_a_replayed_return_counts_once_against_its_sale(store: PriceStore) -> None:
    statuses(store, record("sale", "s1", 2))
    first = statuses(store, record("return", "r1", 2, sale_event_id="s1"))
    again = store.record_events([record("return", "r1", 2, sale_event_id="s1")])[0]
    assert first == [("accepted", None)]
    assert (again.status, again.first_status) == ("duplicate", "accepted")
    assert statuses(store, record("return", "r2", 1, sale_event_id="s1")) == [
        ("return_exceeds_sale", 0)
    ]


# ------------------------------------------------------------------------- over HTTP
@pytest.fixture
def client(redis_url: str, tmp_path: Any) -> Iterator[AppClient]:
    with AppClient(create_app(settings_for(redis_url, write_configs(tmp_path)))) as c:
        yield c


def event(kind: str, event_id: str, **fields: Any) -> dict[str, Any]:
    base = {"type": kind, "event_id": event_id, "ts": "2026-01-01T10:30:00-05:00"}
    defaults: dict[str, Any] = {"sku": SKU, "market": MARKET, "quantity": 1}
    if kind == "sale":
        defaults["unit_price"] = 30.0
    return base | defaults | fields


def post(client: AppClient, *events: dict[str, Any]) -> list[dict[str, Any]]:
    r = client.post("/v1/events", headers=auth("pos"), json={"events": list(events)})
    assert r.status_code == 200, r.text
    results: list[dict[str, Any]] = r.json()["results"]
    return results


def test_returns_by_sale_over_http(client: AppClient) -> None:
    results = post(
        client,
        event("sale", "till-1", quantity=2),
        event("sale", "till-2", quantity=2),
        event("return", "ret-1", quantity=3, sale_event_id="till-1"),
        event("return", "ret-2", quantity=1, sale_event_id="till-9"),
        event("return", "ret-3", quantity=2, sale_event_id="till-1"),
        event("return", "ret-4", quantity=1, sale_event_id="till-1"),
    )
    assert [r["status"] for r in results] == [
        "accepted",
        "accepted",
        "rejected",
        "rejected",
        "accepted",
        "rejected",
    ]
    assert "2 unit(s) of sale 'till-1', got quantity 3" in results[2]["detail"]
    assert "'till-9' names no recorded sale of TEE-1 in nyc" in results[3]["detail"]
    assert "0 unit(s) of sale 'till-1'" in results[5]["detail"]
    # The refused returns moved no stock: 12 - 4 sold + 2 returned.
    assert results[4]["inventory"] == 10


def test_a_return_naming_a_sale_must_name_it_as_an_event_id(client: AppClient) -> None:
    (result,) = post(client, event("return", "ret-x", sale_event_id=""))
    assert result["status"] == "rejected"
    assert "sale_event_id" in result["detail"]
