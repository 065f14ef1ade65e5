"""``config diff --impact`` re-solves the affected SKUs; ``serve``'s startup configs are a
version; ``config history`` has headers and notes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from service.app import create_app
from service.cli import app as cli
from service.config.versions import ConfigStore, live_config, seed_startup_config
from service.refit import Refitter
from service.settings import Settings
from service.store import PriceStore, connect
from tests.service.asgi_client import AppClient
from tests.service.refit_factories import ELASTIC, MARKET, SimDrop, day_of_events, write_configs


@pytest.fixture
def drop(tmp_path: Path) -> SimDrop:
    return write_configs(tmp_path / "configs", 2, inventory=300)


def _drop_file(drop: SimDrop) -> Path:
    return drop.config_dir / "drops" / "sim-drop.yaml"


def test_startup_configs_become_a_version_and_say_whether_files_differ(
    redis_url: str, drop: SimDrop
) -> None:
    first = seed_startup_config(redis_url, drop.config_dir, actor="dropprice serve")
    assert first.startswith("config version 1 is live: the startup configs")
    live = ConfigStore(connect(redis_url, timeout=5)).live()
    assert live is not None and live.kind == "config.seed" and live.actor == "dropprice serve"
    again = seed_startup_config(redis_url, drop.config_dir, actor="dropprice serve")
    assert again.startswith("config version 1 is live (the same as")
    data = yaml.safe_load(_drop_file(drop).read_text())
    data["skus"][0]["list_price"] = 12.0
    _drop_file(drop).write_text(yaml.safe_dump(data))
    differs = seed_startup_config(redis_url, drop.config_dir, actor="dropprice serve")
    assert "from Redis is live, not" in differs and "config diff" in differs
    # config diff now compares with the version the service serves.
    out = CliRunner().invoke(
        cli, ["config", "diff", str(drop.config_dir), "--redis-url", redis_url]
    )
    assert out.exit_code == 0, out.output
    assert "against live config version 1" in out.output


def test_diff_impact_resolves_the_affected_skus(
    redis_url: str, drop: SimDrop, store: PriceStore
) -> None:
    from service.config.loader import load_config_dir

    live = live_config(store.client, drop.config_dir)
    assert live is not None
    settings = Settings(
        redis_url=redis_url, config_dir=drop.config_dir, auth_disabled=True,
        redis_timeout_ms=5000, rate_limit_enabled=False,
    )  # fmt: skip
    events = day_of_events(drop, rate=10.0, seed=5, announcements=False)
    with AppClient(create_app(settings)) as client:
        for i in range(0, len(events), 1000):
            r = client.post("/v1/events", json={"events": events[i : i + 1000]})
            assert r.status_code == 200, r.text
    for s in drop.skus:
        store.set_inventory(s, MARKET, drop.inventory)
    record = Refitter(store, live.bundle, device="cpu").run(force=True)
    assert record.state == "published", record.reasons
    sku = next(s for s in drop.skus if drop.elasticity[s] == ELASTIC)
    other = next(s for s in drop.skus if s != sku)

    data = yaml.safe_load(_drop_file(drop).read_text())
    i = drop.skus.index(sku)
    floor = data["skus"][i]["list_price"]  # the elastic SKU is priced below its list
    data["skus"][i]["guardrails"]["floor"] = floor
    _drop_file(drop).write_text(yaml.safe_dump(data, sort_keys=False))
    load_config_dir(drop.config_dir)

    out = CliRunner().invoke(
        cli, ["config", "diff", str(drop.config_dir), "--impact", "--redis-url", redis_url]
    )
    assert out.exit_code == 0, out.output
    assert f"~ drops[sim-drop].skus[{sku}].guardrails.floor" in out.output
    assert "impact on 1 SKU-market(s)" in out.output
    line = next(ln for ln in out.output.splitlines() if ln.strip().startswith(f"{sku} @ {MARKET}"))
    before, after = (float(x) for x in line.split("price now ")[1].split(" (")[0].split(" -> "))
    assert after >= floor > before
    assert "expected revenue" in line
    assert f"{other} @" not in out.output  # unchanged SKUs are not re-solved
    assert "expected revenue change over the re-solved SKUs" in out.output


def test_history_has_headers_and_notes(redis_url: str, drop: SimDrop) -> None:
    runner = CliRunner()
    applied = runner.invoke(
        cli,
        ["config", "apply", str(drop.config_dir), "--redis-url", redis_url, "--actor", "alice",
         "--note", "first cut of the drop"],
    )  # fmt: skip
    assert applied.exit_code == 0, applied.output
    out = runner.invoke(cli, ["config", "history", "--redis-url", redis_url])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines[0].split()[:4] == ["ver", "applied", "(UTC)", "actor"]
    assert "alice" in lines[1] and lines[1].startswith("*")
    assert lines[2].strip() == "note: first cut of the drop"
