"""End to end: the service takes a day of drop events over HTTP, ``dropprice refit`` learns
from them, prices move the way the simulated elasticities say, ``dropprice rollback``
restores the previous prices; operators drive re-fits and approvals over HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asgi_client import AppClient
from refit_factories import (
    ELASTIC,
    MARKET,
    SimDrop,
    day_of_events,
    write_configs,
)
from typer.testing import CliRunner

from service.app import create_app
from service.auth import hash_api_key
from service.cli import app as cli
from service.settings import Role, Settings

POS_KEY, OPERATOR_KEY = "pos-key-for-refit-tests", "operator-key-for-refit-tests"
POS = {"X-API-Key": POS_KEY}
OPERATOR = {"X-API-Key": OPERATOR_KEY}


pytestmark = pytest.mark.usefixtures("compile_cache")


@pytest.fixture
def drop(tmp_path: Path) -> SimDrop:
    # Enough stock for the simulated day and the window that follows.
    return write_configs(tmp_path / "configs", 6, inventory=1500)


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


def _post(client: AppClient, events: list[dict[str, Any]]) -> None:
    for i in range(0, len(events), 1000):
        r = client.post("/v1/events", json={"events": events[i : i + 1000]}, headers=POS)
        assert r.status_code == 200, r.text
        statuses = {res["status"] for res in r.json()["results"]}
        assert statuses <= {"accepted", "duplicate"}, r.json()["results"][:3]


def _prices(client: AppClient, drop: SimDrop, version: str | None) -> dict[str, float]:
    """Prices served once the service shows ``version`` (it follows publishes live)."""
    deadline = time.monotonic() + 10
    while True:
        body = {
            s: client.get(f"/v1/prices/{s}", params={"market": MARKET}, headers=POS).json()
            for s in drop.skus
        }
        if all(b.get("version") == version for b in body.values()) or time.monotonic() > deadline:
            assert all(b.get("version") == version for b in body.values()), body
            return {s: float(b["price"]) for s, b in body.items()}
        time.sleep(0.05)


def _cli(redis_url: str, *args: str) -> Any:
    result = CliRunner().invoke(cli, [*args, "--redis-url", redis_url])
    return result


def _refit(redis_url: str, drop: SimDrop) -> dict[str, Any]:
    result = _cli(
        redis_url, "refit", "--config-dir", str(drop.config_dir), "--device", "cpu", "--json"
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    stages = [ln["stage"] for ln in lines if ln.get("event") == "stage"]
    assert stages == ["panel", "intensity", "fit", "solve", "validate", "publish"]
    final = lines[-1]
    assert final["event"] == "refit"
    return final


def test_events_over_http_refit_moves_prices_and_rollback_restores(
    client: AppClient, redis_url: str, drop: SimDrop
) -> None:
    base = _prices(client, drop, None)
    assert base == drop.list_price
    _post(client, day_of_events(drop, rate=10.0, seed=11))

    first = _refit(redis_url, drop)
    assert first["state"] == "published", first["reasons"]
    learned = _prices(client, drop, first["version"])
    for sku in drop.skus:
        if drop.elasticity[sku] == ELASTIC:
            assert learned[sku] < base[sku], (sku, learned[sku], base[sku])
        else:
            assert learned[sku] > base[sku], (sku, learned[sku], base[sku])

    # A few more hours of sales, another re-fit: a second version goes live.
    later = day_of_events(drop, rate=10.0, seed=12, hours=3, announcements=False)
    for e in later:
        e["event_id"] += "-later"
    _post(client, later)
    second = _refit(redis_url, drop)
    assert second["state"] == "published" and second["version"] != first["version"]
    _prices(client, drop, second["version"])

    result = _cli(redis_url, "rollback")
    assert result.exit_code == 0, result.output
    assert first["version"] in result.output
    restored = _prices(client, drop, first["version"])
    # Same surface, same units left as when it was live: the same prices.
    listing = _cli(redis_url, "versions", "--json")
    rows = [json.loads(line) for line in listing.output.splitlines()]
    assert [r["version"] for r in rows] == [second["version"], first["version"]]
    assert next(r for r in rows if r["live"])["version"] == first["version"]
    assert rows[0]["fit"]["rows"] == len(drop.skus)
    for sku in drop.skus:
        if drop.elasticity[sku] == ELASTIC:
            assert restored[sku] < base[sku]
        else:
            assert restored[sku] > base[sku]


def test_operator_requests_a_refit_and_reads_its_record(
    client: AppClient, redis_url: str, drop: SimDrop
) -> None:
    assert client.post("/v1/admin/refit", headers=POS).status_code == 403
    r = client.post("/v1/admin/refit", json={"force": True}, headers=OPERATOR)
    assert r.status_code == 202, r.text
    queued = r.json()
    assert queued["state"] == "queued"
    _post(client, day_of_events(drop, rate=10.0, seed=11))
    # One worker tick runs the queued request.
    result = _cli(
        redis_url,
        "worker",
        "--config-dir",
        str(drop.config_dir),
        "--device",
        "cpu",
        "--once",
        "--json",
    )
    assert result.exit_code == 0, result.output
    record = client.get(f"/v1/admin/refits/{queued['id']}", headers=OPERATOR).json()
    assert record["state"] == "published", record
    assert [s["name"] for s in record["stages"]] == [
        "panel",
        "intensity",
        "fit",
        "solve",
        "validate",
        "publish",
    ]
    assert record["device"].startswith("cpu") and record["version"]
    assert client.get("/v1/admin/refits/r-unknown", headers=OPERATOR).status_code == 404
    listed = client.get("/v1/admin/refits", headers=OPERATOR).json()["refits"]
    assert listed[0]["id"] == queued["id"]


def test_held_changes_are_approved_over_http(
    client: AppClient, redis_url: str, drop: SimDrop, tmp_path: Path
) -> None:
    banded = write_configs(tmp_path / "banded", 6, inventory=1500, approval_band_pct=5.0)
    _post(client, day_of_events(drop, rate=10.0, seed=11))
    held = _cli(
        redis_url, "refit", "--config-dir", str(banded.config_dir), "--device", "cpu", "--json"
    )
    final = json.loads(held.output.splitlines()[-1])
    # Changes inside the band are published, the others wait (all of them: "held").
    assert final["state"] in ("held", "published"), final
    assert final["approval_id"] is not None
    approvals = client.get("/v1/admin/approvals", headers=OPERATOR).json()["approvals"]
    assert [a["id"] for a in approvals] == [final["approval_id"]]
    held_skus = {c["sku"] for c in approvals[0]["changes"]}
    assert held_skus and all(abs(c["change_pct"]) > 5.0 for c in approvals[0]["changes"])
    assert len([r for r in final["reasons"] if "approval band" in r]) == len(held_skus)
    for sku in held_skus:  # still on the list price until approved
        body = client.get(f"/v1/prices/{sku}", params={"market": MARKET}, headers=POS).json()
        assert body["source"] == "base" and body["price"] == drop.list_price[sku]
    bad = client.post(
        f"/v1/admin/approvals/{final['approval_id']}", json={"decision": "maybe"}, headers=OPERATOR
    )
    assert bad.status_code == 422
    r = client.post(
        f"/v1/admin/approvals/{final['approval_id']}",
        json={"decision": "approve", "note": "checked"},
        headers={**OPERATOR, "X-Actor": "Dana Reyes"},
    )
    assert r.status_code == 200, r.text
    decided = r.json()
    assert decided["status"] == "approved" and decided["version"]
    assert decided["decided_by"] == "Dana Reyes"  # a person, not a key
    for change in approvals[0]["changes"]:
        body = client.get(f"/v1/prices/{change['sku']}", params={"market": MARKET}, headers=POS)
        deadline = time.monotonic() + 10
        while body.json()["version"] != decided["version"] and time.monotonic() < deadline:
            time.sleep(0.05)
            body = client.get(f"/v1/prices/{change['sku']}", params={"market": MARKET}, headers=POS)
        assert body.json()["price"] == pytest.approx(change["new_price"], abs=0.01)
    assert client.get("/v1/admin/approvals", headers=OPERATOR).json()["approvals"] == []
    again = client.post(
        f"/v1/admin/approvals/{final['approval_id']}",
        json={"decision": "reject"},
        headers={**OPERATOR, "X-Actor": "Dana Reyes"},
    )
    assert again.status_code == 404
