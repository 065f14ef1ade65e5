"""What survives a Redis restart or crash, and a publisher killed mid-publish.

The embedded Redis runs with append-only persistence (``appendfsync always``): a
command's effect is written to the AOF and fsynced before its reply goes out, so a clean
restart and a SIGKILL of the process keep every acknowledged write.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest
from reliability_harness import (
    CATALOG,
    FIGURES,
    MARKET,
    POS_KEY,
    FaultyRedis,
    ReliabilityEnv,
    ServiceProcess,
    sale_event,
    service_env,
    wait_for,
    write_config_dir,
)

from service import keys
from service.audit import read_audit
from service.config.loader import load_config_dir
from service.config.versions import ConfigStore
from service.store import EventRecord, PriceStore, SkuMeta, SurfaceRecord, connect

pytestmark = pytest.mark.timeout(120)


def _surface(rows: int, cols: int, level: float) -> SurfaceRecord:
    n = np.arange(rows, dtype=np.float64)[:, None]
    t = np.arange(cols, dtype=np.float64)[None, :]
    price = np.round(level + 10.0 / (1.0 + n) + 0.1 * t, 2)
    return SurfaceRecord(
        price=price,
        period_start=datetime.now(UTC) - timedelta(minutes=30),
        period_seconds=1800,
        guardrail_codes=np.zeros((rows, cols), dtype=np.int8),
        currency="USD",
        elasticity={"beta": -1.5},
    )


def _sale(sku: str, qty: int = 1) -> EventRecord:
    eid = f"p-{uuid.uuid4().hex}"
    return EventRecord(
        eid,
        "sale",
        sku,
        MARKET,
        qty,
        {"type": "sale", "event_id": eid, "sku": sku, "market": MARKET},
        list_price=20.0,
    )


@pytest.mark.parametrize("fault", ["restart", "sigkill"])
def test_state_survives_redis_restart_and_crash(
    faulty_redis: FaultyRedis, fault: str, tmp_path: Path
) -> None:
    """Inventory, surfaces, surface and config versions, idempotency records and pending
    events all survive."""
    store = PriceStore(connect(faulty_redis.url, timeout=2.0))
    configs = ConfigStore(store.client)
    for i, price in enumerate((20.0, 24.0)):
        bundle = load_config_dir(
            write_config_dir(tmp_path / f"configs-{i}", {"PER-A": 100}, list_price=price)
        )
        assert configs.apply(bundle, actor="reliability").changed
    skus = ["PER-A", "PER-B"]
    for sku in skus:
        store.register_sku(SkuMeta(sku, 20.0, "USD", (MARKET,)))
        store.seed_inventory(sku, MARKET, 100)
    store.publish_surfaces("v1", {(s, MARKET): _surface(101, 8, 10.0) for s in skus})
    store.publish_surfaces("v2", {(s, MARKET): _surface(101, 8, 12.0) for s in skus})
    sales = [_sale(skus[i % 2], 1 + i % 3) for i in range(20)]
    outcomes = store.record_events(sales)
    assert all(o.status == "accepted" for o in outcomes)
    store.ensure_group("refit")
    delivered = store.read_events("refit", "worker-1")
    assert len(delivered) == 20
    store.ack("refit", delivered[:7])  # 13 delivered but unacknowledged
    late = [_sale(skus[i % 2]) for i in range(5)]  # appended, never delivered
    store.record_events(late)

    before = {
        "inventory": {s: store.get_inventory(s, MARKET) for s in skus},
        "live": store.live_version(),
        "versions": [(v.version, v.status, v.pairs) for v in store.list_versions()],
        "surfaces": {s: store.get_surface(s, MARKET) for s in skus},
        "configs": [(c.version, c.digest) for c in configs.list_versions()],
        "config_live": configs.live_version(),
        "audit": len(read_audit(store.client)),
        "pending": sum(
            int(store.client.xpending(keys.events(s), "refit")["pending"]) for s in skus
        ),
    }
    assert before["pending"] == 13
    store.close()

    if fault == "restart":
        faulty_redis.down()
    else:
        faulty_redis.crash()
    faulty_redis.up()

    store = PriceStore(connect(faulty_redis.url, timeout=2.0))
    try:
        assert {s: store.get_inventory(s, MARKET) for s in skus} == before["inventory"]
        assert before["inventory"] == {
            s: 100 - sum(e.quantity for e in sales + late if e.sku == s) for s in skus
        }
        assert store.live_version() == before["live"] == "v2"
        configs = ConfigStore(store.client)
        assert [(c.version, c.digest) for c in configs.list_versions()] == before["configs"]
        assert configs.live_version() == before["config_live"] == 2
        assert len(read_audit(store.client)) == before["audit"] >= 2
        assert [(v.version, v.status, v.pairs) for v in store.list_versions()] == before["versions"]
        for s in skus:
            version, surface = store.get_surface(s, MARKET)  # type: ignore[misc]
            old_version, old_surface = before["surfaces"][s]  # type: ignore[misc]
            assert version == old_version == "v2"
            np.testing.assert_array_equal(surface.price, old_surface.price)
        pending = sum(int(store.client.xpending(keys.events(s), "refit")["pending"]) for s in skus)
        assert pending == 13
        assert len(store.read_events("refit", "worker-2")) == 5
        # the idempotency records survive too: replays change nothing
        replay = store.record_events(sales[:4])
        assert [o.status for o in replay] == ["duplicate"] * 4
        assert {s: store.get_inventory(s, MARKET) for s in skus} == before["inventory"]
    finally:
        store.close()
    FIGURES.add(sales_attempted=25, sales_accepted=25)


_PUBLISHER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime, timedelta
    import numpy as np
    from service.store import PriceStore, SurfaceRecord, connect

    url, version, n_skus, rows, cols = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
    store = PriceStore(connect(url, timeout=30.0))
    start = datetime.now(UTC) - timedelta(minutes=30)
    price = np.full((rows, cols), 77.0)
    surfaces = {
        (f"PUB-{i:04d}", "m1"): SurfaceRecord(price=price, period_start=start,
                                              period_seconds=1800)
        for i in range(n_skus)
    }
    print("publishing", flush=True)
    store.publish_surfaces(version, surfaces)
    print("published", flush=True)
    """
)


