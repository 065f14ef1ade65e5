"""Event intake on the fast path: one Redis round trip for a batch, and no thread.

The store sends a batch's event scripts as ``EVALSHA`` in one pipeline: no
``SCRIPT EXISTS`` first (redis-py's own script pipelining asks it, a second round trip
per batch); a script the server does not hold yet answers ``NOSCRIPT``, is loaded, and
only those calls are sent again. The server's command counters show what was sent.
A script call publishes one notice of the counts it moved, a line per SKU-market, and
reads a SKU-market's live version and surface header once.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
import redis
from asgi_client import AppClient, auth, settings_for, write_configs

from service import keys
from service.app import create_app
from service.pricebook import CatalogEntry, PriceBook
from service.store import EventRecord, PriceStore, SurfaceRecord, connect
from service.sync import LiveSync


@pytest.fixture
def store(redis_url: str) -> Iterator[PriceStore]:
    s = PriceStore(connect(redis_url, timeout=2.0))
    s.seed_inventory("TEE-1", "nyc", 1000)
    yield s
    s.close()


def _sale(n: int, sku: str = "TEE-1", market: str = "nyc") -> EventRecord:
    return EventRecord(
        event_id=f"fast-{n}",
        kind="sale",
        sku=sku,
        market=market,
        quantity=1,
        fields={"type": "sale", "quantity": "1", "unit_price": "30.0"},
        quoted_price=None,
        list_price=30.0,
    )


def _calls(client: Any) -> dict[str, int]:
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def test_a_batch_is_one_pipeline_of_evalsha(store: PriceStore, redis_url: str) -> None:
    admin = redis.Redis.from_url(redis_url)
    try:
        store.record_events([_sale(0)])  # the script is loaded from here on
        admin.config_resetstat()
        outcomes = store.record_events([_sale(n) for n in range(1, 101)])
        calls = _calls(admin)
        assert [o.status for o in outcomes] == ["accepted"] * 100
        assert calls.get("evalsha") == 1, calls  # 100 events, one script call (up to 200)
        # No SCRIPT command at all (older servers count subcommands under "script").
        assert not any(name.startswith("script") for name in calls), calls

        # A Redis that lost its scripts (a restart): NOSCRIPT, one load, the call again.
        admin.script_flush()
        admin.config_resetstat()
        again = store.record_events([_sale(n) for n in range(101, 111)])
        calls = _calls(admin)
        assert [o.status for o in again] == ["accepted"] * 10
        loads = calls.get("script|load", calls.get("script"))
        assert (calls.get("evalsha"), loads) == (2, 1), calls
        assert store.get_inventory("TEE-1", "nyc") == 1000 - 111
    finally:
        admin.close()


def test_an_awaited_batch_is_one_evalsha_and_reloads_a_lost_script(
    store: PriceStore, redis_url: str
) -> None:
    """The route's path (:meth:`PriceStore.record_events_async`): the batch is one
    ``EVALSHA`` on the asyncio client, and after ``SCRIPT FLUSH`` one load and the call
    again, every sale applied once."""
    admin = redis.Redis.from_url(redis_url)

    async def record(first: int, n: int) -> list[str]:
        store.open_async(redis_url, timeout=2.0)
        try:
            outcomes = await store.record_events_async([_sale(i) for i in range(first, first + n)])
        finally:
            await store.close_async()
        return [o.status for o in outcomes]

    try:
        assert asyncio.run(record(0, 1)) == ["accepted"]
        admin.config_resetstat()
        assert asyncio.run(record(1, 100)) == ["accepted"] * 100
        assert _calls(admin).get("evalsha") == 1
        admin.script_flush()
        admin.config_resetstat()
        assert asyncio.run(record(101, 10)) == ["accepted"] * 10
        calls = _calls(admin)
        loads = calls.get("script|load", calls.get("script"))
        assert (calls.get("evalsha"), loads) == (2, 1), calls
        assert asyncio.run(record(101, 10)) == ["duplicate"] * 10
        assert store.get_inventory("TEE-1", "nyc") == 1000 - 111
    finally:
        admin.close()


def test_a_batch_publishes_one_notice_with_each_markets_last_count(store: PriceStore) -> None:
    """Five sales of two SKU-markets: one notice, a line each with its last count and the
    stream id of its last sale; another process's book applies it."""
    store.seed_inventory("CAP-2", "nyc", 50)
    pubsub = store.subscribe(keys.UPDATES_CHANNEL)
    try:
        records = [_sale(0), _sale(1, "CAP-2"), _sale(2), _sale(3, "CAP-2"), _sale(4)]
        outcomes = store.record_events(records)
        notices: list[str] = []
        for _ in range(20):  # the subscribe confirmation reads as None: wait past it
            message = pubsub.get_message(timeout=0.5)
            if message is not None:
                notices.append(message["data"].decode())
            elif notices:
                break
    finally:
        pubsub.close()
    assert [o.units_left for o in outcomes] == [999, 49, 998, 48, 997]
    assert notices == [
        f"inv\tTEE-1\tnyc\t997\t{outcomes[4].stream_id}\n"
        f"inv\tCAP-2\tnyc\t48\t{outcomes[3].stream_id}"
    ]
    book = PriceBook()
    book.set_catalog({s: CatalogEntry(s, 30.0, "USD", ("nyc",)) for s in ("TEE-1", "CAP-2")})
    LiveSync(store, book, quote_secret=b"k" * 32).apply(notices[0])
    assert (book.units("TEE-1", "nyc"), book.units("CAP-2", "nyc")) == (997, 48)


