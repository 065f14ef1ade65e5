"""``dropprice rollback`` restores a version whole, or refuses and names what would stay.

Versions here are shaped like a re-fit's: f1 priced A, B and C; f2's re-fit held C for
approval and published A and B; the approval published C alone as f3. Rolling back
from f3 to f2 would have kept C on the approved f3 surface.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from service.cli import app as cli
from service.rollback import RollbackRefused, plan_rollback, rollback_whole
from service.store import PriceStore, SurfaceRecord

MARKET = "nyc"


def _surface(base: float) -> SurfaceRecord:
    return SurfaceRecord(
        price=np.full((4, 2), base),
        period_start=datetime.now(UTC) - timedelta(minutes=5),
        period_seconds=3600,
        guardrail_codes=np.zeros((4, 2), dtype=np.int8),
        currency="USD",
        elasticity={"beta": -1.5},
    )


def _publish(store: PriceStore, version: str, skus: list[str], base: float) -> None:
    store.publish_surfaces(version, {(sku, MARKET): _surface(base) for sku in skus})


def _shaped(store: PriceStore) -> None:
    _publish(store, "v1-f1", ["A", "B", "C"], 10.0)
    _publish(store, "v2-f2", ["A", "B"], 20.0)
    _publish(store, "v3-f3", ["C"], 30.0)


def _live(store: PriceStore) -> dict[str, str]:
    return {sku: m[MARKET] for sku, m in store.live_pointers(["A", "B", "C"]).items()}


def test_rollback_that_would_leave_an_approved_price_live_is_refused(
    store: PriceStore, redis_url: str
) -> None:
    _shaped(store)
    result = CliRunner().invoke(cli, ["rollback", "--redis-url", redis_url])
    assert result.exit_code == 2, result.output
    assert "refused" in result.output
    assert "C/nyc (live on v3-f3)" in result.output
    assert "v1-f1" in result.output  # the version that would restore whole
    # Nothing moved.
    assert _live(store) == {"A": "v2-f2", "B": "v2-f2", "C": "v3-f3"}
    assert store.live_version() == "v3-f3"


def test_rollback_to_a_version_that_covers_every_served_pair_restores_it_whole(
    store: PriceStore, redis_url: str
) -> None:
    _shaped(store)
    result = CliRunner().invoke(cli, ["rollback", "--to", "v1-f1", "--redis-url", redis_url])
    assert result.exit_code == 0, result.output
    assert _live(store) == {"A": "v1-f1", "B": "v1-f1", "C": "v1-f1"}
    listing = CliRunner().invoke(cli, ["versions", "--json", "--redis-url", redis_url])
    rows = [json.loads(line) for line in listing.output.splitlines() if line.startswith("{")]
    assert {r["version"]: r["live"] for r in rows} == {
        "v3-f3": False,
        "v2-f2": False,
        "v1-f1": True,
    }
    # live and status agree on every row.
    assert all((r["status"] == "live") == r["live"] for r in rows), rows


def test_plan_names_what_stays_and_whole_rollback_moves_nothing_when_refused(
    store: PriceStore,
) -> None:
    _shaped(store)
    plan = plan_rollback(store, "v2-f2")
    assert plan.stays == (("C", MARKET, "v3-f3"),)
    assert plan.whole == ("v1-f1",)
    try:
        rollback_whole(store, "v2-f2")
    except RollbackRefused as exc:
        assert exc.plan == plan
    else:
        raise AssertionError("rollback to v2-f2 should have been refused")
    assert _live(store)["C"] == "v3-f3"
    # A version that covers every pair served rolls back as before.
    _, result = rollback_whole(store, "v1-f1")
    assert result.version == "v1-f1" and result.surfaces == 3


def test_console_rollback_says_what_would_stay_and_refuses(
    store: PriceStore, redis_url: str, tmp_path: Path
) -> None:
    from service.app import create_app
    from service.auth import hash_api_key
    from service.settings import Role, Settings
    from tests.service.asgi_client import AppClient
    from tests.service.refit_factories import write_configs

    _shaped(store)
    settings = Settings(
        redis_url=redis_url,
        config_dir=write_configs(tmp_path / "configs", 1).config_dir,
        api_keys={hash_api_key("admin-key-rollback"): Role.admin},
        redis_timeout_ms=5000,
        rate_limit_enabled=False,
    )
    admin = {"X-API-Key": "admin-key-rollback", "X-Actor": "Dana Reyes"}
    with AppClient(create_app(settings)) as client:
        said = client.post("/v1/console/rollback", json={"confirm": False}, headers=admin)
        assert said.status_code == 200, said.text
        assert said.json()["done"] is False
        assert "C/nyc (live on v3-f3)" in said.json()["message"]
        done = client.post("/v1/console/rollback", json={"confirm": True}, headers=admin)
        assert done.status_code == 409, done.text
        assert "C/nyc (live on v3-f3)" in done.text
        assert _live(store) == {"A": "v2-f2", "B": "v2-f2", "C": "v3-f3"}
        whole = client.post(
            "/v1/console/rollback", json={"confirm": True, "to": "v1-f1"}, headers=admin
        )
        assert whole.status_code == 200, whole.text
    assert _live(store) == {"A": "v1-f1", "B": "v1-f1", "C": "v1-f1"}
