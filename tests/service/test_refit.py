"""The re-fit against a real Redis: learning, validation, approvals, fencing, rollback."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
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

N_SKUS = 6


@pytest.fixture
def store(redis_url: str) -> Iterator[PriceStore]:
    s = PriceStore(connect(redis_url, timeout=30.0))
    yield s
    s.close()


def _post_day(store: PriceStore, drop: SimDrop, **kw: Any) -> list[dict[str, Any]]:
    seed_store(store, drop)
    events = day_of_events(drop, **kw)
    store.record_events(as_records(events, drop.list_price))
    for s in drop.skus:
        store.set_inventory(s, MARKET, drop.inventory)
    return events


def _price_now(store: PriceStore, sku: str, units: int) -> float:
    got = store.get_surface(sku, MARKET)
    assert got is not None, f"no live surface for {sku}"
    return float(got[1].price[min(units, got[1].price.shape[0] - 1), 0])


def test_refit_learns_the_direction_of_each_elasticity(store: PriceStore, tmp_path: Path) -> None:
    drop = write_configs(tmp_path / "configs", N_SKUS)
    events = _post_day(store, drop)
    refitter = Refitter(store, load_config_dir(drop.config_dir), device="cpu")
    record = refitter.run()

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
    again = RefitState(store.client).get_record(record.id)
    assert again is not None and again.version == record.version
    assert again.timings.keys() == record.timings.keys()


def test_nothing_new_publishes_nothing_and_new_events_warm_start(
    store: PriceStore, tmp_path: Path
) -> None:
    drop = write_configs(tmp_path / "configs", 2)
    _post_day(store, drop)
    refitter = Refitter(store, load_config_dir(drop.config_dir), device="cpu")
    first = refitter.run()
    second = refitter.run()
    assert second.state == "no_change"
    assert len(store.list_versions()) == 1
    more = day_of_events(drop, seed=7)
    for e in more:
        e["event_id"] += "-b"
    store.record_events(as_records(more, drop.list_price))
    third = refitter.run()
    assert third.state == "published" and third.version != first.version
    fit_stage = next(s for s in third.stages if s.name == "fit")
    assert fit_stage.detail["warm_start"] is True
    assert [v.version for v in store.list_versions()] == [third.version, first.version]


def test_elasticity_outside_the_allowed_range_falls_back_to_the_prior(
    store: PriceStore, tmp_path: Path
) -> None:
    # Allowed range [-2, -0.05]: the elastic SKUs (true -3.5) fit outside it.
    drop = write_configs(tmp_path / "configs", 2, allowed_range=(-2.0, -0.05))
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
    drop = write_configs(tmp_path / "configs", 2, approval_band_pct=10.0)
    _post_day(store, drop)
    refitter = Refitter(store, load_config_dir(drop.config_dir), device="cpu")
    record = refitter.run()
    assert record.state == "held", record.reasons
    assert store.live_version() is None  # nothing published: the base price still serves
    pending = refitter.state.pending_approvals()
    assert [a.id for a in pending] == [record.approval_id]
    changes = {c["sku"]: c for c in pending[0].changes}
    assert set(changes) == set(drop.skus)
    assert all(abs(c["change_pct"]) > 10.0 for c in changes.values())

    with pytest.raises(ApprovalNotFound):
        refitter.decide("no-such-approval", approve=True)
    approved = refitter.decide(pending[0].id, approve=True, decided_by="alice", skus=[drop.skus[1]])
    assert approved.status == "approved" and approved.version == store.live_version()
    assert _price_now(store, drop.skus[1], drop.inventory) == pytest.approx(
        changes[drop.skus[1]]["new_price"], abs=1e-3
    )
    assert store.get_surface(drop.skus[0], MARKET) is None
    assert refitter.state.pending_approvals() == []
    with pytest.raises(ApprovalNotFound):
        refitter.decide(pending[0].id, approve=False)


class _StealLock:
    """A reporter that lets another worker take the lock when ``stage`` starts."""

    def __init__(self, state: RefitState, stage: str) -> None:
        self.state, self.stage = state, stage

    def stage_started(self, name: str) -> None:
        if name == self.stage:
            self.state.client.delete(self.state.key("lock"))
            assert self.state.acquire("thief", 60) is not None

    def stage_finished(self, name: str, seconds: float, detail: Mapping[str, Any]) -> None:
        pass

    def note(self, message: str, **fields: Any) -> None:
        pass


@pytest.mark.parametrize("stage", ["solve", "publish"])
def test_a_worker_that_lost_its_lock_never_publishes(
    store: PriceStore, tmp_path: Path, stage: str
) -> None:
    drop = write_configs(tmp_path / "configs", 2)
    _post_day(store, drop)
    state = RefitState(store.client)
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


def test_rollback_restores_the_previous_prices(store: PriceStore, tmp_path: Path) -> None:
    drop = write_configs(tmp_path / "configs", 2)
    _post_day(store, drop)
    refitter = Refitter(store, load_config_dir(drop.config_dir), device="cpu")
    first = refitter.run()
    before = {s: _price_now(store, s, 10) for s in drop.skus}
    store.set_inventory(drop.skus[0], MARKET, 10)
    store.set_inventory(drop.skus[1], MARKET, 10)
    more = day_of_events(drop, seed=3, rate=1.0)
    for e in more:
        e["event_id"] += "-late"
    store.record_events(as_records(more, drop.list_price))
    second = refitter.run(force=True)
    assert second.state == "published"
    assert store.get_surface(drop.skus[0], MARKET)[0] == second.version  # type: ignore[index]
    result = store.rollback()
    assert result.version == first.version
    after = {s: _price_now(store, s, 10) for s in drop.skus}
    np.testing.assert_allclose(list(after.values()), list(before.values()))