def test_sales_of_one_market_in_a_call_read_its_surface_once_and_each_its_own_cell(
    store: PriceStore, redis_url: str
) -> None:
    """Five sales of one SKU-market in one call: each is charged the cell of the units
    left before it (rows 5 down to 1), while the live version and the surface header are
    read once for the call."""
    store.seed_inventory("CAP-2", "nyc", 5)
    prices = 10.0 + np.arange(8.0)[:, None] * np.ones((1, 4))  # row n costs 10 + n
    start = datetime.now(UTC) - timedelta(minutes=5)
    store.publish_surfaces("v1", {("CAP-2", "nyc"): SurfaceRecord(prices, start, 3600)})
    admin = redis.Redis.from_url(redis_url)
    try:
        admin.config_resetstat()
        outcomes = store.record_events([_sale(n, "CAP-2") for n in range(5)])
        calls = _calls(admin)
    finally:
        admin.close()
    assert [o.unit_price for o in outcomes] == [15.0, 14.0, 13.0, 12.0, 11.0]
    assert [o.units_left for o in outcomes] == [4, 3, 2, 1, 0]
    assert {o.version for o in outcomes} == {"v1"}
    assert (calls.get("hget"), calls.get("hmget"), calls.get("getrange")) == (1, 1, 5), calls


def test_sales_and_baskets_use_no_thread(redis_url: str, tmp_path: Any) -> None:
    """On a single node, ``POST /v1/events`` and ``POST /v1/prices:batch`` run on the
    event loop alone: after many requests no worker thread of the loop has started
    (FastAPI runs a plain ``def`` endpoint or dependency, or a blocking store call, in
    AnyIO worker threads)."""
    settings = settings_for(redis_url, write_configs(tmp_path))
    # Worker threads left idle by earlier tests' apps (each event loop has its own pool;
    # an idle worker lingers for a while) are not this app's: only new ones count.
    before = {t.ident for t in threading.enumerate()}
    with AppClient(create_app(settings)) as client:
        for n in range(10):  # TEE-1 has 12 units in nyc
            sale = {
                "type": "sale",
                "event_id": f"loop-{n}",
                "ts": "2026-01-01T10:00:00Z",
                "sku": "TEE-1",
                "market": "nyc",
                "quantity": 1,
                "unit_price": 30.0,
            }
            r = client.post("/v1/events", headers=auth(), json={"events": [sale]})
            assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
            r = client.post("/v1/prices:batch", headers=auth(), json={"items": [{"sku": "TEE-1"}]})
            assert r.status_code == 200, r.text
        workers = [
            t.name
            for t in threading.enumerate()
            if "AnyIO worker" in t.name and t.ident not in before
        ]
        assert workers == [], workers
