"""Warm restarts: ``dropprice refit`` keeps JAX's compiled programs in a persistent cache,
so the next worker process loads them instead of compiling them again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from refit_factories import MARKET, SimDrop, as_records, day_of_events, seed_store, write_configs

from service.compile_cache import enable_compile_cache
from service.store import PriceStore, connect

REPO = Path(__file__).resolve().parents[2]


def _refit(
    redis_url: str, drop: SimDrop, cwd: Path, *extra: str, **env: str
) -> list[dict[str, Any]]:
    cmd = [
        sys.executable, "-m", "service.cli", "refit", "--redis-url", redis_url,
        "--config-dir", str(drop.config_dir), "--device", "cpu", "--json", *extra,
    ]  # fmt: skip
    base = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}
    base.pop("DROPPRICE_COMPILE_CACHE", None)
    done = subprocess.run(
        cmd,
        cwd=cwd,
        env={**base, "JAX_PLATFORMS": "cpu", **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [json.loads(x) for x in done.stdout.splitlines() if x.startswith("{")]
    assert done.returncode == 0, (done.stderr[-2000:], lines[-3:])
    return lines


def _cache_note(lines: list[dict[str, Any]]) -> dict[str, Any]:
    return next(x for x in lines if x.get("msg") == "compile cache used")


def _post_day(store: PriceStore, drop: SimDrop, seed: int) -> None:
    events = day_of_events(drop, seed=seed, announcements=False)
    for e in events:
        e["event_id"] += f"-{seed}"
    for s in drop.skus:  # stock for the simulated day, then the window's
        store.set_inventory(s, MARKET, 100_000)
    store.record_events(as_records(events, drop.list_price))
    for s in drop.skus:
        store.set_inventory(s, MARKET, drop.inventory)


def test_a_second_worker_process_loads_the_compiled_refit_from_the_cache(
    redis_url: str, tmp_path: Path
) -> None:
    drop = write_configs(tmp_path / "configs", 4)
    store = PriceStore(connect(redis_url, timeout=30.0))
    try:
        seed_store(store, drop)
        _post_day(store, drop, seed=1)
        # First process, no setting: the default folder under the working directory.
        first = _refit(redis_url, drop, tmp_path)
        cache = tmp_path / ".dropprice" / "jax-cache"
        assert first[-1]["state"] == "published", first[-1]["reasons"]
        entries = {p.name for p in cache.iterdir()}
        assert entries, "the first re-fit wrote no compiled program to the cache"
        cold = _cache_note(first)
        assert cold["dir"] == str(cache.resolve()) and cold["hits"] == 0 and cold["misses"] > 0

        # A fresh process pointed at the same folder (environment variable) finds the
        # programs there and still publishes a new version.
        _post_day(store, drop, seed=2)
        second = _refit(redis_url, drop, REPO, DROPPRICE_COMPILE_CACHE=str(cache))
        assert second[-1]["state"] == "published", second[-1]["reasons"]
        assert second[-1]["version"] != first[-1]["version"]
        assert store.live_version() == second[-1]["version"]
        warm = _cache_note(second)
        assert warm["hits"] > 0 and warm["misses"] < cold["misses"], (cold, warm)
        assert entries <= {p.name for p in cache.iterdir()}
    finally:
        store.close()


def test_an_unusable_cache_folder_is_refused_with_its_name(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(ValueError, match="not-a-folder/jax.*cannot be created"):
        enable_compile_cache(blocker / "jax")