def _publisher_cmd(url: str, version: str, n_skus: int, rows: int, cols: int) -> list[str]:
    return [sys.executable, "-c", _PUBLISHER, url, version, str(n_skus), str(rows), str(cols)]


def _publish(url: str, version: str, n_skus: int, rows: int, cols: int) -> None:
    """Run a publishing process to completion."""
    done = subprocess.run(
        _publisher_cmd(url, version, n_skus, rows, cols), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_publisher_killed_mid_publish_readers_keep_previous_version(
    env: ReliabilityEnv,
) -> None:
    """SIGKILL the publishing process mid-write: every SKU keeps serving the previous version,
    the half-written version never becomes live, and the next publish goes through."""
    skus = [sku for sku in CATALOG if sku.startswith("PUB-")]
    n_skus = len(skus)
    svc, faulty_redis = env.service, env.redis
    _publish(faulty_redis.url, "v-old", n_skus, 41, 12)

    with httpx.Client(base_url=svc.base_url, headers={"X-API-Key": POS_KEY}) as client:

        def versions_served() -> set[str]:
            r = client.post(
                "/v1/prices:batch", json={"items": [{"sku": s, "market": MARKET} for s in skus]}
            )
            assert r.status_code == 200, r.text
            FIGURES.add(requests_sent=1)
            return {p.get("version") for p in r.json()["prices"]}

        assert wait_for(lambda: versions_served() == {"v-old"}, timeout=10)

        big = subprocess.Popen(  # ~18 MB of cells: the write takes a while
            _publisher_cmd(faulty_redis.url, "v-new", n_skus, 401, 48),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        redis_client = faulty_redis.client()
        try:
            assert wait_for(
                lambda: redis_client.exists(keys.version_record("v-new")) == 1,
                timeout=30,
                interval=0.002,
            )
            os.killpg(big.pid, signal.SIGKILL)
            big.wait(10)
            FIGURES.fault("publisher_sigkill")
            record = redis_client.hgetall(keys.version_record("v-new"))
            assert record.get("status") == "writing", record
            assert redis_client.get(keys.live_version()) == "v-old"
            assert all(redis_client.hget(keys.live(s), MARKET) == "v-old" for s in skus)
        finally:
            redis_client.close()

        assert versions_served() == {"v-old"}
        prices = client.get(f"/v1/prices/{skus[0]}", params={"market": MARKET}).json()
        assert prices["version"] == "v-old" and prices["source"] == "surface"

        store = PriceStore(connect(faulty_redis.url, timeout=5.0))
        try:
            assert "v-new" not in [v.version for v in store.list_versions()]
            assert store.live_version() == "v-old"
        finally:
            store.close()
        _publish(faulty_redis.url, "v-next", n_skus, 41, 12)
        assert wait_for(lambda: versions_served() == {"v-next"}, timeout=10)


def test_embedded_redis_of_dropprice_serve_survives_a_restart(tmp_path: Path) -> None:
    """``dropprice serve`` without ``--redis-url`` runs its own persistent Redis: stopping
    and starting the service keeps inventory, the live surface version, idempotency
    records and pending (unacknowledged) events."""
    skus = {"EMB-1": 30}
    config_dir = write_config_dir(tmp_path / "configs", skus)
    data_dir = tmp_path / "data"
    svc = ServiceProcess(
        redis_url=None,
        config_dir=config_dir,
        data_dir=data_dir,
        log_path=tmp_path / "embedded.log",
        workers=1,
        env=service_env(None, config_dir),
    )
    sales = [sale_event("EMB-1", quantity=q) for q in (1, 2, 3)]
    try:
        svc.start()
        url = svc.embedded_redis_url()
        with httpx.Client(base_url=svc.base_url, headers={"X-API-Key": POS_KEY}) as client:
            r = client.post("/v1/events", json={"events": sales})
            assert [x["status"] for x in r.json()["results"]] == ["accepted"] * 3
            FIGURES.add(requests_sent=1, sales_attempted=3, sales_accepted=3)
        store = PriceStore(connect(url, timeout=2.0))
        try:
            store.publish_surfaces("emb-v1", {("EMB-1", MARKET): _surface(31, 8, 15.0)})
            store.ensure_group("refit")
            assert len(store.read_events("refit", "worker-1")) == 3  # delivered, not acked
        finally:
            store.close()
        svc.stop()
        FIGURES.fault("embedded_redis_restart")
        assert svc.process is not None and svc.process.poll() is not None

        svc.start()
        url = svc.embedded_redis_url()
        with httpx.Client(base_url=svc.base_url, headers={"X-API-Key": POS_KEY}) as client:
            price = client.get("/v1/prices/EMB-1", params={"market": MARKET}).json()
            assert price["inventory"] == 30 - 6
            assert price["version"] == "emb-v1" and price["source"] == "surface"
            replay = client.post("/v1/events", json={"events": sales})
            assert [x["status"] for x in replay.json()["results"]] == ["duplicate"] * 3
            FIGURES.add(requests_sent=2)
        store = PriceStore(connect(url, timeout=2.0))
        try:
            assert store.get_inventory("EMB-1", MARKET) == 24
            assert int(store.client.xpending(keys.events("EMB-1"), "refit")["pending"]) == 3
        finally:
            store.close()
    finally:
        svc.stop()
