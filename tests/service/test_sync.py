"""The sync's periodic check: incremental, and it repairs what a lost notice missed.

Each test drives a :class:`LiveSync` without its thread (no subscription), so every
change made through the store below is a change whose notice was lost: only
:meth:`LiveSync.check` can bring it into the book.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from service.pricebook import CatalogEntry, PriceBook
from service.store import PriceStore, SkuMeta, SurfaceRecord, connect
from service.sync import INVENTORY_ROUNDS, LiveSync

MARKET = "m1"
SKUS = [f"S-{i:03d}" for i in range(40)]


class CountingBook(PriceBook):
    """A price book that counts surface reloads (a full resync reloads every SKU)."""

    def __init__(self) -> None:
        super().__init__()
        self.reloads: list[str] = []

    def set_surfaces(self, sku: str, live: Mapping[str, tuple[str, Any]]) -> None:
        self.reloads.append(sku)
        super().set_surfaces(sku, live)


def _surface(base: float) -> SurfaceRecord:
    return SurfaceRecord(
        price=np.full((11, 4), base),
        period_start=datetime.now(UTC) - timedelta(hours=1),
        period_seconds=3600,
    )


@pytest.fixture
def store(any_redis_url: str) -> PriceStore:
    store = PriceStore(connect(any_redis_url, timeout=5.0))
    store.register_catalog(
        [
            (SkuMeta(sku=s, list_price=10.0, currency="USD", markets=(MARKET,)), {MARKET: 5})
            for s in SKUS
        ]
    )
    store.publish_surfaces("v1", {(s, MARKET): _surface(10.0) for s in SKUS})
    return store


@pytest.fixture
def synced(store: PriceStore) -> tuple[LiveSync, CountingBook]:
    book = CountingBook()
    book.set_catalog({s: CatalogEntry(s, 10.0, "USD", (MARKET,)) for s in SKUS})
    sync = LiveSync(store, book, quote_secret=b"k" * 32)
    sync.resync()
    assert len(book.reloads) == len(SKUS)
    book.reloads.clear()
    return sync, book


def test_a_check_with_nothing_published_reloads_no_surface(
    synced: tuple[LiveSync, CountingBook],
) -> None:
    sync, book = synced
    for _ in range(3):
        sync.check()
    assert book.reloads == []


def test_a_publish_whose_notice_was_lost_is_applied_for_its_skus_only(
    store: PriceStore, synced: tuple[LiveSync, CountingBook]
) -> None:
    sync, book = synced
    store.publish_surfaces("v2", {(SKUS[3], MARKET): _surface(20.0)})
    assert book.price(SKUS[3], MARKET).version == "v1"
    sync.check()
    assert book.reloads == [SKUS[3]]
    assert book.price(SKUS[3], MARKET).version == "v2"
    assert book.price(SKUS[3], MARKET).price == 20.0
    assert book.price(SKUS[4], MARKET).version == "v1"
    # A rollback is numbered like a publish: seen too.
    store.rollback("v1")
    sync.check()
    assert book.price(SKUS[3], MARKET).version == "v1"


def test_every_counter_is_reread_within_the_rounds(
    store: PriceStore, synced: tuple[LiveSync, CountingBook]
) -> None:
    sync, book = synced
    for i, sku in enumerate(SKUS):
        store.set_inventory(sku, MARKET, 100 + i)
    assert book.units(SKUS[0], MARKET) == 5
    for _ in range(INVENTORY_ROUNDS):
        sync.check()
    assert [book.units(s, MARKET) for s in SKUS] == [100 + i for i in range(len(SKUS))]


def test_a_sku_registered_elsewhere_joins_the_catalog_at_the_next_check(
    store: PriceStore, synced: tuple[LiveSync, CountingBook]
) -> None:
    sync, book = synced
    store.register_catalog([(SkuMeta("NEW-1", 12.0, "USD", (MARKET,)), {MARKET: 3})])
    sync.check()
    assert book.price("NEW-1", MARKET).price == 12.0
