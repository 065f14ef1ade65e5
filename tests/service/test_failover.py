"""Failover SKUs declared in a drop config: validated at load, named by ``plan-stock``
and by the explain route, against a real redis-server and the real app."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
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


def _jacket_configs(root: Path) -> Path:
    """Three colourways in one town, stocked as the shipped choice scenario."""
    shutil.copytree(CONFIGS, root, ignore=shutil.ignore_patterns("scenarios", "drops"))
    (root / "drops").mkdir()
    colours = {"JACKET-BLACK": 15, "JACKET-OLIVE": 40, "JACKET-SAND": 40}
    drop = {
        "id": "jackets",
        "markets": ["ocean-grove"],
        "windows": [{"start": "2027-03-01T10:00:00+00:00", "end": "2027-03-03T10:00:00+00:00"}],
        "skus": [
            {"sku": s, "category": "apparel", "list_price": 110.0, "unit_cost": 35.0,
             "inventory": {"ocean-grove": n}, "guardrails": {"floor": 80.0, "ceiling": 140.0}}
            for s, n in colours.items()
        ],
    }  # fmt: skip
    (root / "drops" / "jackets.yaml").write_text(yaml.safe_dump(drop))
    return root


def test_plan_stock_names_the_failover_the_stock_outs_show(redis_url: str, tmp_path: Path) -> None:
    """A drop where the scarce colourway sold out (the simulator's choice truth at list
    prices): the re-fit's sales show where its shoppers went."""
    import numpy as np

    from pricing.baselines import FixedPolicy
    from pricing.scenario import load_scenario
    from pricing.simulate import run_policy
    from pricing.world import build_world

    world = build_world(load_scenario(CONFIGS / "scenarios" / "truth-choice-variants.yaml"))
    u = np.clip(np.random.default_rng([0, 1]).random(world.truth.intensity.shape), 1e-9, 1)
    run = run_policy(world, FixedPolicy(world), u)
    assert run.sales_path[0].sum() == 15  # the black jacket sold out
    # The drop ran over the last three days (the re-fit reads recent events).
    recent = pd.Timestamp.now(tz="UTC").floor("D") - pd.Timedelta(days=3)
    events = [
        {
            "type": "sale",
            "event_id": f"s{r}-{t}",
            "ts": (recent + pd.Timedelta(hours=int(world.hours[t]))).isoformat(),
            "sku": str(world.sku[r]),
            "market": "ocean-grove",
            "quantity": int(run.sales_path[r, t]),
            "unit_price": 110.0,
        }
        for r, t in zip(*np.nonzero(run.sales_path), strict=True)
    ]
    configs = _jacket_configs(tmp_path / "configs")
    settings = Settings(
        redis_url=redis_url,
        config_dir=configs,
        api_keys={hash_api_key(POS_KEY): Role.pos},
        redis_timeout_ms=5000,
        rate_limit_enabled=False,
    )
    with AppClient(create_app(settings)) as client:
        r = client.post("/v1/events", json={"events": events}, headers={"X-API-Key": POS_KEY})
        assert r.status_code == 200 and r.json()["accepted"] == len(events), r.text
    store = PriceStore(connect(redis_url, timeout=30.0))
    record = Refitter(store, load_config_dir(configs), device="cpu").run(force=True)
    assert record.state == "published", record.reasons
    store.close()
    args = ["plan-stock", "jackets", "--json", "--redis-url", redis_url, "--config-dir"]
    result = CliRunner().invoke(cli, [*args, str(configs)])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    black = next(f for f in body["failover"] if f["sku"] == "JACKET-BLACK")
    assert black["source"] == "sales"
    assert black["absorbed_by"] in {"JACKET-OLIVE", "JACKET-SAND"}
    assert 0.05 < black["share"] < 0.6  # the truth moves about a fifth to each
    assert not any(f["sku"] != "JACKET-BLACK" for f in body["failover"])  # none sold out
