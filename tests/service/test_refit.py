"""The re-fit against a real Redis: learning, validation, approvals, fencing, rollback."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import REGISTRY
from refit_factories import (
    ELASTIC,
    INELASTIC,
    MARKET,
    SimDrop,
    as_records,
    day_of_events,
    seed_store,
    write_configs,
)

from service import keys
from service.config.loader import load_config_dir
from service.exceptions import ApprovalNotFound, FenceLost
from service.refit import STAGES, RefitState, Refitter
from service.store import PriceStore, connect

N_SKUS = 6  # three elastic, three inelastic; every test shares the compiled shapes


pytestmark = pytest.mark.usefixtures("compile_cache")


def _post_day(store: PriceStore, drop: SimDrop, **kw: Any) -> list[dict[str, Any]]:
    seed_store(store, drop)
    events = day_of_events(drop, **{"rate": 20.0, **kw})
    store.record_events(as_records(events, drop.list_price))
    for s in drop.skus:
        store.set_inventory(s, MARKET, drop.inventory)
    return events


def _price_now(store: PriceStore, sku: str, units: int) -> float:
    got = store.get_surface(sku, MARKET)
    assert got is not None, f"no live surface for {sku}"
    return float(got[1].price[min(units, got[1].price.shape[0] - 1), 0])


def test_refit_offers_prices_only_near_those_the_fit_has_seen(
    store: PriceStore, tmp_path: Path
) -> None:
    """Sales seen only within 5 % of list: the surfaces stay within the trust region
    (``TRUST`` x the seen prices), though the inelastic SKUs' optimum is the 2x ceiling and
    the elastic ones' the 0.5x floor: one re-fit does not trust a curve far from its data."""
    from pricing.guardrails import TRUST

    drop = write_configs(tmp_path / "configs", N_SKUS)
    seed_store(store, drop)
    events = day_of_events(drop, rate=20.0, price_multiples=(0.95, 1.0, 1.05))
    store.record_events(as_records(events, drop.list_price))
    for s in drop.skus:
        store.set_inventory(s, MARKET, drop.inventory)
    record = Refitter(store, load_config_dir(drop.config_dir), device="cpu").run()
    assert record.state == "published", record.reasons
    moved = 0
    for sku in drop.skus:
        got = store.get_surface(sku, MARKET)
        assert got is not None
        price = np.asarray(got[1].price)
        low, high = 0.95 * drop.list_price[sku] / TRUST, 1.05 * drop.list_price[sku] * TRUST
        assert price.min() >= low - 0.01 and price.max() <= high + 0.01, (sku, low, high)
        moved += int(np.any(np.abs(price - drop.list_price[sku]) > 0.1 * drop.list_price[sku]))
    assert moved > 0  # the surfaces still move: the region bounds them, it does not pin them


def test_refit_learns_the_direction_of_each_elasticity(store: PriceStore, tmp_path: Path) -> None:
    drop = write_configs(tmp_path / "configs", N_SKUS)
    events = _post_day(store, drop)
    refitter = Refitter(store, load_config_dir(drop.config_dir), device="cpu")
    published_before = REGISTRY.get_sample_value("dropprice_refits_total", {"outcome": "published"})
    record = refitter.run()
    published_after = REGISTRY.get_sample_value("dropprice_refits_total", {"outcome": "published"})
    assert published_after == (published_before or 0.0) + 1.0
    assert REGISTRY.get_sample_value(
        "dropprice_refit_duration_seconds_count", {"outcome": "published"}
    )

    assert record.state == "published", record.reasons
    assert [s.name for s in record.stages] == list(STAGES)
    assert all(s.seconds >= 0 for s in record.stages)
    assert record.device is not None and record.device.startswith("cpu")
    assert record.events_read == len(events)
    assert store.live_version() == record.version
    for sku in drop.skus:
        price = _price_now(store, sku, drop.inventory)
        if drop.elasticity[sku] == ELASTIC:
            assert price < drop.list_price[sku], (sku, price)
        else:
            assert drop.elasticity[sku] == INELASTIC
            assert price > drop.list_price[sku], (sku, price)
    # The stored record says the same as the returned one.
    again = RefitState(store).get_record(record.id)
    assert again is not None and again.version == record.version
    assert again.timings.keys() == record.timings.keys()


