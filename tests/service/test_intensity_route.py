"""``GET /v1/skus/{sku}/intensity`` computed from the SKU's recorded events."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from asgi_client import AppClient, auth, settings_for, write_configs

from pricing.intensity import build_intensity_index
from service.app import create_app


@pytest.fixture
def client(redis_url: str, tmp_path) -> Iterator[AppClient]:
    settings = settings_for(redis_url, write_configs(tmp_path), intensity_cache_s=0)
    with AppClient(create_app(settings)) as c:
        yield c


def test_index_matches_the_pricing_formula_on_the_recorded_events(client: AppClient) -> None:
    now = datetime.now(UTC)
    events = [
        {
            "type": "announcement",
            "event_id": "a1",
            "sku": ["TEE-1", "CAP-2"],
            "market": "nyc",
            "reach": 20_000,
            "ts": (now - timedelta(hours=30)).isoformat(),
        },
        {
            "type": "sale",
            "event_id": "s1",
            "sku": "TEE-1",
            "market": "nyc",
            "quantity": 3,
            "unit_price": 30.0,
            "ts": (now - timedelta(hours=2)).isoformat(),
        },
        {
            "type": "claim",
            "event_id": "c1",
            "sku": "TEE-1",
            "market": "nyc",
            "count": 4,
            "ts": (now - timedelta(minutes=20)).isoformat(),
        },
        {
            "type": "claim",
            "event_id": "c-paris",
            "sku": "CAP-2",
            "market": "paris",
            "count": 9,
            "ts": (now - timedelta(minutes=20)).isoformat(),
        },
    ]
    r = client.post("/v1/events", headers=auth(), json={"events": events})
    assert r.json()["accepted"] == 4

    body = client.get("/v1/skus/TEE-1/intensity", headers=auth()).json()
    assert len(body["hours"]) == 72 and body["window_hours"] == 72
    assert body["events_used"] == 3
    assert body["current"] == body["hours"][-1]["intensity"] > 0
    end = pd.Timestamp(now).floor("h")
    assert body["hours"][-1]["hour"] == end.isoformat().replace("+00:00", "Z")
    frame = pd.DataFrame(
        {
            "ts": pd.to_datetime([e["ts"] for e in events[:3]], utc=True, format="ISO8601"),
            "type": [e["type"] for e in events[:3]],
            "sku": "TEE-1",
            "market": "nyc",
            "quantity": [float("nan"), 3.0, float("nan")],
            "reach": [20_000.0, float("nan"), float("nan")],
            "count": [float("nan"), float("nan"), 4.0],
        }
    )
    expected = build_intensity_index(frame, start=end - pd.Timedelta(hours=71), end=end)
    assert [h["intensity"] for h in body["hours"]] == pytest.approx(expected["intensity"].tolist())
    point = body["hours"][-1]
    assert sum(point["components"].values()) == pytest.approx(point["intensity"])
    assert point["components"]["claim"] > 0 and point["components"]["announcement"] > 0

    # The paris claim counts for CAP-2 in paris only.
    nyc = client.get("/v1/skus/CAP-2/intensity?market=nyc", headers=auth()).json()
    paris = client.get("/v1/skus/CAP-2/intensity?market=paris", headers=auth()).json()
    assert nyc["hours"][-1]["components"]["claim"] == 0
    assert paris["hours"][-1]["components"]["claim"] > 0
    assert paris["hours"][-1]["components"]["announcement"] == 0


def test_quiet_sku_has_a_flat_zero_index_and_unknown_sku_is_404(client: AppClient) -> None:
    body = client.get("/v1/skus/TEE-1/intensity", headers=auth()).json()
    assert body["current"] == 0 and len(body["hours"]) == 72
    r = client.get("/v1/skus/NOPE/intensity", headers=auth())
    assert (r.status_code, r.json()["code"]) == (404, "unknown_sku")
