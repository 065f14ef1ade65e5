"""Event intake on the fast path: one Redis round trip for a batch, and no thread.

The store sends a batch's event scripts as ``EVALSHA`` in one pipeline: no
``SCRIPT EXISTS`` first (redis-py's own script pipelining asks it, a second round trip
per batch); a script the server does not hold yet answers ``NOSCRIPT``, is loaded, and
only those calls are sent again. The server's command counters show what was sent.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from asgi_client import AppClient, auth, settings_for, write_configs

from service.app import create_app
from service.store import EventRecord, PriceStore, connect


@pytest.fixture
def store(redis_url: str) -> Iterator[PriceStore]:
    s = PriceStore(connect(redis_url, timeout=2.0))
    s.seed_inventory("TEE-1", "nyc", 1000)
    yield s
    s.close()


def _sale(n: int) -> EventRecord:
    return EventRecord(
        event_id=f"fast-{n}",
        kind="sale",
        sku="TEE-1",
        market="nyc",
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
