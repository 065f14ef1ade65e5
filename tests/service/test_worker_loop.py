"""The worker loop on a real Redis: operator requests first, then the schedule."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from refit_factories import (
    MARKET,
    as_records,
    day_of_events,
    seed_store,
    write_configs,
)

from service.config.loader import load_config_dir
from service.refit import RefitRecord, RefitState, Refitter
from service.store import PriceStore, connect
from service.worker import run_worker

pytestmark = pytest.mark.usefixtures("compile_cache")


def test_worker_runs_requests_then_the_schedule(redis_url: str, tmp_path: Path) -> None:
    drop = write_configs(tmp_path / "configs", 6)
    store = PriceStore(connect(redis_url, timeout=30.0))
    seed_store(store, drop)
    store.record_events(as_records(day_of_events(drop, rate=20.0), drop.list_price))
    for s in drop.skus:
        store.set_inventory(s, MARKET, drop.inventory)
    state = RefitState(store)
    queued = state.request(requested_by="ops")
    bundle = load_config_dir(drop.config_dir)
    records: list[RefitRecord] = []
    stop = threading.Event()
    skew = [timedelta(0)]

    def on_record(record: RefitRecord) -> None:
        records.append(record)
        skew[0] = timedelta(hours=2)  # time passes: the cadence (60 min) is due again
        if len(records) == 2:
            stop.set()

    worker = threading.Thread(
        target=run_worker,
        args=(lambda: Refitter(store, bundle, device="cpu"),),
        kwargs={
            "poll_seconds": 0.05,
            "stop": stop,
            "on_record": on_record,
            "clock": lambda: datetime.now(UTC) + skew[0],
        },
    )
    worker.start()
    worker.join(timeout=120)
    stop.set()
    assert not worker.is_alive()
    # The request ran first and published; two hours later the cadence ran one more,
    # which had nothing new to learn from.
    assert records[0].id == queued.id and records[0].state == "published"
    assert records[0].trigger == "request"
    assert records[1].trigger == "cadence" and records[1].state == "no_change"
    assert state.get_record(queued.id).state == "published"  # type: ignore[union-attr]
    assert state.last_refit_at() is not None
    store.close()
