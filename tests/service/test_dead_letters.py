"""Poison never blocks learning (issue 15): an entry no reader can decode is set aside.

Old data (or a hand-written entry) in a SKU's stream, e.g. ``quantity: "True"``, used
to fail every re-fit and make the signals and intensity routes answer 500. Here it is
written with a raw client, as such data would have been.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from asgi_client import AppClient, auth, settings_for
from asgi_client import write_configs as write_app_configs
from prometheus_client import REGISTRY
from refit_factories import MARKET, as_records, day_of_events, seed_store, write_configs
from typer.testing import CliRunner

from service import keys
from service.app import create_app
from service.cli import app as cli
from service.codec import split_poisoned
from service.config.loader import load_config_dir
from service.refit import REFIT_GROUP, Refitter
from service.store import PriceStore, StreamEvent

N_SKUS = 6


def _poison(store: PriceStore, sku: str, market: str, **fields: str) -> str:
    """Append an entry the way pre-strict data sits in a stream: quantity "True"."""
    entry = {
        "type": "sale",
        "event_id": f"poison-{sku}",
        "sku": sku,
        "market": market,
        "ts": (datetime.now(UTC) - timedelta(hours=2)).isoformat(),
        "quantity": "True",
        "unit_price": "30.0",
        "kind": "sale",
        "charged_price": "30.0",
        "units_left": "11",
        "version": "",
    } | fields
    entry_id = store.client.xadd(keys.events(sku), entry)
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


# ------------------------------------------------------------------ the codec
@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"quantity": "True"}, "quantity: 'True' is not a number"),
        ({"quantity": "1.5"}, "quantity: '1.5' is not a non-negative integer"),
        ({"unit_price": "abc", "charged_price": ""}, "unit_price: 'abc' is not a number"),
        ({"unit_price": "", "charged_price": ""}, "unit_price: a sale needs a positive"),
        ({"ts": "yesterday"}, "ts: 'yesterday' is not an ISO 8601 time"),
        ({"event_id": ""}, "event_id: missing"),
        ({"quantity": ""}, "quantity: missing on a sale"),
    ],
)
def test_split_poisoned_names_the_field_and_value(fields: dict[str, str], reason: str) -> None:
    good = {
        "type": "sale",
        "event_id": "e1",
        "ts": "2026-12-05T18:00:00+00:00",
        "quantity": "2",
        "unit_price": "30.0",
        "charged_price": "30.0",
    }
    entries = [
        StreamEvent("s", "A", "1-0", good),
        StreamEvent("s", "A", "2-0", {k.encode(): v.encode() for k, v in (good | fields).items()}),
    ]
    ok, bad = split_poisoned(entries)
    assert [e.entry_id for e in ok] == ["1-0"]
    assert [(e.entry_id, r[: len(reason)]) for e, r in bad] == [("2-0", reason)]


# ------------------------------------------------------------------ the routes
@pytest.fixture
def client(redis_url: str, tmp_path: Path) -> Iterator[AppClient]:
    settings = settings_for(redis_url, write_app_configs(tmp_path), intensity_cache_s=0)
    with AppClient(create_app(settings)) as c:
        yield c


def test_signals_and_intensity_skip_poisoned_entries(client: AppClient, store: PriceStore) -> None:
    sale = {
        "type": "sale",
        "event_id": "good-1",
        "ts": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        "sku": "TEE-1",
        "market": "nyc",
        "quantity": 1,
        "unit_price": 30.0,
    }
    claim = sale | {"type": "claim", "event_id": "good-2", "count": 2}
    for e in (sale, claim):
        e.pop("quantity", None) if e["type"] == "claim" else None
        e.pop("unit_price", None) if e["type"] == "claim" else None
    r = client.post("/v1/events", headers=auth(), json={"events": [sale, claim]})
    assert r.json()["accepted"] == 2, r.text
    _poison(store, "TEE-1", "nyc")
    _poison(store, "TEE-1", "nyc", type="claim", event_id="poison-claim", count="True")
    _poison(store, "TEE-1", "nyc", event_id="poison-price", quantity="1", unit_price="True")

    intensity = client.get("/v1/skus/TEE-1/intensity?market=nyc", headers=auth())
    assert intensity.status_code == 200, intensity.text
    assert intensity.json()["events_used"] == 2
    signals = client.get("/v1/signals", headers=auth())
    assert signals.status_code == 200, signals.text
    metrics = client.get("/metrics").text
    assert 'dropprice_poisoned_skipped_total{route="/v1/signals"} 3.0' in metrics
    assert 'dropprice_poisoned_skipped_total{route="/v1/skus/{sku}/intensity"} 3.0' in metrics


def test_operators_list_and_drop_dead_letters(client: AppClient, store: PriceStore) -> None:
    store.ensure_group(REFIT_GROUP, skus=["TEE-1"])
    _poison(store, "TEE-1", "nyc")
    _poison(store, "TEE-1", "nyc", event_id="poison-2", ts="yesterday", quantity="1")
    read = store.read_events(REFIT_GROUP, "c", skus=["TEE-1"])
    _, poisoned = split_poisoned(read)
    assert store.dead_letter(REFIT_GROUP, poisoned) == 2
    assert store.read_events(REFIT_GROUP, "c", skus=["TEE-1"], start="0") == []  # acked

    assert client.get("/v1/admin/dead-letters", headers=auth()).status_code == 403
    listed = client.get("/v1/admin/dead-letters", headers=auth("operator"))
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert (body["kept"], body["total"]) == (2, 2)
    first, second = body["dead_letters"]
    assert first["reason"] == "quantity: 'True' is not a number"
    assert first["fields"]["quantity"] == "True" and first["stream"] == keys.events("TEE-1")
    assert second["reason"].startswith("ts: 'yesterday'")
    metrics = client.get("/metrics").text
    assert "dropprice_dead_letters 2.0" in metrics
    assert "dropprice_dead_lettered 2.0" in metrics

    gone = client.request(
        "DELETE", f"/v1/admin/dead-letters/{first['id']}", headers=auth("operator")
    )
    assert gone.json() == {"dropped": 1}
    again = client.request(
        "DELETE", f"/v1/admin/dead-letters/{first['id']}", headers=auth("operator")
    )
    assert again.status_code == 404
    left = client.get("/v1/admin/dead-letters", headers=auth("operator")).json()
    assert [d["id"] for d in left["dead_letters"]] == [second["id"]]
    assert (left["kept"], left["total"]) == (1, 2)
    everything = client.request("DELETE", "/v1/admin/dead-letters", headers=auth("operator"))
    assert everything.json() == {"dropped": 1}
    assert store.dead_letter_counts() == (0, 2)


def test_the_cli_lists_and_drops_dead_letters(redis_url: str, store: PriceStore) -> None:
    store.ensure_group(REFIT_GROUP, skus=["TEE-1"])
    _poison(store, "TEE-1", "nyc")
    _, poisoned = split_poisoned(store.read_events(REFIT_GROUP, "c", skus=["TEE-1"]))
    store.dead_letter(REFIT_GROUP, poisoned)
    runner = CliRunner()
    listed = runner.invoke(cli, ["dead-letters", "list", "--redis-url", redis_url])
    assert listed.exit_code == 0, listed.output
    assert "1 dead letter(s) kept, 1 ever" in listed.output
    assert "quantity: 'True' is not a number" in listed.output
    (letter,) = store.dead_letters()
    dropped = runner.invoke(cli, ["dead-letters", "drop", letter.id, "--redis-url", redis_url])
    assert dropped.exit_code == 0, dropped.output
    assert "dropped 1 dead letter(s)" in dropped.output
    assert store.dead_letters() == []


# ------------------------------------------------------------------ the re-fit
@pytest.mark.usefixtures("compile_cache")
def test_one_poisoned_entry_among_ten_thousand_is_dead_lettered_and_the_refit_publishes(
    store: PriceStore, tmp_path: Path
) -> None:
    drop = write_configs(tmp_path / "configs", N_SKUS)
    seed_store(store, drop)
    events = day_of_events(drop, rate=20.0)
    now = datetime.now(UTC)
    filler: list[dict[str, Any]] = [
        {
            "event_id": f"claim-{i}",
            "type": "claim",
            "sku": drop.skus[i % N_SKUS],
            "market": MARKET,
            "ts": (now - timedelta(minutes=1 + (i * 7) % (24 * 60))).isoformat(),
            "count": 1,
        }
        for i in range(9_999 - len(events))
    ]
    store.record_events(as_records(events + filler, drop.list_price))
    poison_id = _poison(store, drop.skus[0], MARKET)
    for s in drop.skus:
        store.set_inventory(s, MARKET, drop.inventory)

    before = REGISTRY.get_sample_value("dropprice_refit_dead_lettered_total") or 0.0
    record = Refitter(store, load_config_dir(drop.config_dir), device="cpu").run()
    assert record.state == "published", record.reasons
    assert record.events_read == 10_000
    assert record.dead_lettered == 1
    assert record.to_dict()["dead_lettered"] == 1
    assert REGISTRY.get_sample_value("dropprice_refit_dead_lettered_total") == before + 1
    (letter,) = store.dead_letters()
    assert (letter.entry_id, letter.sku, letter.group) == (poison_id, drop.skus[0], REFIT_GROUP)
    assert letter.reason == "quantity: 'True' is not a number"
    # Acknowledged: nothing is pending, and the next re-fit has nothing new to read.
    pending = store.client.xpending(keys.events(drop.skus[0]), REFIT_GROUP)
    assert pending["pending"] == 0
    again = Refitter(store, load_config_dir(drop.config_dir), device="cpu").run()
    assert again.state == "no_change" and again.dead_lettered == 0
    assert store.dead_letter_counts() == (1, 1)
