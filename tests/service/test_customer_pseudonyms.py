"""A sale's customer reference is pseudonymised as it arrives: never in Redis (keys, values,
stream entries), the service's logs or the experiment export as sent; the experiment
report follows the drop's new customers for 30 days, per arm."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from typer.testing import CliRunner

from service.app import create_app
from service.auth import hash_api_key
from service.cli import app as cli
from service.settings import Role, Settings
from tests.service.asgi_client import AppClient

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
DROP = "weekend-popup-two-towns"  # arms: asbury-park waves, ocean-grove all at once
POS_KEY = "pos-key-for-customer-tests"
POS = {"X-API-Key": POS_KEY}
SATURDAY = "2026-12-12T{}:00:00-05:00"
LATER = "2026-12-{:02d}T12:00:00-05:00"  # after the drop (it ends 2026-12-13 17:00)


def _customer(i: int) -> str:
    return f"loyalty-{i:04d}@shore.example"


def _sale(event_id: str, ts: str, market: str, customer: str, price: float) -> dict[str, Any]:
    return {
        "type": "sale",
        "event_id": event_id,
        "ts": ts,
        "sku": "SHR-CAP-001",
        "market": market,
        "quantity": 1,
        "unit_price": price,
        "customer_id": customer,
    }


def _events() -> list[dict[str, Any]]:
    """Twelve new customers per town on Saturday; in the weeks after, 8 of Asbury Park's
    and 3 of Ocean Grove's come back (in either town)."""
    out = []
    for i in range(24):
        market = "asbury-park" if i < 12 else "ocean-grove"
        out.append(_sale(f"d{i}", SATURDAY.format(11 + i % 6), market, _customer(i), 24.99))
    back = [*range(8), *range(12, 15)]
    for k, i in enumerate(back):
        out.append(_sale(f"r{i}", LATER.format(16 + k), "ocean-grove", _customer(i), 20.0))
    return out


@pytest.fixture
def configs(tmp_path: Path) -> Path:
    return Path(
        shutil.copytree(CONFIGS, tmp_path / "configs", ignore=shutil.ignore_patterns("scenarios"))
    )


@pytest.fixture
def client(redis_url: str, configs: Path) -> Iterator[AppClient]:
    settings = Settings(
        redis_url=redis_url,
        config_dir=configs,
        api_keys={hash_api_key(POS_KEY): Role.pos},
        redis_timeout_ms=5000,
        rate_limit_enabled=False,
    )
    with AppClient(create_app(settings)) as c:
        yield c


def _everything_in(url: str) -> list[bytes]:
    """Every key, and every value of every key (strings, hashes, lists, sets, sorted sets,
    stream entries), as bytes."""
    r = redis.Redis.from_url(url)
    out: list[bytes] = []
    for key in r.scan_iter(count=1000):
        out.append(key)
        kind = r.type(key)
        if kind == b"string":
            out.append(r.get(key) or b"")
        elif kind == b"hash":
            out.extend(b for kv in r.hgetall(key).items() for b in kv)
        elif kind == b"list":
            out.extend(r.lrange(key, 0, -1))
        elif kind == b"set":
            out.extend(r.smembers(key))
        elif kind == b"zset":
            out.extend(r.zrange(key, 0, -1))
        elif kind == b"stream":
            for entry_id, fields in r.xrange(key):
                out.append(entry_id)
                out.extend(b for kv in fields.items() for b in kv)
    r.close()
    return out


