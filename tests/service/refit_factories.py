"""Simulated drops for the re-fit tests and benchmark: configs, a day of events, truth.

Demand per SKU and hour is Poisson with a constant elasticity,
``λ = rate · (p / list_price)^β``, at prices drawn from a grid around the list
price, so the re-fit can learn ``β``. Half of the SKUs are elastic (``β = -3.5``:
revenue falls with price, so the optimum drops the price) and half inelastic
(``β = -0.6``: revenue rises with price, so the optimum raises it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ELASTIC, INELASTIC = -3.5, -0.6
MARKET = "m1"


@dataclass(frozen=True)
class SimDrop:
    """A simulated drop: its config folder, SKUs and their true elasticities."""

    config_dir: Path
    skus: list[str]
    list_price: dict[str, float]
    elasticity: dict[str, float]
    window_start: datetime
    inventory: int


def write_configs(
    root: Path,
    n_skus: int,
    *,
    now: datetime | None = None,
    window_in: timedelta = timedelta(days=1),
    window_hours: int = 6,
    inventory: int = 400,
    approval_band_pct: float | None = None,
    refit_during_window: bool = False,
    allowed_range: tuple[float, float] = (-8.0, -0.05),
) -> SimDrop:
    """Write ``defaults.yaml``, ``categories.yaml`` and one drop under ``root``."""
    now = now or datetime.now(UTC)
    start = (now + window_in).replace(minute=0, second=0, microsecond=0)
    root.mkdir(parents=True, exist_ok=True)
    (root / "drops").mkdir(exist_ok=True)
    rails: dict[str, Any] = {}
    if approval_band_pct is not None:
        rails["approval_band_pct"] = approval_band_pct
    (root / "defaults.yaml").write_text(
        yaml.safe_dump(
            {
                "currency": "USD",
                "refit_cadence_minutes": 60,
                "keep_versions": 5,
                "guardrails": rails,
            }
        )
    )
    (root / "categories.yaml").write_text(
        yaml.safe_dump(
            {"categories": {"sim": {"mean": -1.5, "sd": 2.0, "allowed_range": list(allowed_range)}}}
        )
    )
    skus = [f"SKU-{i:05d}" for i in range(n_skus)]
    prices = {s: round(10.0 + (i % 7) * 5.0, 2) for i, s in enumerate(skus)}
    beta = {s: ELASTIC if i % 2 == 0 else INELASTIC for i, s in enumerate(skus)}
    drop = {
        "id": "sim-drop",
        "markets": [MARKET],
        "windows": [
            {"start": start.isoformat(), "end": (start + timedelta(hours=window_hours)).isoformat()}
        ],
        "period_minutes": 60,
        "refit_during_window": refit_during_window,
        "skus": [
            {
                "sku": s,
                "category": "sim",
                "list_price": prices[s],
                "inventory": {MARKET: inventory},
                "guardrails": {
                    "floor": round(prices[s] * 0.5, 2),
                    "ceiling": round(prices[s] * 2.0, 2),
                },
            }
            for s in skus
        ],
    }
    (root / "drops" / "sim-drop.yaml").write_text(yaml.safe_dump(drop, sort_keys=False))
    return SimDrop(root, skus, prices, beta, start, inventory)


def day_of_events(
    drop: SimDrop,
    *,
    now: datetime | None = None,
    hours: int = 24,
    rate: float = 8.0,
    seed: int = 0,
    announcements: bool = True,
    price_multiples: tuple[float, ...] = (0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.4),
) -> list[dict[str, Any]]:
    """A day of hourly sale events (plus a creator announcement per SKU) as API dicts.

    Each hour every SKU sells at a price drawn from ``price_multiples x list`` and its
    quantity is Poisson(``rate · (p/list)^β``); one sale event per hour with units.
    """
    rng = np.random.default_rng(seed)
    now = (now or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0)
    grid = np.array(price_multiples)
    events: list[dict[str, Any]] = []
    for s in drop.skus:
        base = drop.list_price[s]
        for h in range(hours):
            ts = now - timedelta(hours=hours - h) + timedelta(minutes=int(rng.integers(0, 59)))
            x = float(rng.choice(grid))
            qty = int(rng.poisson(rate * x ** drop.elasticity[s]))
            if qty == 0:
                continue
            events.append(
                {
                    "event_id": f"sale-{s}-{h}",
                    "type": "sale",
                    "sku": s,
                    "market": MARKET,
                    "ts": ts.isoformat(),
                    "quantity": qty,
                    "unit_price": round(base * x, 2),
                }
            )
        if announcements:
            events.append(
                {
                    "event_id": f"ann-{s}",
                    "type": "announcement",
                    "sku": s,
                    "market": MARKET,
                    "ts": (now - timedelta(hours=hours // 2)).isoformat(),
                    "reach": 5000,
                }
            )
    return events


def as_records(events: list[dict[str, Any]], list_price: dict[str, float]) -> list[Any]:
    """The API dicts as :class:`service.store.EventRecord` (what the events route builds)."""
    from service.store import EventRecord

    out = []
    for e in events:
        kind = e["type"] if e["type"] in ("sale", "return", "restock") else "signal"
        fields = {k: str(v) for k, v in e.items()}
        out.append(
            EventRecord(
                event_id=e["event_id"],
                kind=kind,
                sku=e["sku"],
                market=e["market"],
                quantity=int(e.get("quantity", 0)),
                fields=fields,
                list_price=list_price[e["sku"]],
            )
        )
    return out


def seed_store(store: Any, drop: SimDrop, *, stock: int = 100_000) -> None:
    """Register the drop's SKUs and give them ``stock`` units (enough for the history)."""
    from service.store import SkuMeta

    for s in drop.skus:
        store.register_sku(SkuMeta(s, drop.list_price[s], "USD", (MARKET,), "sim-drop"))
        store.seed_inventory(s, MARKET, stock)


@contextmanager
def shared_compile_cache(tmp_path_factory: Any) -> Iterator[Path]:
    """Use one persistent JAX compilation cache for the session's re-fit tests.

    The worker processes the tests start point ``JAX_COMPILATION_CACHE_DIR`` at the
    same folder, so a program this process compiled is loaded there, not compiled
    again (the compile of the fit dominates a small re-fit).
    """
    import jax
    from jax._src import compilation_cache

    path = Path(tmp_path_factory.getbasetemp()) / "refit-jax-cache"
    path.mkdir(exist_ok=True)
    old = (
        jax.config.jax_compilation_cache_dir,
        jax.config.jax_persistent_cache_min_compile_time_secs,
    )
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    compilation_cache.reset_cache()  # re-read the settings even if JAX compiled already
    try:
        yield path
    finally:
        jax.config.update("jax_compilation_cache_dir", old[0])
        jax.config.update("jax_persistent_cache_min_compile_time_secs", old[1])
        compilation_cache.reset_cache()


def worker_env(cache: Path, **extra: str) -> dict[str, str]:
    """Environment of a worker process: CPU JAX reading the shared compilation cache."""
    import os

    return {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "JAX_COMPILATION_CACHE_DIR": str(cache),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        **extra,
    }
