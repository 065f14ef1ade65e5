"""The re-fit's held-out check: a fit that loses to the naive mean is not published."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from refit_factories import MARKET, SimDrop, as_records, day_of_events, seed_store, write_configs

from service.config.loader import load_config_dir
from service.refit import RefitState, Refitter
from service.store import PriceStore

N_SKUS = 16  # 8 held-out hours x 16 SKUs: enough cells for the check to judge
HOURS = 48

pytestmark = pytest.mark.usefixtures("compile_cache")


def _kinked_events(drop: SimDrop, *, rate: float = 20.0, seed: int = 0) -> list[dict[str, Any]]:
    """Steep demand (β = -8) on prices within ±5 % for 40 hours, then 70 % off for the last
    8 hours, where demand is flat at ``rate``: a log-linear curve carried to the markdown
    predicts about 15,000 times the units that sell."""
    rng = np.random.default_rng(seed)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    events = []
    for s in drop.skus:
        for h in range(HOURS):
            ts = now - timedelta(hours=HOURS - h) + timedelta(minutes=int(rng.integers(0, 59)))
            if h < HOURS - 8:
                x = float(rng.choice([0.95, 1.0, 1.05]))
                lam = rate * x**-8.0
            else:
                x, lam = 0.3, rate
            qty = int(rng.poisson(lam))
            if qty:
                events.append(
                    {
                        "event_id": f"sale-{s}-{h}",
                        "type": "sale",
                        "sku": s,
                        "market": MARKET,
                        "ts": ts.isoformat(),
                        "quantity": qty,
                        "unit_price": round(drop.list_price[s] * x, 2),
                    }
                )
    return events


def _post(store: PriceStore, drop: SimDrop, events: list[dict[str, Any]]) -> None:
    seed_store(store, drop)
    store.record_events(as_records(events, drop.list_price))
    for s in drop.skus:
        store.set_inventory(s, MARKET, drop.inventory)


def test_a_fit_that_predicts_well_is_published_with_its_scores(
    store: PriceStore, tmp_path: Path
) -> None:
    drop = write_configs(tmp_path / "configs", N_SKUS)
    _post(store, drop, day_of_events(drop, hours=HOURS, rate=20.0, announcements=False))
    record = Refitter(store, load_config_dir(drop.config_dir), device="cpu").run()
    assert record.state == "published", record.reasons
    check = record.summary["validation"]
    assert check["outcome"] == "passed", check
    assert check["holdout_hours"] == 8 and check["n_cells"] >= 50
    assert check["model_deviance"] < check["naive_deviance"]
    version = next(v for v in store.list_versions() if v.version == record.version)
    assert version.meta["fit"]["validation"]["model_deviance"] == check["model_deviance"]


def test_a_fit_worse_than_the_naive_mean_keeps_the_live_surfaces(
    store: PriceStore, tmp_path: Path
) -> None:
    drop = write_configs(tmp_path / "configs", N_SKUS, allowed_range=(-30.0, -0.05))
    _post(store, drop, _kinked_events(drop))
    record = Refitter(store, load_config_dir(drop.config_dir), device="cpu").run()
    assert record.state == "no_change", record.reasons
    assert record.version is None and store.live_version() is None
    check = record.summary["validation"]
    assert check["outcome"] == "rejected"
    assert check["model_deviance"] > 10 * check["naive_deviance"]
    assert any("held-out check" in r and "naive" in r for r in record.reasons), record.reasons
    fit_detail = next(s.detail for s in record.stages if s.name == "fit")
    assert fit_detail["validation"] == check
    again = RefitState(store).get_record(record.id)
    assert again is not None and again.summary["validation"] == check
    # The same panel with the check turned off publishes: the check is what held it back.
    off = Refitter(store, load_config_dir(drop.config_dir), device="cpu", validation_margin=None)
    assert off.run(force=True).state == "published"
