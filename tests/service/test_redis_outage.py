"""Redis killed and restarted under traffic: stale reads, 503 writes, recovery in place."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from asgi_client import AppClient, auth, settings_for, write_configs

from service.app import create_app
from service.embedded import RedisServer
from service.store import SurfaceRecord


def wait_until(check, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return False


def test_redis_killed_and_restarted_under_traffic(tmp_path) -> None:
    server = RedisServer(
        data_dir=tmp_path / "redis", appendonly=True, extra_args=["--appendfsync", "always"]
    ).start()
    settings = settings_for(
        server.url,
        write_configs(tmp_path / "configs"),
        redis_timeout_ms=200,
        resync_interval_s=0.3,
    )
    surface = SurfaceRecord(
        price=np.linspace(60.0, 40.0, 13)[:, None].repeat(4, axis=1),
        period_start=datetime.now(UTC) - timedelta(minutes=1),
        period_seconds=3600,
    )
    allowed_prices = set(surface.price[:, 0].tolist())
    client = AppClient(create_app(settings))
    try:
        client.app.state.service.store.publish_surfaces("v1", {("TEE-1", "nyc"): surface})
        assert wait_until(
            lambda: client.get("/v1/prices/TEE-1", headers=auth()).json()["source"] == "surface"
        )
        stop = threading.Event()
        reads: list[tuple[int, str | None, float | None]] = []
        writes: dict[str, list[Any]] = {}

        def reader() -> None:
            while not stop.is_set():
                r = client.get("/v1/prices/TEE-1", headers=auth())
                body = r.json() if r.status_code == 200 else {}
                reads.append((r.status_code, body.get("source"), body.get("price")))
                time.sleep(0.005)

        def writer() -> None:
            n = 0
            while not stop.is_set() and n < 8:
                eid = f"sale-{n}"
                r = client.post(
                    "/v1/events",
                    headers=auth(),
                    json={
                        "events": [
                            {
                                "type": "sale",
                                "event_id": eid,
                                "sku": "TEE-1",
                                "market": "nyc",
                                "quantity": 1,
                                "unit_price": 50.0,
                                "ts": "2026-01-01T10:00:00Z",
                            }
                        ]
                    },
                )
                writes.setdefault(eid, []).append(
                    r.json()["results"][0]["status"]
                    if r.status_code == 200
                    else (r.status_code, r.headers.get("retry-after"))
                )
                if r.status_code == 200:
                    n += 1  # a 503 is retried with the same event id
                time.sleep(0.05)

        threads = [threading.Thread(target=reader), threading.Thread(target=writer)]
        for t in threads:
            t.start()
        time.sleep(0.3)
        server.kill()
        assert wait_until(
            lambda: client.get("/v1/prices/TEE-1", headers=auth()).json()["source"] == "stale"
        )
        down = client.post(
            "/v1/events",
            headers=auth("operator"),  # a restock needs an operator key
            json={
                "events": [
                    {
                        "type": "restock",
                        "event_id": "r-down",
                        "sku": "TEE-1",
                        "market": "nyc",
                        "quantity": 5,
                        "ts": "2026-01-01T10:00:00Z",
                    }
                ]
            },
        )
        assert down.status_code == 503
        assert down.headers["retry-after"] == "1"
        assert down.json()["code"] == "store_unavailable"
        assert client.get("/readyz").status_code == 503
        time.sleep(0.5)
        server.start()
        assert wait_until(
            lambda: client.get("/v1/prices/TEE-1", headers=auth()).json()["source"] == "surface"
        )
        assert wait_until(lambda: len(writes) == 8 and "accepted" in str(writes["sale-7"]))
        stop.set()
        for t in threads:
            t.join()

        statuses = {code for code, _, _ in reads}
        assert statuses == {200}, "reads must keep answering while Redis is away"
        assert {src for _, src, _ in reads} == {"surface", "stale"}
        assert {p for _, _, p in reads} <= allowed_prices
        assert any(isinstance(w, tuple) for ws in writes.values() for w in ws), (
            "some writes should have met the outage"
        )
        for eid, outcomes in writes.items():
            finals = [o for o in outcomes if not isinstance(o, tuple)]
            assert finals[:1] == ["accepted"] or finals[:1] == ["duplicate"], (eid, outcomes)
            assert all(o == (503, "1") for o in outcomes if isinstance(o, tuple)), outcomes
        # Every sale counted exactly once: nothing half-applied, nothing lost.
        store = client.app.state.service.store
        assert store.get_inventory("TEE-1", "nyc") == 12 - 8
        sales = [e for e in store.recent_events("TEE-1") if e.fields["type"] == "sale"]
        assert sorted(e.fields["event_id"] for e in sales) == sorted(writes)
        assert client.get("/v1/prices/TEE-1", headers=auth()).json()["inventory"] == 4
        assert client.get("/readyz").status_code == 200
    finally:
        client.close()
        server.stop()


def test_a_hung_redis_is_noticed_and_writes_fail_within_the_time_budget(tmp_path) -> None:
    import signal

    server = RedisServer(data_dir=tmp_path / "redis", appendonly=False).start()
    settings = settings_for(
        server.url,
        write_configs(tmp_path / "configs"),
        redis_timeout_ms=200,
        resync_interval_s=30,  # only the ping notices the hang
    )
    client = AppClient(create_app(settings))
    sale = {
        "type": "sale",
        "event_id": "s1",
        "sku": "TEE-1",
        "market": "nyc",
        "quantity": 1,
        "unit_price": 30.0,
        "ts": "2026-01-01T10:00:00Z",
    }
    try:
        assert client.get("/v1/prices/TEE-1", headers=auth()).json()["source"] == "base"
        assert server.process is not None
        server.process.send_signal(signal.SIGSTOP)
        try:
            assert wait_until(
                lambda: client.get("/v1/prices/TEE-1", headers=auth()).json()["source"] == "stale"
            )
            # Redis is hung, so only the time budget can end this call: a 503.
            r = client.post("/v1/events", headers=auth(), json={"events": [sale]})
            assert r.status_code == 503
        finally:
            server.process.send_signal(signal.SIGCONT)
        assert wait_until(
            lambda: client.get("/v1/prices/TEE-1", headers=auth()).json()["source"] == "base"
        )
        r = client.post("/v1/events", headers=auth(), json={"events": [sale]})
        # The first attempt may have reached Redis before the timeout: either way once.
        assert r.json()["results"][0]["status"] in {"accepted", "duplicate"}
        assert client.app.state.service.store.get_inventory("TEE-1", "nyc") == 11
    finally:
        client.close()
        server.stop()
