"""Each served price is recorded with its arm and probability; experiments read them back."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
import yaml
from typer.testing import CliRunner

from service.app import create_app
from service.auth import hash_api_key
from service.cli import app as cli
from service.served import ServedPriceLog, load_lookups
from service.settings import Role, Settings
from tests.service.asgi_client import AppClient

POS_KEY = "pos-key-for-served-tests"
POS = {"X-API-Key": POS_KEY}
ARMS = {"east": "waves", "west": "open", "north": "open"}
SKUS = ("ARM-A", "ARM-B")


def _configs(root: Path) -> Path:
    (root / "drops").mkdir(parents=True)
    (root / "defaults.yaml").write_text(yaml.safe_dump({"currency": "USD"}))
    (root / "categories.yaml").write_text(
        yaml.safe_dump({"categories": {"tees": {"mean": -1.5, "sd": 1.0}}})
    )
    start = (datetime.now(UTC) + timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
    drop = {
        "id": "armed-drop",
        "markets": sorted(ARMS),
        "windows": [{"start": start.isoformat(), "end": (start + timedelta(hours=6)).isoformat()}],
        "arms": [
            {"name": "waves", "markets": ["east"], "release": "waves", "waves": 2},
            {"name": "open", "markets": ["west", "north"]},
        ],
        "skus": [
            {
                "sku": s,
                "category": "tees",
                "list_price": 10.0 + i,
                "inventory": {m: 500 for m in ARMS},
            }
            for i, s in enumerate(SKUS)
        ],
    }
    (root / "drops" / "armed-drop.yaml").write_text(yaml.safe_dump(drop))
    return root


@pytest.fixture
def served_app(redis_url: str, tmp_path: Path) -> Iterator[tuple[AppClient, Path]]:
    config_dir = _configs(tmp_path / "configs")
    settings = Settings(
        redis_url=redis_url,
        config_dir=config_dir,
        api_keys={hash_api_key(POS_KEY): Role.pos},
        redis_timeout_ms=5000,
        rate_limit_enabled=False,
        resync_interval_s=0.2,
    )
    with AppClient(create_app(settings)) as c:
        yield c, config_dir


def _wait_for(total: int, redis_url: str) -> object:
    client = redis.Redis.from_url(redis_url)
    pairs = [(s, m) for s in SKUS for m in ARMS]
    deadline = time.monotonic() + 10
    while True:
        frame = load_lookups(client, pairs)
        if frame["lookups"].sum() >= total or time.monotonic() > deadline:
            client.close()
            return frame
        time.sleep(0.1)


def test_served_prices_are_recorded_with_arm_and_probability(served_app, redis_url):
    client, _ = served_app
    reads = {("ARM-A", "east"): 7, ("ARM-A", "west"): 3, ("ARM-B", "north"): 5}
    for (sku, market), n in reads.items():
        for _ in range(n):
            r = client.get(f"/v1/prices/{sku}", params={"market": market}, headers=POS)
            assert r.status_code == 200, r.text
    r = client.post(
        "/v1/prices:batch", json={"items": [{"sku": "ARM-B", "market": "east"}]}, headers=POS
    )
    assert r.status_code == 200
    frame = _wait_for(16, redis_url)
    got = frame.groupby(["sku", "market"])["lookups"].sum().to_dict()
    assert got == {**reads, ("ARM-B", "east"): 1}
    for row in frame.itertuples(index=False):
        assert row.arm == ARMS[row.market]
        assert row.propensity == 1.0
        assert row.price == (10.0 if row.sku == "ARM-A" else 11.0)  # list price, no surface
        assert abs(row.hour - datetime.now(UTC)) < timedelta(hours=1, minutes=1)


def test_experiment_report_reads_sales_and_lookups_from_redis(served_app, redis_url):
    client, config_dir = served_app
    for market, n in (("east", 10), ("west", 10), ("north", 10)):
        for sku in SKUS:
            for _ in range(n):
                client.get(f"/v1/prices/{sku}", params={"market": market}, headers=POS)
    now = datetime.now(UTC)
    events = [
        {
            "event_id": f"s-{sku}-{market}",
            "type": "sale",
            "ts": now.isoformat(),
            "sku": sku,
            "market": market,
            "quantity": q,
            "unit_price": 10.0,
        }
        for sku in SKUS
        for market, q in (("east", 4), ("west", 2), ("north", 3))
    ]
    r = client.post("/v1/events", json={"events": events}, headers=POS)
    assert r.status_code == 200 and r.json()["accepted"] == len(events), r.text
    _wait_for(60, redis_url)
    result = CliRunner().invoke(
        cli,
        [
            "experiment", "report", "armed-drop", "--config-dir", str(config_dir),
            "--redis-url", redis_url, "--control", "open", "--json", "--n-boot", "200",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rep = json.loads(result.stdout)
    arms = {a["arm"]: a for a in rep["arms"]}
    assert arms["waves"]["units"] == 8 and arms["open"]["units"] == 10
    assert arms["waves"]["lookups"] == 20 and arms["open"]["lookups"] == 40
    assert arms["waves"]["conversion"] == pytest.approx(8 / 20)
    assert arms["open"]["conversion"] == pytest.approx(10 / 40)
    assert arms["waves"]["sell_through"] == pytest.approx(8 / 1000)


def test_a_failed_flush_keeps_the_counts(redis_url):
    log = ServedPriceLog()
    for _ in range(3):
        log.record("S", "m", "a", 9.99, now=3600.0 * 10)
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    dead = redis.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    for _ in range(3):
        assert log.flush(dead) == 0
        assert log.pending() == 3
    log.record("S", "m", "a", 9.99, now=3600.0 * 10 + 5)
    live = redis.Redis.from_url(redis_url)
    assert log.flush(live, final=True) == 4
    assert log.pending() == 0
    frame = load_lookups(live, [("S", "m")])
    assert frame["lookups"].tolist() == [4] and frame["arm"].tolist() == ["a"]
    assert frame["hour"].iloc[0] == datetime.fromtimestamp(36000, tz=UTC)
    live.close()


def test_concurrent_reads_are_all_counted(redis_url):
    """Readers append without a lock while the sync thread flushes: nothing is lost."""
    import threading

    log = ServedPriceLog()
    client = redis.Redis.from_url(redis_url)
    stop = threading.Event()

    def flusher() -> None:
        while not stop.is_set():
            log.flush(client)

    def reader(k: int) -> None:
        for i in range(20_000):
            log.record("S", f"m{k % 2}", "a", 1.0, now=float(i))

    t = threading.Thread(target=flusher)
    t.start()
    readers = [threading.Thread(target=reader, args=(k,)) for k in range(4)]
    for r in readers:
        r.start()
    for r in readers:
        r.join()
    stop.set()
    t.join()
    log.flush(client, final=True)
    frame = load_lookups(client, [("S", "m0"), ("S", "m1")])
    assert frame.groupby("market")["lookups"].sum().to_dict() == {"m0": 40_000, "m1": 40_000}
    client.close()


def test_flush_and_load_on_single_node_and_cluster(any_redis_url):
    from service.store import connect

    client = connect(any_redis_url, timeout=5.0)
    log = ServedPriceLog()
    pairs = [(f"SKU-{i}", m) for i in range(12) for m in ("a", "b")]
    for k, (sku, market) in enumerate(pairs):
        for _ in range(k + 1):
            log.record(sku, market, "arm-x", 5.0, now=7200.0)
    assert log.flush(client, final=True) == sum(range(1, len(pairs) + 1))
    frame = load_lookups(client, pairs)
    got = frame.set_index(["sku", "market"])["lookups"].to_dict()
    assert got == {pair: k + 1 for k, pair in enumerate(pairs)}
    client.close()
