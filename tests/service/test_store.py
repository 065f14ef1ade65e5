"""PriceStore against real Redis: one single node and a 3-master cluster (conformance)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service import keys
from service.exceptions import FenceLost, PublishSuperseded
from service.store import EventRecord, PriceStore, SkuMeta, SurfaceRecord, connect

SKU, MARKET = "CMX-VAR-001", "brooklyn"


@pytest.fixture
def store(any_redis_url: str) -> PriceStore:
    s = PriceStore(connect(any_redis_url, timeout=2.0), keep_versions=3)
    yield s
    s.close()


def sale(
    event_id: str, qty: int = 1, *, sku: str = SKU, quoted: float | None = None
) -> EventRecord:
    return EventRecord(
        event_id=event_id,
        kind="sale",
        sku=sku,
        market=MARKET,
        quantity=qty,
        fields={"type": "sale", "event_id": event_id, "unit_price": "20.0"},
        quoted_price=quoted,
        list_price=19.99,
    )


def surface(rows: int, cols: int = 4, base: float = 10.0) -> SurfaceRecord:
    # Price falls as units left rise (row), rises as time runs out (column).
    n = np.arange(rows)[:, None]
    t = np.arange(cols)[None, :]
    return SurfaceRecord(
        price=base + 100.0 / (1 + n) + t,
        period_start=datetime.now(UTC) - timedelta(minutes=5),
        period_seconds=3600,
        guardrail_codes=np.zeros((rows, cols), dtype=np.int8),
        currency="USD",
        elasticity={"beta": -1.5},
    )


def test_keys_of_one_sku_share_a_hash_slot() -> None:
    from redis.crc import key_slot

    names = [
        keys.inventory(SKU, MARKET),
        keys.live(SKU),
        keys.events(SKU),
        keys.seen(SKU, "e1"),
        keys.surface(SKU, "v1", MARKET),
        keys.surface_prices(SKU, "v1", MARKET),
        keys.sku_meta(SKU),
    ]
    assert len({key_slot(k.encode()) for k in names}) == 1
    with pytest.raises(ValueError, match="must not contain"):
        keys.inventory("a{b}", MARKET)


def test_seed_never_overwrites_a_live_counter(store: PriceStore) -> None:
    assert store.seed_inventory(SKU, MARKET, 10) is True
    store.record_events([sale("s1", 3)])
    assert store.seed_inventory(SKU, MARKET, 10) is False
    assert store.get_inventory(SKU, MARKET) == 7
    assert store.set_inventory(SKU, MARKET, 50) == 50
    assert store.get_inventory(SKU, MARKET) == 50


def test_sale_decrements_refuses_when_short_and_replays_change_nothing(store: PriceStore) -> None:
    store.seed_inventory(SKU, MARKET, 3)
    out = store.record_events([sale("a", 2), sale("b", 2), sale("a", 2), sale("c", 1)])
    assert [o.status for o in out] == ["accepted", "sold_out", "duplicate", "accepted"]
    assert out[2].first_status == "accepted" and out[2].units_left == 1
    assert out[3].units_left == 0
    assert store.get_inventory(SKU, MARKET) == 0
    # no surface yet: charged the list price
    assert out[0].unit_price == pytest.approx(19.99)
    assert len(store.recent_events(SKU)) == 2


def test_sale_without_a_counter_is_refused(store: PriceStore) -> None:
    (out,) = store.record_events([sale("x")])
    assert out.status == "no_inventory"


def test_sale_is_charged_the_surface_cell_or_the_quote(store: PriceStore) -> None:
    store.seed_inventory(SKU, MARKET, 5)
    rec = surface(rows=4)
    store.publish_surfaces("v1", {(SKU, MARKET): rec})
    a, b = store.record_events([sale("a"), sale("b", quoted=12.5)])
    # 5 units left > N=3: row 3; 5 minutes into period 0.
    assert a.unit_price == pytest.approx(rec.price[3, 0])
    assert a.version == "v1"
    assert b.unit_price == 12.5
    entries = store.recent_events(SKU)
    assert entries[0].fields["charged_price"] and entries[1].fields["charged_price"] == "12.5"
    assert entries[0].fields["units_left"] == "4"


def test_concurrent_sales_never_oversell(store: PriceStore, any_redis_url: str) -> None:
    store.seed_inventory(SKU, MARKET, 37)
    accepted: list[int] = []
    lock = threading.Lock()

    def worker(w: int) -> None:
        s = PriceStore(connect(any_redis_url, timeout=5.0))
        batch = [sale(f"w{w}-{i}") for i in range(15)]
        res = s.record_events(batch)
        with lock:
            accepted.append(sum(o.status == "accepted" for o in res))
        s.close()

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(accepted) == 37
    assert store.get_inventory(SKU, MARKET) == 0


def test_publish_switches_keeps_last_k_and_rolls_back(store: PriceStore) -> None:
    pairs = {(SKU, MARKET): surface(3, base=10), ("PIN-1", MARKET): surface(3, base=20)}
    for i in range(1, 5):
        store.publish_surfaces(
            f"v{i}", {k: v._replace(price=v.price + i) for k, v in pairs.items()}, meta={"n": i}
        )
    versions = store.list_versions()
    assert [v.version for v in versions] == ["v4", "v3", "v2"]  # keep=3, v1 evicted
    assert versions[0].live and versions[0].meta == {"n": 4}
    # Live and status agree: only the live version says "live".
    assert [(v.live, v.status) for v in versions] == [
        (True, "live"),
        (False, "replaced"),
        (False, "replaced"),
    ]
    assert store.live_version() == "v4"
    assert store.get_surface(SKU, MARKET, "v1") is None
    with pytest.raises(ValueError, match="exists already"):
        store.publish_surfaces("v4", pairs)
    assert store.rollback().version == "v3"
    version, rec = store.live_surfaces(SKU)[MARKET]
    assert version == "v3"
    np.testing.assert_allclose(rec.price, pairs[(SKU, MARKET)].price + 3)
    assert store.live_version() == "v3"
    assert store.rollback("v4").version == "v4"
    with pytest.raises(ValueError, match="unknown or evicted"):
        store.rollback("v1")


def _take_lock(store: PriceStore, owner: str) -> int:
    """Take the re-fit lock the way a worker does (after any previous holder's expiry)."""
    from service.store.refit_state import RefitState

    state = RefitState(store)
    state.expire_lock()  # the previous holder's TTL ran out
    taken = state.acquire(owner, ttl_s=60)
    assert taken is not None
    return taken[0]


def test_a_publish_with_a_stale_fencing_token_is_refused(store: PriceStore) -> None:
    pairs = {(SKU, MARKET): surface(3, base=10), ("PIN-1", MARKET): surface(3, base=20)}
    old_token = _take_lock(store, "worker-a")
    store.publish_surfaces("v1", pairs, fence=(keys.refit_lock(), old_token))
    assert store.live_version() == "v1"
    new_token = _take_lock(store, "worker-b")
    assert new_token > old_token
    newer = {k: v._replace(price=v.price + 5) for k, v in pairs.items()}
    with pytest.raises(FenceLost, match=f"no longer holds token {old_token}"):
        store.publish_surfaces("v2", newer, fence=(keys.refit_lock(), old_token))
    # Nothing of v2 exists: no record, no surface, every pointer still on v1.
    assert store.live_version() == "v1"
    assert [v.version for v in store.list_versions()] == ["v1"]
    assert not store.client.exists(keys.version_record("v2"))
    assert store.get_surface(SKU, MARKET, "v2") is None
    assert store.live_pointers([SKU, "PIN-1"]) == {SKU: {MARKET: "v1"}, "PIN-1": {MARKET: "v1"}}
    # The holder of the lock publishes, and no lock at all refuses too.
    store.publish_surfaces("v2", newer, fence=(keys.refit_lock(), new_token))
    assert store.live_version() == "v2"
    store.client.delete(keys.refit_lock())
    with pytest.raises(FenceLost, match="holds 'nothing'"):
        store.publish_surfaces("v3", newer, fence=(keys.refit_lock(), new_token))
    with pytest.raises(ValueError, match="hash slot"):
        store.publish_surfaces("v3", newer, fence=("dp:lock", new_token))
    assert store.live_version() == "v2"


def test_a_slow_stale_publisher_never_goes_back_over_a_newer_version(
    store: PriceStore, any_redis_url: str
) -> None:
    pairs = {(SKU, MARKET): surface(3, base=10), ("PIN-1", MARKET): surface(3, base=20)}
    store.publish_surfaces("v0", pairs)
    # Worker A registers v-a under its fence, then pauses before switching any SKU
    # (a GC or VM pause) for longer than the lock's TTL.
    slow = PriceStore(connect(any_redis_url, timeout=2.0))
    registered, resume = threading.Event(), threading.Event()
    swap = slow._swap

    def paused_swap(*args: Any) -> list[str]:
        registered.set()
        assert resume.wait(20)
        return swap(*args)

    slow._swap = paused_swap  # type: ignore[method-assign]
    token_a = _take_lock(store, "worker-a")
    outcome: list[BaseException | None] = []

    def publish_a() -> None:
        try:
            stale = {k: v._replace(price=v.price + 1) for k, v in pairs.items()}
            slow.publish_surfaces("v-a", stale, fence=(keys.refit_lock(), token_a))
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=publish_a)
    thread.start()
    try:
        assert registered.wait(20)
        # A's lock expires; B takes it and publishes a newer version of one SKU.
        token_b = _take_lock(store, "worker-b")
        newer = {(SKU, MARKET): pairs[(SKU, MARKET)]._replace(price=pairs[(SKU, MARKET)].price + 9)}
        store.publish_surfaces("v-b", newer, fence=(keys.refit_lock(), token_b))
    finally:
        resume.set()
        thread.join(30)
        slow.close()
    assert len(outcome) == 1 and isinstance(outcome[0], PublishSuperseded)
    # B's SKU keeps B's surface; the SKU only A covered moved to A's; v-b stays live.
    version, rec = store.live_surfaces(SKU)[MARKET]
    assert version == "v-b"
    np.testing.assert_allclose(rec.price, pairs[(SKU, MARKET)].price + 9)
    assert store.live_pointers(["PIN-1"]) == {"PIN-1": {MARKET: "v-a"}}
    assert store.live_version() == "v-b"
    status = {v.version: (v.status, v.live) for v in store.list_versions()}
    assert status["v-a"] == ("superseded", False) and status["v-b"] == ("live", True)
    # A rollback is numbered after both, so it wins over them.
    assert store.rollback("v0").version == "v0"
    assert store.live_pointers([SKU, "PIN-1"]) == {SKU: {MARKET: "v0"}, "PIN-1": {MARKET: "v0"}}