def test_nothing_new_publishes_nothing_new_events_warm_start_rollback_restores(
    store: PriceStore, tmp_path: Path
) -> None:
    drop = write_configs(tmp_path / "configs", N_SKUS)
    _post_day(store, drop)
    refitter = Refitter(store, load_config_dir(drop.config_dir), device="cpu")
    first = refitter.run()
    assert first.state == "published"
    before = {s: _price_now(store, s, 10) for s in drop.skus}
    second = refitter.run()
    assert second.state == "no_change" and second.reasons == ["no new events since the last re-fit"]
    assert len(store.list_versions()) == 1

    more = day_of_events(drop, seed=7)
    for e in more:
        e["event_id"] += "-b"
    for s in drop.skus:
        store.set_inventory(s, MARKET, 100_000)
    store.record_events(as_records(more, drop.list_price))
    for s in drop.skus:
        store.set_inventory(s, MARKET, 10)
    third = refitter.run()
    assert third.state == "published" and third.version != first.version
    fit_stage = next(s for s in third.stages if s.name == "fit")
    assert fit_stage.detail["warm_start"] is True
    assert [v.version for v in store.list_versions()] == [third.version, first.version]
    assert all(store.get_surface(s, MARKET)[0] == third.version for s in drop.skus)  # type: ignore[index]

    result = store.rollback()
    assert result.version == first.version
    after = {s: _price_now(store, s, 10) for s in drop.skus}
    np.testing.assert_allclose(list(after.values()), list(before.values()))


def test_elasticity_outside_the_allowed_range_falls_back_to_the_prior(
    store: PriceStore, tmp_path: Path
) -> None:
    # Allowed range [-2, -0.05]: the elastic SKUs (true -3.5) fit outside it.
    drop = write_configs(tmp_path / "configs", N_SKUS, allowed_range=(-2.0, -0.05))
    _post_day(store, drop)
    record = Refitter(store, load_config_dir(drop.config_dir), device="cpu").run()
    assert record.state == "published"
    elastic = drop.skus[0]
    assert any(
        r.startswith(f"{elastic}/{MARKET}: elasticity") and "prior mean" in r
        for r in record.reasons
    ), record.reasons
    got = store.get_surface(elastic, MARKET)
    assert got is not None
    elasticity: Mapping[str, float] = got[1].elasticity or {}
    assert elasticity["beta"] == pytest.approx(-1.5)
    assert got[1].explain is not None and got[1].explain["elasticity_replaced"] is True


def test_changes_beyond_the_approval_band_wait_for_an_operator(
    store: PriceStore, tmp_path: Path
) -> None:
    drop = write_configs(tmp_path / "configs", N_SKUS, approval_band_pct=10.0)
    _post_day(store, drop)
    refitter = Refitter(store, load_config_dir(drop.config_dir), device="cpu")
    record = refitter.run()
    pending = refitter.state.pending_approvals()
    assert [a.id for a in pending] == [record.approval_id]
    changes = {c["sku"]: c for c in pending[0].changes}
    assert changes and all(abs(c["change_pct"]) > 10.0 for c in changes.values())
    # Changes inside the band went live; the others wait on the list price.
    assert record.state == ("held" if len(changes) == len(drop.skus) else "published")
    for sku in drop.skus:
        live = store.get_surface(sku, MARKET)
        assert (live is None) == (sku in changes), (sku, record.reasons)
    held_sku = sorted(changes)[0]

    with pytest.raises(ApprovalNotFound):
        refitter.decide("no-such-approval", approve=True)
    approved = refitter.decide(pending[0].id, approve=True, decided_by="alice", skus=[held_sku])
    assert approved.status == "approved" and approved.version == store.live_version()
    assert _price_now(store, held_sku, drop.inventory) == pytest.approx(
        changes[held_sku]["new_price"], abs=1e-3
    )
    assert refitter.state.pending_approvals() == []
    with pytest.raises(ApprovalNotFound):
        refitter.decide(pending[0].id, approve=False)


