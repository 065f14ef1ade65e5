"""``dropprice explain``, ``preview``, ``approvals``, ``audit``: the operator API on the CLI.

The CLI reads the same Redis and calls the same functions as the routes, so its answers
equal the API's; an approval's ``decided_by`` is the person named (``--as`` on the CLI,
``X-Actor`` on the API), never a key.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from service.app import create_app
from service.auth import hash_api_key
from service.cli import app as cli
from service.config.versions import live_config
from service.refit import Refitter
from service.settings import Role, Settings
from service.store import PriceStore, connect
from tests.service.asgi_client import AppClient
from tests.service.refit_factories import ELASTIC, MARKET, SimDrop, day_of_events, write_configs

ROOT = Path(__file__).resolve().parents[2]
POS_KEY, OPERATOR_KEY = "pos-key-for-operator-cli", "operator-key-for-operator-cli"
POS = {"X-API-Key": POS_KEY}
OPERATOR = {"X-API-Key": OPERATOR_KEY}


@pytest.fixture
def drop(tmp_path: Path) -> SimDrop:
    # A 1 % approval band: the first re-fit's price changes are all held for an operator.
    return write_configs(tmp_path / "configs", 2, inventory=300, approval_band_pct=1.0)


@pytest.fixture
def client(redis_url: str, drop: SimDrop) -> Iterator[AppClient]:
    settings = Settings(
        redis_url=redis_url,
        config_dir=drop.config_dir,
        api_keys={hash_api_key(POS_KEY): Role.pos, hash_api_key(OPERATOR_KEY): Role.operator},
        redis_timeout_ms=5000,
        rate_limit_enabled=False,
        resync_interval_s=0.5,
    )
    with AppClient(create_app(settings)) as c:
        yield c


def _until(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (got := check()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return got


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _cli(redis_url: str, *args: str) -> Any:
    return CliRunner().invoke(cli, [*args, "--redis-url", redis_url])


def _held_refit(redis_url: str, drop: SimDrop, client: AppClient) -> str:
    """A day of sales, then a re-fit whose every change is held: the approval id."""
    store = PriceStore(connect(redis_url, timeout=30.0))
    events = day_of_events(drop, rate=10.0, seed=5, announcements=False)
    for i in range(0, len(events), 1000):
        r = client.post("/v1/events", json={"events": events[i : i + 1000]}, headers=POS)
        assert r.status_code == 200, r.text
    for s in drop.skus:
        store.set_inventory(s, MARKET, drop.inventory)
    live = live_config(store.client, drop.config_dir)
    assert live is not None
    record = Refitter(store, live.bundle, device="cpu").run(force=True)
    assert record.approval_id is not None, record.reasons
    return record.approval_id


def test_operator_cli_matches_the_api(client: AppClient, redis_url: str, drop: SimDrop) -> None:
    sku = next(s for s in drop.skus if drop.elasticity[s] == ELASTIC)
    approval_id = _held_refit(redis_url, drop, client)

    # approvals: the held change is listed, then approved in a person's name.
    listed = _cli(redis_url, "approvals", "--json")
    assert listed.exit_code == 0, listed.output
    rows = [json.loads(line) for line in listed.output.splitlines() if line.startswith("{")]
    assert [r["id"] for r in rows] == [approval_id]
    text = _cli(redis_url, "approvals")
    assert approval_id in text.output and "band 1 %" in text.output
    nameless = CliRunner().invoke(
        cli, ["approvals", "--redis-url", redis_url, "approve", approval_id]
    )
    assert nameless.exit_code == 2 and "--as" in nameless.output
    done = CliRunner().invoke(
        cli,
        ["approvals", "--redis-url", redis_url, "approve", approval_id, "--as", "Dana Reyes",
         "--note", "checked the queue"],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert f"{approval_id} approved by Dana Reyes: published as v" in done.output
    version = done.output.rsplit("published as ", 1)[1].split()[0]
    served = _until(
        lambda: (
            p
            if (p := client.get(f"/v1/prices/{sku}", headers=POS).json())["version"] == version
            else None
        )
    )
    assert served, "the approved version was never served"

    # explain: the same answer as GET /v1/skus/{sku}/explain.
    api = client.get(f"/v1/skus/{sku}/explain", params={"market": MARKET}, headers=OPERATOR)
    assert api.status_code == 200, api.text
    got = _cli(redis_url, "explain", sku, "--json")
    assert got.exit_code == 0, got.output
    mine = json.loads(got.stdout)
    theirs = api.json()
    for key in ("served", "bound_by", "units_left", "optimum", "guardrails"):
        assert mine[key] == theirs[key], key
    # The same surface cell (the API writes times with Z, the CLI's JSON with +00:00).
    start = mine["surface"].pop("period_start")
    assert _when(start) == _when(theirs["surface"].pop("period_start"))
    assert mine["surface"] == theirs["surface"]
    assert mine["served"]["price"] == served["price"]
    text = _cli(redis_url, "explain", sku)
    assert f"{sku} @ {MARKET}: {served['price']:.2f} USD" in text.output
    assert "bound by:" in text.output and "elasticity:" in text.output

    # preview: the same candidate as POST /v1/skus/{sku}/preview.
    floor = round(served["price"] * 1.3, 2)
    api = client.post(
        f"/v1/skus/{sku}/preview", json={"guardrails": {"floor": floor}}, headers=OPERATOR
    )
    assert api.status_code == 200, api.text
    got = _cli(redis_url, "preview", sku, "--set", f"guardrails.floor={floor}", "--json")
    assert got.exit_code == 0, got.output
    mine = json.loads(got.stdout)
    assert mine["candidate"]["price_now"] == api.json()["candidate"]["price_now"] >= floor
    assert mine["candidate"]["surface"] == api.json()["candidate"]["surface"]
    text = _cli(redis_url, "preview", sku, "--set", f"guardrails.floor={floor}")
    assert "expected revenue" in text.output and "nothing published" in text.output
    same = json.loads(_cli(redis_url, "preview", sku, "--json").stdout)  # no change
    assert same["candidate"]["price_now"] == same["live"]["price_now"] == served["price"]
    bad = _cli(redis_url, "preview", sku, "--set", "guardrails.ceiling=0.5")
    assert bad.exit_code == 1 and "guardrails.ceiling" in bad.output

    # audit: the approval is recorded under the person's name.
    got = _cli(redis_url, "audit", "--kind", "refit", "--json")
    assert got.exit_code == 0, got.output
    records = [json.loads(line) for line in got.output.splitlines() if line.startswith("{")]
    approve = [r for r in records if r["kind"] == "refit.approve"]
    assert approve and approve[-1]["actor"] == "Dana Reyes"
    assert approve[-1]["detail"]["note"] == "checked the queue"
    text = _cli(redis_url, "audit")
    assert "refit.approve" in text.output and "Dana Reyes" in text.output


def test_api_approval_needs_a_person(client: AppClient, redis_url: str, drop: SimDrop) -> None:
    approval_id = _held_refit(redis_url, drop, client)
    path = f"/v1/admin/approvals/{approval_id}"
    r = client.post(path, json={"decision": "reject"}, headers=OPERATOR)
    assert r.status_code == 422, r.text
    assert "x-actor" in r.text.lower()
    r = client.post(path, json={"decision": "reject"}, headers={**OPERATOR, "X-Actor": "Sam Ortiz"})
    assert r.status_code == 200, r.text
    assert r.json()["decided_by"] == "Sam Ortiz"


def test_cli_never_imports_route_modules() -> None:
    code = (
        "import sys, service.cli, service.commands.operator, service.operator_tools;"
        "print(sorted(m for m in sys.modules if m.startswith('service.routes')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