def test_customer_ids_never_appear_as_sent_in_redis_logs_or_exports(
    client: AppClient,
    redis_url: str,
    configs: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    events = _events()
    # And a refused sale (unknown SKU) and an invalid one carrying a customer.
    bad_sku = _sale("bad1", SATURDAY.format(12), "asbury-park", _customer(900), 24.99)
    bad_sku["sku"] = "NOT-A-SKU"
    bad_qty = _sale("bad2", SATURDAY.format(12), "asbury-park", _customer(901), 24.99)
    bad_qty["quantity"] = 0
    too_long = "loyalty-" + "7" * 300  # refused: the reference itself is the bad field
    bad_id = _sale("bad3", SATURDAY.format(12), "asbury-park", too_long, 24.99)
    batch = [*events, bad_sku, bad_qty, bad_id]
    r = client.post("/v1/events", json={"events": batch}, headers=POS)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == len(events) and body["refused"] == 3
    raw_ids = [_customer(i) for i in (*range(24), 900, 901)] + [too_long[:40]]
    assert not any(c in r.text for c in raw_ids)

    stored = _everything_in(redis_url)
    for c in raw_ids:
        assert not any(c.encode() in b for b in stored), c
        assert c.split("@")[0].encode() not in b"".join(stored)
    # The sales did carry their customer, as a pseudonym: 24 new customers in the stream.
    pseudonyms = {b for b in stored if b.startswith(b"cust_")}
    assert len(pseudonyms) == 24

    report = CliRunner().invoke(
        cli,
        ["experiment", "report", DROP, "--redis-url", redis_url, "--config-dir", str(configs),
         "--json", "--as-of", "2027-01-20T00:00:00+00:00", "--n-boot", "500"],
    )  # fmt: skip
    assert report.exit_code == 0, report.output
    assert not any(c in report.stdout for c in raw_ids)
    customers = json.loads(report.stdout)["customers"]
    arms = {a["arm"]: a for a in customers["arms"]}
    assert customers["complete"] is True
    assert arms["boardwalk-waves"]["customers"] == arms["main-street-open"]["customers"] == 12
    assert arms["boardwalk-waves"]["repeat_rate"] == pytest.approx(8 / 12)
    assert arms["main-street-open"]["repeat_rate"] == pytest.approx(3 / 12)
    assert arms["boardwalk-waves"]["repeat_revenue"] == pytest.approx(8 * 20.0 / 12)

    logged = capfd.readouterr()
    text = (
        logged.out
        + logged.err
        + "\n".join(r.getMessage() + str(r.__dict__) for r in caplog.records)
    )
    assert text.strip()  # the service did log (access lines at least)
    assert not any(c in text for c in raw_ids)


def test_a_report_before_30_days_says_so(client: AppClient, redis_url: str, configs: Path) -> None:
    r = client.post("/v1/events", json={"events": _events()}, headers=POS)
    assert r.status_code == 200, r.text
    report = CliRunner().invoke(
        cli,
        ["experiment", "report", DROP, "--redis-url", redis_url, "--config-dir", str(configs),
         "--as-of", "2026-12-23T22:00:00+00:00", "--n-boot", "500"],
    )  # fmt: skip
    assert report.exit_code == 0, report.output
    assert "30 days have not passed yet: 10.0 of 30 days" in report.stdout
    assert "boardwalk-waves" in report.stdout and "repeat rate" in report.stdout


def test_the_store_writes_one_pseudonym_per_customer_on_a_node_and_a_cluster(
    any_redis_url: str,
) -> None:
    from service.store import EventRecord, PriceStore, connect

    store = PriceStore(connect(any_redis_url, timeout=2.0))
    try:
        store.seed_inventory("TEE", "town", 10)

        def sale(event_id: str, customer: str) -> EventRecord:
            fields = {"type": "sale", "event_id": event_id, "unit_price": "20.0"}
            return EventRecord(
                event_id, "sale", "TEE", "town", 1, {**fields, "customer_id": customer}
            )

        out = store.record_events([sale("a", "card-1"), sale("b", "card-2"), sale("c", "card-1")])
        assert [o.status for o in out] == ["accepted"] * 3
        entries = store.recent_events("TEE", since=None)
        names = [e.fields.get("customer_id") or e.fields.get(b"customer_id") for e in entries]
        names = [n.decode() if isinstance(n, bytes) else n for n in names]
        assert all(n.startswith("cust_") for n in names)
        assert names[0] == names[2] != names[1]  # one customer, one pseudonym
    finally:
        store.close()