class _StealLock:
    """A reporter that lets another worker take the lock when ``stage`` starts."""

    def __init__(self, state: RefitState, stage: str) -> None:
        self.state, self.stage = state, stage

    def stage_started(self, name: str) -> None:
        if name == self.stage:
            self.state.expire_lock()
            assert self.state.acquire("thief", 60) is not None

    def stage_finished(self, name: str, seconds: float, detail: Mapping[str, Any]) -> None:
        pass

    def note(self, message: str, **fields: Any) -> None:
        pass


@pytest.mark.parametrize("stage", ["solve", "publish"])
def test_a_worker_that_lost_its_lock_never_publishes(
    store: PriceStore, tmp_path: Path, stage: str
) -> None:
    drop = write_configs(tmp_path / "configs", N_SKUS)
    _post_day(store, drop)
    state = RefitState(store)
    refitter = Refitter(
        store, load_config_dir(drop.config_dir), device="cpu", reporter=_StealLock(state, stage)
    )
    with pytest.raises(FenceLost):
        refitter.run()
    assert store.live_version() is None
    assert store.list_versions() == []
    # Its events stay pending for the worker that holds the lock now.
    pending = store.client.xpending(keys.events(drop.skus[0]), "refit")
    assert pending["pending"] > 0
    assert state.holder() is not None and state.holder().endswith("thief")


@pytest.mark.cluster
def test_refit_on_a_redis_cluster(cluster_url: str, tmp_path: Path) -> None:
    # Fenced writes are single-slot ({_refit}); stream reads and acks are per SKU slot.
    store = PriceStore(connect(cluster_url, timeout=30.0))
    try:
        drop = write_configs(tmp_path / "configs", N_SKUS)
        _post_day(store, drop)
        refitter = Refitter(store, load_config_dir(drop.config_dir), device="cpu")
        record = refitter.run()
        assert record.state == "published", record.reasons
        assert all(store.get_surface(s, MARKET) is not None for s in drop.skus)
        assert refitter.run().state == "no_change"
        pending = sum(
            int(store.client.xpending(keys.events(s), "refit")["pending"]) for s in drop.skus
        )
        assert pending == 0
    finally:
        store.close()


def test_open_window_keeps_live_surfaces_unless_the_drop_allows_it(
    store: PriceStore, tmp_path: Path
) -> None:
    # The window opened an hour ago: a re-fit must not touch it.
    drop = write_configs(tmp_path / "configs", N_SKUS, window_in=timedelta(hours=-1))
    _post_day(store, drop)
    refitter = Refitter(store, load_config_dir(drop.config_dir), device="cpu")
    record = refitter.run()
    assert record.state == "no_change"
    assert any("refit_during_window" in r for r in record.reasons)
    assert store.live_version() is None
    allowed = write_configs(tmp_path / "allowed", N_SKUS, window_in=timedelta(hours=-1),
                            refit_during_window=True)  # fmt: skip
    record = Refitter(store, load_config_dir(allowed.config_dir), device="cpu").run(force=True)
    assert record.state == "published", record.reasons
    surface = store.get_surface(drop.skus[0], MARKET)
    assert surface is not None
    # The surface starts at the period under way and runs to the window's end.
    assert surface[1].period_start == drop.window_start + timedelta(hours=1)
    assert surface[1].price.shape[1] == 5


def test_sales_only_in_the_hour_under_way_are_named_as_such(
    store: PriceStore, tmp_path: Path
) -> None:
    """The panel stops at the start of the hour under way: a re-fit that sees only this
    hour's sales says so, instead of "no sales of a configured SKU"."""
    from datetime import UTC, datetime

    drop = write_configs(tmp_path / "configs", N_SKUS)
    now = datetime(2026, 12, 4, 15, 40, tzinfo=UTC)
    seed_store(store, drop)
    events = day_of_events(drop, now=now + timedelta(hours=1), hours=1, announcements=False)
    assert events and all(e["ts"] >= "2026-12-04T15:00" for e in events)
    store.record_events(as_records(events, drop.list_price))
    refitter = Refitter(store, load_config_dir(drop.config_dir), device="cpu", clock=lambda: now)
    record = refitter.run(force=True)
    assert record.state == "no_change"
    assert any("hour under way" in r for r in record.reasons), record.reasons
    assert not any(r.startswith("no sales") for r in record.reasons)
