"""Experiment arms in the service: fixed-price arms serve the list price, wave arms hold
stock back and release it in waves, exactly once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import redis
import yaml

from service.app import create_app
from service.auth import hash_api_key
from service.config.loader import load_config_dir
from service.settings import Role, Settings
from service.store import PriceStore, SurfaceRecord, connect
from service.waves import WaveReleaser, initial_inventory, wave_plan
from tests.service.asgi_client import AppClient

POS_KEY = "pos-key-for-arm-tests"
POS = {"X-API-Key": POS_KEY}


def test_wave_plan_spreads_stock_over_the_open_time():
    bundle = load_config_dir(Path("configs"))
    drop = next(d for d in bundle.drops if d.id == "weekend-popup-two-towns")
    tee = drop.sku_config("SHR-TEE-001")
    plan = wave_plan(drop, tee, "asbury-park")  # boardwalk-waves: 3 waves
    assert [q for _, q in plan] == [60, 60, 60]
    sat, sun = drop.windows
    # 8 h + 6 h of open time: waves at 0, 4h40 and 9h20 of it (1h20 into Sunday).
    assert plan[0][0] == sat.start
    assert plan[1][0] == sat.start + timedelta(hours=14 / 3)
    assert plan[2][0] == sun.start + timedelta(hours=28 / 3 - 8)
    assert wave_plan(drop, tee, "ocean-grove") == [(sat.start, 90)]  # all at once
    assert initial_inventory(drop, tee) == {"asbury-park": 60, "ocean-grove": 90}


def _configs(root: Path, opened: datetime) -> Path:
    (root / "drops").mkdir(parents=True)
    (root / "defaults.yaml").write_text(yaml.safe_dump({"currency": "USD"}))
    (root / "categories.yaml").write_text(
        yaml.safe_dump({"categories": {"tees": {"mean": -1.5, "sd": 1.0}}})
    )
    drop = {
        "id": "arms-drop",
        "markets": ["engine-town", "fixed-town", "wave-town"],
        "windows": [
            {"start": opened.isoformat(), "end": (opened + timedelta(hours=4)).isoformat()}
        ],
        "arms": [
            {"name": "engine", "markets": ["engine-town"]},
            {"name": "fixed", "markets": ["fixed-town"], "pricing": "fixed"},
            {"name": "waves", "markets": ["wave-town"], "release": "waves", "waves": 4},
        ],
        "skus": [
            {
                "sku": "ARM-TEE",
                "category": "tees",
                "list_price": 20.0,
                "inventory": {"engine-town": 40, "fixed-town": 40, "wave-town": 40},
            }
        ],
    }
    (root / "drops" / "arms-drop.yaml").write_text(yaml.safe_dump(drop))
    return root


@pytest.fixture
def arms_app(redis_url: str, tmp_path: Path) -> Iterator[AppClient]:
    # Opened 1.5 h ago: of 4 waves over 4 h, waves 0 and 1 are due, 2 and 3 are not.
    opened = (datetime.now(UTC) - timedelta(minutes=90)).replace(microsecond=0)
    settings = Settings(
        redis_url=redis_url,
        config_dir=_configs(tmp_path / "configs", opened),
        api_keys={hash_api_key(POS_KEY): Role.pos},
        redis_timeout_ms=5000,
        rate_limit_enabled=False,
        resync_interval_s=0.2,
    )
    with AppClient(create_app(settings)) as c:
        yield c


def _inventory(client: AppClient, market: str) -> int:
    r = client.get("/v1/prices/ARM-TEE", params={"market": market}, headers=POS)
    assert r.status_code == 200, r.text
    return int(r.json()["inventory"])


def test_wave_arm_releases_due_waves_once(arms_app: AppClient, redis_url: str) -> None:
    deadline = time.monotonic() + 10
    while _inventory(arms_app, "wave-town") < 20 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _inventory(arms_app, "wave-town") == 20  # waves 0 and 1 of 10 units each
    assert _inventory(arms_app, "engine-town") == 40  # all at once
    time.sleep(1.0)  # several more resyncs: nothing released twice
    assert _inventory(arms_app, "wave-town") == 20
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    store = PriceStore(client)
    restocks = [
        e.fields for e in store.recent_events("ARM-TEE") if e.fields.get("type") == "restock"
    ]
    assert [(f["market"], f["wave"], f["quantity"]) for f in restocks] == [("wave-town", "1", "10")]
    client.close()
    # A second process (another worker) trying the same waves applies nothing.
    other = PriceStore(connect(redis_url))
    releaser = WaveReleaser(
        other, lambda: load_config_dir(Path(arms_app.app.state.service.settings.config_dir))
    )
    assert releaser.release_due() == 0
    other.close()


def test_fixed_arm_serves_the_list_price_over_a_published_surface(
    arms_app: AppClient, redis_url: str
) -> None:
    store = PriceStore(connect(redis_url))
    now = datetime.now(UTC) - timedelta(hours=1)
    surface = SurfaceRecord(price=np.full((41, 8), 27.5), period_start=now, period_seconds=3600)
    store.publish_surfaces(
        "v-arms-1", {("ARM-TEE", "engine-town"): surface, ("ARM-TEE", "fixed-town"): surface}
    )
    store.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        engine = arms_app.get("/v1/prices/ARM-TEE", params={"market": "engine-town"}, headers=POS)
        if engine.json()["source"] == "surface":
            break
        time.sleep(0.1)
    assert engine.json()["price"] == 27.5
    fixed = arms_app.get("/v1/prices/ARM-TEE", params={"market": "fixed-town"}, headers=POS)
    assert (fixed.json()["price"], fixed.json()["source"]) == (20.0, "base")
