"""The live config in Redis drives the re-fits (issue #14).

An operator creates a drop over the API (``PUT /v1/drops/{id}``), terminals post its
sales, and ``dropprice refit`` / ``dropprice worker`` learn from them and publish
surfaces the service then serves. The worker's ``--config-dir`` names a folder
without that drop: it only seeds an empty Redis, so a re-fit that read it would find
"no sales of a configured SKU" and publish nothing. A guardrail changed over the API
reaches the next re-fit's surfaces the same way.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from asgi_client import AppClient
from refit_factories import ELASTIC, INELASTIC, MARKET, SimDrop, day_of_events, write_configs
from typer.testing import CliRunner

from service.app import create_app
from service.auth import hash_api_key
from service.cli import app as cli
from service.settings import Role, Settings

POS_KEY, OPERATOR_KEY = "pos-key-for-live-config", "operator-key-for-live-config"
POS = {"X-API-Key": POS_KEY}
OPERATOR = {"X-API-Key": OPERATOR_KEY}

pytestmark = pytest.mark.usefixtures("compile_cache")


@pytest.fixture
def drop(tmp_path: Path) -> SimDrop:
    """The simulated drop; its folder keeps only defaults and categories (no drop file)."""
    sim = write_configs(tmp_path / "configs", 6, inventory=1500)
    return sim


@pytest.fixture
def drop_body(drop: SimDrop) -> dict[str, Any]:
    """The drop as the operator PUTs it, taken out of the config folder."""
    path = drop.config_dir / "drops" / "sim-drop.yaml"
    body: dict[str, Any] = yaml.safe_load(path.read_text())
    path.unlink()
    return body


@pytest.fixture
def client(redis_url: str, drop: SimDrop, drop_body: dict[str, Any]) -> Iterator[AppClient]:
    settings = Settings(
        redis_url=redis_url,
        config_dir=drop.config_dir,
        api_keys={hash_api_key(POS_KEY): Role.pos, hash_api_key(OPERATOR_KEY): Role.operator},
        redis_timeout_ms=5000,
        rate_limit_enabled=False,
    )
    with AppClient(create_app(settings)) as c:
        yield c


def _put_drop(client: AppClient, body: dict[str, Any]) -> int:
    r = client.request("PUT", f"/v1/drops/{body['id']}", json=body, headers=OPERATOR)
    assert r.status_code == 200, r.text
    applied = r.json()
    assert applied["changed"], applied
    return int(applied["version"])


def _post(client: AppClient, events: list[dict[str, Any]]) -> None:
    for i in range(0, len(events), 1000):
        r = client.post("/v1/events", json={"events": events[i : i + 1000]}, headers=POS)
        assert r.status_code == 200, r.text
        statuses = {res["status"] for res in r.json()["results"]}
        assert statuses == {"accepted"}, r.json()["results"][:3]


def _served(client: AppClient, drop: SimDrop, version: str) -> dict[str, dict[str, Any]]:
    """``GET /v1/prices`` for every SKU once the service serves ``version``.

    The service follows a publish through its sync thread; this waits for it (up to
    10 s) and then asserts, so a price never served from the surface fails.
    """
    deadline = time.monotonic() + 10
    while True:
        body = {
            s: client.get(f"/v1/prices/{s}", params={"market": MARKET}, headers=POS).json()
            for s in drop.skus
        }
        done = all(b.get("version") == version for b in body.values())
        if done or time.monotonic() > deadline:
            assert done, body
            assert {b["source"] for b in body.values()} == {"surface"}, body
            return body
        time.sleep(0.05)


def _lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def _refit(redis_url: str, config_dir: Path, *extra: str) -> dict[str, Any]:
    result = CliRunner().invoke(
        cli,
        [
            "refit",
            "--redis-url",
            redis_url,
            "--config-dir",
            str(config_dir),
            "--device",
            "cpu",
            "--json",
            *extra,
        ],
    )
    assert result.exit_code == 0, result.output
    final = _lines(result.output)[-1]
    assert final["event"] == "refit", result.output
    return final


def test_a_drop_created_over_the_api_is_refitted_and_served(
    client: AppClient, redis_url: str, drop: SimDrop, drop_body: dict[str, Any]
) -> None:
    version = _put_drop(client, drop_body)
    base = {
        s: client.get(f"/v1/prices/{s}", params={"market": MARKET}, headers=POS).json()
        for s in drop.skus
    }
    assert {b["source"] for b in base.values()} == {"base"}
    _post(client, day_of_events(drop, rate=10.0, seed=11))

    record = _refit(redis_url, drop.config_dir, "--during-window", "--force")
    assert record["state"] == "published", record["reasons"]
    assert record["config_version"] == version
    assert record["events_read"] > 0 and record["summary"]["rows"] == len(drop.skus)

    served = _served(client, drop, record["version"])
    for sku in drop.skus:
        price, listed = served[sku]["price"], drop.list_price[sku]
        if drop.elasticity[sku] == ELASTIC:
            assert price < listed, (sku, price, listed)
        else:
            assert price > listed, (sku, price, listed)
    refit = client.get(f"/v1/admin/refits/{record['id']}", headers=OPERATOR).json()
    assert refit["config_version"] == version
    # The files were never applied: the one config version is the operator's.
    config = client.get("/v1/config", headers=OPERATOR).json()
    assert (config["version"], config["source"]) == (version, "redis")
    audit = client.get("/v1/audit", params={"kind": "config"}, headers=OPERATOR).json()
    assert [r["kind"] for r in audit["records"]] == ["config.apply"]


def test_a_guardrail_changed_over_the_api_reaches_the_next_refit(
    client: AppClient, redis_url: str, drop: SimDrop, drop_body: dict[str, Any]
) -> None:
    first_config = _put_drop(client, drop_body)
    _post(client, day_of_events(drop, rate=10.0, seed=11))
    first = _refit(redis_url, drop.config_dir)
    assert first["state"] == "published" and first["config_version"] == first_config
    before = _served(client, drop, first["version"])
    inelastic = [s for s in drop.skus if drop.elasticity[s] == INELASTIC]
    ceiling = {s: round(drop.list_price[s] * 1.05, 2) for s in inelastic}
    # The re-fit priced the inelastic SKUs above the ceiling about to be set.
    assert all(before[s]["price"] > ceiling[s] for s in inelastic), before

    for sku in drop_body["skus"]:
        if sku["sku"] in ceiling:
            sku["guardrails"]["ceiling"] = ceiling[sku["sku"]]
    second_config = _put_drop(client, drop_body)
    assert second_config > first_config

    # The operator asks for a re-fit; one worker tick runs it on the live config.
    r = client.post("/v1/admin/refit", json={"force": True}, headers=OPERATOR)
    assert r.status_code == 202, r.text
    result = CliRunner().invoke(
        cli,
        [
            "worker",
            "--redis-url",
            redis_url,
            "--config-dir",
            str(drop.config_dir),
            "--device",
            "cpu",
            "--once",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    second = client.get(f"/v1/admin/refits/{r.json()['id']}", headers=OPERATOR).json()
    assert second["state"] == "published", second["reasons"]
    assert second["config_version"] == second_config
    after = _served(client, drop, second["version"])
    for sku in inelastic:
        assert after[sku]["price"] <= ceiling[sku], (sku, after[sku]["price"], ceiling[sku])
    for sku in set(drop.skus) - set(inelastic):  # untouched guardrails: still below list
        assert after[sku]["price"] < drop.list_price[sku]
