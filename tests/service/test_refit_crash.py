"""Crash safety: a worker SIGKILLed mid-re-fit, and two workers started together.

The workers are real ``dropprice refit`` processes; the store is a real redis-server.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from refit_factories import (
    MARKET,
    SimDrop,
    as_records,
    day_of_events,
    seed_store,
    worker_env,
    write_configs,
)

from service import keys
from service.config.loader import load_config_dir
from service.refit import REFIT_GROUP, RefitState, Refitter
from service.store import PriceStore

REPO = Path(__file__).resolve().parents[2]
LOCK_TTL_S = 2.0


pytestmark = pytest.mark.usefixtures("compile_cache")


def _worker(redis_url: str, drop: SimDrop, cache: Path) -> subprocess.Popen[str]:
    cmd = [
        sys.executable, "-m", "service.cli", "refit", "--redis-url", redis_url,
        "--config-dir", str(drop.config_dir), "--device", "cpu", "--json",
        "--lock-ttl", str(LOCK_TTL_S),
    ]  # fmt: skip
    env = worker_env(cache)
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)


def _lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in text.splitlines() if x.startswith("{")]


def _history_ids(state: RefitState) -> list[str]:
    history = state.load_history()
    assert history is not None
    return history.loc[history["type"] == "sale", "event_id"].tolist()


def _pending(store: PriceStore, drop: SimDrop) -> int:
    return sum(
        int(store.client.xpending(keys.events(s), REFIT_GROUP)["pending"]) for s in drop.skus
    )


def test_worker_killed_mid_refit_keeps_the_old_version_and_loses_no_event(
    store: PriceStore, redis_url: str, tmp_path: Path, compile_cache: Path
) -> None:
    drop = write_configs(tmp_path / "configs", 6)
    seed_store(store, drop)
    day1 = day_of_events(drop, seed=1, announcements=False)
    store.record_events(as_records(day1, drop.list_price))
    for s in drop.skus:
        store.set_inventory(s, MARKET, drop.inventory)
    bundle = load_config_dir(drop.config_dir)
    first = Refitter(store, bundle, device="cpu", lock_ttl_s=LOCK_TTL_S).run()
    assert first.state == "published"
    live_prices = {s: store.get_surface(s, MARKET)[1].price.copy() for s in drop.skus}  # type: ignore[index]

    day2 = day_of_events(drop, seed=2, announcements=False)
    for e in day2:
        e["event_id"] += "-d2"
    for s in drop.skus:  # stock for the simulated day, then the window's
        store.set_inventory(s, MARKET, 100_000)
    store.record_events(as_records(day2, drop.list_price))
    for s in drop.skus:
        store.set_inventory(s, MARKET, drop.inventory)

    # Kill the worker as soon as it starts fitting: events read, panel built, nothing published.
    proc = _worker(redis_url, drop, compile_cache)
    assert proc.stdout is not None
    seen: list[dict[str, Any]] = []
    for line in proc.stdout:
        if line.startswith("{"):
            seen.append(json.loads(line))
            if seen[-1].get("event") == "stage_started" and seen[-1].get("stage") == "fit":
                proc.send_signal(signal.SIGKILL)
                break
    proc.wait(timeout=60)
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL, seen
    panel = next(x for x in seen if x.get("stage") == "panel" and x.get("event") == "stage")
    assert panel["events_read"] == len(day2)

    # The old version is still live with the same prices; the new events are pending.
    assert store.live_version() == first.version
    assert [v.version for v in store.list_versions()] == [first.version]
    for s in drop.skus:
        np.testing.assert_array_equal(store.get_surface(s, MARKET)[1].price, live_prices[s])  # type: ignore[index]
    assert _pending(store, drop) == len(day2)

    # The dead worker's lock expires within its TTL; the next re-fit completes.
    time.sleep(LOCK_TTL_S + 0.5)
    second = Refitter(store, bundle, device="cpu", lock_ttl_s=LOCK_TTL_S).run()
    assert second.state == "published", second.reasons
    assert second.events_read == len(day2)
    assert store.live_version() == second.version
    assert _pending(store, drop) == 0
    ids = _history_ids(RefitState(store))
    assert sorted(ids) == sorted(e["event_id"] for e in day1 + day2)  # none lost, none twice
    history = RefitState(store).load_history()
    assert history is not None
    sold = history.loc[history["type"] == "sale", "quantity"].sum()
    assert sold == sum(e["quantity"] for e in day1 + day2)


def test_two_workers_started_together_publish_exactly_one_version(
    store: PriceStore, redis_url: str, tmp_path: Path, compile_cache: Path
) -> None:
    drop = write_configs(tmp_path / "configs", 6)
    seed_store(store, drop)
    events = day_of_events(drop, seed=4)
    store.record_events(as_records(events, drop.list_price))
    for s in drop.skus:
        store.set_inventory(s, MARKET, drop.inventory)

    procs = [_worker(redis_url, drop, compile_cache), _worker(redis_url, drop, compile_cache)]
    outputs = [p.communicate(timeout=180)[0] for p in procs]
    finals = [_lines(out)[-1] for out in outputs]
    states = sorted(f["state"] for f in finals)
    assert states[0] in ("locked", "no_change") and states[1] == "published", finals
    assert sorted(p.returncode for p in procs) == sorted(
        {"locked": 3, "no_change": 0, "published": 0}[f["state"]] for f in finals
    )
    versions = store.list_versions()
    assert len(versions) == 1
    assert versions[0].version == next(f["version"] for f in finals if f["state"] == "published")
    assert _pending(store, drop) == 0
    assert sorted(_history_ids(RefitState(store))) == sorted(
        e["event_id"] for e in events if e["type"] == "sale"
    )
