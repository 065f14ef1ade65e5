"""Every kind of the event table (:data:`pricing.events.EVENT_KINDS`) walks the whole way:
the HTTP models accept it, the stream keeps its size field, the codec decodes it into the
events table, the intensity index scores it exactly when the table gives it a weight, and
the console's SKU page lists it as a stock move or a signal, as the table says.

A kind added to the table without an HTTP model, or whose size field one step drops,
fails here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, get_args

import pytest
from asgi_client import AppClient, auth, settings_for, write_configs

from pricing.events import EVENT_KINDS, INDEX_KINDS, STOCK_KINDS
from pricing.intensity import build_intensity_index
from service.app import create_app
from service.codec import readable_events
from service.schemas import AnyEvent
from service.store import EventKind, PriceStore, connect, scripts

EXAMPLES: dict[str, dict[str, Any]] = {
    "sale": {"quantity": 2, "unit_price": 30.0},
    "return": {"quantity": 1},
    "restock": {"quantity": 5},
    "announcement": {"reach": 5000, "creator": "ana"},
    "claim": {"count": 3},
    "listing": {"weight": 0.5},
}
"""The fields of one event of each kind besides ``type``, ``event_id``, ``ts``, ``sku``
and ``market`` (a new kind adds its example here)."""


@pytest.fixture
def store(redis_url: str) -> Iterator[PriceStore]:
    s = PriceStore(connect(redis_url, timeout=2.0))
    yield s
    s.close()


@pytest.fixture
def client(redis_url: str, tmp_path) -> Iterator[AppClient]:
    with AppClient(create_app(settings_for(redis_url, write_configs(tmp_path)))) as c:
        yield c


def test_the_http_models_are_the_kinds_of_the_table() -> None:
    tags = [get_args(model.model_fields["type"].annotation)[0] for model in get_args(AnyEvent)]
    assert sorted(tags) == sorted(EVENT_KINDS)
    assert sorted(EXAMPLES) == sorted(EVENT_KINDS)
    for name, kind in EVENT_KINDS.items():
        assert kind.size_field in EXAMPLES[name], f"the example of {name} lacks its size"


def test_the_event_script_knows_every_kind_that_moves_stock() -> None:
    """A stock-moving kind needs its inventory effect in the event script; every other
    kind is recorded there as a ``signal``."""
    assert sorted(get_args(EventKind)) == sorted([*STOCK_KINDS, "signal"])
    lua = scripts.load("record_events")
    for name in STOCK_KINDS:
        assert f"kind == '{name}'" in lua, f"record_events.lua does not move stock on a {name}"


def test_every_kind_reaches_the_stream_the_table_and_the_index(
    client: AppClient, store: PriceStore
) -> None:
    events = [
        {
            "type": name,
            "event_id": f"walk-{name}",
            "ts": f"2026-01-01T{10 + i:02d}:30:00-05:00",
            "sku": "TEE-1",
            "market": "nyc",
            **EXAMPLES[name],
        }
        for i, name in enumerate(EVENT_KINDS)
    ]
    r = client.post("/v1/events", headers=auth("operator"), json={"events": events})
    assert r.status_code == 200, r.text
    assert [x["status"] for x in r.json()["results"]] == ["accepted"] * len(events)

    frame = readable_events(store.recent_events("TEE-1"))
    assert frame.attrs["poisoned"] == 0
    assert list(frame["type"]) == list(EVENT_KINDS)
    for name, kind in EVENT_KINDS.items():
        row = frame[frame["type"] == name].iloc[0]
        assert row[kind.size_field] == pytest.approx(EXAMPLES[name][kind.size_field]), name

    index = build_intensity_index(frame[frame["type"].isin(INDEX_KINDS)])
    for name in EVENT_KINDS:
        if name in INDEX_KINDS:
            assert index[name].max() > 0, f"{name} is indexed but scores nothing"
        else:
            assert name not in index.columns, f"{name} has no weight but is a component"

    page = client.get("/v1/console/skus/TEE-1?market=nyc", headers=auth("operator"))
    assert page.status_code == 200, page.text
    body = page.json()
    assert [m["kind"] for m in body["sales"]] == list(STOCK_KINDS)
    assert body["sales"][-1]["units_left"] == store.get_inventory("TEE-1", "nyc")
    signals = {s["type"]: s["detail"] for s in body["signals"]}
    assert sorted(signals) == sorted(set(EVENT_KINDS) - set(STOCK_KINDS))
    for name, detail in signals.items():
        size = EVENT_KINDS[name].size_field
        assert f"{size} " in detail, f"the console drops the {size} of a {name}: {detail!r}"