def test_publish_rejects_malformed_surfaces(store: PriceStore) -> None:
    bad = surface(3)._replace(price=np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="2-D"):
        store.publish_surfaces("v1", {(SKU, MARKET): bad})
    with pytest.raises(ValueError, match="finite and > 0"):
        store.publish_surfaces("v1", {(SKU, MARKET): surface(3)._replace(price=np.zeros((3, 2)))})
    with pytest.raises(ValueError, match="version id"):
        store.publish_surfaces("bad version", {(SKU, MARKET): surface(3)})
    assert store.live_version() is None


def test_catalog_and_consumer_group_round_trip(store: PriceStore) -> None:
    store.register_sku(SkuMeta(SKU, 19.99, "USD", (MARKET,), "drop-1", "Variant"))
    store.register_sku(SkuMeta("PIN-1", 5.0, "EUR", (MARKET, "paris")))
    assert store.catalog()[SKU].markets == (MARKET,)
    assert store.catalog()["PIN-1"].currency == "EUR"
    store.seed_inventory(SKU, MARKET, 5)
    store.ensure_group("refit")
    store.record_events([sale("a"), sale("b")])
    got = store.read_events("refit", "c1")
    assert [e.fields["event_id"] for e in got] == ["a", "b"]
    assert store.read_events("refit", "c1") == []
    assert store.ack("refit", got) == 2


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    start=st.integers(0, 20),
    ops=st.lists(
        st.tuples(
            st.sampled_from(["sale", "return", "restock"]), st.integers(0, 6), st.integers(0, 12)
        ),
        max_size=25,
    ),
)
def test_counter_matches_a_sequential_model(redis_url: str, start: int, ops) -> None:
    """Invariant of the event script: the counter equals a sequential model that
    refuses short sales, refuses returns beyond the units sold net of returns and
    ignores replays; it never goes negative."""
    s = PriceStore(connect(redis_url, timeout=2.0))
    s.client.delete(keys.inventory(SKU, MARKET))
    s.client.delete(keys.sold(SKU, MARKET))
    for k in s.client.scan_iter(match=f"{keys.sku_tag(SKU)}:seen:*"):
        s.client.delete(k)
    s.set_inventory(SKU, MARKET, start)
    model, sold, seen = start, 0, set()
    events = []
    for kind, qty, eid in ops:
        events.append(EventRecord(f"e{eid}", kind, SKU, MARKET, qty, {}, None, 1.0))
    for ev, out in zip(events, s.record_events(events), strict=True):
        if ev.event_id in seen:
            assert out.status == "duplicate"
            continue
        seen.add(ev.event_id)
        if ev.kind == "sale":
            ok = model >= ev.quantity
            assert out.status == ("accepted" if ok else "sold_out")
            model -= ev.quantity if ok else 0
            sold += ev.quantity if ok else 0
        elif ev.kind == "return":
            ok = sold >= ev.quantity
            assert out.status == ("accepted" if ok else "return_exceeds_sales")
            assert ok or out.returnable == sold
            model += ev.quantity if ok else 0
            sold -= ev.quantity if ok else 0
        else:
            model += ev.quantity
    assert s.get_inventory(SKU, MARKET) == model >= 0
    s.close()
