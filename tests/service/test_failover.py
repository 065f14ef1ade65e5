"""Failover SKUs declared in a drop config: validated at load, named by ``plan-stock``
and by the explain route, against a real redis-server and the real app."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from service.app import create_app
from service.auth import hash_api_key
from service.cli import app as cli
from service.config.loader import load_config_dir
from service.exceptions import ConfigError
from service.refit import Refitter
from service.settings import Role, Settings
from service.store import PriceStore, connect
from tests.service.asgi_client import AppClient
from tests.service.refit_factories import MARKET, SimDrop, day_of_events, write_configs

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
DROP = "weekend-popup-two-towns"
POS_KEY, OPERATOR_KEY = "pos-key-for-failover-tests", "operator-key-for-failover-tests"


def _with_failover(src: Path, dst: Path, drop: str, pairs: list[dict[str, Any]]) -> Path:
    shutil.copytree(src, dst)
    path = dst / "drops" / f"{drop}.yaml"
    body = yaml.safe_load(path.read_text())
    body["failover"] = pairs
    path.write_text(yaml.safe_dump(body))
    return dst


def test_a_failover_to_a_sku_outside_the_drop_is_refused_naming_the_field(tmp_path: Path) -> None:
    bad = [{"sku": "SHR-TEE-001", "to": "NOT-SOLD-HERE", "share": 0.3}]
    configs = _with_failover(CONFIGS, tmp_path / "configs", DROP, bad)
    with pytest.raises(ConfigError) as err:
        load_config_dir(configs)
    assert "failover" in str(err.value) and "unknown SKU 'NOT-SOLD-HERE'" in str(err.value)
    shutil.rmtree(configs)
    share = [{"sku": "SHR-TEE-001", "to": "SHR-HOOD-001", "share": 1.5}]
    with pytest.raises(ConfigError, match="share"):
        load_config_dir(_with_failover(CONFIGS, tmp_path / "configs", DROP, share))


def test_plan_stock_names_the_declared_failover_sku_and_share(
    redis_url: str, tmp_path: Path
) -> None:
    pairs = [{"sku": "SHR-TEE-001", "to": "SHR-HOOD-001", "share": 0.3}]
    configs = _with_failover(CONFIGS, tmp_path / "configs", DROP, pairs)
    args = ["plan-stock", DROP, "--redis-url", redis_url, "--config-dir", str(configs)]
    result = CliRunner().invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    tees = [r for r in body["rows"] if r["sku"] == "SHR-TEE-001"]
    assert tees and all(
        (r["failover_sku"], r["failover_share"], r["failover_source"])
        == ("SHR-HOOD-001", 0.3, "config")
        for r in tees
    )
    assert not any("failover_sku" in r for r in body["rows"] if r["sku"] != "SHR-TEE-001")
    assert {(f["sku"], f["market"]) for f in body["failover"]} == {
        ("SHR-TEE-001", "asbury-park"),
        ("SHR-TEE-001", "ocean-grove"),
    }
    text = CliRunner().invoke(cli, args)
    assert text.exit_code == 0, text.output
    assert "if SHR-TEE-001 sells out in asbury-park: 30% of its shoppers expected to buy" in (
        text.stdout
    )


@pytest.fixture
def drop(tmp_path: Path) -> SimDrop:
    sim = write_configs(tmp_path / "configs", 2, inventory=300)
    path = sim.config_dir / "drops" / "sim-drop.yaml"
    body = yaml.safe_load(path.read_text())
    body["failover"] = [{"sku": sim.skus[0], "to": sim.skus[1], "share": 0.25}]
    path.write_text(yaml.safe_dump(body))
    return sim


@pytest.fixture
def client(redis_url: str, drop: SimDrop) -> Iterator[AppClient]:
    settings = Settings(
        redis_url=redis_url,
        config_dir=drop.config_dir,
        api_keys={hash_api_key(POS_KEY): Role.pos, hash_api_key(OPERATOR_KEY): Role.operator},
        redis_timeout_ms=5000,
        rate_limit_enabled=False,
    )
    with AppClient(create_app(settings)) as c:
        yield c


def test_explain_names_the_sku_that_absorbs_demand(
    client: AppClient, redis_url: str, drop: SimDrop
) -> None:
    events = day_of_events(drop, rate=10.0, seed=5, announcements=False)
    for i in range(0, len(events), 1000):
        r = client.post(
            "/v1/events", json={"events": events[i : i + 1000]}, headers={"X-API-Key": POS_KEY}
        )
        assert r.status_code == 200, r.text
    store = PriceStore(connect(redis_url, timeout=30.0))
    record = Refitter(store, load_config_dir(drop.config_dir), device="cpu").run(force=True)
    assert record.state == "published", record.reasons
    operator = {"X-API-Key": OPERATOR_KEY}
    got = {}
    for sku in drop.skus:
        r = client.get(f"/v1/skus/{sku}/explain", params={"market": MARKET}, headers=operator)
        assert r.status_code == 200, r.text
        got[sku] = r.json()["failover"]
    assert got[drop.skus[0]] == {"sku": drop.skus[1], "share": 0.25, "source": "config"}
    assert got[drop.skus[1]] is None
