"""``GET /v1/signals`` over HTTP against a real redis-server: auth, index, detections."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from pricing.synthetic import RegionalSpike, simulate_event_stream
from service.app import create_app
from service.auth import hash_api_key
from service.settings import Role, Settings
from tests.service.asgi_client import AppClient

POS_KEY, OPERATOR_KEY = "pos-key-for-signals-tests", "operator-key-for-signals-tests"
MARKETS = ("bk", "qn", "hx", "jc")
SKUS = ("SIG-A", "SIG-B", "SIG-C")


def _write_configs(root: Path) -> Path:
    (root / "drops").mkdir(parents=True)
    (root / "defaults.yaml").write_text(yaml.safe_dump({"currency": "USD"}))
    (root / "categories.yaml").write_text(
        yaml.safe_dump({"categories": {"tees": {"mean": -1.5, "sd": 1.0}}})
    )
    start = (datetime.now(UTC) + timedelta(days=30)).replace(minute=0, second=0, microsecond=0)
    drop = {
        "id": "signals-drop",
        "markets": list(MARKETS),
        "windows": [{"start": start.isoformat(), "end": (start + timedelta(hours=4)).isoformat()}],
        "skus": [
            {
                "sku": s,
                "category": "tees",
                "list_price": 20.0,
                "inventory": {m: 1_000_000 for m in MARKETS},
            }
            for s in SKUS
        ],
    }
    (root / "drops" / "signals-drop.yaml").write_text(yaml.safe_dump(drop))
    return root


@pytest.fixture
def client(redis_url: str, tmp_path: Path) -> Iterator[AppClient]:
    settings = Settings(
        redis_url=redis_url,
        config_dir=_write_configs(tmp_path / "configs"),
        api_keys={hash_api_key(POS_KEY): Role.pos, hash_api_key(OPERATOR_KEY): Role.operator},
        redis_timeout_ms=5000,
        rate_limit_enabled=False,
    )
    with AppClient(create_app(settings)) as c:
        yield c


def _as_http_events(events: pd.DataFrame, shift: pd.Timedelta) -> list[dict[str, Any]]:
    out = []
    for r in events.itertuples(index=False):
        ev: dict[str, Any] = {
            "event_id": r.event_id,
            "type": r.type,
            "ts": (r.ts + shift).isoformat(),
            "sku": r.sku,
            "market": r.market,
        }
        if r.type in ("sale", "return", "restock"):
            ev["quantity"] = int(r.quantity)
        if r.type == "sale":
            ev["unit_price"] = float(r.unit_price)
        if r.type == "claim":
            ev["count"] = int(r.count)
        if r.type == "announcement":
            continue  # creator posts are not needed here
        out.append(ev)
    return out


def test_signals_need_a_key_and_answer_pos_and_operator(client: AppClient) -> None:
    r = client.get("/v1/signals")
    assert r.status_code == 401
    assert r.json()["code"] == "unauthorized"
    assert client.get("/v1/signals", headers={"X-API-Key": "wrong"}).status_code == 401
    for key in (POS_KEY, OPERATOR_KEY):
        r = client.get("/v1/signals", headers={"X-API-Key": key})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["index"] == [] and body["detections"] == [] and body["events_used"] == 0


def test_feed_carries_index_rollup_and_a_planted_regional_spike(client: AppClient) -> None:
    stream = simulate_event_stream(
        key=4,
        skus=SKUS,
        markets=MARKETS,
        hours=21 * 24,
        base_rate=0.8,
        plant=(RegionalSpike("qn"),),
    )
    now_hour = pd.Timestamp.now(tz="UTC").floor("h")
    shift = now_hour - pd.Timedelta(hours=1) - stream.truth.hours[-1]
    # Keep the weekday pattern of the planted spike: shift by whole weeks.
    shift = pd.Timedelta(days=7 * int(np.ceil(shift / pd.Timedelta(days=7))))
    events = _as_http_events(stream.events, shift - pd.Timedelta(days=7))
    pos = {"X-API-Key": POS_KEY}
    op = {"X-API-Key": OPERATOR_KEY}  # the stream has restocks: an operator books those
    for i in range(0, len(events), 1000):
        r = client.post("/v1/events", json={"events": events[i : i + 1000]}, headers=op)
        assert r.status_code == 200, r.text
        assert r.json()["accepted"] == len(events[i : i + 1000]), r.json()["results"][:2]

    last = stream.truth.hours[-1] + shift - pd.Timedelta(days=7)
    since = last - pd.Timedelta(hours=23)
    params = {"since": since.isoformat(), "until": last.isoformat()}
    r = client.get("/v1/signals", params=params, headers=pos)
    assert r.status_code == 200, r.text
    body = r.json()
    # Index: every SKU-market, 24 hours, positive somewhere (sales and claims happened).
    pairs = {(row["sku"], row["market"]) for row in body["index"]}
    assert pairs == {(s, m) for s in SKUS for m in MARKETS}
    assert len({row["hour"] for row in body["index"]}) == 24
    assert max(row["intensity"] for row in body["index"]) > 0
    # Roll-up: the market sums equal the sum of the SKU rows.
    frame = pd.DataFrame(body["index"])
    by_market = frame.groupby(["market", "hour"])["intensity"].sum()
    for row in body["markets"]:
        assert row["intensity"] == pytest.approx(by_market[(row["market"], row["hour"])])
        assert row["n_skus"] == len(SKUS)
    # Detections over three weeks of history: the planted market, and it alone. The
    # since filter keeps detections seen in the last day; ask from three weeks back.
    wide = {"since": (last - pd.Timedelta(days=7)).isoformat(), "until": last.isoformat()}
    found = client.get("/v1/signals", params=wide, headers=pos).json()["detections"]
    assert [(d["archetype"], d["market"]) for d in found] == [("regional_spike", "qn")]
    assert found[0]["evidence"] and found[0]["stats"]["pattern"] == "weekend"
    # Market filter narrows everything.
    only = client.get(
        "/v1/signals", params={**wide, "market": "bk"}, headers={"X-API-Key": OPERATOR_KEY}
    ).json()
    assert {row["market"] for row in only["index"]} == {"bk"}
    assert only["detections"] == []
    # The CLI reads the same events from Redis and finds the same.
    from typer.testing import CliRunner

    from service.cli import app as cli

    result = CliRunner().invoke(
        cli,
        ["signals", "--redis-url", client.app.state.service.settings.redis_url,
         "--since", wide["since"], "--until", wide["until"], "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    feed = json.loads(result.stdout)
    assert [(d["archetype"], d["market"]) for d in feed["detections"]] == [("regional_spike", "qn")]


def test_signals_refuse_a_span_too_long_or_reversed(client: AppClient) -> None:
    pos = {"X-API-Key": POS_KEY}
    now = datetime.now(UTC)
    r = client.get(
        "/v1/signals",
        params={"since": (now - timedelta(days=30)).isoformat(), "until": now.isoformat()},
        headers=pos,
    )
    assert r.status_code == 422 and "at most" in r.text
    r = client.get(
        "/v1/signals",
        params={"since": now.isoformat(), "until": (now - timedelta(hours=2)).isoformat()},
        headers=pos,
    )
    assert r.status_code == 422
    r = client.get("/v1/signals", params={"since": "2026-11-01T00:00:00"}, headers=pos)
    assert r.status_code == 422  # a timestamp without a zone
